/**
 * bench:dns — meshd's DNS interface against dnsmasq, same machine, same run:
 * `node bench/dns/run.ts [--seconds 10] [--rate 10000] [--no-record]`.
 *
 * meshd: a `meshd agent -dev` on 127.0.0.31 with 10 passing instances of `web` (one per node,
 * registered through the catalog API). dnsmasq (Debian's, installed with apt-get when missing) on
 * 127.0.0.32 serving the same records from `--host-record`/`--srv-host`: `web.service.consul`
 * A (10 addresses) and SRV (10 targets `web-N.node.dc1.consul` with their A records).
 * dnsperf (Debian's, installed the same way) asks both `web.service.consul` A and SRV in turn for
 * `--seconds`, with EDNS0 (so meshd answers all 10 records, as dnsmasq does, rather than its
 * 3-record answer to plain 512-byte UDP), after a 2 s warm-up; dnsperf's defaults otherwise
 * (1 client, 100 queries outstanding) but for its socket buffers, 512 KiB instead of the system's
 * 208: dnsperf shares the 2 vCPUs with the server, and when it falls behind, 100 answers of up to
 * ~1 KB (kernel accounting ~2 KiB each) overflow its receive buffer: answers lost on the client's
 * side (`ss` showed 179 of its 208 KiB queued during a meshd run; 4 queries in ~500k lost). Queries/s and mean latency come from a run without -v; p99
 * from a second run with -v (per-query latencies), whose line-per-query output costs the bench
 * process CPU that would otherwise go to the server under test on a small machine. A third run
 * offers a fixed `--rate` queries/s and divides the server's CPU time by the answers: the cost of
 * a query, which swings far less from run to run than throughput on a small VM.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import { exchangeUdp } from '../../src/api/dns/recursor.ts';
import { loadUdpBatch, loadUdpBatchError } from '../../src/api/dns/udp-batch.ts';
import { freePorts, startAgent, waitFor, waitLeader } from '../../test/support/agent-process.ts';
import {
  appendResults,
  aptInstall,
  cleanup,
  cpuSeconds,
  installCleanup,
  machineLine,
  markdownTable,
  percentile,
  today,
  trackChild,
  trackDir,
  wrapProse,
} from '../support/host.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    /** The fixed offered load of the CPU-per-query run. */
    rate: { type: 'string', default: '10000' },
    'no-record': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const MESHD_HOST = '127.0.0.31';
const DNSMASQ_HOST = '127.0.0.32';
const INSTANCES = 10;
const NAME = 'web.service.consul';

interface PerfResult {
  /** Server CPU (user + system) per answered query at the fixed `--rate`, in µs. */
  cpuUsPerQuery?: number;
  qps: number;
  meanMs: number;
  p99Ms: number;
  completed: number;
  lost: number;
  nonNoError: number;
}

/** The Debian binary at `path`, installed from `pkg` with apt-get when missing. */
function ensure(path: string, pkg: string): void {
  if (existsSync(path)) return;
  const failed = aptInstall(pkg);
  if (failed !== undefined || !existsSync(path))
    throw new Error(`${pkg} is needed (${failed ?? 'not installed'})`);
}

const instances = Array.from({ length: INSTANCES }, (_, i) => ({
  node: `web-${i + 1}`,
  address: `10.0.1.${i + 1}`,
  port: 8080,
}));

