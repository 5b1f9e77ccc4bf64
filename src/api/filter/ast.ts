/** Matching operators, after `contains`/`not contains` are folded into `in`/`notIn` as go-bexpr does. */
export type MatchOp =
  | 'equal'
  | 'notEqual'
  | 'in'
  | 'notIn'
  | 'isEmpty'
  | 'isNotEmpty'
  | 'matches'
  | 'notMatches';

export interface Selector {
  /** Path segments: `Service.Meta["a.b"]` → `['Service', 'Meta', 'a.b']`. */
  readonly path: readonly string[];
  /** The segments joined with `.`, for messages (go-bexpr's `Selector.String()`). */
  readonly text: string;
  readonly pos: number;
}

export interface MatchValue {
  /** The literal as text: strings decoded, numbers and bare words as written. */
  readonly raw: string;
  readonly pos: number;
}

export interface MatchExpr {
  readonly kind: 'match';
  readonly op: MatchOp;
  readonly selector: Selector;
  /** Absent for `is empty` / `is not empty`. */
  readonly value?: MatchValue;
  /** Compiled once for `matches` / `not matches`. */
  readonly regex?: RegExp;
}

export type Expr =
  | { readonly kind: 'and'; readonly operands: readonly Expr[] }
  | { readonly kind: 'or'; readonly operands: readonly Expr[] }
  | { readonly kind: 'not'; readonly operand: Expr }
  | MatchExpr;
