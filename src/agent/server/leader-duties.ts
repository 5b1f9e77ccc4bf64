/**
 * What only the leader does, started when this server wins an election and stopped when it loses
 * leadership (Consul's `leaderLoop`):
 * - session TTL timers: a session not renewed within 2×TTL (Consul's multiplier) is destroyed
 *   through Raft; a new leader re-arms every TTL session at its full 2×TTL, as Consul does;
 * - KV tombstone reaping: tombstones older than {@link TOMBSTONE_TTL_MS} are dropped through Raft;
 * - gossip reconciliation ({@link MemberReconciler}): members into the catalog with `serfHealth`;
 * - autopilot: server health from Raft progress, and removal of servers the leader has not heard
 *   from for `deadServerAfterMs` when `cleanup_dead_servers` is on, never more than leaves a
 *   quorum of the configuration (Consul removes failed servers only while fewer than half failed).
 */

import type { Logger } from 'pino';
import { formatGoDuration, parseGoDuration } from '../../api/wire/duration.ts';
import type { CatalogCommand, CommandResult, SessionRow } from '../../catalog/types.ts';
import type { RaftNode } from '../../raft/driver.ts';
import type { AutopilotHealthReply, AutopilotServerHealth } from '../backend.ts';
import type { MemberReconciler } from './reconcile.ts';
import type { CatalogServer } from './server.ts';

/** Consul's `TombstoneTTL` default. */
export const TOMBSTONE_TTL_MS = 15 * 60_000;
const DUTY_INTERVAL_MS = 1_000;
/** Consul's `LastContactThreshold` default: a server silent for longer is unhealthy. */
const LAST_CONTACT_THRESHOLD_MS = 200;

/** A session's TTL string ("10s", "1.5m") in ms; 0 for '' or anything unparsable (no timer). */
export function sessionTtlMs(ttl: string): number {
  if (ttl === '') return 0;
  try {
    return parseGoDuration(ttl);
  } catch {
    return 0;
  }
}

export interface LeaderDutiesInit {
  server: CatalogServer;
  raft: RaftNode<CommandResult>;
  logger: Logger;
  now: () => number;
  autopilot: { cleanupDeadServers: boolean; deadServerAfterMs: number };
  /** Gossip members into the catalog (absent without gossip, e.g. in unit tests). */
  reconciler?: MemberReconciler;
}

export class LeaderDuties {
  readonly #server: CatalogServer;
  readonly #raft: RaftNode<CommandResult>;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #autopilot: LeaderDutiesInit['autopilot'];
  readonly #reconciler: MemberReconciler | undefined;
  readonly #ttlTimers = new Map<string, NodeJS.Timeout>();
  /** (time, index) marks: tombstones up to `index` may go once `time` is older than the TTL. */
  readonly #reapMarks: { time: number; index: number }[] = [];
  /** Raft id → last time the leader saw it active; and when it became healthy. */
  readonly #lastSeen = new Map<string, number>();
  readonly #stableSince = new Map<string, number>();
  #interval: NodeJS.Timeout | undefined;
  #leading = false;
  #generation = 0;
  readonly #off: () => void;

  constructor(init: LeaderDutiesInit) {
    this.#server = init.server;
    this.#raft = init.raft;
    this.#log = init.logger.child({ component: 'leader' });
    this.#now = init.now;
    this.#autopilot = init.autopilot;
    this.#reconciler = init.reconciler;
    this.#off = this.#raft.on('leader:changed', (e) => {
      if (e.detail.leader === this.#raft.id) void this.#becomeLeader();
      else this.#stepDown();
    });
    if (this.#raft.status().role === 'leader') void this.#becomeLeader();
  }

