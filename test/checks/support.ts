/**
 * Shared pieces of the check-runner tests: a simulated clock (timers fire only when advanced), a
 * local state over a recording catalog, and small helpers to await real servers.
 */

import type { CommandInput, WriteReply } from '../../src/agent/backend.ts';
import type { Clock, LocalState } from '../../src/agent/local/state.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import type { NodeInput } from '../../src/catalog/types.ts';

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

export const NODE: NodeInput = {
  ID: '11111111-2222-3333-4444-555555555555',
  Node: 'n1',
  Address: '127.0.0.1',
  Datacenter: 'dc1',
};

/** A local state whose catalog accepts every write (loaded on demand: probe tests do not need it). */
export async function localState(clock: Clock = new FakeClock()): Promise<LocalState> {
  const { LocalState } = await import('../../src/agent/local/state.ts');
  const catalog = {
    write: async (_cmd: CommandInput): Promise<WriteReply> => ({
      index: 1,
      result: { ok: true, value: true },
    }),
  };
  return new LocalState({ node: NODE, catalog, clock, logger: silentLogger() });
}

/** Lets pending promise callbacks and I/O callbacks run (not a timed wait). */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A signal that never aborts. */
export const never = (): AbortSignal => new AbortController().signal;

/** A signal aborted right away (a run whose deadline has passed). */
export function aborted(): AbortSignal {
  const c = new AbortController();
  c.abort();
  return c.signal;
}
