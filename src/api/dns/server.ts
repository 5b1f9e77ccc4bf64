/**
 * The DNS listeners: UDP and TCP on each address, the same port. Every packet is checked before
 * anything else sees it (miekg/dns's `DefaultMsgAcceptFunc`, which Consul uses): shorter than a
 * header or a response → dropped; an opcode other than QUERY/NOTIFY → NOTIMP; not exactly one
 * question, or sections a query cannot have, or bytes that do not decode → FORMERR. Each of those
 * is counted in `stats`; none can throw out of here.
 *
 * UDP goes through ./udp-batch.ts (recvmmsg/sendmmsg) where its addon was built, else node:dgram.
 * A UDP query longer than `MAX_UDP_QUERY` is not read whole by the former; under either it gets
 * FORMERR (a question is at most ~260 bytes, EDNS options a few dozen).
 *
 * TCP uses RFC 1035's 2-byte length framing; a connection may carry many queries (answered as
 * they complete, RFC 7766 allows that) and is closed after `idleMs` without traffic.
 */

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { DecodedPacket } from 'dns-packet';
import dnsPacket from 'dns-packet';
import type { Logger } from 'pino';
import { isWireName } from './names.ts';
import type { Transport } from './responder.ts';
import { BatchUdpSocket, loadUdpBatch, loadUdpBatchError } from './udp-batch.ts';

export interface DnsStats {
  /** Packets that reached the responder. */
  queries: number;
  /** Packets that could not be read (short, undecodable, wrong section counts). */
  malformed: number;
  /** Malformed packets answered FORMERR (the rest were dropped). */
  formerr: number;
  /** Packets with an opcode we do not serve, answered NOTIMP. */
  notimp: number;
  /** Packets dropped without an answer (too short, or responses). */
  dropped: number;
  /** UDP answers the kernel refused to send (a full send buffer, mostly): lost, as UDP may be. */
  udpSendErrors: number;
  /** Errors a batched UDP socket reported to its poll (cleared, and reading went on). */
  udpSocketErrors: number;
}

export type Respond = (req: DecodedPacket, raw: Buffer, transport: Transport) => Promise<Buffer>;

export interface DnsListenInit {
  hosts: readonly string[];
  /** 0 picks a free port (the UDP one; TCP then listens on the same). */
  port: number;
  respond: Respond;
  /**
   * A cached response to a UDP query, answered in place of `respond` (the query's bytes were
   * answered before, so they passed the checks below then).
   */
  cached?: (raw: Buffer) => Buffer | undefined;
  logger: Logger;
  /** Close a TCP connection idle this long. @default 8_000 (miekg/dns's idle timeout) */
  idleMs?: number;
  /** @default 1_024 */
  maxTcpConnections?: number;
  /**
   * UDP I/O: `batch` (./udp-batch.ts; an error when its addon is not there), `dgram`, or `auto`
   * (batch when it can). For tests. @default 'auto'
   */
  udpIo?: 'auto' | 'batch' | 'dgram';
  /** Queries of one TCP connection in progress before it is read no further. @default 32 */
  maxInflightPerConnection?: number;
}

export interface DnsListeners {
  /** `host:port` per address (`[v6]:port` for IPv6). */
  addresses: string[];
  stats: DnsStats;
  /** How UDP is read and written, and why not in batches when it is not. */
  udpIo: { kind: 'batch' | 'dgram'; why?: string };
  close(): Promise<void>;
}

/** Every counter at 0. */
export const newDnsStats = (): DnsStats => ({
  queries: 0,
  malformed: 0,
  formerr: 0,
  notimp: 0,
  dropped: 0,
  udpSendErrors: 0,
  udpSocketErrors: 0,
});

/** UDP queries longer than this get FORMERR (and are read only this far in batches). */
export const MAX_UDP_QUERY = 4_096;

const OPCODE_QUERY = 0;
const OPCODE_NOTIFY = 4;
const RCODE_FORMERR = 1;
const RCODE_NOTIMP = 4;

/**
 * Checks and answers one packet; undefined means drop it. Never rejects: a responder failure
 * is logged and the packet dropped.
 */
