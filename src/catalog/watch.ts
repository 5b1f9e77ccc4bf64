/**
 * Index-based change notification for blocking queries (Consul's memdb watch sets, reduced to
 * what meshd needs).
 *
 * A watch key is an opaque string naming something a query reads: `kv:key:<k>`, `kv:prefix:<p>`,
 * later `nodes`, `services`, `service:web`. The FSM calls {@link WatchRegistry.notify} with the keys
 * an applied command changed; a blocking query parks on the keys it read with
 * {@link WatchRegistry.waitForChange}. No timers, no polling: a parked waiter is a pending promise
 * in a per-key set and costs no CPU until a notify or its abort signal settles it.
 *
 * Memory: waiters live only while parked (removed on wake or abort); nothing queues per event and
 * nothing is kept per changed key. The registry knows only the last index anything changed at, so
 * a wait that starts late ("has `k` changed after 40?" when the last change is at 50) resolves at
 * once: an extra wake-up, never a missed one. {@link blockingQuery} never waits late (it waits after
 * the index as of its run), which is why no per-key history is worth its cost on every write.
 */

export interface WatchRegistryInit {
  /**
   * Upper bound on parked waiters; {@link WatchRegistry.waitForChange} throws
   * {@link TooManyWaitersError} beyond it (a bounded queue, per STYLE.md).
   * @default 65_536
   */
  maxWaiters?: number;
}

/** Thrown by {@link WatchRegistry.waitForChange} when `maxWaiters` waiters are already parked. */
export class TooManyWaitersError extends Error {
  override readonly name = 'TooManyWaitersError';
  readonly limit: number;
  constructor(limit: number) {
    super(`too many blocking queries parked (limit ${limit})`);
    this.limit = limit;
  }
}

interface Waiter {
  readonly keys: readonly string[];
  wake(): void;
}

export class WatchRegistry {
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #maxWaiters: number;
  #lastIndex = 0;
  #waiterCount = 0;
  #resets = 0;

  /** How many times {@link wakeAll} replaced everything: a blocking query seeing it move returns. */
  get resets(): number {
    return this.#resets;
  }

  constructor(init: WatchRegistryInit = {}) {
    this.#maxWaiters = init.maxWaiters ?? 65_536;
  }

  /** The highest index ever passed to {@link notify}. */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  /** Parked waiters. */
  get waiterCount(): number {
    return this.#waiterCount;
  }

  /** Keys that have at least one parked waiter. */
  get watchedKeyCount(): number {
    return this.#waiters.size;
  }

