/**
 * The whole replicated catalog: the tables, one watch registry, and {@link CatalogState.apply},
 * which applies a typed command at a Raft index. Deterministic: a function of the state and the
 * command alone (commands carry their own `now`).
 *
 * Cross-table rules live here because no single table sees them (Consul's state store keeps them
 * in the same places):
 * - a session is created only on a registered node, bound to existing checks none of which is
 *   critical (`sessionCreateTxn`);
 * - a session is invalidated when its node is deregistered, or one of its checks goes critical or
 *   is deregistered; invalidation releases or deletes its locked keys per Behavior and arms the
 *   lock delay on each (`deleteSessionTxn`);
 * - a lock cannot be acquired while its key's lock delay runs (Consul checks it in the KVS
 *   endpoint with the server's clock; meshd checks it in apply with the command's `now`, so every
 *   server agrees).
 */

import { type KvEntry, KvTable } from './kv.ts';
import { deregisterScope, Registry } from './registry.ts';
import { SessionTable } from './sessions.ts';
import type {
  CatalogCommand,
  CheckRow,
  CommandResult,
  KvOp,
  KvWireEntry,
  SessionCreateCommand,
  TxnCommand,
  TxnResult,
} from './types.ts';
import { WatchRegistry } from './watch.ts';

/** Consul's limit on operations in one `/v1/txn` request. */
export const MAX_TXN_OPS = 128;

/** Base64 of a KV value, null when empty (Consul's wire format). */
export function encodeValue(value: Uint8Array): string | null {
  return value.length === 0
    ? null
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
}

