/**
 * A linearizability checker for key-value client histories, used by the Raft simulation to decide
 * whether what clients observed could have come from a single copy of the store executing each
 * operation atomically at some instant between its call and its return.
 *
 * The search is Wing & Gong's, with Lowe's memoization, as Porcupine implements it:
 *
 * - The history is split by key. Linearizability is compositional (Herlihy & Wing's locality
 *   property), so a history is linearizable iff each per-key sub-history is; the search is
 *   exponential in the worst case, so checking many small partitions beats one large one.
 * - Each partition becomes a doubly linked list of call and return events in time order. The
 *   search repeatedly takes a call event that precedes the first pending return (any such op may
 *   be the next linearization point), applies the op to the model, and, if legal, unlinks the op's
 *   call and return (dancing links) and continues; reaching a return event means no remaining
 *   choice at this point works, so the search backtracks.
 * - A cache of visited (linearized set, model state) configurations prunes the search: what can
 *   follow depends only on that pair, so a configuration reached before — which failed, or the
 *   search would have stopped — need not be explored again.
 * - The DFS keeps its own stack, so histories thousands of operations deep cannot overflow the
 *   JS call stack.
 *
 * On top of that, checkPartition prunes branches that provably cannot matter (reads that are legal
 * now are taken eagerly; unknown-outcome ops are handled by subsumption and symmetry). Each rule
 * is argued where it is implemented, and the tests compare the result with an exhaustive search.
 */

export type KvInput =
  | { op: 'put'; key: string; value: string }
  | { op: 'get'; key: string }
  /** `expected: null` means the key must be absent for the swap to happen. */
  | { op: 'cas'; key: string; expected: string | null; value: string }
  | { op: 'delete'; key: string };

export type KvOutput =
  /** A get returns its value (null when absent); a cas with ok:true swapped. */
  | { ok: true; value?: string | null }
  /** A cas that did not swap. Only cas may fail: see {@link checkKvHistory}. */
  | { ok: false };

export interface Operation {
  clientId: number;
  input: KvInput;
  /**
   * `undefined` means the outcome is unknown (the client timed out or crashed): the op may have
   * taken effect at any time after `call`, or never. Record such ops with `return: Infinity`.
   */
  output: KvOutput | undefined;
  call: number;
  return: number;
}

export interface CheckResult {
  /** True only when every key's history is proven linearizable. */
  ok: boolean;
  /** For failures (and timeouts): the key whose partition failed. */
  key?: string;
  /** For failures (and timeouts): a short human-readable explanation. */
  explanation?: string;
  /** The search ran out of time: the answer is unknown, so `ok` is false to make callers notice. */
  timedOut?: boolean;
}

export interface CheckOptions {
  /**
   * Give up after this many milliseconds across all keys, returning `{ ok: false, timedOut: true }`.
   * A timeout is reported as a failure rather than a pass: a checker that silently passes histories
   * it could not check would hide exactly the pathological ones worth looking at.
   */
  timeoutMs?: number;
}

// Model op kinds as small integers so the hot step function switches on numbers, not strings.
const PUT = 0;
const GET = 1;
const CAS = 2;
const DELETE = 3;

// Per-op outcome codes for the model.
const OUTCOME_OK = 1;
const OUTCOME_FAILED = 0;
const OUTCOME_UNKNOWN = -1;

/** The interned id of "key absent"; every partition starts in this state. */
const ABSENT = 0;

const NIL = -1;

// The phases in which a search node tries its candidates (see checkPartition).
const PHASE_READ = 0;
const PHASE_WRITE = 1;
const PHASE_UNKNOWN = 2;

/** How many search steps run between clock reads, so the timeout costs almost nothing. */
const CLOCK_CHECK_MASK = 1023;

/** How many of the deepest partial linearization's last ops an explanation lists. */
const EXPLAIN_TAIL = 3;