  /** Records that `keys` changed at `index` and wakes every waiter parked on any of them. */
  notify(keys: Iterable<string>, index: number): void {
    if (index > this.#lastIndex) this.#lastIndex = index;
    if (this.#waiterCount === 0) return;
    const woken = new Set<Waiter>();
    for (const key of keys) {
      const set = this.#waiters.get(key);
      if (set) for (const w of set) woken.add(w);
    }
    for (const w of woken) w.wake();
  }

  /**
   * Everything may have changed at `index` (a snapshot restore replaced the state): wakes every
   * parked waiter and makes any later wait for a change after an index below `index` return at once.
   */
  wakeAll(index: number): void {
    this.#resets++;
    if (index > this.#lastIndex) this.#lastIndex = index;
    const woken = new Set<Waiter>();
    for (const set of this.#waiters.values()) for (const w of set) woken.add(w);
    for (const w of woken) w.wake();
  }

  /**
   * Resolves once any of `keys` changes at an index > `afterIndex`; at once if anything changed
   * after `afterIndex` already (the registry keeps no per-key history: see the module comment).
   *
   * On abort it **rejects** with `signal.reason`, like Node's own abortable APIs
   * (`events.once`, `timers/promises`): the caller asked to stop, so there is no result to give.
   * The waiter is removed from every key either way.
   */
  waitForChange(keys: readonly string[], afterIndex: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (afterIndex < this.#lastIndex) return Promise.resolve();
    if (this.#waiterCount >= this.#maxWaiters)
      return Promise.reject(new TooManyWaitersError(this.#maxWaiters));

    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const unique = [...new Set(keys)];
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      this.#waiterCount--;
      signal.removeEventListener('abort', onAbort);
      for (const key of unique) {
        const set = this.#waiters.get(key);
        if (!set) continue;
        set.delete(waiter);
        if (set.size === 0) this.#waiters.delete(key);
      }
    };
    const waiter: Waiter = {
      keys: unique,
      wake: () => {
        if (settled) return;
        cleanup();
        resolve();
      },
    };
    const onAbort = (): void => {
      if (settled) return;
      cleanup();
      reject(signal.reason);
    };

    this.#waiterCount++;
    for (const key of unique) {
      let set = this.#waiters.get(key);
      if (!set) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      set.add(waiter);
    }
    signal.addEventListener('abort', onAbort, { once: true });
    return promise;
  }
}

/** What a blocking query's read function returns: the data, its index, and the watch keys it read. */
export interface QueryRun<T> {
  index: number;
  result: T;
  watch: string[];
}

export interface BlockingQueryOptions<T> {
  /** The client's `?index=`; 0 means "do not block". */
  minIndex: number;
  /** The client's `?wait=` in ms (the HTTP edge caps it at 10 minutes and defaults it to 5). */
  waitMs: number;
  /** Aborting it (e.g. the HTTP client went away) rejects the query with `signal.reason`. */
  signal?: AbortSignal;
  registry: WatchRegistry;
  /** Runs the query against the current state, synchronously. */
  run: () => QueryRun<T>;
  /** A uniform number in [0, 1) for the wake-up jitter; inject a seeded source in tests. */
  random: () => number;
}

/** Consul's jitter: up to `wait / 16` extra, so that many watchers do not wake together. */
export function jitteredWait(waitMs: number, random: () => number): number {
  return waitMs + Math.floor(random() * (waitMs / 16));
}

/**
 * Consul's server-side blocking query (agent/blockingquery `Query`):
 * - `minIndex` 0: run once and return.
 * - Otherwise run; if the result's index is > `minIndex`, return it. Else park on the watch keys
 *   the run read until one changes, rerun, and repeat until the deadline (`waitMs` plus jitter).
 *   At the deadline the last run's result is returned as is (no rerun, as Consul does): same data,
 *   same index, which tells the client nothing changed.
 * - The index returned is never 0 (clamped to 1, Consul's "sanity check index is greater than
 *   zero"), and it is the truthful index even when it is below `minIndex` (e.g. after a snapshot
 *   restore brought back older data): per Consul's "reset the index if it goes backwards", clients
 *   must detect that and restart from 0; reporting `minIndex` instead would hide the reset.
 *
 * Each park waits for changes after the registry's {@link WatchRegistry.lastIndex} as of the run
 * (captured synchronously right after `run`, so no notify can slip in between), not after
 * `minIndex`: a change already reflected in the run never wakes it again, so there is no busy loop
 * when a watched key changed without raising the query's index.
 */
export async function blockingQuery<T>(opts: BlockingQueryOptions<T>): Promise<{ index: number; result: T }> {
  const { minIndex, registry, run, signal } = opts;
  signal?.throwIfAborted();
  let current = run();
  const answer = (): { index: number; result: T } => ({
    index: Math.max(1, current.index),
    result: current.result,
  });
  if (minIndex <= 0 || Math.max(1, current.index) > minIndex) return answer();

  const resets = registry.resets;
  const local = new AbortController();
  const deadline = Symbol('deadline');
  const timer = setTimeout(() => local.abort(deadline), jitteredWait(opts.waitMs, opts.random));
  const onAbort = (): void => local.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      try {
        await registry.waitForChange(current.watch, registry.lastIndex, local.signal);
      } catch (err) {
        if (err === deadline) return answer();
        throw err;
      }
      current = run();
      // After a restore the truthful index may be below minIndex: answer now (clients reset when
      // the index goes backwards) rather than hold the old view until the deadline.
      if (Math.max(1, current.index) > minIndex || registry.resets !== resets) return answer();
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
