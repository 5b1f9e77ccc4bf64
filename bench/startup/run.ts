/**
 * `npm run bench:startup [-- --runs 10 --no-record]`
 *
 * How long a fresh single-server store takes from spawn to its first acknowledged write, against
 * etcd on the same machine in the same run (issue 3: `meshd agent -dev` "up in < 1 s"):
 * - meshd bundled: `node bin/meshd.js agent -dev` on 127.0.0.1 with free HTTP, server and gossip
 *   ports (DNS and gRPC off), so with the dependency bundle of `npm ci` (src/cli/vendor.ts).
 * - meshd unbundled: the same with `MESHD_VENDOR=0`: every package resolved from node_modules.
 * - etcd (Debian's etcd-server, installed with apt-get when missing): one fresh member, a new data
 *   dir on disk every run, on 127.0.0.31 with free client and peer ports.
 * The clock starts right before `spawn` and stops at the first `PUT /v1/kv/startup-probe` (meshd) or
 * `POST /v3/kv/put` (etcd) answered 200. A probe is one request on a new connection with a 250 ms
 * timeout, sent again ~5 ms after the previous one ended (refused, timed out or not 200). etcd
 * listens before it has a leader and holds a request until it can answer it; a probe that times
 * out meanwhile is replaced, and the replacement is answered when etcd is ready (checked against
 * etcd's log: within ~10 ms of "published local member"), so the timeout adds nothing to the
 * measured time. Then meshd gets SIGINT, etcd SIGTERM, and the bench waits for the exit. Peak
 * RSS is VmHWM from /proc/<pid>/status, read after the first 200 and before the signal.
 *
 * Each system has one untimed warm-up start first (it fills Node's compile cache and the page
 * cache), then `runs` timed starts, the systems taking turns in a rotating order so that a drift
 * of the machine hits all of them. meshd runs with MESHD_VENDOR_DEBUG=1, which makes it say on
 * stderr whether the bundle is in use: a "bundled" start that did not use it is not counted as
 * one (the system is reported as not measured, with meshd's reason). The table is printed and,
 * unless --no-record, appended to bench/RESULTS.md.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePorts } from '../../test/support/agent-process.ts';
import { ensureEtcd } from '../kv/etcd.ts';
import {
  appendResults,
  cleanup,
  installCleanup,
  machineLine,
  markdownTable,
  sleep,
  today,
  trackChild,
  trackDir,
} from '../support/host.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    record: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1)
  throw new Error(`--runs must be a positive integer, got ${values.runs}`);

const MESHD = fileURLToPath(new URL('../../bin/meshd.js', import.meta.url));
const MESHD_HOST = '127.0.0.1';
const ETCD_HOST = '127.0.0.31';
const POLL_MS = 5;
const PROBE_TIMEOUT_MS = 250;
/** A start that has not answered by then is a failure, not a slow sample. */
const START_DEADLINE_MS = 30_000;
/** After the signal: a process still running by then is killed and the run reported. */
const STOP_DEADLINE_MS = 10_000;

installCleanup();
const root = mkdtempSync(join(tmpdir(), 'meshd-bench-startup-'));
trackDir(root);
const machine = machineLine();
console.log(`machine: ${machine}; etcd data in ${root}`);

const etcdState = ensureEtcd();
if ('missing' in etcdState) console.log(`\n*** ${etcdState.missing}\n`);
else console.log(`etcd ${etcdState.version}`);

// ---------------------------------------------------------------------------------------------
// One start

interface Run {
  /** Spawn to the first write answered 200. */
  readyMs: number;
  /** VmHWM of the process when it was ready, MiB. */
  peakRssMiB: number;
  /** Signal to exit. */
  stopMs: number;
  probes: number;
  /** Probes abandoned at PROBE_TIMEOUT_MS (each may have delayed the answer by up to that). */
  timeouts: number;
  /** meshd only: what it said about the dependency bundle (MESHD_VENDOR_DEBUG). */
  vendor?: string;
  exit: string;
}

interface Probe {
  port: number;
  host: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body: string;
}

