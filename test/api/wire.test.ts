import test from 'ava';
import fc from 'fast-check';
import * as z from 'zod';
import {
  arrayOf,
  BadJsonError,
  BodyTooLargeError,
  consulBody,
  consulObject,
  foldKey,
  foldKeys,
  goDuration,
  keySpecFromZod,
  LEAF,
  mapOf,
  objectKeys,
  parseJsonBody,
} from '../../src/api/wire/consul-json.ts';
import {
  DurationError,
  formatGoDuration,
  formatGoDurationNanos,
  MAX_DURATION_NANOS,
  MIN_DURATION_NANOS,
  millisToNanos,
  nanosToMillis,
  parseConsulDuration,
  parseConsulDurationNanos,
  parseGoDuration,
  parseGoDurationNanos,
} from '../../src/api/wire/duration.ts';
import { scanJson } from '../../src/api/wire/json-body.ts';

// ---------------------------------------------------------------------------------------------
// Go durations
// ---------------------------------------------------------------------------------------------

const NS = 1n;
const US = 1_000n;
const MS = 1_000_000n;
const S = 1_000_000_000n;
const M = 60n * S;
const H = 60n * M;

/** Inputs Go's time.ParseDuration accepts, with the nanoseconds it returns. */
const validDurations: ReadonlyArray<readonly [string, bigint]> = [
  // plain numbers and the unit-less zero
  ['0', 0n],
  ['-0', 0n],
  ['+0', 0n],
  ['7s', 7n * S],
  ['45s', 45n * S],
  ['2500s', 2500n * S],
  ['-7s', -7n * S],
  ['+7s', 7n * S],
  ['0s', 0n],
  ['0h', 0n],
  ['000010ns', 10n],
  // fractions, with digits on either side of the point or both
  ['7.0s', 7n * S],
  ['7.25s', 7n * S + 250n * MS],
  ['7.s', 7n * S],
  ['.25s', 250n * MS],
  ['2.00s', 2n * S],
  ['2.008s', 2n * S + 8n * MS],
  ['2.0080s', 2n * S + 8n * MS],
  ['50.00500s', 50n * S + 5n * MS],
  ['1.5h', H + 30n * M],
  ['-1.5h', -(H + 30n * M)],
  ['1.5ms', 1_500_000n],
  ['0.5ns', 0n], // fractions of a nanosecond truncate
  ['1.9ns', 1n],
  // every unit, both micro spellings
  ['10ns', 10n * NS],
  ['21us', 21n * US],
  ['22\u00b5s', 22n * US], // U+00B5 micro sign
  ['23\u03bcs', 23n * US], // U+03BC Greek mu
  ['300us', 300n * US],
  ['24ms', 24n * MS],
  ['25s', 25n * S],
  ['26m', 26n * M],
  ['27h', 27n * H],
  ['72h', 72n * H],
  // sequences, in any order, units repeated
  ['2h45m', 2n * H + 45n * M],
  ['1h15m30.5s', H + 15n * M + 30n * S + 500n * MS],
  ['12.5s3m', 3n * M + 12n * S + 500n * MS],
  ['-3m1.2s', -(3n * M + S + 200n * MS)],
  ['1s1s1s', 3n * S],
  ['2h3m4s5ms6us7ns', 2n * H + 3n * M + 4n * S + 5n * MS + 6n * US + 7n],
  ['40h8m15.125s', 40n * H + 8n * M + 15n * S + 125n * MS],
  // large values, beyond float64's exact integers
  ['48123456789ns', 48_123_456_789n],
  ['9007199254740993ns', 9_007_199_254_740_993n], // 2^53 + 1
  // long fractions: digits past 63 bits are ignored, the float64 product is truncated
  ['0.3333333333333333333h', 20n * M],
  ['0.100000000000000000000h', 6n * M],
  ['0.830103483285477580700h', 49n * M + 48n * S + 372_539_827n],
  // the int64 limits, reached several ways
  ['9223372036854775807ns', MAX_DURATION_NANOS],
  ['9223372036854775.807us', MAX_DURATION_NANOS],
  ['9223372036s854ms775us807ns', MAX_DURATION_NANOS],
  ['2562047h47m16.854775807s', MAX_DURATION_NANOS],
  ['-9223372036854775808ns', MIN_DURATION_NANOS],
  ['-9223372036854775.808us', MIN_DURATION_NANOS],
  ['-9223372036s854ms775us808ns', MIN_DURATION_NANOS],
  ['-2562047h47m16.854775808s', MIN_DURATION_NANOS],
];

