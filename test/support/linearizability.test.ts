import test from 'ava';
import fc from 'fast-check';
import { checkKvHistory, type KvInput, type KvOutput, type Operation } from './linearizability.ts';
import { Prng } from './prng.ts';

// ---- Builders: one client op per call, [call, ret] being the interval the client observed. ----

const put = (clientId: number, key: string, value: string, call: number, ret: number): Operation => ({
  clientId,
  input: { op: 'put', key, value },
  output: { ok: true },
  call,
  return: ret,
});
const get = (clientId: number, key: string, value: string | null, call: number, ret: number): Operation => ({
  clientId,
  input: { op: 'get', key },
  output: { ok: true, value },
  call,
  return: ret,
});
const cas = (
  clientId: number,
  key: string,
  expected: string | null,
  value: string,
  swapped: boolean,
  call: number,
  ret: number,
): Operation => ({
  clientId,
  input: { op: 'cas', key, expected, value },
  output: swapped ? { ok: true } : { ok: false },
  call,
  return: ret,
});
const del = (clientId: number, key: string, call: number, ret: number): Operation => ({
  clientId,
  input: { op: 'delete', key },
  output: { ok: true },
  call,
  return: ret,
});
/** The client timed out or crashed: it never learned the outcome. */
const unknown = (op: Operation): Operation => ({
  ...op,
  output: undefined,
  return: Number.POSITIVE_INFINITY,
});

// ---- Known linearizable histories ----

test('an empty history is linearizable', (t) => {
  t.deepEqual(checkKvHistory([]), { ok: true });
});

test('a sequential history passes', (t) => {
  const h = [
    get(1, 'x', null, 0, 1),
    put(1, 'x', 'a', 2, 3),
    get(2, 'x', 'a', 4, 5),
    put(2, 'x', 'b', 6, 7),
    get(1, 'x', 'b', 8, 9),
    del(1, 'x', 10, 11),
    get(2, 'x', null, 12, 13),
  ];
  t.deepEqual(checkKvHistory(h), { ok: true });
});

test('a get concurrent with a put may see either the old or the new value', (t) => {
  const base = [put(1, 'x', 'a', 0, 10), put(1, 'x', 'b', 20, 40)];
  t.true(checkKvHistory([...base, get(2, 'x', 'a', 25, 35)]).ok);
  t.true(checkKvHistory([...base, get(2, 'x', 'b', 25, 35)]).ok);
  // Two overlapping reads may disagree, in either order, as long as each can be placed.
  t.true(checkKvHistory([...base, get(2, 'x', 'b', 25, 30), get(3, 'x', 'a', 21, 39)]).ok);
});

test('concurrent puts may take effect in either order', (t) => {
  const puts = [put(1, 'x', 'a', 0, 10), put(2, 'x', 'b', 5, 15)];
  t.true(checkKvHistory([...puts, get(3, 'x', 'a', 20, 25)]).ok);
  t.true(checkKvHistory([...puts, get(3, 'x', 'b', 20, 25)]).ok);
});

test('events at the same timestamp count as concurrent', (t) => {
  // The put returns at 10 and the get is called at 10: either order is allowed.
  t.true(checkKvHistory([put(1, 'x', 'a', 0, 10), get(2, 'x', null, 10, 20)]).ok);
});

test('cas chains pass, including failed swaps and swaps from absent', (t) => {
  const h = [
    cas(1, 'x', null, 'a', true, 0, 1),
    cas(2, 'x', null, 'z', false, 2, 3),
    cas(1, 'x', 'a', 'b', true, 4, 5),
    cas(2, 'x', 'a', 'z', false, 6, 7),
    cas(1, 'x', 'b', 'c', true, 8, 9),
    get(2, 'x', 'c', 10, 11),
  ];
  t.true(checkKvHistory(h).ok);
});

