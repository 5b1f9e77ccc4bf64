/**
 * TCP checks (Consul's `CheckTCP`): passing once a connection (and, with `TCPUseTLS`, a TLS
 * handshake) succeeds, critical otherwise. Outputs as Consul's: `TCP connect <addr>: Success`,
 * `TCP+TLS connect <addr>: Success`, or Go's dial error (`dial tcp <addr>: connect: connection
 * refused`, `... i/o timeout`).
 */

import net from 'node:net';
import tls from 'node:tls';
import { socketReason, splitHostPort } from './address.ts';
import type { CheckResult, Probe } from './types.ts';

export interface TcpCheckConfig {
  address: string;
  useTls: boolean;
  tlsServerName: string;
  tlsSkipVerify: boolean;
}

export function tcpProbe(cfg: TcpCheckConfig): Probe {
  const label = cfg.useTls ? 'TCP+TLS' : 'TCP';
  return (signal) =>
    new Promise<CheckResult>((resolve) => {
      let target: { host: string; port: number };
      try {
        target = splitHostPort(cfg.address);
      } catch (err) {
        resolve({ status: 'critical', output: `dial tcp ${(err as Error).message}` });
        return;
      }
      const sock = cfg.useTls
        ? tls.connect({
            host: target.host,
            port: target.port,
            rejectUnauthorized: !cfg.tlsSkipVerify,
            ...(cfg.tlsServerName !== ''
              ? { servername: cfg.tlsServerName }
              : net.isIP(target.host) === 0 && { servername: target.host }),
          })
        : net.connect({ host: target.host, port: target.port });
      const finish = (r: CheckResult, flush = false): void => {
        signal.removeEventListener('abort', onAbort);
        // At 'secureConnect' the client's last handshake message (TLS 1.3's Finished) may still be
        // queued: ending flushes it and a close_notify first, as Go's Close does. Destroying at once
        // would leave the server with a failed handshake on every run.
        if (flush) sock.end(() => sock.destroy());
        else sock.destroy();
        resolve(r);
      };
      const onAbort = (): void =>
        finish({ status: 'critical', output: `dial tcp ${cfg.address}: i/o timeout` });
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      sock.once(cfg.useTls ? 'secureConnect' : 'connect', () =>
        finish({ status: 'passing', output: `${label} connect ${cfg.address}: Success` }, cfg.useTls),
      );
      sock.once('error', (err) => {
        const reason = socketReason(err, target.host);
        const tlsFailure = cfg.useTls && (err as NodeJS.ErrnoException).syscall === undefined;
        finish({
          status: 'critical',
          output: tlsFailure ? `tls: ${reason}` : `dial tcp ${cfg.address}: ${reason}`,
        });
      });
    });
}