/** Inputs Go rejects, with the reason meshd gives. */
const invalidDurations: ReadonlyArray<readonly [string, RegExp]> = [
  ['', /empty/],
  ['3', /missing unit/],
  ['10', /missing unit/],
  ['-', /missing number/],
  ['+', /missing number/],
  ['s', /expected a number/],
  ['.', /expected digits/],
  ['-.', /expected digits/],
  ['.s', /expected digits/],
  ['+.s', /expected digits/],
  ['1d', /unknown unit "d"/],
  ['10x', /unknown unit "x"/],
  ['1w', /unknown unit "w"/],
  ['1S', /unknown unit "S"/], // units are case-sensitive
  ['1Ms', /unknown unit "Ms"/],
  ['1 s', /unknown unit " s"/], // no whitespace anywhere
  ['1s ', /unknown unit "s "/],
  [' 1s', /expected a number/],
  ['1h 30m', /unknown unit "h "/],
  ['1e3s', /unknown unit "e"/],
  ['--1s', /expected a number/],
  ['-+1s', /expected a number/],
  ['1s-1s', /unknown unit "s-"/],
  ['1..5s', /missing unit/], // "1." then ".5s" would need a unit between them
  ['0x10s', /unknown unit "x"/],
  ['\u00b5s', /expected a number/],
  ['1\uFFFD', /unknown unit "\uFFFD"/],
  ['hello \u00ff world', /expected a number/],
  // overflow of the integer part, of a unit product, of a fraction and of the sum
  ['9223372036854775810ns', /out of range/],
  ['9223372036854775808ns', /out of range/],
  ['-9223372036854775809ns', /out of range/],
  ['99999999999999999999ns', /out of range/],
  ['9223372036854776us', /out of range/],
  ['3000000h', /out of range/],
  ['9223372036854775.808us', /out of range/],
  ['9223372036854ms775us808ns', /out of range/],
  ['2562047h47m16.854775808s', /out of range/],
  ['2562047h2562047h', /out of range/],
];

test('parses every duration Go accepts, to the nanosecond', (t) => {
  for (const [input, want] of validDurations) {
    t.is(parseGoDurationNanos(input), want, input);
    t.is(parseGoDuration(input), nanosToMillis(want), input);
  }
});

test('rejects every duration Go rejects, with a DurationError naming the input', (t) => {
  for (const [input, reason] of invalidDurations) {
    const err = t.throws(() => parseGoDuration(input), { instanceOf: DurationError }, JSON.stringify(input));
    t.is(err?.name, 'DurationError');
    t.true(err?.message.startsWith(`invalid duration ${JSON.stringify(input)}: `), err?.message);
    t.regex(err?.reason ?? '', reason, JSON.stringify(input));
    t.is(err?.input, input);
  }
});

test('the error message has the shape the HTTP API shows', (t) => {
  t.throws(() => parseGoDuration('10x'), { message: 'invalid duration "10x": unknown unit "x"' });
  t.throws(() => parseGoDuration('3'), { message: /^invalid duration "3": missing unit/ });
});

test('a huge invalid input is not echoed whole', (t) => {
  const huge = `1${'x'.repeat(100_000)}`;
  const err = t.throws(() => parseGoDuration(huge), { instanceOf: DurationError });
  t.true((err?.message.length ?? Infinity) < 300);
});

test('milliseconds: fractional where Go has nanoseconds', (t) => {
  t.is(parseGoDuration('1.5ms'), 1.5);
  t.is(parseGoDuration('300us'), 0.3);
  t.is(parseGoDuration('300µs'), 0.3);
  t.is(parseGoDuration('10ns'), 0.00001);
  t.is(parseGoDuration('10s'), 10_000);
  t.is(parseGoDuration('72h'), 72 * 3_600_000);
  t.is(parseGoDuration('-1.5s'), -1500);
  t.true(Object.is(parseGoDuration('-0'), 0), '-0 is zero, not negative zero');
});

/** Go's Duration.String() for these nanosecond counts. */
const formatted: ReadonlyArray<readonly [bigint, string]> = [
  [0n, '0s'],
  [1n, '1ns'],
  [999n, '999ns'],
  [1_100n, '1.1µs'],
  [300n * US, '300µs'],
  [2_200n * US, '2.2ms'],
  [1_500_000n, '1.5ms'],
  [3_300n * MS, '3.3s'],
  [1_500n * MS, '1.5s'],
  [90n * S, '1m30s'],
  [4n * M + 5n * S, '4m5s'],
  [4n * M + 5_001n * MS, '4m5.001s'],
  [H, '1h0m0s'],
  [5n * H + 6n * M + 7_001n * MS, '5h6m7.001s'],
  [8n * M + 1n, '8m0.000000001s'],
  [72n * H, '72h0m0s'],
  [-1_500n * MS, '-1.5s'],
  [-1n, '-1ns'],
  [MAX_DURATION_NANOS, '2562047h47m16.854775807s'],
  [MIN_DURATION_NANOS, '-2562047h47m16.854775808s'],
];