test('concurrent cas contenders: exactly one can win', (t) => {
  const contenders = [cas(1, 'x', null, 'a', true, 0, 10), cas(2, 'x', null, 'b', false, 0, 10)];
  t.true(checkKvHistory([...contenders, get(3, 'x', 'a', 20, 21)]).ok);
  t.false(checkKvHistory([...contenders, get(3, 'x', 'b', 20, 21)]).ok);
  // Both winning is impossible: the second to go would have seen the first one's value.
  t.false(checkKvHistory([cas(1, 'x', null, 'a', true, 0, 10), cas(2, 'x', null, 'b', true, 0, 10)]).ok);
});

test('an unknown-outcome put that took effect explains a later read', (t) => {
  const h = [put(1, 'x', 'a', 0, 5), unknown(put(2, 'x', 'b', 10, 20)), get(3, 'x', 'b', 100, 110)];
  t.true(checkKvHistory(h).ok);
});

test('an unknown-outcome put that never took effect is fine too', (t) => {
  const h = [
    put(1, 'x', 'a', 0, 5),
    unknown(put(2, 'x', 'b', 10, 20)),
    get(3, 'x', 'a', 100, 110),
    get(3, 'x', 'a', 200, 210),
  ];
  t.true(checkKvHistory(h).ok);
});

test('an unknown-outcome op may take effect long after the client gave up', (t) => {
  const h = [
    unknown(put(2, 'x', 'b', 10, 20)),
    get(3, 'x', null, 100, 110),
    get(3, 'x', 'b', 200, 210),
    put(1, 'x', 'c', 300, 310),
    get(1, 'x', 'c', 400, 410),
  ];
  t.true(checkKvHistory(h).ok);
});

test('unknown-outcome cas and delete may or may not have taken effect', (t) => {
  const base = [put(1, 'x', 'a', 0, 5), unknown(cas(2, 'x', 'a', 'b', true, 10, 20))];
  t.true(checkKvHistory([...base, get(3, 'x', 'b', 30, 40)]).ok, 'cas swapped');
  t.true(checkKvHistory([...base, get(3, 'x', 'a', 30, 40)]).ok, 'cas never happened');
  const withDelete = [put(1, 'x', 'a', 0, 5), unknown(del(2, 'x', 10, 20))];
  t.true(checkKvHistory([...withDelete, get(3, 'x', null, 30, 40)]).ok, 'delete happened');
  t.true(checkKvHistory([...withDelete, get(3, 'x', 'a', 30, 40)]).ok, 'delete never happened');
  // An unknown get constrains nothing.
  t.true(checkKvHistory([...withDelete, unknown(get(3, 'x', 'zzz', 30, 40))]).ok);
});

test('an unknown cas that was still pending only swaps from its expected value', (t) => {
  // The unknown cas expects "a", but the value is "c" for its whole lifetime: it cannot produce "b".
  const h = [put(1, 'x', 'c', 0, 5), unknown(cas(2, 'x', 'a', 'b', true, 10, 20)), get(3, 'x', 'b', 30, 40)];
  t.false(checkKvHistory(h).ok);
});

test('an unknown-outcome op takes effect once, at a single point', (t) => {
  // "b" was seen, so the unknown put happened before 30; nothing rewrote "a" after that.
  const h = [
    put(1, 'x', 'a', 0, 5),
    unknown(put(2, 'x', 'b', 10, 20)),
    get(3, 'x', 'b', 20, 30),
    get(3, 'x', 'a', 40, 50),
  ];
  const r = checkKvHistory(h);
  t.false(r.ok);
  t.log(r.explanation);
  // Whereas a second, concurrent write of "a" explains it.
  t.true(checkKvHistory([...h, put(4, 'x', 'a', 0, 45)]).ok);
});

test('an unknown-outcome op cannot take effect before it was called', (t) => {
  const h = [put(1, 'x', 'a', 0, 5), get(3, 'x', 'b', 10, 20), unknown(put(2, 'x', 'b', 30, 40))];
  t.false(checkKvHistory(h).ok);
});

test('keys are checked independently', (t) => {
  // Interleaved across keys, each key's own history is fine.
  const h = [
    put(1, 'x', 'a', 0, 10),
    put(2, 'y', 'b', 0, 10),
    get(1, 'y', 'b', 20, 30),
    get(2, 'x', 'a', 20, 30),
    get(3, 'z', null, 0, 100),
  ];
  t.true(checkKvHistory(h).ok);
});

