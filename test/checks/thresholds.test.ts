import test from 'ava';
import { IntervalRunner } from '../../src/agent/checks/interval-runner.ts';
import { StatusHandler, type Thresholds } from '../../src/agent/checks/status-handler.ts';
import type { CheckResult } from '../../src/agent/checks/types.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import { FakeClock, settle } from './support.ts';

/** Feeds raw statuses through a handler; returns what reached the state (status only). */
function feed(th: Partial<Thresholds>, raw: CheckResult['status'][]): string[] {
  const out: string[] = [];
  const h = new StatusHandler(
    { successBeforePassing: 0, failuresBeforeWarning: 0, failuresBeforeCritical: 0, ...th },
    (s) => out.push(s),
  );
  for (const s of raw) h.update(s, '');
  return out;
}

test('without thresholds every result is reported as is', (t) => {
  t.deepEqual(feed({}, ['passing', 'critical', 'warning', 'critical']), [
    'passing',
    'critical',
    'warning',
    'critical',
  ]);
});

test('the first result after (re)registration is reported at once, whatever the thresholds', (t) => {
  t.deepEqual(feed({ successBeforePassing: 3 }, ['passing']), ['passing']);
  t.deepEqual(feed({ failuresBeforeCritical: 3 }, ['critical']), ['critical']);
});

test('FailuresBeforeCritical holds back failures until that many in a row', (t) => {
  const raw: CheckResult['status'][] = ['passing', 'critical', 'critical', 'critical', 'critical'];
  t.deepEqual(feed({ failuresBeforeCritical: 3 }, raw), ['passing', 'critical', 'critical']);
  // A success in between starts the count again.
  const reset: CheckResult['status'][] = [
    'passing',
    'critical',
    'critical',
    'passing',
    'critical',
    'critical',
  ];
  t.deepEqual(feed({ failuresBeforeCritical: 3 }, reset), ['passing', 'passing']);
});

test('FailuresBeforeWarning reports warning before critical', (t) => {
  const raw: CheckResult['status'][] = ['passing', 'critical', 'critical', 'critical', 'critical'];
  t.deepEqual(feed({ failuresBeforeWarning: 1, failuresBeforeCritical: 3 }, raw), [
    'passing',
    'warning',
    'warning',
    'critical',
    'critical',
  ]);
});

test('SuccessBeforePassing holds back successes (warning counts as one) until that many in a row', (t) => {
  const raw: CheckResult['status'][] = ['critical', 'passing', 'warning', 'passing', 'passing'];
  t.deepEqual(feed({ successBeforePassing: 3 }, raw), ['critical', 'passing', 'passing']);
});

test('a runner waits a random fraction of the interval first, then an interval after each run', async (t) => {
  const clock = new FakeClock();
  const script: CheckResult['status'][] = [
    'passing',
    'critical',
    'critical',
    'critical',
    'passing',
    'passing',
  ];
  const runsAt: number[] = [];
  const reported: string[] = [];
  const handler = new StatusHandler(
    { successBeforePassing: 2, failuresBeforeWarning: 0, failuresBeforeCritical: 2 },
    (s) => reported.push(s),
  );
  const runner = new IntervalRunner(
    {
      probe: {
        run: async () => {
          runsAt.push(clock.now());
          return { status: script[runsAt.length - 1] ?? 'passing', output: '' };
        },
      },
      onResult: (s, o) => handler.update(s, o),
      clock,
      rng: () => 0.25,
      logger: silentLogger(),
    },
    { checkId: 'c', intervalMs: 10_000, timeoutMs: 5_000 },
  );
  const t0 = clock.now();
  runner.start();
  clock.advance(2_499);
  await settle();
  t.deepEqual(runsAt, [], 'not before its jittered start');
  for (let i = 0; i < script.length; i++) {
    clock.advance(i === 0 ? 1 : 10_000);
    await settle();
  }
  t.deepEqual(
    runsAt.map((at) => at - t0),
    [2_500, 12_500, 22_500, 32_500, 42_500, 52_500],
  );
  // passing (first: at once), critical held, critical (2nd failure), critical, passing held, passing.
  t.deepEqual(reported, ['passing', 'critical', 'critical', 'passing']);
  runner.stop();
  t.is(clock.pending, 0, 'stop leaves no timer behind');
});

test('a result arriving after stop is dropped', async (t) => {
  const clock = new FakeClock();
  let release: (r: CheckResult) => void = () => undefined;
  const reported: string[] = [];
  const runner = new IntervalRunner(
    {
      probe: { run: () => new Promise<CheckResult>((r) => (release = r)) },
      onResult: (s) => reported.push(s),
      clock,
      rng: () => 0,
      logger: silentLogger(),
    },
    { checkId: 'c', intervalMs: 1_000, timeoutMs: 60_000 },
  );
  runner.start();
  clock.advance(0);
  runner.stop();
  release({ status: 'passing', output: '' });
  await settle();
  t.deepEqual(reported, []);
  t.is(clock.pending, 0);
});
