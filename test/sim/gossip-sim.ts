/**
 * A deterministic simulator for the gossip core: N {@link Swim} members on a simulated network
 * with per-message loss, delay jitter, partitions, killed and paused processes. Gossipsub
 * broadcasts (of updates and of user messages) are modelled as one delivery to every other
 * member, each subject to the same loss.
 *
 * Everything random comes from one seeded PRNG and time is virtual, so a seed replays exactly;
 * `trace` records every membership event for that purpose.
 */

import { LAN, type SwimConfig } from '../../src/agent/gossip/core/config.ts';
import { Swim } from '../../src/agent/gossip/core/swim.ts';
import type { GossipMessage, MembershipEvent } from '../../src/agent/gossip/core/types.ts';
import { Prng } from '../support/prng.ts';

export interface GossipSimOptions {
  n: number;
  seed: number;
  /** Probability each message (and each broadcast copy) is lost. */
  loss?: number;
  /** One-way delay range, ms. */
  delayMs?: [number, number];
  config?: Partial<SwimConfig>;
  /** Broadcasts (gossipsub) on or off. */
  broadcasts?: boolean;
  trace?: (line: string) => void;
}

interface Node {
  index: number;
  name: string;
  addr: string;
  swim: Swim | undefined;
  killed: boolean;
  paused: boolean;
  /** Deliveries held while paused (TCP buffers them), delivered at resume. */
  held: { message: GossipMessage; direct: boolean }[];
  /** User messages this node's core delivered, in order. */
  userDelivered: string[];
  wakeAt: number;
  /** This node's view: names it holds alive or suspect. */
  view: Set<string>;
}

type SimEvent =
  | { at: number; seq: number; kind: 'wake'; node: number }
  | { at: number; seq: number; kind: 'deliver'; node: number; message: GossipMessage; direct: boolean }
  | { at: number; seq: number; kind: 'deliver-user'; node: number; body: string };

