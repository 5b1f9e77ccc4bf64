import test from 'ava';
import { Prng } from '../support/prng.ts';
import { RaftSim, replayCommand, swarmProfile } from './raft-sim.ts';

/** `MESHD_SEED=n` runs just that seed; `MESHD_SIM_SEEDS=n` changes how many run (default 500). */
function seeds(count: number): number[] {
  if (process.env.MESHD_SEED) return [Number(process.env.MESHD_SEED)];
  const n = Number(process.env.MESHD_SIM_SEEDS ?? count);
  const base = Number(process.env.MESHD_SIM_FROM ?? 1);
  return Array.from({ length: n }, (_, i) => base + i);
}

test('raft: swarm faults keep every invariant and the KV history linearizable (500 seeds)', (t) => {
  let ops = 0;
  let elections = 0;
  let crashes = 0;
  let snapshots = 0;
  let configChanges = 0;
  let early = 0;
  for (const seed of seeds(500)) {
    try {
      const r = new RaftSim(seed).run();
      ops += r.ops;
      elections += r.elections;
      crashes += r.crashes;
      snapshots += r.snapshotsSent;
      configChanges += r.configChanges;
      early += r.earlyApplied;
    } catch (err) {
      t.fail(`seed ${seed}: ${(err as Error).message}\n  replay: ${replayCommand(seed)}`);
      return;
    }
  }
  // The faults must really have happened, or the run proved little.
  t.true(ops > 0 && elections > 0 && crashes > 0 && snapshots > 0 && configChanges > 0 && early > 0);
  t.log(
    `${ops} client ops, ${elections} elections, ${crashes} crashes, ${snapshots} snapshots sent, ${configChanges} membership changes, ${early} entries applied early`,
  );
});

/** Seeds that once failed, kept as regressions (what each found is in the commit that fixed it). */
const REGRESSIONS = [
  4295, // election deadlock: voters with stale configurations refused candidates they did not list
  7879, // the same, and the most up-to-date server was demoted by an uncommitted entry
  13012,
  17426,
  23409,
];

test('raft: regression seeds', (t) => {
  for (const seed of REGRESSIONS) {
    t.notThrows(() => new RaftSim(seed).run(), `seed ${seed}; replay: ${replayCommand(seed)}`);
  }
});

test('raft: a seed replays exactly', (t) => {
  const traceOf = (seed: number) => {
    const lines: string[] = [];
    const r = new RaftSim(seed, { trace: (l) => lines.push(l) }).run();
    return { lines, r };
  };
  const a = traceOf(4242);
  const b = traceOf(4242);
  t.deepEqual(a.lines, b.lines);
  t.deepEqual(a.r, b.r);
  t.true(a.lines.length > 0);
});

test('raft: 3 and 5 voters under heavy loss, crashes and partitions', (t) => {
  for (const voters of [3, 5]) {
    for (let seed = 1; seed <= 20; seed++) {
      const profile = {
        ...swarmProfile(new Prng(seed)),
        voters,
        dropRate: 0.2,
        dupRate: 0.05,
        maxDelay: 30,
        partitionRate: 0.01,
        crashRate: 0.003,
        maxDown: voters === 3 ? 1 : 2,
      };
      t.notThrows(() => new RaftSim(seed, { profile }).run(), `voters=${voters} seed=${seed}`);
    }
  }
});
