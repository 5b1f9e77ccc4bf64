/**
 * Consul's request-body decoding rules, for routes that declare their body once as a zod
 * schema:
 *
 * ```ts
 * export const RegisterService = consulObject({
 *   Name: z.string().min(1),
 *   ID: z.string().optional(),
 *   Meta: z.record(z.string(), z.string()).optional(),   // keys kept exactly as sent
 *   Check: CheckType.optional(),                          // folded recursively
 *   Checks: z.array(CheckType).optional(),
 * });
 * const input = RegisterService.parse(parseJsonBody(ctx.request.rawBody, { maxBytes: 1 << 20 }));
 * ```
 *
 * Key matching, as Go's encoding/json plus Consul's `lib.TranslateKeys` aliases:
 * - a JSON key matches a field when they are equal ignoring case and underscores, so `name`,
 *   `NAME`, `service_id`, `ServiceId` and `deregister_critical_service_after` all land on the
 *   PascalCase field;
 * - a field may also declare extra aliases (`.meta({ consulAliases: ['args'] })` in zod,
 *   `aliases` in the spec DSL) for the few renames that are not just a change of case;
 * - if several keys of one object land on the same field, the one spelled exactly like the
 *   field wins (as `TranslateKeys` keeps the canonical key); among inexact spellings the last
 *   one in the document wins (as encoding/json, which overwrites on each duplicate);
 * - keys that match no field are kept as they are (the schema decides whether they are
 *   allowed), and their values are not touched;
 * - maps (`z.record`, `z.map`) keep their keys (`Meta`, `NodeMeta`, `TaggedAddresses`,
 *   `Header`, `Proxy.Config`...); their values are folded if the value schema is an object.
 *
 * Why derive from zod rather than a separate DSL: every route already has its zod schema
 * (STYLE.md §5), and a second description of the same shape would drift. The walker reads
 * only zod's public `_zod.def`; wrappers (optional, nullable, default, catch, readonly, pipe,
 * lazy, union, intersection) are looked through, recursive schemas (getters, `z.lazy`) are
 * fine. The small spec DSL below (`objectKeys`, `arrayOf`, `mapOf`, `LEAF`) is the
 * underlying form, usable directly where no zod schema exists (config files, tests).
 */
import * as z from 'zod';
import { DurationError, parseConsulDuration } from './duration.ts';

export { BadJsonError, BodyTooLargeError, type ParseJsonBodyOptions, parseJsonBody } from './json-body.ts';

/** What is known about a JSON value's keys. An empty spec (`LEAF`) leaves the value alone. */
export interface KeySpec {
  /** For an object: the fields, by folded name (and folded aliases). */
  fields?: Map<string, FieldSpec>;
  /** For an array: the spec of every element. */
  element?: KeySpec;
  /** For a map with opaque keys: the spec of every value. Keys are never rewritten. */
  values?: KeySpec;
}

export interface FieldSpec {
  /** The canonical (PascalCase) name the key is rewritten to. */
  readonly name: string;
  readonly spec: KeySpec;
}

/** A value whose keys, if any, are left alone. */
export const LEAF: KeySpec = Object.freeze({});

/**
 * The matching key: lower case, underscores removed. `ServiceID`, `service_id` and
 * `SERVICEID` all fold to `serviceid`.
 */
export function foldKey(key: string): string {
  return key.replaceAll('_', '').toLowerCase();
}

/** An object with these canonical fields; `aliases` adds other spellings for a field. */
export function objectKeys(
  fields: Readonly<Record<string, KeySpec>>,
  aliases: Readonly<Record<string, readonly string[]>> = {},
): KeySpec {
  const map = new Map<string, FieldSpec>();
  for (const [name, spec] of Object.entries(fields)) addField(map, name, spec, aliases[name] ?? []);
  return { fields: map };
}

/** An array whose elements follow `element`. */
export function arrayOf(element: KeySpec): KeySpec {
  return { element };
}

/** A map whose keys are data (never rewritten), whose values follow `values`. */
export function mapOf(values: KeySpec = LEAF): KeySpec {
  return { values };
}

function addField(
  map: Map<string, FieldSpec>,
  name: string,
  spec: KeySpec,
  aliases: readonly string[],
): void {
  const field = { name, spec };
  // The first declaration of a folded name wins; a schema with two fields folding alike
  // (`ID` and `Id`) is a mistake that the route's tests will show.
  for (const key of [name, ...aliases]) {
    const folded = foldKey(key);
    if (!map.has(folded)) map.set(folded, field);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Sets an own property, even one named `__proto__` (which JSON.parse can produce). */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/**
 * Returns a copy of `value` with object keys rewritten to the canonical field names of
 * `spec` (see the module comment for the rules). The input is not modified; parts of it that
 * the spec says nothing about are shared, not copied. Accepts a zod schema in place of a spec.
 */
export function foldKeys(value: unknown, spec: KeySpec | z.core.$ZodType): unknown {
  return foldWith(value, '_zod' in spec ? keySpecFromZod(spec) : spec);
}

function foldWith(value: unknown, spec: KeySpec): unknown {
  if (Array.isArray(value)) {
    const element = spec.element;
    return element === undefined ? value : value.map((v) => foldWith(v, element));
  }
  if (!isPlainObject(value)) return value;
  const { fields, values } = spec;
  if (fields !== undefined) {
    const out: Record<string, unknown> = {};
    const exact = new Set<string>();
    for (const [key, v] of Object.entries(value)) {
      const field = fields.get(foldKey(key));
      if (field === undefined) {
        setOwn(out, key, v);
      } else if (key === field.name) {
        exact.add(key);
        setOwn(out, key, foldWith(v, field.spec));
      } else if (!exact.has(field.name)) {
        setOwn(out, field.name, foldWith(v, field.spec));
      }
    }
    return out;
  }
  if (values !== undefined) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) setOwn(out, key, foldWith(v, values));
    return out;
  }
  return value;
}

