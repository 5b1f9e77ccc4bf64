/**
 * UDP checks (Consul's `CheckUDP`): sends one (empty) datagram to the target and waits for the
 * timeout. A reply, or silence until the timeout, is passing (`UDP connect <addr>: Success`): a
 * UDP service need not answer. An error is critical: typically ECONNREFUSED, which the kernel
 * reports on a connected socket when an ICMP port-unreachable comes back (nothing listens there).
 */

import dgram from 'node:dgram';
import net from 'node:net';
import { socketReason, splitHostPort } from './address.ts';
import type { CheckResult, Probe } from './types.ts';

export function udpProbe(address: string): Probe {
  const success: CheckResult = { status: 'passing', output: `UDP connect ${address}: Success` };
  return (signal) =>
    new Promise<CheckResult>((resolve) => {
      let target: { host: string; port: number };
      try {
        target = splitHostPort(address);
      } catch (err) {
        resolve({ status: 'critical', output: `dial udp ${(err as Error).message}` });
        return;
      }
      const sock = dgram.createSocket(net.isIPv6(target.host) ? 'udp6' : 'udp4');
      let local = '';
      let done = false;
      const finish = (r: CheckResult): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        sock.close();
        resolve(r);
      };
      // Silence until the deadline is what a healthy, quiet UDP service looks like.
      const onAbort = (): void => finish(success);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      sock.on('message', () => finish(success));
      sock.on('error', (err) => {
        const e = err as NodeJS.ErrnoException;
        const reason = socketReason({ code: e.code, message: e.message }, target.host);
        const output =
          e.syscall === 'recvmsg' || e.syscall === 'send'
            ? `read udp ${local}->${address}: read: ${reason}`
            : `dial udp ${address}: ${reason}`;
        finish({ status: 'critical', output });
      });
      sock.connect(target.port, target.host, () => {
        if (done) return;
        const a = sock.address();
        local = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
        sock.send(Buffer.alloc(0));
      });
    });
}