/**
 * Checks a client history of a key-value store for linearizability.
 *
 * Semantics, per key: the state is `string | null` (null = absent, the initial state); put sets
 * it, delete sets null, get must return the current value, cas with `ok: true` requires the current
 * value to equal `expected` and sets `value`, and cas with `ok: false` requires it to differ.
 *
 * An op whose `output` is undefined has an unknown outcome. It is treated as returning at
 * Infinity whatever its `return` says (the op may still take effect after the client gave up), its
 * output is unconstrained, and it need never take effect: an op that never happened is
 * indistinguishable from one linearized after everything else, which the search can always do,
 * because an unknown op's step is always legal. An unknown cas swaps iff the state equals
 * `expected` at its linearization point. Unknown gets constrain and change nothing, so they are
 * dropped up front rather than left to widen the search.
 *
 * Events at equal timestamps order calls before returns (as Porcupine does), so an op that
 * returns at t and one that is called at t count as concurrent — the permissive choice, so that
 * coarse simulated clocks never produce a false failure.
 *
 * `ok: false` on a put, get or delete is rejected with a TypeError: those ops cannot "fail" in the
 * model, and a definite failure (the op certainly did not happen) should simply be left out of the
 * history, while a possible one should be recorded with `output: undefined`.
 *
 * On failure, the first failing key (in order of first appearance) is reported, with the deepest
 * partial linearization found and the op that could not be placed after it — or, when a read saw a
 * value that nothing had yet been called to write, just that read.
 *
 * Cost: linearizable histories of a few thousand ops per key at concurrency ~10 take milliseconds
 * to tens of milliseconds. Refuting a history is costlier, since every order of the ops before the
 * violation must be ruled out, and most of all when many writes have unknown outcomes (each may
 * or may not have happened): seconds for 2,000 ops of which 10% are unknown. The problem is
 * NP-complete, so `timeoutMs` bounds pathological cases; a timeout returns `ok: false`.
 */
export function checkKvHistory(history: Operation[], opts: CheckOptions = {}): CheckResult {
  const timeoutMs = opts.timeoutMs ?? Number.POSITIVE_INFINITY;
  const deadline = performance.now() + timeoutMs;

  const partitions = new Map<string, number[]>();
  for (let i = 0; i < history.length; i++) {
    const op = history[i];
    validate(op, i);
    if (op.output === undefined && op.input.op === 'get') continue;
    let ops = partitions.get(op.input.key);
    if (ops === undefined) {
      ops = [];
      partitions.set(op.input.key, ops);
    }
    ops.push(i);
  }

  for (const [key, indices] of partitions) {
    const result = checkPartition(history, key, indices, deadline);
    if (result === 'ok') continue;
    if (result === 'timeout') {
      return {
        ok: false,
        timedOut: true,
        key,
        explanation:
          `gave up on key ${JSON.stringify(key)} (${indices.length} ops) after ${timeoutMs} ms: ` +
          'linearizability is undetermined, not refuted',
      };
    }
    return { ok: false, key, explanation: result.explanation };
  }
  return { ok: true };
}

function validate(op: Operation, index: number): void {
  const where = `history[${index}]`;
  if (typeof op.call !== 'number' || !Number.isFinite(op.call)) {
    throw new RangeError(`${where}: call must be a finite number, got ${op.call}`);
  }
  if (typeof op.return !== 'number' || Number.isNaN(op.return) || op.return < op.call) {
    throw new RangeError(`${where}: return must be a number >= call (${op.call}), got ${op.return}`);
  }
  const kind = op.input.op;
  if (kind !== 'put' && kind !== 'get' && kind !== 'cas' && kind !== 'delete') {
    throw new TypeError(`${where}: unknown op ${JSON.stringify(kind)}`);
  }
  if (op.output !== undefined && !op.output.ok && kind !== 'cas') {
    throw new TypeError(
      `${where}: ok:false is only meaningful for cas; drop a ${kind} that certainly failed, ` +
        'or record one that may have happened with output: undefined',
    );
  }
}

type PartitionResult = 'ok' | 'timeout' | { explanation: string };

/**
 * The visited configurations (linearized known ops, linearized unknown ops, state), with the
 * subsumption test described in checkPartition. A hash table chained through flat arrays, with all
 * entries' bitsets packed into one growable arena: refuting a history can visit hundreds of
 * thousands of configurations, and an object plus typed arrays apiece made garbage collection
 * the bottleneck.
 */
