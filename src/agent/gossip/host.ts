/**
 * The gossip transport: one libp2p host per agent (TCP, pnet when a cluster key is set, noise, yamux,
 * identify, ping, gossipsub) plus a UDP socket on the same port number, moving opaque byte messages
 * between gossip addresses ("ip:port"). It knows nothing of SWIM: the membership core hands it
 * bytes and an address, and gets bytes back.
 *
 * Packets (`sendPacket`) are single UDP datagrams of at most 1,400 bytes, sealed under the cluster
 * key (packet.ts): SWIM's probes, acks and gossip, which go to every member in turn and must not
 * cost a connection each, as they do on Consul's 8301/udp.
 *
 * Direct messages (`send`) travel as length-prefixed frames on one long-lived outbound stream per
 * destination address, protocol {@link GOSSIP_PROTOCOL}. A destination is dialed by its bare multiaddr
 * (`/ip4/10.0.0.7/tcp/8301`, no `/p2p/` peer ID): libp2p 3 learns the peer ID in the noise handshake.
 * So the address is all a caller needs; what proves membership is the cluster key (pnet), not a
 * peer ID known in advance. A connection the remote opened to us is reused once identify has told us
 * which gossip address it listens on.
 *
 * Broadcast (`publish`) is gossipsub over the same connections: the mesh forms among whatever peers we
 * are connected to (push-pull partners, and the few peers `connect` keeps; see membership.ts), with
 * no discovery of its own.
 *
 * Every queue is bounded: per destination a send queue that drops its oldest frame when full, a
 * stream written only while it does not ask to drain, inbound frames capped at `maxFrameBytes` (a
 * larger or malformed length resets that stream). Every drop is counted in {@link GossipHost.stats}.
 */

import { createHash } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { inspect } from 'node:util';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { type GossipSub, type GossipsubOpts, gossipsub, TopicValidatorResult } from '@libp2p/gossipsub';
import type { RPC } from '@libp2p/gossipsub/message';
import { identify } from '@libp2p/identify';
import type {
  ComponentLogger,
  Connection,
  Libp2p,
  Logger as Libp2pLogger,
  PrivateKey,
  Stream,
  StreamCloseEvent,
} from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import type { TCPSocketOptions } from '@libp2p/tcp';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import type { Logger } from 'pino';
import { VERSION } from '../../version.ts';
import { batchedTcp } from './batched-tcp.ts';
import { noiseCrypto } from './noise-crypto.ts';
import { PacketCodec } from './packet.ts';
import { installHalfWindowUpdates } from './yamux-window-updates.ts';

/** The stream protocol of direct gossip frames. */
export const GOSSIP_PROTOCOL = '/meshd/gossip/1.0.0';

export interface GossipHostOptions {
  /** IP to listen on (and to dial from, unless it is a wildcard). */
  bind: string;
  /** TCP port; 0 lets the kernel pick one (see {@link GossipHost.addr}). */
  port: number;
  /** IP other agents reach us at. @default bind (required when bind is 0.0.0.0 or ::) */
  advertise?: string;
  /** pnet swarm key from `pskFromGossipKey`; without it anyone who can reach the port can join. */
  psk?: Uint8Array;
  /** Packet key from `packetKeyFromGossipKey` (same cluster key as `psk`); without it packets are plain. */
  packetKey?: Uint8Array;
  privateKey: PrivateKey;
  /** Largest direct frame and largest gossipsub message payload, in bytes. */
  maxFrameBytes: number;
  logger: Logger;
  /** Gossipsub topics to join. */
  topics: string[];
  /** How long a dial (TCP + pnet + noise + yamux) may take before the destination counts as unreachable. @default 10_000 (memberlist's LAN TCPTimeout) */
  dialTimeoutMs?: number;
  /** Bytes of frames queued per destination (waiting for a dial or a drain); the oldest go first. @default max(1 MiB, 4 frames) */
  sendQueueBytes?: number;
  /** Frames queued per destination. @default 1_024 */
  sendQueueFrames?: number;
  /** Open connections kept before libp2p prunes the least valuable. @default 1_200 */
  maxConnections?: number;
}

