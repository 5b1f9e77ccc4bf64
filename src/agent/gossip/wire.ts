/**
 * The gossip wire format: one message per frame, JSON with a format version, validated on the
 * way in. A message of more than a few hundred bytes travels deflated ({@link encodeCompact}): a
 * zero byte (JSON text never starts with one), then the JSON as raw deflate. Members' alive
 * updates (names, addresses, IDs, tags) shrink ~5x, so that a packet carries ~16 instead of 4,
 * and a mass join, whose every member must hear of every other through packets, spreads that
 * much faster. A frame that is not valid JSON, has another version, a wrong type anywhere, or
 * exceeds a bound (frame size, name length, tag count and size, member count) is refused with a
 * one-line {@link GossipWireError} naming the field, and the caller drops it and counts it.
 *
 * The validation is written out by hand rather than with zod: every probe, ack and gossip packet
 * passes through it, and in a mass join zod's generic walk was 4–7% of an agent's CPU. The output
 * is built field by field, so a field this version does not know is dropped (a later agent's
 * addition costs us nothing), never passed on.
 */

import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { jsonBytes } from './core/broadcast-queue.ts';
import {
  type GossipMessage,
  MAX_USER_MESSAGE_LENGTH,
  type RecentUserMessage,
  type Update,
} from './core/types.ts';

export const WIRE_VERSION = 1;
/** Largest frame: a push-pull of a few thousand members with their tags fits. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** Largest message a packet may inflate to: a packet holds ~3 KiB of JSON, and no bomb gets far. */
export const MAX_PACKET_MESSAGE_BYTES = 64 * 1024;
const MAX_MEMBERS = 20_000;
const MAX_UPDATES = 256;
/** User messages on one message, and in one push-pull (the core sends at most 64, USER_RECENT). */
const MAX_USER = 64;
const MAX_RECENT = 256;
const MAX_NAME = 256;
const MAX_ADDR = 300;
const MAX_ID = 64;
const MAX_TAGS = 64;
const MAX_TAG_KEY = 128;
const MAX_TAG_VALUE = 512;

export class GossipWireError extends Error {
  override name = 'GossipWireError';
}

type Fields = Record<string, unknown>;

function fail(path: string, why: string): never {
  throw new GossipWireError(`invalid message at ${path === '' ? '(root)' : path}: ${why}`);
}

function at(path: string, key: string | number): string {
  return path === '' ? String(key) : `${path}.${key}`;
}

function object(v: unknown, path: string): Fields {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'expected an object');
  return v as Fields;
}

function array(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail(path, 'expected an array');
  if (v.length > max) fail(path, `more than ${max} items`);
  return v;
}

function string(o: Fields, key: string, path: string, min: number, max: number): string {
  const v = o[key];
  if (typeof v !== 'string') fail(at(path, key), 'expected a string');
  if (v.length < min) fail(at(path, key), `shorter than ${min}`);
  if (v.length > max) fail(at(path, key), `longer than ${max}`);
  return v;
}

/** A non-negative integer that a double holds exactly (sequence numbers, incarnations, ages). */
function count(o: Fields, key: string, path: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    fail(at(path, key), 'expected a non-negative integer');
  return v;
}

function boolean(o: Fields, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') fail(at(path, key), 'expected a boolean');
  return v;
}

function tags(v: unknown, path: string): Record<string, string> {
  const entries = Object.entries(object(v, path));
  if (entries.length > MAX_TAGS) fail(path, `more than ${MAX_TAGS} tags`);
  for (const [k, value] of entries) {
    if (k.length > MAX_TAG_KEY) fail(at(path, k), `tag name longer than ${MAX_TAG_KEY}`);
    if (typeof value !== 'string') fail(at(path, k), 'expected a string');
    if (value.length > MAX_TAG_VALUE) fail(at(path, k), `longer than ${MAX_TAG_VALUE}`);
  }
  // fromEntries defines own properties: a tag named "__proto__" stays a tag.
  return Object.fromEntries(entries) as Record<string, string>;
}

function update(v: unknown, path: string): Update {
  const o = object(v, path);
  const name = string(o, 'name', path, 1, MAX_NAME);
  const inc = count(o, 'inc', path);
  switch (o.kind) {
    case 'alive':
      return {
        kind: 'alive',
        name,
        id: string(o, 'id', path, 0, MAX_ID),
        addr: string(o, 'addr', path, 3, MAX_ADDR),
        meta: tags(o.meta, at(path, 'meta')),
        inc,
      };
    case 'suspect':
    case 'dead':
      return { kind: o.kind, name, inc, by: string(o, 'by', path, 1, MAX_NAME) };
    case 'left':
      return { kind: 'left', name, inc };
    default:
      return fail(at(path, 'kind'), 'unknown kind');
  }
}