test('formats as Go Duration.String()', (t) => {
  for (const [ns, want] of formatted) {
    t.is(formatGoDurationNanos(ns), want, String(ns));
    t.is(parseGoDurationNanos(want), ns, want);
  }
  t.is(formatGoDuration(3_600_000), '1h0m0s');
  t.is(formatGoDuration(90_000), '1m30s');
  t.is(formatGoDuration(1_500), '1.5s');
  t.is(formatGoDuration(1.5), '1.5ms');
  t.is(formatGoDuration(0.3), '300µs');
  t.is(formatGoDuration(0.00001), '10ns');
  t.is(formatGoDuration(0), '0s');
  t.is(formatGoDuration(-0), '0s');
});

test('formatting refuses what no Go duration can be', (t) => {
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1e300, -1e300, 2 ** 63 / 1e6 + 1e6]) {
    t.throws(() => formatGoDuration(bad), { instanceOf: DurationError }, String(bad));
  }
  t.throws(() => formatGoDurationNanos(MAX_DURATION_NANOS + 1n), { instanceOf: DurationError });
  t.throws(() => formatGoDurationNanos(MIN_DURATION_NANOS - 1n), { instanceOf: DurationError });
});

test('Consul durations: Go strings or nanosecond numbers', (t) => {
  t.is(parseConsulDuration('10s'), 10_000);
  t.is(parseConsulDuration(10_000_000_000), 10_000);
  t.is(parseConsulDuration(1_500_000), 1.5);
  t.is(parseConsulDuration(0), 0);
  t.is(parseConsulDuration(-5_000_000_000), -5_000);
  t.is(parseConsulDurationNanos(1.9), 1n, 'fractions of a nanosecond truncate, as Go float→int');
  t.is(parseConsulDurationNanos(-1.9), -1n);
  t.is(parseConsulDurationNanos(9_223_372_036_854_775_807n), MAX_DURATION_NANOS);
  for (const bad of [
    null,
    undefined,
    true,
    {},
    [],
    ['10s'],
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 63,
    -(2 ** 64),
    1n << 63n,
    '10',
    '',
  ]) {
    const err = t.throws(() => parseConsulDuration(bad), { instanceOf: DurationError });
    t.regex(err?.message ?? '', /^invalid duration /);
  }
  t.throws(() => parseConsulDuration(null), {
    message: 'invalid duration null: expected a Go duration string such as "10s" or a number of nanoseconds',
  });
});

/** A Go duration string built from parts, as a client might write one. */
const durationString = fc
  .tuple(
    fc.constantFrom('', '-', '+'),
    fc.array(
      fc.tuple(
        fc.nat({ max: 100_000 }),
        fc.option(fc.stringMatching(/^[0-9]{0,12}$/), { nil: undefined }),
        fc.constantFrom('ns', 'us', 'µs', 'μs', 'ms', 's', 'm', 'h'),
      ),
      { minLength: 1, maxLength: 5 },
    ),
  )
  .map(
    ([sign, parts]) => sign + parts.map(([n, f, u]) => `${n}${f === undefined ? '' : `.${f}`}${u}`).join(''),
  );

