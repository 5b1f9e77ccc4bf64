/**
 * A set of strings with O(1) add, delete, membership and uniform random pick: an array of the
 * values plus each value's slot (a delete moves the last value into the hole). The SWIM core picks
 * random members several times a second among up to thousands.
 */
export class RandomSet {
  readonly #values: string[] = [];
  readonly #slot = new Map<string, number>();

  get size(): number {
    return this.#values.length;
  }

  add(value: string): void {
    if (this.#slot.has(value)) return;
    this.#slot.set(value, this.#values.length);
    this.#values.push(value);
  }

  delete(value: string): void {
    const i = this.#slot.get(value);
    if (i === undefined) return;
    const last = this.#values.pop() as string;
    if (last !== value) {
      this.#values[i] = last;
      this.#slot.set(last, i);
    }
    this.#slot.delete(value);
  }

  /** The value at `random()`'s position; undefined when empty. */
  pick(random: () => number): string | undefined {
    const n = this.#values.length;
    return n === 0 ? undefined : this.#values[Math.floor(random() * n)];
  }

  values(): readonly string[] {
    return this.#values;
  }
}