function updates(v: unknown, path: string, max: number): Update[] {
  return array(v, path, max).map((u, i) => update(u, at(path, i)));
}

function userBodies(v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  return array(v, 'user', MAX_USER).map((b, i) => {
    if (typeof b !== 'string') fail(`user.${i}`, 'expected a string');
    if (b.length < 1 || b.length > MAX_USER_MESSAGE_LENGTH)
      fail(`user.${i}`, `not 1..${MAX_USER_MESSAGE_LENGTH} long`);
    return b;
  });
}

function recentUser(v: unknown): RecentUserMessage[] | undefined {
  if (v === undefined) return undefined;
  return array(v, 'recent', MAX_RECENT).map((r, i) => {
    const path = `recent.${i}`;
    const o = object(r, path);
    return { body: string(o, 'body', path, 1, MAX_USER_MESSAGE_LENGTH), ageMs: count(o, 'ageMs', path) };
  });
}

/** A decoded JSON value as a message, or a GossipWireError naming the first field that is wrong. */
function message(value: unknown): GossipMessage {
  const o = object(value, '');
  if (o.v !== WIRE_VERSION) fail('v', `expected ${WIRE_VERSION}`);
  const f = object(o.from, 'from');
  const from = { name: string(f, 'name', 'from', 1, MAX_NAME), addr: string(f, 'addr', 'from', 3, MAX_ADDR) };
  const base = { from, updates: updates(o.updates, 'updates', MAX_UPDATES) };
  const user = userBodies(o.user);
  const m = ((): GossipMessage => {
    switch (o.type) {
      case 'ping':
        return {
          ...base,
          type: 'ping',
          seq: count(o, 'seq', ''),
          target: string(o, 'target', '', 1, MAX_NAME),
        };
      case 'ack':
      case 'nack':
        return { ...base, type: o.type, seq: count(o, 'seq', '') };
      case 'ping-req':
        return {
          ...base,
          type: 'ping-req',
          seq: count(o, 'seq', ''),
          target: string(o, 'target', '', 1, MAX_NAME),
          targetAddr: string(o, 'targetAddr', '', 3, MAX_ADDR),
        };
      case 'push-pull': {
        const recent = recentUser(o.recent);
        return {
          ...base,
          type: 'push-pull',
          seq: count(o, 'seq', ''),
          join: boolean(o, 'join', ''),
          reply: boolean(o, 'reply', ''),
          state: updates(o.state, 'state', MAX_MEMBERS),
          ...(recent && { recent }),
        };
      }
      case 'gossip':
        return { ...base, type: 'gossip' };
      default:
        return fail('type', 'unknown message type');
    }
  })();
  if (user) m.user = user;
  return m;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The message as plain JSON (what {@link encodeCompact} sends deflated when that is smaller). */
export function encodeMessage(m: GossipMessage): Uint8Array {
  return encoder.encode(JSON.stringify({ v: WIRE_VERSION, ...m }));
}

/** First byte of a deflated message. */
const DEFLATED = 0x00;
/** Shorter JSON is sent as is: probes and acks gain nothing worth a deflate. */
const DEFLATE_MIN_BYTES = 256;
/**
 * A 4 KiB window covers a packet's worth of JSON and more; the small window, memory level and
 * output chunk keep each call's zlib memory at ~30 KiB instead of ~300 KiB with the defaults.
 * (Measured: deflating costs a client agent ~0.3–0.5 MiB of RSS in a 40- or 50-agent cluster.)
 */
const DEFLATE_OPTIONS = { windowBits: 12, memLevel: 5, chunkSize: 2048 };
/** Inflating needs a window as large as the deflater's: 4 KiB, as {@link DEFLATE_OPTIONS}. */
const INFLATE_OPTIONS = { windowBits: 12, chunkSize: 8192 };

/** The message as it goes on the wire: its JSON, deflated when that is shorter. */
export function encodeCompact(m: GossipMessage): Uint8Array {
  const json = encodeMessage(m);
  if (json.byteLength < DEFLATE_MIN_BYTES) return json;
  const deflated = deflateRawSync(json, DEFLATE_OPTIONS);
  if (deflated.byteLength + 1 >= json.byteLength) return json;
  const out = new Uint8Array(deflated.byteLength + 1);
  out[0] = DEFLATED;
  out.set(deflated, 1);
  return out;
}

type PushPull = Extract<GossipMessage, { type: 'push-pull' }>;

/**
 * A push-pull as several messages, each of whose encodings is at most `maxBytes`: the first
 * carries the piggybacked updates and user messages and as much of the state as fits, the rest
 * more of the state, then the recent user messages. Merging the parts in any order, or only some
 * of them, is merging part of the sender's state, which the protocol already does with updates.
 * Undefined when it takes more than `maxParts` (or one item alone does not fit in a part).
 *
 * When `m` is a request, only its first part asks for an answer: the others are sent as
 * {@link STATE_PART}s. (Every part of an answer is an answer: any of them acknowledges a join.)
 */
export function encodePushPullParts(
  m: PushPull,
  maxBytes: number,
  maxParts: number,
): Uint8Array[] | undefined {
  // Parts of three packets' worth of JSON each usually deflate into one; when one does not, the
  // parts are cut at one packet's worth of JSON, which never deflates to more.
  return partsOf(m, maxBytes * 3, maxBytes, maxParts) ?? partsOf(m, maxBytes, maxBytes, maxParts);
}

/**
 * What a request's parts after the first are: replies (merged, never answered) with sequence
 * number 0, which no request has (they count from 1), so that none passes for the answer to a join.
 */
export const STATE_PART = { seq: 0, reply: true } as const;

function partsOf(
  m: PushPull,
  jsonBudget: number,
  maxBytes: number,
  maxParts: number,
): Uint8Array[] | undefined {
  const first = { ...m, state: [] as Update[], recent: [] as RecentUserMessage[] };
  const rest = {
    ...m,
    ...(m.reply ? {} : STATE_PART),
    updates: [],
    user: undefined,
    state: [] as Update[],
    recent: [] as RecentUserMessage[],
  };
  const parts: (typeof first)[] = [first];
  // An item's JSON length plus its comma; `"recent":[]` is counted whether or not it is left out.
  const room = (part: typeof first) => jsonBudget - encodeMessage(part).byteLength;
  let free = room(first);
  const place = <K extends 'state' | 'recent'>(key: K, item: (typeof first)[K][number]) => {
    const size = jsonBytes(item);
    if (size > free) {
      if (parts.length >= maxParts) return false;
      const next = { ...rest, state: [], recent: [] };
      parts.push(next);
      free = room(next);
      if (size > free) return false;
    }
    (parts[parts.length - 1][key] as unknown[]).push(item);
    free -= size;
    return true;
  };
  for (const u of m.state) if (!place('state', u)) return undefined;
  for (const r of m.recent ?? []) if (!place('recent', r)) return undefined;
  const out: Uint8Array[] = [];
  for (const { recent, ...part } of parts) {
    const bytes = encodeCompact(recent.length > 0 ? { ...part, recent } : part);
    if (bytes.byteLength > maxBytes) return undefined;
    out.push(bytes);
  }
  return out;
}

/**
 * A frame or packet as a message, plain or deflated ({@link encodeCompact}). `maxBytes` bounds it
 * both as received and inflated: a small deflated packet must not become megabytes.
 */
export function decodeMessage(wire: Uint8Array, maxBytes = MAX_FRAME_BYTES): GossipMessage {
  if (wire.byteLength > maxBytes) {
    throw new GossipWireError(`frame of ${wire.byteLength} bytes exceeds ${maxBytes}`);
  }
  let bytes = wire;
  if (wire.byteLength > 0 && wire[0] === DEFLATED) {
    try {
      bytes = inflateRawSync(wire.subarray(1), { ...INFLATE_OPTIONS, maxOutputLength: maxBytes });
    } catch (err) {
      throw new GossipWireError(
        err instanceof RangeError
          ? `deflated frame inflates to more than ${maxBytes} bytes`
          : 'deflated frame does not inflate',
      );
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new GossipWireError('frame is not UTF-8 JSON');
  }
  if (typeof value === 'object' && value !== null && 'v' in value && value.v !== WIRE_VERSION) {
    throw new GossipWireError(`unsupported wire version ${JSON.stringify(value.v)}`);
  }
  return message(value);
}
