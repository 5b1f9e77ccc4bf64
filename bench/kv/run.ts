/**
 * `npm run bench:kv [-- --duration 10 --writes 1,16,64 --rounds 3 --reads 16,64 --size 100 --no-record]`
 *
 * meshd's KV over HTTP against etcd's, on the same machine in the same run:
 * - 3 `meshd agent -server` processes on 127.0.0.1..3 (-bootstrap-expect=3, data dirs on disk) and
 *   3 etcd members on 127.0.0.11..13 (Debian's etcd-server, static --initial-cluster, data dirs on
 *   disk; installed with apt-get when missing, and skipped with a note when that fails).
 * - Writes: autocannon PUTs `size`-byte values to distinct keys (`/v1/kv/bench/<n>`) on the meshd
 *   leader, and `POST /v3/kv/put` on the etcd leader, at each `--writes` concurrency.
 * - Reads of 1,000 seeded keys: meshd `?consistent` and `?stale` against etcd's linearizable range
 *   (and, for like-for-like, `?stale` against etcd's serializable range), at each `--reads` level.
 * The two systems alternate level by level (and which goes first), so a drift of the shared disk
 * hits both; the raw fsync rate is measured next to each write level. Each write level runs
 * `--rounds` times, alternating which system goes first; the table gives each figure's median over
 * the rounds, and a second table every round's p99s: on a shared VM one 10 s sample of a p99 moves
 * by more than the difference it is meant to show. The tables are printed and, unless --no-record,
 * appended to bench/RESULTS.md.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { RequestParams } from 'autocannon';
import {
  appendResults,
  cleanup,
  installCleanup,
  machineLine,
  markdownTable,
  rawFsyncRate,
  today,
  trackDir,
} from '../support/host.ts';
import { type LoadResult, runLoad } from '../support/load.ts';
import { startMeshdServers } from '../support/meshd.ts';
import { b64, ensureEtcd, etcdCall, startEtcdCluster } from './etcd.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    writes: { type: 'string', default: '1,16,64' },
    rounds: { type: 'string', default: '3' },
    reads: { type: 'string', default: '16,64' },
    size: { type: 'string', default: '100' },
    record: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const seconds = Number(values.duration);
const writeLevels = values.writes.split(',').map(Number);
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
const readLevels = values.reads.split(',').map(Number);
const size = Number(values.size);
const READ_KEYS = 1000;
const MESHD_HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const ETCD_HOSTS = ['127.0.0.11', '127.0.0.12', '127.0.0.13'];

installCleanup();
const root = mkdtempSync(join(tmpdir(), 'meshd-bench-kv-'));
trackDir(root);
const machine = machineLine();
console.log(`machine: ${machine}; data in ${root}`);

const etcdState = ensureEtcd();
if ('missing' in etcdState) console.log(`\n*** ${etcdState.missing}\n`);
else console.log(`etcd ${etcdState.version}`);

const value = 'v'.repeat(size);
const valueB64 = b64(value);
const JSON_HEADERS = { 'content-type': 'application/json' };

function meshdPut(): () => RequestParams {
  let n = 0;
  return () => ({ method: 'PUT', path: `/v1/kv/bench/${n++}`, body: value });
}
function etcdPut(): () => RequestParams {
  let n = 0;
  return () => ({
    method: 'POST',
    path: '/v3/kv/put',
    headers: JSON_HEADERS,
    body: JSON.stringify({ key: b64(`bench/${n++}`), value: valueB64 }),
  });
}
function meshdGet(query: string): () => RequestParams {
  let n = 0;
  return () => ({ method: 'GET', path: `/v1/kv/read/${n++ % READ_KEYS}?${query}` });
}
function etcdRange(serializable: boolean): () => RequestParams {
  let n = 0;
  return () => ({
    method: 'POST',
    path: '/v3/kv/range',
    headers: JSON_HEADERS,
    body: JSON.stringify({ key: b64(`read/${n++ % READ_KEYS}`), serializable }),
  });
}

/** Runs `fn` for every item with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : '—');
const ratio = (a: LoadResult, b: LoadResult | undefined): string =>
  b && b.perSecond > 0 ? `${(a.perSecond / b.perSecond).toFixed(2)}x` : '—';
const cells = (r: LoadResult | undefined): string[] =>
  r ? [fmt(r.perSecond), fmt(r.p50Ms, 2), fmt(r.p99Ms, 2)] : ['—', '—', '—'];
const errs = (...rs: (LoadResult | undefined)[]): string =>
  rs
    .filter((r): r is LoadResult => r !== undefined)
    .map((r) => String(r.errors))
    .join(' / ');

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** One figure per field: each the median over the rounds (counts summed). */
function medianOf(rs: LoadResult[]): LoadResult {
  const statusCodes: Record<string, number> = {};
  for (const r of rs)
    for (const [code, n] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n;
  return {
    perSecond: median(rs.map((r) => r.perSecond)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    ok: rs.reduce((a, r) => a + r.ok, 0),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    statusCodes,
  };
}

function noteErrors(what: string, r: LoadResult): void {
  if (r.errors > 0)
    console.log(`  ${what}: ${r.errors} errors, status codes ${JSON.stringify(r.statusCodes)}`);
}

try {
  console.log('starting 3 meshd servers on 127.0.0.1..3');
  const meshd = await startMeshdServers(MESHD_HOSTS, root);
  const meshdLeader = meshd[0];
  console.log(`meshd leader ${meshdLeader.name} at ${meshdLeader.http}`);
  let etcdLeaderUrl: string | undefined;
  if (!('missing' in etcdState)) {
    console.log('starting 3 etcd members on 127.0.0.11..13');
    const etcd = await startEtcdCluster(ETCD_HOSTS, root);
    etcdLeaderUrl = etcd[0].url;
    console.log(`etcd leader ${etcd[0].name} at ${etcdLeaderUrl}`);
  }

  // Seed the keys the reads use; warm up connections, JIT and storage.
  console.log(`seeding ${READ_KEYS} keys and warming up`);
  const keys = Array.from({ length: READ_KEYS }, (_, i) => i);
  await pool(keys, 16, async (i) => {
    const r = await fetch(`${meshdLeader.http}/v1/kv/read/${i}`, { method: 'PUT', body: value });
    if (r.status !== 200) throw new Error(`seeding meshd read/${i}: ${r.status} ${await r.text()}`);
  });
  if (etcdLeaderUrl) {
    const url = etcdLeaderUrl;
    await pool(keys, 16, (i) => etcdCall(url, '/v3/kv/put', { key: b64(`read/${i}`), value: valueB64 }));
  }
  const warm = Math.min(2, seconds);
  await runLoad({ url: meshdLeader.http, connections: 16, seconds: warm, next: meshdGet('consistent') });
  await runLoad({ url: meshdLeader.http, connections: 16, seconds: warm, next: meshdPut() });
  if (etcdLeaderUrl) {
    await runLoad({ url: etcdLeaderUrl, connections: 16, seconds: warm, next: etcdRange(false) });
    await runLoad({ url: etcdLeaderUrl, connections: 16, seconds: warm, next: etcdPut() });
  }

  // Writes. Distinct keys across levels too: one counter per system for the whole run.
  const nextMeshdPut = meshdPut();
  const nextEtcdPut = etcdPut();
  const writeRows: string[][] = [];
  const roundRows: string[][] = [];
  for (const [i, c] of writeLevels.entries()) {
    const runMeshd = () => runLoad({ url: meshdLeader.http, connections: c, seconds, next: nextMeshdPut });
    const runEtcd = (url: string) => runLoad({ url, connections: c, seconds, next: nextEtcdPut });
    const ms: LoadResult[] = [];
    const es: LoadResult[] = [];
    const fsyncs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      fsyncs.push(rawFsyncRate(root, 2000));
      const meshdFirst = (i + round) % 2 === 0 || !etcdLeaderUrl;
      let m: LoadResult;
      let e: LoadResult | undefined;
      if (meshdFirst || !etcdLeaderUrl) {
        m = await runMeshd();
        if (etcdLeaderUrl) e = await runEtcd(etcdLeaderUrl);
      } else {
        e = await runEtcd(etcdLeaderUrl);
        m = await runMeshd();
      }
      noteErrors(`meshd writes @${c} round ${round + 1}`, m);
      if (e) noteErrors(`etcd writes @${c} round ${round + 1}`, e);
      ms.push(m);
      if (e) es.push(e);
      const rrow = [
        String(c),
        String(round + 1),
        meshdFirst ? 'meshd' : 'etcd',
        fmt(fsyncs[round]),
        ...cells(m),
        ...cells(e),
        ratio(m, e),
      ];
      console.log(`writes @${c} round ${round + 1}: ${rrow.join('  ')}`);
      roundRows.push(rrow);
    }
    const m = medianOf(ms);
    const e = es.length > 0 ? medianOf(es) : undefined;
    const met = es.filter((er, k) => ms[k].p99Ms <= er.p99Ms).length;
    const row = [
      String(c),
      fmt(median(fsyncs)),
      ...cells(m),
      ...cells(e),
      ratio(m, e),
      e ? `${met} of ${es.length}` : '—',
      errs(m, e),
    ];
    console.log(`writes @${c}: ${row.join('  ')}`);
    writeRows.push(row);
  }

  // Reads.
  const readRows: string[][] = [];
  for (const c of readLevels) {
    const m = (query: string) =>
      runLoad({ url: meshdLeader.http, connections: c, seconds, next: meshdGet(query) });
    const e = (serializable: boolean) =>
      etcdLeaderUrl
        ? runLoad({ url: etcdLeaderUrl, connections: c, seconds, next: etcdRange(serializable) })
        : Promise.resolve(undefined);
    const consistent = await m('consistent');
    const linearizable = await e(false);
    const stale = await m('stale');
    const serializable = await e(true);
    noteErrors(`meshd ?consistent @${c}`, consistent);
    noteErrors(`meshd ?stale @${c}`, stale);
    if (linearizable) noteErrors(`etcd linearizable @${c}`, linearizable);
    if (serializable) noteErrors(`etcd serializable @${c}`, serializable);
    const rows = [
      ['?consistent vs linearizable', String(c), ...cells(consistent), ...cells(linearizable)],
      ['?stale vs linearizable', String(c), ...cells(stale), ...cells(linearizable)],
      ['?stale vs serializable', String(c), ...cells(stale), ...cells(serializable)],
    ];
    rows[0].push(ratio(consistent, linearizable), errs(consistent, linearizable));
    rows[1].push(ratio(stale, linearizable), errs(stale, linearizable));
    rows[2].push(ratio(stale, serializable), errs(stale, serializable));
    for (const r of rows) console.log(`reads: ${r.join('  ')}`);
    readRows.push(...rows);
  }

  // What cells() gives for each system, meshd's then etcd's, and their ratio.
  const writeColumns = [
    'meshd writes/s',
    'p50 ms',
    'p99 ms',
    'etcd writes/s',
    'p50 ms',
    'p99 ms',
    'meshd / etcd',
  ];
  const writeTable = markdownTable(
    [
      'connections',
      'raw fsyncs/s',
      ...writeColumns,
      'rounds with meshd p99 ≤ etcd p99',
      'errors (meshd / etcd)',
    ],
    writeRows,
  );
  const roundTable = markdownTable(
    ['connections', 'round', 'first', 'raw fsyncs/s', ...writeColumns],
    roundRows,
  );
  const readTable = markdownTable(
    [
      'meshd vs etcd',
      'connections',
      'meshd reads/s',
      'p50 ms',
      'p99 ms',
      'etcd reads/s',
      'p50 ms',
      'p99 ms',
      'meshd / etcd',
      'errors (meshd / etcd)',
    ],
    readRows,
    1,
  );
  console.log(
    `\nWrites (${size}-byte values, distinct keys, ${seconds} s per level and round; medians of ${rounds} rounds)\n${writeTable}`,
  );
  console.log(`\nWrite rounds\n${roundTable}`);
  console.log(`\nReads (${READ_KEYS} keys, ${seconds} s per level)\n${readTable}`);

  if (values.record) {
    const etcdLine =
      'missing' in etcdState
        ? `etcd: not measured: ${etcdState.missing}`
        : `etcd ${etcdState.version} (Debian etcd-server): 3 members on 127.0.0.11..13, static --initial-cluster, ` +
          'data dirs on the same disk, v3 JSON gateway (`POST /v3/kv/put`, `POST /v3/kv/range`).';
    appendResults(
      [
        `## bench:kv — ${today()}`,
        '',
        `Machine: ${machine}. Data in \`${tmpdir()}\`.`,
        `Command: \`npm run bench:kv\` (--duration ${seconds} --writes ${writeLevels.join(',')} --rounds ${rounds} ` +
          `--reads ${readLevels.join(',')} --size ${size}). meshd: 3 \`agent -server\` processes on ` +
          "127.0.0.1..3 (-bootstrap-expect=3, data dirs on disk), load on the leader's HTTP port. " +
          etcdLine +
          ' Load: autocannon in the bench process, closed loop, one request in flight per connection; ' +
          'latency per 2xx response. The two systems alternate level by level; raw fsyncs/s is a ' +
          '4 KiB write + fsync loop measured for 2 s right before each write level and round. Each ' +
          'write level runs in rounds, alternating which system goes first; the first table gives ' +
          'medians over the rounds.',
        '',
        `Writes (PUT of ${size}-byte values, every key distinct; medians of ${rounds} rounds):`,
        '',
        writeTable,
        '',
        'Write rounds:',
        '',
        roundTable,
        '',
        `Reads (GET of ${READ_KEYS} seeded keys, round robin):`,
        '',
        readTable,
        '',
      ].join('\n'),
    );
    console.log('\nappended to bench/RESULTS.md');
  }
} finally {
  await cleanup();
}
