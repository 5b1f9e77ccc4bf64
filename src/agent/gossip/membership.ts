/**
 * The gossip membership of one agent: the SWIM core (`core/`) driven by real time over the gossip
 * host (`host.ts`). This is the only place where the core meets timers and sockets:
 * - probes, acks, ping-reqs and gossip go as UDP packets (deflated when large, their piggyback
 *   spread over several packets when it still does not fit); push-pulls (full state) go over
 *   libp2p TCP, as memberlist's do, unless the cluster has a key: then they are packet exchanges
 *   too (see {@link PUSH_PULL_PACKETS}), and a join goes over TCP when that goes unanswered;
 * - a few connections are kept open to random members so that gossipsub has a mesh to spread
 *   broadcasts (user messages, state changes) over;
 * - user messages (the agent's user events) go both ways at once: over gossipsub, which is fast
 *   where its mesh reaches, and through the core (piggybacked on SWIM's packets, repaired by
 *   push-pull), which reaches every member whatever its connections, as Serf's events do;
 * - every input (a frame, a broadcast, a timer, a join, a leave) goes into the core, then
 *   {@link Membership.#flush} sends what it queued and hands its events to listeners;
 * - one timer is kept armed for the core's next deadline;
 * - a connection that drops, or a dial that fails, is passed on as a hint so the member is
 *   probed at once (a killed process is noticed in one probe timeout, not one probe round).
 */

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { type SwimConfig, swimProfile } from './core/config.ts';
import { Swim } from './core/swim.ts';
import type { GossipMessage, Member, MemberInfo, MembershipEvent } from './core/types.ts';
import { type GossipHost, type MessageVia, startGossipHost } from './host.ts';
import { loadOrCreateIdentity } from './identity.ts';
import { packetKeyFromGossipKey, pskFromGossipKey } from './key.ts';
import {
  decodeMessage,
  encodeCompact,
  encodePushPullParts,
  MAX_FRAME_BYTES,
  MAX_PACKET_MESSAGE_BYTES,
} from './wire.ts';

export type { Member, MembershipEvent } from './core/types.ts';

