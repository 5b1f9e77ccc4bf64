/**
 * Lifeguard's local health awareness: a score in [0, max − 1] that rises when this member's own
 * probes go unanswered in ways that suggest it is the slow one (missing nacks) or when it has to
 * refute a suspicion of itself, and falls with each successful probe. Timeouts are multiplied by
 * score + 1, so a struggling member waits longer before accusing others.
 */
export class Awareness {
  readonly #max: number;
  #score = 0;

  constructor(maxMultiplier: number) {
    this.#max = maxMultiplier;
  }

  apply(delta: number): void {
    this.#score = Math.min(this.#max - 1, Math.max(0, this.#score + delta));
  }

  get score(): number {
    return this.#score;
  }

  scale(ms: number): number {
    return ms * (this.#score + 1);
  }
}
