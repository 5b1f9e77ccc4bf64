/**
 * The leader's reconciliation of gossip membership into the catalog (Consul's `leader_serf.go`
 * and `reconcileMember`):
 * - an alive (or suspect) member is a registered node with a passing `serfHealth` check, and a
 *   server also gets the `consul` service on its RPC port (what `consul.service.consul` finds);
 * - a failed member keeps its node, with `serfHealth` critical, so its services drop out of
 *   `?passing` and DNS and its sessions are invalidated;
 * - a member that left, or was reaped, and any catalog node with a `serfHealth` check that gossip
 *   no longer knows, is deregistered; a left or reaped server also leaves the Raft configuration.
 *
 * It runs on the leader only: all of it at once when leadership starts and every
 * {@link RECONCILE_INTERVAL_MS} (Consul's `reconcile_interval`), and one member at a time as
 * membership events arrive. A write is made only when the catalog differs, so a steady cluster
 * writes nothing.
 */

import type { Logger } from 'pino';
import type { CheckRow } from '../../catalog/types.ts';
import type { Member, MembershipEvent } from '../gossip/core/types.ts';
import { asServer, memberIp } from '../gossip/tags.ts';
import type { CatalogServer } from './server.ts';

export const SERF_CHECK_ID = 'serfHealth';
export const SERF_CHECK_NAME = 'Serf Health Status';
const ALIVE_OUTPUT = 'Agent alive and reachable';
const FAILED_OUTPUT = 'Agent not live or unreachable';
/** Consul's `reconcile_interval` default. */
export const RECONCILE_INTERVAL_MS = 60_000;

/** What the reconciler needs from gossip. */
export interface MemberSource {
  members(): Member[];
  on(listener: (e: MembershipEvent) => void): () => void;
}

export interface ReconcilerInit {
  server: CatalogServer;
  members: MemberSource;
  datacenter: string;
  logger: Logger;
  intervalMs?: number;
}

export class MemberReconciler {
  readonly #server: CatalogServer;
  readonly #source: MemberSource;
  readonly #dc: string;
  readonly #log: Logger;
  readonly #intervalMs: number;
  /** Member names waiting for reconciliation; '*' means everything. */
  readonly #pending = new Set<string>();
  #running = false;
  #active = false;
  #off: (() => void) | undefined;
  #interval: NodeJS.Timeout | undefined;

  constructor(init: ReconcilerInit) {
    this.#server = init.server;
    this.#source = init.members;
    this.#dc = init.datacenter;
    this.#log = init.logger.child({ component: 'reconcile' });
    this.#intervalMs = init.intervalMs ?? RECONCILE_INTERVAL_MS;
  }

