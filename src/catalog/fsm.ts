/**
 * The catalog as Raft's state machine: decodes committed commands, applies them to
 * {@link CatalogState}, and writes/reads the versioned snapshot format Raft compaction and
 * `/v1/snapshot` use.
 *
 * Snapshot format (version 1): UTF-8 JSON lines. The first line is the header
 * `{"format":"meshd-catalog","version":1,"lastIndex":N}`; every other line is one record
 * `{"table":"kv"|"registry"|"sessions"|"lockDelay", ...}` with the table's own snapshot record
 * (KV values base64). A reader refuses an unknown format or a newer version with a one-line error,
 * so an old server never half-understands a new snapshot.
 */

import { gunzipSync } from 'node:zlib';
import type { FsmSnapshot, StateMachine } from '../raft/fsm.ts';
import type { Entry } from '../raft/types.ts';
import { type KvEntry, type KvSnapshotRecord, KvTable } from './kv.ts';
import { Registry, type RegistrySnapshotRecord } from './registry.ts';
import { type SessionSnapshotRecord, SessionTable } from './sessions.ts';
import { CatalogState, decodeValue, encodeValue } from './state.ts';
import type { CatalogCommand, CommandResult } from './types.ts';
import { WatchRegistry } from './watch.ts';

export const SNAPSHOT_FORMAT = 'meshd-catalog';
export const SNAPSHOT_VERSION = 1;
/** Small enough that serializing one chunk stays a few ms: the apply loop runs between chunks. */
const CHUNK_BYTES = 64 * 1024;

export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
}

/** A KV snapshot record as a line carries it: the value base64 (null when empty). */
type KvLineRecord =
  | Exclude<KvSnapshotRecord, { type: 'entry' }>
  | (Omit<KvEntry, 'Value'> & { type: 'entry'; Value: string | null });

type SnapshotLine =
  | { table: 'kv'; record: KvLineRecord }
  | { table: 'registry'; record: RegistrySnapshotRecord }
  | { table: 'sessions'; record: SessionSnapshotRecord }
  | { table: 'lockDelay'; key: string; until: number };

const encoder = new TextEncoder();

export function encodeCommand(cmd: CatalogCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

/**
 * Everything in `state`, captured synchronously between two applies. KV entries (the bulk) are
 * captured by reference and turned into lines only while the snapshot is written, so taking a
 * snapshot does not stall the apply loop for the size of the store.
 */
function capture(state: CatalogState): () => Generator<string> {
  const kv = state.kv.snapshotView();
  const registry = state.registry.toSnapshot();
  const sessions = state.sessions.toSnapshot();
  const lockDelays = [...state.lockDelays].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header = JSON.stringify({
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    lastIndex: state.lastIndex,
  });
  const line = (l: SnapshotLine): string => JSON.stringify(l);
  return function* lines() {
    yield header;
    yield line({ table: 'kv', record: { type: 'meta', ...kv.meta } });
    for (const e of kv.entries) {
      yield line({
        table: 'kv',
        record: {
          type: 'entry',
          Key: e.Key,
          Value: encodeValue(e.Value),
          Flags: e.Flags,
          CreateIndex: e.CreateIndex,
          ModifyIndex: e.ModifyIndex,
          LockIndex: e.LockIndex,
          ...(e.Session !== undefined ? { Session: e.Session } : {}),
        },
      });
    }
    for (const [Key, Index] of kv.tombstones)
      yield line({ table: 'kv', record: { type: 'tombstone', Key, Index } });
    for (const record of registry) yield line({ table: 'registry', record });
    for (const record of sessions) yield line({ table: 'sessions', record });
    for (const [key, until] of lockDelays) yield line({ table: 'lockDelay', key, until });
  };
}

/** Serializes a captured state as JSON-lines chunks of about {@link CHUNK_BYTES}. */
async function* toChunks(lines: () => Generator<string>): AsyncGenerator<Uint8Array> {
  let buf = '';
  for (const l of lines()) {
    buf += `${l}\n`;
    if (buf.length >= CHUNK_BYTES) {
      yield encoder.encode(buf);
      buf = '';
    }
  }
  if (buf !== '') yield encoder.encode(buf);
}

/** Splits a byte stream into lines (the last one must end with '\n'). */
async function* readLines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending = '';
  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    let nl = pending.indexOf('\n', start);
    while (nl >= 0) {
      yield pending.slice(start, nl);
      start = nl + 1;
      nl = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
  }
  pending += decoder.decode();
  if (pending !== '') throw new SnapshotFormatError('catalog snapshot ends in the middle of a record');
}

/** Builds a state from snapshot lines, one at a time, synchronously. */
class SnapshotReader {
  readonly #kv: KvSnapshotRecord[] = [];
  readonly #registry: RegistrySnapshotRecord[] = [];
  readonly #sessions: SessionSnapshotRecord[] = [];
  readonly #lockDelays = new Map<string, number>();
  #lastIndex: number | undefined;
  #lineNo = 0;

