/**
 * Lifeguard's suspicion timeout: it starts at `max` and shrinks toward `min` as distinct members
 * independently confirm the suspicion, logarithmically: with k expected confirmations,
 * timeout(c) = max − (log(c + 1) / log(k + 1)) · (max − min), never below min.
 */

export interface SuspicionBounds {
  minMs: number;
  maxMs: number;
  /** Expected confirmations: suspicionMult − 2, or 0 when fewer other members could confirm. */
  k: number;
}

export function suspicionBounds(
  suspicionMult: number,
  maxMult: number,
  n: number,
  probeIntervalMs: number,
): SuspicionBounds {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  const minMs = suspicionMult * nodeScale * probeIntervalMs;
  // Confirmations can only come from members other than us and the suspect: in a cluster too
  // small to give the k expected (3 servers: one other), none is expected and the timeout is the
  // minimum, as memberlist's suspectNode sets it.
  const k = Math.max(0, suspicionMult - 2);
  return { minMs, maxMs: maxMult * minMs, k: n - 2 < k ? 0 : k };
}

export function suspicionTimeout(b: SuspicionBounds, confirmations: number): number {
  if (b.k < 1) return b.minMs;
  const frac = Math.log(confirmations + 1) / Math.log(b.k + 1);
  return Math.max(b.minMs, Math.floor(b.maxMs - frac * (b.maxMs - b.minMs)));
}

export class Suspicion {
  readonly start: number;
  readonly bounds: SuspicionBounds;
  readonly incarnation: number;
  /** Who declared it first, and who confirmed it since. */
  readonly #by = new Set<string>();

  constructor(start: number, bounds: SuspicionBounds, incarnation: number, by: string) {
    this.start = start;
    this.bounds = bounds;
    this.incarnation = incarnation;
    this.#by.add(by);
  }

  /** Counts a confirmation from `by`; false if it already counted (or started it). */
  confirm(by: string): boolean {
    if (this.#by.has(by)) return false;
    this.#by.add(by);
    return true;
  }

  get confirmations(): number {
    return this.#by.size - 1;
  }

  deadline(): number {
    return this.start + suspicionTimeout(this.bounds, this.confirmations);
  }
}
