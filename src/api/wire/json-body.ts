/**
 * Request bodies as Consul reads them: JSON whatever the Content-Type says (curl scripts and
 * the Go API client often send none, or `application/x-www-form-urlencoded`), an empty body
 * meaning "no body", and errors that say where the JSON went wrong without echoing it.
 */

/** The body is larger than the route allows (HTTP 413). */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  /** The limit, in bytes. */
  readonly maxBytes: number;
  /** The size received, in bytes. */
  readonly size: number;
  constructor(size: number, maxBytes: number) {
    super(`request body too large: ${size} bytes, the limit is ${maxBytes} bytes`);
    this.size = size;
    this.maxBytes = maxBytes;
  }
}

/** The body is not JSON (HTTP 400). The message is one line and never quotes more than a character. */
export class BadJsonError extends Error {
  override readonly name = 'BadJsonError';
  /** Where the problem is: offset in UTF-16 code units of the decoded text, 1-based line and column. */
  readonly offset: number;
  readonly line: number;
  readonly column: number;
  constructor(offset: number, line: number, column: number, reason: string) {
    super(`invalid JSON at line ${line}, column ${column}: ${reason}`);
    this.offset = offset;
    this.line = line;
    this.column = column;
  }
}

export interface ParseJsonBodyOptions {
  /** Largest body accepted, in bytes (UTF-8 bytes for a string body). */
  maxBytes: number;
  /**
   * Deepest nesting of arrays and objects accepted. Go's encoding/json stops at 10000; the
   * default is lower so that whatever walks the value afterwards (key folding, zod) cannot
   * exhaust the stack.
   * @default 512
   */
  maxDepth?: number;
  /**
   * What to do with anything but whitespace after the first JSON value. Consul decodes with
   * `json.NewDecoder(body).Decode(&v)`, which reads one value and never looks further, so
   * `'ignore'` is Consul's behaviour; `'reject'` is the stricter default.
   * @default 'reject'
   */
  trailingData?: 'reject' | 'ignore';
}

const DEFAULT_MAX_DEPTH = 512;

/**
 * Parses a request body as JSON, whatever its Content-Type.
 *
 * - A body that is empty, or only JSON whitespace, gives `undefined`: the route decides
 *   whether a body was required (Consul answers some endpoints' empty bodies with defaults).
 * - Bytes are decoded as UTF-8; a leading byte order mark is dropped and invalid sequences
 *   become U+FFFD, as Go's decoder does inside strings.
 * - Integers beyond 2^53 lose precision, as everywhere in JavaScript's `JSON.parse`.
 *
 * @throws BodyTooLargeError when the body exceeds `maxBytes` (checked before any decoding).
 * @throws BadJsonError when it is not a single JSON value, or nests deeper than `maxDepth`.
 */
export function parseJsonBody(raw: Uint8Array | string, opts: ParseJsonBodyOptions): unknown {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.byteLength;
  if (size > opts.maxBytes) throw new BodyTooLargeError(size, opts.maxBytes);
  let text = typeof raw === 'string' ? raw : new TextDecoder('utf-8').decode(raw); // drops a BOM
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (isAllWhitespace(text)) return undefined;
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // JSON.parse's own messages differ between engines and quote the input; find the
    // problem ourselves so the message is stable and short.
    const problem = scanJson(text, maxDepth);
    if (problem.kind === 'trailing' && opts.trailingData === 'ignore') {
      return checkDepth(JSON.parse(text.slice(0, problem.valueEnd)), maxDepth, text);
    }
    const offset = problem.kind === 'ok' ? 0 : problem.offset;
    const reason = problem.kind === 'ok' ? 'not valid JSON' : problem.reason;
    throw badJsonAt(text, offset, reason);
  }
  return checkDepth(value, maxDepth, text);
}

/** JSON whitespace only: space, tab, line feed, carriage return. */
function isAllWhitespace(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
  }
  return true;
}

function badJsonAt(text: string, offset: number, reason: string): BadJsonError {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return new BadJsonError(offset, line, offset - lineStart + 1, reason);
}

