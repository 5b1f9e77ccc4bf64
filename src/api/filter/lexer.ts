import { FilterSyntaxError, quote } from './errors.ts';

/**
 * Tokens of a filter expression. Words are bare identifiers (`Service`, `and`, `passing`);
 * keywords are recognised by the parser from context, as go-bexpr's PEG grammar does.
 */
export type TokenKind =
  | 'word'
  | 'string'
  | 'number'
  | 'digits'
  | '('
  | ')'
  | '['
  | ']'
  | '.'
  | '=='
  | '!='
  | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The source text of the token (for strings, with the quotes). */
  readonly text: string;
  /** Decoded value: the string's contents, the word or the number as written. */
  readonly value: string;
  /** 0-based offset of the token's first character. */
  readonly pos: number;
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isLetter = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
/** go-bexpr identifiers: a letter, then letters, digits, `_` or `/`. */
const isWordChar = (c: string): boolean => isLetter(c) || isDigit(c) || c === '_' || c === '/';

/** Turn an expression into tokens, ending with one `eof` token. Linear in the input; never backtracks. */
export function lex(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const push = (kind: TokenKind, start: number, value = src.slice(start, i)): void => {
    tokens.push({ kind, text: src.slice(start, i), value, pos: start });
  };

  while (i < src.length) {
    const c = src[i];
    const start = i;
    if (isSpace(c)) {
      i++;
    } else if (c === '(' || c === ')' || c === '[' || c === ']' || c === '.') {
      i++;
      push(c, start);
    } else if (c === '=' || c === '!') {
      if (src[i + 1] !== '=')
        throw new FilterSyntaxError(`unexpected ${quote(c)}`, start, `expected "${c}="`);
      i += 2;
      push(c === '=' ? '==' : '!=', start);
    } else if (c === '"') {
      i = lexDoubleQuoted(src, i, tokens);
    } else if (c === '`') {
      const end = src.indexOf('`', i + 1);
      if (end < 0) throw new FilterSyntaxError('unterminated string literal', start);
      i = end + 1;
      // Go's raw strings drop carriage returns.
      push('string', start, src.slice(start + 1, end).replaceAll('\r', ''));
    } else if (isDigit(c) && tokens.at(-1)?.kind === '.') {
      // A numeric path segment such as `Items.0`: digits only, no fraction.
      while (i < src.length && isDigit(src[i])) i++;
      push('digits', start);
    } else if (isDigit(c) || (c === '-' && isDigit(src[i + 1] ?? ''))) {
      i = lexNumber(src, i);
      push('number', start);
    } else if (isLetter(c)) {
      while (i < src.length && isWordChar(src[i])) i++;
      push('word', start);
    } else {
      throw new FilterSyntaxError(
        `unexpected character ${quote(String.fromCodePoint(src.codePointAt(i)!))}`,
        start,
      );
    }
  }
  tokens.push({ kind: 'eof', text: '', value: '', pos: src.length });
  return tokens;
}

/** go-bexpr numbers: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, followed by whitespace, `)` or the end. */
function lexNumber(src: string, i: number): number {
  const start = i;
  if (src[i] === '-') i++;
  if (src[i] === '0') i++;
  else while (i < src.length && isDigit(src[i])) i++;
  if (src[i] === '.' && isDigit(src[i + 1] ?? '')) {
    i++;
    while (i < src.length && isDigit(src[i])) i++;
  }
  const next = src[i];
  if (next !== undefined && next !== ')' && !isSpace(next)) {
    throw new FilterSyntaxError('invalid number literal', start);
  }
  return i;
}

const simpleEscapes: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
  '"': '"',
};

/**
 * A double-quoted string with Go's escapes (`\n`, `\t`, `\"`, `\\`, `\xHH`, `\uHHHH`,
 * `\UHHHHHHHH`, octal `\ooo`). A raw newline or an unknown escape is an error, as in Go.
 */
function lexDoubleQuoted(src: string, i: number, tokens: Token[]): number {
  const start = i;
  i++;
  let out = '';
  while (true) {
    if (i >= src.length) throw new FilterSyntaxError('unterminated string literal', start);
    const c = src[i];
    if (c === '"') break;
    if (c === '\n') throw new FilterSyntaxError('newline in string literal', i);
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const e = src[i + 1];
    if (e === undefined) throw new FilterSyntaxError('unterminated string literal', start);
    const simple = simpleEscapes[e];
    if (simple !== undefined) {
      out += simple;
      i += 2;
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = src.slice(i + 2, i + 2 + len);
      if (hex.length !== len || !/^[0-9a-fA-F]+$/.test(hex)) {
        throw new FilterSyntaxError(`invalid escape \\${e} in string literal`, i);
      }
      const code = Number.parseInt(hex, 16);
      if (code > 0x10ffff || (e !== 'x' && code >= 0xd800 && code <= 0xdfff)) {
        throw new FilterSyntaxError(`invalid escape \\${e}${hex} in string literal`, i);
      }
      out += String.fromCodePoint(code);
      i += 2 + len;
    } else if (e >= '0' && e <= '7') {
      const oct = src.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(oct) || Number.parseInt(oct, 8) > 255) {
        throw new FilterSyntaxError('invalid octal escape in string literal', i);
      }
      out += String.fromCharCode(Number.parseInt(oct, 8));
      i += 4;
    } else {
      throw new FilterSyntaxError(`invalid escape ${quote(`\\${e}`)} in string literal`, i);
    }
  }
  i++;
  tokens.push({ kind: 'string', text: src.slice(start, i), value: out, pos: start });
  return i;
}
