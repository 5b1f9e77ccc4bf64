/**
 * Command-line flags parsed the way Go's `flag` package (and so Consul's CLI) parses them:
 * `-name value`, `-name=value`, `--name`, booleans as `-name` or `-name=false` (never `-name false`),
 * parsing stops at the first non-flag argument, at `--`, or at a lone `-` (which stays an argument).
 */

export type FlagKind = 'bool' | 'string' | 'uint' | 'list';

export interface FlagDef {
  name: string;
  kind: FlagKind;
  usage: string;
  /** Shown in help as `-name=<placeholder>`; defaults to `value` (`int` for uint flags). */
  placeholder?: string;
  /** Extra check of each value; return an error message to reject it. */
  validate?: (value: string) => string | undefined;
}

/** A usage error: printed as one line on stderr, exit status 1. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface ParsedFlags {
  /** The arguments left after the flags. */
  readonly args: string[];
  /** Whether the flag was given on the command line. */
  has(name: string): boolean;
  bool(name: string): boolean;
  string(name: string): string | undefined;
  uint(name: string): bigint | undefined;
  list(name: string): string[];
}

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Go's strconv.ParseBool. */
export function parseGoBool(text: string): boolean | undefined {
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  return undefined;
}

const MAX_UINT64 = (1n << 64n) - 1n;

/** Go's strconv.ParseUint(text, 0, 64): decimal, 0x hex, 0o / leading-0 octal, 0b binary. */
export function parseGoUint(text: string): bigint | 'parse error' | 'value out of range' {
  let digits = text;
  let radix = 10;
  if (/^0[xX]/.test(text)) {
    radix = 16;
    digits = text.slice(2);
  } else if (/^0[oO]/.test(text)) {
    radix = 8;
    digits = text.slice(2);
  } else if (/^0[bB]/.test(text)) {
    radix = 2;
    digits = text.slice(2);
  } else if (/^0\d/.test(text)) {
    radix = 8;
    digits = text.slice(1);
  }
  const allowed = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^\d+$/, 16: /^[0-9a-fA-F]+$/ }[radix]!;
  if (!allowed.test(digits)) return 'parse error';
  let value = 0n;
  for (const ch of digits) value = value * BigInt(radix) + BigInt(Number.parseInt(ch, radix));
  return value > MAX_UINT64 ? 'value out of range' : value;
}

/** Whether `-h`, `-help` or `--help` appears before any `--`, as Consul's CLI checks. */
export function wantsHelp(argv: string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '-h' || arg === '-help' || arg === '--help') return true;
  }
  return false;
}

export function parseFlags(defs: FlagDef[], argv: string[]): ParsedFlags {
  const byName = new Map(defs.map((d) => [d.name, d]));
  const values = new Map<string, boolean | string | bigint | string[]>();
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.length < 2 || arg[0] !== '-') break;
    if (arg === '--') {
      i++;
      break;
    }
    const body = arg[1] === '-' ? arg.slice(2) : arg.slice(1);
    if (body.length === 0 || body[0] === '-' || body[0] === '=')
      throw new UsageError(`bad flag syntax: ${arg}`);
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    let value = eq === -1 ? undefined : body.slice(eq + 1);
    const def = byName.get(name);
    if (!def) throw new UsageError(`flag provided but not defined: -${name}`);
    if (def.kind === 'bool') {
      if (value === undefined) {
        values.set(name, true);
      } else {
        const b = parseGoBool(value);
        if (b === undefined)
          throw new UsageError(`invalid boolean value "${value}" for -${name}: parse error`);
        values.set(name, b);
      }
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      value = argv[++i];
    }
    const invalid = def.validate?.(value);
    if (invalid !== undefined) throw new UsageError(`invalid value "${value}" for flag -${name}: ${invalid}`);
    if (def.kind === 'uint') {
      const n = parseGoUint(value);
      if (typeof n === 'string') throw new UsageError(`invalid value "${value}" for flag -${name}: ${n}`);
      values.set(name, n);
    } else if (def.kind === 'list') {
      const prev = values.get(name);
      values.set(name, [...(Array.isArray(prev) ? prev : []), value]);
    } else {
      values.set(name, value);
    }
  }
  const args = argv.slice(i);
  return {
    args,
    has: (name) => values.has(name),
    bool: (name) => values.get(name) === true,
    string: (name) => {
      const v = values.get(name);
      return typeof v === 'string' ? v : undefined;
    },
    uint: (name) => {
      const v = values.get(name);
      return typeof v === 'bigint' ? v : undefined;
    },
    list: (name) => {
      const v = values.get(name);
      return Array.isArray(v) ? v : [];
    },
  };
}

/** Wraps `text` at `width` columns, each line prefixed by `indent`. */
function wrap(text: string, indent: string, width = 80): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(indent + line);
  return lines;
}

export interface FlagGroup {
  title: string;
  flags: FlagDef[];
}

/** Renders flags in the layout of Consul's command help. */
export function formatFlagGroups(groups: FlagGroup[]): string {
  const out: string[] = [];
  for (const group of groups) {
    if (group.flags.length === 0) continue;
    out.push('', group.title, '');
    const sorted = [...group.flags].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const def of sorted) {
      const placeholder = def.placeholder ?? (def.kind === 'uint' ? 'int' : 'value');
      out.push(def.kind === 'bool' ? `  -${def.name}` : `  -${def.name}=<${placeholder}>`);
      out.push(...wrap(def.usage, '     '), '');
    }
    out.pop();
  }
  return out.join('\n');
}