  /** Leadership gained: reconcile everything now, then follow events. */
  start(): void {
    if (this.#active) return;
    this.#active = true;
    this.#off = this.#source.on((e) => {
      if (e.type === 'join-ack' || e.type === 'conflict') return;
      this.#enqueue(e.type === 'reap' ? '*' : e.member.name);
    });
    this.#interval = setInterval(() => this.#enqueue('*'), this.#intervalMs);
    this.#interval.unref();
    this.#enqueue('*');
  }

  stop(): void {
    this.#active = false;
    this.#off?.();
    this.#off = undefined;
    if (this.#interval) clearInterval(this.#interval);
    this.#interval = undefined;
    this.#pending.clear();
  }

  /** Resolves once nothing is queued or running (tests). */
  get idle(): boolean {
    return !this.#running && this.#pending.size === 0;
  }

  #enqueue(name: string): void {
    if (!this.#active) return;
    this.#pending.add(name);
    if (!this.#running) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#active && this.#pending.size > 0) {
        const all = this.#pending.has('*');
        const names = all ? undefined : [...this.#pending];
        this.#pending.clear();
        const members = this.#source.members();
        const byName = new Map(members.map((m) => [m.name.toLowerCase(), m]));
        if (all) {
          for (const m of members) await this.#reconcile(m);
          await this.#reconcileReaped(byName);
        } else {
          for (const n of names ?? []) {
            const m = byName.get(n.toLowerCase());
            if (m) await this.#reconcile(m);
            else await this.#reconcileReaped(byName);
          }
        }
      }
    } catch (err) {
      this.#log.warn(
        { err: (err as Error).message },
        'reconciliation failed; retrying at the next event or interval',
      );
    } finally {
      this.#running = false;
    }
  }

  async #reconcile(m: Member): Promise<void> {
    if (!this.#active) return;
    if (m.meta.dc !== undefined && m.meta.dc !== this.#dc) return;
    switch (m.status) {
      case 'alive':
      case 'suspect':
        return this.#ensureRegistered(m, 'passing');
      case 'failed':
        return this.#ensureRegistered(m, 'critical');
      case 'left':
        return this.#deregister(m.name, true);
    }
  }

  async #ensureRegistered(m: Member, status: 'passing' | 'critical'): Promise<void> {
    const reg = this.#server.fsm.state.registry;
    const ip = memberIp(m);
    const node = reg.getNode(m.name);
    const check = reg.getCheck(m.name, SERF_CHECK_ID);
    const server = asServer(m, this.#dc);
    const service = server ? reg.getService(m.name, 'consul') : undefined;
    const serverPort = server ? Number(m.meta.port) : 0;
    const nodeOk =
      node !== undefined && node.Address === ip && (m.meta.id === undefined || node.ID === m.meta.id);
    const checkOk = check !== undefined && check.Status === status;
    const serviceOk = !server || (service !== undefined && service.Port === serverPort);
    if (nodeOk && checkOk && serviceOk) return;
    const checkRow: Partial<CheckRow> & { CheckID: string } = {
      CheckID: SERF_CHECK_ID,
      Name: SERF_CHECK_NAME,
      Status: status,
      Output: status === 'passing' ? ALIVE_OUTPUT : FAILED_OUTPUT,
    };
    this.#log.info({ member: m.name, status: m.status }, 'reconciling member into the catalog');
    const reply = await this.#server.applyLocal({
      type: 'register',
      node: {
        ID: m.meta.id ?? node?.ID,
        Node: m.name,
        Address: ip,
        Datacenter: this.#dc,
        TaggedAddresses: node?.TaggedAddresses ?? { lan: ip, lan_ipv4: ip, wan: ip, wan_ipv4: ip },
        Meta: node?.Meta ?? { 'consul-network-segment': '' },
      },
      service: server && !serviceOk ? { ID: 'consul', Service: 'consul', Port: serverPort } : undefined,
      checks: [checkRow],
    });
    if (!reply.result.ok) {
      this.#log.warn({ member: m.name, error: reply.result.error }, 'registering a member failed');
    }
  }

  async #deregister(name: string, left: boolean): Promise<void> {
    const reg = this.#server.fsm.state.registry;
    const node = reg.getNode(name);
    // The leader never deregisters itself (Consul's rule): it is leaving, or it would not lead.
    if (name.toLowerCase() === this.#server.nodeName.toLowerCase()) return;
    if (node) {
      this.#log.info({ member: name, left }, 'deregistering a member that left');
      const reply = await this.#server.applyLocal({ type: 'deregister', node: node.Node });
      if (!reply.result.ok)
        this.#log.warn({ member: name, error: reply.result.error }, 'deregistering failed');
    }
    // A server that left stays in Raft only if it could not remove itself (e.g. it was killed).
    const id = node?.ID;
    const cfg = this.#server.raft?.status().configuration.servers ?? [];
    const inRaft = cfg.find(
      (s) => (id !== undefined && s.id === id) || this.#server.names.get(s.id) === name,
    );
    if (inRaft && inRaft.id !== this.#server.nodeId) {
      this.#log.info({ server: name }, 'removing a server that left from the Raft configuration');
      await this.#server.removePeer({ id: inRaft.id }).catch((err: unknown) => {
        this.#log.warn({ err: (err as Error).message, server: name }, 'removing a departed server failed');
      });
    }
  }

  /** Nodes the catalog holds with a serfHealth check that gossip does not know: reaped members. */
  async #reconcileReaped(known: Map<string, Member>): Promise<void> {
    const reg = this.#server.fsm.state.registry;
    const serf = reg.checksInState('any').result.filter((c) => c.CheckID === SERF_CHECK_ID);
    for (const c of serf) {
      if (!this.#active) return;
      if (known.has(c.Node.toLowerCase())) continue;
      await this.#deregister(c.Node, false);
    }
  }
}