  /** Called on the leader after each successful write it proposed. */
  afterWrite(cmd: CatalogCommand): void {
    if (!this.#leading) return;
    if (cmd.type === 'session-create' && cmd.session.TTL !== '') this.#arm(cmd.session.ID, cmd.session.TTL);
    if (cmd.type === 'session-destroy') this.#disarm(cmd.id);
  }

  renewSession(row: SessionRow): void {
    if (row.TTL !== '') this.#arm(row.ID, row.TTL);
  }

  autopilotHealth(): AutopilotHealthReply {
    const st = this.#raft.status();
    const now = this.#now();
    const servers: AutopilotServerHealth[] = st.configuration.servers.map((s) => {
      const self = s.id === this.#raft.id;
      const pr = st.progress.find((p) => p.id === s.id);
      const lastContactMs = self ? 0 : now - (this.#lastSeen.get(s.id) ?? 0);
      const healthy =
        self || (pr !== undefined && lastContactMs <= LAST_CONTACT_THRESHOLD_MS + DUTY_INTERVAL_MS);
      return {
        ID: s.id,
        Name: this.#server.names.get(s.id) ?? s.id,
        Address: s.address,
        SerfStatus: healthy ? 'alive' : 'failed',
        Version: '',
        Leader: self,
        LastContact: formatGoDuration(Math.max(0, Math.round(lastContactMs))),
        LastTerm: st.term,
        LastIndex: self ? st.lastIndex : (pr?.match ?? 0),
        Healthy: healthy,
        Voter: s.suffrage === 'voter',
        StableSince: new Date(this.#stableSince.get(s.id) ?? now).toISOString(),
      };
    });
    const healthyVoters = servers.filter((s) => s.Voter && s.Healthy).length;
    const voters = servers.filter((s) => s.Voter).length;
    const quorum = Math.floor(voters / 2) + 1;
    return {
      Healthy: servers.every((s) => s.Healthy),
      FailureTolerance: Math.max(0, healthyVoters - quorum),
      Servers: servers.sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0)),
    };
  }

  stop(): void {
    this.#off();
    this.#stepDown();
  }

  async #becomeLeader(): Promise<void> {
    if (this.#leading) return;
    this.#leading = true;
    const generation = ++this.#generation;
    try {
      // Everything committed before our term must be applied before we judge sessions.
      await this.#raft.readIndex();
    } catch {
      return;
    }
    if (generation !== this.#generation || !this.#leading) return;
    const now = this.#now();
    for (const s of this.#server.fsm.state.sessions.withTtl()) this.#arm(s.ID, s.TTL);
    for (const s of this.#raft.status().configuration.servers) {
      this.#lastSeen.set(s.id, now);
      this.#stableSince.set(s.id, now);
    }
    this.#interval = setInterval(() => this.#tick(), DUTY_INTERVAL_MS);
    this.#interval.unref();
    this.#reconciler?.start();
    this.#log.info('leadership duties started');
  }

  #stepDown(): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#generation++;
    this.#reconciler?.stop();
    for (const t of this.#ttlTimers.values()) clearTimeout(t);
    this.#ttlTimers.clear();
    if (this.#interval) clearInterval(this.#interval);
    this.#interval = undefined;
    this.#reapMarks.length = 0;
  }

  #arm(id: string, ttl: string): void {
    this.#disarm(id);
    const ms = sessionTtlMs(ttl) * 2;
    if (ms <= 0) return;
    const timer = setTimeout(() => {
      this.#ttlTimers.delete(id);
      this.#log.debug({ session: id }, 'session TTL expired');
      this.#server.applyLocal({ type: 'session-destroy', id }).catch((err: unknown) => {
        this.#log.warn({ err, session: id }, 'destroying an expired session failed');
      });
    }, ms);
    timer.unref();
    this.#ttlTimers.set(id, timer);
  }

  #disarm(id: string): void {
    const t = this.#ttlTimers.get(id);
    if (t) clearTimeout(t);
    this.#ttlTimers.delete(id);
  }

  #tick(): void {
    if (!this.#leading) return;
    const now = this.#now();
    this.#reapTombstones(now);
    this.#watchServers(now);
  }

  #reapTombstones(now: number): void {
    const state = this.#server.fsm.state;
    if (state.kv.tombstoneCount === 0) {
      this.#reapMarks.length = 0;
      return;
    }
    const last = this.#reapMarks.at(-1);
    if (!last || now - last.time >= 30_000) this.#reapMarks.push({ time: now, index: state.lastIndex });
    let upTo = 0;
    while (this.#reapMarks.length > 0 && now - this.#reapMarks[0].time >= TOMBSTONE_TTL_MS) {
      upTo = (this.#reapMarks.shift() as { index: number }).index;
    }
    if (upTo > 0) {
      this.#server.applyLocal({ type: 'tombstone-reap', upToIndex: upTo }).catch((err: unknown) => {
        this.#log.warn({ err }, 'reaping KV tombstones failed');
      });
    }
  }

  #watchServers(now: number): void {
    const st = this.#raft.status();
    for (const p of st.progress) {
      if (p.id === this.#raft.id) continue;
      if (p.recentActive) {
        if ((this.#lastSeen.get(p.id) ?? 0) < now - 2 * DUTY_INTERVAL_MS) this.#stableSince.set(p.id, now);
        this.#lastSeen.set(p.id, now);
      } else if (!this.#lastSeen.has(p.id)) this.#lastSeen.set(p.id, now);
    }
    if (!this.#autopilot.cleanupDeadServers || st.configuration.servers.length <= 1) return;
    const dead = st.configuration.servers.filter(
      (s) =>
        s.id !== this.#raft.id && now - (this.#lastSeen.get(s.id) ?? now) > this.#autopilot.deadServerAfterMs,
    );
    if (dead.length === 0) return;
    // Consul's rule: only while fewer than half of the servers are failed.
    if (dead.length * 2 >= st.configuration.servers.length) {
      this.#log.warn({ dead: dead.map((s) => s.id) }, 'too many dead servers to remove safely');
      return;
    }
    const victim = dead[0];
    this.#log.info({ server: victim.id, address: victim.address }, 'autopilot: removing dead server');
    this.#lastSeen.delete(victim.id);
    this.#raft.removeServer(victim.id).catch((err: unknown) => {
      this.#log.warn({ err, server: victim.id }, 'autopilot could not remove a dead server');
    });
  }
}
