/**
 * The agent-side cache DNS answers come from (Consul's agent cache with background refresh):
 * the first question about a service or node fetches it; from then on a blocking query per entry
 * keeps the result fresh, so a warm question is answered without a server round trip. Entries
 * nobody asked about for `idleMs` are dropped (their blocking query aborted), and at most
 * `maxEntries` are kept (least recently used goes first).
 */

import type { Logger } from 'pino';
import type { CatalogBackend, Consistency } from '../../agent/backend.ts';
import type { QueryArgs, QueryName, QueryResult } from '../../catalog/queries.ts';

export interface CatalogCacheInit {
  /** `allow_stale`: any server answers (bounded by `maxStaleMs`). @default true */
  allowStale?: boolean;
  /** `max_stale`. @default 87600h, Consul's "any staleness" */
  maxStaleMs?: number;
  /** Drop an entry nobody read for this long. @default 180_000 */
  idleMs?: number;
  /** @default 1_000 */
  maxEntries?: number;
  /** How long each refreshing blocking query parks. @default 300_000 (Consul's default wait) */
  waitMs?: number;
  /** First retry delay after a failed refresh, doubled up to a minute. @default 250 */
  retryMs?: number;
  /** The clock entries' last use is read from. @default Date.now */
  now?: () => number;
}

/** How stale an entry's place in the eviction order may get: eviction is least recently used, to the second. */
const LRU_TOUCH_MS = 1_000;

interface Entry {
  key: string;
  value: unknown;
  index: number;
  lastUsed: number;
  /** Settles once the first fetch did; rejects if it failed (the entry is then gone). */
  ready: Promise<void>;
  abort: AbortController;
}

const RETRY_CAP_MS = 60_000;

export class CatalogCache {
  readonly #backend: Pick<CatalogBackend, 'read'>;
  readonly #logger: Logger;
  #consistency: Consistency;
  #maxStaleMs: number;
  readonly #idleMs: number;
  readonly #maxEntries: number;
  readonly #waitMs: number;
  readonly #retryMs: number;
  readonly #now: () => number;
  /** In least-recently-used-first order (to the second): a read moves its entry to the end. */
  readonly #entries = new Map<string, Entry>();
  readonly #sweep: NodeJS.Timeout;
  #closed = false;
  /** Reads answered from a warm entry / that had to wait for a fetch. */
  readonly stats = { hits: 0, misses: 0 };
  #version = 0;

  constructor(backend: Pick<CatalogBackend, 'read'>, logger: Logger, init: CatalogCacheInit = {}) {
    this.#backend = backend;
    this.#logger = logger;
    this.#consistency = (init.allowStale ?? true) ? 'stale' : 'default';
    this.#maxStaleMs = init.maxStaleMs ?? 87_600 * 3_600_000;
    this.#idleMs = init.idleMs ?? 180_000;
    this.#maxEntries = init.maxEntries ?? 1_000;
    this.#waitMs = init.waitMs ?? 300_000;
    this.#retryMs = init.retryMs ?? 250;
    this.#now = init.now ?? Date.now;
    this.#sweep = setInterval(() => this.#dropIdle(), Math.max(1_000, this.#idleMs / 2));
    this.#sweep.unref();
  }

  /** `allow_stale`/`max_stale` changed by a reload: the reads from now on use them. */
  setStale(allowStale: boolean, maxStaleMs: number): void {
    this.#consistency = allowStale ? 'stale' : 'default';
    this.#maxStaleMs = maxStaleMs;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Bumped whenever an entry gets a value: what was read before may be out of date after. */
  get version(): number {
    return this.#version;
  }

  /**
   * The latest result of the named query, fetched now if it is not cached. `key` names the entry;
   * callers on a hot path pass one they build cheaply (it must differ whenever `name` or `args` do).
   */
  async get<N extends QueryName>(
    name: N,
    args: QueryArgs<N>,
    key = `${name} ${JSON.stringify(args)}`,
  ): Promise<QueryResult<N>> {
    if (this.#closed) throw new Error('DNS cache closed');
    let entry = this.#entries.get(key);
    const now = this.#now();
    if (entry === undefined) {
      entry = this.#start(key, name, args);
    } else if (now - entry.lastUsed >= LRU_TOUCH_MS) {
      // Moved to the young end of the eviction order at most once a second: a hot entry would
      // otherwise pay a Map delete and insert on every query.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      entry.lastUsed = now;
    }
    if (entry.index > 0) this.stats.hits++;
    else this.stats.misses++;
    await entry.ready;
    return entry.value as QueryResult<N>;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const e of this.#entries.values()) e.abort.abort();
    this.#entries.clear();
  }

  #start<N extends QueryName>(key: string, name: N, args: QueryArgs<N>): Entry {
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.values().next().value as Entry;
      this.#drop(oldest);
    }
    const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
    // Callers await `ready`; a rejection nobody awaits any more must not become unhandled.
    ready.catch(() => {});
    const entry: Entry = {
      key,
      value: undefined,
      index: 0,
      lastUsed: this.#now(),
      ready,
      abort: new AbortController(),
    };
    this.#entries.set(key, entry);
    void this.#refresh(entry, name, args, resolve, reject);
    return entry;
  }

  /** The entry's life: fetch, then block for changes until dropped; failures retry with backoff. */
  async #refresh<N extends QueryName>(
    entry: Entry,
    name: N,
    args: QueryArgs<N>,
    resolve: () => void,
    reject: (err: unknown) => void,
  ): Promise<void> {
    const signal = entry.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const reply = await this.#backend.read(name, args, {
          consistency: this.#consistency,
          maxStaleMs: this.#maxStaleMs,
          minIndex: entry.index,
          waitMs: entry.index === 0 ? 0 : this.#waitMs,
          signal,
        });
        if (signal.aborted) return;
        entry.value = reply.result;
        this.#version++;
        // An index of 0 would make the next query return at once, forever: block from 1 instead.
        // One that went backwards (a restored snapshot) starts over, as Consul's cache does.
        entry.index = Math.max(1, reply.index < entry.index ? 1 : reply.index);
        failures = 0;
        resolve();
      } catch (err) {
        if (signal.aborted) return;
        if (entry.index === 0) {
          // Nothing to serve: the questions waiting get the error, the next one tries again.
          this.#drop(entry);
          reject(err);
          return;
        }
        failures++;
        const delay = Math.min(RETRY_CAP_MS, this.#retryMs * 2 ** (failures - 1));
        this.#logger.debug(
          { err: (err as Error).message, key: entry.key, delay },
          'DNS cache refresh failed',
        );
        await sleep(delay, signal);
      }
    }
  }

  #dropIdle(): void {
    const cutoff = this.#now() - this.#idleMs;
    for (const e of [...this.#entries.values()]) if (e.lastUsed < cutoff) this.#drop(e);
  }

  #drop(entry: Entry): void {
    entry.abort.abort();
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
