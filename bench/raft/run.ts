/**
 * `npm run bench:raft [-- --seconds 10 --concurrency 1,16,64,256]`
 *
 * Three Raft server processes on 127.0.0.1..3 with real fsync and the test KV state machine.
 * Proposers run inside the leader process (so this measures Raft, not an HTTP stack) and put
 * ~100-byte values. Next to each level the same run measures the disk's raw fsync rate (4 KiB
 * write + fsync loop): the ceiling for a design that fsyncs once per proposal. Group commit should
 * beat it at 64+ proposers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RaftCluster } from '../../test/support/raft-cluster.ts';
import { rawFsyncRate } from '../support/host.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1,16,64,256' },
    size: { type: 'string', default: '100' },
  },
});
const seconds = Number(values.seconds);
const levels = values.concurrency.split(',').map(Number);
const size = Number(values.size);

const root = mkdtempSync(join(tmpdir(), 'meshd-bench-raft-'));
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, data in ${tmpdir()}`,
);

const cluster = await RaftCluster.start({ size: 3, dataRoot: root });
try {
  const leader = await cluster.leader();
  // Warm up connections, JIT and LevelDB before measuring.
  await cluster.request(leader, 'POST', '/bench', { concurrency: 16, seconds: 2, size }, 60_000);
  const rows: string[][] = [];
  for (const c of levels) {
    // Shared virtual disks swing by an order of magnitude within minutes: measure the raw fsync rate
    // right next to each level, while the cluster idles, and compare against that.
    const fsyncs = rawFsyncRate(root, 2000);
    const r = await cluster.request<{
      proposals: number;
      errors: number;
      perSecond: number;
      p50Ms: number;
      p99Ms: number;
    }>(leader, 'POST', '/bench', { concurrency: c, seconds, size }, (seconds + 60) * 1000);
    const b = r.body;
    rows.push([
      String(c),
      fsyncs.toFixed(0),
      b.perSecond.toFixed(0),
      b.p50Ms.toFixed(2),
      b.p99Ms.toFixed(2),
      (b.perSecond / fsyncs).toFixed(2),
      String(b.errors),
    ]);
  }
  const head = [
    'proposers',
    'raw fsyncs/s',
    'proposals/s',
    'p50 ms',
    'p99 ms',
    'proposals / fsyncs',
    'errors',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i])).join(' | ')} |`;
  console.log();
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
} finally {
  await cluster.stop();
  rmSync(root, { recursive: true, force: true });
}