  line(text: string): void {
    const lineNo = ++this.#lineNo;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new SnapshotFormatError(`catalog snapshot line ${lineNo} is not JSON`);
    }
    if (this.#lastIndex === undefined) {
      const h = parsed as { format?: unknown; version?: unknown; lastIndex?: unknown } | null;
      if (h?.format !== SNAPSHOT_FORMAT) throw new SnapshotFormatError('not a meshd catalog snapshot');
      if (typeof h.version !== 'number' || h.version > SNAPSHOT_VERSION || h.version < 1) {
        throw new SnapshotFormatError(
          `catalog snapshot version ${String(h.version)} is not supported (this meshd reads up to ${SNAPSHOT_VERSION})`,
        );
      }
      if (typeof h.lastIndex !== 'number')
        throw new SnapshotFormatError('catalog snapshot header has no lastIndex');
      this.#lastIndex = h.lastIndex;
      return;
    }
    const line = parsed as SnapshotLine | null;
    switch (line?.table) {
      case 'kv':
        if (line.record.type === 'entry')
          this.#kv.push({ ...line.record, Value: decodeValue(line.record.Value) } as KvSnapshotRecord);
        else this.#kv.push(line.record as KvSnapshotRecord);
        break;
      case 'registry':
        this.#registry.push(line.record);
        break;
      case 'sessions':
        this.#sessions.push(line.record);
        break;
      case 'lockDelay':
        this.#lockDelays.set(line.key, line.until);
        break;
      default:
        throw new SnapshotFormatError(`catalog snapshot line ${lineNo} has an unknown table`);
    }
  }

  finish(watches: WatchRegistry, lastIndex?: number): CatalogState {
    if (this.#lastIndex === undefined) throw new SnapshotFormatError('catalog snapshot is empty');
    try {
      return new CatalogState({
        watches,
        kv: KvTable.fromSnapshot(this.#kv, watches),
        registry: Registry.fromSnapshot(this.#registry, watches),
        sessions: SessionTable.fromSnapshot(this.#sessions, watches),
        lockDelays: this.#lockDelays,
        lastIndex: lastIndex ?? this.#lastIndex,
      });
    } catch (err) {
      if (err instanceof SnapshotFormatError) throw err;
      throw new SnapshotFormatError(`catalog snapshot records are inconsistent: ${(err as Error).message}`);
    }
  }
}

/** Reads a snapshot into fresh tables sharing `watches`. */
export async function readSnapshot(
  chunks: AsyncIterable<Uint8Array>,
  watches: WatchRegistry,
): Promise<CatalogState> {
  const reader = new SnapshotReader();
  for await (const text of readLines(chunks)) reader.line(text);
  return reader.finish(watches);
}

/**
 * Parses a whole snapshot held in memory, synchronously: what a replicated restore applies.
 * `lastIndex` overrides the header's (the restore entry's own index, so later commands apply).
 */
export function parseSnapshot(bytes: Uint8Array, watches: WatchRegistry, lastIndex?: number): CatalogState {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SnapshotFormatError('catalog snapshot is not UTF-8');
  }
  if (text !== '' && !text.endsWith('\n')) {
    throw new SnapshotFormatError('catalog snapshot ends in the middle of a record');
  }
  const reader = new SnapshotReader();
  const lines = text.split('\n');
  lines.pop();
  for (const line of lines) reader.line(line);
  return reader.finish(watches, lastIndex);
}

/** Largest snapshot a restore inflates to: a bound against a gzip bomb. */
export const MAX_RESTORED_SNAPSHOT_BYTES = 512 * 1024 * 1024;

/** Inflates a gzip'd snapshot archive (what `GET /v1/snapshot` serves). */
export function gunzipSnapshot(archive: Uint8Array): Uint8Array {
  try {
    return new Uint8Array(gunzipSync(archive, { maxOutputLength: MAX_RESTORED_SNAPSHOT_BYTES }));
  } catch (err) {
    throw new SnapshotFormatError(`snapshot archive is not a valid gzip stream: ${(err as Error).message}`);
  }
}

/** The catalog behind Raft. `state` is replaced wholesale by a restore; read it afresh each time. */
export class CatalogFsm implements StateMachine<CommandResult> {
  readonly watches: WatchRegistry;
  #state: CatalogState;

  constructor(watches: WatchRegistry = new WatchRegistry()) {
    this.watches = watches;
    this.#state = new CatalogState({ watches });
  }

  get state(): CatalogState {
    return this.#state;
  }

  apply(entry: Entry): CommandResult {
    let cmd: CatalogCommand;
    try {
      cmd = JSON.parse(new TextDecoder().decode(entry.data)) as CatalogCommand;
    } catch {
      // Identical bytes fail identically on every server: still deterministic. The edge validates
      // commands, so this only happens with a corrupted or foreign log.
      return { ok: false, error: 'malformed catalog command' };
    }
    if (cmd.type === 'restore') return this.#applyRestore(entry.index, cmd.snapshot);
    return this.#state.apply(entry.index, cmd);
  }

  /**
   * `PUT /v1/snapshot`: replaces the whole state with an operator's snapshot, as a replicated
   * command so every server switches at the same log index. The snapshot was validated by the
   * proposer; a snapshot that still fails here (identically everywhere) changes nothing.
   */
  #applyRestore(index: number, snapshotBase64: string): CommandResult {
    let next: CatalogState;
    try {
      next = parseSnapshot(gunzipSnapshot(Buffer.from(snapshotBase64, 'base64')), this.watches, index);
    } catch (err) {
      if (err instanceof SnapshotFormatError) return { ok: false, error: err.message };
      throw err;
    }
    this.#state = next;
    this.watches.wakeAll(index);
    return { ok: true, value: true };
  }

  snapshot(): FsmSnapshot {
    const lines = capture(this.#state);
    return { chunks: () => toChunks(lines) };
  }

  async restore(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const next = await readSnapshot(chunks, this.watches);
    this.#state = next;
    this.watches.wakeAll(next.lastIndex);
  }
}
