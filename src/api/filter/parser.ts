import type { Expr, MatchExpr, MatchOp, MatchValue, Selector } from './ast.ts';
import { FilterSyntaxError, quote } from './errors.ts';
import { lex, type Token } from './lexer.ts';
import { compileRegex } from './regex.ts';

/** Longest expression accepted; Consul has no documented limit, a query string rarely nears it. */
export const MAX_EXPRESSION_LENGTH = 4096;
/** Deepest nesting of parentheses and `not` accepted. */
export const MAX_NESTING = 64;

/**
 * Words that cannot start a bare selector or value. go-bexpr's PEG grammar backtracks and would
 * accept some of them as field names in odd positions (`not == 1`); meshd reserves them so the
 * parser stays a one-token-lookahead descent. Quote such a value, or use `Meta["in"]`.
 */
const RESERVED = new Set(['and', 'or', 'not', 'in', 'is', 'contains', 'matches']);

/**
 * Grammar (go-bexpr's, minus JSON-pointer and inline-list selectors):
 *
 *   input    := or EOF
 *   or       := and ("or" and)*
 *   and      := not ("and" not)*
 *   not      := "not" not | primary
 *   primary  := "(" or ")" | match
 *   match    := selector ("==" | "!=" | "contains" | "not contains" | "matches" | "not matches") value
 *             | selector "is" ["not"] "empty"
 *             | value ("in" | "not in") selector
 *   selector := word ("." (word | digits) | "[" string "]")*
 *   value    := string | number | selector (taken as its dotted text)
 */
export function parse(src: string): Expr {
  if (src.length > MAX_EXPRESSION_LENGTH) {
    throw new FilterSyntaxError(
      `expression longer than ${MAX_EXPRESSION_LENGTH} characters`,
      MAX_EXPRESSION_LENGTH,
    );
  }
  return new Parser(lex(src)).parseInput();
}