export interface MembershipInit {
  nodeName: string;
  nodeId: string;
  datacenter: string;
  /** IP the gossip host listens on. */
  bind: string;
  /** IP other agents reach this one at. */
  advertise: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Base64 cluster key (`encrypt`); undefined: noise-encrypted, but anyone may join. */
  encrypt: string | undefined;
  /** Keeps the libp2p identity; undefined (dev) makes a fresh one. */
  dataDir: string | undefined;
  tags: Record<string, string>;
  profile: 'lan' | 'wan' | 'local';
  /** Overrides of the profile's timings (Consul's `gossip_lan` block). */
  overrides?: Partial<SwimConfig>;
  logger: Logger;
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Consul's join error text for an address that did not answer. */
export class JoinError extends Error {
  override name = 'JoinError';
}

/** How long a join waits for the push-pull answer of one address (memberlist's TCPTimeout). */
const JOIN_TIMEOUT_MS = 10_000;
/**
 * In a cluster with a key, a push-pull is a packet exchange: the request (our state) and the
 * answer (theirs) each in at most this many sealed packets (~44 KB, ~170 members' state), over
 * TCP only when a state is larger. A push-pull over TCP costs a libp2p connection (pnet, noise,
 * yamux, identify) unless one is open: ~80 ms of CPU in a fresh process and ~35 ms at the seed.
 * - In a mass join those handshakes were the join time. A join unanswered after
 *   {@link JOIN_PACKET_WAIT_MS} (a lost packet, UDP filtered) is sent again over TCP.
 * - At idle, the periodic push-pulls to members without a connection were the most costly work
 *   left: a periodic one that goes unanswered is not retried (the next one repairs as much).
 *
 * Without a key, push-pulls go over TCP only: a forged source address would otherwise turn one
 * small packet into many to a victim.
 */
const PUSH_PULL_PACKETS = 32;
const JOIN_PACKET_WAIT_MS = 1_000;
/** After a graceful leave, how long the leave message gets to spread before the host stops. */
const LEAVE_PROPAGATE_MS = 1_000;
/**
 * Connections each agent keeps open for gossipsub (its mesh degree D). SWIM itself needs none
 * (its messages are packets); without these, broadcasts would only reach the agents that happened
 * to push-pull with each other. Each agent dials random members until it has this many peers.
 */
const BROADCAST_PEERS = 6;
/**
 * How often the broadcast peers are checked (and at most one dial started): on the protocol's own
 * timer, at most this often, so that an idle agent does not wake up for it separately.
 */
const BROADCAST_PEERS_CHECK_MS = 1_000;
/**
 * No broadcast peer is dialed while members are joining (one joined within this long), for at
 * most {@link PEERS_MAX_DEFER_MS}. A libp2p connection costs ~20 ms of CPU on each side, and in a
 * mass join those dials competed with the joins themselves while adding nothing: the seed has a
 * connection to every joiner and floods what it learns. Joins of 10 agents on 2 vCPUs (bench:gossip,
 * 4 interleaved pairs): 1.39 s mean instead of 1.59 s, with ~2.2 s of CPU in all instead of ~2.8 s.
 */
const PEERS_QUIET_MS = 3_000;
/** Churn that never stops (a join every few seconds) still gets its broadcast peers after this. */
const PEERS_MAX_DEFER_MS = 10_000;
/**
 * Connections kept at most. The seed of a mass join gets one from every joiner, and push-pull
 * partners accumulate; beyond this, random idle ones older than {@link TRIM_MIN_AGE_MS} are
 * closed (gossipsub re-forms its mesh over the rest), so a seed of a large cluster does not keep
 * a connection (keepalives, gossipsub heartbeat work, buffers) per member.
 */
const MAX_PEERS = 4 * BROADCAST_PEERS;
/** A connection this young may still be answering a join or a push-pull: never trimmed. */
const TRIM_MIN_AGE_MS = 30_000;

/** "host", "host:port", "[v6]:port" → "ip:port" (names resolved), `defaultPort` when none given. */
export async function resolveGossipAddress(addr: string, defaultPort: number): Promise<string> {
  let host = addr;
  let port = defaultPort;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr);
  if (v6) {
    host = v6[1];
    if (v6[2]) port = Number(v6[2]);
  } else if ((addr.match(/:/g) ?? []).length === 1) {
    const i = addr.lastIndexOf(':');
    host = addr.slice(0, i);
    port = Number(addr.slice(i + 1));
  }
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new JoinError(`invalid port in ${addr}`);
  if (host === '') throw new JoinError(`missing host in ${addr}`);
  if (isIP(host) === 0) {
    try {
      host = (await lookup(host)).address;
    } catch {
      throw new JoinError(`cannot resolve ${host}`);
    }
  }
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** "ip:port" / "[v6]:port" → its parts. */
export function splitAddr(addr: string): { ip: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { ip: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}

type Listener = (e: MembershipEvent) => void;

export class Membership {
  readonly #swim: Swim;
  readonly #host: GossipHost;
  readonly #log: Logger;
  readonly #membersTopic: string;
  readonly #userTopic: string;
  readonly #listeners = new Set<Listener>();
  readonly #joinWaiters = new Map<string, Set<(r: Error | number) => void>>();
  #userHandler: ((body: string) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #nextPeersCheckAt = 0;
  /** When a member last joined, and when the run of joins that it belongs to began. */
  #lastJoinAt = Number.NEGATIVE_INFINITY;
  #joinsSince = Number.NEGATIVE_INFINITY;
  #timerAt = Number.POSITIVE_INFINITY;
  /** Whether packets are sealed under a cluster key (joins may then go as packets). */
  readonly #sealed: boolean;
  /** Addresses whose join went unanswered as packets: the next try goes over TCP. */
  readonly #joinOverTcp = new Set<string>();
  /** The push-pull request being received came as a packet: its answer goes back as packets. */
  #packetAsk: { from: string; seq: number } | undefined;
  #stopped = false;
  #left = false;
  readonly counters = { malformed: 0, userMalformed: 0 };

  private constructor(
    swim: Swim,
    host: GossipHost,
    topics: { members: string; user: string },
    logger: Logger,
    sealed: boolean,
  ) {
    this.#sealed = sealed;
    this.#swim = swim;
    this.#host = host;
    this.#membersTopic = topics.members;
    this.#userTopic = topics.user;
    this.#log = logger;
  }

  /** Starts the host (binding the gossip port) and the protocol; joins nobody yet. */
  static async start(init: MembershipInit): Promise<Membership> {
    const log = init.logger.child({ component: 'gossip' });
    const topics = {
      members: `meshd/${init.datacenter}/members/1`,
      user: `meshd/${init.datacenter}/events/1`,
    };
    const host = await startGossipHost({
      bind: init.bind,
      port: init.port,
      advertise: init.advertise,
      psk: init.encrypt === undefined ? undefined : pskFromGossipKey(init.encrypt),
      packetKey: init.encrypt === undefined ? undefined : packetKeyFromGossipKey(init.encrypt),
      privateKey: await loadOrCreateIdentity(init.dataDir),
      maxFrameBytes: MAX_FRAME_BYTES,
      logger: log,
      topics: [topics.members, topics.user],
    });
    const self: MemberInfo = { name: init.nodeName, id: init.nodeId, addr: host.addr, meta: init.tags };
    const swim = new Swim({
      self,
      config: { ...swimProfile(init.profile), ...init.overrides },
      random: Math.random,
      now: performance.now(),
      // Connected-first push-pulls save connections; as packets (with a key) they need none.
      connected: init.encrypt === undefined ? (addr) => host.isConnected(addr) : undefined,
    });
    const m = new Membership(swim, host, topics, log, init.encrypt !== undefined);
    host.onMessage((bytes, via) => m.#receive(bytes, via));
    host.onTopicMessage((topic, bytes) => {
      if (topic === topics.members) m.#receive(bytes, undefined);
      else if (topic === topics.user) m.#receiveUser(bytes);
    });
    host.onUnreachable((addr) => m.#unreachable(addr));
    m.#flush();
    log.info({ addr: host.addr, peerId: host.peerId }, 'gossip started');
    return m;
  }

  /** This agent's gossip address, "ip:port". */
  get addr(): string {
    return this.#host.addr;
  }

  get left(): boolean {
    return this.#left;
  }

  members(): Member[] {
    return this.#swim.members();
  }

  self(): Member {
    return this.#swim.self();
  }

  stats(): Record<string, number> {
    return {
      ...this.#swim.stats(),
      ...this.#host.stats(),
      'dropped.undecodable': this.counters.malformed,
      'dropped.user_undecodable': this.counters.userMalformed,
    };
  }

  /** Listens to membership changes; returns the unsubscribe function. */
  on(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Sends a user message to every member, at most `MAX_USER_MESSAGE_LENGTH` (core/types.ts) long;
   * a copy of one sent or heard lately is not sent again. Delivery is best effort.
   */
  sendUserMessage(body: string): void {
    if (this.#stopped) return;
    if (!this.#swim.sendUser(body, performance.now())) return;
    this.#host.publish(this.#userTopic, encoder.encode(body));
    this.#flush();
  }

  /** Receives every user message of another member, once (the first copy to arrive by any path). */
  onUserMessage(handler: (body: string) => void): void {
    this.#userHandler = handler;
  }

  /**
   * Joins through each address (push-pull with it); resolves with how many answered, as Consul's
   * join does. Rejects with every address's error when none did.
   */
  async join(addrs: string[], defaultPort: number): Promise<number> {
    const errors: string[] = [];
    const targets: string[] = [];
    for (const a of addrs) {
      try {
        targets.push(await resolveGossipAddress(a, defaultPort));
      } catch (err) {
        errors.push(`Failed to resolve ${a}: ${(err as Error).message}`);
      }
    }
    const answers = await Promise.all(
      targets.map(async (addr) => {
        if (addr === this.addr) return 1; // joining oneself is a no-op success, as memberlist's
        const r = await this.#awaitJoin(addr);
        if (r instanceof Error) {
          errors.push(`Failed to join ${addr}: ${r.message}`);
          return 0;
        }
        return 1;
      }),
    );
    const joined = answers.reduce<number>((a, b) => a + b, 0);
    if (joined === 0 && addrs.length > 0) {
      throw new JoinError(
        `${errors.length} error${errors.length === 1 ? '' : 's'} occurred:\n\t* ${errors.join('\n\t* ')}\n\n`,
      );
    }
    return joined;
  }

  /**
   * `-retry-join`: tries every `intervalMs` until one address answers or `signal` aborts; then the
   * protocol itself keeps the agent in the cluster.
   */
  async retryJoin(
    addrs: string[],
    defaultPort: number,
    intervalMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    for (let attempt = 1; !signal.aborted && !this.#stopped; attempt++) {
      try {
        const n = await this.join(addrs, defaultPort);
        this.#log.info({ joined: n, attempt }, 'joined the cluster');
        return;
      } catch (err) {
        this.#log.warn(
          { err: (err as Error).message, attempt, retryInMs: intervalMs },
          'join failed; retrying',
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, intervalMs);
        signal.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
    }
  }

  /** Serf's force-leave: a failed member becomes left (prune: forgotten now). */
  forceLeave(name: string, prune: boolean): boolean {
    const done = this.#swim.forceLeave(name, performance.now(), prune);
    this.#flush();
    return done;
  }

  /** Graceful leave: tells the cluster, gives the message time to spread. The host keeps running. */
  async leave(): Promise<void> {
    if (this.#left || this.#stopped) return;
    this.#left = true;
    this.#swim.leave(performance.now());
    this.#flush();
    const others = this.members().filter((m) => m.name !== this.self().name && m.status === 'alive');
    if (others.length > 0) await new Promise((r) => setTimeout(r, LEAVE_PROPAGATE_MS));
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const waiters of this.#joinWaiters.values()) for (const w of waiters) w(new Error('agent stopping'));
    this.#joinWaiters.clear();
    await this.#host.stop();
  }

  #awaitJoin(addr: string): Promise<Error | number> {
    return new Promise((resolve) => {
      let waiters = this.#joinWaiters.get(addr);
      if (!waiters) {
        waiters = new Set();
        this.#joinWaiters.set(addr, waiters);
      }
      const timer = setTimeout(() => done(new Error('i/o timeout')), JOIN_TIMEOUT_MS);
      const retry = this.#sealed
        ? setTimeout(() => {
            if (this.#stopped) return;
            this.#joinOverTcp.add(addr);
            this.#swim.join([addr], performance.now());
            this.#flush();
          }, JOIN_PACKET_WAIT_MS)
        : undefined;
      const done = (r: Error | number) => {
        clearTimeout(timer);
        clearTimeout(retry);
        waiters.delete(done);
        if (waiters.size === 0) {
          this.#joinWaiters.delete(addr);
          this.#joinOverTcp.delete(addr);
        }
        resolve(r);
      };
      waiters.add(done);
      this.#swim.join([addr], performance.now());
      this.#flush();
    });
  }

  /** `via`: how a direct frame or packet came; undefined for a broadcast (see Swim.receive). */
  #receive(bytes: Uint8Array, via: MessageVia | undefined): void {
    if (this.#stopped) return;
    let message: ReturnType<typeof decodeMessage>;
    try {
      message = decodeMessage(bytes, via?.kind === 'packet' ? MAX_PACKET_MESSAGE_BYTES : MAX_FRAME_BYTES);
    } catch (err) {
      this.counters.malformed++;
      this.#log.debug({ err: (err as Error).message }, 'dropped an undecodable gossip frame');
      return;
    }
    if (via?.kind === 'stream') this.#host.associate(message.from.addr, via.peer);
    if (via?.kind === 'packet' && message.type === 'push-pull' && !message.reply)
      this.#packetAsk = { from: message.from.addr, seq: message.seq };
    this.#swim.receive(message, performance.now(), via !== undefined);
    this.#flush();
    this.#packetAsk = undefined;
  }

  #receiveUser(bytes: Uint8Array): void {
    if (this.#stopped) return;
    let body: string;
    try {
      body = utf8.decode(bytes);
    } catch {
      this.counters.userMalformed++;
      return;
    }
    this.#swim.receiveUser(body, performance.now());
    this.#flush();
  }

  #unreachable(addr: string): void {
    if (this.#stopped) return;
    const waiters = this.#joinWaiters.get(addr);
    if (waiters)
      for (const w of [...waiters]) w(new Error('unreachable: the connection failed or timed out'));
    this.#swim.hintUnreachable(addr, performance.now());
    this.#flush();
  }

  /**
   * Dials one random live member when this agent has fewer than {@link BROADCAST_PEERS} peers,
   * unless members are joining (see {@link PEERS_QUIET_MS}); trims connections beyond {@link MAX_PEERS}.
   */
  #keepBroadcastPeers(): void {
    if (this.#stopped || this.#left) return;
    const peers = this.#host.connectedPeers();
    if (peers > MAX_PEERS) this.#host.trimConnections(MAX_PEERS, TRIM_MIN_AGE_MS);
    if (peers >= BROADCAST_PEERS) return;
    const now = performance.now();
    if (now - this.#lastJoinAt < PEERS_QUIET_MS && now - this.#joinsSince < PEERS_MAX_DEFER_MS) return;
    const self = this.#swim.self().name;
    const candidates = this.#swim
      .members()
      .filter((m) => m.name !== self && m.status === 'alive' && !this.#host.isConnected(m.addr));
    if (candidates.length === 0) return;
    this.#host.connect(candidates[Math.floor(Math.random() * candidates.length)].addr);
  }

  #noteJoin(now: number): void {
    if (now - this.#lastJoinAt >= PEERS_QUIET_MS) this.#joinsSince = now;
    this.#lastJoinAt = now;
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    if (this.#stopped) return;
    const now = performance.now();
    this.#swim.tick(now);
    if (now >= this.#nextPeersCheckAt) {
      this.#nextPeersCheckAt = now + BROADCAST_PEERS_CHECK_MS;
      this.#keepBroadcastPeers();
    }
    this.#flush();
  }

  /**
   * A push-pull goes as packets in a cluster with a key (see {@link PUSH_PULL_PACKETS}): a
   * request unless it is a join whose earlier try went unanswered, an answer when its request
   * came as packets. Otherwise, or when the state does not fit, over TCP as memberlist's.
   */
  #sendPushPull(to: string, m: Extract<GossipMessage, { type: 'push-pull' }>): void {
    if (this.#sealed) {
      const asked = this.#packetAsk;
      const asPackets = m.reply
        ? asked?.from === to && asked.seq === m.seq
        : !(m.join && this.#joinOverTcp.has(to));
      if (asPackets && this.#sendPushPullPackets(to, m)) return;
    }
    this.#host.send(to, encodeCompact(m));
  }

  /** False, sending nothing, when the state takes more than {@link PUSH_PULL_PACKETS} packets. */
  #sendPushPullPackets(to: string, m: Extract<GossipMessage, { type: 'push-pull' }>): boolean {
    // The piggybacked updates go on packets of their own, so that the state gets whole parts.
    const { updates, user, ...exchange } = m;
    const parts = encodePushPullParts(
      { ...exchange, updates: [] },
      this.#host.maxPacketPayload,
      PUSH_PULL_PACKETS,
    );
    if (!parts) return false;
    for (const p of parts) this.#host.sendPacket(to, p);
    if (updates.length > 0 || user)
      this.#sendPacked(to, { type: 'gossip', from: m.from, updates, ...(user && { user }) });
    return true;
  }

  /**
   * Sends a message as packets: one when it fits (deflated, see wire.ts), else with its piggybacked
   * updates and user messages halved onto gossip messages of their own until each fits. Only what
   * cannot be split (one update or user message too large for a packet on its own) goes over TCP.
   */
  #sendPacked(to: string, m: GossipMessage): void {
    const bytes = encodeCompact(m);
    if (this.#host.sendPacket(to, bytes)) return;
    const riders = [...m.updates.map((u) => ({ u })), ...(m.user ?? []).map((b) => ({ b }))];
    // Nothing to move off, or a gossip message (nothing but its riders) with one rider: as is.
    if (riders.length === 0 || (m.type === 'gossip' && riders.length === 1)) {
      this.#host.send(to, bytes);
      return;
    }
    const keep = Math.floor(riders.length / 2);
    const carrying = (rs: typeof riders) => {
      const updates = rs.flatMap((r) => ('u' in r ? [r.u] : []));
      const user = rs.flatMap((r) => ('b' in r ? [r.b] : []));
      return { updates, ...(user.length > 0 && { user }) };
    };
    const { user: _, ...bare } = m;
    this.#sendPacked(to, { ...bare, ...carrying(riders.slice(0, keep)) } as GossipMessage);
    this.#sendPacked(to, { type: 'gossip', from: m.from, ...carrying(riders.slice(keep)) });
  }

  /** Sends what the core queued, delivers its events, re-arms the timer for its next deadline. */
  #flush(): void {
    if (this.#stopped) return;
    const { messages, broadcasts, events, user } = this.#swim.drain();
    for (const m of messages) {
      if (m.message.type === 'push-pull') {
        this.#sendPushPull(m.to, m.message);
        continue;
      }
      this.#sendPacked(m.to, m.message);
    }
    for (const b of broadcasts) this.#host.publish(this.#membersTopic, encodeCompact(b));
    for (const e of events) {
      if (e.type === 'join') this.#noteJoin(performance.now());
      if (e.type === 'join-ack') {
        const waiters = this.#joinWaiters.get(e.addr);
        if (waiters) for (const w of [...waiters]) w(e.members);
        continue;
      }
      if (e.type === 'conflict') {
        this.#log.error(
          { name: e.other.name, existing: e.existing.id, other: e.other.id },
          'member name conflict: the older member keeps the name',
        );
      } else {
        this.#log.info(
          { member: e.member.name, addr: e.member.addr, status: e.member.status },
          `member ${e.type}`,
        );
      }
      for (const l of this.#listeners) {
        try {
          l(e);
        } catch (err) {
          this.#log.error({ err }, 'membership listener failed');
        }
      }
    }
    for (const body of user) {
      try {
        this.#userHandler?.(body);
      } catch (err) {
        this.#log.error({ err }, 'user message handler failed');
      }
    }
    // Re-armed when the deadline moves later too (an ack that ends a probe before its timeout):
    // a timer left for the old deadline would wake an idle agent for nothing once a second.
    const at = this.#swim.nextDeadline();
    if (at !== this.#timerAt) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timerAt = at;
      // Node fires a timer up to 1 ms early (its clock is in whole ms): one more ms avoids a wake-up
      // in which the core finds nothing due yet and asks for another.
      this.#timer = setTimeout(() => this.#tick(), Math.max(0, Math.ceil(at - performance.now()) + 1));
      this.#timer.unref();
    }
  }
}
