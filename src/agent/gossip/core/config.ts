/**
 * Protocol timings, after memberlist's DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig
 * (WAN and local start from LAN and override what differs), plus Serf's lifecycle timers.
 */

export interface SwimConfig {
  /** Time between probes of one member, scaled by local health (awareness). */
  probeIntervalMs: number;
  /** How long a direct ping waits for its ack before indirect probes go out. */
  probeTimeoutMs: number;
  /** Time between gossip rounds that push queued updates to random members. */
  gossipIntervalMs: number;
  /** Members each gossip round sends to. */
  gossipNodes: number;
  /** Members asked to probe indirectly when a direct ping goes unanswered. */
  indirectChecks: number;
  /** Suspicion lasts at least suspicionMult × max(1, log10(N)) probe intervals. */
  suspicionMult: number;
  /** ... and at most this many times that minimum, without confirmations. */
  suspicionMaxTimeoutMult: number;
  /** Each update is sent retransmitMult × ceil(log10(N + 1)) times. */
  retransmitMult: number;
  /** Full state exchange with one random member this often (scaled up beyond 32 members). */
  pushPullIntervalMs: number;
  /** Local health multiplies timeouts by up to this factor. */
  awarenessMaxMultiplier: number;
  /** Failed members still receive gossip this long (so they can refute). */
  gossipToTheDeadMs: number;
  /** A push-pull to a random failed member this often: how partitions heal (Serf's reconnect). */
  reconnectIntervalMs: number;
  /** Failed members are forgotten after this long (Consul's reconnect_timeout). */
  reconnectTimeoutMs: number;
  /** Left members are forgotten after this long (Serf's tombstone timeout). */
  tombstoneTimeoutMs: number;
  /** Most updates piggybacked on one message. */
  maxPiggyback: number;
  /**
   * Most bytes of updates (as JSON) piggybacked on one message. The agent deflates a message's
   * JSON (wire.ts): members' alive updates shrink ~5x, so 5,000 bytes of them still make one UDP
   * packet (1,400 bytes, packet.ts); what does not (incompressible user messages) the agent moves
   * onto extra packets. An update larger than a packet on its own goes over TCP.
   */
  maxPiggybackBytes: number;
}

export const LAN: SwimConfig = {
  probeIntervalMs: 1_000,
  probeTimeoutMs: 500, // a LAN round trip is far below; leaves room for a slow peer
  gossipIntervalMs: 200,
  gossipNodes: 3,
  indirectChecks: 3,
  suspicionMult: 4, // 4 s at 10 members, 8 s at 100
  suspicionMaxTimeoutMult: 6,
  retransmitMult: 4,
  pushPullIntervalMs: 30_000,
  awarenessMaxMultiplier: 8,
  gossipToTheDeadMs: 30_000,
  reconnectIntervalMs: 30_000,
  reconnectTimeoutMs: 72 * 3_600_000, // Consul's reconnect_timeout
  tombstoneTimeoutMs: 24 * 3_600_000, // Serf's TombstoneTimeout
  maxPiggyback: 24,
  maxPiggybackBytes: 5_000,
};

export const WAN: SwimConfig = {
  ...LAN,
  probeIntervalMs: 5_000,
  probeTimeoutMs: 3_000,
  gossipIntervalMs: 500,
  gossipNodes: 4,
  suspicionMult: 6,
  pushPullIntervalMs: 60_000,
  gossipToTheDeadMs: 60_000,
};

export const LOCAL: SwimConfig = {
  ...LAN,
  probeIntervalMs: 1_000,
  probeTimeoutMs: 200,
  gossipIntervalMs: 100,
  suspicionMult: 3,
  retransmitMult: 2,
  pushPullIntervalMs: 15_000,
  gossipToTheDeadMs: 15_000,
};

export function swimProfile(name: 'lan' | 'wan' | 'local'): SwimConfig {
  return { ...(name === 'wan' ? WAN : name === 'local' ? LOCAL : LAN) };
}

/** memberlist's pushPullScale: beyond 32 members, the interval grows with log2(N). */
export function pushPullInterval(intervalMs: number, n: number): number {
  if (n <= 32) return intervalMs;
  return intervalMs * (Math.ceil(Math.log2(n) - Math.log2(32)) + 1);
}

/** How many times one update is sent: retransmitMult × ceil(log10(N + 1)). */
export function retransmitLimit(mult: number, n: number): number {
  return mult * Math.ceil(Math.log10(n + 1));
}
