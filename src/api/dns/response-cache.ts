/**
 * Whole UDP responses, by the bytes of the query they answer. A query whose bytes after the ID
 * are those of one answered before (dnsperf's, and a resolver's repeated questions, are) is
 * answered with a copy of that response under its own ID: no decoding, no lookup, no encoding,
 * no promise. On a 2-vCPU machine that took an agent from ~42k to 48-71k answers a second over
 * several runs (67k, 0.92x dnsmasq's, in bench/RESULTS.md) and from 39 to 27-29 µs of CPU per query;
 * a bare Node socket that only copies a fixed answer costs 25-26 µs there.
 *
 * The bytes are the whole question: flags, name as asked (case included), type, class and the EDNS
 * record, so two queries with the same bytes get the same answer but for the records' order.
 * Consul shuffles that per answer; a key here keeps up to `variants` responses, each shuffled on its
 * own, and hands them out in turn. An answer the same every time (one record, NXDOMAIN) keeps one.
 *
 * A response is current while `version()` is what it was when the response was computed (the agent
 * cache bumps it whenever any value it holds changes) and until the end of the wall-clock second it
 * was computed in: the SOA serial in negative answers is the time in seconds, as Consul's. So a
 * health change reaches the next query as soon as it reaches the agent cache, as before.
 */

export interface ResponseCacheInit {
  /** The version of everything responses are computed from. */
  version: () => number;
  /** @default Date.now */
  now?: () => number;
  /** Responses kept per query, shuffled independently. @default 8 */
  variants?: number;
  /** Bytes of queries and responses kept in all; the oldest entries go first. @default 1 MiB */
  maxBytes?: number;
}

/** Queries longer than this are not cached (a question is ~30-300 bytes; the rest is options). */
const MAX_QUERY_BYTES = 512;

interface Entry {
  version: number;
  /** When the second this entry was filled in ends. */
  expires: number;
  responses: Buffer[];
  /** Whether `responses` is all there will be: full, or every answer is the same. */
  complete: boolean;
  /** The response handed out next. */
  next: number;
  bytes: number;
}

export class ResponseCache {
  readonly #version: () => number;
  readonly #now: () => number;
  readonly #variants: number;
  readonly #maxBytes: number;
  /** Oldest first (Map insertion order), for eviction. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #sweptAt = 0;
  readonly stats = { hits: 0 };

  constructor(init: ResponseCacheInit) {
    this.#version = init.version;
    this.#now = init.now ?? Date.now;
    this.#variants = Math.max(1, init.variants ?? 8);
    this.#maxBytes = init.maxBytes ?? 1 << 20;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The response to `query` (a UDP query as received) under its ID, when one is current. */
  get(query: Buffer): Buffer | undefined {
    if (query.length < 12 || query.length > MAX_QUERY_BYTES) return undefined;
    const key = query.toString('latin1', 2);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.version !== this.#version() || this.#now() >= entry.expires) {
      this.#delete(key, entry);
      return undefined;
    }
    // Until all variants are in, each query is answered afresh (and adds one).
    if (!entry.complete) return undefined;
    const stored = entry.responses[entry.next] as Buffer;
    entry.next = (entry.next + 1) % entry.responses.length;
    const out = Buffer.allocUnsafe(stored.length);
    stored.copy(out);
    out[0] = query[0] as number;
    out[1] = query[1] as number;
    this.stats.hits++;
    return out;
  }

  /**
   * Keeps `response`, computed for `query` from data at `version` (read before the lookup began:
   * a response computed while the data changed is not kept).
   */
  put(query: Buffer, response: Buffer, version: number): void {
    if (query.length < 12 || query.length > MAX_QUERY_BYTES) return;
    if (version !== this.#version()) return;
    const now = this.#now();
    if (now - this.#sweptAt >= 1_000) this.#sweep(now);
    const key = query.toString('latin1', 2);
    let entry = this.#entries.get(key);
    if (entry !== undefined && (entry.version !== version || now >= entry.expires)) {
      this.#delete(key, entry);
      entry = undefined;
    }
    if (entry === undefined) {
      entry = {
        version,
        expires: Math.floor(now / 1_000) * 1_000 + 1_000,
        responses: [],
        complete: false,
        next: 0,
        bytes: key.length,
      };
      this.#entries.set(key, entry);
      this.#bytes += entry.bytes;
    }
    if (entry.complete) return;
    // A second response the same as the first: the answer does not vary (one record, NXDOMAIN).
    const first = entry.responses[0];
    if (entry.responses.length === 1 && first !== undefined && sameBeyondId(first, response)) {
      entry.complete = true;
      return;
    }
    // Its own memory: a response from Buffer's shared pool would keep the whole pool slab alive.
    const kept = Buffer.allocUnsafeSlow(response.length);
    response.copy(kept);
    entry.responses.push(kept);
    entry.bytes += kept.length;
    this.#bytes += kept.length;
    if (entry.responses.length >= this.#variants) entry.complete = true;
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#delete(k, e);
    }
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Drops the entries of past seconds, so that keys asked once do not wait for eviction. */
  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const [k, e] of this.#entries) if (now >= e.expires) this.#delete(k, e);
  }

  #delete(key: string, entry: Entry): void {
    if (this.#entries.get(key) !== entry) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

/** Whether two responses differ at most in their IDs (first two bytes). */
function sameBeyondId(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.compare(b, 2, b.length, 2, a.length) === 0;
}