test('property: formatting a parsed duration is a fixed point', (t) => {
  fc.assert(
    fc.property(durationString, (s) => {
      const ns = parseGoDurationNanos(s);
      const text = formatGoDurationNanos(ns);
      t.is(parseGoDurationNanos(text), ns);
      t.is(formatGoDurationNanos(parseGoDurationNanos(text)), text);
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});

test('property: every int64 survives format then parse', (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: MIN_DURATION_NANOS, max: MAX_DURATION_NANOS }), (ns) => {
      t.is(parseGoDurationNanos(formatGoDurationNanos(ns)), ns);
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});

test('property: milliseconds round-trip to the nanosecond below 2^50 ns', (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: -(1n << 50n), max: 1n << 50n }), (ns) => {
      t.is(millisToNanos(nanosToMillis(ns)), ns);
      const text = formatGoDurationNanos(ns);
      t.is(formatGoDuration(parseGoDuration(text)), text);
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});

test('property: the millisecond API is stable over the whole range', (t) => {
  fc.assert(
    fc.property(durationString, (s) => {
      let text: string;
      try {
        text = formatGoDuration(parseGoDuration(s));
      } catch (err) {
        // Rounding to the nearest nanosecond may cross int64 at the very edge: still a DurationError.
        t.true(err instanceof DurationError);
        return;
      }
      t.is(formatGoDuration(parseGoDuration(text)), text);
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});

test('property: random strings either parse or throw DurationError, never anything else', (t) => {
  const alphabet = fc.constantFrom(...'0123456789.+-nsuµμmhdx _\u0000é'.split(''));
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: alphabet, maxLength: 30 }), durationString), (s) => {
      try {
        const ms = parseGoDuration(s);
        t.true(Number.isFinite(ms));
      } catch (err) {
        t.true(err instanceof DurationError, String(err));
      }
    }),
    { numRuns: 5_000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('bodies: JSON from bytes or text; empty means undefined', (t) => {
  t.deepEqual(parseJsonBody(enc('{"Name":"web"}'), { maxBytes: 100 }), { Name: 'web' });
  t.deepEqual(parseJsonBody('{"Name":"web"}', { maxBytes: 100 }), { Name: 'web' });
  t.is(parseJsonBody(enc('true'), { maxBytes: 100 }), true);
  t.is(parseJsonBody(enc('"x"'), { maxBytes: 100 }), 'x');
  t.is(parseJsonBody(enc(''), { maxBytes: 100 }), undefined);
  t.is(parseJsonBody('', { maxBytes: 100 }), undefined);
  t.is(parseJsonBody(' \r\n\t', { maxBytes: 100 }), undefined);
  t.is(parseJsonBody(new Uint8Array(0), { maxBytes: 0 }), undefined);
  t.deepEqual(parseJsonBody(enc('\uFEFF{"a":1}'), { maxBytes: 100 }), { a: 1 }, 'byte order mark dropped');
  t.deepEqual(parseJsonBody('\uFEFF[1]', { maxBytes: 100 }), [1]);
  t.deepEqual(parseJsonBody(new Uint8Array([0x22, 0xff, 0x22]), { maxBytes: 100 }), '\uFFFD', 'bad UTF-8');
  t.deepEqual(parseJsonBody('{"__proto__":{"x":1}}', { maxBytes: 100 }), JSON.parse('{"__proto__":{"x":1}}'));
});

test('bodies: over the limit is BodyTooLargeError carrying the limit, before parsing', (t) => {
  const err = t.throws(() => parseJsonBody(enc(`"${'a'.repeat(100)}"`), { maxBytes: 64 }), {
    instanceOf: BodyTooLargeError,
  });
  t.is(err?.name, 'BodyTooLargeError');
  t.is(err?.maxBytes, 64);
  t.is(err?.size, 102);
  t.regex(err?.message ?? '', /102 bytes.*64 bytes/);
  // At the limit is fine; the limit counts UTF-8 bytes of a string body too.
  t.is(parseJsonBody('"aaaa"', { maxBytes: 6 }), 'aaaa');
  t.throws(() => parseJsonBody('"ééé"', { maxBytes: 6 }), { instanceOf: BodyTooLargeError });
  t.throws(() => parseJsonBody('not even json', { maxBytes: 3 }), { instanceOf: BodyTooLargeError });
});

const badBodies: ReadonlyArray<readonly [string, number, number, RegExp]> = [
  ['{"a":1,}', 1, 8, /expected a string key, found "}"/],
  ['{\n  "a": 1\n  "b": 2\n}', 3, 3, /expected ',' or '}'/],
  ['[1,2', 1, 5, /end of input/],
  ['{"a":1} x', 1, 9, /unexpected "x" after the JSON value/],
  ['{"a":1}{"b":2}', 1, 8, /after the JSON value/],
  ['nul', 1, 4, /expected "null"/],
  ['tru e', 1, 4, /expected "true"/],
  ['"\u0001"', 1, 2, /control character/],
  ['{"a":01}', 1, 7, /expected ',' or '}'/],
  ['{"a":.5}', 1, 6, /expected a JSON value/],
  ['{"a":1.}', 1, 8, /after decimal point/],
  ['{"a":1e}', 1, 8, /in exponent/],
  ['{"a":-}', 1, 7, /in number/],
  ['{"a":NaN}', 1, 6, /expected a JSON value, found "N"/],
  ["{'a':1}", 1, 2, /expected a string key, found "'"/],
  ['{a:1}', 1, 2, /expected a string key/],
  ['{"a" 1}', 1, 6, /expected ':'/],
  ['"\\x"', 1, 3, /invalid escape/],
  ['"\\u12G4"', 1, 6, /hex digit/],
  ['"abc', 1, 5, /unterminated string/],
  ['Name=web&Port=80', 1, 1, /expected a JSON value, found "N"/],
  ['\n\n   }', 3, 4, /expected a JSON value/],
];

test('bodies: malformed JSON is BadJsonError saying where, in one line', (t) => {
  for (const [body, line, column, reason] of badBodies) {
    const err = t.throws(() => parseJsonBody(body, { maxBytes: 1_000 }), { instanceOf: BadJsonError }, body);
    t.is(err?.name, 'BadJsonError');
    t.is(err?.line, line, body);
    t.is(err?.column, column, body);
    t.regex(err?.message ?? '', reason, body);
    t.regex(err?.message ?? '', new RegExp(`^invalid JSON at line ${line}, column ${column}: `), body);
    t.false(err?.message.includes('\n'), body);
  }
});

test('bodies: the error never echoes the input', (t) => {
  const secret = 'x'.repeat(2_000_000);
  const body = `{"Value":"${secret}", oops}`;
  const err = t.throws(() => parseJsonBody(body, { maxBytes: 4_000_000 }), { instanceOf: BadJsonError });
  t.true((err?.message.length ?? Infinity) < 200, err?.message);
  t.is(err?.offset, secret.length + 13);
});

test('bodies: trailing data may be ignored as Go json.Decoder does', (t) => {
  t.deepEqual(parseJsonBody('{"a":1} {"b":2}', { maxBytes: 100, trailingData: 'ignore' }), { a: 1 });
  t.deepEqual(parseJsonBody('[1]garbage', { maxBytes: 100, trailingData: 'ignore' }), [1]);
  t.throws(() => parseJsonBody('{"a":1 x', { maxBytes: 100, trailingData: 'ignore' }), {
    instanceOf: BadJsonError,
  });
});

test('bodies: nesting deeper than maxDepth is refused', (t) => {
  const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
  t.notThrows(() => parseJsonBody(deep(512), { maxBytes: 10_000 }));
  const err = t.throws(() => parseJsonBody(deep(513), { maxBytes: 10_000 }), { instanceOf: BadJsonError });
  t.regex(err?.message ?? '', /nested deeper than 512/);
  t.is(err?.column, 513);
  t.throws(() => parseJsonBody('{"a":{"b":{}}}', { maxBytes: 100, maxDepth: 2 }), {
    instanceOf: BadJsonError,
  });
  t.notThrows(() => parseJsonBody('{"a":{"b":1}}', { maxBytes: 100, maxDepth: 2 }));
  // Even a broken, hugely deep document is diagnosed without exhausting the stack.
  t.throws(() => parseJsonBody('['.repeat(200_000), { maxBytes: 1_000_000 }), {
    instanceOf: BadJsonError,
    message: /nested deeper/,
  });
});

test('property: any byte string parses or fails with a named error', (t) => {
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.json().map(enc), fc.string().map(enc)),
      (bytes) => {
        try {
          parseJsonBody(bytes, { maxBytes: 1_000 });
        } catch (err) {
          t.true(err instanceof BadJsonError || err instanceof BodyTooLargeError, String(err));
        }
      },
    ),
    { numRuns: 3_000 },
  );
  t.pass();
});

