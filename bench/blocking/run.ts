/**
 * `npm run bench:blocking [-- --watchers 10000 --wakes 1000 --seconds 10 --rates 10,100 --no-record]`
 *
 * What parked blocking queries cost one `meshd agent -server -bootstrap` (data dir on disk, on
 * 127.0.0.1):
 * 1. Creates `watchers` keys `watch/<i>` and reads their ModifyIndex.
 * 2. Baseline, nothing parked: server CPU over `seconds` idle, then over `seconds` of writes at
 *    `rate`/s to the unwatched key `unwatched`.
 * 3. Parks one `GET /v1/kv/watch/<i>?index=<ModifyIndex>&wait=5m` per key, each on its own
 *    connection, and waits until the server holds them all.
 * 4. The same two CPU windows with everything parked (target: under 5% of a core while writing to
 *    the unwatched key; no watcher may wake).
 * 5. Writes `wakes` watched keys one at a time and times each watcher's answer against the write's
 *    acknowledgement (target: p99 under 50 ms).
 * Server RSS (VmRSS) before parking, parked, after the wakes, and after every watcher hung up.
 * CPU is user + system time of the server process from /proc/<pid>/stat, in % of one core.
 */

import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { waitFor } from '../../test/support/agent-process.ts';
import {
  appendResults,
  cleanup,
  cpuSeconds,
  installCleanup,
  machineLine,
  markdownTable,
  percentile,
  rssMiB,
  sleep,
  today,
  trackDir,
} from '../support/host.ts';
import { startMeshdServers } from '../support/meshd.ts';