/** Runs dnsperf for `seconds` against host:port; `verbose` collects every query's latency. */
function dnsperf(
  host: string,
  port: number,
  file: string,
  seconds: number,
  verbose: boolean,
  rate?: number,
): Promise<PerfResult> {
  const args = [
    '-s',
    host,
    '-p',
    String(port),
    '-d',
    file,
    '-l',
    String(seconds),
    '-e',
    '-b',
    '512',
    ...(verbose ? ['-v'] : []),
    ...(rate === undefined ? [] : ['-Q', String(rate)]),
  ];
  const child = spawn('/usr/bin/dnsperf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const latencies: number[] = [];
  let summary = '';
  let nonNoError = 0;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (line.startsWith('> ')) {
      const parts = line.split(' ');
      if (parts[1] !== 'NOERROR') nonNoError++;
      latencies.push(Number(parts[parts.length - 1]));
    } else {
      summary += `${line}\n`;
    }
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`dnsperf exited ${code}: ${summary.slice(-500)}`));
      const num = (re: RegExp) => Number(re.exec(summary)?.[1] ?? Number.NaN);
      const sorted = Float64Array.from(latencies).sort();
      resolve({
        qps: num(/Queries per second:\s+([\d.]+)/),
        meanMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
        p99Ms: percentile(sorted, 99) * 1000,
        completed: num(/Queries completed:\s+(\d+)/),
        lost: num(/Queries lost:\s+(\d+)/),
        nonNoError,
      });
    });
  });
}

