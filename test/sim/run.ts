/**
 * Runs the Raft simulation over many seeds: `npm run test:sim -- --seeds 100000 [--from N] [--jobs 2]`,
 * or replays one with its trace: `npm run test:sim -- --seed 1234 --trace`.
 */
import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { RaftSim, replayCommand } from './raft-sim.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    from: { type: 'string', default: '1' },
    seed: { type: 'string' },
    trace: { type: 'boolean', default: false },
    jobs: { type: 'string', default: String(availableParallelism()) },
    worker: { type: 'boolean', default: false },
  },
});

function runOne(seed: number, trace: boolean): string | null {
  const lines: string[] = [];
  try {
    new RaftSim(seed, { trace: trace ? (l) => lines.push(l) : undefined }).run();
    if (trace) console.log(lines.join('\n'));
    return null;
  } catch (err) {
    if (trace) console.log(lines.join('\n'));
    return `seed ${seed}: ${(err as Error).stack ?? err}`;
  }
}

if (values.seed !== undefined) {
  const failure = runOne(Number(values.seed), values.trace);
  if (failure) {
    console.error(failure);
    process.exit(1);
  }
  console.log(`seed ${values.seed}: ok`);
} else if (values.worker) {
  // A worker runs every jobs-th seed of the range and reports failures to its parent.
  const from = Number(values.from);
  const count = Number(values.seeds);
  const jobs = Number(values.jobs);
  const slot = Number(process.env.MESHD_SIM_SLOT);
  for (let seed = from + slot; seed < from + count; seed += jobs) {
    const failure = runOne(seed, false);
    process.send!({ seed, failure });
  }
} else {
  const from = Number(values.from);
  const count = Number(values.seeds);
  const jobs = Math.max(1, Number(values.jobs));
  const started = Date.now();
  const failures: string[] = [];
  let done = 0;
  await Promise.all(
    Array.from({ length: jobs }, (_, slot) => {
      const child = fork(
        new URL(import.meta.url).pathname,
        ['--worker', '--from', String(from), '--seeds', String(count), '--jobs', String(jobs)],
        {
          env: { ...process.env, MESHD_SIM_SLOT: String(slot) },
        },
      );
      child.on('message', (msg: { seed: number; failure: string | null }) => {
        done++;
        if (msg.failure) {
          failures.push(msg.failure);
          console.error(`${msg.failure}\n  replay: ${replayCommand(msg.seed)}`);
        }
        if (done % 1000 === 0)
          console.log(
            `${done}/${count} seeds, ${failures.length} failed, ${Math.round((Date.now() - started) / 1000)} s`,
          );
      });
      return new Promise<void>((resolve) => child.on('exit', () => resolve()));
    }),
  );
  console.log(
    `${done - failures.length} passed, ${failures.length} failed (seeds ${from}..${from + count - 1}, ${Math.round((Date.now() - started) / 1000)} s)`,
  );
  if (failures.length > 0 || done !== count) process.exit(1);
}
