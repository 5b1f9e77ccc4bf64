/**
 * The catalog's nodes, services and health checks (the catalog half of Consul's state store,
 * `agent/consul/state/catalog.go`): deterministic, no I/O, no clock. Commands are applied at a Raft
 * index passed in by the caller; several may share one index, but it never goes backwards.
 *
 * Names are matched case-insensitively, as Consul's memdb indexes lowercase node names, service
 * IDs, service names and check IDs: `GET /v1/catalog/service/Web` finds `web` (DNS relies on it).
 * Rows keep the spelling they were written with, except a node, which keeps its first spelling:
 * later commands naming it in another case address it without renaming it, so its services and
 * checks always carry the node row's `Node` (Consul rewrites the spelling on the next changing write
 * and can end up with mixed spellings). Output is ordered by the lowercased keys, as memdb iterates:
 * nodes by name, service instances by node then service ID, checks by node then check ID, in
 * JavaScript string order (UTF-16 code units, as in `kv.ts`).
 *
 * Blocking queries. Every change is recorded under watch keys, and each key remembers the index of
 * its last change; a query reports the max over the keys it read and parks on exactly those keys:
 * - the table keys {@link NODES_WATCH}, {@link SERVICES_WATCH}, {@link CHECKS_WATCH} (Consul's
 *   table indexes);
 * - {@link serviceWatch}`(name)`, Consul's `service.<name>` index: an instance of that service, a
 *   check of one (or carrying its name), a node-level check on a node hosting one, or such a node
 *   changed. Health and catalog queries of a service read it, so a change to service `db` on
 *   another node wakes neither;
 * - {@link connectWatch}`(name)`: the Connect-capable instances of `name` (proxies whose
 *   destination it is, and Connect-native instances of it) or their nodes changed;
 * - {@link nodeWatch}`(name)`, Consul's `node.<name>` index: the node row or its services;
 * - {@link nodeChecksWatch}`(name)`: the node's checks (Consul reports the whole checks table index
 *   for `/v1/health/node/:node`; this is finer and still never misses a change).
 * A write that changes no row (Consul compares before writing) touches no key: no index moves and
 * nobody wakes.
 *
 * Things that go away: like Consul, a service key is dropped when nothing references that name any
 * more (no instance, no check carrying it), and a node's keys when the node is deregistered, so
 * memory follows the live catalog rather than every name ever seen. Their queries then report the
 * "extinction" index (Consul's `service_last_extinction` / `node_last_extinction`): the last index
 * at which any service (node) went away. That moves forward on the removal that emptied the query,
 * and never goes backwards; at worst an unrelated extinction makes a query of something absent
 * return once more with the same empty answer.
 *
 * Deviation: Consul also bumps the nodes table index when a service is written or deleted; here the
 * nodes index moves only with node rows, since {@link Registry.nodes} returns nothing else.
 */

import { sameJson } from './same-json.ts';
import type {
  CheckInput,
  CheckRow,
  DeregisterCommand,
  HealthStatus,
  NodeRow,
  RegisterCommand,
  ServiceInput,
  ServiceRow,
} from './types.ts';
import type { QueryRun, WatchRegistry } from './watch.ts';

// ---- watch keys ----

/** Fires when any node row is created, changed or deleted. */
export const NODES_WATCH = 'catalog:nodes';
/** Fires when any service instance is created, changed or deleted. */
export const SERVICES_WATCH = 'catalog:services';
/** Fires when any check is created, changed or deleted. */
export const CHECKS_WATCH = 'catalog:checks';

/** Lowercasing, as Consul's indexes do: every name and ID is matched through it. */
function fold(s: string): string {
  return s.toLowerCase();
}

/** Everything the catalog and health views of service `name` show (instances, their nodes and checks). */
export function serviceWatch(name: string): string {
  return `catalog:service:${fold(name)}`;
}

/** The same for the Connect-capable instances of `name` (`?connect`). */
export function connectWatch(name: string): string {
  return `catalog:connect:${fold(name)}`;
}

/** The node row of `name` and its services. */
export function nodeWatch(name: string): string {
  return `catalog:node:${fold(name)}`;
}

/** The checks of node `name`. */
export function nodeChecksWatch(name: string): string {
  return `catalog:node-checks:${fold(name)}`;
}

// ---- snapshot ----

export type RegistrySnapshotRecord =
  | {
      type: 'meta';
      nodesIndex: number;
      servicesIndex: number;
      checksIndex: number;
      serviceExtinction: number;
      nodeExtinction: number;
    }
  /** The last change index of one per-service or per-node watch key. */
  | { type: 'index'; key: string; index: number }
  | ({ type: 'node' } & NodeRow)
  | ({ type: 'service' } & ServiceRow)
  | ({ type: 'check' } & CheckRow);

// ---- options and helpers ----