/** Metadata a zod field may carry: other spellings Consul accepts for it (`args` for `ScriptArgs`). */
export interface ConsulFieldMeta {
  consulAliases?: readonly string[];
}

const specCache = new WeakMap<z.core.$ZodType, KeySpec>();

/**
 * The key spec of a zod schema: `z.object` shapes give fields, `z.array` elements,
 * `z.record`/`z.map` opaque-keyed maps; anything else is a leaf. Cached per schema.
 */
export function keySpecFromZod(schema: z.core.$ZodType): KeySpec {
  const cached = specCache.get(schema);
  if (cached !== undefined) return cached;
  // Registered before walking so that a recursive schema meets this (still filling) node.
  const spec: KeySpec = {};
  specCache.set(schema, spec);
  Object.assign(spec, walk(schema));
  return spec;
}

/** Every spec of a union or intersection merged: objects' fields united, first one wins. */
function merge(specs: readonly KeySpec[]): KeySpec {
  const out: KeySpec = {};
  for (const s of specs) {
    if (s.fields !== undefined) {
      out.fields ??= new Map();
      for (const [k, f] of s.fields) if (!out.fields.has(k)) out.fields.set(k, f);
    }
    out.element ??= s.element;
    out.values ??= s.values;
  }
  return out;
}

function aliasesOf(schema: z.core.$ZodType): readonly string[] {
  const meta = z.globalRegistry.get(schema) as ConsulFieldMeta | undefined;
  const own = meta?.consulAliases ?? [];
  // Wrappers (`.optional()` after `.meta()`) carry the metadata on their inner schema.
  const def = schema._zod.def as { innerType?: z.core.$ZodType };
  return def.innerType === undefined ? own : [...own, ...aliasesOf(def.innerType)];
}

function walk(schema: z.core.$ZodType): KeySpec {
  const def = schema._zod.def;
  switch (def.type) {
    case 'object': {
      const { shape } = def as z.core.$ZodObjectDef;
      const fields = new Map<string, FieldSpec>();
      for (const name of Object.keys(shape)) {
        // A getter in the shape (recursive schema) is read here, once the object exists.
        const fieldSchema = shape[name];
        const field: FieldSpec = {
          name,
          get spec() {
            return keySpecFromZod(fieldSchema);
          },
        };
        for (const key of [name, ...aliasesOf(fieldSchema)]) {
          const folded = foldKey(key);
          if (!fields.has(folded)) fields.set(folded, field);
        }
      }
      return { fields };
    }
    case 'array':
      return { element: keySpecFromZod((def as z.core.$ZodArrayDef).element) };
    case 'set':
      return { element: keySpecFromZod((def as z.core.$ZodSetDef).valueType) };
    case 'tuple': {
      const { items, rest } = def as z.core.$ZodTupleDef;
      return { element: merge([...items, ...(rest ? [rest] : [])].map(keySpecFromZod)) };
    }
    case 'record':
      return { values: keySpecFromZod((def as z.core.$ZodRecordDef).valueType) };
    case 'map':
      return { values: keySpecFromZod((def as z.core.$ZodMapDef).valueType) };
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
    case 'success':
      return keySpecFromZod((def as unknown as { innerType: z.core.$ZodType }).innerType);
    case 'lazy':
      return keySpecFromZod((def as z.core.$ZodLazyDef).getter());
    case 'pipe': {
      // The input side describes the JSON, unless it is a preprocess step (a transform that
      // accepts anything), in which case the schema after it does.
      const pipe = def as z.core.$ZodPipeDef;
      return keySpecFromZod(pipe.in._zod.def.type === 'transform' ? pipe.out : pipe.in);
    }
    case 'union':
      return merge((def as z.core.$ZodUnionDef).options.map(keySpecFromZod));
    case 'intersection': {
      const { left, right } = def as z.core.$ZodIntersectionDef;
      return merge([keySpecFromZod(left), keySpecFromZod(right)]);
    }
    default:
      return {};
  }
}

/**
 * `schema`, preceded by Consul's key folding: the route's one declaration of its body.
 * Folding twice is harmless, so wrapped schemas may nest.
 */
export function consulBody<T extends z.core.$ZodType>(schema: T): z.ZodPreprocess<T, unknown> {
  return z.preprocess((value: unknown) => foldKeys(value, keySpecFromZod(schema)), schema);
}

/** `consulBody(z.object(shape))`. */
export function consulObject<Shape extends z.core.$ZodLooseShape>(shape: Shape) {
  return consulBody(z.object(shape));
}

/**
 * A Consul duration field: a Go duration string (`"10s"`, `"1.5m"`) or a number of
 * nanoseconds, output as milliseconds. A bad value gives one issue whose message names it,
 * e.g. `invalid duration "10x": unknown unit "x"`.
 */
export function goDuration(): z.ZodPipe<z.ZodUnknown, z.ZodTransform<number, unknown>> {
  return z.unknown().transform((value, ctx) => {
    try {
      return parseConsulDuration(value);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message, input: value });
      return z.NEVER;
    }
  });
}
