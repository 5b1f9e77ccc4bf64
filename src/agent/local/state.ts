/**
 * The agent's own services and checks (Consul's `agent/local.State`, simplified), and how they
 * reach the catalog.
 *
 * The local state is the source of truth for what runs on this host: every API or config change
 * lands here first and is then pushed to the catalog as `register`/`deregister` commands for this
 * node through {@link CatalogBackend.write}. Each entry carries `inSync`; a change clears it and
 * wakes the sync loop, which pushes every entry out of sync, one command at a time, in a fixed
 * order (deleted services, deleted checks, services with their checks, remaining checks; each by
 * ID). Many changes made while a push is in flight are coalesced into the next round. A write that
 * fails (no leader, servers unreachable) or is refused leaves the entries out of sync and retries
 * the round after a backoff (doubling, capped); the local state itself is never lost or rolled back.
 * An entry is marked in sync only if it did not change while its write was in flight (a version
 * per entry), so a change racing a write is pushed again.
 *
 * Around it, elsewhere: anti-entropy's full sync (./anti-entropy.ts) compares a catalog read with
 * this state through {@link LocalState.reconcileWithCatalog}; persistence (./persist.ts) listens to
 * `state:changed`; check runners (../checks) report through {@link LocalState.updateCheck}, and the
 * reaper deregisters services critical longer than their `DeregisterCriticalServiceAfter`.
 *
 * Time comes from an injected {@link Clock} (timers for TTL expiry, deferred output pushes and
 * sync retries), so tests run on a simulated clock.
 */

import type { Logger } from 'pino';
import { sameJson } from '../../catalog/same-json.ts';
import type { CheckInput, CheckRow, HealthStatus, NodeInput, ServiceRow } from '../../catalog/types.ts';
import type { CatalogBackend, CommandInput } from '../backend.ts';
import {
  type CheckDefinition,
  type CheckStatus,
  type LocalServiceFields,
  type ServiceDefinition,
  SIDECAR_ID_SUFFIX,
} from './definitions.ts';
import { DefinitionError, NotTtlCheckError, UnknownCheckError, UnknownServiceError } from './errors.ts';

/** Timers and wall clock, injected (tests advance a simulated clock). */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real time; timers are unref'd so they never keep the process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Where an entry came from: reload replaces `config` entries and leaves `api` ones alone. */
export type DefinitionSource = 'api' | 'config' | 'maintenance';

/** A check as the agent holds it: a catalog row without node and indexes. */
export type LocalCheckFields = Omit<CheckRow, 'Node' | 'CreateIndex' | 'ModifyIndex'>;

/** What readers get: copies, safe to keep. */
export interface LocalServiceView {
  service: LocalServiceFields;
  source: DefinitionSource;
  inSync: boolean;
}

export interface LocalCheckView {
  check: LocalCheckFields;
  /** Go duration strings ('' when unset), as the agent's check view shows them. */
  Interval: string;
  Timeout: string;
  /** Set for TTL checks. */
  ttlMs: number | undefined;
  source: DefinitionSource;
  inSync: boolean;
}

export const NODE_MAINTENANCE_CHECK_ID = '_node_maintenance';
export const SERVICE_MAINTENANCE_CHECK_PREFIX = '_service_maintenance:';
export const DEFAULT_NODE_MAINTENANCE_REASON =
  'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.';
export const DEFAULT_SERVICE_MAINTENANCE_REASON =
  'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';

export function serviceMaintenanceCheckId(serviceId: string): string {
  return `${SERVICE_MAINTENANCE_CHECK_PREFIX}${serviceId}`;
}

export interface LocalStateInit {
  /** First retry delay after a failed push. @default 250 */
  retryMinMs?: number;
  /** Longest retry delay (Consul retries a failed sync every 15 s). @default 15_000 */
  retryMaxMs?: number;
  /**
   * Ports given to sidecar proxies registered without one (Consul's `ports.sidecar_min_port` and
   * `sidecar_max_port`, inclusive); `min < 1` turns auto-assignment off.
   * @default { min: 21000, max: 21255 }
   */
  sidecarPorts?: { min: number; max: number };
  /**
   * A check change that only touches Output is pushed after at most this long (Consul's
   * `check_update_interval`), so chatty TTL notes do not become a Raft write each; a status change
   * is pushed at once. 0 pushes every change at once.
   * @default 0
   */
  checkUpdateIntervalMs?: number;
}

export interface LocalStateComponents {
  /** This agent's node, as written in each register command (with `skipNodeUpdate`). */
  node: NodeInput;
  catalog: Pick<CatalogBackend, 'write'>;
  clock: Clock;
  logger: Logger;
}

/**
 * What survives an agent restart (see persist.ts): API-registered services and checks and the
 * maintenance modes. Config-defined entries come back from the config files instead.
 */