/** A binary min-heap of events by (at, seq): equal times run in scheduling order. */
class EventHeap {
  readonly #a: SimEvent[] = [];
  get size(): number {
    return this.#a.length;
  }
  push(e: SimEvent): void {
    const a = this.#a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(a[p], a[i])) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  peek(): SimEvent | undefined {
    return this.#a[0];
  }
  pop(): SimEvent | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l], a[m])) m = l;
        if (r < a.length && less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

function less(x: SimEvent, y: SimEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

export interface FailureRecord {
  observer: string;
  subject: string;
  at: number;
}

export class GossipSim {
  now = 0;
  readonly nodes: Node[] = [];
  readonly rng: Prng;
  readonly config: SwimConfig;
  readonly #heap = new EventHeap();
  readonly #byAddr = new Map<string, Node>();
  readonly #opts: GossipSimOptions;
  #seq = 0;
  /** Partition group per node; messages cross groups only when both are undefined or equal. */
  readonly #group = new Map<number, number>();
  /** Every `failed` event: who declared whom failed, when. */
  readonly failures: FailureRecord[] = [];
  /** Every `suspect` event. */
  readonly suspicions: FailureRecord[] = [];
  messages = 0;
  dropped = 0;
  /**
   * Per node, the distinct members it sent a push-pull to: in the agent each is a TCP connection
   * it opened or reused (the other messages are UDP packets; broadcasts use the connections there are).
   */
  readonly contacted = new Map<number, Set<number>>();

  constructor(opts: GossipSimOptions) {
    this.#opts = opts;
    this.rng = new Prng(opts.seed);
    this.config = { ...LAN, ...opts.config };
    for (let i = 0; i < opts.n; i++) {
      const node: Node = {
        index: i,
        name: `m${i}`,
        addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8301`,
        swim: undefined,
        killed: false,
        paused: false,
        held: [],
        userDelivered: [],
        wakeAt: Number.POSITIVE_INFINITY,
        view: new Set(),
      };
      this.nodes.push(node);
      this.#byAddr.set(node.addr, node);
    }
  }

  /** Starts member i (a fresh process) and has it join through `seeds`. */
  start(i: number, seeds: number[] = []): void {
    const node = this.nodes[i];
    node.killed = false;
    node.paused = false;
    node.held = [];
    node.userDelivered = [];
    node.view = new Set([node.name]);
    node.swim = new Swim({
      self: { name: node.name, id: `id-${i}`, addr: node.addr, meta: { role: 'node' } },
      config: this.config,
      random: () => this.rng.next(),
      now: this.now,
    });
    if (seeds.length > 0)
      node.swim.join(
        seeds.map((s) => this.nodes[s].addr),
        this.now,
      );
    this.#flush(node);
  }

  /** Member i sends a user message: into its core, and broadcast (when broadcasts are on). */
  sendUser(i: number, body: string): void {
    const node = this.nodes[i];
    if (!node.swim?.sendUser(body, this.now)) return;
    if (this.#opts.broadcasts !== false) {
      for (const to of this.nodes) {
        if (to === node || !to.swim || !this.#pass(node, to)) continue;
        this.#schedule(to, { kind: 'deliver-user', body });
      }
    }
    this.#flush(node);
  }

  kill(i: number): void {
    const node = this.nodes[i];
    node.killed = true;
    node.swim = undefined;
  }

  pause(i: number): void {
    this.nodes[i].paused = true;
  }

  resume(i: number): void {
    const node = this.nodes[i];
    node.paused = false;
    const held = node.held;
    node.held = [];
    for (const h of held) this.#deliver(node, h.message, h.direct);
    this.#tickIfDue(node);
  }

  /** Splits the members into groups that cannot reach each other; `heal()` undoes it. */
  partition(groups: number[][]): void {
    this.#group.clear();
    for (const [g, members] of groups.entries()) for (const i of members) this.#group.set(i, g);
  }

  heal(): void {
    this.#group.clear();
  }

  live(): Node[] {
    return this.nodes.filter((n) => n.swim !== undefined && !n.killed);
  }

  /** Runs until `until` (virtual ms) or until `stop()` holds, checked every `checkEveryMs`. */
  run(until: number, stop?: () => boolean, checkEveryMs = 100): boolean {
    let nextCheck = this.now;
    for (;;) {
      const e = this.#heap.peek();
      const nextAt = e ? e.at : Number.POSITIVE_INFINITY;
      if (stop && nextCheck <= nextAt && nextCheck <= until) {
        this.now = Math.max(this.now, nextCheck);
        if (stop()) return true;
        nextCheck += checkEveryMs;
        continue;
      }
      if (nextAt > until) {
        this.now = until;
        return stop ? stop() : false;
      }
      this.#heap.pop();
      this.now = nextAt;
      this.#handle(e as SimEvent);
    }
  }

  #handle(e: SimEvent): void {
    const node = this.nodes[e.node];
    if (!node.swim || node.killed) return;
    if (e.kind === 'deliver') {
      if (node.paused) node.held.push({ message: e.message, direct: e.direct });
      else this.#deliver(node, e.message, e.direct);
      return;
    }
    if (e.kind === 'deliver-user') {
      // (A paused member's broadcast is lost rather than held: the rarer case, and also best effort.)
      if (!node.paused) {
        node.swim.receiveUser(e.body, this.now);
        this.#flush(node);
      }
      return;
    }
    if (e.at !== node.wakeAt) return; // superseded
    node.wakeAt = Number.POSITIVE_INFINITY;
    if (!node.paused) this.#tickIfDue(node);
  }

  #tickIfDue(node: Node): void {
    if (!node.swim) return;
    if (this.now >= node.swim.nextDeadline()) node.swim.tick(this.now);
    this.#flush(node);
  }

  #deliver(node: Node, message: GossipMessage, direct: boolean): void {
    node.swim?.receive(message, this.now, direct);
    this.#flush(node);
  }

  #reachable(a: number, b: number): boolean {
    return this.#group.get(a) === this.#group.get(b);
  }

  #send(from: Node, to: Node, message: GossipMessage, direct: boolean): void {
    this.messages++;
    if (direct && message.type === 'push-pull') {
      let set = this.contacted.get(from.index);
      if (!set) {
        set = new Set();
        this.contacted.set(from.index, set);
      }
      set.add(to.index);
    }
    if (!this.#pass(from, to)) return;
    this.#schedule(to, { kind: 'deliver', message, direct });
  }

  /** Whether one message from `from` gets through to `to` (partitions, then random loss). */
  #pass(from: Node, to: Node): boolean {
    if (this.#reachable(from.index, to.index) && this.rng.next() >= (this.#opts.loss ?? 0)) return true;
    this.dropped++;
    return false;
  }

  /** Queues a delivery to `to`, after the network's delay. */
  #schedule(
    to: Node,
    e: { kind: 'deliver'; message: GossipMessage; direct: boolean } | { kind: 'deliver-user'; body: string },
  ): void {
    const [lo, hi] = this.#opts.delayMs ?? [1, 5];
    const at = this.now + lo + this.rng.next() * (hi - lo);
    this.#heap.push({ ...e, at, seq: this.#seq++, node: to.index });
  }

  #flush(node: Node): void {
    const swim = node.swim;
    if (!swim) return;
    const { messages, broadcasts, events, user } = swim.drain();
    node.userDelivered.push(...user);
    for (const m of messages) {
      const to = this.#byAddr.get(m.to);
      if (to) this.#send(node, to, m.message, true);
    }
    if (this.#opts.broadcasts !== false) {
      for (const b of broadcasts)
        for (const to of this.nodes) if (to !== node && to.swim) this.#send(node, to, b, false);
    }
    for (const e of events) this.#record(node, e);
    const at = swim.nextDeadline();
    if (at < node.wakeAt || node.wakeAt <= this.now) {
      node.wakeAt = Math.max(at, this.now);
      this.#heap.push({ at: node.wakeAt, seq: this.#seq++, kind: 'wake', node: node.index });
    }
  }

  #record(node: Node, e: MembershipEvent): void {
    if (e.type === 'join-ack' || e.type === 'conflict') return;
    const subject = e.member.name;
    switch (e.type) {
      case 'join':
      case 'alive':
      case 'update':
        node.view.add(subject);
        break;
      case 'suspect':
        this.suspicions.push({ observer: node.name, subject, at: this.now });
        break;
      case 'failed':
        node.view.delete(subject);
        this.failures.push({ observer: node.name, subject, at: this.now });
        break;
      case 'leave':
      case 'reap':
        node.view.delete(subject);
        break;
    }
    this.#opts.trace?.(`${this.now.toFixed(3)} ${node.name} ${e.type} ${subject} ${e.member.incarnation}`);
  }
}