export function decodeValue(value: string | null | undefined): Uint8Array {
  if (value === undefined || value === null || value === '') return new Uint8Array(0);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/** A KV entry in Consul's JSON shape; `withValue` false gives the `Value: null` txn write results carry. */
export function kvWire(e: Readonly<KvEntry>, withValue = true): KvWireEntry {
  const out: KvWireEntry = {
    Key: e.Key,
    Value: withValue ? encodeValue(e.Value) : null,
    Flags: e.Flags,
    CreateIndex: e.CreateIndex,
    ModifyIndex: e.ModifyIndex,
    LockIndex: e.LockIndex,
  };
  if (e.Session !== undefined) out.Session = e.Session;
  return out;
}

/** A refusal with Consul's words; `status` is the HTTP code the edge answers (400 unless said). */
function refuse(error: string, status?: number): CommandResult {
  return status === undefined ? { ok: false, error } : { ok: false, error, status };
}

const KV_READ_VERBS: ReadonlySet<string> = new Set([
  'get',
  'get-tree',
  'check-index',
  'check-session',
  'check-not-exists',
]);

/** Whether a txn op only reads (a transaction of reads alone is served without Raft). */
export function isKvReadVerb(verb: string): boolean {
  return KV_READ_VERBS.has(verb);
}

/**
 * One read op of a transaction against `kv` (Consul's txn.go texts): pushes its results, or
 * returns why it failed. The caller has checked {@link isKvReadVerb}.
 */
export function kvReadOp(kv: KvTable, op: KvOp, results: { KV: KvWireEntry }[]): string | undefined {
  const key = op.Key;
  const e = kv.get(key);
  switch (op.Verb) {
    case 'get':
      if (!e) return `key "${key}" doesn't exist`;
      results.push({ KV: kvWire(e) });
      return undefined;
    case 'get-tree':
      for (const row of kv.list(key)) results.push({ KV: kvWire(row) });
      return undefined;
    case 'check-index':
      if (!e) return `key "${key}" doesn't exist`;
      if (e.ModifyIndex !== op.Index) {
        return `failed index check for key "${key}", current modify index ${e.ModifyIndex} != ${op.Index ?? 0}`;
      }
      results.push({ KV: kvWire(e, false) });
      return undefined;
    case 'check-session':
      if (!e) return `key "${key}" doesn't exist`;
      if ((e.Session ?? '') !== (op.Session ?? '')) {
        return `failed session check for key "${key}", current session "${e.Session ?? ''}" != "${op.Session ?? ''}"`;
      }
      results.push({ KV: kvWire(e, false) });
      return undefined;
    case 'check-not-exists':
      return e ? `key "${key}" exists` : undefined;
    default:
      return `"${op.Verb}" is not a read operation`;
  }
}

/** Why a txn op failed: collected as Consul's `TxnError`s. */
class TxnOpError extends Error {}

export class CatalogState {
  readonly watches: WatchRegistry;
  readonly kv: KvTable;
  readonly registry: Registry;
  readonly sessions: SessionTable;
  /** key → ms epoch until which no session may acquire it. */
  readonly lockDelays: Map<string, number>;
  #lastIndex: number;

  constructor(
    init: {
      watches?: WatchRegistry;
      kv?: KvTable;
      registry?: Registry;
      sessions?: SessionTable;
      lockDelays?: Map<string, number>;
      lastIndex?: number;
    } = {},
  ) {
    this.watches = init.watches ?? new WatchRegistry();
    this.kv = init.kv ?? new KvTable(this.watches);
    this.registry = init.registry ?? new Registry(this.watches);
    this.sessions = init.sessions ?? new SessionTable(this.watches);
    this.lockDelays = init.lockDelays ?? new Map();
    this.#lastIndex = init.lastIndex ?? 0;
  }

  /** The index of the last applied command. */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  apply(index: number, cmd: CatalogCommand): CommandResult {
    if (!(index > this.#lastIndex))
      throw new RangeError(`catalog command at index ${index} after ${this.#lastIndex}`);
    this.#lastIndex = index;
    switch (cmd.type) {
      case 'kv':
        return this.#applyKv(index, cmd.op, cmd.now);
      case 'txn':
        return this.#applyTxn(index, cmd);
      case 'register': {
        const r = this.registry.register(index, cmd);
        if (!r.ok) return refuse(r.error);
        for (const check of r.checks)
          if (check.Status === 'critical') this.#invalidateForCheck(index, check, cmd.now);
        return { ok: true, value: true };
      }
      case 'deregister': {
        // Sessions of a node that goes are invalidated before its rows (their keys are released first).
        if (deregisterScope(cmd) === 'node') {
          for (const id of this.sessions.idsOfNode(cmd.node)) this.#destroySession(index, id, cmd.now);
        }
        const r = this.registry.deregister(index, cmd);
        for (const check of r.removedChecks) this.#invalidateForCheck(index, check, cmd.now);
        return { ok: true, value: true };
      }
      case 'session-create':
        return this.#createSession(index, cmd);
      case 'session-destroy':
        this.#destroySession(index, cmd.id, cmd.now);
        return { ok: true, value: true };
      case 'tombstone-reap':
        this.kv.reapTombstones(cmd.upToIndex);
        return { ok: true };
      case 'restore':
        // Whole-state replacement happens in the FSM, which owns the state object.
        return refuse('a restore must be applied by the catalog FSM');
      default: {
        const unknown: never = cmd;
        return refuse(`unknown command type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
      }
    }
  }

  /** Whether `key` is inside a lock delay at `now`. */
  lockDelayed(key: string, now: number): boolean {
    const until = this.lockDelays.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.lockDelays.delete(key);
    return false;
  }

  // ---- KV ----

  #applyKv(index: number, op: KvOp, now: number): CommandResult {
    try {
      const r = this.#kvWrite(index, op, now);
      return { ok: true, value: r.ok };
    } catch (err) {
      if (err instanceof TxnOpError) return refuse(err.message);
      throw err;
    }
  }

  /** One KV write; `ok` false is Consul's `false` answer (a CAS or lock that lost). */
  #kvWrite(index: number, op: KvOp, now: number): { ok: boolean } {
    const value = (): Uint8Array => decodeValue(op.Value);
    const flags = op.Flags ?? 0;
    switch (op.Verb) {
      case 'set':
        return { ok: this.kv.set(index, op.Key, value(), flags) };
      case 'cas':
        return { ok: this.kv.cas(index, op.Key, value(), flags, op.Index ?? 0) };
      case 'delete':
        return { ok: this.kv.delete(index, op.Key) };
      case 'delete-cas':
        return { ok: this.kv.deleteCas(index, op.Key, op.Index ?? 0) };
      case 'delete-tree':
        return { ok: this.kv.deleteTree(index, op.Key) };
      case 'lock': {
        const session = op.Session ?? '';
        if (!this.sessions.get(session)) throw new TxnOpError(`invalid session "${session}"`);
        if (this.lockDelayed(op.Key, now)) return { ok: false };
        return { ok: this.kv.lock(index, op.Key, value(), flags, session) };
      }
      case 'unlock': {
        const session = op.Session ?? '';
        if (!this.sessions.get(session)) throw new TxnOpError(`invalid session "${session}"`);
        return { ok: this.kv.unlock(index, op.Key, value(), flags, session) };
      }
      default:
        throw new TxnOpError(`unknown KV verb "${op.Verb}" for a write`);
    }
  }

  /**
   * `/v1/txn`: every op in order inside one KV transaction; the first failing op rolls everything
   * back and the result lists the errors (Consul stops at the first, as `txnDispatch` does).
   */
  #applyTxn(index: number, cmd: TxnCommand): CommandResult {
    if (cmd.ops.length > MAX_TXN_OPS) {
      return refuse(`Transaction contains too many operations (${cmd.ops.length} > ${MAX_TXN_OPS})`, 413);
    }
    const results: { KV: KvWireEntry }[] = [];
    this.kv.beginTxn(index);
    for (let i = 0; i < cmd.ops.length; i++) {
      try {
        this.#txnOp(index, cmd.ops[i].KV, cmd.now, results);
      } catch (err) {
        if (!(err instanceof TxnOpError)) {
          this.kv.rollbackTxn();
          throw err;
        }
        this.kv.rollbackTxn();
        const value: TxnResult = { Results: null, Errors: [{ OpIndex: i, What: err.message }] };
        return { ok: true, value };
      }
    }
    this.kv.commitTxn();
    const value: TxnResult = { Results: results, Errors: null };
    return { ok: true, value };
  }

  /** One txn op, with Consul's error texts (agent/consul/state/txn.go). */
  #txnOp(index: number, op: KvOp, now: number, results: { KV: KvWireEntry }[]): void {
    const key = op.Key;
    if (isKvReadVerb(op.Verb)) {
      const what = kvReadOp(this.kv, op, results);
      if (what !== undefined) throw new TxnOpError(what);
      return;
    }
    switch (op.Verb) {
      default: {
        const { ok } = this.#kvWrite(index, op, now);
        if (!ok) {
          const why: Record<string, string> = {
            cas: `failed to set key "${key}", index is stale`,
            'delete-cas': `failed to delete key "${key}", index is stale`,
            lock: `failed to lock key "${key}", lock is already held`,
            unlock: `failed to unlock key "${key}", lock isn't held, or is held by another session`,
          };
          throw new TxnOpError(why[op.Verb] ?? `failed to apply ${op.Verb} on key "${key}"`);
        }
        if (op.Verb === 'delete' || op.Verb === 'delete-cas' || op.Verb === 'delete-tree') return;
        const e = this.kv.get(key);
        if (e) results.push({ KV: kvWire(e, false) });
      }
    }
  }

  // ---- sessions ----

  #createSession(index: number, cmd: SessionCreateCommand): CommandResult {
    const s = cmd.session;
    if (this.sessions.get(s.ID)) return refuse(`session "${s.ID}" already exists`);
    if (!this.registry.getNode(s.Node)) return refuse(`Missing node registration`);
    const checkIds = [...s.NodeChecks, ...s.ServiceChecks.map((c) => c.ID)];
    for (const id of checkIds) {
      const check = this.registry.getCheck(s.Node, id);
      if (!check) return refuse(`Missing check '${id}' registration`);
      if (check.Status === 'critical') return refuse(`Check '${id}' is in ${check.Status} state`);
    }
    this.sessions.create(index, s);
    return { ok: true, value: s.ID };
  }

  #invalidateForCheck(index: number, check: CheckRow, now: number): void {
    for (const id of this.sessions.idsOfCheck(check.Node, check.CheckID))
      this.#destroySession(index, id, now);
  }

  /** Removes a session and releases (or deletes) its keys, arming their lock delay. */
  #destroySession(index: number, id: string, now: number): void {
    const session = this.sessions.destroy(index, id);
    if (!session) return;
    const delayMs = Math.floor(session.LockDelay / 1e6);
    for (const key of this.kv.heldBy(id)) {
      if (session.Behavior === 'delete') this.kv.delete(index, key);
      else {
        const e = this.kv.get(key);
        if (e) this.kv.unlock(index, key, e.Value, e.Flags, id);
      }
      if (delayMs > 0) this.lockDelays.set(key, now + delayMs);
    }
  }
}
