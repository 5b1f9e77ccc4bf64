/**
 * H2 ping checks (Consul's `CheckH2PING`): opens an HTTP/2 connection (prior knowledge over
 * cleartext, or TLS with ALPN `h2` when `H2PingUseTLS`), sends a PING frame and waits for its
 * ACK. Outputs as Consul's: `HTTP2 ping was successful`, `Failed to dial to <addr>: <err>`,
 * `HTTP2 ping failed: <err>`.
 */

import http2 from 'node:http2';
import { socketReason, splitHostPort } from './address.ts';
import type { CheckResult, Probe } from './types.ts';

export interface H2PingCheckConfig {
  address: string;
  useTls: boolean;
  tlsServerName: string;
  tlsSkipVerify: boolean;
}

const DEADLINE = 'context deadline exceeded';

export function h2pingProbe(cfg: H2PingCheckConfig): Probe {
  return (signal) =>
    new Promise<CheckResult>((resolve) => {
      let host: string;
      try {
        host = splitHostPort(cfg.address).host;
      } catch (err) {
        resolve({
          status: 'critical',
          output: `Failed to dial to ${cfg.address}: ${(err as Error).message}`,
        });
        return;
      }
      const origin = `${cfg.useTls ? 'https' : 'http'}://${cfg.address}`;
      const session = http2.connect(origin, {
        rejectUnauthorized: !cfg.tlsSkipVerify,
        ...(cfg.tlsServerName !== '' && { servername: cfg.tlsServerName }),
      });
      let connected = false;
      let done = false;
      const finish = (r: CheckResult): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        session.destroy();
        resolve(r);
      };
      const failed = (why: string): CheckResult =>
        connected
          ? { status: 'critical', output: `HTTP2 ping failed: ${why}` }
          : { status: 'critical', output: `Failed to dial to ${cfg.address}: ${why}` };
      const onAbort = (): void => finish(failed(DEADLINE));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      session.on('error', (err) => finish(failed(socketReason(err, host))));
      session.once('close', () => finish(failed('connection closed')));
      session.once('connect', () => {
        connected = true;
        const sent = session.ping((err) => {
          if (err) finish(failed(err.message));
          else finish({ status: 'passing', output: 'HTTP2 ping was successful' });
        });
        if (!sent) finish(failed('too many pings in flight'));
      });
    });
}
