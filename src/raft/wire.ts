/**
 * Conversion between the Raft messages of types.ts and the plain objects that proto-loader
 * (`longs: Number`, `defaults: true`, `oneofs: true`) encodes from and decodes to for raft.proto.
 *
 * Decoding is also the trust boundary: a peer may run other code, so everything it sends is checked for
 * shape and bounds before it can reach the Raft core. Encoding runs the same checks, so a message the
 * receiver would reject (and answer by tearing down the whole stream) is caught at the sender instead.
 */
import type {
  Configuration,
  Entry,
  EntryType,
  Message,
  MessageType,
  ServerInfo,
  SnapshotMessage,
  SnapshotMeta,
  Suffrage,
} from './types.ts';

/** The only error the decoders throw: the input is not a valid message. */
export class WireError extends Error {
  override name = 'WireError';
}

/** Bounds for a {@link ServerId}, in UTF-16 code units. */
export const MAX_ID_LENGTH = 256;
export const MAX_ADDRESS_LENGTH = 1024;
export const MAX_SERVERS = 4096;
/** The frame size limit is what really bounds a message; this only refuses absurd arrays outright. */
export const MAX_ENTRIES = 1 << 20;
export const MAX_BATCH_MESSAGES = 1 << 20;

export interface WireEntry {
  index?: number;
  term?: number;
  type?: string;
  data?: Uint8Array;
}

export interface WireServer {
  id?: string;
  address?: string;
  suffrage?: string;
}

export interface WireSnapshotMeta {
  index?: number;
  term?: number;
  config?: { servers?: WireServer[] };
}

/** A `meshd.raft.v1.RaftMessage` as proto-loader takes it: the camelCase field names of types.ts. */
export interface WireMessage {
  type?: string;
  from?: string;
  to?: string;
  term?: number;
  prevIndex?: number;
  prevTerm?: number;
  entries?: WireEntry[];
  commit?: number;
  index?: number;
  reject?: boolean;
  hintIndex?: number;
  hintTerm?: number;
  pre?: boolean;
  lastIndex?: number;
  lastTerm?: number;
  transfer?: boolean;
  granted?: boolean;
  readCtx?: number;
  snapshot?: WireSnapshotMeta | null;
}

export interface WireBatch {
  messages: WireMessage[];
}

export type WireSnapshotChunk =
  | { header: WireMessage }
  | { data: Uint8Array }
  | { trailer: { totalBytes: number } };

/** A decoded `SnapshotChunk`. */
export type SnapshotPart =
  | { part: 'header'; msg: SnapshotMessage }
  | { part: 'data'; data: Uint8Array }
  | { part: 'trailer'; totalBytes: number };

const MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>([
  'append',
  'appendResp',
  'vote',
  'voteResp',
  'heartbeat',
  'heartbeatResp',
  'snapshot',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
]);
const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['normal', 'noop', 'config']);
const SUFFRAGES: ReadonlySet<string> = new Set<Suffrage>(['voter', 'nonvoter']);

type Obj = Record<string, unknown>;

function fail(path: string, what: string): never {
  throw new WireError(`${path}: ${what}`);
}

/** Describes a value without stringifying it: junk may have no usable toString. */
function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function obj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    fail(path, `expected an object, got ${kind(v)}`);
  return v as Obj;
}

function uint(o: Obj, key: string, path: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    fail(
      `${path}.${key}`,
      typeof v === 'number' ? 'not a non-negative safe integer' : `expected a number, got ${kind(v)}`,
    );
  }
  // -0 would survive the checks above but is not what any sender meant.
  return v === 0 ? 0 : v;
}

function bool(o: Obj, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') fail(`${path}.${key}`, `expected a boolean, got ${kind(v)}`);
  return v;
}

function str(o: Obj, key: string, path: string, max: number, nonEmpty: boolean): string {
  const v = o[key];
  if (typeof v !== 'string') fail(`${path}.${key}`, `expected a string, got ${kind(v)}`);
  if (v.length > max) fail(`${path}.${key}`, `longer than ${max}`);
  if (nonEmpty && v.length === 0) fail(`${path}.${key}`, 'empty');
  return v;
}

function array(o: Obj, key: string, path: string, max: number): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) fail(`${path}.${key}`, `expected an array, got ${kind(v)}`);
  if (v.length > max) fail(`${path}.${key}`, `more than ${max} elements`);
  return v;
}