class Parser {
  private readonly tokens: Token[];
  private at = 0;
  private depth = 0;

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  parseInput(): Expr {
    if (this.peek().kind === 'eof') throw new FilterSyntaxError('empty expression', 0);
    const expr = this.parseOr();
    const tok = this.peek();
    if (tok.kind !== 'eof') {
      const expected = tok.kind === ')' ? 'no ")" without a matching "("' : '"and", "or" or the end';
      throw this.unexpected(tok, expected);
    }
    return expr;
  }

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.at + offset, this.tokens.length - 1)];
  }

  private next(): Token {
    const tok = this.peek();
    if (tok.kind !== 'eof') this.at++;
    return tok;
  }

  private isWord(word: string, offset = 0): boolean {
    const tok = this.peek(offset);
    return tok.kind === 'word' && tok.value === word;
  }

  private unexpected(tok: Token, expected: string): FilterSyntaxError {
    const what = tok.kind === 'eof' ? 'end of input' : quote(tok.text);
    return new FilterSyntaxError(`unexpected ${what}`, tok.pos, `expected ${expected}`);
  }

  private enter(tok: Token): void {
    if (++this.depth > MAX_NESTING) {
      throw new FilterSyntaxError(`expression nested more than ${MAX_NESTING} levels deep`, tok.pos);
    }
  }

  private parseOr(): Expr {
    const operands = [this.parseAnd()];
    while (this.isWord('or')) {
      this.next();
      operands.push(this.parseAnd());
    }
    return operands.length === 1 ? operands[0] : { kind: 'or', operands };
  }

  private parseAnd(): Expr {
    const operands = [this.parseNot()];
    while (this.isWord('and')) {
      this.next();
      operands.push(this.parseNot());
    }
    return operands.length === 1 ? operands[0] : { kind: 'and', operands };
  }

  private parseNot(): Expr {
    const tok = this.peek();
    if (!this.isWord('not')) return this.parsePrimary();
    this.next();
    this.enter(tok);
    const operand = this.parseNot();
    this.depth--;
    return { kind: 'not', operand };
  }

  private parsePrimary(): Expr {
    const tok = this.peek();
    if (tok.kind !== '(') return this.parseMatch();
    this.next();
    this.enter(tok);
    const expr = this.parseOr();
    const close = this.next();
    if (close.kind !== ')') {
      throw close.kind === 'eof'
        ? new FilterSyntaxError('unbalanced "("', tok.pos)
        : this.unexpected(close, '")", "and" or "or"');
    }
    this.depth--;
    return expr;
  }

  private parseMatch(): MatchExpr {
    const first = this.peek();
    if (first.kind === 'string' || first.kind === 'number') {
      this.next();
      return this.parseIn({ raw: first.value, pos: first.pos });
    }
    if (first.kind !== 'word' || RESERVED.has(first.value)) {
      throw this.unexpected(first, 'a selector or a value');
    }
    const selector = this.parseSelector();
    // `<bare value> in <Selector>`: the path we read was a value.
    if (this.isWord('in') || (this.isWord('not') && this.isWord('in', 1))) {
      return this.parseIn({ raw: selector.text, pos: selector.pos });
    }

    const opTok = this.next();
    let op: MatchOp;
    if (opTok.kind === '==') op = 'equal';
    else if (opTok.kind === '!=') op = 'notEqual';
    else if (opTok.kind === 'word' && opTok.value === 'contains') op = 'in';
    else if (opTok.kind === 'word' && opTok.value === 'matches') op = 'matches';
    else if (opTok.kind === 'word' && opTok.value === 'not' && this.isWord('contains')) {
      this.next();
      op = 'notIn';
    } else if (opTok.kind === 'word' && opTok.value === 'not' && this.isWord('matches')) {
      this.next();
      op = 'notMatches';
    } else if (opTok.kind === 'word' && opTok.value === 'is') {
      const negated = this.isWord('not');
      if (negated) this.next();
      const empty = this.next();
      if (empty.kind !== 'word' || empty.value !== 'empty') throw this.unexpected(empty, '"empty"');
      return { kind: 'match', op: negated ? 'isNotEmpty' : 'isEmpty', selector };
    } else {
      throw this.unexpected(
        opTok,
        'an operator (==, !=, contains, not contains, matches, not matches, in, not in, is empty, is not empty)',
      );
    }

    const value = this.parseValue();
    if (op === 'matches' || op === 'notMatches') {
      return { kind: 'match', op, selector, value, regex: compileRegex(value.raw, value.pos) };
    }
    return { kind: 'match', op, selector, value };
  }

  private parseIn(value: MatchValue): MatchExpr {
    let op: MatchOp = 'in';
    const tok = this.next();
    if (tok.kind === 'word' && tok.value === 'not' && this.isWord('in')) {
      this.next();
      op = 'notIn';
    } else if (tok.kind !== 'word' || tok.value !== 'in') {
      throw this.unexpected(tok, '"in" or "not in" after a quoted or numeric value');
    }
    const head = this.peek();
    if (head.kind !== 'word' || RESERVED.has(head.value)) throw this.unexpected(head, 'a selector');
    return { kind: 'match', op, selector: this.parseSelector(), value };
  }

  private parseValue(): MatchValue {
    const tok = this.peek();
    if (tok.kind === 'string' || tok.kind === 'number') {
      this.next();
      return { raw: tok.value, pos: tok.pos };
    }
    if (tok.kind === 'word' && !RESERVED.has(tok.value)) {
      const path = this.parseSelector();
      return { raw: path.text, pos: path.pos };
    }
    throw this.unexpected(tok, 'a value');
  }

  /** `word ("." (word | digits) | "[" string "]")*`; the caller has checked the head word. */
  private parseSelector(): Selector {
    const head = this.next();
    const path = [head.value];
    while (true) {
      const tok = this.peek();
      if (tok.kind === '.') {
        this.next();
        const seg = this.next();
        if (seg.kind !== 'word' && seg.kind !== 'digits')
          throw this.unexpected(seg, 'a field name after "."');
        path.push(seg.value);
      } else if (tok.kind === '[') {
        this.next();
        const key = this.next();
        if (key.kind !== 'string') throw this.unexpected(key, 'a quoted map key');
        const close = this.next();
        if (close.kind !== ']') throw this.unexpected(close, '"]"');
        path.push(key.value);
      } else {
        return { path, text: path.join('.'), pos: head.pos };
      }
    }
  }
}