export interface PersistableLocalState {
  services: LocalServiceFields[];
  checks: { def: CheckDefinition; status: HealthStatus; output: string }[];
  /** Maintenance reasons: '' key for the node, else the service ID. */
  maintenance: { serviceId: string; reason: string }[];
}

/** The check the Raft leader writes for every member (gossip health); never the agent's to remove. */
export const SERF_HEALTH_CHECK_ID = 'serfHealth';
/** The service the Raft leader registers on every server node; likewise the leader's, not the agent's. */
export const CONSUL_SERVICE_ID = 'consul';

export interface LocalStateEvents {
  /**
   * Any local change (register, deregister, status, output); `version` is the new state version,
   * `persistent` whether it changed what the data dir keeps (false for a runner's status or output).
   */
  'state:changed': CustomEvent<{ version: number; persistent: boolean }>;
}

interface ServiceEntry {
  fields: LocalServiceFields;
  source: DefinitionSource;
  inSync: boolean;
  deleted: boolean;
  version: number;
}

interface CheckEntry {
  fields: LocalCheckFields;
  source: DefinitionSource;
  /** undefined for maintenance checks (they have no definition). */
  def: CheckDefinition | undefined;
  inSync: boolean;
  deleted: boolean;
  version: number;
  ttlTimer: unknown;
  /** Pending deferred push of an output-only change. */
  deferTimer: unknown;
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Consul's TTL check output cap: keeps the first `max` bytes and says how much was dropped. */
export function truncateOutput(output: string, max: number): string {
  const bytes = Buffer.byteLength(output);
  if (bytes <= max) return output;
  const kept = Buffer.from(output).subarray(0, max).toString('utf8');
  return `${kept} ... (captured ${max} of ${bytes} bytes)`;
}

/** Whether two check definitions describe the same check (status and output aside). */
function sameDefinition(a: CheckDefinition | undefined, b: CheckDefinition): boolean {
  if (a === undefined) return false;
  const strip = (d: CheckDefinition) => ({ ...d, Status: undefined, statusGiven: undefined });
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}

export class LocalState extends EventTarget {
  readonly #c: LocalStateComponents;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #checkUpdateIntervalMs: number;
  readonly #sidecarPorts: { min: number; max: number };
  readonly #services = new Map<string, ServiceEntry>();
  readonly #checks = new Map<string, CheckEntry>();
  readonly #abort = new AbortController();
  #version = 0;
  /** The running sync round, if any. */
  #syncing: Promise<void> | undefined;
  /** A change arrived since the current round read the state. */
  #dirty = false;
  #retryTimer: unknown;
  #failures = 0;
  #lastSyncAt = 0;

  constructor(components: LocalStateComponents, init: LocalStateInit = {}) {
    super();
    this.#c = components;
    this.#retryMinMs = init.retryMinMs ?? 250;
    this.#retryMaxMs = init.retryMaxMs ?? 15_000;
    this.#checkUpdateIntervalMs = init.checkUpdateIntervalMs ?? 0;
    this.#sidecarPorts = init.sidecarPorts ?? { min: 21_000, max: 21_255 };
  }

  /** Bumped on every local change. */
  get version(): number {
    return this.#version;
  }

  /** Whether every entry has reached the catalog. */
  get inSync(): boolean {
    return this.outOfSyncCount === 0;
  }

