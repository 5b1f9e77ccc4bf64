/**
 * Bounded capture of check output. Consul reads bodies and script output into a circular buffer
 * (`armon/circbuf`), so it is the *last* `max` bytes that are kept, however much was written.
 */

export class TailBuffer {
  readonly #max: number;
  #chunks: Buffer[] = [];
  #held = 0;
  /** Bytes written in all. */
  total = 0;

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  write(chunk: Buffer): void {
    this.total += chunk.length;
    this.#chunks.push(chunk);
    this.#held += chunk.length;
    // Drop whole chunks that lie entirely before the last `max` bytes.
    while (this.#chunks.length > 1 && this.#held - this.#chunks[0].length >= this.#max) {
      this.#held -= this.#chunks[0].length;
      this.#chunks.shift();
    }
  }

  /** The bytes kept (at most `max`), decoded as UTF-8. */
  text(): string {
    if (this.#chunks.length === 1) {
      const only = this.#chunks[0];
      return only.toString('utf8', Math.max(0, only.length - this.#max));
    }
    const all = Buffer.concat(this.#chunks, this.#held);
    return all.subarray(Math.max(0, all.length - this.#max)).toString('utf8');
  }

  get truncated(): boolean {
    return this.total > this.#max;
  }

  get kept(): number {
    return Math.min(this.total, this.#max);
  }
}
