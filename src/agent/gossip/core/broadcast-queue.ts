/**
 * memberlist's TransmitLimitedQueue: updates waiting to be piggybacked, each sent a bounded number
 * of times (the limit grows with log10 of the cluster size), least-sent first. A newer update about
 * a member replaces the queued one. Entries sit in buckets by transmit count, so taking a few is
 * cheap even with thousands queued (a mass join).
 */

import type { Update } from './types.ts';

export class BroadcastQueue {
  /** buckets[t]: name → update sent t times. */
  readonly #buckets: Map<string, Update>[] = [];
  /** name → its bucket index. */
  readonly #where = new Map<string, number>();

  enqueue(update: Update): void {
    const at = this.#where.get(update.name);
    if (at !== undefined) this.#buckets[at].delete(update.name);
    this.#bucket(0).set(update.name, update);
    this.#where.set(update.name, 0);
  }

  get size(): number {
    return this.#where.size;
  }

  /** Up to `max` updates to piggyback, counting a transmission for each. */
  take(max: number, limit: number): Update[] {
    const out: Update[] = [];
    const moves: [string, Update, number][] = [];
    for (let t = 0; t < this.#buckets.length && out.length < max; t++) {
      for (const [name, update] of this.#buckets[t]) {
        out.push(update);
        moves.push([name, update, t]);
        if (out.length >= max) break;
      }
    }
    for (const [name, update, t] of moves) {
      this.#buckets[t].delete(name);
      if (t + 1 >= limit) {
        this.#where.delete(name);
      } else {
        this.#bucket(t + 1).set(name, update);
        this.#where.set(name, t + 1);
      }
    }
    return out;
  }

  #bucket(t: number): Map<string, Update> {
    while (this.#buckets.length <= t) this.#buckets.push(new Map());
    return this.#buckets[t];
  }
}
