import { FilterSyntaxError } from './errors.ts';

/**
 * Compile a `matches` pattern. Go's RE2 syntax is mostly a subset of JavaScript's, so the
 * pattern goes to `RegExp` after three adjustments:
 *
 * - a leading flag group `(?i)`, `(?s)`, `(?m)` (common in Consul filters) becomes RegExp flags;
 *   `(?U)` (ungreedy) has no JavaScript equivalent and is rejected;
 * - `(?P<name>` becomes `(?<name>`;
 * - what RE2 refuses is refused here too: backreferences and lookaround.
 *
 * JavaScript's engine backtracks where RE2 does not, so a pattern that nests unbounded
 * quantifiers (`(a+)+`, `(\w*\s?)*`) could run for minutes on a crafted value: such patterns are
 * rejected. Overlapping alternations (`(a|a)*`) are not detected.
 *
 * The pattern is tried with the `u` flag (code-point semantics, as Go's UTF-8 matching) and,
 * when that rejects an escape Go allows (`\-`, `\@`), without it.
 */
export function compileRegex(pattern: string, pos: number): RegExp {
  let source = pattern;
  let flags = '';
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(source);
  if (lead) {
    for (const f of lead[1]) {
      if (f !== 'i' && f !== 'm' && f !== 's') {
        throw new FilterSyntaxError(`invalid regular expression: flag "${f}" is not supported`, pos);
      }
      if (!flags.includes(f)) flags += f;
    }
    source = source.slice(lead[0].length);
  }
  source = source.replaceAll('(?P<', '(?<');
  const problem = unsupported(source);
  if (problem) throw new FilterSyntaxError(`invalid regular expression: ${problem}`, pos);
  try {
    return new RegExp(source, `${flags}u`);
  } catch {
    try {
      return new RegExp(source, flags);
    } catch (err) {
      const why = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, '') : 'invalid';
      throw new FilterSyntaxError(`invalid regular expression: ${why}`, pos);
    }
  }
}

/** One linear scan for constructs RE2 lacks or that would backtrack catastrophically. */
function unsupported(src: string): string | undefined {
  // Per open group: does it contain an unbounded quantifier?
  const groups: boolean[] = [];
  let lastGroupHadUnbounded = false;
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    let closedGroup = false;
    if (c === '\\') {
      const e = src[i + 1] ?? '';
      if (e >= '1' && e <= '9') return 'backreferences are not supported';
      if (e === 'k' && src[i + 2] === '<') return 'backreferences are not supported';
      i += 2;
    } else if (c === '[') {
      i = skipClass(src, i);
    } else if (c === '(') {
      if (
        src.startsWith('(?=', i) ||
        src.startsWith('(?!', i) ||
        src.startsWith('(?<=', i) ||
        src.startsWith('(?<!', i)
      ) {
        return 'lookaround is not supported';
      }
      groups.push(false);
      i++;
    } else if (c === ')') {
      lastGroupHadUnbounded = groups.pop() ?? false;
      if (lastGroupHadUnbounded && groups.length > 0) groups[groups.length - 1] = true;
      closedGroup = true;
      i++;
    } else {
      i++;
    }
    // An unbounded quantifier after this atom?
    const q = src[i];
    const unbounded = q === '*' || q === '+' || (q === '{' && /^\{\d*,\}/.test(src.slice(i, i + 16)));
    if (unbounded) {
      if (closedGroup && lastGroupHadUnbounded) {
        return 'nested repetition such as "(a+)+" is not supported';
      }
      if (groups.length > 0) groups[groups.length - 1] = true;
    }
  }
  return undefined;
}

/** Index just past the character class starting at `i` (a `]` right after `[` or `[^` is literal). */
function skipClass(src: string, i: number): number {
  i++;
  if (src[i] === '^') i++;
  if (src[i] === ']') i++;
  while (i < src.length && src[i] !== ']') i += src[i] === '\\' ? 2 : 1;
  return i + 1;
}
