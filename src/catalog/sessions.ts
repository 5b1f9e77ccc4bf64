/**
 * The sessions table: deterministic, no I/O, no clock. Validation against the catalog (the node
 * exists, the checks exist and are not critical) and the effects of invalidation on KV locks live
 * in `state.ts`, which sees every table; this one only stores rows and answers lookups.
 *
 * Blocking-query indexes follow Consul (`sessionGet`, `sessionList`, `nodeSessions`): every
 * session read reports the table index and parks on the table watch. Sessions change rarely
 * compared to KV, so finer watches would buy little.
 */

import type { SessionRow } from './types.ts';
import type { QueryRun, WatchRegistry } from './watch.ts';

/** The watch key every session read parks on. */
export const SESSIONS_WATCH = 'sessions';

export type SessionSnapshotRecord = { type: 'meta'; tableIndex: number } | ({ type: 'session' } & SessionRow);

const byId = (a: SessionRow, b: SessionRow): number => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0);

export class SessionTable {
  readonly #rows = new Map<string, SessionRow>();
  readonly #registry: WatchRegistry | undefined;
  #tableIndex = 0;

  constructor(registry?: WatchRegistry) {
    this.#registry = registry;
  }

  get tableIndex(): number {
    return this.#tableIndex;
  }

  get size(): number {
    return this.#rows.size;
  }

  get(id: string): Readonly<SessionRow> | undefined {
    return this.#rows.get(id);
  }

  /** IDs of the sessions of `node`, sorted. */
  idsOfNode(node: string): string[] {
    const out: string[] = [];
    for (const s of this.#rows.values()) if (s.Node === node) out.push(s.ID);
    return out.sort();
  }

  /** IDs of the sessions bound to check `checkId` of `node` (node or service check), sorted. */
  idsOfCheck(node: string, checkId: string): string[] {
    const out: string[] = [];
    for (const s of this.#rows.values()) {
      if (s.Node !== node) continue;
      if (s.NodeChecks.includes(checkId) || s.ServiceChecks.some((c) => c.ID === checkId)) out.push(s.ID);
    }
    return out.sort();
  }

  /** Every session with a TTL: the leader arms a timer for each. */
  withTtl(): SessionRow[] {
    return [...this.#rows.values()].filter((s) => s.TTL !== '').sort(byId);
  }

  // ---- queries ----

  info(id: string): QueryRun<SessionRow[]> {
    const row = this.#rows.get(id);
    return { index: this.#tableIndex, result: row ? [row] : [], watch: [SESSIONS_WATCH] };
  }

  list(): QueryRun<SessionRow[]> {
    return { index: this.#tableIndex, result: [...this.#rows.values()].sort(byId), watch: [SESSIONS_WATCH] };
  }

  nodeSessions(node: string): QueryRun<SessionRow[]> {
    const rows = this.idsOfNode(node).map((id) => this.#rows.get(id) as SessionRow);
    return { index: this.#tableIndex, result: rows, watch: [SESSIONS_WATCH] };
  }

  // ---- commands ----

  create(index: number, session: Omit<SessionRow, 'CreateIndex' | 'ModifyIndex'>): SessionRow {
    this.#checkIndex(index);
    if (this.#rows.has(session.ID)) throw new RangeError(`session ${session.ID} already exists`);
    const row: SessionRow = { ...session, CreateIndex: index, ModifyIndex: index };
    this.#rows.set(row.ID, row);
    this.#changed(index);
    return row;
  }

  /** Removes a session; returns it, or undefined (and no index bump) if it did not exist. */
  destroy(index: number, id: string): SessionRow | undefined {
    this.#checkIndex(index);
    const row = this.#rows.get(id);
    if (!row) return undefined;
    this.#rows.delete(id);
    this.#changed(index);
    return row;
  }

  // ---- snapshot ----

  toSnapshot(): SessionSnapshotRecord[] {
    const out: SessionSnapshotRecord[] = [{ type: 'meta', tableIndex: this.#tableIndex }];
    for (const row of [...this.#rows.values()].sort(byId))
      out.push({ type: 'session', ...structuredClone(row) });
    return out;
  }

  static fromSnapshot(records: Iterable<SessionSnapshotRecord>, registry?: WatchRegistry): SessionTable {
    const t = new SessionTable(registry);
    for (const r of records) {
      if (r.type === 'meta') t.#tableIndex = r.tableIndex;
      else {
        const { type: _type, ...row } = r;
        t.#rows.set(row.ID, structuredClone(row));
      }
    }
    return t;
  }

  #checkIndex(index: number): void {
    if (!(index >= this.#tableIndex))
      throw new RangeError(`session command at index ${index} after ${this.#tableIndex}`);
  }

  #changed(index: number): void {
    this.#tableIndex = index;
    this.#registry?.notify([SESSIONS_WATCH], index);
  }
}
