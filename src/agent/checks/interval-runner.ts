/**
 * Runs one probe every interval (Consul's check loops): the first run waits a random fraction of
 * the interval (`lib.RandomStagger`), so a thousand checks registered together spread over one
 * interval instead of firing at once; each next run is scheduled an interval after the previous
 * one ended, so runs of one check never overlap. A single timer is pending per check at a time:
 * the interval timer between runs, the timeout timer during a run.
 *
 * The interval timers come from the injected {@link Clock} (tests advance it); the timeout is
 * real time, because it bounds real socket or process work.
 */

import type { Logger } from 'pino';
import type { Clock } from '../local/state.ts';
import type { ProbeHandle, Runner } from './types.ts';

export interface IntervalRunnerComponents {
  probe: ProbeHandle;
  /** Receives each run's raw result (the threshold handler sits behind it). */
  onResult: (status: 'passing' | 'warning' | 'critical', output: string) => void;
  clock: Clock;
  /** In [0, 1); picks the first run's delay. */
  rng: () => number;
  logger: Logger;
}

export interface IntervalRunnerInit {
  checkId: string;
  intervalMs: number;
  timeoutMs: number;
}

export class IntervalRunner implements Runner {
  readonly #c: IntervalRunnerComponents;
  readonly #init: IntervalRunnerInit;
  #timer: unknown;
  #run: AbortController | undefined;
  #stopped = false;

  constructor(components: IntervalRunnerComponents, init: IntervalRunnerInit) {
    this.#c = components;
    this.#init = init;
  }

  start(): void {
    const delay = Math.floor(this.#c.rng() * this.#init.intervalMs);
    this.#timer = this.#c.clock.setTimeout(() => this.#tick(), delay);
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) this.#c.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#run?.abort();
    this.#c.probe.close?.();
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    if (this.#stopped) return;
    const run = new AbortController();
    this.#run = run;
    const timeout = setTimeout(() => run.abort(), this.#init.timeoutMs);
    timeout.unref();
    let result: Awaited<ReturnType<ProbeHandle['run']>>;
    try {
      result = await this.#c.probe.run(run.signal);
    } catch (err) {
      // Probes resolve on failure; a throw is a bug, reported rather than killing the loop.
      this.#c.logger.error({ checkId: this.#init.checkId, err }, 'check probe threw');
      result = { status: 'critical', output: (err as Error).message };
    } finally {
      clearTimeout(timeout);
      this.#run = undefined;
    }
    if (this.#stopped) return;
    this.#c.onResult(result.status, result.output);
    if (this.#stopped) return;
    this.#timer = this.#c.clock.setTimeout(() => this.#tick(), this.#init.intervalMs);
  }
}