/** One request on a new connection: its status, or why there was none. */
function probe(p: Probe): Promise<number | 'timeout' | 'error'> {
  return new Promise((resolve) => {
    const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS);
    const req = request(
      {
        host: p.host,
        port: p.port,
        method: p.method,
        path: p.path,
        headers: p.headers,
        agent: false,
        signal: timeout,
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', () => resolve('error'));
      },
    );
    req.once('error', () => resolve(timeout.aborted ? 'timeout' : 'error'));
    req.end(p.body);
  });
}

/**
 * Probes one at a time, ~POLL_MS apart, until one is answered 200. A process that listens before
 * it can write holds the request and answers it when it can (etcd does); a probe that times out
 * first is replaced ~POLL_MS later, and the replacement is answered then, so the timeout does not
 * add to the measured time.
 */
async function firstOk(
  what: string,
  child: ChildProcess,
  target: Probe,
  t0: number,
  logs: () => string,
): Promise<{ readyMs: number; probes: number; timeouts: number }> {
  let probes = 0;
  let timeouts = 0;
  let last: number | string = 'none';
  for (;;) {
    if (!running(child))
      throw new Error(
        `${what} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${logs()}`,
      );
    const r = await probe(target);
    probes++;
    if (r === 200) return { readyMs: performance.now() - t0, probes, timeouts };
    if (r === 'timeout') timeouts++;
    last = r;
    if (performance.now() - t0 > START_DEADLINE_MS) {
      child.kill('SIGKILL');
      throw new Error(`${what}: no 200 within ${START_DEADLINE_MS} ms (last probe: ${last}):\n${logs()}`);
    }
    await sleep(POLL_MS);
  }
}

function vmHwmMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

const running = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null;

/**
 * Spawns, probes until the first 200, reads VmHWM, signals and waits for the exit. `t0` is taken
 * right before the spawn.
 */