export interface GossipHost {
  /** The advertised gossip address, "ip:port" ("[ip6]:port"), with the real port when 0 was asked. */
  readonly addr: string;
  readonly peerId: string;
  /** Best effort: never throws, never waits. Dials if needed; a failure drops the frame (counted) and reports `to` unreachable. */
  send(to: string, bytes: Uint8Array): void;
  /**
   * One UDP datagram to `to`'s gossip port, sealed when there is a key. False when `bytes` is
   * larger than {@link GossipHost.maxPacketPayload} (send it with `send`); otherwise best effort,
   * like `send`, but nothing reports a lost packet.
   */
  sendPacket(to: string, bytes: Uint8Array): boolean;
  /** The largest payload `sendPacket` takes. */
  readonly maxPacketPayload: number;
  /** Opens a connection to `to` (no stream) unless one is open or opening; a failure reports `to` unreachable. */
  connect(to: string): void;
  /** Whether a connection to the agent at `to` is open or being opened. */
  isConnected(to: string): boolean;
  /** Distinct peers with an open connection. */
  connectedPeers(): number;
  /**
   * Closes connections to random peers until at most `max` remain, sparing any connection younger
   * than `minAgeMs` and any peer with frames queued for it. Not reported unreachable (we asked).
   */
  trimConnections(max: number, minAgeMs: number): void;
  /** Gossipsub broadcast; best effort like `send`. */
  publish(topic: string, bytes: Uint8Array): void;
  /**
   * Direct frames and packets: `via.peer` is the sender's peer ID (from the noise handshake) for
   * a frame on a stream; a packet has only the address it came from.
   */
  onMessage(handler: (bytes: Uint8Array, via: MessageVia) => void): void;
  /**
   * A frame from `peer` says it listens at `addr`: sends to `addr` may use the connection it came
   * on. Identify says the same a little later; without this, an answer to a frame that arrives
   * first would open a second connection to the same agent.
   */
  associate(addr: string, peer: string): void;
  /** Gossipsub messages on the joined topics. */
  onTopicMessage(handler: (topic: string, bytes: Uint8Array) => void): void;
  /** A dial or write to `addr` failed, or the stream we send it on or our last connection to it closed without our asking. */
  onUnreachable(handler: (addr: string) => void): void;
  /**
   * Counters and a few gauges, sorted by name: `frames.in|out`, `bytes.in|out` (direct frames as on the
   * stream, length prefixes included), `packets.in|out`, `packet_bytes.in|out`, `topic.in|out`,
   * `unreachable`, `disconnects`, `trimmed`, `dropped.<cause>` (inbound: `oversize`, `malformed`, `topic_oversize`,
   * `packet_<fault>` (packet.ts); outbound: `dial`, `write`, `queue`, `oversize_out`, `bad_addr`,
   * `self`, `publish`, `stopped`, `packet_send`), `connections`, `peers`, `channels`, `queued.frames`.
   */
  stats(): Record<string, number>;
  stop(): Promise<void>;
}

export type MessageVia = { kind: 'stream'; peer: string } | { kind: 'packet'; remote: string };

/** Options that cannot work (a bad address, a nonsensical limit). */
export class GossipConfigError extends Error {
  override readonly name = 'GossipConfigError';
}

/** Why an inbound frame was refused: longer than `maxFrameBytes`, or a length that is not a valid varint. */
export type FrameFault = 'oversize' | 'malformed';

/**
 * Gossipsub for a LAN cluster of up to ~1000 agents. Mesh degree stays libp2p's (D 6, 4..12): about
 * log6(1000) ≈ 4 hops to reach everyone.
 */
export const GOSSIPSUB_LAN = {
  /**
   * Self-published messages go to every connected subscriber, not only the mesh (gossipsub's
   * default). What an agent publishes is rare (its own state changes, a member it declared
   * failed, a newcomer that joined through it, user events it fires), it has few connections
   * (see membership.ts) but for a join seed, and flooding makes a newcomer known without waiting
   * for a mesh to form. (bench:gossip N=50 with UDP probes: join 41 s with it, 44 s without.)
   */
  floodPublish: true,
  /** Every peer is a meshd agent speaking gossipsub 1.1+. */
  fallbackToFloodsub: false,
  /** Peers come from SWIM; peer exchange would only announce addresses we do not dial. */
  doPX: false,
  /** A lone agent publishing is not an error. */
  allowPublishToZeroTopicPeers: true,
  /** The mesh is only as fast to repair as this; 1 s keeps the control traffic of 1000 peers small. */
  heartbeatInterval: 1_000,
  scoreParams: {
    /** Several agents behind one IP (dev clusters, NAT) are normal here, not a Sybil attack. */
    IPColocationFactorWeight: 0,
    /**
     * Scores decay every 10 s, not every second: the decay is a timer of its own, one more
     * wake-up a second for an idle agent, and the only score we keep (no topic is scored) is the
     * penalty for broken gossip promises among agents that all hold the cluster key. It now
     * falls to a fifth in 10 s instead of 1 s.
     */
    decayInterval: 10_000,
  },
  /** Messages are signed with the agent's key (StrictSign, the default) and checked on receipt. */
  globalSignaturePolicy: 'StrictSign',
  /**
   * Gossipsub checks a message's signature before its duplicate cache unless given a fast ID.
   * Each message reaches an agent from several peers (the publisher's flood, then every mesh
   * peer's forward), so without it most signature checks (an Ed25519 key import and verify, the
   * largest CPU cost of a mass join in bench:gossip) were for copies about to be dropped. The ID
   * covers every field, signature included: only an exact copy of a message that passed is
   * dropped unchecked (signatures are deterministic), and a forged copy is still checked and
   * refused, not mistaken for the real one.
   */
  fastMsgIdFn: (msg: RPC.Message) => {
    const h = createHash('sha256');
    h.update(msg.topic);
    for (const part of [msg.from, msg.seqno, msg.data, msg.signature, msg.key]) {
      h.update(new Uint8Array([part === undefined ? 0 : 1]));
      if (part) {
        h.update(new Uint32Array([part.length]));
        h.update(part);
      }
    }
    return h.digest('base64');
  },
} as const satisfies Partial<GossipsubOpts>;

