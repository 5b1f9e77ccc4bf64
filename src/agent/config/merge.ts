/**
 * Checking one configuration source against the schema, and merging sources as Consul's
 * agent/config/merge.go does:
 * - scalars: a later value wins;
 * - arrays (`retry_join`, `services`, `checks`, `recursors`, ...): concatenated in order;
 * - structs (`ports`, `dns_config`, `acl.tokens`, ...): merged key by key, recursively;
 * - maps (`node_meta`, `dns_config.service_ttl`): a later non-empty map replaces the earlier one.
 */
import type { z } from 'zod';
import { ConfigError } from './errors.ts';
import { MAP_KEYS, type RawConfig, RawConfigSchema } from './schema.ts';

type JsonObject = Record<string, unknown>;

const isPlainObject = (v: unknown): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** What a zod `expected` is called in a message about JSON. */
function expectedName(expected: string): string {
  return expected === 'record' ? 'object' : expected;
}

/** The value at `path` in `root`, or undefined. */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

const keyPath = (path: readonly PropertyKey[]): string => path.map(String).join('.');

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code === 'invalid_type') {
    const actual = valueAt(input, issue.path);
    if (issue.expected === 'int' && typeof actual === 'number') return `expected an integer, got ${actual}`;
    return `expected ${expectedName(issue.expected)}, got ${typeName(actual)}`;
  }
  return issue.message;
}

/**
 * Checks one source (labelled `config file /etc/meshd/a.json`, `command-line flags` in messages;
 * `file` is its path, if any, for {@link ConfigError.source}) against the schema.
 * Unknown keys become warnings naming the source and key path, and are dropped; the first
 * value of a wrong type or out of range is a {@link ConfigError} naming the source and key.
 * Then, per source as Consul does, `service` and `check` are folded into `services` and
 * `checks`, and the deprecated `ui` into `ui_config.enabled`.
 */
export function checkSource(
  input: unknown,
  source: string,
  file?: string,
): { config: RawConfig; warnings: string[] } {
  if (!isPlainObject(input)) {
    throw new ConfigError(`${source}: the top level must be a JSON object, got ${typeName(input)}`, {
      source: file,
    });
  }
  const warnings: string[] = [];
  let candidate: JsonObject = input;
  let result = RawConfigSchema.safeParse(candidate);
  if (!result.success) {
    const unknown = result.error.issues.filter((i) => i.code === 'unrecognized_keys');
    const other = result.error.issues.filter((i) => i.code !== 'unrecognized_keys');
    if (other.length > 0) {
      const first = other[0];
      const key = keyPath(first.path);
      throw new ConfigError(`${source}: "${key}": ${describeIssue(first, input)}`, { source: file, key });
    }
    candidate = structuredClone(input);
    const found: string[] = [];
    for (const issue of unknown) {
      const parent = valueAt(candidate, issue.path) as JsonObject;
      for (const k of issue.keys) {
        found.push(keyPath([...issue.path, k]));
        delete parent[k];
      }
    }
    for (const k of found.sort()) warnings.push(`${source}: unknown key "${k}"`);
    result = RawConfigSchema.safeParse(candidate);
    if (!result.success) {
      // Removing keys cannot add a type error; anything left is a bug here, not in the file.
      throw new Error(`config schema disagrees with itself for ${source}: ${result.error.message}`);
    }
  }
  const config = result.data;
  if (config.service !== undefined) {
    config.services = [...(config.services ?? []), config.service];
    delete config.service;
  }
  if (config.check !== undefined) {
    config.checks = [...(config.checks ?? []), config.check];
    delete config.check;
  }
  if (config.ui !== undefined) {
    warnings.push(`${source}: "ui" is deprecated; use "ui_config.enabled"`);
    if (config.ui_config?.enabled === undefined)
      config.ui_config = { ...config.ui_config, enabled: config.ui };
    delete config.ui;
  }
  return { config, warnings };
}

function mergeAt(a: JsonObject, b: JsonObject, prefix: string): JsonObject {
  const out: JsonObject = { ...a };
  for (const [k, bv] of Object.entries(b)) {
    if (bv === undefined) continue;
    const av = out[k];
    const path = prefix === '' ? k : `${prefix}.${k}`;
    if (Array.isArray(av) && Array.isArray(bv)) out[k] = [...av, ...bv];
    else if (MAP_KEYS.has(path)) out[k] = isPlainObject(bv) && Object.keys(bv).length === 0 ? av : bv;
    else if (isPlainObject(av) && isPlainObject(bv)) out[k] = mergeAt(av, bv, path);
    else out[k] = bv;
  }
  return out;
}

/** Merges `later` over `earlier` by Consul's rules (see the module comment). Neither is changed. */
export function mergeConfig(earlier: RawConfig, later: RawConfig): RawConfig {
  return mergeAt(earlier as JsonObject, later as JsonObject, '') as RawConfig;
}