/** Walks the parsed value without recursion; throws when it nests deeper than `maxDepth`. */
function checkDepth(value: unknown, maxDepth: number, text: string): unknown {
  const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 1 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > maxDepth) {
      // The parsed value has no offsets; rescan to point at the opening bracket that is too deep.
      const problem = scanJson(text, maxDepth);
      throw badJsonAt(
        text,
        problem.kind === 'ok' ? 0 : problem.offset,
        `nested deeper than ${maxDepth} levels`,
      );
    }
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: child, depth: depth + 1 });
  }
  return value;
}

type ScanResult =
  | { kind: 'ok' }
  | { kind: 'error'; offset: number; reason: string }
  /** A complete value ends at `valueEnd`; something other than whitespace follows at `offset`. */
  | { kind: 'trailing'; offset: number; valueEnd: number; reason: string };

class ScanFailure {
  readonly offset: number;
  readonly reason: string;
  constructor(offset: number, reason: string) {
    this.offset = offset;
    this.reason = reason;
  }
}

/** Names the character at `i` for a message: one character, quoted, or "end of input". */
function found(text: string, i: number): string {
  if (i >= text.length) return 'end of input';
  const cp = text.codePointAt(i)!;
  return JSON.stringify(String.fromCodePoint(cp));
}

/**
 * An RFC 8259 recogniser that reports the first place a document stops being JSON. Only run
 * after `JSON.parse` has failed, so it favours clear messages over speed. Recursive, but never
 * deeper than `maxDepth`.
 */
export function scanJson(text: string, maxDepth: number): ScanResult {
  let i = 0;
  const ws = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      i++;
    }
  };
  const fail = (reason: string): never => {
    throw new ScanFailure(i, reason);
  };
  const literal = (word: string): void => {
    for (let k = 0; k < word.length; k++, i++) {
      if (text[i] !== word[k]) fail(`expected ${JSON.stringify(word)}, found ${found(text, i)}`);
    }
  };
  const digits = (what: string): void => {
    const start = i;
    while (i < text.length && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
    if (i === start) fail(`expected a digit ${what}, found ${found(text, i)}`);
  };
  const number = (): void => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else digits('in number');
    if (text[i] === '.') {
      i++;
      digits('after decimal point');
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      digits('in exponent');
    }
  };
  const string = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('control character in string (escape it)');
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          i++;
          for (let k = 0; k < 4; k++, i++) {
            if (!/^[0-9a-fA-F]$/.test(text[i] ?? ''))
              fail(`expected a hex digit in \\u escape, found ${found(text, i)}`);
          }
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail(`invalid escape \\${e ?? ''} in string`);
      }
      i++;
    }
  };
  const value = (depth: number): void => {
    const c = text[i];
    switch (c) {
      case '{':
      case '[': {
        if (depth > maxDepth) fail(`nested deeper than ${maxDepth} levels`);
        const close = c === '{' ? '}' : ']';
        i++;
        ws();
        if (text[i] === close) {
          i++;
          return;
        }
        for (;;) {
          if (c === '{') {
            if (text[i] !== '"') fail(`expected a string key, found ${found(text, i)}`);
            string();
            ws();
            if (text[i] !== ':') fail(`expected ':' after object key, found ${found(text, i)}`);
            i++;
            ws();
          }
          value(depth + 1);
          ws();
          if (text[i] === ',') {
            i++;
            ws();
            continue;
          }
          if (text[i] === close) {
            i++;
            return;
          }
          fail(`expected ',' or '${close}', found ${found(text, i)}`);
        }
      }
      case '"':
        string();
        return;
      case 't':
        literal('true');
        return;
      case 'f':
        literal('false');
        return;
      case 'n':
        literal('null');
        return;
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
          number();
          return;
        }
        fail(`expected a JSON value, found ${found(text, i)}`);
    }
  };
  try {
    ws();
    value(1);
    const end = i;
    ws();
    if (i < text.length) {
      return {
        kind: 'trailing',
        offset: i,
        valueEnd: end,
        reason: `unexpected ${found(text, i)} after the JSON value`,
      };
    }
    return { kind: 'ok' };
  } catch (err) {
    if (err instanceof ScanFailure) return { kind: 'error', offset: err.offset, reason: err.reason };
    throw err;
  }
}
