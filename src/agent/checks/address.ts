/**
 * `host:port` targets as Consul's TCP/UDP/gRPC/H2PING checks take them (Go's `net.SplitHostPort`:
 * IPv6 in brackets), and Go-style wording of socket errors so outputs read as Consul's do.
 */

export class AddressError extends Error {
  override readonly name = 'AddressError';
}

export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr);
  if (m === null) throw new AddressError(`address ${addr}: missing port in address`);
  const port = Number(m[3]);
  if (port > 65535) throw new AddressError(`address ${addr}: invalid port`);
  return { host: m[1] ?? m[2] ?? '', port };
}

/** Go's `syscall.Errno` texts for the errors a probe meets. */
const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by peer',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network is unreachable',
  EPIPE: 'broken pipe',
  ETIMEDOUT: 'i/o timeout',
  EADDRNOTAVAIL: 'cannot assign requested address',
};

/** The reason part of a Go net error (`connect: connection refused`, `lookup x: no such host`). */
export function socketReason(err: unknown, host: string): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN') return `lookup ${host}: no such host`;
  const text = e?.code ? ERRNO_TEXT[e.code] : undefined;
  if (text === undefined) return e?.message ?? String(err);
  return e.syscall === 'connect' ? `connect: ${text}` : text;
}
