/**
 * A simulated clock for code that takes an injected {@link Clock} (the local state, anti-entropy):
 * timers fire only when the test advances time.
 */

import type { Clock } from '../../src/agent/local/state.ts';

export class FakeClock implements Clock {
  t = 1_000_000;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get pending(): number {
    return this.#timers.size;
  }
  /** Runs every timer due within `ms`, in time order, then sets the clock to the end. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers)
        if (e[1].at <= end && (first === undefined || e[1].at < first[1].at)) first = e;
      if (first === undefined) break;
      this.#timers.delete(first[0]);
      this.t = first[1].at;
      first[1].fn();
    }
    this.t = end;
  }
}
