/**
 * Consul's `filter=` expression language (HashiCorp go-bexpr), for list endpoints:
 *
 * ```ts
 * const rows = applyFilter(services, ctx.query.filter); // FilterSyntaxError → 400
 * ```
 *
 * Syntax: `<Selector> == <Value>`, `!=`, `contains`, `not contains`, `matches`, `not matches`,
 * `<Selector> is empty`, `is not empty`, `<Value> in <Selector>`, `not in`, joined with `and`,
 * `or`, `not` and parentheses (`not` binds tightest, then `and`, then `or`). See `evaluate.ts`
 * for how arrays, missing fields and literal coercion behave.
 */
import type { Expr } from './ast.ts';
import { toPredicate } from './evaluate.ts';
import type { FieldSpec } from './fields.ts';
import { validateFields } from './fields.ts';
import { parse } from './parser.ts';

export type { Expr, MatchExpr, MatchOp } from './ast.ts';
export { FilterSyntaxError } from './errors.ts';
export type { FieldSpec, FieldType, ScalarType } from './fields.ts';
export { MAX_EXPRESSION_LENGTH, MAX_NESTING } from './parser.ts';

export interface CompiledFilter {
  /** Whether one row passes the filter. Never throws for JSON-shaped input. */
  matches(value: unknown): boolean;
  readonly source: string;
  readonly ast: Expr;
}

export interface CompileOptions {
  /** Known fields of the rows: unknown selectors, unsupported operators and mistyped values then fail to compile. */
  fields?: FieldSpec;
}

/** Parse (and, given `fields`, check) an expression. Throws `FilterSyntaxError` and nothing else. */
export function compileFilter(expression: string, opts: CompileOptions = {}): CompiledFilter {
  const ast = parse(expression);
  if (opts.fields) validateFields(ast, opts.fields);
  const predicate = toPredicate(ast);
  return { matches: predicate, source: expression, ast };
}

/** Keep the rows the expression matches; `undefined` or `''` keeps them all (the same array). */
export function applyFilter<T>(rows: T[], expression: string | undefined, opts: CompileOptions = {}): T[] {
  if (expression === undefined || expression === '') return rows;
  const filter = compileFilter(expression, opts);
  return rows.filter((row) => filter.matches(row));
}