// ---- Known non-linearizable histories ----

test('a stale read after a completed write fails', (t) => {
  // Control: with the puts overlapping, "a" may legitimately have been written last.
  t.true(checkKvHistory([put(1, 'x', 'a', 0, 5), put(2, 'x', 'b', 0, 10), get(3, 'x', 'a', 20, 30)]).ok);
  // Once "b" is written strictly after "a" and returns before the read starts, "a" is stale.
  const strict = [put(1, 'x', 'a', 0, 5), put(1, 'x', 'b', 6, 10), get(2, 'x', 'a', 20, 30)];
  const r = checkKvHistory(strict);
  t.false(r.ok);
  t.is(r.key, 'x');
  t.falsy(r.timedOut);
  t.regex(r.explanation ?? '', /get → "a" \[20, 30\]/);
  t.log(r.explanation);

  const fromAbsent = checkKvHistory([put(1, 'x', 'a', 0, 10), get(2, 'x', null, 20, 30)]);
  t.false(fromAbsent.ok);
});

test('two sequential reads in an order contradicting real time fail', (t) => {
  // "b" is seen, then a later read sees "a" again, though "a" was written before "b" started.
  const h = [
    put(1, 'x', 'a', 0, 5),
    put(1, 'x', 'b', 10, 100),
    get(2, 'x', 'b', 20, 30),
    get(3, 'x', 'a', 40, 50),
  ];
  const r = checkKvHistory(h);
  t.false(r.ok);
  t.is(r.key, 'x');
  t.log(r.explanation);
});

test('a cas succeeding when its expected value could not be current fails', (t) => {
  const h = [put(1, 'x', 'a', 0, 5), put(1, 'x', 'b', 10, 15), cas(2, 'x', 'a', 'c', true, 20, 25)];
  t.false(checkKvHistory(h).ok);
  // Expected absence after the key was certainly written.
  t.false(checkKvHistory([put(1, 'x', 'a', 0, 5), cas(2, 'x', null, 'c', true, 20, 25)]).ok);
  // And the converse: a cas that failed although its expected value was certainly current.
  t.false(checkKvHistory([put(1, 'x', 'a', 0, 5), cas(2, 'x', 'a', 'c', false, 20, 25)]).ok);
});

test('a lost write fails', (t) => {
  // The put of "b" is acknowledged, yet later reads (started after it returned) see only "a".
  const h = [
    put(1, 'x', 'a', 0, 5),
    put(2, 'x', 'b', 10, 20),
    get(3, 'x', 'a', 30, 40),
    get(4, 'x', 'a', 50, 60),
    put(1, 'y', 'unrelated', 0, 100),
  ];
  const r = checkKvHistory(h);
  t.false(r.ok);
  t.is(r.key, 'x');
  t.log(r.explanation);
});

test('reading a value that was never written fails', (t) => {
  const h = [put(1, 'x', 'a', 0, 5), get(2, 'x', 'z', 0, 10)];
  const r = checkKvHistory(h);
  t.false(r.ok);
  t.regex(r.explanation ?? '', /get → "z"/);
  // Deleted values do not come back either.
  t.false(checkKvHistory([put(1, 'x', 'a', 0, 5), del(1, 'x', 6, 7), get(2, 'x', 'a', 8, 9)]).ok);
});

test('only the failing key is reported', (t) => {
  const h = [
    put(1, 'good', 'a', 0, 10),
    get(2, 'good', 'a', 20, 30),
    put(1, 'bad', 'a', 0, 10),
    get(2, 'bad', null, 20, 30),
  ];
  const r = checkKvHistory(h);
  t.false(r.ok);
  t.is(r.key, 'bad');
});

