/**
 * Forwarding questions outside our domains to the configured `recursors` (Consul's
 * `handleRecurse`): each recursor in turn, over UDP with a timeout; a truncated UDP answer is
 * asked again over TCP when the requester itself came over TCP (a UDP requester gets the TC bit and
 * retries over TCP itself). An answer other than NOERROR/NXDOMAIN moves on to the next recursor;
 * when all fail the caller answers SERVFAIL.
 */

import { createSocket } from 'node:dgram';
import { isIP, Socket } from 'node:net';

/** Consul's `recursor_timeout` default. */
const RECURSOR_TIMEOUT_MS = 2_000;

export interface RecursorAddr {
  host: string;
  port: number;
}

/** `ip`, `ip:port`, `[v6]:port` or a bare IPv6 → host and port (53 when none is given). */
export function parseRecursor(r: string): RecursorAddr {
  if (isIP(r) !== 0) return { host: r, port: 53 };
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(r);
  if (m === null || isIP(m[1]) === 0) throw new Error(`recursor "${r}" is not an IP address or IP:port`);
  return { host: m[1], port: Number(m[2]) };
}

const rcodeOf = (msg: Buffer): number => msg[3] & 0x0f;
const truncated = (msg: Buffer): boolean => (msg[2] & 0x02) !== 0;
const idOf = (msg: Buffer): number => msg.readUInt16BE(0);

/**
 * The first usable answer to `query` (raw wire bytes) from `recursors`, as raw bytes, or
 * undefined when none answered usefully.
 */
export async function forward(
  query: Buffer,
  recursors: readonly RecursorAddr[],
  transport: 'udp' | 'tcp',
  timeoutMs = RECURSOR_TIMEOUT_MS,
): Promise<Buffer | undefined> {
  for (const r of recursors) {
    try {
      let answer = await exchangeUdp(query, r, timeoutMs);
      if (truncated(answer) && transport === 'tcp') answer = await exchangeTcp(query, r, timeoutMs);
      const rcode = rcodeOf(answer);
      if (rcode === 0 || rcode === 3) return answer;
    } catch {
      // Timeout or unreachable: the next recursor.
    }
  }
  return undefined;
}

/**
 * One exchange with a recursor: `start` wires a socket and calls `finish` once with the answer or
 * an error; the timeout, the single settlement and closing the socket are handled here.
 */
function exchange(
  r: RecursorAddr,
  timeoutMs: number,
  start: (finish: (err: Error | undefined, msg?: Buffer) => void) => { close(): void },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let done = false;
    let sock: { close(): void } | undefined;
    const finish = (err: Error | undefined, msg?: Buffer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock?.close();
      if (err) reject(err);
      else resolve(msg as Buffer);
    };
    const timer = setTimeout(() => finish(new Error(`recursor ${r.host}:${r.port} timed out`)), timeoutMs);
    sock = start(finish);
    if (done) sock.close();
  });
}

export function exchangeUdp(query: Buffer, r: RecursorAddr, timeoutMs: number): Promise<Buffer> {
  return exchange(r, timeoutMs, (finish) => {
    const sock = createSocket(isIP(r.host) === 6 ? 'udp6' : 'udp4');
    sock.on('error', (err) => finish(err));
    sock.on('message', (msg, rinfo) => {
      // Only the recursor's answer to this question counts; anything else is ignored.
      if (rinfo.port !== r.port || msg.length < 12 || idOf(msg) !== idOf(query)) return;
      finish(undefined, msg);
    });
    sock.send(query, r.port, r.host);
    return sock;
  });
}

function exchangeTcp(query: Buffer, r: RecursorAddr, timeoutMs: number): Promise<Buffer> {
  return exchange(r, timeoutMs, (finish) => {
    const sock = new Socket();
    let buf = Buffer.alloc(0);
    sock.on('error', (err) => finish(err));
    sock.on('close', () => finish(new Error(`recursor ${r.host}:${r.port} closed the connection`)));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
        finish(undefined, buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
    sock.connect(r.port, r.host, () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    return { close: () => sock.destroy() };
  });
}
