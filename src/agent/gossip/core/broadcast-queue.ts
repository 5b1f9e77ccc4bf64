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
 */

import type { Update } from './types.ts';

interface Entry {
  update: Update;
  /** Its size on the wire (JSON bytes), for the piggyback byte budget. */
  bytes: number;
  /** Recipients this version of the update went to, and how many times. */
  sentTo: Map<string, number>;
}

/** Entries looked at per `take` that the recipient already had, before giving up (bounds the cost). */
const SKIP_BUDGET = 256;

export class BroadcastQueue {
  /** buckets[t]: name → entry sent t times. */
  readonly #buckets: Map<string, Entry>[] = [];
  /** name → its bucket index. */
  readonly #where = new Map<string, number>();

  enqueue(update: Update): void {
    const at = this.#where.get(update.name);
    if (at !== undefined) this.#buckets[at].delete(update.name);
    this.#bucket(0).set(update.name, { update, bytes: updateBytes(update), sentTo: new Map() });
    this.#where.set(update.name, 0);
  }

  get size(): number {
    return this.#where.size;
  }

  /**
   * Up to `max` updates of at most `maxBytes` in all to piggyback on a message to `to`, least-sent
   * first, skipping those `to` already had `perRecipient` times from us; each counts a transmission,
   * and one sent `limit` times leaves the queue. An update larger than `maxBytes` goes alone when it
   * comes first.
   */
  take(
    max: number,
    limit: number,
    to: string,
    maxBytes = Number.POSITIVE_INFINITY,
    perRecipient = 1,
  ): Update[] {
    const out: Update[] = [];
    const moves: [string, Entry, number][] = [];
    let skips = 0;
    let bytes = 0;
    scan: for (let t = 0; t < this.#buckets.length && out.length < max; t++) {
      for (const [name, entry] of this.#buckets[t]) {
        const tooBig = bytes + entry.bytes > maxBytes && out.length > 0;
        if ((entry.sentTo.get(to) ?? 0) >= perRecipient || tooBig) {
          if (++skips >= SKIP_BUDGET) break scan;
          continue;
        }
        out.push(entry.update);
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
    return out;
  }

  #bucket(t: number): Map<string, Entry> {
    while (this.#buckets.length <= t) this.#buckets.push(new Map());
    return this.#buckets[t];
  }
}

const encoder = new TextEncoder();

/** UTF-8 bytes of the update as JSON, plus its separator in the array. */
export function updateBytes(u: Update): number {
  return encoder.encode(JSON.stringify(u)).length + 1;
}