function bytes(v: unknown, path: string, copy: boolean): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(path, `expected bytes, got ${kind(v)}`);
  // A decoded Buffer is a view into the whole received frame; copying keeps a stored entry from pinning
  // the frame in memory, and hands the core a plain Uint8Array as types.ts promises.
  return copy ? new Uint8Array(v) : v;
}

function parseEntry(v: unknown, path: string, copy: boolean): Entry {
  const o = obj(v, path);
  const type = str(o, 'type', path, 16, true);
  if (!ENTRY_TYPES.has(type)) fail(`${path}.type`, 'unknown entry type');
  return {
    index: uint(o, 'index', path),
    term: uint(o, 'term', path),
    type: type as EntryType,
    data: bytes(o.data, `${path}.data`, copy),
  };
}

function parseConfig(v: unknown, path: string): Configuration {
  const o = obj(v, path);
  const seen = new Set<string>();
  const servers = array(o, 'servers', path, MAX_SERVERS).map((s, i): ServerInfo => {
    const p = `${path}.servers[${i}]`;
    const so = obj(s, p);
    const id = str(so, 'id', p, MAX_ID_LENGTH, true);
    if (seen.has(id)) fail(`${p}.id`, 'duplicate server id');
    seen.add(id);
    const suffrage = str(so, 'suffrage', p, 16, true);
    if (!SUFFRAGES.has(suffrage)) fail(`${p}.suffrage`, 'unknown suffrage');
    return { id, address: str(so, 'address', p, MAX_ADDRESS_LENGTH, false), suffrage: suffrage as Suffrage };
  });
  return { servers };
}

function parseSnapshotMeta(v: unknown, path: string): SnapshotMeta {
  const o = obj(v, path);
  return {
    index: uint(o, 'index', path),
    term: uint(o, 'term', path),
    config: parseConfig(o.config, `${path}.config`),
  };
}

/** The Raft log invariants an append must satisfy for the receiver to make sense of it (§5.3). */
function checkEntries(
  entries: Entry[],
  prevIndex: number,
  prevTerm: number,
  term: number,
  path: string,
): void {
  let lastTerm = prevTerm;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.index !== prevIndex + 1 + i)
      fail(`${path}.entries[${i}].index`, 'entries must follow prevIndex contiguously');
    if (e.term < lastTerm) fail(`${path}.entries[${i}].term`, 'entry terms must not decrease');
    if (e.term > term) fail(`${path}.entries[${i}].term`, 'entry term above the message term');
    lastTerm = e.term;
  }
}

function parse(v: unknown, path: string, copy: boolean): Message {
  const o = obj(v, path);
  const type = str(o, 'type', path, 32, true);
  if (!MESSAGE_TYPES.has(type)) fail(`${path}.type`, 'unknown message type');
  const from = str(o, 'from', path, MAX_ID_LENGTH, true);
  const to = str(o, 'to', path, MAX_ID_LENGTH, true);
  const term = uint(o, 'term', path);
  switch (type as MessageType) {
    case 'append': {
      const prevIndex = uint(o, 'prevIndex', path);
      const prevTerm = uint(o, 'prevTerm', path);
      if (prevTerm > term) fail(`${path}.prevTerm`, 'above the message term');
      const entries = array(o, 'entries', path, MAX_ENTRIES).map((e, i) =>
        parseEntry(e, `${path}.entries[${i}]`, copy),
      );
      checkEntries(entries, prevIndex, prevTerm, term, path);
      return {
        type: 'append',
        from,
        to,
        term,
        prevIndex,
        prevTerm,
        entries,
        commit: uint(o, 'commit', path),
      };
    }
    case 'appendResp':
      return {
        type: 'appendResp',
        from,
        to,
        term,
        index: uint(o, 'index', path),
        reject: bool(o, 'reject', path),
        hintIndex: uint(o, 'hintIndex', path),
        hintTerm: uint(o, 'hintTerm', path),
      };
    case 'vote':
      return {
        type: 'vote',
        from,
        to,
        term,
        pre: bool(o, 'pre', path),
        lastIndex: uint(o, 'lastIndex', path),
        lastTerm: uint(o, 'lastTerm', path),
        transfer: bool(o, 'transfer', path),
      };
    case 'voteResp':
      return {
        type: 'voteResp',
        from,
        to,
        term,
        pre: bool(o, 'pre', path),
        granted: bool(o, 'granted', path),
      };
    case 'heartbeat':
      return {
        type: 'heartbeat',
        from,
        to,
        term,
        commit: uint(o, 'commit', path),
        readCtx: uint(o, 'readCtx', path),
      };
    case 'heartbeatResp':
      return { type: 'heartbeatResp', from, to, term, readCtx: uint(o, 'readCtx', path) };
    case 'snapshot':
      return {
        type: 'snapshot',
        from,
        to,
        term,
        snapshot: parseSnapshotMeta(o.snapshot, `${path}.snapshot`),
      };
    case 'timeoutNow':
      return { type: 'timeoutNow', from, to, term };
    case 'readIndex':
      return { type: 'readIndex', from, to, term, readCtx: uint(o, 'readCtx', path) };
    case 'readIndexResp':
      return {
        type: 'readIndexResp',
        from,
        to,
        term,
        readCtx: uint(o, 'readCtx', path),
        index: uint(o, 'index', path),
      };
  }
}

