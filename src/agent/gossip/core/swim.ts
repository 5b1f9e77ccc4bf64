/**
 * SWIM membership with memberlist's Lifeguard extensions, as an I/O-free state machine: inputs are
 * calls (`receive`, `tick`, `join`, ...) with the current time, outputs are drained (`drain`):
 * messages to send, broadcasts for gossipsub, and membership events. No timers, sockets, clocks or
 * randomness of its own, so it runs unchanged in the simulator.
 *
 * - Probing: one member per probe interval, round-robin over a shuffled list; a direct ping, then
 *   `indirectChecks` ping-reqs when it times out; no ack by the end of the interval → suspect.
 * - Suspicion: Lifeguard's timeout (suspicion.ts) shrinks as distinct members confirm it; when it
 *   fires the member is failed. A member that hears itself suspected or declared failed refutes
 *   with a higher incarnation.
 * - Dissemination: updates ride on every message (transmit-limited queue), a gossip round pushes
 *   them to a few random members, a periodic push-pull exchanges full state, and every change this
 *   member originates is also handed out as a broadcast (gossipsub in the agent).
 * - User messages (Serf's user events; opaque bodies): every member that hears one for the first
 *   time queues it for piggybacking like an update (Serf rebroadcasts them the same way) and keeps
 *   it for a while to hand out in push-pulls, which repair what a member missed. One heard only in
 *   a push-pull is delivered if the sender first heard it after we joined: a joiner is not replayed
 *   the past, as in Consul.
 * - Lifecycle (Serf's): failed members are retried (push-pull) every reconnect interval and reaped
 *   after the reconnect timeout; left members are reaped after the tombstone timeout.
 * - Conflicts: an alive for a known name with another node ID is refused while the known member is
 *   alive or suspect: the older member keeps the name.
 */

import { Awareness } from './awareness.ts';
import { BroadcastQueue } from './broadcast-queue.ts';
import { pushPullInterval, retransmitLimit, type SwimConfig } from './config.ts';
import { RandomSet } from './random-set.ts';
import { Suspicion, suspicionBounds } from './suspicion.ts';
import {
  type GossipMessage,
  MAX_USER_MESSAGE_LENGTH,
  type Member,
  type MemberInfo,
  type MembershipEvent,
  type Outgoing,
  type RecentUserMessage,
  type Sender,
  type Update,
} from './types.ts';

interface Probe {
  seq: number;
  target: string;
  timeoutAt: number;
  endAt: number;
  indirect: boolean;
  nacksExpected: number;
  nacks: number;
  /** Started out of turn by a transport hint (does not pace the round-robin). */
  hinted: boolean;
}

/** A ping we send on behalf of another member's ping-req. */
interface Relay {
  requester: string;
  requesterSeq: number;
  nackAt: number;
}

/**
 * The share of periodic push-pulls that go to a member this agent already holds a connection to,
 * when it holds one (and the host says which it holds: over packets, in a cluster with a key, it
 * does not, and every push-pull goes to any live member). The rest go to any live member, as
 * memberlist's do, so the exchange still reaches beyond the few connections an agent keeps. Over
 * TCP a push-pull to an unconnected member costs a new libp2p connection (a noise handshake,
 * ~10–40 ms of CPU on each side): at N=50 they were a fifth of an idle agent's CPU (6.4 → 5.2
 * ms/s without push-pulls).
 */
const PUSH_PULL_CONNECTED_SHARE = 0.75;
/** Least time between two push-pulls started because an unknown member spoke to us. */
const STRANGER_PUSH_PULL_MS = 5_000;
/**
 * How long an unknown member that spoke to us has to become known (through the broadcast of its
 * join) before we push-pull with it. In a mass join most strangers are members that joined through
 * the seed a moment after us, and the seed's broadcast is on its way: a push-pull (a new libp2p
 * connection, ~40 ms of CPU) would only race it.
 */
const STRANGER_GRACE_MS = 2_000;
/** Strangers waiting out their grace at once; more are ignored until one is done. */
const MAX_PENDING_STRANGERS = 16;
/** User messages remembered to tell a new one from a copy (longer than they stay recent). */
const USER_SEEN = 1_024;
/** User messages handed out in push-pulls: at most this many, heard at most this long ago. */
const USER_RECENT = 64;
const USER_RECENT_MS = 5 * 60_000;

