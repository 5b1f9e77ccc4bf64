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
 *   search repeatedly takes a call event that precedes the first pending return (any earlier op
 *   is a legal next linearization point), applies the op to the model, and, if legal, unlinks the
 *   op's call and return (dancing links) and continues; reaching a return event means that op
 *   was not linearized in time, so the search backtracks.
 * - A cache of (set of linearized ops, model state) pairs prunes the search: the remaining work
 *   depends only on that pair, so a configuration that was reached before — and therefore failed,
 *   or the search would have stopped — never needs exploring again.
 * - The DFS keeps its own stack, so histories thousands of operations deep cannot overflow the
 *   JS call stack.
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
 * partial linearization found and the op that could not be placed after it.
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

/** A cache bucket entry: one explored (linearized set, state) configuration, chained on hash collision. */
interface CacheEntry {
  bits: Uint32Array;
  state: number;
  next: CacheEntry | undefined;
}

function checkPartition(
  history: Operation[],
  key: string,
  indices: number[],
  deadline: number,
): PartitionResult {
  const n = indices.length;

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
  const unknown = new Uint8Array(n); // doubles as the search phase the op belongs to
  const returnTime = new Float64Array(n);
  let anyUnknown = false;
  for (let i = 0; i < n; i++) {
    const op = history[indices[i]];
    const input = op.input;
    const output = op.output;
    unknown[i] = output === undefined ? 1 : 0;
    anyUnknown ||= output === undefined;
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

  // Entries: 2i is op i's call, 2i+1 its return, so an entry's op is e >> 1, its match e ^ 1,
  // and whether it is a call is (e & 1) === 0. HEAD is a sentinel before the first event.
  const HEAD = 2 * n;
  const order = new Int32Array(2 * n);
  for (let e = 0; e < 2 * n; e++) order[e] = e;
  const time = (e: number): number => ((e & 1) === 0 ? history[indices[e >> 1]].call : returnTime[e >> 1]);
  order.sort((a, b) => {
    const ta = time(a);
    const tb = time(b);
    if (ta < tb) return -1;
    if (ta > tb) return 1;
    // Calls before returns at equal times; then by op for determinism.
    return (a & 1) - (b & 1) || a - b;
  });
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  let last = HEAD;
  for (let k = 0; k < 2 * n; k++) {
    const e = order[k];
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = NIL;

  // Unlink a call and its return. A call always has a successor (its own return at least).
  const lift = (e: number): void => {
    next[prev[e]] = next[e];
    prev[next[e]] = prev[e];
    const m = e ^ 1;
    next[prev[m]] = next[m];
    if (next[m] !== NIL) prev[next[m]] = prev[m];
  };
  // Exactly undo lift(e); valid because lifts are undone in reverse order.
  const unlift = (e: number): void => {
    const m = e ^ 1;
    next[prev[m]] = m;
    if (next[m] !== NIL) prev[next[m]] = m;
    next[prev[e]] = e;
    prev[next[e]] = e;
  };

  // The linearized set as a bitset, plus a Zobrist hash of it (an XOR of a random word per member),
  // maintained in O(1) per step so a cache probe costs a full bitset scan only on a hash hit.
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const zobrist = new Int32Array(n);
  let seed = 0x2545f491;
  for (let i = 0; i < n; i++) {
    seed = (seed + 0x6d2b79f5) | 0;
    let z = Math.imul(seed ^ (seed >>> 15), seed | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    zobrist[i] = z ^ (z >>> 14);
  }
  let hash = 0;

  const cache = new Map<number, CacheEntry>();
  // Keys are masked to 30 bits so V8 keeps them as small integers, the fast path for Map lookups.
  const cacheKey = (h: number, state: number): number => (h ^ Math.imul(state + 1, 0x9e3779b1)) & 0x3fffffff;
  /** Adds (bits, state) unless already present; returns whether it was new. */
  const cacheAdd = (h: number, state: number): boolean => {
    const k = cacheKey(h, state);
    const head = cache.get(k);
    for (let c = head; c !== undefined; c = c.next) {
      if (c.state !== state) continue;
      let same = true;
      for (let w = 0; w < words; w++) {
        if (c.bits[w] !== bits[w]) {
          same = false;
          break;
        }
      }
      if (same) return false;
    }
    cache.set(k, { bits: bits.slice(), state, next: head });
    return true;
  };

  // The explicit DFS stack: which call entry was linearized, and the state and phase before it.
  const stackEntry = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackPhase = new Uint8Array(n);
  let depth = 0;
  let state = ABSENT;

  // The deepest point reached, for the failure explanation.
  let bestDepth = -1;
  let bestState = ABSENT;
  let bestBlocked = 0;
  let bestTail: number[] = [];

  // Each node of the search is explored in two phases: first ops with known outcomes, then ops with
  // unknown ones. Both phases together try every candidate, so the search stays complete; the order
  // only matters for speed. Unknown ops stay candidates from their call to the end of the history,
  // and trying them first would make the search linearize them early everywhere and then backtrack
  // out of it; trying them last linearizes them exactly where a known op needs their effect.
  let phase = 0;
  let entry = next[HEAD];
  let steps = 0;
  for (;;) {
    if (next[HEAD] === NIL) return 'ok';
    if ((++steps & CLOCK_CHECK_MASK) === 0 && performance.now() > deadline) return 'timeout';

    if ((entry & 1) === 0) {
      const i = entry >> 1;
      if (unknown[i] === phase) {
        const newState = step(state, i);
        if (newState >= 0) {
          const w = i >>> 5;
          const mask = 1 << (i & 31);
          bits[w] |= mask;
          const newHash = hash ^ zobrist[i];
          if (cacheAdd(newHash, newState)) {
            stackEntry[depth] = entry;
            stackState[depth] = state;
            stackPhase[depth] = phase;
            depth++;
            state = newState;
            hash = newHash;
            lift(entry);
            phase = 0;
            entry = next[HEAD];
            continue;
          }
          bits[w] &= ~mask;
        }
      }
      entry = next[entry];
      continue;
    }

    // A return event: the op it ends has not been linearized, and no candidate before it works.
    if (phase === 0 && anyUnknown) {
      phase = 1;
      entry = next[HEAD];
      continue;
    }
    if (depth > bestDepth) {
      bestDepth = depth;
      bestState = state;
      bestBlocked = entry >> 1;
      bestTail = [];
      for (let d = Math.max(0, depth - EXPLAIN_TAIL); d < depth; d++) bestTail.push(stackEntry[d] >> 1);
    }
    if (depth === 0) break;
    depth--;
    entry = stackEntry[depth];
    state = stackState[depth];
    phase = stackPhase[depth];
    const i = entry >> 1;
    bits[i >>> 5] &= ~(1 << (i & 31));
    hash ^= zobrist[i];
    unlift(entry);
    entry = next[entry];
  }

  const describe = (i: number): string => describeOp(history, indices[i]);
  const tail = bestTail.map(describe).join('; ');
  const prefix =
    bestDepth === 0
      ? 'no op can come first from the initial state null'
      : `the longest consistent prefix orders ${bestDepth} of them (ending ${tail}) and leaves ${formatValue(values[bestState])}`;
  return {
    explanation:
      `key ${JSON.stringify(key)} is not linearizable: no valid order of its ${n} ops exists. ` +
      `${prefix[0].toUpperCase()}${prefix.slice(1)}; from there, no completion linearizes ` +
      `${describe(bestBlocked)} before it returned.`,
  };
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