const MiB = 1024 * 1024;
/** A disconnect this soon after the channel to the same address failed is not reported again. */
const REPORTED_RECENTLY_MS = 2_000;
/**
 * Idle time after which the kernel starts TCP keepalive probes on a gossip connection (then the
 * system's tcp_keepalive_intvl and _probes decide when a dead peer's connection is dropped).
 * This replaces yamux's keepalive pings, which went through noise, the pre-shared-key cipher and
 * the event loop on both sides every 30 s per connection: about a fifth of an idle client's CPU in
 * a 50-agent cluster. Probes keep NAT and firewall state as pings did, and a connection to a dead
 * peer is no longer kept than before (a yamux ping that failed only logged; the connection went
 * when TCP gave up retransmitting). A member's failure is SWIM's to detect, not the connection's.
 */
const TCP_KEEPALIVE_IDLE_MS = 60_000;

/** The unsigned LEB128 varint of `n` followed by `payload`. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  let n = payload.length;
  let prefix = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) prefix++;
  const out = new Uint8Array(prefix + payload.length);
  let i = 0;
  while (n >= 0x80) {
    out[i++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[i++] = n;
  out.set(payload, i);
  return out;
}

/**
 * Splits an inbound byte stream into frames. Holds at most one frame's body (≤ `maxFrameBytes`) and
 * a few header bytes: an oversize length is refused before any of its body is buffered.
 */
export class FrameDecoder {
  private readonly maxFrameBytes: number;
  private length = 0;
  private shift = 0;
  private body: Uint8Array | undefined;
  private filled = 0;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Feeds `chunk`, calling `onFrame` for each complete frame; a fault means the stream is unusable. */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): FrameFault | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.body === undefined) {
        const b = chunk[i++];
        // A varint of a length ≤ 2^31 has at most 5 bytes; a 5th byte with the high bit set is garbage.
        if (this.shift === 28 && b & 0x80) return 'malformed';
        this.length += (b & 0x7f) * 2 ** this.shift;
        this.shift += 7;
        if (this.length > this.maxFrameBytes) return 'oversize';
        if (b & 0x80) continue;
        if (b === 0 && this.shift > 7) return 'malformed'; // non-minimal encoding
        this.body = new Uint8Array(this.length);
        this.filled = 0;
      } else {
        const n = Math.min(this.body.length - this.filled, chunk.length - i);
        this.body.set(chunk.subarray(i, i + n), this.filled);
        this.filled += n;
        i += n;
      }
      if (this.body !== undefined && this.filled === this.body.length) {
        const frame = this.body;
        this.body = undefined;
        this.length = 0;
        this.shift = 0;
        onFrame(frame);
      }
    }
    return undefined;
  }
}

interface Endpoint {
  ip: string;
  family: 4 | 6;
  port: number;
}

function isWildcard(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

/** "ip:port" or "[ip6]:port" → its parts, or undefined if it is not one. */
export function parseGossipAddr(addr: string): Endpoint | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(addr) ?? /^([^:]+):(\d{1,5})$/.exec(addr);
  if (!m) return undefined;
  const family = isIP(m[1]);
  const port = Number(m[2]);
  if (family === 0 || port < 1 || port > 65_535) return undefined;
  return { ip: m[1], family: family as 4 | 6, port };
}