async function timeStart(
  what: string,
  launch: () => ChildProcess,
  target: Probe,
  signal: NodeJS.Signals,
): Promise<Run & { logs: string; stderrHead: string }> {
  const t0 = performance.now();
  const child = launch();
  trackChild(child);
  const pid = child.pid as number;
  let logs = '';
  let stderrHead = '';
  child.stdout?.on('data', (d: Buffer) => {
    logs = (logs + d.toString()).slice(-8000);
  });
  child.stderr?.on('data', (d: Buffer) => {
    if (stderrHead.length < 4000) stderrHead += d.toString();
    logs = (logs + d.toString()).slice(-8000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const { readyMs, probes, timeouts } = await firstOk(what, child, target, t0, () => logs);
  const peakRssMiB = vmHwmMiB(pid);
  const s0 = performance.now();
  process.kill(pid, signal);
  let killed = false;
  const deadline = setTimeout(() => {
    if (running(child)) {
      killed = true;
      process.kill(pid, 'SIGKILL');
    }
  }, STOP_DEADLINE_MS);
  await exited;
  clearTimeout(deadline);
  const stopMs = performance.now() - s0;
  const exit = killed
    ? `SIGKILL after ${STOP_DEADLINE_MS} ms`
    : child.exitCode !== null
      ? `exit ${child.exitCode}`
      : `${child.signalCode}`;
  return { readyMs, peakRssMiB, stopMs, probes, timeouts, exit, logs, stderrHead };
}

// ---------------------------------------------------------------------------------------------
// The systems

interface System {
  name: string;
  start: () => Promise<Run>;
  /** How a clean stop ends: meshd exits 0; etcd handles SIGTERM, then dies of it as Go does. */
  cleanExit: string;
}

const VENDOR_LINE = /^meshd: dependency bundle (.*)$/m;

/**
 * What a start said about the bundle (MESHD_VENDOR_DEBUG): "in use", "not used: <why>", or a
 * MeshdVendorWarning (a package the bundle lacks, loaded from node_modules beside it).
 */
function vendorState(stderr: string): string {
  const line = VENDOR_LINE.exec(stderr)?.[1];
  if (line === undefined) return 'no MESHD_VENDOR_DEBUG line';
  const warning = /MeshdVendorWarning: (.*)$/m.exec(stderr)?.[1];
  if (warning !== undefined) return `in use but incomplete: ${warning}`;
  return line.startsWith('in use') ? 'in use' : line;
}

function meshd(name: string, bundled: boolean): System {
  return {
    name,
    cleanExit: 'exit 0',
    async start() {
      const [http, server, serf] = await freePorts(3, MESHD_HOST);
      const env: NodeJS.ProcessEnv = { ...process.env, MESHD_VENDOR_DEBUG: '1' };
      if (bundled) delete env.MESHD_VENDOR;
      else env.MESHD_VENDOR = '0';
      const run = await timeStart(
        name,
        () =>
          spawn(
            process.execPath,
            [
              MESHD,
              'agent',
              '-dev',
              `-http-port=${http}`,
              `-server-port=${server}`,
              `-serf-lan-port=${serf}`,
              '-dns-port=-1',
              '-grpc-port=-1',
            ],
            { stdio: ['ignore', 'pipe', 'pipe'], env },
          ),
        { host: MESHD_HOST, port: http, method: 'PUT', path: '/v1/kv/startup-probe', body: 'x' },
        'SIGINT',
      );
      const vendor = vendorState(run.stderrHead);
      return { ...run, vendor };
    },
  };
}

function etcd(): System {
  return {
    name: 'etcd',
    cleanExit: 'SIGTERM',
    async start() {
      const [client, peer] = await freePorts(2, ETCD_HOST);
      const dir = mkdtempSync(join(root, 'etcd-'));
      const url = `http://${ETCD_HOST}:${client}`;
      const peerUrl = `http://${ETCD_HOST}:${peer}`;
      try {
        return await timeStart(
          'etcd',
          () =>
            spawn(
              'etcd',
              [
                '--name=s1',
                `--data-dir=${dir}`,
                `--listen-client-urls=${url}`,
                `--advertise-client-urls=${url}`,
                `--listen-peer-urls=${peerUrl}`,
                `--initial-advertise-peer-urls=${peerUrl}`,
                `--initial-cluster=s1=${peerUrl}`,
                '--initial-cluster-state=new',
                '--initial-cluster-token=meshd-bench-startup',
                '--logger=zap',
                '--log-outputs=stderr',
                '--log-level=warn',
              ],
              { stdio: ['ignore', 'pipe', 'pipe'] },
            ),
          {
            host: ETCD_HOST,
            port: client,
            method: 'POST',
            path: '/v3/kv/put',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              key: Buffer.from('startup-probe').toString('base64'),
              value: Buffer.from('x').toString('base64'),
            }),
          },
          'SIGTERM',
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The run

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : '—');

const candidates: System[] = [meshd('meshd bundled', true), meshd('meshd unbundled', false)];
if (!('missing' in etcdState)) candidates.push(etcd());

const notes: string[] = [];
const systems: System[] = [];
try {
  for (const s of candidates) {
    const w = await s.start();
    const vendor = w.vendor === undefined ? '' : `, bundle ${w.vendor}`;
    console.log(`warm-up ${s.name}: ${fmt(w.readyMs)} ms (untimed${vendor})`);
    if (s.name === 'meshd bundled' && w.vendor !== 'in use') {
      const note = `meshd bundled: not measured: its warm-up start said the dependency bundle was ${w.vendor}`;
      console.log(`\n*** ${note}\n`);
      notes.push(`${note}.`);
      continue;
    }
    systems.push(s);
  }

  const results = new Map<string, Run[]>(systems.map((s) => [s.name, []]));
  for (let i = 0; i < runs; i++) {
    const order = systems.map((_, j) => systems[(i + j) % systems.length]);
    for (const s of order) {
      const r = await s.start();
      if (s.name === 'meshd bundled' && r.vendor !== 'in use')
        throw new Error(`meshd bundled, run ${i + 1}: the bundle stopped being used (${r.vendor})`);
      (results.get(s.name) as Run[]).push(r);
      console.log(
        `run ${i + 1} ${s.name}: ${fmt(r.readyMs, 1)} ms, peak RSS ${fmt(r.peakRssMiB, 1)} MiB, ` +
          `${r.probes} probes (${r.timeouts} timed out), stopped in ${fmt(r.stopMs)} ms (${r.exit})`,
      );
    }
  }

  const etcdRuns = results.get('etcd');
  const etcdMedian = etcdRuns ? median(etcdRuns.map((r) => r.readyMs)) : Number.NaN;
  const rows = systems.map((s) => {
    const rs = results.get(s.name) as Run[];
    const ms = rs.map((r) => r.readyMs);
    const rss = rs.map((r) => r.peakRssMiB);
    return [
      s.name,
      fmt(Math.min(...ms)),
      fmt(median(ms)),
      fmt(Math.max(...ms)),
      Number.isFinite(etcdMedian) ? `${(median(ms) / etcdMedian).toFixed(2)}x` : '—',
      `${fmt(median(rss), 1)} / ${fmt(Math.max(...rss), 1)}`,
      fmt(median(rs.map((r) => r.stopMs))),
    ];
  });
  const table = markdownTable(
    [
      'system',
      'min ms',
      'median ms',
      'max ms',
      'median / etcd',
      'peak RSS MiB (median / max)',
      'exit after signal, median ms',
    ],
    rows,
    1,
  );
  console.log(`\nSpawn to first acknowledged write, ${runs} runs each after one warm-up\n${table}`);

  for (const s of systems) {
    const rs = results.get(s.name) as Run[];
    const probes = rs.reduce((n, r) => n + r.probes, 0);
    const timeouts = rs.reduce((n, r) => n + r.timeouts, 0);
    console.log(
      `${s.name}: ${probes} probes, ${timeouts} of them timed out (held by a process not ready yet)`,
    );
    const exits = [...new Set(rs.map((r) => r.exit))];
    if (exits.length !== 1 || exits[0] !== s.cleanExit)
      notes.push(`${s.name}: exits after the signal: ${exits.join(', ')}.`);
  }
  for (const n of notes) console.log(n);

  if (values.record) {
    const etcdLine =
      'missing' in etcdState
        ? `etcd: not measured: ${etcdState.missing}`
        : `etcd ${etcdState.version} (Debian etcd-server): one member on ${ETCD_HOST}, a new data dir in ` +
          `\`${tmpdir()}\` every run, from spawn to the first \`POST /v3/kv/put\` answered 200, then SIGTERM. ` +
          'Default timing flags: a fresh single member elects itself after a random 1 to 10 heartbeats ' +
          '(100 ms each), which spreads its times; meshd -dev keeps everything in memory, etcd writes ' +
          'its data dir.';
    appendResults(
      [
        `## bench:startup — ${today()}`,
        '',
        `Machine: ${machine}.`,
        `Command: \`npm run bench:startup\` (--runs ${runs}). meshd: \`node bin/meshd.js agent -dev\` on ` +
          `${MESHD_HOST} (free HTTP/server/gossip ports, -dns-port=-1 -grpc-port=-1), from spawn to the ` +
          'first `PUT /v1/kv/startup-probe` answered 200, then SIGINT; "unbundled" is `MESHD_VENDOR=0`, ' +
          '"bundled" is counted only when meshd says (MESHD_VENDOR_DEBUG=1) that the bundle is in use. ' +
          etcdLine +
          ` Probes: one request on a new connection at a time, ~${POLL_MS} ms apart, ${PROBE_TIMEOUT_MS} ms ` +
          'timeout (etcd holds a request until it has a leader and answers it then). ' +
          'One untimed warm-up start per system (compile cache, page cache), then the systems take ' +
          'turns in a rotating order. Peak RSS: VmHWM when the write was acknowledged.',
        '',
        table,
        '',
        ...(notes.length > 0 ? [...notes.map((n) => `- ${n}`), ''] : []),
      ].join('\n'),
    );
    console.log('\nappended to bench/RESULTS.md');
  }
} finally {
  await cleanup();
}
