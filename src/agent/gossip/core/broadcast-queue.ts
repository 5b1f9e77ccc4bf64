/**
 * memberlist's TransmitLimitedQueue: updates waiting to be piggybacked, each sent a bounded number
 * of times (the limit grows with log10 of the cluster size), least-sent first. A newer update about
 * a member replaces the queued one. Entries sit in buckets by transmit count, so taking a few is
 * cheap even with thousands queued (a mass join).
 *
 * Unlike memberlist's, one recipient gets an update at most `perRecipient` times, so in a large
 * cluster the limit is not spent resending to a member that already had it; in a small one (the
 * limit above the number of other members) each gets it more than once, as memberlist's random
 * picks would, so that one lost packet does not lose the update for that member. Each message also
 * takes no more than a byte budget of updates, so that it stays one UDP packet.
 *
 * Generic over what it carries: membership updates (keyed by member name) and user messages
 * (keyed by themselves) each have a queue.
 */

interface Entry<T> {
  item: T;
  /** Its size on the wire (JSON bytes), for the piggyback byte budget. */
  bytes: number;
  /** Recipients this version of the update went to, and how many times. */
  sentTo: Map<string, number>;
}

export interface TakeLimits {
  /** Most items. */
  max: number;
  /** An item sent this many times in all leaves the queue. */
  limit: number;
  /** Most bytes in all. @default Infinity */
  maxBytes?: number;
  /** Most times one recipient gets an item. @default 1 */
  perRecipient?: number;
  /** An item larger than `maxBytes` on its own may go when it comes first. @default true */
  oversizeAlone?: boolean;
}

/** Entries looked at per `take` that the recipient already had, before giving up (bounds the cost). */
const SKIP_BUDGET = 256;

export class BroadcastQueue<T> {
  readonly #keyOf: (item: T) => string;
  /** buckets[t]: key → entry sent t times. */
  readonly #buckets: Map<string, Entry<T>>[] = [];
  /** key → its bucket index. */
  readonly #where = new Map<string, number>();

  /** `keyOf`: items with one key replace each other (a newer update about the same member). */
  constructor(keyOf: (item: T) => string) {
    this.#keyOf = keyOf;
  }

  enqueue(item: T): void {
    const key = this.#keyOf(item);
    const at = this.#where.get(key);
    if (at !== undefined) this.#buckets[at].delete(key);
    this.#bucket(0).set(key, { item, bytes: jsonBytes(item), sentTo: new Map() });
    this.#where.set(key, 0);
  }

  get size(): number {
    return this.#where.size;
  }

  /**
   * Items to piggyback on a message to `to`, least-sent first, within `limits`, skipping those `to`
   * already had `perRecipient` times from us; each counts a transmission, and one sent `limit` times
   * leaves the queue. Returns them with their size in bytes.
   */
  take(to: string, limits: TakeLimits): { items: T[]; bytes: number } {
    const {
      max,
      limit,
      maxBytes = Number.POSITIVE_INFINITY,
      perRecipient = 1,
      oversizeAlone = true,
    } = limits;
    const out: T[] = [];
    const moves: [string, Entry<T>, number][] = [];
    let skips = 0;
    let bytes = 0;
    scan: for (let t = 0; t < this.#buckets.length && out.length < max; t++) {
      for (const [name, entry] of this.#buckets[t]) {
        const tooBig = bytes + entry.bytes > maxBytes && (out.length > 0 || !oversizeAlone);
        if ((entry.sentTo.get(to) ?? 0) >= perRecipient || tooBig) {
          if (++skips >= SKIP_BUDGET) break scan;
          continue;
        }
        out.push(entry.item);
        moves.push([name, entry, t]);
        bytes += entry.bytes;
        if (out.length >= max || bytes >= maxBytes) break scan;
      }
    }
    for (const [name, entry, t] of moves) {
      this.#buckets[t].delete(name);
      if (t + 1 >= limit) {
        this.#where.delete(name);
      } else {
        entry.sentTo.set(to, (entry.sentTo.get(to) ?? 0) + 1);
        this.#bucket(t + 1).set(name, entry);
        this.#where.set(name, t + 1);
      }
    }
    return { items: out, bytes };
  }

  #bucket(t: number): Map<string, Entry<T>> {
    while (this.#buckets.length <= t) this.#buckets.push(new Map());
    return this.#buckets[t];
  }
}

const encoder = new TextEncoder();

/** UTF-8 bytes of an item as JSON, plus its separator in the array. */
export function jsonBytes(item: unknown): number {
  return encoder.encode(JSON.stringify(item)).length + 1;
}
