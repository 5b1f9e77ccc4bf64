import type { Expr, MatchExpr, MatchOp } from './ast.ts';
import { parseGoBool, parseGoNumber } from './coerce.ts';

/**
 * Evaluation of a parsed filter against one JSON-shaped row.
 *
 * Decisions where go-bexpr's behaviour rests on Go's static types (meshd sees only JSON):
 *
 * - **Arrays along a path are ANY.** `Checks.Status != passing` on a health row whose `Checks` is
 *   an array is true when at least one check is not passing: go-bexpr (the field-configuration
 *   version Consul uses) applies the whole operator, negated or not, to each element and
 *   ORs the results. An empty array therefore matches nothing, not even `!=`. To ask "no check
 *   is critical", write `not Checks.Status == critical`.
 * - **Arrays at the end of a path**: `in`/`not in`/`contains` test membership, `is empty` tests
 *   the array itself. `==`, `!=`, `matches` and `not matches` (which Consul rejects with 400 for
 *   array fields) apply to each element, ANY, as along a path.
 * - **Missing keys and nulls** behave as go-bexpr's missing map keys: `==`, `in`, `contains`,
 *   `matches`, `is not empty` are false; `!=`, `not in`, `not contains`, `not matches`,
 *   `is empty` are true. Selecting through a string, number or boolean matches nothing.
 * - **Coercion follows the row's value**: against a JSON number the literal is parsed as a Go
 *   integer (`0x1F`, `017`) or float, against a boolean with Go's `ParseBool` (`true`, `T`, `1`,
 *   ...), against a string it is compared as written. When it does not parse (`Port == web`),
 *   or the operator does not apply to the value (`in` on a number, `matches` on an object),
 *   go-bexpr reports an error; here the matching expression is simply false, whichever
 *   operator (so `Port != web` is false too; `not Port == web` is true). A `FieldSpec` turns
 *   those cases into `FilterSyntaxError` at compile time instead, as Consul's 400.
 * - `is empty` on a number or boolean is false (Go zero values are not "empty").
 */
export type Predicate = (row: unknown) => boolean;

export function toPredicate(expr: Expr): Predicate {
  switch (expr.kind) {
    case 'and': {
      const parts = expr.operands.map(toPredicate);
      return (row) => parts.every((p) => p(row));
    }
    case 'or': {
      const parts = expr.operands.map(toPredicate);
      return (row) => parts.some((p) => p(row));
    }
    case 'not': {
      const inner = toPredicate(expr.operand);
      return (row) => !inner(row);
    }
    case 'match':
      return matchPredicate(expr);
  }
}

/** The result for a selector that finds nothing: true only for the negative operators. */
const WHEN_MISSING: Readonly<Record<MatchOp, boolean>> = {
  equal: false,
  notEqual: true,
  in: false,
  notIn: true,
  isEmpty: true,
  isNotEmpty: false,
  matches: false,
  notMatches: true,
};

const NEGATED: ReadonlySet<MatchOp> = new Set(['notEqual', 'notIn', 'isNotEmpty', 'notMatches']);

type Obj = Readonly<Record<string, unknown>>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function matchPredicate(m: MatchExpr): Predicate {
  const { path } = m.selector;
  const missing = WHEN_MISSING[m.op];
  const negated = NEGATED.has(m.op);
  const raw = m.value?.raw ?? '';
  const literal = new Literal(raw);
  const regex = m.regex;

  /** true/false, or undefined when the operator does not apply to the value (then: no match). */
  const test = (v: unknown): boolean | undefined => {
    switch (m.op) {
      case 'isEmpty':
      case 'isNotEmpty':
        if (typeof v === 'string' || Array.isArray(v)) return v.length === 0;
        if (isObject(v)) return Object.keys(v).length === 0;
        return false;
      case 'equal':
      case 'notEqual':
        return literal.equals(v);
      case 'in':
      case 'notIn':
        if (typeof v === 'string') return v.includes(raw);
        if (Array.isArray(v)) return v.some((el) => literal.equals(el) === true);
        if (isObject(v)) return Object.hasOwn(v, raw);
        return undefined;
      case 'matches':
      case 'notMatches':
        return typeof v === 'string' && regex ? regex.test(v) : undefined;
    }
  };

  const atLeaf = (v: unknown): boolean => {
    if (v === null || v === undefined) return missing;
    if (
      Array.isArray(v) &&
      m.op !== 'in' &&
      m.op !== 'notIn' &&
      m.op !== 'isEmpty' &&
      m.op !== 'isNotEmpty'
    ) {
      return v.some(atLeaf);
    }
    const result = test(v);
    if (result === undefined) return false;
    return negated ? !result : result;
  };

  const walk = (v: unknown, depth: number): boolean => {
    while (depth < path.length) {
      if (Array.isArray(v)) return v.some((el) => walk(el, depth));
      if (!isObject(v)) return v === null || v === undefined ? missing : false;
      const key = path[depth];
      if (!Object.hasOwn(v, key)) return missing;
      v = v[key];
      depth++;
    }
    return atLeaf(v);
  };

  return (row) => walk(row, 0);
}

/** A literal with its number and boolean readings parsed once. */
class Literal {
  readonly raw: string;
  private readonly num: number | undefined;
  private readonly bool: boolean | undefined;

  constructor(raw: string) {
    this.raw = raw;
    this.num = parseGoNumber(raw);
    this.bool = parseGoBool(raw);
  }

  /** Equality after coercion to the value's type; undefined when the literal does not convert. */
  equals(v: unknown): boolean | undefined {
    if (typeof v === 'string') return v === this.raw;
    if (typeof v === 'number') return this.num === undefined ? undefined : v === this.num;
    if (typeof v === 'boolean') return this.bool === undefined ? undefined : v === this.bool;
    return undefined;
  }
}
