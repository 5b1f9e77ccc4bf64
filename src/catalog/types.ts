/**
 * The rows of the replicated catalog and the commands that change them.
 *
 * Rows use Consul's PascalCase field names, so that a row is (almost) its own wire shape and the
 * HTTP presenters stay thin. Every row carries CreateIndex/ModifyIndex: the Raft index of the
 * command that created it and of the last one that changed it.
 *
 * Commands are plain JSON-serializable objects (KV values travel as base64 strings), validated at
 * the API edge and applied deterministically: anything that depends on time carries its own
 * `now` (ms since the epoch, stamped by the proposer), never read from a clock during apply.
 */

export type HealthStatus = 'passing' | 'warning' | 'critical' | 'maintenance';

export interface RaftIndexes {
  CreateIndex: number;
  ModifyIndex: number;
}

export interface NodeRow extends RaftIndexes {
  /** Lowercase UUID (may be '' for nodes registered through the catalog API without one). */
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
}

export interface ServiceWeights {
  Passing: number;
  Warning: number;
}

/** A service instance on a node (Consul's `ServiceNode` minus the node fields). */
export interface ServiceRow extends RaftIndexes {
  /** The node the instance runs on. */
  Node: string;
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  TaggedAddresses: Record<string, { Address: string; Port: number }>;
  Port: number;
  Meta: Record<string, string>;
  Weights: ServiceWeights;
  EnableTagOverride: boolean;
  /** '' for a typical service, `connect-proxy`, `mesh-gateway`, ... */
  Kind: string;
  /** Proxy configuration for `connect-proxy` services, kept as given (PascalCase keys). */
  Proxy: Record<string, unknown>;
  /** Connect settings (`Native`, `SidecarService` already expanded by the agent). */
  Connect: Record<string, unknown>;
}

export interface CheckRow extends RaftIndexes {
  Node: string;
  CheckID: string;
  Name: string;
  Status: HealthStatus;
  Notes: string;
  Output: string;
  /** '' for a node-level check. */
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  /** `ttl`, `http`, `tcp`, `script`, `serf`, ... ('' when registered through the catalog). */
  Type: string;
  /** The check's definition as the agent holds it (HTTP, Interval, ...), kept as given. */
  Definition: Record<string, unknown>;
}

export type SessionBehavior = 'release' | 'delete';

export interface SessionRow extends RaftIndexes {
  ID: string;
  Name: string;
  Node: string;
  /** Node-level checks the session is bound to. */
  NodeChecks: string[];
  /** Service checks the session is bound to. */
  ServiceChecks: { ID: string; Namespace: string }[];
  /** In nanoseconds, as Consul's wire format. */
  LockDelay: number;
  Behavior: SessionBehavior;
  /** A Go duration string ('' for no TTL), as Consul's wire format. */
  TTL: string;
}

// ---- commands ----

/** A node as written by a register command. */
export interface NodeInput {
  ID?: string;
  Node: string;
  Address: string;
  Datacenter?: string;
  TaggedAddresses?: Record<string, string>;
  Meta?: Record<string, string>;
}

export type ServiceInput = Partial<Omit<ServiceRow, 'Node' | 'CreateIndex' | 'ModifyIndex'>> & {
  Service: string;
};

export type CheckInput = Partial<Omit<CheckRow, 'Node' | 'CreateIndex' | 'ModifyIndex'>> & {
  CheckID: string;
};

/**
 * `PUT /v1/catalog/register`: creates or updates the node, then optionally one service and any
 * number of checks on it (Consul's `RegisterRequest`).
 */
export interface RegisterCommand {
  type: 'register';
  node: NodeInput;
  /** Leave the node row alone if it exists (Consul's `SkipNodeUpdate`). */
  skipNodeUpdate?: boolean;
  service?: ServiceInput;
  checks?: CheckInput[];
  now: number;
}

/**
 * `PUT /v1/catalog/deregister`: the whole node (with its services, checks and sessions), or one
 * service (with its checks), or one check.
 */
export interface DeregisterCommand {
  type: 'deregister';
  node: string;
  serviceId?: string;
  checkId?: string;
  now: number;
}

export type KvVerb =
  | 'set'
  | 'cas'
  | 'delete'
  | 'delete-cas'
  | 'delete-tree'
  | 'lock'
  | 'unlock'
  | 'get'
  | 'get-tree'
  | 'check-index'
  | 'check-session'
  | 'check-not-exists';

/** One KV operation, as `/v1/kv` and `/v1/txn` express it. `Value` is base64. */
export interface KvOp {
  Verb: KvVerb;
  Key: string;
  Value?: string;
  Flags?: number;
  /** For `cas`, `delete-cas`, `check-index`: the expected ModifyIndex. */
  Index?: number;
  /** For `lock`, `unlock`, `check-session`. */
  Session?: string;
}

export interface KvCommand {
  type: 'kv';
  op: KvOp;
  now: number;
}

/** One operation of a `/v1/txn` request. Only KV for now; Node/Service/Check ops later. */
export type TxnOp = { KV: KvOp };

export interface TxnCommand {
  type: 'txn';
  ops: TxnOp[];
  now: number;
}

export interface SessionCreateCommand {
  type: 'session-create';
  /** The ID is chosen by the proposer (a random UUID), so apply stays deterministic. */
  session: Omit<SessionRow, 'CreateIndex' | 'ModifyIndex'>;
  now: number;
}

export interface SessionDestroyCommand {
  type: 'session-destroy';
  id: string;
  now: number;
}

/** Drops KV tombstones up to an index (proposed by the leader once they outlive their TTL). */
export interface TombstoneReapCommand {
  type: 'tombstone-reap';
  upToIndex: number;
  now: number;
}

/** `PUT /v1/snapshot`: replace the whole state (a snapshot in the fsm.ts format, base64). */
export interface RestoreCommand {
  type: 'restore';
  snapshot: string;
  now: number;
}

export type CatalogCommand =
  | RegisterCommand
  | DeregisterCommand
  | KvCommand
  | TxnCommand
  | SessionCreateCommand
  | SessionDestroyCommand
  | TombstoneReapCommand
  | RestoreCommand;

/** KV entry as the wire shows it: Value base64 (null when empty, as Consul). */
export interface KvWireEntry {
  Key: string;
  Value: string | null;
  Flags: number;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  Session?: string;
}

export interface TxnResult {
  Results: { KV: KvWireEntry }[] | null;
  Errors: { OpIndex: number; What: string }[] | null;
}

/**
 * What applying a command returns to its proposer. A command that is refused by the state (a
 * missing node, a session on a critical check) returns `{ ok: false, error }`: the refusal is part
 * of the replicated history, identical on every server, and becomes a 4xx at the edge.
 */
export type CommandResult =
  | { ok: true; value?: boolean | string | TxnResult }
  | { ok: false; error: string; status?: number };