/** The answer count of `name`/`type` from host:port over UDP with EDNS0, or -1 on no answer. */
async function answerCount(host: string, port: number, type: 'A' | 'SRV'): Promise<number> {
  const q = dnsPacket.encode({
    type: 'query',
    id: 1,
    questions: [{ name: NAME, type }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 4096,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  });
  try {
    const r = dnsPacket.decode(await exchangeUdp(q, { host, port }, 1_000));
    return (r.answers ?? []).length;
  } catch {
    return -1;
  }
}

async function startMeshd(): Promise<{ port: number; pid: number }> {
  const [port] = await freePorts(1, MESHD_HOST);
  const a = await startAgent(['-dev', '-node=bench-dns', '-log-level=warn', `-dns-port=${port}`], {
    host: MESHD_HOST,
  });
  trackChild(a.child);
  await waitLeader(a);
  for (const i of instances) {
    const r = await fetch(`${a.http}/v1/catalog/register`, {
      method: 'PUT',
      body: JSON.stringify({
        Node: i.node,
        Address: i.address,
        Service: { ID: 'web', Service: 'web', Port: i.port },
        Checks: [{ CheckID: 'web-ok', Name: 'ok', Status: 'passing', ServiceID: 'web' }],
      }),
    });
    if (r.status !== 200) throw new Error(`register ${i.node}: ${r.status}`);
  }
  await waitFor(
    'meshd to answer all 10 instances',
    async () => (await answerCount(MESHD_HOST, port, 'A')) === INSTANCES,
  );
  return { port, pid: a.child.pid as number };
}

async function startDnsmasq(): Promise<{ port: number; pid: number }> {
  const [port] = await freePorts(1, DNSMASQ_HOST);
  const records = instances.flatMap((i) => [
    `--host-record=${NAME},${i.address}`,
    `--srv-host=${NAME},${i.node}.node.dc1.consul,${i.port},1,1`,
    `--host-record=${i.node}.node.dc1.consul,${i.address}`,
  ]);
  const child = spawn(
    '/usr/sbin/dnsmasq',
    [
      '--no-daemon',
      `--port=${port}`,
      `--listen-address=${DNSMASQ_HOST}`,
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--local-ttl=0',
      ...records,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  trackChild(child);
  await waitFor('dnsmasq to answer all 10 instances', async () => {
    if (child.exitCode !== null) throw new Error(`dnsmasq exited ${child.exitCode}`);
    return (await answerCount(DNSMASQ_HOST, port, 'SRV')) === INSTANCES;
  });
  return { port, pid: child.pid as number };
}

const f0 = (n: number) => n.toFixed(0);
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const f3 = (n: number) => n.toFixed(3);

async function main(): Promise<void> {
  installCleanup();
  ensure('/usr/bin/dnsperf', 'dnsperf');
  ensure('/usr/sbin/dnsmasq', 'dnsmasq');
  const root = mkdtempSync(join(tmpdir(), 'meshd-bench-dns-'));
  trackDir(root);
  const file = join(root, 'queries.txt');
  writeFileSync(file, `${NAME} A\n${NAME} SRV\n`);
  console.log(machineLine());
  // The agent loads the same addon the same way (src/api/dns/server.ts, `udpIo: 'auto'`).
  const udpIo = loadUdpBatch() !== undefined ? 'in batches' : `through node:dgram: ${loadUdpBatchError()}`;

  const meshd = await startMeshd();
  const dnsmasq = await startDnsmasq();
  console.log(
    `meshd DNS ${MESHD_HOST}:${meshd.port} (pid ${meshd.pid}, UDP ${udpIo}), dnsmasq ${DNSMASQ_HOST}:${dnsmasq.port}`,
  );

  const results: Record<'meshd' | 'dnsmasq', PerfResult> = {} as never;
  for (const [sys, host, port, pid] of [
    ['meshd', MESHD_HOST, meshd.port, meshd.pid],
    ['dnsmasq', DNSMASQ_HOST, dnsmasq.port, dnsmasq.pid],
  ] as const) {
    await dnsperf(host, port, file, 2, false); // warm-up: JIT, caches
    // Throughput without -v: reading a line per query here costs CPU that the server under test
    // would otherwise have on this 2-core machine. Then a run with -v for the latency percentile.
    const throughput = await dnsperf(host, port, file, SECONDS, false);
    const latency = await dnsperf(host, port, file, SECONDS, true);
    // Throughput on a 2-vCPU VM swings run to run (a busy server makes dnsperf sleep, and every
    // wake-up costs both); CPU per query at a fixed load the server keeps up with is steadier.
    const cpu0 = cpuSeconds(pid);
    const fixed = await dnsperf(host, port, file, SECONDS, false, RATE);
    const cpuUsPerQuery = ((cpuSeconds(pid) - cpu0) * 1e6) / fixed.completed;
    results[sys] = { ...throughput, p99Ms: latency.p99Ms, nonNoError: latency.nonNoError, cpuUsPerQuery };
    console.log(`${sys}: ${JSON.stringify(results[sys])} (with -v: ${Math.round(latency.qps)} queries/s)`);
  }
  await cleanup();

  const m = results.meshd;
  const d = results.dnsmasq;
  const row = (name: string, r: PerfResult) => [
    name,
    f0(r.qps),
    f3(r.meanMs),
    f3(r.p99Ms),
    String(r.lost),
    String(r.nonNoError),
    f1(r.cpuUsPerQuery ?? Number.NaN),
  ];
  const table = markdownTable(
    ['server', 'queries/s', 'mean ms', 'p99 ms', 'lost', 'not NOERROR', `CPU µs/query at ${RATE}/s`],
    [
      row('meshd', m),
      row('dnsmasq', d),
      [
        'meshd / dnsmasq',
        f2(m.qps / d.qps),
        f2(m.meanMs / d.meanMs),
        f2(m.p99Ms / d.p99Ms),
        '',
        '',
        f2((m.cpuUsPerQuery ?? Number.NaN) / (d.cpuUsPerQuery ?? Number.NaN)),
      ],
    ],
    1,
  );
  console.log(`\n${table}`);
  if (!values['no-record']) {
    appendResults(
      [
        `## bench:dns — ${today()}`,
        '',
        wrapProse(
          `${machineLine()}. dnsperf ${SECONDS} s per server (after 2 s of warm-up), \`${NAME}\` A and SRV ` +
            `alternately with EDNS0, 1 client, 100 queries outstanding: meshd agent -dev (answers from its ` +
            `agent cache, ${INSTANCES} passing instances; UDP ${udpIo}) vs dnsmasq serving the same records. Queries/s ` +
            `and mean from a run without -v, p99 from a second run with -v (per-query latencies); CPU per ` +
            `query (user + system of the server process) from a third run at a fixed ${RATE} queries/s.`,
        ),
        '',
        table,
        '',
      ].join('\n'),
    );
  }
}

main().catch(async (err: unknown) => {
  console.error(`bench:dns failed: ${(err as Error).message}`);
  await cleanup();
  process.exitCode = 1;
});