test('malformed histories are rejected rather than guessed at', (t) => {
  t.throws(() => checkKvHistory([put(1, 'x', 'a', 10, 5)]), { instanceOf: RangeError });
  t.throws(() => checkKvHistory([put(1, 'x', 'a', Number.NaN, 5)]), { instanceOf: RangeError });
  const failedPut: Operation = { ...put(1, 'x', 'a', 0, 5), output: { ok: false } };
  t.throws(() => checkKvHistory([failedPut]), { instanceOf: TypeError });
});

test('a search that runs out of time reports timedOut and not ok', (t) => {
  // 32 mutually concurrent puts, then two reads that disagree though nothing is written between
  // them: refuting it means exploring every subset of the puts.
  const h: Operation[] = [];
  for (let i = 0; i < 32; i++) h.push(put(i, 'x', `v${i}`, 0, 100));
  h.push(get(98, 'x', 'v0', 200, 210), get(99, 'x', 'v1', 220, 230));
  const r = checkKvHistory(h, { timeoutMs: 50 });
  t.false(r.ok);
  t.true(r.timedOut);
  t.is(r.key, 'x');
  // A generous timeout does not affect an easy history.
  t.deepEqual(checkKvHistory([put(1, 'x', 'a', 0, 1)], { timeoutMs: 10_000 }), { ok: true });
});

// ---- Property tests against a real in-memory map ----

const KEYS = ['a', 'b', 'c'];
const VALUES = ['v0', 'v1', 'v2', 'v3'];

interface Command {
  op: 'put' | 'get' | 'cas' | 'delete';
  key: string;
  value: string;
  /** For cas: use the key's current value as expected (a swap), or `fixedExpected`. */
  expectCurrent: boolean;
  fixedExpected: string | null;
  client: number;
  before: number;
  after: number;
  fate: 'known' | 'unknown-applied' | 'unknown-lost';
}

const commandArb = (withUnknown: boolean): fc.Arbitrary<Command> =>
  fc.record({
    op: fc.constantFrom('put', 'get', 'get', 'cas', 'delete'),
    key: fc.constantFrom(...KEYS),
    value: fc.constantFrom(...VALUES),
    expectCurrent: fc.boolean(),
    fixedExpected: fc.constantFrom(null, ...VALUES),
    client: fc.integer({ min: 0, max: 5 }),
    before: fc.integer({ min: 0, max: 350 }),
    after: fc.integer({ min: 0, max: 350 }),
    fate: withUnknown
      ? fc.constantFrom('known', 'known', 'known', 'known', 'unknown-applied', 'unknown-lost')
      : fc.constant('known'),
  });

/**
 * Runs the commands one at a time against a real Map, the i-th at instant 100·i + 50, and records
 * what a client would have seen. With `widen`, each interval is stretched around that instant, so
 * ops overlap their neighbours but the real execution remains a valid linearization.
 */
function execute(commands: Command[], widen: boolean): Operation[] {
  const store = new Map<string, string>();
  const history: Operation[] = [];
  commands.forEach((c, i) => {
    const at = 100 * i + 50;
    const call = widen ? at - c.before : at - 40;
    const ret = widen ? at + c.after : at + 40;
    const current = store.get(c.key) ?? null;
    let input: KvInput;
    let output: KvOutput;
    switch (c.op) {
      case 'put':
        input = { op: 'put', key: c.key, value: c.value };
        output = { ok: true };
        if (c.fate !== 'unknown-lost') store.set(c.key, c.value);
        break;
      case 'get':
        input = { op: 'get', key: c.key };
        output = { ok: true, value: current };
        break;
      case 'cas': {
        const expected = c.expectCurrent ? current : c.fixedExpected;
        input = { op: 'cas', key: c.key, expected, value: c.value };
        output = { ok: expected === current };
        if (expected === current && c.fate !== 'unknown-lost') store.set(c.key, c.value);
        break;
      }
      case 'delete':
        input = { op: 'delete', key: c.key };
        output = { ok: true };
        if (c.fate !== 'unknown-lost') store.delete(c.key);
        break;
    }
    if (c.fate === 'known') history.push({ clientId: c.client, input, output, call, return: ret });
    else
      history.push({ clientId: c.client, input, output: undefined, call, return: Number.POSITIVE_INFINITY });
  });
  return history;
}