export class Swim {
  readonly #cfg: SwimConfig;
  readonly #random: () => number;
  readonly #selfName: string;
  readonly #members = new Map<string, Member>();
  readonly #suspicions = new Map<string, Suspicion>();
  readonly #queue = new BroadcastQueue<Update>((u) => u.name);
  readonly #userQueue = new BroadcastQueue<string>((body) => body);
  /** User messages heard, oldest first (bounded: {@link USER_SEEN}). */
  readonly #userSeen = new Set<string>();
  /** The last user messages heard, in the order heard, and when first heard (for push-pulls). */
  #userRecent: { body: string; at: number }[] = [];
  /** When this member first knew another: user messages heard before are not its to deliver. */
  #clusterSince: number | undefined;
  readonly #awareness: Awareness;
  readonly #probes = new Map<number, Probe>();
  readonly #relays = new Map<number, Relay>();
  readonly #pendingJoins = new Map<number, string>();
  readonly #stats: Record<string, number> = {};
  /** Every member but self, for O(1) random picks. */
  readonly #others = new RandomSet();
  readonly #connected: ((addr: string) => boolean) | undefined;
  /** Failed and left members (what reaping and reconnects look at). */
  readonly #gone = new Set<string>();
  #live = 1;
  #liveDirty = false;
  #probeList: string[] = [];
  #probeIndex = 0;
  #seq = 0;
  #leaving = false;
  #nextProbeAt: number;
  #nextGossipAt: number;
  #nextStrangerPushPullAt = 0;
  /** Unknown members that spoke to us: name → their address and the end of their grace. */
  readonly #strangers = new Map<string, { addr: string; at: number }>();
  #nextPushPullAt: number;
  #nextReconnectAt: number;
  /**
   * When the first failed or left member is due to be reaped (see {@link Swim.#reapDueAt}): a
   * deadline, not a check every second. An idle agent's every wake-up costs CPU, and a failed
   * member is kept 72 h.
   */
  #reapAt = Number.POSITIVE_INFINITY;
  #reapAtStale = false;
  #out: Outgoing[] = [];
  #broadcasts: GossipMessage[] = [];
  #events: MembershipEvent[] = [];
  /** User messages heard for the first time, by any path, since the last drain. */
  #userHeard: string[] = [];