test('property: the scanner agrees with JSON.parse', (t) => {
  // Mutated JSON: whenever JSON.parse fails, the error position is inside the text.
  fc.assert(
    fc.property(
      fc.json(),
      fc.nat(),
      fc.constantFrom('', ',', '}', ']', '"', ':', 'x', ' ', '\\'),
      (doc, at, ins) => {
        const pos = doc.length === 0 ? 0 : at % doc.length;
        const text = doc.slice(0, pos) + ins + doc.slice(pos);
        let parsed = true;
        try {
          JSON.parse(text);
        } catch {
          parsed = false;
        }
        if (parsed) t.is(scanJson(text, 10_000).kind, 'ok', text);
        if (parsed && text.trim() !== '') {
          t.deepEqual(parseJsonBody(text, { maxBytes: 10_000, maxDepth: 10_000 }), JSON.parse(text));
        } else if (!parsed) {
          const err = t.throws(() => parseJsonBody(text, { maxBytes: 10_000, maxDepth: 10_000 }));
          if (err instanceof BadJsonError) t.true(err.offset <= text.length);
          else t.fail(String(err));
          t.not(scanJson(text, 10_000).kind, 'ok', text);
        }
      },
    ),
    { numRuns: 2_000 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// Key folding
// ---------------------------------------------------------------------------------------------

test('foldKey ignores case and underscores', (t) => {
  t.is(foldKey('ServiceID'), 'serviceid');
  t.is(foldKey('service_id'), 'serviceid');
  t.is(foldKey('SERVICE_ID'), 'serviceid');
  t.is(foldKey('deregister_critical_service_after'), foldKey('DeregisterCriticalServiceAfter'));
});

const CheckType = z.object({
  CheckID: z.string().optional(),
  Name: z.string().optional(),
  ScriptArgs: z
    .array(z.string())
    .meta({ consulAliases: ['args'] })
    .optional(),
  HTTP: z.string().optional(),
  Header: z.record(z.string(), z.array(z.string())).optional(),
  Method: z.string().optional(),
  TCP: z.string().optional(),
  Interval: goDuration().optional(),
  Timeout: goDuration().optional(),
  TTL: goDuration().optional(),
  DeregisterCriticalServiceAfter: goDuration().optional(),
  TLSSkipVerify: z.boolean().optional(),
  ServiceID: z.string().optional(),
  Status: z.string().optional(),
});

const Upstream = z.object({
  DestinationName: z.string(),
  LocalBindPort: z.number().int(),
  Config: z.record(z.string(), z.unknown()).optional(),
});

const ServiceAddress = z.object({ Address: z.string(), Port: z.number().int() });

const ServiceDefinition = z.object({
  ID: z.string().optional(),
  Name: z.string().min(1),
  Tags: z.array(z.string()).optional(),
  Address: z.string().optional(),
  Port: z.number().int().optional(),
  Meta: z.record(z.string(), z.string()).optional(),
  TaggedAddresses: z.record(z.string(), ServiceAddress).optional(),
  EnableTagOverride: z.boolean().optional(),
  Check: CheckType.optional(),
  Checks: z.array(CheckType).optional(),
  Proxy: z
    .object({
      DestinationServiceName: z.string().optional(),
      LocalServicePort: z.number().int().optional(),
      Config: z.record(z.string(), z.unknown()).optional(),
      Upstreams: z.array(Upstream).optional(),
    })
    .optional(),
  get Connect() {
    return z
      .object({
        Native: z.boolean().optional(),
        SidecarService: ServiceDefinition.optional(),
      })
      .optional();
  },
});

const RegisterService = consulBody(ServiceDefinition);

test('folding: lowercase keys of a service registration', (t) => {
  const body = {
    id: 'web-1',
    name: 'web',
    TAGS: ['v1'],
    port: 8080,
    enabletagoverride: true,
    check: { http: 'http://localhost:8080/health', interval: '10s', TIMEOUT: '1s' },
  };
  t.deepEqual(foldKeys(body, ServiceDefinition), {
    ID: 'web-1',
    Name: 'web',
    Tags: ['v1'],
    Port: 8080,
    EnableTagOverride: true,
    Check: { HTTP: 'http://localhost:8080/health', Interval: '10s', Timeout: '1s' },
  });
  const parsed = RegisterService.parse(body);
  t.is(parsed.Name, 'web');
  t.is(parsed.Check?.Interval, 10_000);
  t.is(parsed.Check?.Timeout, 1_000);
});

test('folding: snake_case keys as in Consul config files', (t) => {
  const body = {
    name: 'redis',
    enable_tag_override: true,
    tagged_addresses: { lan_ipv4: { address: '10.0.0.1', port: 6379 } },
    checks: [
      { args: ['/bin/check-redis'], interval: '30s' },
      {
        ttl: '15s',
        deregister_critical_service_after: '90m',
        service_id: 'redis-1',
        tls_skip_verify: true,
        check_id: 'redis-ttl',
      },
    ],
  };
  const parsed = RegisterService.parse(body);
  t.deepEqual(parsed, {
    Name: 'redis',
    EnableTagOverride: true,
    TaggedAddresses: { lan_ipv4: { Address: '10.0.0.1', Port: 6379 } },
    Checks: [
      { ScriptArgs: ['/bin/check-redis'], Interval: 30_000 },
      {
        TTL: 15_000,
        DeregisterCriticalServiceAfter: 90 * 60_000,
        ServiceID: 'redis-1',
        TLSSkipVerify: true,
        CheckID: 'redis-ttl',
      },
    ],
  });
});

test('folding: map keys keep their case (Meta, TaggedAddresses, Header, Proxy.Config)', (t) => {
  const body = {
    Name: 'api',
    meta: { Version: '2', team_Name: 'core', NAME: 'shadowed?', name: 'no' },
    TaggedAddresses: { LAN: { Address: '10.0.0.2', Port: 80 }, wan: { address: '1.2.3.4', port: 80 } },
    Check: {
      HTTP: 'http://x',
      header: { 'X-Custom': ['a'], authorization: ['b'] },
      interval: 10_000_000_000,
    },
    proxy: { config: { Protocol: 'http', local_connect_timeout_ms: 1000, Name: 'kept' } },
  };
  const folded = foldKeys(body, ServiceDefinition);
  t.deepEqual(folded, {
    Name: 'api',
    Meta: { Version: '2', team_Name: 'core', NAME: 'shadowed?', name: 'no' },
    TaggedAddresses: { LAN: { Address: '10.0.0.2', Port: 80 }, wan: { Address: '1.2.3.4', Port: 80 } },
    Check: {
      HTTP: 'http://x',
      Header: { 'X-Custom': ['a'], authorization: ['b'] },
      Interval: 10_000_000_000,
    },
    Proxy: { Config: { Protocol: 'http', local_connect_timeout_ms: 1000, Name: 'kept' } },
  });
  const parsed = RegisterService.parse(body);
  t.is(parsed.Check?.Interval, 10_000, 'nanosecond numbers accepted');
  t.deepEqual(parsed.Meta, body.meta);
});

test('folding: Connect.SidecarService is a nested, recursive service definition', (t) => {
  const body = {
    name: 'web',
    port: 8080,
    connect: {
      sidecar_service: {
        port: 21000,
        meta: { Sidecar_Of: 'web' },
        proxy: {
          upstreams: [
            { destination_name: 'db', local_bind_port: 9191, config: { Connect_Timeout_Ms: 5000 } },
          ],
        },
        checks: [{ name: 'Connect Sidecar Listening', tcp: '127.0.0.1:21000', interval: '10s' }],
        connect: { sidecar_service: { name: 'nested' } },
      },
    },
  };
  const folded = foldKeys(body, ServiceDefinition) as Record<string, unknown>;
  t.deepEqual(folded.Connect, {
    SidecarService: {
      Port: 21000,
      Meta: { Sidecar_Of: 'web' },
      Proxy: {
        Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191, Config: { Connect_Timeout_Ms: 5000 } }],
      },
      Checks: [{ Name: 'Connect Sidecar Listening', TCP: '127.0.0.1:21000', Interval: '10s' }],
      Connect: { SidecarService: { Name: 'nested' } },
    },
  });
  // The recursive schema itself rejects the sidecar for lacking a Name: validation still applies.
  const result = RegisterService.safeParse(body);
  t.false(result.success);
  t.deepEqual(result.error?.issues[0]?.path, ['Connect', 'SidecarService', 'Name']);
});

test('folding: the exact spelling wins a collision, else the last one', (t) => {
  const spec = objectKeys({ Name: LEAF, ServiceID: LEAF });
  t.deepEqual(foldKeys({ name: 'a', Name: 'b', NAME: 'c' }, spec), { Name: 'b' });
  t.deepEqual(foldKeys({ Name: 'b', name: 'a' }, spec), { Name: 'b' });
  t.deepEqual(foldKeys({ name: 'a', NAME: 'c' }, spec), { Name: 'c' });
  t.deepEqual(foldKeys({ service_id: 'x', ServiceID: 'y', serviceid: 'z' }, spec), { ServiceID: 'y' });
});

test('folding: unknown keys stay as they are, untouched inside', (t) => {
  const spec = objectKeys({ Name: LEAF });
  const inner = { deep_key: 1 };
  const out = foldKeys({ name: 'x', Unknown_Field: inner, other: [inner] }, spec) as Record<string, unknown>;
  t.deepEqual(out, { Name: 'x', Unknown_Field: { deep_key: 1 }, other: [{ deep_key: 1 }] });
  t.is(out.Unknown_Field, inner, 'shared, not copied');
  // Strict schemas then name the stray key.
  const Strict = consulBody(z.strictObject({ Name: z.string() }));
  t.deepEqual(Strict.parse({ NAME: 'x' }), { Name: 'x' });
  const res = Strict.safeParse({ name: 'x', nmae: 'typo' });
  t.false(res.success);
});

test('folding: the input is not modified, and non-objects pass through', (t) => {
  const body = { name: 'x', checks: [{ ttl: '1s' }] };
  const copy = structuredClone(body);
  foldKeys(body, ServiceDefinition);
  t.deepEqual(body, copy);
  for (const v of [null, undefined, 1, 'name', true, [1, 2]]) t.deepEqual(foldKeys(v, ServiceDefinition), v);
  t.deepEqual(foldKeys({ checks: 'not-an-array', check: [1] }, ServiceDefinition), {
    Checks: 'not-an-array',
    Check: [1],
  });
});

test('folding: a __proto__ key stays data, never a prototype', (t) => {
  const body = JSON.parse('{"__proto__": {"polluted": true}, "meta": {"__proto__": "x"}}');
  const out = foldKeys(body, ServiceDefinition) as Record<string, unknown>;
  t.is(Object.getPrototypeOf(out), Object.prototype);
  t.true(Object.hasOwn(out, '__proto__'));
  t.true(Object.hasOwn(out.Meta as object, '__proto__'));
  t.is(({} as Record<string, unknown>).polluted, undefined);
});

test('the spec DSL describes the same shape without zod', (t) => {
  const check = objectKeys(
    { CheckID: LEAF, ScriptArgs: LEAF, Interval: LEAF, Header: mapOf() },
    { ScriptArgs: ['args'] },
  );
  const spec = objectKeys({ Name: LEAF, Meta: mapOf(), Checks: arrayOf(check), Check: check });
  t.deepEqual(
    foldKeys(
      { name: 'x', meta: { a_B: '1' }, checks: [{ check_id: 'c', args: ['x'], header: { h_H: [] } }] },
      spec,
    ),
    { Name: 'x', Meta: { a_B: '1' }, Checks: [{ CheckID: 'c', ScriptArgs: ['x'], Header: { h_H: [] } }] },
  );
});

test('keySpecFromZod looks through wrappers, unions, lazy and pipes', (t) => {
  const Inner = z.object({ FooBar: z.string() });
  const schema = z.object({
    A: Inner.nullable().default(null),
    B: z.union([z.string(), z.array(Inner)]),
    C: z.lazy(() => Inner),
    D: z.string().pipe(z.string()),
    E: consulBody(Inner),
    F: z.map(z.string(), Inner),
    G: z.intersection(z.object({ Left: z.string() }), z.object({ Right: z.string() })),
  });
  const out = foldKeys(
    {
      a: { foo_bar: 'a' },
      b: [{ foobar: 'b' }],
      c: { FOOBAR: 'c' },
      d: 'd',
      e: { foo_Bar: 'e' },
      f: { k_K: { foobar: 'f' } },
      g: { left: 'l', right: 'r' },
    },
    schema,
  );
  t.deepEqual(out, {
    A: { FooBar: 'a' },
    B: [{ FooBar: 'b' }],
    C: { FooBar: 'c' },
    D: 'd',
    E: { FooBar: 'e' },
    F: { k_K: { FooBar: 'f' } },
    G: { Left: 'l', Right: 'r' },
  });
  t.is(keySpecFromZod(schema), keySpecFromZod(schema), 'cached');
});

test('goDuration: strings and nanosecond numbers to ms, issues naming the value', (t) => {
  const schema = z.object({ Interval: goDuration(), Timeout: goDuration().optional() });
  t.deepEqual(schema.parse({ Interval: '1.5s' }), { Interval: 1_500 });
  t.deepEqual(schema.parse({ Interval: 10_000_000_000, Timeout: '300ms' }), {
    Interval: 10_000,
    Timeout: 300,
  });
  const bad = schema.safeParse({ Interval: '10x', Timeout: true });
  t.false(bad.success);
  t.deepEqual(
    bad.error?.issues.map((i) => [i.path, i.message]),
    [
      [['Interval'], 'invalid duration "10x": unknown unit "x"'],
      [
        ['Timeout'],
        'invalid duration true: expected a Go duration string such as "10s" or a number of nanoseconds',
      ],
    ],
  );
  t.false(schema.safeParse({}).success, 'a required duration must be present');
});

test('end to end: raw bytes of a curl registration to typed input', (t) => {
  const raw = enc(
    JSON.stringify({
      name: 'web',
      Meta: { Env: 'prod' },
      check: { http: 'http://127.0.0.1:8080/health', interval: '10s', deregistercriticalserviceafter: '1m' },
    }),
  );
  const input = RegisterService.parse(parseJsonBody(raw, { maxBytes: 1 << 20 }));
  t.is(input.Name, 'web');
  t.deepEqual(input.Meta, { Env: 'prod' });
  t.is(input.Check?.Interval, 10_000);
  t.is(input.Check?.DeregisterCriticalServiceAfter, 60_000);
});

test('consulObject: one declaration, folded and typed', (t) => {
  const Session = consulObject({
    Name: z.string().optional(),
    TTL: goDuration().optional(),
    LockDelay: goDuration(),
  });
  const input: { Name?: string; TTL?: number; LockDelay: number } = Session.parse({
    name: 'lock',
    ttl: '30s',
    lock_delay: 15_000_000_000,
    Extra: 1,
  });
  t.deepEqual(input, { Name: 'lock', TTL: 30_000, LockDelay: 15_000 });
});
