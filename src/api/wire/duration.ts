/**
 * Go `time.Duration` on the wire: parsing as `time.ParseDuration` does, formatting as
 * `Duration.String()` does, and Consul's JSON habit of also sending durations as integer
 * nanoseconds (`"Interval": 10000000000`).
 *
 * Exact work happens in nanoseconds with `bigint`, so the full int64 range Go allows is
 * honoured bit for bit (`-2562047h47m16.854775808s` parses). The millisecond API on top is
 * what the rest of meshd uses; a `number` of milliseconds keeps nanosecond precision only up
 * to about 2^51 ns (≈ 26 days), which is far beyond any check interval or timeout, and the
 * `...Nanos` functions are there when exactness matters.
 *
 * Rules, as Go's `ParseDuration` (src/time/format.go):
 * - `[-+]?` then one or more `number unit` pairs; a number is `digits`, `digits.`, `.digits`
 *   or `digits.digits` (at least one digit somewhere); units `ns us µs μs ms s m h`
 *   (micro sign U+00B5 and Greek mu U+03BC both accepted).
 * - `"0"`, `"-0"` and `"+0"` are the only inputs allowed without a unit.
 * - A unit is every character up to the next digit or `.`, so `"1 s"` and `"1s "` name the
 *   unknown units `" s"` and `"s "`; no whitespace is skipped anywhere.
 * - The integer part of each pair must fit in 2^63 and the running total must stay within
 *   int64 nanoseconds (−2^63 is reachable only with a minus sign). Fraction digits beyond what
 *   fits in 63 bits are ignored rather than rejected, and the fraction is converted through
 *   float64 and truncated, exactly as Go does, so `"0.3333333333333333333h"` is `20m`.
 */

/** A duration that Go's `time.ParseDuration` (or Consul's JSON decoder) would reject. */
export class DurationError extends Error {
  override readonly name = 'DurationError';
  /** The rejected value as received. */
  readonly input: unknown;
  /** Why it was rejected, without the input (the message has both). */
  readonly reason: string;
  constructor(input: unknown, reason: string) {
    super(`invalid duration ${describe(input)}: ${reason}`);
    this.input = input;
    this.reason = reason;
  }
}

/** Nanoseconds per unit, as Go's unit table. */
const UNITS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n], // micro sign
  ['\u03bcs', 1_000n], // Greek small letter mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const TWO_63 = 1n << 63n;
/** Largest int64: Go's `time.Duration(math.MaxInt64)`, 2562047h47m16.854775807s. */
export const MAX_DURATION_NANOS = TWO_63 - 1n;
/** Smallest int64: `-2562047h47m16.854775808s`. */
export const MIN_DURATION_NANOS = -TWO_63;

const MAX_QUOTED = 64;

