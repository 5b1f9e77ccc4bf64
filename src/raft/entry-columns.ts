import { ENTRY_OVERHEAD_BYTES, type Entry, type EntryType } from './types.ts';

const TYPES: readonly EntryType[] = ['normal', 'noop', 'config'];
const TYPE_CODES: Readonly<Record<EntryType, number>> = { normal: 0, noop: 1, config: 2 };

/** Payloads are copied into chunks of this size; a larger payload gets a chunk of its own. */
const CHUNK_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * A sequence of log entries held as a few typed-array columns plus payload chunks, instead of an
 * array of entry objects. Why: a server keeps every entry since its last snapshot (tens of
 * thousands), and each one as an object, a Uint8Array and an ArrayBuffer was three young objects
 * per write that V8's scavenger copied twice before promoting them. Under 16 concurrent KV writers
 * that was about half of what every scavenge copied, and scavenge pauses were most of the write
 * p99. Here an entry costs no heap object until it is read; {@link at} builds a short-lived one.
 *
 * Payload bytes are written once and never overwritten (truncation only forgets entries), so the
 * views handed out earlier (to a write in flight, a message being sent) stay valid. A chunk is
 * released once every entry in it has been dropped from the front.
 */
export class EntryColumns {
  #length = 0;
  #terms = new Float64Array(64);
  #types = new Uint8Array(64);
  /** The sequence number of the chunk holding each payload (see #firstChunk). */
  #chunkOf = new Float64Array(64);
  #offsets = new Uint32Array(64);
  #lengths = new Uint32Array(64);
  #chunks: Uint8Array[] = [];
  /** Sequence number of #chunks[0]; numbers only grow, so dropping chunks renumbers nothing. */
  #firstChunk = 0;
  /** Bytes used in the last chunk. */
  #fill = 0;

  get length(): number {
    return this.#length;
  }

  push(e: Entry): void {
    if (this.#length === this.#terms.length) this.#grow();
    const i = this.#length++;
    const n = e.data.byteLength;
    this.#terms[i] = e.term;
    this.#types[i] = TYPE_CODES[e.type];
    this.#lengths[i] = n;
    let last = this.#chunks.at(-1);
    if (n > 0 && (last === undefined || this.#fill + n > last.byteLength)) {
      last = new Uint8Array(Math.max(CHUNK_BYTES, n));
      this.#chunks.push(last);
      this.#fill = 0;
    }
    // An empty payload still names the current chunk, so chunk numbers never decrease along the log.
    this.#chunkOf[i] = this.#firstChunk + Math.max(0, this.#chunks.length - 1);
    this.#offsets[i] = this.#fill;
    if (n > 0) {
      (last as Uint8Array).set(e.data, this.#fill);
      this.#fill += n;
    }
  }

  term(i: number): number {
    return this.#terms[i];
  }

  /** Entry `i`'s size as {@link entrySize} counts it. */
  size(i: number): number {
    return this.#lengths[i] + ENTRY_OVERHEAD_BYTES;
  }

  /** Entry `i` (which has log index `index`); its data is a view of the stored bytes. */
  at(i: number, index: number): Entry {
    const n = this.#lengths[i];
    const off = this.#offsets[i];
    const data = n === 0 ? EMPTY : this.#chunks[this.#chunkOf[i] - this.#firstChunk].subarray(off, off + n);
    return { index, term: this.#terms[i], type: TYPES[this.#types[i]], data };
  }

  /** Keeps the first `n` entries. Their bytes stay where they are; later pushes go after them. */
  truncate(n: number): void {
    if (n < this.#length) this.#length = n;
  }

  /** Drops the first `k` entries and every chunk no remaining entry uses. */
  dropFront(k: number): void {
    if (k <= 0) return;
    k = Math.min(k, this.#length);
    for (const col of [this.#terms, this.#types, this.#chunkOf, this.#offsets, this.#lengths]) {
      col.copyWithin(0, k, this.#length);
    }
    this.#length -= k;
    const keepFrom = this.#length > 0 ? this.#chunkOf[0] : this.#firstChunk + this.#chunks.length;
    const drop = Math.min(keepFrom - this.#firstChunk, this.#chunks.length);
    if (drop <= 0) return;
    this.#chunks.splice(0, drop);
    this.#firstChunk += drop;
    if (this.#chunks.length === 0) this.#fill = 0;
  }

  clear(): void {
    this.dropFront(this.#length);
  }

  /** Payload bytes held, counting chunk space not used yet (what the tests check releases). */
  chunkBytes(): number {
    let n = 0;
    for (const c of this.#chunks) n += c.byteLength;
    return n;
  }

  #grow(): void {
    const cap = this.#terms.length * 2;
    this.#terms = copied(this.#terms, new Float64Array(cap));
    this.#types = copied(this.#types, new Uint8Array(cap));
    this.#chunkOf = copied(this.#chunkOf, new Float64Array(cap));
    this.#offsets = copied(this.#offsets, new Uint32Array(cap));
    this.#lengths = copied(this.#lengths, new Uint32Array(cap));
  }
}

/** `into`, holding a copy of `from` at its start. */
function copied<T extends Float64Array | Uint8Array | Uint32Array>(from: T, into: T): T {
  into.set(from);
  return into;
}