export function formatGossipAddr(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function toMultiaddr(e: Endpoint): Multiaddr {
  return multiaddr(`/ip${e.family}/${e.ip}/tcp/${e.port}`);
}

/** The "ip:port" of a `/ip4|ip6/…/tcp/…` multiaddr (anything after is ignored), else undefined. */
function gossipAddrOf(ma: Multiaddr): string | undefined {
  const [ip, port] = ma.getComponents();
  if ((ip?.name !== 'ip4' && ip?.name !== 'ip6') || port?.name !== 'tcp') return undefined;
  if (ip.value === undefined || port.value === undefined) return undefined;
  return formatGossipAddr(ip.value, Number(port.value));
}

/** libp2p's printf-style debug logs, rendered into pino: `log`/`trace` at trace, `error` at debug. */
function pinoComponentLogger(log: Logger): ComponentLogger {
  const show = (v: unknown, conv: string): string => {
    if (v instanceof Error) return v.message;
    if (typeof v === 'object' && v !== null && (conv === 'o' || conv === 'O' || conv === 'j')) {
      return inspect(v, { depth: 2, breakLength: Number.POSITIVE_INFINITY });
    }
    return String(v);
  };
  const render = (fmt: unknown, args: unknown[]): string => {
    if (typeof fmt !== 'string') return [fmt, ...args].map((a) => show(a, 's')).join(' ');
    let i = 0;
    const text = fmt.replace(/%([a-zA-Z%])/g, (m, conv: string) =>
      conv === '%' ? '%' : i < args.length ? show(args[i++], conv) : m,
    );
    const rest = args.slice(i).map((a) => show(a, 's'));
    return rest.length > 0 ? `${text} ${rest.join(' ')}` : text;
  };
  const make = (component: string): Libp2pLogger => {
    const write = (fmt: unknown, ...args: unknown[]) => {
      if (log.isLevelEnabled('trace')) log.trace({ libp2p: component }, render(fmt, args));
    };
    const logger = Object.assign(write, {
      error: (fmt: unknown, ...args: unknown[]) => {
        if (log.isLevelEnabled('debug')) log.debug({ libp2p: component }, render(fmt, args));
      },
      trace: write,
      newScope: (name: string) => make(`${component}:${name}`),
    });
    Object.defineProperty(logger, 'enabled', { get: () => log.isLevelEnabled('trace') });
    return logger as unknown as Libp2pLogger;
  };
  return { forComponent: make };
}

/** Frames waiting for one destination, and the stream they go out on. */
interface Channel {
  readonly addr: string;
  readonly target: Multiaddr;
  queue: Uint8Array[];
  queuedBytes: number;
  stream: Stream | undefined;
  opening: boolean;
  draining: boolean;
}

class Libp2pGossipHost implements GossipHost {
  addr = '';
  peerId = '';
  private readonly opts: GossipHostOptions;
  private readonly log: Logger;
  private readonly dialTimeoutMs: number;
  private readonly sendQueueBytes: number;
  private readonly sendQueueFrames: number;
  private readonly topics: Set<string>;
  private readonly shutdown = new AbortController();
  private node: Libp2p<{ pubsub: GossipSub }> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly channels = new Map<string, Channel>();
  /** Gossip address → peer ID, from identify (what each connected peer says it listens on). */
  private readonly addrPeer = new Map<string, string>();
  private readonly peerAddrs = new Map<string, string[]>();
  private readonly counters = new Map<string, number>();
  private readonly messageHandlers: Array<(bytes: Uint8Array, via: MessageVia) => void> = [];
  private readonly codec: PacketCodec;
  private udp: UdpSocket | undefined;
  /** When each address was last reported unreachable by its channel (a disconnect right after is the same news). */
  private readonly reportedAt = new Map<string, number>();
  /** Addresses whose connections `trimConnections` is closing (their disconnect is not news). */
  private readonly trimming = new Set<string>();
  /** Addresses `connect` is dialing. */
  private readonly dialing = new Set<string>();
  private readonly topicHandlers: Array<(topic: string, bytes: Uint8Array) => void> = [];
  private readonly unreachableHandlers: Array<(addr: string) => void> = [];

  constructor(opts: GossipHostOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.dialTimeoutMs = opts.dialTimeoutMs ?? 10_000;
    this.sendQueueBytes = opts.sendQueueBytes ?? Math.max(MiB, 4 * (opts.maxFrameBytes + 5));
    this.sendQueueFrames = opts.sendQueueFrames ?? 1_024;
    this.topics = new Set(opts.topics);
    this.codec = new PacketCodec(opts.packetKey);
    if (!Number.isInteger(opts.maxFrameBytes) || opts.maxFrameBytes < 1 || opts.maxFrameBytes > 2 ** 31) {
      throw new GossipConfigError(
        `gossip: maxFrameBytes must be an integer in 1..2^31, got ${opts.maxFrameBytes}`,
      );
    }
    if (this.sendQueueBytes < opts.maxFrameBytes + 5 || this.sendQueueFrames < 1) {
      throw new GossipConfigError('gossip: the send queue must hold at least one frame of maxFrameBytes');
    }
  }

  async start(): Promise<void> {
    const { bind, port } = this.opts;
    const bindFamily = isIP(bind);
    if (bindFamily === 0) throw new GossipConfigError(`gossip: bind address "${bind}" is not an IP`);
    const advertise = this.opts.advertise ?? bind;
    const advFamily = isIP(advertise);
    if (advFamily === 0) throw new GossipConfigError(`gossip: advertise address "${advertise}" is not an IP`);
    if (isWildcard(advertise)) {
      throw new GossipConfigError(`gossip: cannot advertise ${advertise}; set an advertise address`);
    }
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new GossipConfigError(`gossip: port ${port} is out of range`);
    }
    // UDP first: with port 0 the kernel picks a UDP port, and TCP listens on the same number
    // (retried with another when that TCP port is taken), as Consul uses 8301 for both.
    for (let attempt = 1; ; attempt++) {
      const udp = await bindUdp(bindFamily === 6 ? 'udp6' : 'udp4', bind, port);
      const listenPort = udp.address().port;
      try {
        await this.startLibp2p(bindFamily, advFamily, advertise, listenPort);
      } catch (err) {
        udp.close();
        if (port === 0 && attempt < 8 && isAddrInUse(err)) continue;
        throw err;
      }
      this.udp = udp;
      this.addr = formatGossipAddr(advertise, listenPort);
      break;
    }
    this.udp.on('message', (packet, rinfo) => this.receivePacket(packet, rinfo.address, rinfo.port));
    this.udp.on('error', (err) => this.log.debug({ err: err.message }, 'gossip UDP socket error'));
    this.log.debug(
      { addr: this.addr, peerId: this.peerId, encrypted: this.opts.psk !== undefined },
      'gossip host listening',
    );
  }

  private async startLibp2p(bindFamily: number, advFamily: number, advertise: string, listenPort: number) {
    const { bind, privateKey, psk, maxFrameBytes } = this.opts;
    const self = peerIdFromPrivateKey(privateKey).toString();
    const maxRpcBytes = Math.max(4 * MiB, 16 * (maxFrameBytes + 1024));
    const keepAlive = { keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_IDLE_MS };
    // localAddress is a net.connect option that @libp2p/tcp passes on without declaring it.
    const dialOpts = isWildcard(bind)
      ? keepAlive
      : ({ ...keepAlive, localAddress: bind } as TCPSocketOptions);
    installHalfWindowUpdates();
    const node = await createLibp2p({
      start: false,
      privateKey,
      nodeInfo: { name: 'meshd', version: VERSION },
      logger: pinoComponentLogger(this.log),
      addresses: {
        listen: [`/ip${bindFamily}/${bind}/tcp/${listenPort}`],
        // Only the advertise address.
        announceFilter: () => [multiaddr(`/ip${advFamily}/${advertise}/tcp/${listenPort}/p2p/${self}`)],
      },
      transports: [
        batchedTcp({
          dialOpts,
          listenOpts: keepAlive,
          // A connection with nothing to say stays open (see TCP_KEEPALIVE_IDLE_MS): gossipsub's
          // mesh is only these connections, and redialing one costs ~20 ms of CPU on each side.
          inboundSocketInactivityTimeout: 0,
          outboundSocketInactivityTimeout: 0,
        }),
      ],
      connectionProtector: psk ? preSharedKey({ psk }) : undefined,
      connectionEncrypters: [noise({ crypto: noiseCrypto })],
      streamMuxers: [
        yamux({
          // meshd frames, gossipsub, identify, ping: a handful of streams per connection.
          maxInboundStreams: 32,
          maxOutboundStreams: 32,
          // The window stays at its 256 KiB minimum: gossip is many small messages, not bulk data.
          streamOptions: { maxStreamWindowSize: 256 * 1024 },
          // The kernel's TCP keepalive does this job without waking the process (see
          // TCP_KEEPALIVE_IDLE_MS); yamux's pings were most of what an idle connection cost.
          enableKeepAlive: false,
        }),
      ],
      connectionGater: {
        // Dial nothing but the TCP gossip addresses we are asked to send to.
        denyDialMultiaddr: (ma) => gossipAddrOf(ma) === undefined,
      },
      connectionManager: {
        maxConnections: this.opts.maxConnections ?? 1_200,
        dialTimeout: this.dialTimeoutMs,
        // libp2p gives each address 6 s by default; a gossip address is the only one there is.
        addressDialTimeout: this.dialTimeoutMs,
        inboundUpgradeTimeout: this.dialTimeoutMs,
        // Per remote IP per second; several agents may share one IP (dev clusters) and restart together.
        inboundConnectionThreshold: 64,
        maxIncomingPendingConnections: 64,
      },
      // Off: SWIM probes every member already, and libp2p's monitor would add a ping and a peer
      // store write per connection every interval (most of an idle agent's CPU with it on). A
      // process that dies closes its TCP connections, which reaches `onUnreachable` anyway.
      connectionMonitor: { enabled: false },
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          ...GOSSIPSUB_LAN,
          maxInboundDataLength: maxRpcBytes,
          maxOutboundBufferSize: 2 * maxRpcBytes,
        }),
      },
    });
    node.addEventListener('peer:identify', (evt) =>
      this.learnAddrs(evt.detail.peerId.toString(), evt.detail.listenAddrs),
    );
    node.addEventListener('peer:disconnect', (evt) => this.forgetPeer(evt.detail.toString()));
    await node.handle(GOSSIP_PROTOCOL, (stream, conn) => this.accept(stream, conn), {
      maxInboundStreams: 8,
      maxOutboundStreams: 8,
    });
    const pubsub = node.services.pubsub;
    pubsub.addEventListener('message', (evt) => {
      const { topic, data } = evt.detail;
      if (!this.topics.has(topic)) return;
      this.count('topic.in');
      for (const h of this.topicHandlers) this.deliver(() => h(topic, data));
    });
    for (const topic of this.topics) {
      pubsub.topicValidators.set(topic, (_peer, msg) => {
        if (msg.data.length <= maxFrameBytes) return TopicValidatorResult.Accept;
        this.count('dropped.topic_oversize');
        return TopicValidatorResult.Reject;
      });
    }
    try {
      await node.start();
    } catch (err) {
      try {
        await node.stop();
      } catch {
        // the start error is the one worth reporting
      }
      throw err;
    }
    this.node = node;
    this.peerId = node.peerId.toString();
    for (const topic of this.topics) pubsub.subscribe(topic);
  }

  send(to: string, bytes: Uint8Array): void {
    try {
      if (this.stopping) {
        this.count('dropped.stopped');
        return;
      }
      if (bytes.length > this.opts.maxFrameBytes) {
        this.count('dropped.oversize_out');
        return;
      }
      if (to === this.addr) {
        this.count('dropped.self');
        return;
      }
      let ch = this.channels.get(to);
      if (!ch) {
        const e = parseGossipAddr(to);
        if (!e) {
          this.count('dropped.bad_addr');
          return;
        }
        ch = {
          addr: to,
          target: toMultiaddr(e),
          queue: [],
          queuedBytes: 0,
          stream: undefined,
          opening: false,
          draining: false,
        };
        this.channels.set(to, ch);
      }
      const frame = encodeFrame(bytes);
      ch.queue.push(frame);
      ch.queuedBytes += frame.length;
      while (ch.queue.length > this.sendQueueFrames || ch.queuedBytes > this.sendQueueBytes) {
        ch.queuedBytes -= ch.queue.shift()!.length;
        this.count('dropped.queue');
      }
      if (ch.stream) this.flush(ch);
      else if (!ch.opening) void this.open(ch);
    } catch (err) {
      this.count('dropped.error');
      this.log.error({ err, to }, 'gossip send failed');
    }
  }

  get maxPacketPayload(): number {
    return this.codec.maxPayload;
  }

  sendPacket(to: string, bytes: Uint8Array): boolean {
    if (bytes.length > this.codec.maxPayload) return false;
    const udp = this.udp;
    if (this.stopping || !udp) {
      this.count('dropped.stopped');
      return true;
    }
    if (to === this.addr) {
      this.count('dropped.self');
      return true;
    }
    const e = parseGossipAddr(to);
    if (!e) {
      this.count('dropped.bad_addr');
      return true;
    }
    const packet = this.codec.seal(bytes);
    udp.send(packet, e.port, e.ip, (err) => {
      if (!err) return;
      // Unreachable networks, a full socket buffer, a firewall: UDP's losses, told only here.
      this.count('dropped.packet_send');
      this.log.debug({ to, err: err.message }, 'gossip packet not sent');
    });
    this.count('packets.out');
    this.count('packet_bytes.out', packet.length);
    return true;
  }

  connect(to: string): void {
    if (this.stopping || !this.node || to === this.addr || this.isConnected(to)) return;
    const e = parseGossipAddr(to);
    if (!e) {
      this.count('dropped.bad_addr');
      return;
    }
    this.dialing.add(to);
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.dialTimeoutMs)]);
    this.node.dial(toMultiaddr(e), { signal }).then(
      () => this.dialing.delete(to),
      (err: unknown) => {
        this.dialing.delete(to);
        if (this.stopping) return;
        this.count('dropped.dial');
        this.reportUnreachable(to, err);
      },
    );
  }

  isConnected(to: string): boolean {
    return this.dialing.has(to) || this.existingConnection(to) !== undefined;
  }

  connectedPeers(): number {
    const peers = new Set<string>();
    for (const c of this.node?.getConnections() ?? [])
      if (c.status === 'open') peers.add(c.remotePeer.toString());
    return peers.size;
  }

  trimConnections(max: number, minAgeMs: number): void {
    const node = this.node;
    if (!node || this.stopping) return;
    const byPeer = new Map<string, Connection[]>();
    for (const c of node.getConnections()) {
      if (c.status !== 'open') continue;
      const peer = c.remotePeer.toString();
      const conns = byPeer.get(peer);
      if (conns) conns.push(c);
      else byPeer.set(peer, [c]);
    }
    let excess = byPeer.size - max;
    if (excess <= 0) return;
    const now = Date.now();
    const spare = (peer: string, conns: Connection[]) =>
      conns.some((c) => now - c.timeline.open < minAgeMs) ||
      (this.peerAddrs.get(peer) ?? []).some((a) => {
        const ch = this.channels.get(a);
        return ch !== undefined && (ch.queue.length > 0 || ch.opening || ch.draining);
      });
    const candidates = [...byPeer].filter(([peer, conns]) => !spare(peer, conns));
    while (excess > 0 && candidates.length > 0) {
      const i = Math.floor(Math.random() * candidates.length);
      const [peer, conns] = candidates[i];
      candidates[i] = candidates[candidates.length - 1];
      candidates.pop();
      excess--;
      this.count('trimmed');
      for (const a of this.peerAddrs.get(peer) ?? []) {
        this.trimming.add(a);
        // Its channel goes quietly: its stream closing is not news either.
        const ch = this.channels.get(a);
        if (ch) {
          this.channels.delete(a);
          ch.stream = undefined;
        }
      }
      for (const c of conns) {
        c.close().catch((err: unknown) => c.abort(err instanceof Error ? err : new Error(String(err))));
      }
    }
  }

  publish(topic: string, bytes: Uint8Array): void {
    const pubsub = this.node?.services.pubsub;
    if (this.stopping || !pubsub) {
      this.count('dropped.stopped');
      return;
    }
    if (bytes.length > this.opts.maxFrameBytes) {
      this.count('dropped.oversize_out');
      return;
    }
    pubsub.publish(topic, bytes).then(
      () => this.count('topic.out'),
      (err: unknown) => {
        this.count('dropped.publish');
        this.log.debug({ err, topic }, 'gossip publish failed');
      },
    );
  }

  onMessage(handler: (bytes: Uint8Array, via: MessageVia) => void): void {
    this.messageHandlers.push(handler);
  }

  associate(addr: string, peer: string): void {
    if (this.addrPeer.has(addr) || this.peerAddrs.has(peer) || parseGossipAddr(addr) === undefined) return;
    this.addrPeer.set(addr, peer);
    this.peerAddrs.set(peer, [addr]);
  }

  onTopicMessage(handler: (topic: string, bytes: Uint8Array) => void): void {
    this.topicHandlers.push(handler);
  }

  onUnreachable(handler: (addr: string) => void): void {
    this.unreachableHandlers.push(handler);
  }

  stats(): Record<string, number> {
    const all = new Map(this.counters);
    const connections = this.node?.getConnections() ?? [];
    all.set('connections', connections.length);
    all.set('peers', new Set(connections.map((c) => c.remotePeer.toString())).size);
    all.set('channels', this.channels.size);
    let queued = 0;
    for (const ch of this.channels.values()) queued += ch.queue.length;
    all.set('queued.frames', queued);
    return Object.fromEntries([...all.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.shutdown.abort();
    for (const ch of this.channels.values()) {
      ch.queue = [];
      ch.queuedBytes = 0;
    }
    this.channels.clear();
    const udp = this.udp;
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    await this.node?.stop();
    this.log.debug({ addr: this.addr }, 'gossip host stopped');
  }

  private count(key: string, n = 1): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + n);
  }

  private deliver(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err }, 'gossip message handler threw');
    }
  }

  private learnAddrs(peer: string, addrs: Multiaddr[]): void {
    const mine = addrs.map(gossipAddrOf).filter((a): a is string => a !== undefined);
    for (const old of this.peerAddrs.get(peer) ?? []) {
      if (this.addrPeer.get(old) === peer) this.addrPeer.delete(old);
    }
    for (const a of mine) this.addrPeer.set(a, peer);
    this.peerAddrs.set(peer, mine);
  }

  private forgetPeer(peer: string): void {
    const addrs = this.peerAddrs.get(peer) ?? [];
    for (const a of addrs) {
      if (this.addrPeer.get(a) === peer) this.addrPeer.delete(a);
    }
    this.peerAddrs.delete(peer);
    if (this.stopping) return;
    // The last connection to it closed without our asking (its process died, the network broke):
    // it is probed at once, as when a send stream breaks (a channel reports that itself). Most
    // connections carry no stream of ours (gossipsub peers), so without this a kill -9 would wait
    // for the round-robin probe.
    const now = performance.now();
    for (const a of addrs) {
      if (this.trimming.delete(a)) continue;
      const reported = this.reportedAt.get(a);
      if (this.channels.has(a) || (reported !== undefined && now - reported < REPORTED_RECENTLY_MS)) continue;
      this.count('disconnects');
      for (const h of this.unreachableHandlers) this.deliver(() => h(a));
    }
  }

  /** An open connection to whoever listens at `addr`, in either direction, if identify told us of one. */
  private existingConnection(addr: string): Connection | undefined {
    const peer = this.addrPeer.get(addr);
    if (peer === undefined || !this.node) return undefined;
    return this.node.getConnections().find((c) => c.status === 'open' && c.remotePeer.toString() === peer);
  }

  private async open(ch: Channel): Promise<void> {
    const node = this.node!;
    ch.opening = true;
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.dialTimeoutMs)]);
    let stream: Stream;
    try {
      const conn = this.existingConnection(ch.addr) ?? (await node.dial(ch.target, { signal }));
      stream = await conn.newStream(GOSSIP_PROTOCOL, { signal });
    } catch (err) {
      ch.opening = false;
      if (!this.stopping) this.fail(ch, 'dropped.dial', err);
      return;
    }
    ch.opening = false;
    if (this.stopping || this.channels.get(ch.addr) !== ch) {
      stream.abort(new Error('gossip host stopping'));
      return;
    }
    ch.stream = stream;
    stream.addEventListener('close', (evt) => {
      if (this.stopping || ch.stream !== stream) return;
      this.fail(
        ch,
        'dropped.write',
        (evt as StreamCloseEvent).error ?? new Error('stream closed by the remote'),
      );
    });
    if (stream.status !== 'open') {
      this.fail(ch, 'dropped.write', new Error('stream closed while opening'));
      return;
    }
    this.flush(ch);
  }

  private flush(ch: Channel): void {
    const stream = ch.stream;
    if (!stream || ch.draining) return;
    while (ch.queue.length > 0) {
      const frame = ch.queue.shift()!;
      ch.queuedBytes -= frame.length;
      let more: boolean;
      try {
        more = stream.send(frame);
      } catch (err) {
        this.count('dropped.write');
        this.fail(ch, 'dropped.write', err);
        return;
      }
      this.count('frames.out');
      this.count('bytes.out', frame.length);
      if (!more) {
        ch.draining = true;
        stream.onDrain({ signal: this.shutdown.signal }).then(
          () => {
            ch.draining = false;
            if (ch.stream === stream) this.flush(ch);
          },
          () => {
            ch.draining = false; // closed or stopping: the close listener reports it
          },
        );
        return;
      }
    }
  }

  /** Drops what `ch` still holds (counted under `counter`), forgets it, reports its address unreachable. */
  private fail(ch: Channel, counter: string, err: unknown): void {
    if (this.channels.get(ch.addr) === ch) this.channels.delete(ch.addr);
    const stream = ch.stream;
    ch.stream = undefined;
    if (stream && stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)));
    if (ch.queue.length > 0) this.count(counter, ch.queue.length);
    ch.queue = [];
    ch.queuedBytes = 0;
    this.reportUnreachable(ch.addr, err);
  }

  /** Counts, logs and hands `addr` to the unreachable handlers (remembering when, see forgetPeer). */
  private reportUnreachable(addr: string, err: unknown): void {
    this.count('unreachable');
    this.reportedAt.set(addr, performance.now());
    if (this.reportedAt.size > 4_096) this.reportedAt.delete(this.reportedAt.keys().next().value as string);
    this.log.debug(
      { addr, err: err instanceof Error ? err.message : String(err) },
      'gossip peer unreachable',
    );
    for (const h of this.unreachableHandlers) this.deliver(() => h(addr));
  }

  private receivePacket(packet: Uint8Array, ip: string, port: number): void {
    if (this.stopping) return;
    this.count('packets.in');
    this.count('packet_bytes.in', packet.length);
    const payload = this.codec.open(packet);
    if (typeof payload === 'string') {
      this.count(`dropped.packet_${payload}`);
      return;
    }
    const via: MessageVia = { kind: 'packet', remote: formatGossipAddr(ip, port) };
    for (const h of this.messageHandlers) this.deliver(() => h(payload, via));
  }

  private accept(stream: Stream, conn: Connection): void {
    const decoder = new FrameDecoder(this.opts.maxFrameBytes);
    const peer = conn.remotePeer.toString();
    let dead = false;
    const via: MessageVia = { kind: 'stream', peer };
    const onFrame = (frame: Uint8Array) => {
      this.count('frames.in');
      for (const h of this.messageHandlers) this.deliver(() => h(frame, via));
    };
    stream.addEventListener('message', (evt) => {
      if (dead) return;
      const chunks = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data];
      for (const chunk of chunks) {
        this.count('bytes.in', chunk.length);
        const fault = decoder.push(chunk, onFrame);
        if (fault === undefined) continue;
        dead = true;
        this.count(`dropped.${fault}`);
        this.log.warn(
          { peer: conn.remotePeer.toString(), remote: conn.remoteAddr.toString(), fault },
          'gossip frame refused; resetting the stream',
        );
        stream.abort(new Error(`gossip frame refused: ${fault}`));
        return;
      }
    });
  }
}

/** A UDP socket bound to `ip:port` (0: any free port); a bind failure is a one-line GossipConfigError. */
function bindUdp(type: 'udp4' | 'udp6', ip: string, port: number): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type });
    socket.once('error', (err) => {
      socket.close();
      reject(new GossipConfigError(`gossip: cannot bind UDP ${formatGossipAddr(ip, port)}: ${err.message}`));
    });
    socket.bind({ address: ip, port, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** Whether `err` (or an error it wraps) is EADDRINUSE. */
function isAddrInUse(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 4) return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (e.code === 'EADDRINUSE' || (typeof e.message === 'string' && e.message.includes('EADDRINUSE')))
    return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => isAddrInUse(x, depth + 1))) return true;
  return isAddrInUse(e.cause, depth + 1);
}

/** Starts a gossip host listening on `bind:port` and joined to `topics`. */
export async function startGossipHost(opts: GossipHostOptions): Promise<GossipHost> {
  const host = new Libp2pGossipHost(opts);
  await host.start();
  return host;
}