/**
 * Validates `msg` and returns the object to hand the proto serializer. Only the fields of its type are
 * kept, and entry data is not copied. Throws {@link WireError} if the receiver would reject it.
 */
export function encodeMessage(msg: Message): WireMessage {
  return parse(msg, 'message', false);
}

/** Turns a decoded `RaftMessage` into a fresh {@link Message}, or throws {@link WireError}. */
export function decodeMessage(v: unknown): Message {
  return parse(v, 'message', true);
}

/** Decodes a `RaftBatch`. Snapshots have their own call, so one arriving here is invalid. */
export function decodeBatch(v: unknown): Message[] {
  const o = obj(v, 'batch');
  return array(o, 'messages', 'batch', MAX_BATCH_MESSAGES).map((m, i) => {
    const msg = parse(m, `batch.messages[${i}]`, true);
    if (msg.type === 'snapshot') fail(`batch.messages[${i}].type`, 'snapshots travel on InstallSnapshot');
    return msg;
  });
}

export function encodeSnapshotHeader(msg: SnapshotMessage): WireSnapshotChunk {
  if ((msg as Message).type !== 'snapshot') fail('header.type', 'expected a snapshot message');
  return { header: parse(msg, 'header', false) };
}

/** Decodes a `SnapshotChunk`; data is returned as a Uint8Array view, not copied (a chunk is its frame). */
export function decodeSnapshotChunk(v: unknown): SnapshotPart {
  const o = obj(v, 'chunk');
  switch (o.part) {
    case 'header': {
      const msg = parse(o.header, 'chunk.header', true);
      if (msg.type !== 'snapshot') fail('chunk.header.type', 'expected a snapshot message');
      return { part: 'header', msg };
    }
    case 'data': {
      const b = bytes(o.data, 'chunk.data', false);
      return { part: 'data', data: new Uint8Array(b.buffer, b.byteOffset, b.byteLength) };
    }
    case 'trailer':
      return {
        part: 'trailer',
        totalBytes: uint(obj(o.trailer, 'chunk.trailer'), 'totalBytes', 'chunk.trailer'),
      };
    default:
      fail('chunk.part', 'expected header, data or trailer');
  }
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$/;

/**
 * Accepts a peer's advertised "host:port" (a hostname, IPv4, or bracketed IPv6 host and a port 1..65535);
 * anything else yields undefined. It arrives in call metadata, so it is as untrusted as a message.
 */
export function parseAdvertisedAddress(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length > MAX_ADDRESS_LENGTH) return undefined;
  const m = HOST_PORT.exec(v);
  if (m === null) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? v : undefined;
}

/**
 * An upper bound on the encoded size of `msg` inside a `RaftBatch`, so batches can be cut below the
 * frame limit without encoding twice. Generous: 11 bytes per scalar field, 3 bytes per UTF-16 unit.
 */
export function encodedSizeBound(msg: Message): number {
  let n = 320 + 3 * (msg.from.length + msg.to.length);
  if (msg.type === 'append') {
    for (const e of msg.entries) n += e.data.byteLength + 56;
  } else if (msg.type === 'snapshot') {
    for (const s of msg.snapshot.config.servers) n += 3 * (s.id.length + s.address.length) + 64;
  }
  return n;
}