const { values } = parseArgs({
  options: {
    watchers: { type: 'string', default: '10000' },
    wakes: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    rates: { type: 'string', default: '10,100' },
    record: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const WATCHERS = Number(values.watchers);
const WAKES = Math.min(Number(values.wakes), WATCHERS);
const SECONDS = Number(values.seconds);
/**
 * Write rates to the unwatched key. The "a write to an unwatched key keeps the server's CPU
 * under 5%" is read at a steady 10/s; 100/s shows what the writes themselves cost.
 */
const RATES = values.rates.split(',').map(Number);
if (RATES.some((r) => !(r > 0)))
  throw new Error(`--rates: positive numbers, comma-separated: ${values.rates}`);
const VALUE = 'v'.repeat(100);

function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}
const limit = openFilesLimit();
if (limit < WATCHERS + 1000) {
  console.error(
    `open files limit is ${limit}: ${WATCHERS} parked queries need a socket each in this process and in ` +
      `the server. Raise it first, e.g. \`ulimit -n ${Math.max(65536, WATCHERS * 2)}\` in this shell.`,
  );
  process.exit(1);
}

installCleanup();
const root = mkdtempSync(join(tmpdir(), 'meshd-bench-blocking-'));
trackDir(root);
const machine = machineLine();
console.log(`machine: ${machine}; data in ${root}`);

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** performance.now() when the whole response had arrived. */
  at: number;
}

function call(agent: Agent, base: URL, method: string, path: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: base.hostname, port: base.port, method, path, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          headers: res.headers,
          at: performance.now(),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function put(agent: Agent, base: URL, key: string): Promise<Reply> {
  const r = await call(agent, base, 'PUT', `/v1/kv/${key}`, VALUE);
  if (r.status !== 200 || r.body.trim() !== 'true') throw new Error(`PUT ${key}: ${r.status} ${r.body}`);
  return r;
}

async function parkedGauge(agent: Agent, base: URL): Promise<number | undefined> {
  const r = await call(agent, base, 'GET', '/v1/agent/metrics');
  if (r.status !== 200) return undefined;
  const m = JSON.parse(r.body) as { Gauges?: { Name: string; Value: number }[] };
  return m.Gauges?.find((g) => g.Name === 'consul.rpc.queries_blocking')?.Value;
}

/** Server CPU in % of one core over `seconds`, while `during` runs (if given). */
async function cpuPercent(pid: number, seconds: number, during?: (until: number) => Promise<void>) {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  if (during) await during(until);
  const left = until - performance.now();
  if (left > 0) await sleep(left);
  const c1 = cpuSeconds(pid);
  return ((c1 - c0) / ((performance.now() - t0) / 1000)) * 100;
}

/** Writes `unwatched` at `rate`/s (open loop, one timer slot per write) until `until`. */
function unwatchedWriter(agent: Agent, base: URL, rate: number, counts: { acked: number; failed: number }) {
  return async (until: number): Promise<void> => {
    const inflight: Promise<void>[] = [];
    const start = performance.now();
    for (let n = 0; ; n++) {
      const at = start + (n * 1000) / rate;
      if (at >= until) break;
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      inflight.push(
        put(agent, base, 'unwatched').then(
          () => {
            counts.acked++;
          },
          () => {
            counts.failed++;
          },
        ),
      );
    }
    await Promise.all(inflight);
  };
}

/** Waits (up to 30 s) until the server's CPU use stays under 3% of a core for a second. */
async function settle(pid: number): Promise<void> {
  const deadline = performance.now() + 30_000;
  let last = Number.NaN;
  while (performance.now() < deadline) {
    last = await cpuPercent(pid, 1);
    if (last < 3) return;
  }
  console.log(`  (server still at ${last.toFixed(1)}% CPU after 30 s; measuring anyway)`);
}

const fmt = (n: number, d = 1): string => (Number.isFinite(n) ? n.toFixed(d) : '—');

try {
  const [server] = await startMeshdServers(['127.0.0.1'], root);
  const pid = server.pid;
  const base = new URL(server.http);
  const ctl = new Agent({ keepAlive: true, maxSockets: 64 });
  console.log(`meshd server pid ${pid} at ${server.http}`);
  /** Server CPU at each write rate in turn, after the idle figure already measured. */
  const cpuAtRates = async (label: string, idle: number) => {
    const out: { cpu: number; acked: number }[] = [];
    for (const rate of RATES) {
      const counts = { acked: 0, failed: 0 };
      const cpu = await cpuPercent(pid, SECONDS, unwatchedWriter(ctl, base, rate, counts));
      if (counts.failed > 0) throw new Error(`${counts.failed} writes to the unwatched key failed`);
      out.push({ cpu, acked: counts.acked });
      console.log(
        `${label}: idle ${fmt(idle, 2)}% CPU, ${rate} writes/s to an unwatched key ${fmt(cpu, 2)}% (${counts.acked} acked)`,
      );
      await settle(pid);
    }
    return out;
  };

  // 1. The watched keys and their indexes.
  console.log(`creating ${WATCHERS} keys`);
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < WATCHERS) await put(ctl, base, `watch/${next++}`);
    }),
  );
  await put(ctl, base, 'unwatched');
  const list = await call(ctl, base, 'GET', '/v1/kv/watch/?recurse');
  const indexOf = new Map<string, number>();
  for (const e of JSON.parse(list.body) as { Key: string; ModifyIndex: number }[])
    indexOf.set(e.Key, e.ModifyIndex);
  if (indexOf.size !== WATCHERS) throw new Error(`expected ${WATCHERS} keys, listed ${indexOf.size}`);

  // 2. Baseline with nothing parked.
  await settle(pid);
  const rssBefore = rssMiB(pid);
  console.log(`RSS before parking: ${fmt(rssBefore)} MiB; measuring baseline CPU`);
  const idle0 = await cpuPercent(pid, SECONDS);
  const writes0 = await cpuAtRates('nothing parked', idle0);

  // 3. Park one query per key, each on its own connection.
  console.log(`parking ${WATCHERS} blocking queries`);
  const watchAgent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const answered = new Map<number, Reply>();
  const wokeAt = new Map<number, (r: Reply) => void>();
  let early = 0;
  let failed = 0;
  const parkStart = performance.now();
  const BATCH = 500;
  for (let from = 0; from < WATCHERS; from += BATCH) {
    const sent: Promise<void>[] = [];
    for (let i = from; i < Math.min(WATCHERS, from + BATCH); i++) {
      const key = `watch/${i}`;
      const path = `/v1/kv/${key}?index=${indexOf.get(key)}&wait=5m`;
      const req = request({ host: base.hostname, port: base.port, path, agent: watchAgent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const r: Reply = {
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            headers: res.headers,
            at: performance.now(),
          };
          answered.set(i, r);
          const waiter = wokeAt.get(i);
          if (waiter) waiter(r);
          else early++;
        });
      });
      req.on('error', () => {
        failed++;
      });
      sent.push(new Promise((resolve) => req.once('finish', () => resolve())));
      req.end();
    }
    await Promise.all(sent);
  }
  const gauge = await parkedGauge(ctl, base).catch(() => undefined);
  if (gauge !== undefined) {
    await waitFor(
      `${WATCHERS} queries parked on the server`,
      async () => ((await parkedGauge(ctl, base)) ?? 0) >= WATCHERS,
      120_000,
      200,
    );
  }
  await settle(pid);
  const parkSeconds = (performance.now() - parkStart) / 1000;
  const parkedNow = await parkedGauge(ctl, base).catch(() => undefined);
  console.log(
    `parked in ${fmt(parkSeconds)} s (server gauge consul.rpc.queries_blocking: ${parkedNow ?? 'not exported'}; ` +
      `answered early: ${early}, request errors: ${failed})`,
  );
  if (early > 0 || failed > 0) throw new Error(`${early} watchers answered early, ${failed} failed to park`);
  const rssParked = rssMiB(pid);

  // 4. CPU with everything parked.
  const idle1 = await cpuPercent(pid, SECONDS);
  const writes1 = await cpuAtRates(`${WATCHERS} parked`, idle1);
  const spurious = early;
  console.log(
    `${WATCHERS} parked: watchers woken by the unwatched writes: ${spurious}; RSS ${fmt(rssParked)} MiB`,
  );

  // 5. Wake latency, one watched key at a time.
  console.log(`waking ${WAKES} watchers one at a time`);
  const afterAck: number[] = [];
  const afterStart: number[] = [];
  let beforeAck = 0;
  let wrongIndex = 0;
  for (let i = 0; i < WAKES; i++) {
    const woke = new Promise<Reply>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`watcher ${i} did not wake within 10 s`)), 10_000);
      wokeAt.set(i, (r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
    const t0 = performance.now();
    const ack = await put(ctl, base, `watch/${i}`);
    const w = await woke;
    if (w.status !== 200 || Number(w.headers['x-consul-index']) <= (indexOf.get(`watch/${i}`) ?? 0))
      wrongIndex++;
    if (w.at < ack.at) beforeAck++;
    afterAck.push(Math.max(0, w.at - ack.at));
    afterStart.push(w.at - t0);
  }
  const sortedAck = Float64Array.from(afterAck).sort();
  const sortedStart = Float64Array.from(afterStart).sort();
  const p50 = percentile(sortedAck, 50);
  const p99 = percentile(sortedAck, 99);
  const rssWoken = rssMiB(pid);
  console.log(
    `wake after ack: p50 ${fmt(p50, 2)} ms, p99 ${fmt(p99, 2)} ms, max ${fmt(sortedAck[sortedAck.length - 1], 2)} ms ` +
      `(${beforeAck} answered before the write's ack); write start to wake p50 ${fmt(percentile(sortedStart, 50), 2)} ` +
      `p99 ${fmt(percentile(sortedStart, 99), 2)} ms; bad answers ${wrongIndex}`,
  );

  // Everyone else hangs up; the server should let go of them.
  watchAgent.destroy();
  if (gauge !== undefined)
    await waitFor(
      'the server to drop the hung-up queries',
      async () => (await parkedGauge(ctl, base)) === 0,
      30_000,
    );
  await settle(pid);
  const rssAfter = rssMiB(pid);
  ctl.destroy();

  const cpuTable = markdownTable(
    [
      'parked queries',
      'idle CPU %',
      ...RATES.map((r) => `CPU % at ${r} unwatched writes/s (acked)`),
      'watchers woken',
    ],
    [
      ['0', fmt(idle0, 2), ...writes0.map((w) => `${fmt(w.cpu, 2)} (${w.acked})`), '—'],
      [
        String(WATCHERS),
        fmt(idle1, 2),
        ...writes1.map((w) => `${fmt(w.cpu, 2)} (${w.acked})`),
        String(spurious),
      ],
    ],
  );
  const wakeTable = markdownTable(
    [
      'wakes',
      'ack → answer p50 ms',
      'p99 ms',
      'max ms',
      'answered before ack',
      'write start → answer p50 ms',
      'p99 ms',
    ],
    [
      [
        String(WAKES),
        fmt(p50, 2),
        fmt(p99, 2),
        fmt(sortedAck[sortedAck.length - 1], 2),
        String(beforeAck),
        fmt(percentile(sortedStart, 50), 2),
        fmt(percentile(sortedStart, 99), 2),
      ],
    ],
  );
  const rssTable = markdownTable(
    ['RSS MiB: before parking', `${WATCHERS} parked`, `after ${WAKES} wakes`, 'after all hung up'],
    [[fmt(rssBefore), fmt(rssParked), fmt(rssWoken), fmt(rssAfter)]],
  );
  console.log(`\n${cpuTable}\n\n${wakeTable}\n\n${rssTable}`);
  console.log(
    `\nparked in ${fmt(parkSeconds)} s; per parked query: ${fmt(((rssParked - rssBefore) * 1024) / WATCHERS, 2)} KiB`,
  );

  if (values.record) {
    appendResults(
      [
        `## bench:blocking — ${today()}`,
        '',
        `Machine: ${machine}. Data in \`${tmpdir()}\`.`,
        `Command: \`npm run bench:blocking\` (--watchers ${WATCHERS} --wakes ${WAKES} --seconds ${SECONDS} ` +
          `--rates ${RATES.join(',')}). One \`agent -server -bootstrap\` with a data dir on 127.0.0.1; ${WATCHERS} keys ` +
          '`watch/<i>`, one `GET /v1/kv/watch/<i>?index=<ModifyIndex>&wait=5m` parked per key on its own ' +
          `connection (parking took ${fmt(parkSeconds)} s). Server CPU is user + system time from ` +
          `/proc/<pid>/stat over ${SECONDS} s, in % of one core; the writes go to \`unwatched\` at ` +
          `${RATES.join(' and ')}/s, open loop. Wakes: ${WAKES} watched keys written one at a time; the answer is timed ` +
          "from the write's acknowledgement (clamped at 0 when the answer came first) and from the " +
          "write's start. RSS is VmRSS.",
        '',
        cpuTable,
        '',
        wakeTable,
        '',
        rssTable,
        '',
        `Per parked query: ${fmt(((rssParked - rssBefore) * 1024) / WATCHERS, 2)} KiB of server RSS. ` +
          `CPU attributable to the parked queries: ${fmt(idle1 - idle0, 2)} points idle, ` +
          RATES.map(
            (r, i) => `${fmt(writes1[i].cpu - writes0[i].cpu, 2)} points at ${r} unwatched writes/s`,
          ).join(', ') +
          '.',
        '',
      ].join('\n'),
    );
    console.log('\nappended to bench/RESULTS.md');
  }
} finally {
  await cleanup();
}