const knownGets = (h: Operation[]): number[] =>
  h.flatMap((op, i) => (op.input.op === 'get' && op.output !== undefined ? [i] : []));

test('property: histories of a real map are linearizable, sequential or widened, with unknown outcomes', (t) => {
  fc.assert(
    fc.property(
      fc.array(commandArb(true), { maxLength: 60, size: 'max' }),
      fc.boolean(),
      (commands, widen) => {
        const r = checkKvHistory(execute(commands, widen));
        if (!r.ok) throw new Error(`expected ok, got ${JSON.stringify(r)}`);
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('property: a get that read a never-written value is caught', (t) => {
  fc.assert(
    fc.property(
      fc.array(commandArb(true), { minLength: 1, maxLength: 60, size: 'max' }),
      fc.boolean(),
      fc.nat(),
      (commands, widen, pick) => {
        const h = execute(commands, widen);
        const gets = knownGets(h);
        fc.pre(gets.length > 0);
        const victim = gets[pick % gets.length];
        h[victim] = { ...h[victim], output: { ok: true, value: 'never-written' } };
        const r = checkKvHistory(h);
        if (r.ok || r.timedOut) throw new Error(`expected a failure, got ${JSON.stringify(r)}`);
        if (r.key !== h[victim].input.key) throw new Error(`wrong key reported: ${JSON.stringify(r)}`);
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('property: in a strictly sequential history, any wrong get result or flipped cas is caught', (t) => {
  // Without overlap or unknown outcomes the real order is the only linearization, so every
  // deviation from what the map returned must be refuted — including plausible, once-written values.
  fc.assert(
    fc.property(
      fc.array(commandArb(false), { minLength: 1, maxLength: 60, size: 'max' }),
      fc.nat(),
      fc.constantFrom(null, ...VALUES),
      (commands, pick, wrong) => {
        const h = execute(commands, false);
        const targets = h.flatMap((op, i) => (op.input.op === 'get' || op.input.op === 'cas' ? [i] : []));
        fc.pre(targets.length > 0);
        const victim = targets[pick % targets.length];
        const op = h[victim];
        if (op.input.op === 'cas') {
          h[victim] = { ...op, output: { ok: !op.output?.ok } as KvOutput };
        } else {
          const read = op.output?.ok ? op.output.value : undefined;
          fc.pre(read !== wrong);
          h[victim] = { ...op, output: { ok: true, value: wrong } };
        }
        const r = checkKvHistory(h);
        if (r.ok) throw new Error('expected a failure');
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

/**
 * The reference: tries every order of the whole history (no per-key split, no reductions) that
 * respects real time, letting unknown-outcome ops take effect anywhere after their call or never.
 * It only remembers which (linearized ops, store contents) it has already seen fail, so it is
 * exponential and for small histories only.
 */
function bruteForceLinearizable(history: Operation[]): boolean {
  const ret = (op: Operation): number => (op.output === undefined ? Number.POSITIVE_INFINITY : op.return);
  const done = history.map(() => false);
  const failed = new Set<string>();
  const search = (store: ReadonlyMap<string, string>): boolean => {
    if (history.every((op, i) => done[i] || op.output === undefined)) return true;
    const seen = `${done.map(Number).join('')} ${JSON.stringify([...store].sort())}`;
    if (failed.has(seen)) return false;
    failed.add(seen);
    for (let i = 0; i < history.length; i++) {
      const op = history[i];
      if (done[i]) continue;
      // Some other pending op returned before this one was called, so it must go first.
      if (history.some((p, j) => !done[j] && j !== i && ret(p) < op.call)) continue;
      const current = store.get(op.input.key) ?? null;
      const out = op.output;
      const next = new Map(store);
      const input = op.input;
      if (input.op === 'put') next.set(input.key, input.value);
      else if (input.op === 'delete') next.delete(input.key);
      else if (input.op === 'get') {
        if (out !== undefined && (out.ok ? (out.value ?? null) : null) !== current) continue;
      } else {
        const swaps = current === input.expected;
        if (out !== undefined && out.ok !== swaps) continue;
        if (swaps) next.set(input.key, input.value);
      }
      done[i] = true;
      const found = search(next);
      done[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(new Map());
}

const randomOpArb: fc.Arbitrary<Operation> = fc
  .record({
    clientId: fc.integer({ min: 0, max: 3 }),
    op: fc.constantFrom('put', 'get', 'get', 'cas', 'delete'),
    key: fc.constantFrom('x', 'x', 'y'),
    value: fc.constantFrom('a', 'b'),
    read: fc.constantFrom(null, 'a', 'b'),
    expected: fc.constantFrom(null, 'a', 'b'),
    swapped: fc.boolean(),
    unknown: fc.integer({ min: 0, max: 5 }),
    call: fc.integer({ min: 0, max: 20 }),
    duration: fc.integer({ min: 0, max: 12 }),
  })
  .map((r): Operation => {
    let input: KvInput;
    let output: KvOutput;
    if (r.op === 'put') [input, output] = [{ op: 'put', key: r.key, value: r.value }, { ok: true }];
    else if (r.op === 'delete') [input, output] = [{ op: 'delete', key: r.key }, { ok: true }];
    else if (r.op === 'get')
      [input, output] = [
        { op: 'get', key: r.key },
        { ok: true, value: r.read },
      ];
    else {
      input = { op: 'cas', key: r.key, expected: r.expected, value: r.value };
      output = r.swapped ? { ok: true } : { ok: false };
    }
    const op: Operation = { clientId: r.clientId, input, output, call: r.call, return: r.call + r.duration };
    return r.unknown === 0 ? { ...op, output: undefined, return: Number.POSITIVE_INFINITY } : op;
  });

test('property: on small random histories the checker agrees with brute force', (t) => {
  let linearizable = 0;
  let not = 0;
  fc.assert(
    fc.property(fc.array(randomOpArb, { maxLength: 7 }), (history) => {
      const expected = bruteForceLinearizable(history);
      const r = checkKvHistory(history);
      if (r.ok !== expected)
        throw new Error(`checker said ${JSON.stringify(r)}, brute force said ${expected}`);
      if (expected) linearizable++;
      else not++;
    }),
    { numRuns: 3000 },
  );
  t.log(`${linearizable} linearizable, ${not} not`);
  // Both verdicts must be well represented, or the agreement means little.
  t.true(linearizable > 300 && not > 300);
});

test('property: on real-map histories with corrupted results the checker agrees with brute force', (t) => {
  // Near-linearizable histories (overlapping intervals, unknown outcomes) with one op's result
  // corrupted: the borderline cases, where a wrong verdict would hide.
  let linearizable = 0;
  let not = 0;
  fc.assert(
    fc.property(
      fc.array(commandArb(true), { minLength: 4, maxLength: 14 }),
      fc.nat(),
      fc.constantFrom(null, ...VALUES),
      (commands, pick, wrong) => {
        const h = execute(commands, true);
        const victim = pick % h.length;
        const op = h[victim];
        if (op.input.op === 'get') h[victim] = { ...op, output: { ok: true, value: wrong } };
        else if (op.input.op === 'cas') h[victim] = { ...op, output: { ok: !op.output?.ok } as KvOutput };
        else if (op.output === undefined) h[victim] = { ...op, output: { ok: true }, return: op.call + 120 };
        const expected = bruteForceLinearizable(h);
        const r = checkKvHistory(h);
        if (r.ok !== expected)
          throw new Error(`checker said ${JSON.stringify(r)}, brute force said ${expected}`);
        if (expected) linearizable++;
        else not++;
      },
    ),
    { numRuns: 1000 },
  );
  t.log(`${linearizable} linearizable, ${not} not`);
  t.true(linearizable > 100 && not > 100);
});

// ---- Performance sanity ----

/**
 * A linearizable history from `clients` concurrent clients, each issuing ops back to back; every op
 * takes effect on a real Map at a random instant inside its interval. `unknownRate` of the writes
 * are recorded as timed out, half of those having taken effect.
 */
function concurrentHistory(opts: {
  seed: number;
  ops: number;
  keys: number;
  clients: number;
  values: number;
  unknownRate: number;
}): Operation[] {
  const rng = new Prng(opts.seed);
  const rand = (): number => rng.next();
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const keys = Array.from({ length: opts.keys }, (_, i) => `k${i}`);
  const values = Array.from({ length: opts.values }, (_, i) => `v${i}`);
  const cursor = Array.from({ length: opts.clients }, () => rand() * 10);
  const planned: { client: number; input: KvInput; call: number; ret: number; at: number; fate: string }[] =
    [];
  for (let n = 0; n < opts.ops; n++) {
    const client = n % opts.clients;
    const call = cursor[client] + rand() * 5;
    const ret = call + 1 + rand() * 40;
    cursor[client] = ret;
    const key = pick(keys);
    const r = rand();
    const input: KvInput =
      r < 0.4
        ? { op: 'get', key }
        : r < 0.7
          ? { op: 'put', key, value: pick(values) }
          : r < 0.9
            ? { op: 'cas', key, expected: rand() < 0.2 ? null : pick(values), value: pick(values) }
            : { op: 'delete', key };
    const u = rand();
    const fate =
      input.op !== 'get' && u < opts.unknownRate ? (u < opts.unknownRate / 2 ? 'applied' : 'lost') : 'known';
    planned.push({ client, input, call, ret, at: call + rand() * (ret - call), fate });
  }
  const store = new Map<string, string>();
  const byEffect = [...planned].sort((a, b) => a.at - b.at);
  const history: Operation[] = [];
  for (const p of byEffect) {
    const current = store.get(p.input.key) ?? null;
    let output: KvOutput = { ok: true };
    const applies = p.fate !== 'lost';
    switch (p.input.op) {
      case 'get':
        output = { ok: true, value: current };
        break;
      case 'put':
        if (applies) store.set(p.input.key, p.input.value);
        break;
      case 'delete':
        if (applies) store.delete(p.input.key);
        break;
      case 'cas':
        output = { ok: p.input.expected === current };
        if (applies && p.input.expected === current) store.set(p.input.key, p.input.value);
        break;
    }
    history.push(
      p.fate === 'known'
        ? { clientId: p.client, input: p.input, output, call: p.call, return: p.ret }
        : {
            clientId: p.client,
            input: p.input,
            output: undefined,
            call: p.call,
            return: Number.POSITIVE_INFINITY,
          },
    );
  }
  // Hand the checker the history in call order, as a recorder would.
  return history.sort((a, b) => a.call - b.call);
}

test('performance: 5,000 ops across 20 keys from 8 concurrent clients', (t) => {
  const h = concurrentHistory({ seed: 1, ops: 5000, keys: 20, clients: 8, values: 5, unknownRate: 0 });
  const start = performance.now();
  t.deepEqual(checkKvHistory(h), { ok: true });
  t.log(`checked in ${(performance.now() - start).toFixed(0)} ms`);
  // And the same history is really searched: after a final, quiescent put, a read of an older
  // (once-written) value is refuted.
  const end = Math.max(...h.map((op) => op.return)) + 100;
  const stale = [...h, put(0, 'k0', 'fresh', end, end + 10), get(1, 'k0', 'v0', end + 20, end + 30)];
  const r = checkKvHistory(stale);
  t.false(r.ok);
  t.is(r.key, 'k0');
});

test('performance: 2,000 ops on one key from 10 clients, with some unknown outcomes', (t) => {
  for (const unknownRate of [0, 0.02]) {
    const h = concurrentHistory({ seed: 7, ops: 2000, keys: 1, clients: 10, values: 4, unknownRate });
    const start = performance.now();
    t.deepEqual(checkKvHistory(h), { ok: true });
    t.log(`unknownRate ${unknownRate}: checked in ${(performance.now() - start).toFixed(0)} ms`);
  }
});
