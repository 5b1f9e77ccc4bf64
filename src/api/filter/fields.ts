import type { Expr, MatchExpr, MatchOp } from './ast.ts';
import { parseGoBool, parseGoFloat, parseGoInt, parseGoUint } from './coerce.ts';
import { FilterSyntaxError, quote } from './errors.ts';

/**
 * What an endpoint's rows look like, so a filter can be checked before it runs (Consul answers
 * 400 for an unknown selector or a value of the wrong type; without a spec meshd cannot know).
 *
 * ```ts
 * const healthService: FieldSpec = {
 *   Service: { object: { Service: 'string', Tags: { array: 'string' }, Meta: { map: 'string' }, Port: 'int' } },
 *   Checks: { array: { object: { Status: 'string', ServiceTags: { array: 'string' } } } },
 * };
 * ```
 */
export type FieldSpec = { readonly [field: string]: FieldType };
export type ScalarType = 'string' | 'int' | 'uint' | 'float' | 'bool';
export type FieldType =
  | ScalarType
  | { readonly array: FieldType }
  | { readonly map: FieldType }
  | { readonly object: FieldSpec };

/** Operators per leaf type, as go-bexpr's default field configurations allow them. */
const EQUALITY: readonly MatchOp[] = ['equal', 'notEqual'];
const EMPTINESS: readonly MatchOp[] = ['isEmpty', 'isNotEmpty'];
const CONTAINER: readonly MatchOp[] = ['in', 'notIn', ...EMPTINESS];
const STRING: readonly MatchOp[] = [...EQUALITY, ...CONTAINER, 'matches', 'notMatches'];

const OP_TEXT: Readonly<Record<MatchOp, string>> = {
  equal: '==',
  notEqual: '!=',
  in: 'in/contains',
  notIn: 'not in/not contains',
  isEmpty: 'is empty',
  isNotEmpty: 'is not empty',
  matches: 'matches',
  notMatches: 'not matches',
};

/** Throw `FilterSyntaxError` for the first selector, operator or value the spec does not allow. */
export function validateFields(expr: Expr, spec: FieldSpec): void {
  // Iterative walk: the parser bounds nesting, but there is no reason to recurse.
  const stack: Expr[] = [expr];
  while (stack.length > 0) {
    const e = stack.pop()!;
    if (e.kind === 'and' || e.kind === 'or') stack.push(...[...e.operands].reverse());
    else if (e.kind === 'not') stack.push(e.operand);
    else validateMatch(e, spec);
  }
}

function validateMatch(m: MatchExpr, spec: FieldSpec): void {
  const leaf = resolve(m, spec);
  const sel = quote(m.selector.text);
  const allowed = allowedOps(leaf);
  if (!allowed.includes(m.op)) {
    throw new FilterSyntaxError(
      `operator "${OP_TEXT[m.op]}" is not supported for selector ${sel}`,
      m.selector.pos,
    );
  }
  if (!m.value) return;
  // The literal must convert to the type it is compared with: the field's for ==/!=, the
  // element's for `in` on an array, the key's (always a string) for `in` on a map.
  const target = typeof leaf === 'string' ? leaf : 'array' in leaf ? leaf.array : 'string';
  if (typeof target === 'string' && !coercible(m.value.raw, target)) {
    throw new FilterSyntaxError(
      `value ${quote(m.value.raw)} is not a valid ${target} for selector ${sel}`,
      m.value.pos,
    );
  }
}

function allowedOps(leaf: FieldType): readonly MatchOp[] {
  if (typeof leaf === 'string') return leaf === 'string' ? STRING : EQUALITY;
  if ('object' in leaf) return [];
  // Membership in an array of objects has nothing to compare with: only emptiness.
  if ('array' in leaf && typeof leaf.array !== 'string') return EMPTINESS;
  return CONTAINER;
}

/**
 * The type a selector ends on. Arrays are transparent in the middle of a path (`Checks.Status`
 * selects the Status of every check), maps consume one segment as the key, objects one field.
 */
function resolve(m: MatchExpr, spec: FieldSpec): FieldType {
  const { path } = m.selector;
  let type: FieldType = { object: spec };
  let i = 0;
  while (i < path.length) {
    if (typeof type === 'string') {
      const prefix = path.slice(0, i).join('.');
      throw new FilterSyntaxError(
        `invalid selector ${quote(m.selector.text)}: ${quote(prefix)} has no field ${quote(path[i])}`,
        m.selector.pos,
      );
    }
    if ('array' in type) {
      type = type.array;
    } else if ('map' in type) {
      type = type.map;
      i++;
    } else {
      const fields: FieldSpec = type.object;
      if (!Object.hasOwn(fields, path[i])) {
        throw new FilterSyntaxError(`unknown selector ${quote(m.selector.text)}`, m.selector.pos);
      }
      type = fields[path[i]];
      i++;
    }
  }
  return type;
}

function coercible(raw: string, type: ScalarType): boolean {
  switch (type) {
    case 'string':
      return true;
    case 'int':
      return parseGoInt(raw) !== undefined;
    case 'uint':
      return parseGoUint(raw) !== undefined;
    case 'float':
      return parseGoFloat(raw) !== undefined;
    case 'bool':
      return parseGoBool(raw) !== undefined;
  }
}