  constructor(init: {
    self: MemberInfo;
    config: SwimConfig;
    random: () => number;
    now: number;
    /** Whether this agent holds a connection to the member at `addr` (push-pulls prefer those). */
    connected?: (addr: string) => boolean;
  }) {
    this.#cfg = init.config;
    this.#random = init.random;
    this.#connected = init.connected;
    this.#selfName = init.self.name;
    this.#awareness = new Awareness(init.config.awarenessMaxMultiplier);
    const now = init.now;
    this.#members.set(init.self.name, {
      ...init.self,
      meta: { ...init.self.meta },
      status: 'alive',
      incarnation: 1,
      statusSince: now,
    });
    // Stagger the periodic work so agents started together do not act in lockstep.
    this.#nextProbeAt = now + this.#random() * this.#cfg.probeIntervalMs;
    this.#nextGossipAt = now + this.#random() * this.#cfg.gossipIntervalMs;
    this.#nextPushPullAt = now + this.#cfg.pushPullIntervalMs * (0.5 + this.#random());
    this.#nextReconnectAt = now + this.#cfg.reconnectIntervalMs;
  }

  // ---- queries ----

  self(): Member {
    return { ...(this.#members.get(this.#selfName) as Member) };
  }

  members(): Member[] {
    return [...this.#members.values()].map((m) => ({ ...m }));
  }

  stats(): Record<string, number> {
    return { ...this.#stats, awareness: this.#awareness.score, members: this.#members.size };
  }

  /** Members that count for the timeouts' log(N) scaling: the ones not known to be gone. */
  #liveCount(): number {
    if (this.#liveDirty) {
      this.#liveDirty = false;
      this.#live = 0;
      for (const m of this.#members.values())
        if (m.status === 'alive' || m.status === 'suspect') this.#live++;
    }
    return this.#live;
  }

  #add(m: Member): void {
    this.#members.set(m.name, m);
    this.#others.add(m.name);
    this.#liveDirty = true;
  }

  #remove(name: string): void {
    this.#members.delete(name);
    this.#gone.delete(name);
    this.#reapAtStale = true;
    this.#suspicions.delete(name);
    this.#others.delete(name);
    this.#liveDirty = true;
  }

  #count(key: string): void {
    this.#stats[key] = (this.#stats[key] ?? 0) + 1;
  }

  // ---- commands ----

  join(addrs: string[], now: number): void {
    for (const addr of addrs) {
      const seq = ++this.#seq;
      this.#pendingJoins.set(seq, addr);
      this.#send(addr, { type: 'push-pull', seq, join: true, reply: false, state: this.#fullState() }, now);
    }
  }

  leave(now: number): void {
    if (this.#leaving) return;
    this.#leaving = true;
    const me = this.#members.get(this.#selfName) as Member;
    me.incarnation++;
    this.#setStatus(me, 'left', now);
    this.#originate({ kind: 'left', name: me.name, inc: me.incarnation });
  }

  forceLeave(name: string, now: number, prune: boolean): boolean {
    const m = this.#findMember(name);
    if (!m) return false;
    if (m.name === this.#selfName) return false;
    if (m.status === 'suspect' || m.status === 'failed') {
      this.#suspicions.delete(m.name);
      this.#setStatus(m, 'left', now);
      this.#emit('leave', m);
      this.#originate({ kind: 'left', name: m.name, inc: m.incarnation });
    }
    if (prune && m.status === 'left') {
      this.#remove(m.name);
      this.#emit('reap', m);
    }
    return true;
  }

  hintUnreachable(addr: string, now: number): void {
    if (this.#leaving) return;
    let target: Member | undefined;
    for (const m of this.#members.values()) {
      if (m.addr === addr && m.name !== this.#selfName) target = m;
    }
    if (target?.status !== 'alive') return;
    this.#count('hints');
    for (const p of this.#probes.values()) {
      if (p.target !== target.name) continue;
      // Already probing it: skip the rest of the direct timeout.
      if (!p.indirect) this.#goIndirect(p, now);
      return;
    }
    this.#startProbe(target, now, true);
  }

  /**
   * A user message from this member to all: queued for piggybacking and push-pulls (the caller
   * also broadcasts it). False, and nothing sent, when it is a copy of one heard or too long.
   */
  sendUser(body: string, now: number): boolean {
    return this.#hearUser(body, now, false);
  }

  /** A user message that arrived outside the core (a broadcast); delivered if new. */
  receiveUser(body: string, now: number): boolean {
    return this.#hearUser(body, now, true);
  }

  /**
   * One message in. `direct`: it came straight from its sender (a packet or a frame); false for a
   * broadcast (gossipsub), which may have been relayed by anyone. A direct message from a member
   * we do not know means we may have missed its join: unless it becomes known within a grace
   * period, a push-pull with it follows.
   */
  receive(message: GossipMessage, now: number, direct = true): void {
    if (message.from.name === this.#selfName) {
      this.#count('dropped.from_self');
      return;
    }
    for (const u of message.updates) this.#apply(u, now, false);
    if (message.user) for (const body of message.user) this.#hearUser(body, now, true);
    if (direct && message.type !== 'push-pull' && !this.#members.has(message.from.name)) {
      const { name, addr } = message.from;
      if (!this.#strangers.has(name) && this.#strangers.size < MAX_PENDING_STRANGERS) {
        this.#strangers.set(name, { addr, at: now + STRANGER_GRACE_MS });
      }
    }
    switch (message.type) {
      case 'ping':
        if (message.target !== this.#selfName) {
          this.#count('dropped.wrong_target');
          return;
        }
        this.#send(message.from.addr, { type: 'ack', seq: message.seq }, now);
        return;
      case 'ack':
        this.#onAck(message.seq, now);
        return;
      case 'nack': {
        const p = this.#probes.get(message.seq);
        if (p) p.nacks++;
        return;
      }
      case 'ping-req': {
        this.#count('relays');
        const seq = ++this.#seq;
        this.#relays.set(seq, {
          requester: message.from.addr,
          requesterSeq: message.seq,
          nackAt: now + this.#cfg.probeTimeoutMs * 0.8,
        });
        this.#send(message.targetAddr, { type: 'ping', seq, target: message.target }, now);
        return;
      }
      case 'push-pull':
        this.#onPushPull(message, now);
        return;
      case 'gossip':
        return;
    }
  }

  tick(now: number): void {
    this.#meetStrangers(now);
    this.#expireProbes(now);
    this.#expireRelays(now);
    this.#expireSuspicions(now);
    if (now >= this.#nextProbeAt) {
      this.#nextProbeAt = now + this.#awareness.scale(this.#cfg.probeIntervalMs);
      if (!this.#leaving) this.#probeNext(now);
    }
    if (now >= this.#nextGossipAt) {
      this.#nextGossipAt = now + this.#cfg.gossipIntervalMs;
      this.#gossip(now);
    }
    if (now >= this.#nextPushPullAt) {
      this.#nextPushPullAt = now + pushPullInterval(this.#cfg.pushPullIntervalMs, this.#liveCount());
      if (!this.#leaving) this.#pushPullRandom(now);
    }
    if (now >= this.#nextReconnectAt) {
      this.#nextReconnectAt = now + this.#cfg.reconnectIntervalMs;
      if (!this.#leaving) this.#reconnect(now);
    }
    if (now >= this.#reapDueAt()) this.#reap(now);
  }

  nextDeadline(): number {
    let at = Math.min(this.#nextProbeAt, this.#nextPushPullAt, this.#nextReconnectAt, this.#reapDueAt());
    // A gossip round with nothing queued sends nothing: no need to wake up for it (an idle agent
    // would otherwise wake five times a second for nothing).
    if (this.#queue.size + this.#userQueue.size > 0) at = Math.min(at, this.#nextGossipAt);
    for (const p of this.#probes.values()) at = Math.min(at, p.indirect ? p.endAt : p.timeoutAt);
    for (const r of this.#relays.values()) at = Math.min(at, r.nackAt);
    for (const s of this.#suspicions.values()) at = Math.min(at, s.deadline());
    for (const s of this.#strangers.values()) at = Math.min(at, s.at);
    return at;
  }

  drain(): { messages: Outgoing[]; broadcasts: GossipMessage[]; events: MembershipEvent[]; user: string[] } {
    const out = {
      messages: this.#out,
      broadcasts: this.#broadcasts,
      events: this.#events,
      user: this.#userHeard,
    };
    this.#out = [];
    this.#broadcasts = [];
    this.#events = [];
    this.#userHeard = [];
    return out;
  }

  // ---- probing ----

  #probeNext(now: number): void {
    for (let tries = 0; tries <= this.#probeList.length; tries++) {
      if (this.#probeIndex >= this.#probeList.length) {
        this.#reshuffle();
        if (this.#probeList.length === 0) return;
      }
      const name = this.#probeList[this.#probeIndex++];
      const m = this.#members.get(name);
      if (!m || name === this.#selfName || m.status === 'failed' || m.status === 'left') continue;
      if ([...this.#probes.values()].some((p) => p.target === name)) continue;
      this.#startProbe(m, now, false);
      return;
    }
  }

  #reshuffle(): void {
    const list = [...this.#others.values()];
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [list[i], list[j]] = [list[j], list[i]];
    }
    this.#probeList = list;
    this.#probeIndex = 0;
  }

  #startProbe(target: Member, now: number, hinted: boolean): void {
    const seq = ++this.#seq;
    this.#count('probes');
    this.#probes.set(seq, {
      seq,
      target: target.name,
      timeoutAt: now + this.#awareness.scale(this.#cfg.probeTimeoutMs),
      endAt: Number.POSITIVE_INFINITY,
      indirect: false,
      nacksExpected: 0,
      nacks: 0,
      hinted,
    });
    this.#send(target.addr, { type: 'ping', seq, target: target.name }, now);
  }

  #goIndirect(p: Probe, now: number): void {
    p.indirect = true;
    // The rest of the protocol period, counted from now: a hint may cut the direct wait short.
    p.endAt = now + this.#awareness.scale(this.#cfg.probeIntervalMs - this.#cfg.probeTimeoutMs);
    const target = this.#members.get(p.target);
    if (!target) return;
    const helpers = this.#randomMembers(
      this.#cfg.indirectChecks,
      (m) => m.status === 'alive' && m.name !== p.target,
    );
    p.nacksExpected = helpers.length;
    for (const h of helpers) {
      this.#count('indirect');
      this.#send(h.addr, { type: 'ping-req', seq: p.seq, target: target.name, targetAddr: target.addr }, now);
    }
  }

  #onAck(seq: number, now: number): void {
    const relay = this.#relays.get(seq);
    if (relay) {
      this.#relays.delete(seq);
      this.#send(relay.requester, { type: 'ack', seq: relay.requesterSeq }, now);
      return;
    }
    const p = this.#probes.get(seq);
    if (!p) return;
    this.#probes.delete(seq);
    this.#count('acks');
    this.#awareness.apply(-1);
  }

  #expireProbes(now: number): void {
    for (const p of [...this.#probes.values()]) {
      if (!p.indirect && now >= p.timeoutAt) this.#goIndirect(p, now);
      if (p.indirect && now >= p.endAt) {
        this.#probes.delete(p.seq);
        // Lifeguard: missing nacks mean our own network or CPU may be the problem.
        const delta = p.nacksExpected > 0 ? Math.max(0, p.nacksExpected - p.nacks) : 1;
        this.#awareness.apply(delta);
        const m = this.#members.get(p.target);
        // A member already suspected by someone else is suspected again: by us, that is a
        // confirmation (memberlist's probeNode does the same), and Lifeguard needs confirmations
        // to shorten the suspicion from its maximum toward its minimum.
        if (m && (m.status === 'alive' || m.status === 'suspect')) {
          this.#count('probe_failures');
          this.#apply({ kind: 'suspect', name: m.name, inc: m.incarnation, by: this.#selfName }, now, true);
        }
      }
    }
  }

  #expireRelays(now: number): void {
    for (const [seq, r] of this.#relays) {
      if (now < r.nackAt) continue;
      this.#relays.delete(seq);
      this.#send(r.requester, { type: 'nack', seq: r.requesterSeq }, now);
    }
  }

  #expireSuspicions(now: number): void {
    for (const [name, s] of [...this.#suspicions]) {
      if (now < s.deadline()) continue;
      this.#suspicions.delete(name);
      const m = this.#members.get(name);
      if (m?.status !== 'suspect' || m.incarnation !== s.incarnation) continue;
      this.#count('failures_declared');
      this.#apply({ kind: 'dead', name, inc: m.incarnation, by: this.#selfName }, now, true);
    }
  }

  // ---- dissemination ----

  #gossip(now: number): void {
    if (this.#queue.size + this.#userQueue.size === 0) return;
    const ok = (m: Member) =>
      m.status === 'alive' ||
      m.status === 'suspect' ||
      (m.status === 'failed' && now - m.statusSince < this.#cfg.gossipToTheDeadMs);
    // A gossip message is only its piggyback: none goes to a target that already had it all.
    for (const t of this.#randomMembers(this.#cfg.gossipNodes, ok))
      this.#send(t.addr, { type: 'gossip' }, now, true);
  }

  /**
   * A member we do not know talked to us and is still unknown after its grace
   * ({@link STRANGER_GRACE_MS}): we missed at least its alive, likely more (a lost join answer, a
   * partition). A push-pull with it repairs that now instead of at the next periodic one; at most
   * one per {@link STRANGER_PUSH_PULL_MS}, as it carries the whole state.
   */
  #meetStrangers(now: number): void {
    for (const [name, s] of this.#strangers) {
      if (now < s.at) continue;
      this.#strangers.delete(name);
      if (!this.#members.has(name)) this.#meetStranger(s.addr, now);
    }
  }

  #meetStranger(addr: string, now: number): void {
    if (this.#leaving || now < this.#nextStrangerPushPullAt) return;
    this.#nextStrangerPushPullAt = now + STRANGER_PUSH_PULL_MS;
    this.#count('stranger_push_pulls');
    this.#pushPull(addr, now);
  }

  #pushPullRandom(now: number): void {
    const connected = this.#connected;
    let peer: Member | undefined;
    if (connected && this.#random() < PUSH_PULL_CONNECTED_SHARE) {
      [peer] = this.#randomMembers(1, (m) => m.status === 'alive' && connected(m.addr));
    }
    if (!peer) [peer] = this.#randomMembers(1, (m) => m.status === 'alive');
    if (!peer) return;
    this.#count('push_pulls');
    this.#pushPull(peer.addr, now);
  }

  #reconnect(now: number): void {
    const [peer] = this.#randomMembers(1, (m) => m.status === 'failed');
    if (peer) {
      this.#count('reconnects');
      this.#pushPull(peer.addr, now);
    }
  }

  #pushPull(addr: string, now: number): void {
    this.#send(addr, this.#stateExchange(++this.#seq, false, false, now), now);
  }

  /** A push-pull's body: our whole state and our recent user messages. */
  #stateExchange(seq: number, join: boolean, reply: boolean, now: number) {
    return {
      type: 'push-pull',
      seq,
      join,
      reply,
      state: this.#fullState(),
      ...this.#recentUser(now),
    } as const;
  }

  #onPushPull(m: Extract<GossipMessage, { type: 'push-pull' }>, now: number): void {
    if (m.reply) {
      const addr = this.#pendingJoins.get(m.seq);
      this.#merge(m.state, now, false);
      this.#mergeRecentUser(m.recent, now);
      if (addr !== undefined) {
        this.#pendingJoins.delete(m.seq);
        this.#events.push({ type: 'join-ack', addr, members: m.state.length });
      }
      return;
    }
    // Merge first, so the answer carries any refutation it caused.
    this.#merge(m.state, now, m.join);
    this.#mergeRecentUser(m.recent, now);
    this.#send(m.from.addr, this.#stateExchange(m.seq, m.join, true, now), now);
  }

  // ---- user messages ----

  /**
   * A user message heard (or sent, `deliver` false): the first time, it is remembered, queued for
   * piggybacking and, unless it is our own, delivered. True if it was new. `heardAt`: when it was
   * first heard anywhere we know of (earlier than now for one repaired by a push-pull), so that
   * the age it is handed on with keeps counting from there.
   */
  #hearUser(body: string, now: number, deliver: boolean, heardAt = now): boolean {
    if (body.length === 0 || body.length > MAX_USER_MESSAGE_LENGTH) {
      this.#count('dropped.user_size');
      return false;
    }
    if (!this.#markUserSeen(body)) return false;
    this.#userQueue.enqueue(body);
    this.#userRecent.push({ body, at: heardAt });
    if (this.#userRecent.length > USER_RECENT) this.#userRecent.shift();
    if (deliver) this.#userHeard.push(body);
    return true;
  }

  /** True when `body` was not seen before (and is now). */
  #markUserSeen(body: string): boolean {
    if (this.#userSeen.has(body)) return false;
    this.#userSeen.add(body);
    if (this.#userSeen.size > USER_SEEN)
      this.#userSeen.delete(this.#userSeen.values().next().value as string);
    return true;
  }

  /** The recent user messages to put in a push-pull (none: the field is left out). */
  #recentUser(now: number): { recent?: RecentUserMessage[] } {
    // (Not sorted by age: a repaired message arrives with its age. At most USER_RECENT entries.)
    this.#userRecent = this.#userRecent.filter((r) => now - r.at <= USER_RECENT_MS);
    if (this.#userRecent.length === 0) return {};
    return { recent: this.#userRecent.map((r) => ({ body: r.body, ageMs: Math.round(now - r.at) })) };
  }

  /**
   * A push-pull's recent user messages: one the sender first heard after we joined is one we
   * missed (delivered now); an older one predates us (only remembered, so that no later copy
   * delivers it either).
   */
  #mergeRecentUser(recent: RecentUserMessage[] | undefined, now: number): void {
    if (!recent) return;
    for (const r of recent) {
      if (this.#clusterSince !== undefined && now - r.ageMs > this.#clusterSince) {
        if (this.#hearUser(r.body, now, true, now - r.ageMs)) this.#count('user_repaired');
      } else {
        this.#markUserSeen(r.body);
      }
    }
  }

  /**
   * memberlist's mergeState: a remote "dead" becomes a local suspicion (our own probes decide),
   * "left" is taken as is. Members learned from a joiner are also broadcast, so a mass join does
   * not depend on piggybacking alone.
   */
  #merge(state: Update[], now: number, fromJoin: boolean): void {
    for (const u of state) {
      if (u.kind === 'dead') {
        this.#apply({ kind: 'suspect', name: u.name, inc: u.inc, by: u.by }, now, false);
      } else {
        const isNew = u.kind === 'alive' && !this.#members.has(u.name);
        this.#apply(u, now, false);
        if (isNew && fromJoin && this.#members.get(u.name)?.id === (u as { id: string }).id) {
          this.#broadcasts.push(this.#message({ type: 'gossip' }, [u]));
        }
      }
    }
  }

  #fullState(): Update[] {
    const out: Update[] = [];
    for (const m of this.#members.values()) {
      switch (m.status) {
        case 'alive':
          out.push(this.#aliveOf(m));
          break;
        case 'suspect':
          out.push({ kind: 'suspect', name: m.name, inc: m.incarnation, by: this.#selfName });
          break;
        case 'failed':
          out.push({ kind: 'dead', name: m.name, inc: m.incarnation, by: this.#selfName });
          break;
        case 'left':
          out.push({ kind: 'left', name: m.name, inc: m.incarnation });
          break;
      }
    }
    return out;
  }

  // ---- state updates ----

  /** Applies one update; `originated`: this member declared it (so it is also broadcast). */
  #apply(u: Update, now: number, originated: boolean): void {
    switch (u.kind) {
      case 'alive':
        this.#onAlive(u, now);
        return;
      case 'suspect':
        this.#onSuspect(u, now, originated);
        return;
      case 'dead':
        this.#onDead(u, now, originated);
        return;
      case 'left':
        this.#onLeft(u, now);
        return;
    }
  }

  #onAlive(u: Extract<Update, { kind: 'alive' }>, now: number): void {
    const m = this.#members.get(u.name);
    if (u.name === this.#selfName) {
      const me = m as Member;
      if (u.id !== me.id) {
        this.#count('conflicts');
        this.#events.push({ type: 'conflict', existing: { ...me }, other: this.#infoOf(u) });
        return;
      }
      if (u.inc > me.incarnation && !this.#leaving) this.#refute(u.inc, now);
      else this.#count('dropped.stale');
      return;
    }
    if (!m) {
      const fresh: Member = { ...this.#infoOf(u), status: 'alive', incarnation: u.inc, statusSince: now };
      this.#add(fresh);
      this.#clusterSince ??= now;
      // A newcomer goes to a random place in the probe order, so it is probed within a round.
      const at =
        this.#probeIndex + Math.floor(this.#random() * (this.#probeList.length - this.#probeIndex + 1));
      this.#probeList.splice(at, 0, u.name);
      this.#queue.enqueue(u);
      this.#emit('join', fresh);
      return;
    }
    if (m.id !== u.id) {
      if (m.status === 'alive' || m.status === 'suspect') {
        this.#count('conflicts');
        this.#events.push({ type: 'conflict', existing: { ...m }, other: this.#infoOf(u) });
        return;
      }
      // The known one is gone: the newcomer takes the name.
      this.#suspicions.delete(m.name);
      Object.assign(m, this.#infoOf(u), { incarnation: u.inc });
      this.#setStatus(m, 'alive', now);
      this.#queue.enqueue(u);
      this.#emit('join', m);
      return;
    }
    if (u.inc <= m.incarnation) {
      this.#count('dropped.stale');
      return;
    }
    const was = m.status;
    const changed = m.addr !== u.addr || !sameMeta(m.meta, u.meta);
    m.addr = u.addr;
    m.meta = { ...u.meta };
    m.incarnation = u.inc;
    this.#suspicions.delete(m.name);
    this.#queue.enqueue(u);
    if (was !== 'alive') {
      this.#setStatus(m, 'alive', now);
      this.#emit(was === 'suspect' ? 'alive' : 'join', m);
    } else if (changed) {
      this.#emit('update', m);
    }
  }

  #onSuspect(u: Extract<Update, { kind: 'suspect' }>, now: number, originated: boolean): void {
    const m = this.#members.get(u.name);
    if (!m) {
      this.#count('dropped.unknown');
      return;
    }
    if (u.inc < m.incarnation) {
      this.#count('dropped.stale');
      return;
    }
    if (u.name === this.#selfName) {
      if (this.#leaving) return;
      this.#awareness.apply(1);
      this.#refute(u.inc, now);
      return;
    }
    if (m.status === 'suspect') {
      const s = this.#suspicions.get(m.name);
      if (s && u.inc === s.incarnation && s.confirm(u.by)) {
        this.#count('confirmations');
        if (originated) this.#originate(u);
        else this.#queue.enqueue(u);
      }
      return;
    }
    if (m.status !== 'alive') return;
    m.incarnation = u.inc;
    this.#setStatus(m, 'suspect', now);
    const n = this.#liveCount();
    const bounds = suspicionBounds(
      this.#cfg.suspicionMult,
      this.#cfg.suspicionMaxTimeoutMult,
      n,
      this.#cfg.probeIntervalMs,
    );
    this.#suspicions.set(m.name, new Suspicion(now, bounds, u.inc, u.by));
    this.#count('suspects');
    this.#emit('suspect', m);
    if (originated) this.#originate(u);
    else this.#queue.enqueue(u);
  }

  #onDead(u: Extract<Update, { kind: 'dead' }>, now: number, originated: boolean): void {
    const m = this.#members.get(u.name);
    if (!m) {
      this.#count('dropped.unknown');
      return;
    }
    if (u.inc < m.incarnation) {
      this.#count('dropped.stale');
      return;
    }
    if (u.name === this.#selfName) {
      if (!this.#leaving) this.#refute(u.inc, now);
      return;
    }
    if (m.status === 'failed' || m.status === 'left') return;
    m.incarnation = u.inc;
    this.#suspicions.delete(m.name);
    this.#setStatus(m, 'failed', now);
    this.#emit('failed', m);
    if (originated) this.#originate(u);
    else this.#queue.enqueue(u);
  }

  #onLeft(u: Extract<Update, { kind: 'left' }>, now: number): void {
    const m = this.#members.get(u.name);
    if (!m) {
      this.#count('dropped.unknown');
      return;
    }
    if (u.inc < m.incarnation) {
      this.#count('dropped.stale');
      return;
    }
    if (u.name === this.#selfName) {
      // Someone force-left us while we are alive: say otherwise.
      if (!this.#leaving) this.#refute(u.inc, now);
      return;
    }
    if (m.status === 'left') return;
    m.incarnation = u.inc;
    this.#suspicions.delete(m.name);
    this.#setStatus(m, 'left', now);
    this.#queue.enqueue(u);
    this.#emit('leave', m);
  }

  #refute(heard: number, now: number): void {
    const me = this.#members.get(this.#selfName) as Member;
    me.incarnation = Math.max(me.incarnation, heard) + 1;
    this.#count('refutes');
    this.#originate(this.#aliveOf(me));
    void now;
  }

  #reap(now: number): void {
    for (const name of [...this.#gone]) {
      const m = this.#members.get(name) as Member;
      if (now >= this.#reapTime(m)) {
        this.#remove(m.name);
        this.#emit('reap', m);
      }
    }
  }

  /** When a failed member is given up on (`reconnect_timeout`), or a left one forgotten. */
  #reapTime(m: Member): number {
    return (
      m.statusSince + (m.status === 'failed' ? this.#cfg.reconnectTimeoutMs : this.#cfg.tombstoneTimeoutMs)
    );
  }

  /** The earliest reap time of a gone member, recomputed only after #gone or a status changed. */
  #reapDueAt(): number {
    if (this.#reapAtStale) {
      this.#reapAtStale = false;
      this.#reapAt = Number.POSITIVE_INFINITY;
      for (const name of this.#gone)
        this.#reapAt = Math.min(this.#reapAt, this.#reapTime(this.#members.get(name) as Member));
    }
    return this.#reapAt;
  }

  // ---- helpers ----

  /** Queues an update for piggybacking and hands it out as a broadcast. */
  #originate(u: Update): void {
    this.#queue.enqueue(u);
    this.#broadcasts.push(this.#message({ type: 'gossip' }, [u]));
  }

  #setStatus(m: Member, status: Member['status'], now: number): void {
    m.status = status;
    m.statusSince = now;
    this.#liveDirty = true;
    this.#reapAtStale = true;
    if ((status === 'failed' || status === 'left') && m.name !== this.#selfName) this.#gone.add(m.name);
    else this.#gone.delete(m.name);
  }

  #emit(type: Extract<MembershipEvent, { member: Member }>['type'], m: Member): void {
    this.#events.push({ type, member: { ...m, meta: { ...m.meta } } });
  }

  #aliveOf(m: Member): Update {
    return { kind: 'alive', name: m.name, id: m.id, addr: m.addr, meta: { ...m.meta }, inc: m.incarnation };
  }

  #infoOf(u: Extract<Update, { kind: 'alive' }>): MemberInfo {
    return { name: u.name, id: u.id, addr: u.addr, meta: { ...u.meta } };
  }

  #findMember(name: string): Member | undefined {
    const exact = this.#members.get(name);
    if (exact) return exact;
    const lower = name.toLowerCase();
    for (const m of this.#members.values()) if (m.name.toLowerCase() === lower) return m;
    return undefined;
  }

  /** Up to k distinct random members passing `ok`: random picks first, a full scan if they miss. */
  #randomMembers(k: number, ok: (m: Member) => boolean): Member[] {
    const out: Member[] = [];
    const seen = new Set<string>();
    const n = this.#others.size;
    for (let tries = 0; tries < 4 * k && out.length < k && n > 0; tries++) {
      const name = this.#others.pick(this.#random) as string;
      if (seen.has(name)) continue;
      seen.add(name);
      const m = this.#members.get(name) as Member;
      if (ok(m)) out.push(m);
    }
    if (out.length < k && seen.size < n) {
      const pool: Member[] = [];
      for (const name of this.#others.values()) {
        if (seen.has(name)) continue;
        const m = this.#members.get(name) as Member;
        if (ok(m)) pool.push(m);
      }
      while (out.length < k && pool.length > 0) {
        const i = Math.floor(this.#random() * pool.length);
        out.push(pool[i]);
        pool[i] = pool[pool.length - 1];
        pool.pop();
      }
    }
    return out;
  }

  #message<T extends { type: GossipMessage['type'] }>(body: T, updates: Update[]): GossipMessage {
    const me = this.#members.get(this.#selfName) as Member;
    const from: Sender = { name: me.name, addr: me.addr };
    return { ...body, from, updates } as unknown as GossipMessage;
  }

  #send(
    to: string,
    body: { type: GossipMessage['type'] } & Record<string, unknown>,
    now: number,
    onlyWithUpdates = false,
  ): void {
    // memberlist's transmit limit, spread over the other members: once each in a large cluster,
    // more than once each in a small one (3 members: twice), where a refutation that reached a
    // member only once was lost with that one packet, and the member declared the refuter failed.
    const live = this.#liveCount();
    const limit = Math.max(1, retransmitLimit(this.#cfg.retransmitMult, live));
    const perRecipient = Math.ceil(limit / Math.max(1, live - 1));
    const maxBytes = this.#cfg.maxPiggybackBytes;
    const updates = this.#queue.take(to, { max: this.#cfg.maxPiggyback, limit, maxBytes, perRecipient });
    // User messages get what room the updates left (all of it, when there are none).
    const user =
      this.#userQueue.size > 0 && updates.bytes < maxBytes
        ? this.#userQueue.take(to, {
            max: this.#cfg.maxPiggyback - updates.items.length,
            limit,
            maxBytes: maxBytes - updates.bytes,
            perRecipient,
            oversizeAlone: updates.items.length === 0,
          }).items
        : [];
    if (onlyWithUpdates && updates.items.length === 0 && user.length === 0) return;
    const message = this.#message(body, updates.items);
    if (user.length > 0) message.user = user;
    this.#out.push({ to, message });
    void now;
  }
}

function sameMeta(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}