export async function handlePacket(
  raw: Buffer,
  transport: Transport,
  respond: Respond,
  stats: DnsStats,
  logger: Logger,
): Promise<Buffer | undefined> {
  if (raw.length < 12) {
    stats.malformed++;
    stats.dropped++;
    return undefined;
  }
  const bits = raw.readUInt16BE(2);
  // A response sent to us: answering it could feed a reflection loop.
  if ((bits & 0x8000) !== 0) {
    stats.dropped++;
    return undefined;
  }
  const opcode = (bits >> 11) & 0x0f;
  if (opcode !== OPCODE_QUERY && opcode !== OPCODE_NOTIFY) {
    stats.notimp++;
    return errorReply(raw, RCODE_NOTIMP);
  }
  const [qd, an, ns, ar] = [4, 6, 8, 10].map((o) => raw.readUInt16BE(o));
  if (qd !== 1 || an > 1 || ns > 1 || ar > 2) return formErr(raw, stats);
  let req: DecodedPacket;
  try {
    req = dnsPacket.decode(raw);
  } catch {
    return formErr(raw, stats);
  }
  const q = (req.questions ?? [])[0];
  // The question goes back in the answer: a name that would not encode the same way (a label
  // that grows past 63 bytes once its invalid UTF-8 becomes U+FFFD) is refused here.
  if (q === undefined || typeof q.name !== 'string' || typeof q.type !== 'string' || !isWireName(q.name))
    return formErr(raw, stats);
  stats.queries++;
  try {
    return await respond(req, raw, transport);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'DNS responder failed; query dropped');
    stats.dropped++;
    return undefined;
  }
}

function formErr(raw: Buffer, stats: DnsStats): Buffer {
  stats.malformed++;
  stats.formerr++;
  return errorReply(raw, RCODE_FORMERR);
}

/** A bare header: the query's ID and opcode, QR set, `rcode`, no sections. */
function errorReply(raw: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(raw.readUInt16BE(0), 0);
  out.writeUInt16BE(0x8000 | (raw.readUInt16BE(2) & 0x7800) | rcode, 2);
  return out;
}

