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

import type { FsmSnapshot, StateMachine } from '../raft/fsm.ts';
import type { Entry } from '../raft/types.ts';
import { type KvSnapshotRecord, KvTable } from './kv.ts';
import { Registry, type RegistrySnapshotRecord } from './registry.ts';
import { type SessionSnapshotRecord, SessionTable } from './sessions.ts';
import { CatalogState, decodeValue, encodeValue } from './state.ts';
import type { CatalogCommand, CommandResult } from './types.ts';
import { WatchRegistry } from './watch.ts';

export const SNAPSHOT_FORMAT = 'meshd-catalog';
export const SNAPSHOT_VERSION = 1;
const CHUNK_BYTES = 256 * 1024;

export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
}

type SnapshotLine =
  | { table: 'kv'; record: Omit<KvSnapshotRecord, 'Value'> & { Value?: string | null } }
  | { table: 'registry'; record: RegistrySnapshotRecord }
  | { table: 'sessions'; record: SessionSnapshotRecord }
  | { table: 'lockDelay'; key: string; until: number };

const encoder = new TextEncoder();

export function encodeCommand(cmd: CatalogCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

/** Every record of `state`, captured synchronously (a consistent point between two applies). */
function captureLines(state: CatalogState): { header: string; lines: SnapshotLine[] } {
  const lines: SnapshotLine[] = [];
  for (const r of state.kv.toSnapshot()) {
    if (r.type === 'entry') lines.push({ table: 'kv', record: { ...r, Value: encodeValue(r.Value) } });
    else lines.push({ table: 'kv', record: r });
  }
  for (const r of state.registry.toSnapshot()) lines.push({ table: 'registry', record: r });
  for (const r of state.sessions.toSnapshot()) lines.push({ table: 'sessions', record: r });
  for (const [key, until] of [...state.lockDelays].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    lines.push({ table: 'lockDelay', key, until });
  }
  const header = JSON.stringify({
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    lastIndex: state.lastIndex,
  });
  return { header, lines };
}

/** Serializes a captured state as JSON-lines chunks of about {@link CHUNK_BYTES}. */
async function* toChunks(header: string, lines: SnapshotLine[]): AsyncGenerator<Uint8Array> {
  let buf = `${header}\n`;
  for (const line of lines) {
    buf += `${JSON.stringify(line)}\n`;
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

/** Reads a snapshot into fresh tables sharing `watches`. */
export async function readSnapshot(
  chunks: AsyncIterable<Uint8Array>,
  watches: WatchRegistry,
): Promise<CatalogState> {
  const kv: KvSnapshotRecord[] = [];
  const registry: RegistrySnapshotRecord[] = [];
  const sessions: SessionSnapshotRecord[] = [];
  const lockDelays = new Map<string, number>();
  let lastIndex: number | undefined;
  let lineNo = 0;
  for await (const text of readLines(chunks)) {
    lineNo++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new SnapshotFormatError(`catalog snapshot line ${lineNo} is not JSON`);
    }
    if (lastIndex === undefined) {
      const h = parsed as { format?: unknown; version?: unknown; lastIndex?: unknown };
      if (h?.format !== SNAPSHOT_FORMAT) throw new SnapshotFormatError('not a meshd catalog snapshot');
      if (typeof h.version !== 'number' || h.version > SNAPSHOT_VERSION || h.version < 1) {
        throw new SnapshotFormatError(
          `catalog snapshot version ${String(h.version)} is not supported (this meshd reads up to ${SNAPSHOT_VERSION})`,
        );
      }
      if (typeof h.lastIndex !== 'number')
        throw new SnapshotFormatError('catalog snapshot header has no lastIndex');
      lastIndex = h.lastIndex;
      continue;
    }
    const line = parsed as SnapshotLine;
    switch (line?.table) {
      case 'kv':
        if (line.record.type === 'entry')
          kv.push({ ...line.record, Value: decodeValue(line.record.Value) } as KvSnapshotRecord);
        else kv.push(line.record as KvSnapshotRecord);
        break;
      case 'registry':
        registry.push(line.record);
        break;
      case 'sessions':
        sessions.push(line.record);
        break;
      case 'lockDelay':
        lockDelays.set(line.key, line.until);
        break;
      default:
        throw new SnapshotFormatError(`catalog snapshot line ${lineNo} has an unknown table`);
    }
  }
  if (lastIndex === undefined) throw new SnapshotFormatError('catalog snapshot is empty');
  return new CatalogState({
    watches,
    kv: KvTable.fromSnapshot(kv, watches),
    registry: Registry.fromSnapshot(registry, watches),
    sessions: SessionTable.fromSnapshot(sessions, watches),
    lockDelays,
    lastIndex,
  });
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
    return this.#state.apply(entry.index, cmd);
  }

  snapshot(): FsmSnapshot {
    const { header, lines } = captureLines(this.#state);
    return { chunks: () => toChunks(header, lines) };
  }

  async restore(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const next = await readSnapshot(chunks, this.watches);
    this.#state = next;
    this.watches.wakeAll(next.lastIndex);
  }
}