class ConfigCache {
  readonly #knownWords: number;
  readonly #unknownWords: number;
  readonly #stride: number;
  #arena: Uint32Array;
  #size = 0;
  #next = new Int32Array(64);
  #state = new Int32Array(64);
  #hash = new Int32Array(64);
  #heads = new Int32Array(64).fill(-1);

  constructor(knownWords: number, unknownWords: number) {
    this.#knownWords = knownWords;
    this.#unknownWords = unknownWords;
    this.#stride = knownWords + unknownWords;
    this.#arena = new Uint32Array(this.#stride * 64);
  }

  /**
   * Records the configuration unless a visited one subsumes it: same state, same known ops, and a
   * subset of its unknown ops. `hash` must depend only on the known ops. Returns whether it was new.
   */
  visit(known: Uint32Array, unknown: Uint32Array, hash: number, state: number): boolean {
    const kw = this.#knownWords;
    const uw = this.#unknownWords;
    const stride = this.#stride;
    const arena = this.#arena;
    // Masked to 30 bits so the value stays a small integer in V8.
    const h = (hash ^ Math.imul(state + 1, 0x9e3779b1)) & 0x3fffffff;
    search: for (let e = this.#heads[h & (this.#heads.length - 1)]; e !== -1; e = this.#next[e]) {
      if (this.#hash[e] !== h || this.#state[e] !== state) continue;
      const base = e * stride;
      for (let w = 0; w < kw; w++) if (arena[base + w] !== known[w]) continue search;
      for (let w = 0; w < uw; w++) if ((arena[base + kw + w] & ~unknown[w]) !== 0) continue search;
      return false;
    }
    this.#insert(known, unknown, h, state);
    return true;
  }

  #insert(known: Uint32Array, unknown: Uint32Array, h: number, state: number): void {
    const e = this.#size;
    if (e === this.#next.length) {
      const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.#next = grow(this.#next);
      this.#state = grow(this.#state);
      this.#hash = grow(this.#hash);
      const arena = new Uint32Array(this.#arena.length * 2);
      arena.set(this.#arena);
      this.#arena = arena;
    }
    const base = e * this.#stride;
    this.#arena.set(known, base);
    this.#arena.set(unknown, base + this.#knownWords);
    this.#state[e] = state;
    this.#hash[e] = h;
    this.#size = e + 1;
    if (this.#size > this.#heads.length) {
      // Keep chains short: rebuild the table at twice the size, rethreading every entry.
      this.#heads = new Int32Array(this.#heads.length * 2).fill(-1);
      for (let i = 0; i < this.#size; i++) this.#link(i);
    } else {
      this.#link(e);
    }
  }

  #link(e: number): void {
    const slot = this.#hash[e] & (this.#heads.length - 1);
    this.#next[e] = this.#heads[slot];
    this.#heads[slot] = e;
  }
}

function checkPartition(
  history: Operation[],
  key: string,
  indices: number[],
  deadline: number,
): PartitionResult {
  const n = indices.length;
  const describe = (i: number): string => describeOp(history, indices[i]);
  const notLinearizable = (why: string): PartitionResult => ({
    explanation: `key ${JSON.stringify(key)} is not linearizable: ${why}`,
  });

  // Intern values so model states are small integers: cheap to compare, hash and store.
  const valueIds = new Map<string, number>();
  const values: (string | null)[] = [null];
  const intern = (v: string | null | undefined): number => {
    if (v === null || v === undefined) return ABSENT;
    let id = valueIds.get(v);
    if (id === undefined) {
      id = values.length;
      values.push(v);
      valueIds.set(v, id);
    }
    return id;
  };

  const kind = new Uint8Array(n);
  const arg1 = new Int32Array(n); // put: value; get: value read; cas: expected
  const arg2 = new Int32Array(n); // cas: new value
  const outcome = new Int8Array(n);
  const unknown = new Uint8Array(n);
  const callTime = new Float64Array(n);
  const returnTime = new Float64Array(n);
  let knownCount = 0;
  for (let i = 0; i < n; i++) {
    const op = history[indices[i]];
    const input = op.input;
    const output = op.output;
    unknown[i] = output === undefined ? 1 : 0;
    if (output !== undefined) knownCount++;
    callTime[i] = op.call;
    returnTime[i] = output === undefined ? Number.POSITIVE_INFINITY : op.return;
    outcome[i] = output === undefined ? OUTCOME_UNKNOWN : output.ok ? OUTCOME_OK : OUTCOME_FAILED;
    switch (input.op) {
      case 'put':
        kind[i] = PUT;
        arg1[i] = intern(input.value);
        break;
      case 'get':
        kind[i] = GET;
        // validate() guarantees a known get has ok:true; a missing value means absent.
        arg1[i] = intern(output?.ok ? output.value : null);
        break;
      case 'cas':
        kind[i] = CAS;
        arg1[i] = intern(input.expected);
        arg2[i] = intern(input.value);
        break;
      case 'delete':
        kind[i] = DELETE;
        break;
    }
  }
  const unknownCount = n - knownCount;

  // A necessary condition, checked first because it is linear and names the culprit exactly: a
  // value a get returned, or a successful cas found, must have been written by some op called before
  // that reader returned. Without it, such a history is still refuted, but only after the search
  // has exhausted every order of everything before the read.
  const firstWrite = new Float64Array(values.length).fill(Number.POSITIVE_INFINITY);
  firstWrite[ABSENT] = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const written =
      kind[i] === PUT ? arg1[i] : kind[i] === CAS && outcome[i] !== OUTCOME_FAILED ? arg2[i] : -1;
    if (written >= 0) firstWrite[written] = Math.min(firstWrite[written], callTime[i]);
  }
  for (let i = 0; i < n; i++) {
    const needs = kind[i] === GET || (kind[i] === CAS && outcome[i] === OUTCOME_OK) ? arg1[i] : ABSENT;
    if (firstWrite[needs] > returnTime[i]) {
      return notLinearizable(
        `${describe(i)} needs the value ${formatValue(values[needs])}, but no op on this key that ` +
          'writes it was called before that op returned.',
      );
    }
  }

  /** The model: the state after op i in `state`, or -1 if op i's recorded output is impossible there. */
  const step = (state: number, i: number): number => {
    switch (kind[i]) {
      case PUT:
        return arg1[i];
      case DELETE:
        return ABSENT;
      case GET:
        return state === arg1[i] ? state : -1;
      default: {
        const matches = state === arg1[i];
        const o = outcome[i];
        if (o === OUTCOME_OK) return matches ? arg2[i] : -1;
        if (o === OUTCOME_FAILED) return matches ? -1 : state;
        return matches ? arg2[i] : state;
      }
    }
  };

  // Events: 2i is op i's call, 2i+1 its return, so an event's op is e >> 1 and its partner e ^ 1.
  // `rank` is each event's position in time order; at equal times calls come first (concurrent).
  const order = new Int32Array(2 * n);
  for (let e = 0; e < 2 * n; e++) order[e] = e;
  const time = (e: number): number => ((e & 1) === 0 ? callTime[e >> 1] : returnTime[e >> 1]);
  order.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta < tb) return -1;
    if (ta > tb) return 1;
    return (a & 1) - (b & 1) || a - b;
  });
  const rank = new Int32Array(2 * n);
  for (let k = 0; k < 2 * n; k++) rank[order[k]] = k;

  // The event list holds only ops with known outcomes. An unknown op never returns, so its call
  // would sit at the front of the list for the rest of the search, walked past at every step;
  // instead unknown ops have their own list in call order, and one is a candidate when its call
  // ranks before the first pending return. HEAD and UNKNOWN_HEAD are sentinels.
  const HEAD = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  const UNKNOWN_HEAD = n;
  const nextUnknown = new Int32Array(n + 1);
  const prevUnknown = new Int32Array(n + 1);
  let last = HEAD;
  let lastUnknown = UNKNOWN_HEAD;
  for (let k = 0; k < 2 * n; k++) {
    const e = order[k];
    const i = e >> 1;
    if (!unknown[i]) {
      next[last] = e;
      prev[e] = last;
      last = e;
    } else if ((e & 1) === 0) {
      nextUnknown[lastUnknown] = i;
      prevUnknown[i] = lastUnknown;
      lastUnknown = i;
    }
  }
  next[last] = NIL;
  nextUnknown[lastUnknown] = NIL;

  // Unlink op i (dancing links). A known op's call always has a successor: its own return.
  const lift = (i: number): void => {
    if (unknown[i]) {
      nextUnknown[prevUnknown[i]] = nextUnknown[i];
      if (nextUnknown[i] !== NIL) prevUnknown[nextUnknown[i]] = prevUnknown[i];
      return;
    }
    const e = 2 * i;
    next[prev[e]] = next[e];
    prev[next[e]] = prev[e];
    const m = e + 1;
    next[prev[m]] = next[m];
    if (next[m] !== NIL) prev[next[m]] = prev[m];
  };
  // Exactly undo lift(i); valid because lifts are undone in reverse order.
  const unlift = (i: number): void => {
    if (unknown[i]) {
      nextUnknown[prevUnknown[i]] = i;
      if (nextUnknown[i] !== NIL) prevUnknown[nextUnknown[i]] = i;
      return;
    }
    const e = 2 * i;
    const m = e + 1;
    next[prev[m]] = m;
    if (next[m] !== NIL) prev[next[m]] = m;
    next[prev[e]] = e;
    prev[next[e]] = e;
  };
  /** Only called while some known op is pending, so a return event exists. */
  const firstPendingReturn = (): number => {
    let e = next[HEAD];
    while ((e & 1) === 0) e = next[e];
    return e;
  };

  // The linearized set, as two bitsets: one over the ops with known outcomes, which every
  // linearization must contain, and one over the unknown-outcome ops, which it may leave out. The
  // known half also has a Zobrist hash (an XOR of a random word per member), maintained in O(1)
  // per step, so a cache probe scans whole bitsets only on a hash hit.
  const slot = new Int32Array(n); // op -> its bit in the known or unknown bitset
  for (let i = 0, k = 0, u = 0; i < n; i++) slot[i] = unknown[i] ? u++ : k++;
  const knownBits = new Uint32Array((knownCount + 31) >>> 5);
  const unknownBits = new Uint32Array((unknownCount + 31) >>> 5);
  const zobrist = new Int32Array(n);
  let seed = 0x2545f491;
  for (let i = 0; i < n; i++) {
    seed = (seed + 0x6d2b79f5) | 0;
    let z = Math.imul(seed ^ (seed >>> 15), seed | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    zobrist[i] = unknown[i] ? 0 : z ^ (z >>> 14);
  }
  let hash = 0;
  const linearized = new Uint8Array(n);
  const toggle = (i: number): void => {
    const bitset = unknown[i] ? unknownBits : knownBits;
    bitset[slot[i] >>> 5] ^= 1 << (slot[i] & 31);
    hash ^= zobrist[i];
    linearized[i] ^= 1;
  };

  // The cache of visited configurations, with Lowe's equality test generalized to subsumption for
  // unknown-outcome ops: configuration (K, U, s) — known ops K and unknown ops U linearized, state s
  // — can complete whenever (K, U', s) with U' ⊇ U can, because the ops in U' \ U are never
  // required and may be left out. So a configuration is pruned if one with the same K and s and a
  // subset of its U was visited: either that one failed, or it is an ancestor still exploring every
  // option this one has. Without this, every unknown op doubles the search space for the rest of
  // the history, since it stays a candidate from its call to the end; with it, linearizing an
  // unknown op whose effect is later overwritten is recognized as pointless.
  const cache = new ConfigCache(knownBits.length, unknownBits.length);
  const visit = (state: number): boolean => cache.visit(knownBits, unknownBits, hash, state);

  // Reductions that skip provably redundant branches (in the spirit of partial-order reduction):
  //
  // - A known op that does not change the state (a get, or a cas that failed) and is legal now
  //   can be linearized now without loss: it is a candidate, so everything that must precede it
  //   already has, and any completion that places it later, where the state is the same value,
  //   stays valid with it moved to the front. So when one exists the search takes it and tries
  //   nothing else at that node. This keeps the search near-linear: left to the plain call-order
  //   DFS, a write linearized too early is only discovered by the reads it breaks.
  // - Unknown ops with identical effects (same kind and arguments) are interchangeable, so an
  //   unknown op is tried only after its earlier-called twin has been linearized.
  // - An unknown op immediately followed by a put or delete is pointless: the overwrite erases its
  //   effect, and dropping it (it need never happen) leaves a shorter valid order. So a put or
  //   delete never directly follows an unknown op; if that order was the way on, the same put or
  //   delete is tried from the nearest ancestor reached by a known op, where the state it ignores
  //   was the only difference. Without this, a refutation tries every subset of the pending
  //   unknown writes at every dead end.
  const readOnly = new Uint8Array(n);
  const overwrites = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    readOnly[i] =
      !unknown[i] && (kind[i] === GET || (kind[i] === CAS && outcome[i] === OUTCOME_FAILED)) ? 1 : 0;
    overwrites[i] = kind[i] === PUT || kind[i] === DELETE ? 1 : 0;
  }
  const twin = new Int32Array(n).fill(-1);
  const lastBySignature = new Map<string, number>();
  for (let i = nextUnknown[UNKNOWN_HEAD]; i !== NIL; i = nextUnknown[i]) {
    const signature = `${kind[i]}:${kind[i] === DELETE ? 0 : arg1[i]}:${kind[i] === CAS ? arg2[i] : 0}`;
    twin[i] = lastBySignature.get(signature) ?? -1;
    lastBySignature.set(signature, i);
  }

  // Following from the last rule, an unknown op is only worth linearizing if its effect is observed
  // at once: the state it leaves must make some candidate get or cas legal (a candidate now is a
  // candidate after it, since it changes no return event). Reads legal in the current state would
  // have been taken already, so a candidate failed cas wants any change of state, and the other
  // readers their one value. prepareUnknownPhase collects those wanted values before a node tries
  // its unknown ops, which spares creating, and failing in, a child per pending unknown op at every
  // dead end.
  const wanted = new Int32Array(values.length); // value -> stamp of the node that wants it
  let stamp = 0;
  let anyChangeWanted = false;
  let limit = 0; // the rank of the first pending return: unknown ops called before it are candidates
  const prepareUnknownPhase = (): void => {
    stamp++;
    anyChangeWanted = false;
    let e = next[HEAD];
    for (; (e & 1) === 0; e = next[e]) {
      const i = e >> 1;
      if (kind[i] === GET || (kind[i] === CAS && outcome[i] === OUTCOME_OK)) wanted[arg1[i]] = stamp;
      else if (kind[i] === CAS) anyChangeWanted = true;
    }
    limit = rank[e];
    for (let i = nextUnknown[UNKNOWN_HEAD]; i !== NIL && rank[2 * i] < limit; i = nextUnknown[i]) {
      if (kind[i] === CAS) wanted[arg1[i]] = stamp;
    }
  };

  // The explicit DFS stack: which op was linearized, and the state and phase it was chosen in.
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackPhase = new Uint8Array(n);
  let depth = 0;
  let knownDone = 0;
  let state = ABSENT;
  visit(state);

  // The deepest point reached, for the failure explanation.
  let bestDepth = -1;
  let bestState = ABSENT;
  let bestBlocked = 0;
  let bestTail: number[] = [];

  // Each node of the search walks its candidates in up to three phases: a legal read-only op
  // (taken alone, as above); then known writes; then unknown-outcome ops. Together they try every
  // candidate, so the search stays complete; the order is for speed. Trying unknown ops last
  // linearizes them only where a known op needs their effect, rather than everywhere.
  // `cursor` is an event in the first two phases and an unknown op in the third.
  let phase = PHASE_READ;
  let cursor = next[HEAD];
  let steps = 0;
  for (;;) {
    // Done once every known op is placed: the remaining unknown ops may simply never have happened.
    if (knownDone === knownCount) return 'ok';
    if ((++steps & CLOCK_CHECK_MASK) === 0 && performance.now() > deadline) return 'timeout';

    let candidate = -1;
    if (phase !== PHASE_UNKNOWN) {
      if ((cursor & 1) === 0) {
        candidate = cursor >> 1;
        cursor = next[cursor];
      } else if (phase === PHASE_READ) {
        phase = PHASE_WRITE;
        cursor = next[HEAD];
        continue;
      } else if (unknownCount > 0) {
        phase = PHASE_UNKNOWN;
        prepareUnknownPhase();
        cursor = nextUnknown[UNKNOWN_HEAD];
        continue;
      }
    } else if (cursor !== NIL && rank[2 * cursor] < limit) {
      candidate = cursor;
      cursor = nextUnknown[cursor];
    }

    if (candidate >= 0) {
      const i = candidate;
      const afterUnknown = depth > 0 && unknown[stackOp[depth - 1]] === 1;
      const eligible =
        phase === PHASE_READ
          ? readOnly[i] === 1
          : (phase === PHASE_WRITE ? readOnly[i] === 0 : twin[i] < 0 || linearized[twin[i]] === 1) &&
            !(overwrites[i] && afterUnknown);
      if (!eligible) continue;
      const newState = step(state, i);
      if (newState < 0) continue;
      if (
        phase === PHASE_UNKNOWN &&
        !(newState !== state && (wanted[newState] === stamp || anyChangeWanted))
      ) {
        continue;
      }
      toggle(i);
      if (visit(newState)) {
        stackOp[depth] = i;
        stackState[depth] = state;
        stackPhase[depth] = phase;
        depth++;
        if (!unknown[i]) knownDone++;
        state = newState;
        lift(i);
        phase = PHASE_READ;
        cursor = next[HEAD];
        continue;
      }
      toggle(i);
      // Unless this was the forced read: where it leads was explored already, so this whole node was.
      if (phase !== PHASE_READ) continue;
    }

    // This node is exhausted: record how far it got, then backtrack past any forced reads.
    if (depth > bestDepth) {
      bestDepth = depth;
      bestState = state;
      bestBlocked = firstPendingReturn() >> 1;
      bestTail = Array.from(stackOp.subarray(Math.max(0, depth - EXPLAIN_TAIL), depth));
    }
    let refuted = false;
    for (;;) {
      if (depth === 0) {
        refuted = true;
        break;
      }
      depth--;
      const i = stackOp[depth];
      state = stackState[depth];
      phase = stackPhase[depth];
      if (!unknown[i]) knownDone--;
      toggle(i);
      unlift(i);
      if (phase !== PHASE_READ) {
        if (phase === PHASE_UNKNOWN) {
          cursor = nextUnknown[i];
          prepareUnknownPhase();
        } else {
          cursor = next[2 * i];
        }
        break;
      }
    }
    if (refuted) break;
  }

  const tail = bestTail.map(describe).join('; ');
  const prefix =
    bestDepth === 0
      ? 'No op can come first from the initial state null'
      : `The longest consistent prefix orders ${bestDepth} of them (ending ${tail}) and leaves ` +
        formatValue(values[bestState]);
  return notLinearizable(
    `no valid order of its ${n} ops exists. ${prefix}; from there, no completion linearizes ` +
      `${describe(bestBlocked)} before it returned.`,
  );
}

function formatValue(v: string | null | undefined): string {
  return v === null || v === undefined ? 'null' : JSON.stringify(v);
}

function describeOp(history: Operation[], index: number): string {
  const op = history[index];
  const input = op.input;
  let text: string;
  switch (input.op) {
    case 'put':
      text = `put ${formatValue(input.value)}`;
      break;
    case 'get':
      text = 'get';
      break;
    case 'cas':
      text = `cas ${formatValue(input.expected)}→${formatValue(input.value)}`;
      break;
    case 'delete':
      text = 'delete';
      break;
  }
  const output = op.output;
  if (output === undefined) text += ' → unknown';
  else if (input.op === 'get') text += ` → ${formatValue(output.ok ? output.value : null)}`;
  else if (input.op === 'cas') text += output.ok ? ' → swapped' : ' → failed';
  const end = output === undefined || op.return === Number.POSITIVE_INFINITY ? '∞' : String(op.return);
  return `#${index} (client ${op.clientId}: ${text} [${op.call}, ${end}])`;
}