export async function listenDns(init: DnsListenInit): Promise<DnsListeners> {
  const stats = newDnsStats();
  const native = init.udpIo === 'dgram' ? undefined : loadUdpBatch();
  if (init.udpIo === 'batch' && native === undefined)
    throw new Error(`batched UDP I/O is not available: ${loadUdpBatchError()}`);
  const udpIo: DnsListeners['udpIo'] =
    native !== undefined
      ? { kind: 'batch' }
      : { kind: 'dgram', why: init.udpIo === 'dgram' ? 'asked for' : loadUdpBatchError() };
  const udps: UdpListener[] = [];
  const batches: BatchUdpSocket[] = [];
  if (native !== undefined) {
    // The batch sockets count in their native memory; these read the sum when asked.
    const sum = (read: (s: BatchUdpSocket) => number): number => batches.reduce((n, s) => n + read(s), 0);
    Object.defineProperties(stats, {
      udpSendErrors: { get: () => sum((s) => s.sent.refused), enumerable: true },
      udpSocketErrors: { get: () => sum((s) => s.socketErrors), enumerable: true },
    });
  }
  const tcps: Server[] = [];
  const conns = new Set<Socket>();
  const addresses: string[] = [];
  const closeAll = async (): Promise<void> => {
    for (const c of conns) c.destroy();
    await Promise.all([
      ...udps.map((u) => u.close()),
      ...tcps.map((t) => new Promise<void>((r) => t.close(() => r()))),
    ]);
  };
  const openUdp = (host: string, port: number): Promise<UdpListener> =>
    native !== undefined
      ? openBatchUdp(native, host, port, init, stats).then((sock) => {
          batches.push(sock);
          return sock;
        })
      : openDgramUdp(host, port, init, stats);
  try {
    for (const host of init.hosts) {
      const { udp, tcp } = await bindPair(host, init, stats, conns, openUdp);
      udps.push(udp);
      tcps.push(tcp);
      addresses.push(isIP(host) === 6 ? `[${host}]:${udp.port}` : `${host}:${udp.port}`);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return { addresses, stats, udpIo, close: closeAll };
}

/** A bound UDP socket answering queries. */
interface UdpListener {
  port: number;
  close(): Promise<void>;
}

/** A UDP query over `MAX_UDP_QUERY` bytes: FORMERR, or dropped when it claims to be a response. */
function oversized(raw: Buffer, stats: DnsStats): Buffer | undefined {
  if ((raw.readUInt16BE(2) & 0x8000) !== 0) {
    stats.malformed++;
    stats.dropped++;
    return undefined;
  }
  return formErr(raw, stats);
}

async function openBatchUdp(
  native: NonNullable<ReturnType<typeof loadUdpBatch>>,
  host: string,
  port: number,
  init: DnsListenInit,
  stats: DnsStats,
): Promise<BatchUdpSocket> {
  const sock: BatchUdpSocket = new BatchUdpSocket(native, host, port, (query, from, cut) => {
    if (cut || query.length > MAX_UDP_QUERY) return oversized(query, stats);
    const hit = init.cached?.(query);
    if (hit !== undefined) {
      stats.queries++;
      return hit;
    }
    // The query's memory is the next batch's: the answer goes later, to a copy of the sender.
    const peer = sock.peer(from);
    void handlePacket(Buffer.from(query), 'udp', init.respond, stats, init.logger).then((out) => {
      if (out !== undefined) sock.send(out, peer);
    });
    return undefined;
  });
  return sock;
}

async function openDgramUdp(
  host: string,
  port: number,
  init: DnsListenInit,
  stats: DnsStats,
): Promise<UdpListener> {
  const udp = await bindUdp(host, port, stats);
  udp.on('message', (msg, rinfo) => {
    if (msg.length > MAX_UDP_QUERY) {
      const out = oversized(msg, stats);
      if (out !== undefined) udp.send(out, rinfo.port, rinfo.address);
      return;
    }
    const hit = init.cached?.(msg);
    if (hit !== undefined) {
      stats.queries++;
      udp.send(hit, rinfo.port, rinfo.address);
      return;
    }
    void handlePacket(msg, 'udp', init.respond, stats, init.logger).then((out) => {
      // No callback: a send error is an 'error' event (counted, see bindUdp), and Node skips a
      // completion call into JS per answer.
      if (out !== undefined) udp.send(out, rinfo.port, rinfo.address);
    });
  });
  return {
    port: udp.address().port,
    close: () => new Promise<void>((r) => udp.close(() => r())),
  };
}

/**
 * A UDP socket and a TCP listener on the same port of `host`. With port 0 the kernel picks the UDP
 * port, which some TCP socket may already hold: then both are tried again on a fresh port.
 */
async function bindPair(
  host: string,
  init: DnsListenInit,
  stats: DnsStats,
  conns: Set<Socket>,
  openUdp: (host: string, port: number) => Promise<UdpListener>,
): Promise<{ udp: UdpListener; tcp: Server }> {
  for (let attempt = 1; ; attempt++) {
    const udp = await openUdp(host, init.port);
    try {
      return { udp, tcp: await listenTcp(host, udp.port, init, stats, conns) };
    } catch (err) {
      await udp.close();
      const retry = init.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 10;
      if (!retry) throw err;
    }
  }
}

function bindUdp(host: string, port: number, stats: DnsStats): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    // Answers go to the IP a query came from: resolving it (dgram's default lookup, deferred to
    // the next tick per packet) is wasted work, so the lookup hands the literal straight back.
    const family = isIP(host) === 6 ? 6 : 4;
    const sock = createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      lookup: (address, _options, callback) => callback(null, address, family),
    });
    sock.once('error', reject);
    sock.bind(port, host, () => {
      sock.off('error', reject);
      // A failed send (answers go without a callback) must not take the listener down.
      sock.on('error', () => {
        stats.udpSendErrors++;
      });
      resolve(sock);
    });
  });
}

function listenTcp(
  host: string,
  port: number,
  init: DnsListenInit,
  stats: DnsStats,
  conns: Set<Socket>,
): Promise<Server> {
  const server = createServer((sock) => serveConnection(sock, init, stats, conns));
  server.maxConnections = init.maxTcpConnections ?? 1_024;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', (err) => init.logger.warn({ err: err.message }, 'DNS TCP listener error'));
      resolve(server);
    });
  });
}

function serveConnection(sock: Socket, init: DnsListenInit, stats: DnsStats, conns: Set<Socket>): void {
  conns.add(sock);
  const maxInflight = init.maxInflightPerConnection ?? 32;
  let buf: Buffer = Buffer.alloc(0);
  let inflight = 0;
  sock.setNoDelay(true);
  sock.setTimeout(init.idleMs ?? 8_000, () => sock.destroy());
  sock.on('error', () => {});
  sock.on('close', () => conns.delete(sock));
  sock.on('data', (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      const frame = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      inflight++;
      if (inflight >= maxInflight) sock.pause();
      void handlePacket(Buffer.from(frame), 'tcp', init.respond, stats, init.logger).then((out) => {
        inflight--;
        if (inflight < maxInflight && sock.isPaused()) sock.resume();
        if (out === undefined || sock.destroyed) return;
        if (out.length > 0xffff) return;
        const len2 = Buffer.alloc(2);
        len2.writeUInt16BE(out.length);
        sock.write(Buffer.concat([len2, out]));
      });
    }
  });
}