type NodeMeta = Record<string, string>;

export type RegisterResult = { ok: true; checks: CheckRow[] } | { ok: false; error: string };

export interface DeregisterResult {
  removedChecks: CheckRow[];
  removedNode: boolean;
}

/**
 * What a deregister command removes, with Consul's precedence (`applyDeregister`): a service ID wins
 * over a check ID, and with neither the whole node goes. Empty strings count as absent, as in Consul.
 * `CatalogState` uses it too, to know whether the node's sessions go.
 */
export function deregisterScope(cmd: DeregisterCommand): 'service' | 'check' | 'node' {
  if (cmd.serviceId) return 'service';
  if (cmd.checkId) return 'check';
  return 'node';
}

const HEALTH_STATUSES: readonly string[] = ['passing', 'warning', 'critical', 'maintenance'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Consul's `ipaddr.IsAny`: a service cannot be reached at the wildcard address. */
const ANY_ADDRESSES = new Set(['0.0.0.0', '::', '[::]']);
/** The check Consul's agents keep for a node's gossip health (`structs.SerfCheckID`). */
const SERF_CHECK_ID = 'serfhealth';

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The key of an instance or check: sorts by node, then ID ({@link Registry.register} refuses NULs in names). */
function pairKey(node: string, id: string): string {
  return `${fold(node)}\u0000${fold(id)}`;
}

/** Whether `row` equals `old` except for the Raft indexes (which `row` does not carry yet). */
function unchanged<T extends { CreateIndex: number; ModifyIndex: number }>(
  old: T | undefined,
  row: Omit<T, 'CreateIndex' | 'ModifyIndex'>,
): boolean {
  return (
    old !== undefined && sameJson({ ...row, CreateIndex: old.CreateIndex, ModifyIndex: old.ModifyIndex }, old)
  );
}

/** The destination whose Connect view an instance belongs to (Consul's `connect` index), if any. */
function connectTarget(row: ServiceRow): string | undefined {
  if (row.Kind === 'connect-proxy') {
    const dest = row.Proxy.DestinationServiceName;
    return typeof dest === 'string' && dest !== '' ? dest : undefined;
  }
  return row.Connect.Native === true ? row.Service : undefined;
}

/** The service keys an instance counts in. */
function instanceKeys(row: ServiceRow): string[] {
  const dest = connectTarget(row);
  return dest === undefined ? [serviceWatch(row.Service)] : [serviceWatch(row.Service), connectWatch(dest)];
}

/** Consul's `SatisfiesMetaFilters`: every filter key is present with that exact value. */
function metaMatches(meta: NodeMeta, filter: NodeMeta | undefined): boolean {
  if (filter === undefined) return true;
  for (const [k, v] of Object.entries(filter)) if (!Object.hasOwn(meta, k) || meta[k] !== v) return false;
  return true;
}

/** Consul's `serviceTagsFilter`: every wanted tag is on the instance, compared case-insensitively. */
function tagsMatch(tags: readonly string[], wanted: readonly string[] | undefined): boolean {
  if (wanted === undefined || wanted.length === 0) return true;
  const have = new Set(tags.map(fold));
  return wanted.every((t) => have.has(fold(t)));
}

const hasFilter = (meta: NodeMeta | undefined): meta is NodeMeta =>
  meta !== undefined && Object.keys(meta).length > 0;

/** Which index a touched key feeds when the command commits. */
type Touched = 'nodes' | 'services' | 'checks' | 'service' | { node: string };

type NodeFields = Omit<NodeRow, 'CreateIndex' | 'ModifyIndex'>;
type ServiceFields = Omit<ServiceRow, 'CreateIndex' | 'ModifyIndex'>;
type CheckFields = Omit<CheckRow, 'CreateIndex' | 'ModifyIndex'>;

/** A validated register command, ready to apply without any further failure. */
interface RegisterPlan {
  node: NodeFields | undefined;
  service: ServiceFields | undefined;
  checks: CheckFields[];
}

export class Registry {
  /** fold(Node) → row. */
  readonly #nodes = new Map<string, NodeRow>();
  /** Node ID → fold(Node), for Consul's unique `uuid` index. */
  readonly #nodeIds = new Map<string, string>();
  /** fold(Node) → fold(ID) → instance. */
  readonly #services = new Map<string, Map<string, ServiceRow>>();
  /** fold(Node) → fold(CheckID) → check. */
  readonly #checks = new Map<string, Map<string, CheckRow>>();
  /** Service key ({@link serviceWatch} / {@link connectWatch}) → pairKey → instance. */
  readonly #instances = new Map<string, Map<string, ServiceRow>>();
  /** serviceWatch(check.ServiceName) → pairKey → service check (Consul's checks `service` index). */
  readonly #serviceChecks = new Map<string, Map<string, CheckRow>>();
  /** Per-service and per-node watch key → index of its last change (absent once extinct). */
  readonly #keyIndex = new Map<string, number>();
  readonly #watches: WatchRegistry | undefined;
  #nodesIndex = 0;
  #servicesIndex = 0;
  #checksIndex = 0;
  #serviceExtinction = 0;
  #nodeExtinction = 0;
  /** Keys changed by the command being applied; committed (indexes set, watchers woken) at its end. */
  readonly #touched = new Map<string, Touched>();

  constructor(watches?: WatchRegistry) {
    this.#watches = watches;
  }

  /** The index of the last change to any table (0 when nothing was ever written). */
  get lastIndex(): number {
    return Math.max(this.#nodesIndex, this.#servicesIndex, this.#checksIndex);
  }

  // ---- reads (callers must not mutate what they get back) ----

  getNode(name: string): NodeRow | undefined {
    return this.#nodes.get(fold(name));
  }

  getService(node: string, serviceId: string): ServiceRow | undefined {
    return this.#services.get(fold(node))?.get(fold(serviceId));
  }

  getCheck(node: string, checkId: string): CheckRow | undefined {
    return this.#checks.get(fold(node))?.get(fold(checkId));
  }

  // ---- commands ----

  /**
   * `PUT /v1/catalog/register` (Consul's `ensureRegistrationTxn`): the node, then the service, then
   * the checks, each written only if it differs from the stored row. Everything is validated first,
   * so a refusal changes nothing. `checks` are the command's checks as stored afterwards, changed
   * or not (Consul invalidates the sessions of a critical check even when it is rewritten as is).
   */
  register(index: number, cmd: RegisterCommand): RegisterResult {
    this.#checkIndex(index);
    const plan = this.#plan(cmd);
    if (typeof plan === 'string') return { ok: false, error: plan };
    const nodeKey = fold(cmd.node.Node);

    if (plan.node !== undefined) {
      const old = this.#nodes.get(nodeKey);
      if (!unchanged(old, plan.node)) {
        const row: NodeRow = { ...plan.node, CreateIndex: old?.CreateIndex ?? index, ModifyIndex: index };
        if (old !== undefined && old.ID !== '') this.#nodeIds.delete(old.ID);
        if (row.ID !== '') this.#nodeIds.set(row.ID, nodeKey);
        this.#nodes.set(nodeKey, row);
        this.#touch(NODES_WATCH, 'nodes');
        this.#touch(nodeWatch(row.Node), { node: nodeKey });
        // A new node starts its checks' index too, so that index never falls back to extinction.
        if (old === undefined) this.#touch(nodeChecksWatch(row.Node), { node: nodeKey });
        // Health and catalog views of the node's services include the node (Consul's catalogInsertNode).
        this.#touchInstancesOf(nodeKey, true);
      }
    }

    if (plan.service !== undefined) {
      const old = this.getService(nodeKey, plan.service.ID);
      if (!unchanged(old, plan.service)) {
        const row: ServiceRow = {
          ...plan.service,
          CreateIndex: old?.CreateIndex ?? index,
          ModifyIndex: index,
        };
        if (old !== undefined) this.#removeService(old);
        this.#insertService(row);
      }
    }

    const written: CheckRow[] = [];
    for (const fields of plan.checks) {
      const old = this.getCheck(nodeKey, fields.CheckID);
      if (unchanged(old, fields)) {
        written.push(old as CheckRow);
        continue;
      }
      const row: CheckRow = { ...fields, CreateIndex: old?.CreateIndex ?? index, ModifyIndex: index };
      if (old !== undefined) this.#removeCheck(old);
      this.#insertCheck(row);
      written.push(row);
    }

    this.#commit(index);
    return { ok: true, checks: written };
  }

  /**
   * `PUT /v1/catalog/deregister` (Consul's `DeleteNode` / `DeleteService` / `DeleteCheck`, chosen by
   * {@link deregisterScope}). A node takes its services and checks with it, a service its checks.
   * Anything already missing is not an error and changes nothing.
   */
  deregister(index: number, cmd: DeregisterCommand): DeregisterResult {
    this.#checkIndex(index);
    const nodeKey = fold(cmd.node);
    const removedChecks: CheckRow[] = [];
    let removedNode = false;
    const checks = this.#checks.get(nodeKey);
    switch (deregisterScope(cmd)) {
      case 'check': {
        const check = checks?.get(fold(cmd.checkId as string));
        if (check !== undefined) {
          this.#removeCheck(check);
          removedChecks.push(check);
        }
        break;
      }
      case 'service': {
        const service = this.getService(nodeKey, cmd.serviceId as string);
        if (service === undefined) break;
        const id = fold(service.ID);
        for (const key of [...(checks?.keys() ?? [])].sort(byString)) {
          const check = checks?.get(key) as CheckRow;
          if (fold(check.ServiceID) !== id) continue;
          this.#removeCheck(check);
          removedChecks.push(check);
        }
        this.#removeService(service);
        break;
      }
      case 'node': {
        const node = this.#nodes.get(nodeKey);
        if (node === undefined) break;
        // Checks first, while the instances they touch are still there to be found.
        for (const key of [...(checks?.keys() ?? [])].sort(byString)) {
          const check = checks?.get(key) as CheckRow;
          this.#removeCheck(check);
          removedChecks.push(check);
        }
        const services = this.#services.get(nodeKey);
        for (const key of [...(services?.keys() ?? [])].sort(byString)) {
          this.#removeService(services?.get(key) as ServiceRow);
        }
        this.#nodes.delete(nodeKey);
        if (node.ID !== '') this.#nodeIds.delete(node.ID);
        this.#touch(NODES_WATCH, 'nodes');
        this.#touch(nodeWatch(node.Node), { node: nodeKey });
        this.#touch(nodeChecksWatch(node.Node), { node: nodeKey });
        removedNode = true;
        break;
      }
    }
    this.#commit(index);
    return { removedChecks, removedNode };
  }

  // ---- queries ----

  /** `GET /v1/catalog/nodes[?node-meta=k:v]`: nodes sorted by name. */
  nodes(opts: { nodeMeta?: NodeMeta } = {}): QueryRun<NodeRow[]> {
    const out: NodeRow[] = [];
    for (const key of [...this.#nodes.keys()].sort(byString)) {
      const node = this.#nodes.get(key) as NodeRow;
      if (metaMatches(node.Meta, opts.nodeMeta)) out.push(node);
    }
    return { index: this.#nodesIndex, result: out, watch: [NODES_WATCH] };
  }

  /**
   * `GET /v1/catalog/services`: service name → its instances' tags, unique and sorted (Consul
   * returns them in map order). Names are the exact spellings instances were registered with.
   * With a node-meta filter the nodes table is read too (Consul's `ServicesByNodeMeta`).
   */
  services(opts: { nodeMeta?: NodeMeta } = {}): QueryRun<Record<string, string[]>> {
    const filter = hasFilter(opts.nodeMeta) ? opts.nodeMeta : undefined;
    const tags = new Map<string, Set<string>>();
    for (const nodeKey of [...this.#services.keys()].sort(byString)) {
      if (filter && !metaMatches((this.#nodes.get(nodeKey) as NodeRow).Meta, filter)) continue;
      for (const svc of (this.#services.get(nodeKey) as Map<string, ServiceRow>).values()) {
        let set = tags.get(svc.Service);
        if (set === undefined) {
          set = new Set();
          tags.set(svc.Service, set);
        }
        for (const t of svc.Tags) set.add(t);
      }
    }
    const result = Object.fromEntries(
      [...tags.keys()]
        .sort(byString)
        .map((name) => [name, [...(tags.get(name) as Set<string>)].sort(byString)]),
    );
    if (filter === undefined) return { index: this.#servicesIndex, result, watch: [SERVICES_WATCH] };
    return {
      index: Math.max(this.#servicesIndex, this.#nodesIndex),
      result,
      watch: [SERVICES_WATCH, NODES_WATCH],
    };
  }

  /**
   * `GET /v1/catalog/service/:name[?tag=&node-meta=]` and `/v1/catalog/connect/:name` (`connect`:
   * the proxies for `name` and its Connect-native instances), sorted by node then service ID.
   */
  serviceNodes(
    service: string,
    opts: { tags?: string[]; nodeMeta?: NodeMeta; connect?: boolean } = {},
  ): QueryRun<Array<{ node: NodeRow; service: ServiceRow }>> {
    const key = opts.connect === true ? connectWatch(service) : serviceWatch(service);
    const out: Array<{ node: NodeRow; service: ServiceRow }> = [];
    for (const svc of this.#sortedInstances(key)) {
      const node = this.#nodes.get(fold(svc.Node)) as NodeRow;
      if (tagsMatch(svc.Tags, opts.tags) && metaMatches(node.Meta, opts.nodeMeta))
        out.push({ node, service: svc });
    }
    return { index: this.#serviceIndex(key), result: out, watch: [key] };
  }

  /** `GET /v1/catalog/node/:node` and `/v1/catalog/node-services/:node`: null for an unknown node. */
  nodeServices(name: string): QueryRun<{ node: NodeRow; services: ServiceRow[] } | null> {
    const key = nodeWatch(name);
    const node = this.#nodes.get(fold(name));
    const index = this.#nodeIndex(key);
    if (node === undefined) return { index, result: null, watch: [key] };
    const services = this.#services.get(fold(name));
    const rows = [...(services?.keys() ?? [])].sort(byString).map((id) => services?.get(id) as ServiceRow);
    return { index, result: { node, services: rows }, watch: [key] };
  }

  /** `GET /v1/health/node/:node`: the node's checks sorted by check ID. */
  nodeChecks(name: string): QueryRun<CheckRow[]> {
    const key = nodeChecksWatch(name);
    const checks = this.#checks.get(fold(name));
    const rows = [...(checks?.keys() ?? [])].sort(byString).map((id) => checks?.get(id) as CheckRow);
    return { index: this.#nodeIndex(key), result: rows, watch: [key] };
  }

  /**
   * `GET /v1/health/checks/:service`: checks whose stored ServiceName is `service` (Consul's checks
   * `service` index), sorted by node then check ID.
   */
  serviceChecks(service: string): QueryRun<CheckRow[]> {
    const key = serviceWatch(service);
    const checks = this.#serviceChecks.get(key);
    const rows = [...(checks?.keys() ?? [])].sort(byString).map((k) => checks?.get(k) as CheckRow);
    return { index: this.#serviceIndex(key), result: rows, watch: [key] };
  }

  /** `GET /v1/health/state/:state`: checks in that state (or all), by node then check ID; the checks table index. */
  checksInState(state: HealthStatus | 'any'): QueryRun<CheckRow[]> {
    const out: CheckRow[] = [];
    for (const nodeKey of [...this.#checks.keys()].sort(byString)) {
      const checks = this.#checks.get(nodeKey) as Map<string, CheckRow>;
      for (const id of [...checks.keys()].sort(byString)) {
        const check = checks.get(id) as CheckRow;
        if (state === 'any' || check.Status === state) out.push(check);
      }
    }
    return { index: this.#checksIndex, result: out, watch: [CHECKS_WATCH] };
  }

  /**
   * `GET /v1/health/service/:name[?tag=&passing&node-meta=]`: each instance with its node and its
   * checks, the node-level ones first, then the instance's own, each group by check ID (Consul's
   * `parseCheckServiceNodes`). `passingOnly` drops an instance if any of those checks is not
   * `passing` (warning and maintenance included, as Consul's `?passing`); unlike Consul's HTTP
   * filter, which swaps dropped entries with the last one, the order stays sorted.
   */
  checkServiceNodes(
    service: string,
    opts: { tags?: string[]; passingOnly?: boolean; nodeMeta?: NodeMeta } = {},
  ): QueryRun<Array<{ node: NodeRow; service: ServiceRow; checks: CheckRow[] }>> {
    const key = serviceWatch(service);
    const out: Array<{ node: NodeRow; service: ServiceRow; checks: CheckRow[] }> = [];
    for (const svc of this.#sortedInstances(key)) {
      const nodeKey = fold(svc.Node);
      const node = this.#nodes.get(nodeKey) as NodeRow;
      if (!tagsMatch(svc.Tags, opts.tags) || !metaMatches(node.Meta, opts.nodeMeta)) continue;
      const nodeLevel: CheckRow[] = [];
      const own: CheckRow[] = [];
      const checks = this.#checks.get(nodeKey);
      const id = fold(svc.ID);
      for (const checkId of [...(checks?.keys() ?? [])].sort(byString)) {
        const check = checks?.get(checkId) as CheckRow;
        if (check.ServiceID === '') nodeLevel.push(check);
        else if (fold(check.ServiceID) === id) own.push(check);
      }
      const all = [...nodeLevel, ...own];
      if (opts.passingOnly === true && all.some((c) => c.Status !== 'passing')) continue;
      out.push({ node, service: svc, checks: all });
    }
    return { index: this.#serviceIndex(key), result: out, watch: [key] };
  }

  // ---- snapshot ----

  /** The whole registry: a meta record, node, service and check rows in query order, then key indexes. */
  toSnapshot(): RegistrySnapshotRecord[] {
    const out: RegistrySnapshotRecord[] = [
      {
        type: 'meta',
        nodesIndex: this.#nodesIndex,
        servicesIndex: this.#servicesIndex,
        checksIndex: this.#checksIndex,
        serviceExtinction: this.#serviceExtinction,
        nodeExtinction: this.#nodeExtinction,
      },
    ];
    const nodeKeys = [...this.#nodes.keys()].sort(byString);
    for (const k of nodeKeys) out.push({ type: 'node', ...structuredClone(this.#nodes.get(k) as NodeRow) });
    for (const k of nodeKeys) {
      const services = this.#services.get(k);
      for (const id of [...(services?.keys() ?? [])].sort(byString)) {
        out.push({ type: 'service', ...structuredClone(services?.get(id) as ServiceRow) });
      }
    }
    for (const k of nodeKeys) {
      const checks = this.#checks.get(k);
      for (const id of [...(checks?.keys() ?? [])].sort(byString)) {
        out.push({ type: 'check', ...structuredClone(checks?.get(id) as CheckRow) });
      }
    }
    for (const key of [...this.#keyIndex.keys()].sort(byString)) {
      out.push({ type: 'index', key, index: this.#keyIndex.get(key) as number });
    }
    return out;
  }

  /** Rebuilds a registry exactly (rows, secondary maps, every index) from {@link toSnapshot}'s records. */
  static fromSnapshot(records: Iterable<RegistrySnapshotRecord>, watches?: WatchRegistry): Registry {
    const r = new Registry(watches);
    const services: ServiceRow[] = [];
    const checks: CheckRow[] = [];
    for (const rec of records) {
      switch (rec.type) {
        case 'meta':
          r.#nodesIndex = rec.nodesIndex;
          r.#servicesIndex = rec.servicesIndex;
          r.#checksIndex = rec.checksIndex;
          r.#serviceExtinction = rec.serviceExtinction;
          r.#nodeExtinction = rec.nodeExtinction;
          break;
        case 'index':
          r.#keyIndex.set(rec.key, rec.index);
          break;
        case 'node': {
          const { type: _type, ...row } = rec;
          const key = fold(row.Node);
          r.#nodes.set(key, structuredClone(row));
          if (row.ID !== '') r.#nodeIds.set(row.ID, key);
          break;
        }
        case 'service': {
          const { type: _type, ...row } = rec;
          services.push(structuredClone(row));
          break;
        }
        case 'check': {
          const { type: _type, ...row } = rec;
          checks.push(structuredClone(row));
          break;
        }
      }
    }
    // Rows are linked after every node is known, whatever the record order; nothing is touched.
    for (const row of services) r.#linkService(row);
    for (const row of checks) r.#linkCheck(row);
    return r;
  }

  // ---- internals: validation ----

  /** Several commands may share an index (one Raft entry), but the log never goes backwards. */
  #checkIndex(index: number): void {
    if (!(index >= this.lastIndex))
      throw new RangeError(`catalog command at index ${index} after ${this.lastIndex}`);
  }

  /**
   * Validates a register command against the current state and normalizes its rows (defaults
   * filled, inputs copied); a string is the refusal, with Consul's wording where Consul has one.
   * `node` is undefined when the node row is to be left alone (`skipNodeUpdate` on an existing node).
   */
  #plan(cmd: RegisterCommand): RegisterPlan | string {
    const input = cmd.node;
    if (!input.Node) return 'Must provide node';
    // Keys join node and ID with a NUL (see pairKey), so no name may hold one.
    const names = [
      input.Node,
      cmd.service?.ID || cmd.service?.Service || '',
      ...(cmd.checks ?? []).map((c) => c.CheckID || c.Name || ''),
    ];
    if (names.some((n) => n.includes('\u0000'))) return 'Names and IDs must not contain NUL characters';
    const nodeKey = fold(input.Node);
    const existing = this.#nodes.get(nodeKey);
    const skip = cmd.skipNodeUpdate === true;
    if (!input.Address && !skip) return 'Must provide address if SkipNodeUpdate is not set';
    // Consul would create a node without an address here; a node nobody can reach is refused instead.
    if (!input.Address && existing === undefined) return 'Must provide address to register a new node';

    let node: NodeFields | undefined;
    if (existing === undefined || !skip) {
      node = {
        ID: (input.ID ?? '').toLowerCase(),
        Node: existing?.Node ?? input.Node,
        Address: input.Address,
        Datacenter: input.Datacenter ?? '',
        TaggedAddresses: structuredClone(input.TaggedAddresses ?? {}),
        Meta: structuredClone(input.Meta ?? {}),
      };
      // Consul validates the ID only when it writes the node, as here.
      if (!unchanged(existing, node)) {
        const refused = this.#checkNodeId(node, existing);
        if (refused !== undefined) return refused;
      }
    }
    const nodeName = node?.Node ?? (existing as NodeRow).Node;

    let service: ServiceFields | undefined;
    if (cmd.service !== undefined) {
      const s = cmd.service;
      service = normalizeService(nodeName, s);
      if (s.Service === '') return s.ID ? 'Must provide service name with ID' : 'Must provide service name';
      if (ANY_ADDRESSES.has(service.Address)) return 'Invalid service address';
      if (service.Kind === 'connect-proxy' && connectTarget(service as ServiceRow) === undefined)
        return 'Proxy.DestinationServiceName must be non-empty for Connect proxy services';
    }

    const checks: CheckFields[] = [];
    for (const c of cmd.checks ?? []) {
      const checkId = c.CheckID || c.Name || '';
      if (checkId === '') return 'Must provide check ID or name';
      if (c.Status !== undefined && !HEALTH_STATUSES.includes(c.Status))
        return `Invalid check status ${JSON.stringify(c.Status)}`;
      let owner: ServiceFields | undefined;
      if (c.ServiceID) {
        owner =
          service !== undefined && fold(service.ID) === fold(c.ServiceID)
            ? service
            : this.getService(nodeKey, c.ServiceID);
        if (owner === undefined)
          return `failed inserting check on node "${input.Node}": Missing service registration`;
      }
      checks.push(normalizeCheck(nodeName, checkId, c, owner));
    }
    return { node, service, checks };
  }

  /**
   * Node ID rules of Consul's `ensureNodeTxn`, minus renaming: an ID must be a UUID; an ID owned by
   * a node of another name is refused (Consul ≥ 1.2 would rename that node, deleting its services
   * and checks, which is too much for a register to do silently); replacing the ID of a node whose
   * `serfHealth` check is not critical is refused (`ensureNoNodeWithSimilarNameTxn`).
   */
  #checkNodeId(node: NodeFields, existing: NodeRow | undefined): string | undefined {
    if (node.ID === '') return undefined;
    if (!UUID.test(node.ID)) return `failed inserting node: node ID ${JSON.stringify(node.ID)} is not a UUID`;
    const owner = this.#nodeIds.get(node.ID);
    if (owner !== undefined && owner !== fold(node.Node)) {
      const other = (this.#nodes.get(owner) as NodeRow).Node;
      return `failed inserting node: node ID ${JSON.stringify(node.ID)} for node ${JSON.stringify(node.Node)} aliases existing node ${JSON.stringify(other)}`;
    }
    if (owner === undefined && existing !== undefined && existing.ID !== '') {
      const serf = this.getCheck(existing.Node, SERF_CHECK_ID);
      if (serf !== undefined && serf.Status !== 'critical') {
        return `failed inserting node: Node name ${node.Node} is reserved by node ${existing.ID} with name ${existing.Node} (${existing.Address})`;
      }
    }
    return undefined;
  }

  // ---- internals: rows and their secondary maps ----

  #insertService(row: ServiceRow): void {
    this.#linkService(row);
    this.#touchService(row);
  }

  #removeService(row: ServiceRow): void {
    const nodeKey = fold(row.Node);
    const services = this.#services.get(nodeKey);
    services?.delete(fold(row.ID));
    if (services?.size === 0) this.#services.delete(nodeKey);
    for (const key of instanceKeys(row)) {
      const set = this.#instances.get(key);
      set?.delete(pairKey(row.Node, row.ID));
      if (set?.size === 0) this.#instances.delete(key);
    }
    this.#touchService(row);
  }

  #linkService(row: ServiceRow): void {
    const nodeKey = fold(row.Node);
    let services = this.#services.get(nodeKey);
    if (services === undefined) {
      services = new Map();
      this.#services.set(nodeKey, services);
    }
    services.set(fold(row.ID), row);
    for (const key of instanceKeys(row)) {
      let set = this.#instances.get(key);
      if (set === undefined) {
        set = new Map();
        this.#instances.set(key, set);
      }
      set.set(pairKey(row.Node, row.ID), row);
    }
  }

  #insertCheck(row: CheckRow): void {
    this.#linkCheck(row);
    this.#touchCheck(row);
  }

  #removeCheck(row: CheckRow): void {
    const nodeKey = fold(row.Node);
    const checks = this.#checks.get(nodeKey);
    checks?.delete(fold(row.CheckID));
    if (checks?.size === 0) this.#checks.delete(nodeKey);
    if (row.ServiceID !== '') {
      const key = serviceWatch(row.ServiceName);
      const set = this.#serviceChecks.get(key);
      set?.delete(pairKey(row.Node, row.CheckID));
      if (set?.size === 0) this.#serviceChecks.delete(key);
    }
    this.#touchCheck(row);
  }

  #linkCheck(row: CheckRow): void {
    const nodeKey = fold(row.Node);
    let checks = this.#checks.get(nodeKey);
    if (checks === undefined) {
      checks = new Map();
      this.#checks.set(nodeKey, checks);
    }
    checks.set(fold(row.CheckID), row);
    if (row.ServiceID !== '') {
      const key = serviceWatch(row.ServiceName);
      let set = this.#serviceChecks.get(key);
      if (set === undefined) {
        set = new Map();
        this.#serviceChecks.set(key, set);
      }
      set.set(pairKey(row.Node, row.CheckID), row);
    }
  }

  #sortedInstances(key: string): ServiceRow[] {
    const set = this.#instances.get(key);
    if (set === undefined) return [];
    return [...set.keys()].sort(byString).map((k) => set.get(k) as ServiceRow);
  }

  // ---- internals: indexes and watches ----

  #serviceIndex(key: string): number {
    return this.#keyIndex.get(key) ?? this.#serviceExtinction;
  }

  #nodeIndex(key: string): number {
    return this.#keyIndex.get(key) ?? this.#nodeExtinction;
  }

  #touch(key: string, kind: Touched): void {
    this.#touched.set(key, kind);
  }

  /** An instance was written or removed: the services table, its node, and its service keys. */
  #touchService(row: ServiceRow): void {
    this.#touch(SERVICES_WATCH, 'services');
    this.#touch(nodeWatch(row.Node), { node: fold(row.Node) });
    for (const key of instanceKeys(row)) this.#touch(key, 'service');
  }

  /**
   * The views of every instance on a node: with `connect`, their Connect views too (those show
   * nodes but not checks, so a check change leaves them alone).
   */
  #touchInstancesOf(nodeKey: string, connect: boolean): void {
    for (const svc of this.#services.get(nodeKey)?.values() ?? []) {
      if (connect) for (const key of instanceKeys(svc)) this.#touch(key, 'service');
      else this.#touch(serviceWatch(svc.Service), 'service');
    }
  }

  /**
   * A check was written or removed (called for the old and the new row alike): the checks table,
   * the node's checks, the service named in the row (`/v1/health/checks/:service` reads the stored
   * name, which may lag a renamed instance), and the health views it appears in: its instance's,
   * or for a node-level check every instance on the node (Consul's `updateAllServiceIndexesOfNode`).
   */
  #touchCheck(row: CheckRow): void {
    const nodeKey = fold(row.Node);
    this.#touch(CHECKS_WATCH, 'checks');
    this.#touch(nodeChecksWatch(row.Node), { node: nodeKey });
    if (row.ServiceID === '') {
      this.#touchInstancesOf(nodeKey, false);
      return;
    }
    this.#touch(serviceWatch(row.ServiceName), 'service');
    const svc = this.getService(nodeKey, row.ServiceID);
    if (svc !== undefined) this.#touch(serviceWatch(svc.Service), 'service');
  }

  /**
   * Ends a command: every touched key takes `index` (or, if what it names is gone, is dropped and
   * moves its extinction index), then their watchers wake, once. Nothing touched, nothing happens.
   */
  #commit(index: number): void {
    if (this.#touched.size === 0) return;
    for (const [key, kind] of this.#touched) {
      if (kind === 'nodes') this.#nodesIndex = index;
      else if (kind === 'services') this.#servicesIndex = index;
      else if (kind === 'checks') this.#checksIndex = index;
      else if (kind === 'service') {
        const alive = this.#instances.has(key) || this.#serviceChecks.has(key);
        if (alive) this.#keyIndex.set(key, index);
        else if (this.#keyIndex.delete(key)) this.#serviceExtinction = index;
      } else if (this.#nodes.has(kind.node)) this.#keyIndex.set(key, index);
      else if (this.#keyIndex.delete(key)) this.#nodeExtinction = index;
    }
    const keys = [...this.#touched.keys()];
    this.#touched.clear();
    this.#watches?.notify(keys, index);
  }
}

/** A service instance with Consul's defaults: ID = name, weights 1/1, empty tags, meta and kind. */
function normalizeService(node: string, s: ServiceInput): ServiceFields {
  return {
    Node: node,
    ID: s.ID || s.Service,
    Service: s.Service,
    Tags: [...(s.Tags ?? [])],
    Address: s.Address ?? '',
    TaggedAddresses: structuredClone(s.TaggedAddresses ?? {}),
    Port: s.Port ?? 0,
    Meta: structuredClone(s.Meta ?? {}),
    Weights: s.Weights
      ? { Passing: s.Weights.Passing, Warning: s.Weights.Warning }
      : { Passing: 1, Warning: 1 },
    EnableTagOverride: s.EnableTagOverride ?? false,
    Kind: s.Kind ?? '',
    Proxy: structuredClone(s.Proxy ?? {}),
    Connect: structuredClone(s.Connect ?? {}),
  };
}

/**
 * A check with Consul's defaults: status `critical` until a result arrives; for a service check,
 * ServiceID, ServiceName and ServiceTags copied from the instance as it is now (`ensureCheckTxn`).
 * As in Consul, re-registering the service alone does not rewrite its checks' copies: the agent
 * re-sends the checks when it changes a service. A node-level check carries no service fields
 * (Consul keeps whatever the client sent, which made such checks show up under a service).
 */
function normalizeCheck(
  node: string,
  checkId: string,
  c: CheckInput,
  owner: ServiceFields | undefined,
): CheckFields {
  return {
    Node: node,
    CheckID: checkId,
    Name: c.Name ?? '',
    Status: c.Status ?? 'critical',
    Notes: c.Notes ?? '',
    Output: c.Output ?? '',
    ServiceID: owner?.ID ?? '',
    ServiceName: owner?.Service ?? '',
    ServiceTags: owner ? [...owner.Tags] : [],
    Type: c.Type ?? '',
    Definition: structuredClone(c.Definition ?? {}),
  };
}