  /** Services and checks (deletions included) not yet in the catalog as this agent has them. */
  get outOfSyncCount(): number {
    let n = 0;
    for (const e of this.#services.values()) if (!e.inSync) n++;
    for (const e of this.#checks.values()) if (!e.inSync) n++;
    return n;
  }

  /** Consecutive failed sync rounds (0 after a success). */
  get syncFailures(): number {
    return this.#failures;
  }

  /** When the last fully successful sync round ended (clock ms; 0 if never). */
  get lastSyncAt(): number {
    return this.#lastSyncAt;
  }

  get serviceCount(): number {
    let n = 0;
    for (const e of this.#services.values()) if (!e.deleted) n++;
    return n;
  }

  get checkCount(): number {
    let n = 0;
    for (const e of this.#checks.values()) if (!e.deleted) n++;
    return n;
  }

  // ---- reads ----

  services(): LocalServiceView[] {
    return [...this.#services.keys()]
      .sort(byString)
      .map((id) => this.service(id))
      .filter((v): v is LocalServiceView => v !== undefined);
  }

  service(id: string): LocalServiceView | undefined {
    const e = this.#services.get(id);
    if (e === undefined || e.deleted) return undefined;
    return { service: structuredClone(e.fields), source: e.source, inSync: e.inSync };
  }

  checks(): LocalCheckView[] {
    return [...this.#checks.keys()]
      .sort(byString)
      .map((id) => this.check(id))
      .filter((v): v is LocalCheckView => v !== undefined);
  }

  check(id: string): LocalCheckView | undefined {
    const e = this.#checks.get(id);
    if (e === undefined || e.deleted) return undefined;
    return {
      check: structuredClone(e.fields),
      Interval: e.def?.Interval ?? '',
      Timeout: e.def?.Timeout ?? '',
      ttlMs: e.def?.ttlMs,
      source: e.source,
      inSync: e.inSync,
    };
  }

  // ---- services ----

  /**
   * Adds or replaces a service and its checks (`PUT /v1/agent/service/register`). Checks of the
   * service not in `def` are kept unless `replaceExistingChecks` (the service maintenance check is
   * always kept). A check registered again with the same definition keeps its status and output.
   */
  addService(
    def: ServiceDefinition,
    opts: { replaceExistingChecks?: boolean; source?: DefinitionSource } = {},
  ): void {
    this.#throwIfStopped();
    const source = opts.source ?? 'api';
    // Built (and so validated) before anything changes.
    const sidecar = def.sidecar?.build(def.sidecar.autoPort ? this.#sidecarPort(def.sidecar.id) : 0);
    const s = def.service;
    const old = this.#services.get(s.ID);
    const unchanged = old !== undefined && !old.deleted && JSON.stringify(old.fields) === JSON.stringify(s);
    if (unchanged) {
      old.source = source;
    } else {
      this.#services.set(s.ID, {
        fields: structuredClone(s),
        source,
        inSync: false,
        deleted: false,
        version: (old?.version ?? 0) + 1,
      });
    }
    const keep = new Set(def.checks.map((c) => c.CheckID));
    keep.add(serviceMaintenanceCheckId(s.ID));
    if (opts.replaceExistingChecks) {
      for (const [id, e] of this.#checks) {
        if (!e.deleted && e.fields.ServiceID === s.ID && !keep.has(id)) this.#deleteCheck(e);
      }
    }
    for (const c of def.checks) this.#putCheck({ ...c, ServiceID: s.ID }, source);
    // Checks of the service carry copies of its name and tags: refresh them.
    for (const e of this.#checks.values()) {
      if (e.deleted || e.fields.ServiceID !== s.ID) continue;
      if (
        e.fields.ServiceName === s.Service &&
        JSON.stringify(e.fields.ServiceTags) === JSON.stringify(s.Tags)
      )
        continue;
      e.fields.ServiceName = s.Service;
      e.fields.ServiceTags = [...s.Tags];
      this.#touchCheck(e);
    }
    if (!unchanged) this.#changed();
    if (sidecar) this.addService(sidecar, { source, replaceExistingChecks: opts.replaceExistingChecks });
  }

  /**
   * Consul's sidecar port allocation: the port the sidecar already has when it is in the range
   * (an update keeps it), else the lowest port of the range no local service uses.
   */
  #sidecarPort(sidecarId: string): number {
    const { min, max } = this.#sidecarPorts;
    if (min < 1 || max < min)
      throw new DefinitionError(
        'no port provided for sidecar_service and auto-assignment disabled in config',
      );
    const used = new Set<number>();
    for (const [id, e] of this.#services) {
      if (e.deleted || e.fields.Port < min || e.fields.Port > max) continue;
      if (id === sidecarId) return e.fields.Port;
      used.add(e.fields.Port);
    }
    for (let p = min; p <= max; p++) if (!used.has(p)) return p;
    throw new DefinitionError(
      `no port provided for sidecar_service and none left in the configured range [${min}, ${max}]`,
    );
  }

  /** The sidecar this agent registered for `serviceId` (it goes when the service goes). */
  #sidecarOf(serviceId: string): ServiceEntry | undefined {
    const e = this.#services.get(`${serviceId}${SIDECAR_ID_SUFFIX}`);
    if (e === undefined || e.deleted || e.fields.Kind !== 'connect-proxy') return undefined;
    return e.fields.Proxy.DestinationServiceID === serviceId ? e : undefined;
  }

  /** `PUT /v1/agent/service/deregister/:id`: the service and its checks, and its sidecar. */
  removeService(id: string): void {
    this.#throwIfStopped();
    const e = this.#services.get(id);
    if (e === undefined || e.deleted) throw new UnknownServiceError(id);
    if (this.#sidecarOf(id)) this.removeService(`${id}${SIDECAR_ID_SUFFIX}`);
    for (const c of this.#checks.values()) if (!c.deleted && c.fields.ServiceID === id) this.#deleteCheck(c);
    e.deleted = true;
    e.inSync = false;
    e.version++;
    this.#changed();
  }

  // ---- checks ----

  /** `PUT /v1/agent/check/register`: a node-level check, or one bound to a local service. */
  addCheck(def: CheckDefinition, opts: { source?: DefinitionSource } = {}): void {
    this.#throwIfStopped();
    if (def.ServiceID !== '') {
      const svc = this.#services.get(def.ServiceID);
      if (svc === undefined || svc.deleted)
        throw new DefinitionError(`ServiceID ${JSON.stringify(def.ServiceID)} does not exist`);
    }
    this.#putCheck(def, opts.source ?? 'api');
  }

  /** `PUT /v1/agent/check/deregister/:id`. */
  removeCheck(id: string): void {
    this.#throwIfStopped();
    const e = this.#checks.get(id);
    if (e === undefined || e.deleted) throw new UnknownCheckError(id);
    this.#deleteCheck(e);
  }

  /**
   * `PUT /v1/agent/check/pass|warn|fail|update/:id`: sets a TTL check's status and output (capped
   * at its OutputMaxSize) and re-arms its TTL.
   */
  updateTtl(id: string, status: CheckStatus, output: string): void {
    this.#throwIfStopped();
    const e = this.#checks.get(id);
    if (e === undefined || e.deleted) throw new UnknownCheckError(id);
    if (e.def?.ttlMs === undefined) throw new NotTtlCheckError(id);
    this.#armTtl(e);
    this.#setStatus(e, status, truncateOutput(output, e.def.outputMaxSize));
  }

  /** A result from a check runner (none exist yet besides TTL; see the module comment). */
  updateCheck(id: string, status: HealthStatus, output: string): void {
    const e = this.#checks.get(id);
    if (e === undefined || e.deleted) throw new UnknownCheckError(id);
    this.#setStatus(e, status, output);
  }

  // ---- maintenance ----

  /** `PUT /v1/agent/maintenance?enable=true`: a critical `_node_maintenance` check (kept as is if already on). */
  enableNodeMaintenance(reason = ''): void {
    this.#throwIfStopped();
    const existing = this.#checks.get(NODE_MAINTENANCE_CHECK_ID);
    if (existing !== undefined && !existing.deleted) return;
    this.#putMaintenance({
      CheckID: NODE_MAINTENANCE_CHECK_ID,
      Name: 'Node Maintenance Mode',
      Notes: reason || DEFAULT_NODE_MAINTENANCE_REASON,
      ServiceID: '',
      ServiceName: '',
      ServiceTags: [],
    });
  }

  disableNodeMaintenance(): void {
    this.#throwIfStopped();
    const e = this.#checks.get(NODE_MAINTENANCE_CHECK_ID);
    if (e !== undefined && !e.deleted) this.#deleteCheck(e);
  }

  get nodeMaintenance(): boolean {
    const e = this.#checks.get(NODE_MAINTENANCE_CHECK_ID);
    return e !== undefined && !e.deleted;
  }

  /** `PUT /v1/agent/service/maintenance/:id?enable=true`: a critical check bound to the service. */
  enableServiceMaintenance(serviceId: string, reason = ''): void {
    this.#throwIfStopped();
    const svc = this.#services.get(serviceId);
    if (svc === undefined || svc.deleted) throw new UnknownServiceError(serviceId);
    const id = serviceMaintenanceCheckId(serviceId);
    const existing = this.#checks.get(id);
    if (existing !== undefined && !existing.deleted) return;
    this.#putMaintenance({
      CheckID: id,
      Name: 'Service Maintenance Mode',
      Notes: reason || DEFAULT_SERVICE_MAINTENANCE_REASON,
      ServiceID: serviceId,
      ServiceName: svc.fields.Service,
      ServiceTags: [...svc.fields.Tags],
    });
  }

  disableServiceMaintenance(serviceId: string): void {
    this.#throwIfStopped();
    const svc = this.#services.get(serviceId);
    if (svc === undefined || svc.deleted) throw new UnknownServiceError(serviceId);
    const e = this.#checks.get(serviceMaintenanceCheckId(serviceId));
    if (e !== undefined && !e.deleted) this.#deleteCheck(e);
  }

  // ---- config files ----

  /**
   * Makes the config-defined services and checks exactly `services` and `checks` (agent start and
   * reload): config entries no longer defined go, new and changed ones are registered, unchanged
   * ones are left alone (TTL checks keep their status and timer), API-registered entries are kept
   * (a config service with the ID of an API one takes it over). Everything is checked before
   * anything changes: a {@link DefinitionError} leaves the state untouched.
   */
  applyConfig(services: readonly ServiceDefinition[], checks: readonly CheckDefinition[]): void {
    this.#throwIfStopped();
    const serviceIds = new Set<string>();
    const checkIds = new Set<string>();
    for (const s of services) {
      for (const id of [s.service.ID, ...(s.sidecar ? [s.sidecar.id] : [])]) {
        if (serviceIds.has(id))
          throw new DefinitionError(`service ID ${JSON.stringify(id)} is defined twice`);
        serviceIds.add(id);
      }
      for (const c of s.checks) {
        if (checkIds.has(c.CheckID))
          throw new DefinitionError(`check ID ${JSON.stringify(c.CheckID)} is defined twice`);
        checkIds.add(c.CheckID);
      }
    }
    const goingServices = new Set(
      [...this.#services.entries()]
        .filter(([id, e]) => !e.deleted && e.source === 'config' && !serviceIds.has(id))
        .map(([id]) => id),
    );
    for (const c of checks) {
      if (checkIds.has(c.CheckID))
        throw new DefinitionError(`check ID ${JSON.stringify(c.CheckID)} is defined twice`);
      checkIds.add(c.CheckID);
      if (c.ServiceID === '' || serviceIds.has(c.ServiceID)) continue;
      const svc = this.#services.get(c.ServiceID);
      if (svc === undefined || svc.deleted || goingServices.has(c.ServiceID)) {
        throw new DefinitionError(
          `check ${JSON.stringify(c.CheckID)}: ServiceID ${JSON.stringify(c.ServiceID)} does not exist`,
        );
      }
    }

    for (const id of [...this.#checks.keys()].sort(byString)) {
      const e = this.#checks.get(id) as CheckEntry;
      if (!e.deleted && e.source === 'config' && !checkIds.has(id)) this.#deleteCheck(e);
    }
    // A sidecar may have gone with its service already.
    for (const id of [...goingServices].sort(byString))
      if (this.#live(this.#services, id)) this.removeService(id);
    for (const s of services) this.addService(s, { source: 'config' });
    for (const c of checks) this.addCheck(c, { source: 'config' });
  }

  // ---- persistence ----

  /** The API-registered part of the state, for the data dir. */
  persistable(): PersistableLocalState {
    const out: PersistableLocalState = { services: [], checks: [], maintenance: [] };
    for (const id of [...this.#services.keys()].sort(byString)) {
      const e = this.#services.get(id) as ServiceEntry;
      if (!e.deleted && e.source === 'api') out.services.push(structuredClone(e.fields));
    }
    for (const id of [...this.#checks.keys()].sort(byString)) {
      const e = this.#checks.get(id) as CheckEntry;
      if (e.deleted) continue;
      if (e.source === 'maintenance')
        out.maintenance.push({ serviceId: e.fields.ServiceID, reason: e.fields.Notes });
      else if (e.source === 'api' && e.def !== undefined)
        out.checks.push({ def: structuredClone(e.def), status: e.fields.Status, output: e.fields.Output });
    }
    return out;
  }

  /**
   * Registers what a previous run persisted, as API entries (agent start, after the config files:
   * an ID the config defines keeps the config's definition, as Consul skips such persisted
   * entries). A TTL check gets back the status and output it had, with a fresh TTL (Consul restores
   * TTL check state); other checks start from their initial status until their runner reports.
   * Entries that no longer validate are skipped and returned as warnings.
   */
  restore(saved: PersistableLocalState): string[] {
    this.#throwIfStopped();
    const warnings: string[] = [];
    for (const fields of saved.services) {
      if (this.#live(this.#services, fields.ID)) continue;
      this.addService({ service: fields, checks: [], warnings: [] }, { source: 'api' });
    }
    for (const { def, status, output } of saved.checks) {
      if (this.#live(this.#checks, def.CheckID)) continue;
      try {
        this.addCheck(def, { source: 'api' });
      } catch (err) {
        warnings.push(`persisted check ${JSON.stringify(def.CheckID)} skipped: ${(err as Error).message}`);
        continue;
      }
      if (def.ttlMs !== undefined)
        this.#setStatus(this.#checks.get(def.CheckID) as CheckEntry, status, output);
    }
    for (const { serviceId, reason } of saved.maintenance) {
      try {
        if (serviceId === '') this.enableNodeMaintenance(reason);
        else this.enableServiceMaintenance(serviceId, reason);
      } catch (err) {
        warnings.push(
          `persisted maintenance of ${JSON.stringify(serviceId)} skipped: ${(err as Error).message}`,
        );
      }
    }
    return warnings;
  }

  #live<E extends { deleted: boolean }>(table: Map<string, E>, id: string): boolean {
    const e = table.get(id);
    return e !== undefined && !e.deleted;
  }

  // ---- sync ----

  /**
   * Anti-entropy's full sync (Consul's `updateSyncState`): compares the catalog's view of this
   * node (its services and checks, as read from a server) with the local state. Entries the catalog
   * lacks or holds differently are marked out of sync; catalog entries the agent does not know are
   * deregistered (except the leader's `serfHealth` check). Then the sync loop pushes the
   * differences. An entry with a deferred output-only update keeps its deferral. The `consul`
   * service of a server node is the leader's, like `serfHealth`, and is left alone (as Consul does).
   */
  reconcileWithCatalog(catalogServices: readonly ServiceRow[], catalogChecks: readonly CheckRow[]): void {
    if (this.#abort.signal.aborted) return;
    let differences = 0;
    const remoteServices = new Map(
      catalogServices.filter((r) => r.ID !== CONSUL_SERVICE_ID).map((r) => [r.ID, r]),
    );
    for (const [id, row] of remoteServices) {
      if (this.#services.has(id)) continue;
      // Unknown here: a marker entry that the next round deregisters (and then forgets).
      this.#services.set(id, {
        fields: localFieldsOf(row),
        source: 'api',
        inSync: false,
        deleted: true,
        version: 1,
      });
      differences++;
    }
    for (const [id, e] of this.#services) {
      if (id === CONSUL_SERVICE_ID) continue;
      const row = remoteServices.get(id);
      const matches = e.deleted
        ? row === undefined
        : row !== undefined && sameJson(e.fields, localFieldsOf(row));
      if (matches === e.inSync) continue;
      e.inSync = matches;
      if (!matches) differences++;
    }
    const remoteChecks = new Map(
      catalogChecks.filter((r) => r.CheckID !== SERF_HEALTH_CHECK_ID).map((r) => [r.CheckID, r]),
    );
    for (const [id, row] of remoteChecks) {
      if (this.#checks.has(id)) continue;
      this.#checks.set(id, {
        fields: localFieldsOf(row),
        source: 'api',
        def: undefined,
        inSync: false,
        deleted: true,
        version: 1,
        ttlTimer: undefined,
        deferTimer: undefined,
      });
      differences++;
    }
    for (const [id, e] of this.#checks) {
      const row = remoteChecks.get(id);
      let matches: boolean;
      if (e.deleted) matches = row === undefined;
      else if (row === undefined) matches = false;
      else if (e.deferTimer !== undefined)
        matches = sameJson({ ...e.fields, Output: '' }, { ...localFieldsOf(row), Output: '' });
      else matches = sameJson(e.fields, localFieldsOf(row));
      if (matches === e.inSync) continue;
      e.inSync = matches;
      if (!matches) differences++;
    }
    if (differences > 0) {
      this.#c.logger.info({ differences }, 'anti-entropy: catalog differs from the local state; syncing');
      this.#scheduleSync();
    }
  }

  /** Resolves when the sync round under way (if any) ends, successful or not. */
  async flush(): Promise<void> {
    while (this.#syncing) await this.#syncing;
  }

  /** Resolves once the state version passes `afterVersion`, or rejects when `signal` aborts. */
  waitForChange(afterVersion: number, signal: AbortSignal): Promise<void> {
    if (this.#version > afterVersion) return Promise.resolve();
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onChange = (): void => {
        if (this.#version <= afterVersion) return;
        cleanup();
        resolve();
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal.reason);
      };
      const cleanup = (): void => {
        this.removeEventListener('state:changed', onChange);
        signal.removeEventListener('abort', onAbort);
      };
      this.addEventListener('state:changed', onChange);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Stops timers and the sync loop (an in-flight write is aborted); the state stays readable. */
  async stop(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort(new DOMException('local state stopped', 'AbortError'));
    const { clock } = this.#c;
    if (this.#retryTimer !== undefined) clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    for (const e of this.#checks.values()) this.#clearTimers(e);
    await this.#syncing?.catch(() => undefined);
  }

  // ---- internals: entries ----

  #throwIfStopped(): void {
    this.#abort.signal.throwIfAborted();
  }

  #putCheck(def: CheckDefinition, source: DefinitionSource): void {
    const old = this.#checks.get(def.CheckID);
    const live = old !== undefined && !old.deleted ? old : undefined;
    if (live !== undefined && sameDefinition(live.def, def)) {
      live.source = source;
      return;
    }
    const svc = def.ServiceID === '' ? undefined : this.#services.get(def.ServiceID);
    // A re-registered check keeps its status and output unless a status is given (no flapping).
    const keepStatus = live !== undefined && !def.statusGiven && live.def?.Type === def.Type;
    const entry: CheckEntry = {
      fields: {
        CheckID: def.CheckID,
        Name: def.Name,
        Status: keepStatus ? live.fields.Status : def.Status,
        Notes: def.Notes,
        Output: keepStatus ? live.fields.Output : '',
        ServiceID: def.ServiceID,
        ServiceName: svc?.fields.Service ?? '',
        ServiceTags: svc ? [...svc.fields.Tags] : [],
        Type: def.Type,
        Definition: structuredClone(def.Definition),
      },
      source,
      def: structuredClone(def),
      inSync: false,
      deleted: false,
      version: (old?.version ?? 0) + 1,
      ttlTimer: undefined,
      deferTimer: undefined,
    };
    if (old !== undefined) this.#clearTimers(old);
    this.#checks.set(def.CheckID, entry);
    if (def.ttlMs !== undefined) this.#armTtl(entry);
    this.#changed();
  }

  #putMaintenance(
    f: Pick<LocalCheckFields, 'CheckID' | 'Name' | 'Notes' | 'ServiceID' | 'ServiceName' | 'ServiceTags'>,
  ): void {
    const old = this.#checks.get(f.CheckID);
    if (old !== undefined) this.#clearTimers(old);
    this.#checks.set(f.CheckID, {
      fields: { ...f, Status: 'critical', Output: '', Type: 'maintenance', Definition: {} },
      source: 'maintenance',
      def: undefined,
      inSync: false,
      deleted: false,
      version: (old?.version ?? 0) + 1,
      ttlTimer: undefined,
      deferTimer: undefined,
    });
    this.#changed();
  }

  #deleteCheck(e: CheckEntry): void {
    this.#clearTimers(e);
    e.deleted = true;
    e.inSync = false;
    e.version++;
    this.#changed();
  }

  #clearTimers(e: CheckEntry): void {
    const { clock } = this.#c;
    if (e.ttlTimer !== undefined) clock.clearTimeout(e.ttlTimer);
    if (e.deferTimer !== undefined) clock.clearTimeout(e.deferTimer);
    e.ttlTimer = undefined;
    e.deferTimer = undefined;
  }

  /** (Re)starts a TTL check's timer; on expiry the check goes critical (Consul's `CheckTTL`). */
  #armTtl(e: CheckEntry): void {
    const ttl = e.def?.ttlMs;
    if (ttl === undefined || this.#abort.signal.aborted) return;
    const { clock } = this.#c;
    if (e.ttlTimer !== undefined) clock.clearTimeout(e.ttlTimer);
    e.ttlTimer = clock.setTimeout(() => {
      e.ttlTimer = undefined;
      if (e.deleted || this.#checks.get(e.fields.CheckID) !== e) return;
      const last = e.fields.Output;
      // Consul keeps the last output after the prefix; a first expiry says just "TTL expired".
      const output =
        last === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${last}`;
      this.#c.logger.warn({ checkId: e.fields.CheckID }, 'check TTL expired');
      this.#setStatus(e, 'critical', output);
    }, ttl);
  }

  #setStatus(e: CheckEntry, status: HealthStatus, output: string): void {
    const statusChanged = e.fields.Status !== status;
    if (!statusChanged && e.fields.Output === output) return;
    e.fields.Status = status;
    e.fields.Output = output;
    e.version++;
    e.inSync = false;
    if (statusChanged || this.#checkUpdateIntervalMs <= 0) {
      if (e.deferTimer !== undefined) this.#c.clock.clearTimeout(e.deferTimer);
      e.deferTimer = undefined;
    } else if (e.deferTimer === undefined) {
      // Output only: pushed within check_update_interval (Consul's DeferCheck).
      e.deferTimer = this.#c.clock.setTimeout(() => {
        e.deferTimer = undefined;
        this.#scheduleSync();
      }, this.#checkUpdateIntervalMs);
    }
    // Only a TTL check's status is part of what persists (see persist.ts).
    this.#changed(e.def?.ttlMs !== undefined);
  }

  /** A service change that its checks' copies follow: pushed with the service. */
  #touchCheck(e: CheckEntry): void {
    e.version++;
    e.inSync = false;
  }

  /** `persistent`: whether the change touches what the data dir keeps (see {@link persistable}). */
  #changed(persistent = true): void {
    this.#version++;
    this.dispatchEvent(new CustomEvent('state:changed', { detail: { version: this.#version, persistent } }));
    this.#scheduleSync();
  }

  // ---- internals: sync ----

  #scheduleSync(): void {
    if (this.#abort.signal.aborted) return;
    this.#dirty = true;
    // During a retry backoff, changes wait for the retry (they are coalesced into it).
    if (this.#syncing !== undefined || this.#retryTimer !== undefined) return;
    this.#syncing = this.#runSync().finally(() => {
      this.#syncing = undefined;
    });
  }

  async #runSync(): Promise<void> {
    // Let the caller's synchronous burst of changes land first: one round pushes them all.
    await Promise.resolve();
    while (this.#dirty && !this.#abort.signal.aborted) {
      this.#dirty = false;
      let ok: boolean;
      try {
        ok = await this.#syncOnce();
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        this.#c.logger.warn({ err: (err as Error).message }, 'syncing local services and checks failed');
        ok = false;
      }
      if (this.#abort.signal.aborted) return;
      if (!ok) {
        this.#failures++;
        const delay = Math.min(this.#retryMaxMs, this.#retryMinMs * 2 ** Math.min(this.#failures - 1, 20));
        this.#c.logger.debug({ retryInMs: delay, failures: this.#failures }, 'local state sync will retry');
        this.#retryTimer = this.#c.clock.setTimeout(() => {
          this.#retryTimer = undefined;
          this.#scheduleSync();
        }, delay);
        return;
      }
      this.#failures = 0;
      this.#lastSyncAt = this.#c.clock.now();
    }
  }

  /**
   * One round: pushes every entry out of sync. Returns false if any write was refused (the others
   * still go); a transport failure throws and ends the round.
   */
  async #syncOnce(): Promise<boolean> {
    let ok = true;
    const node = this.#c.node.Node;
    // 1. Deleted services (their checks go with them in the catalog).
    for (const id of [...this.#services.keys()].sort(byString)) {
      const e = this.#services.get(id) as ServiceEntry;
      if (!e.deleted || e.inSync) continue;
      const v = e.version;
      const covered = [...this.#checks.values()].filter((c) => c.deleted && c.fields.ServiceID === id);
      if (!(await this.#push({ type: 'deregister', node, serviceId: id }, `deregister service ${id}`))) {
        ok = false;
        continue;
      }
      if (this.#services.get(id) === e && e.version === v) this.#services.delete(id);
      for (const c of covered)
        if (this.#checks.get(c.fields.CheckID) === c && c.deleted) this.#checks.delete(c.fields.CheckID);
    }
    // 2. Deleted checks.
    for (const id of [...this.#checks.keys()].sort(byString)) {
      const e = this.#checks.get(id);
      if (e === undefined || !e.deleted) continue;
      const v = e.version;
      if (!(await this.#push({ type: 'deregister', node, checkId: id }, `deregister check ${id}`))) {
        ok = false;
        continue;
      }
      if (this.#checks.get(id) === e && e.version === v) this.#checks.delete(id);
    }
    // 3. Services, each with all its checks (so the catalog's copies of name and tags follow).
    for (const id of [...this.#services.keys()].sort(byString)) {
      const e = this.#services.get(id);
      if (e === undefined || e.deleted || e.inSync) continue;
      const checks = [...this.#checks.values()]
        .filter((c) => !c.deleted && c.fields.ServiceID === id)
        .sort((a, b) => byString(a.fields.CheckID, b.fields.CheckID));
      const versions = checks.map((c) => c.version);
      const v = e.version;
      const cmd: CommandInput = {
        type: 'register',
        node: this.#c.node,
        skipNodeUpdate: true,
        service: structuredClone(e.fields),
        ...(checks.length ? { checks: checks.map((c) => checkInput(c.fields)) } : {}),
      };
      if (!(await this.#push(cmd, `register service ${id}`))) {
        ok = false;
        continue;
      }
      if (this.#services.get(id) === e && e.version === v) e.inSync = true;
      for (const [i, c] of checks.entries()) this.#markCheckSynced(c, versions[i]);
    }
    // 4. Remaining checks (node-level, or changed without their service).
    for (const id of [...this.#checks.keys()].sort(byString)) {
      const e = this.#checks.get(id);
      if (e === undefined || e.deleted || e.inSync || e.deferTimer !== undefined) continue;
      if (e.fields.ServiceID !== '') {
        const svc = this.#services.get(e.fields.ServiceID);
        // Its service failed to register this round: it is retried with the service.
        if (svc === undefined || svc.deleted || !svc.inSync) continue;
      }
      const v = e.version;
      const cmd: CommandInput = {
        type: 'register',
        node: this.#c.node,
        skipNodeUpdate: true,
        checks: [checkInput(e.fields)],
      };
      if (!(await this.#push(cmd, `register check ${id}`))) {
        ok = false;
        continue;
      }
      this.#markCheckSynced(e, v);
    }
    return ok;
  }

  #markCheckSynced(e: CheckEntry, version: number): void {
    if (this.#checks.get(e.fields.CheckID) !== e || e.version !== version) return;
    e.inSync = true;
    if (e.deferTimer !== undefined) this.#c.clock.clearTimeout(e.deferTimer);
    e.deferTimer = undefined;
  }

  /** One write; false if the catalog refused it (logged). Transport failures throw. */
  async #push(cmd: CommandInput, what: string): Promise<boolean> {
    const reply = await this.#c.catalog.write(cmd, this.#abort.signal);
    if (reply.result.ok) return true;
    this.#c.logger.warn({ error: reply.result.error }, `catalog refused to ${what}`);
    return false;
  }
}

function checkInput(f: LocalCheckFields): CheckInput {
  return structuredClone(f);
}

/** A catalog row as the agent holds its entries: without the node and the Raft indexes. */
function localFieldsOf<R extends { Node: string; CreateIndex: number; ModifyIndex: number }>(
  row: R,
): Omit<R, 'Node' | 'CreateIndex' | 'ModifyIndex'> {
  const { Node: _node, CreateIndex: _c, ModifyIndex: _m, ...fields } = row;
  return fields;
}

export type LocalStateFactory = (components: LocalStateComponents) => LocalState;

/** libp2p-style factory: settings first, components later. */
export const localState =
  (init: LocalStateInit = {}): LocalStateFactory =>
  (components) =>
    new LocalState(components, init);
