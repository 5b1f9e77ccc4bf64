/**
 * Converting a literal's text to the type of the field it is compared with, as go-bexpr's
 * `Coerce*` functions do with Go's strconv. Each returns `undefined` when the text does not parse.
 * Patterns here are anchored and free of nested repetition (linear time).
 */

const INT = /^[+-]?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|[1-9][0-9]*|0)$/;
const FLOAT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const SPECIAL_FLOAT = /^[+-]?(?:inf|infinity|nan)$/i;

/** `strconv.ParseInt(s, 0, 64)`: decimal, `0x`, `0b`, `0o` and leading-zero octal (no `_` separators). */
export function parseGoInt(text: string): number | undefined {
  const value = parseBigInt(text);
  if (value === undefined || value > 0x7fffffffffffffffn || value < -0x8000000000000000n) return undefined;
  return Number(value);
}

/** `strconv.ParseUint(s, 0, 64)`: as `parseGoInt`, unsigned. */
export function parseGoUint(text: string): number | undefined {
  if (text.startsWith('-') || text.startsWith('+')) return undefined;
  const value = parseBigInt(text);
  if (value === undefined || value > 0xffffffffffffffffn) return undefined;
  return Number(value);
}

function parseBigInt(text: string): bigint | undefined {
  if (!INT.test(text)) return undefined;
  const negative = text.startsWith('-');
  const body = text.replace(/^[+-]/, '');
  let digits = body;
  let radix = 10;
  if (/^0[xX]/.test(body)) [digits, radix] = [body.slice(2), 16];
  else if (/^0[bB]/.test(body)) [digits, radix] = [body.slice(2), 2];
  else if (/^0[oO]/.test(body)) [digits, radix] = [body.slice(2), 8];
  else if (body.length > 1 && body.startsWith('0')) [digits, radix] = [body.slice(1), 8];
  const prefix = radix === 16 ? '0x' : radix === 2 ? '0b' : radix === 8 ? '0o' : '';
  const big = BigInt(prefix + digits);
  return negative ? -big : big;
}

/** `strconv.ParseFloat(s, 64)` for decimal notation, `inf` and `nan` (no hex floats or `_`). */
export function parseGoFloat(text: string): number | undefined {
  if (FLOAT.test(text)) return Number(text);
  if (SPECIAL_FLOAT.test(text)) {
    if (/nan/i.test(text)) return Number.NaN;
    return text.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  return undefined;
}

/** A number literal against a JSON number, whose Go type (int or float) is unknown here. */
export function parseGoNumber(text: string): number | undefined {
  return parseGoInt(text) ?? parseGoFloat(text);
}

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/** `strconv.ParseBool`. */
export function parseGoBool(text: string): boolean | undefined {
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  return undefined;
}