/** Quotes an input for an error message, cut short so a huge input never reaches a log whole. */
function describe(input: unknown): string {
  if (typeof input === 'string') {
    const shown = input.length > MAX_QUOTED ? `${input.slice(0, MAX_QUOTED)}…` : input;
    return JSON.stringify(shown);
  }
  if (typeof input === 'number' || typeof input === 'boolean' || input === null || input === undefined) {
    return String(input);
  }
  if (typeof input === 'bigint') return `${input}n`;
  return Array.isArray(input) ? 'of type array' : `of type ${typeof input}`;
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const DOT = 0x2e;

/**
 * Parses a Go duration string to integer nanoseconds, exactly as Go does.
 * @throws DurationError for anything `time.ParseDuration` rejects.
 */
export function parseGoDurationNanos(input: string): bigint {
  if (typeof input !== 'string') throw new DurationError(input, 'expected a string');
  let i = 0;
  let neg = false;
  if (input.startsWith('-') || input.startsWith('+')) {
    neg = input[0] === '-';
    i = 1;
  }
  const rest = input.slice(i);
  if (rest === '0') return 0n;
  if (rest === '') throw new DurationError(input, input === '' ? 'empty string' : 'missing number');

  let total = 0n;
  while (i < input.length) {
    const c = input.charCodeAt(i);
    if (!(c === DOT || isDigit(c))) {
      throw new DurationError(input, `expected a number at ${describe(input.slice(i))}`);
    }
    // Integer part: must stay within 2^63 (Go rejects rather than wraps).
    const intStart = i;
    let whole = 0n;
    while (i < input.length && isDigit(input.charCodeAt(i))) {
      if (whole > TWO_63 / 10n) throw new DurationError(input, 'out of range');
      whole = whole * 10n + BigInt(input.charCodeAt(i) - 0x30);
      if (whole > TWO_63) throw new DurationError(input, 'out of range');
      i++;
    }
    const hadInt = i > intStart;
    // Fraction: digits accumulate while they fit; later ones are read and ignored.
    let frac = 0n;
    let scale = 1;
    let hadFrac = false;
    if (i < input.length && input.charCodeAt(i) === DOT) {
      i++;
      const fracStart = i;
      let overflow = false;
      while (i < input.length && isDigit(input.charCodeAt(i))) {
        if (!overflow) {
          const next = frac * 10n + BigInt(input.charCodeAt(i) - 0x30);
          if (frac > MAX_DURATION_NANOS / 10n || next > TWO_63) overflow = true;
          else {
            frac = next;
            scale *= 10;
          }
        }
        i++;
      }
      hadFrac = i > fracStart;
    }
    if (!hadInt && !hadFrac) throw new DurationError(input, 'expected digits around "."');
    // Unit: everything up to the next digit or dot.
    const unitStart = i;
    while (i < input.length && !(input.charCodeAt(i) === DOT || isDigit(input.charCodeAt(i)))) i++;
    if (i === unitStart) {
      throw new DurationError(input, 'missing unit (ns, us, µs, ms, s, m or h; only "0" may omit it)');
    }
    const unitName = input.slice(unitStart, i);
    const unit = UNITS.get(unitName);
    if (unit === undefined) throw new DurationError(input, `unknown unit ${describe(unitName)}`);
    if (whole > TWO_63 / unit) throw new DurationError(input, 'out of range');
    let v = whole * unit;
    if (frac > 0n) {
      // float64, then truncation, as Go: nanosecond accurate for fractions of an hour.
      v += BigInt(Math.trunc(Number(frac) * (Number(unit) / scale)));
      if (v > TWO_63) throw new DurationError(input, 'out of range');
    }
    total += v;
    if (total > TWO_63) throw new DurationError(input, 'out of range');
  }
  if (neg) return -total;
  if (total > MAX_DURATION_NANOS) throw new DurationError(input, 'out of range');
  return total;
}

/**
 * Parses a Go duration string (`"10s"`, `"1h15m30.5s"`, `"300µs"`) to milliseconds, which may
 * be fractional (`"1.5ms"` → 1.5, `"10ns"` → 0.00001).
 * @throws DurationError for anything `time.ParseDuration` rejects.
 */
export function parseGoDuration(input: string): number {
  return nanosToMillis(parseGoDurationNanos(input));
}

/** Exact nanoseconds to the nearest millisecond `number`. */
export function nanosToMillis(ns: bigint): number {
  // Split first so values past 2^53 ns still round once, not twice, in the common case.
  const whole = ns / 1_000_000n;
  const rem = ns - whole * 1_000_000n;
  return Number(whole) + Number(rem) / 1e6;
}

/**
 * Milliseconds to the nearest integer nanosecond.
 * @throws DurationError if `ms` is not finite or lies outside Go's int64 range.
 */
export function millisToNanos(ms: number): bigint {
  if (!Number.isFinite(ms)) throw new DurationError(ms, 'not a finite number');
  const whole = Math.trunc(ms);
  const ns = BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
  if (ns > MAX_DURATION_NANOS || ns < MIN_DURATION_NANOS) throw new DurationError(ms, 'out of range');
  return ns;
}

/** Digits of `v` in base 10 with trailing zeros of a `prec`-digit fraction removed, as Go's fmtFrac. */
function splitFraction(v: bigint, prec: number): { rest: bigint; frac: string } {
  const p = 10n ** BigInt(prec);
  const fracPart = v % p;
  const rest = v / p;
  if (fracPart === 0n) return { rest, frac: '' };
  const digits = fracPart.toString().padStart(prec, '0').replace(/0+$/, '');
  return { rest, frac: `.${digits}` };
}

/**
 * Formats integer nanoseconds as Go's `Duration.String()`: `"1h0m0s"`, `"1m30s"`, `"1.5s"`,
 * `"1.5ms"`, `"300µs"` (micro sign U+00B5), `"10ns"`, `"0s"`.
 * @throws DurationError if `ns` is outside int64.
 */
export function formatGoDurationNanos(ns: bigint): string {
  if (ns > MAX_DURATION_NANOS || ns < MIN_DURATION_NANOS) throw new DurationError(ns, 'out of range');
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  const u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    // Under a second: one unit, with a fraction.
    if (u < 1_000n) out = `${u}ns`;
    else if (u < 1_000_000n) {
      const { rest, frac } = splitFraction(u, 3);
      out = `${rest}${frac}\u00b5s`;
    } else {
      const { rest, frac } = splitFraction(u, 6);
      out = `${rest}${frac}ms`;
    }
  } else {
    const { rest: secs, frac } = splitFraction(u, 9);
    out = `${secs % 60n}${frac}s`;
    const mins = secs / 60n;
    if (mins > 0n) {
      out = `${mins % 60n}m${out}`;
      const hours = mins / 60n;
      if (hours > 0n) out = `${hours}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}

/**
 * Formats milliseconds as Go's `Duration.String()` would format the same duration, rounded to
 * the nearest nanosecond: `formatGoDuration(90_000)` is `"1m30s"`, `formatGoDuration(0.3)` is
 * `"300µs"`.
 * @throws DurationError if `ms` is not finite or outside Go's int64 nanosecond range.
 */
export function formatGoDuration(ms: number): string {
  return formatGoDurationNanos(millisToNanos(ms));
}

/**
 * A duration as Consul's JSON decoder takes it: a Go duration string, or a number of
 * nanoseconds (Go's mapstructure converts a JSON number to `time.Duration` directly; a
 * fractional number is truncated toward zero, as Go's float-to-int conversion). A `bigint` is
 * taken as nanoseconds too. Returns milliseconds.
 * @throws DurationError for anything else, naming the value.
 */
export function parseConsulDuration(value: unknown): number {
  return nanosToMillis(parseConsulDurationNanos(value));
}

/** As {@link parseConsulDuration}, in exact nanoseconds. */
export function parseConsulDurationNanos(value: unknown): bigint {
  if (typeof value === 'string') return parseGoDurationNanos(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new DurationError(value, 'not a finite number of nanoseconds');
    // 2^63 itself is a float64 value, and out of range; everything below it converts exactly.
    if (value >= 2 ** 63 || value < -(2 ** 63)) throw new DurationError(value, 'out of range');
    return BigInt(Math.trunc(value));
  }
  if (typeof value === 'bigint') {
    if (value > MAX_DURATION_NANOS || value < MIN_DURATION_NANOS) {
      throw new DurationError(value, 'out of range');
    }
    return value;
  }
  throw new DurationError(value, 'expected a Go duration string such as "10s" or a number of nanoseconds');
}
