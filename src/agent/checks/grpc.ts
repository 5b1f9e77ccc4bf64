/**
 * gRPC checks (Consul's `CheckGRPC`): the standard `grpc.health.v1.Health/Check` call against
 * `host:port[/service]`; SERVING is passing, any other status or error critical. Outputs as
 * Consul's: `gRPC check <target>: success`, `gRPC <target> serving status: NOT_SERVING`, or the
 * call's error in grpc-go's words (`rpc error: code = Unavailable desc = ...`).
 *
 * The channel is kept between runs (Consul dials per run): its HTTP/2 connection is reused, and
 * grpc-js reconnects by itself when the target comes back. The two messages have one field each,
 * so they are encoded by hand rather than through a .proto loader.
 */

import { ChannelCredentials, Client, status as GrpcStatus, Metadata } from '@grpc/grpc-js';
import type { CheckResult, ProbeHandle } from './types.ts';

const CHECK_PATH = '/grpc.health.v1.Health/Check';
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

export interface GrpcCheckConfig {
  /** `host:port` or `host:port/service`. */
  target: string;
  useTls: boolean;
  tlsServerName: string;
  tlsSkipVerify: boolean;
  timeoutMs: number;
}

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** `HealthCheckRequest { string service = 1; }` */
export function encodeHealthRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0);
  const s = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a, ...varint(s.length)]), s]);
}

/** `HealthCheckResponse { ServingStatus status = 1; }`; unknown fields skipped. */
export function decodeHealthResponse(buf: Buffer): number {
  let i = 0;
  let status = 0;
  const readVarint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const key = readVarint();
    const wire = key & 7;
    if (wire === 0) {
      const v = readVarint();
      if (key >>> 3 === 1) status = v;
    } else if (wire === 2) i += readVarint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
  return status;
}

/** grpc-go's code names: `DEADLINE_EXCEEDED` → `DeadlineExceeded`. */
function goCodeName(code: number): string {
  const name = GrpcStatus[code] ?? 'Unknown';
  if (name === 'OK') return 'OK';
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

export function grpcProbe(cfg: GrpcCheckConfig): ProbeHandle {
  const slash = cfg.target.indexOf('/');
  const server = slash < 0 ? cfg.target : cfg.target.slice(0, slash);
  const request = encodeHealthRequest(slash < 0 ? '' : cfg.target.slice(slash + 1));
  const creds = cfg.useTls
    ? ChannelCredentials.createSsl(null, null, null, {
        rejectUnauthorized: !cfg.tlsSkipVerify,
        ...(cfg.tlsSkipVerify && { checkServerIdentity: () => undefined }),
      })
    : ChannelCredentials.createInsecure();
  let client: Client | undefined;
  const channel = (): Client => {
    client ??= new Client(server, creds, {
      ...(cfg.useTls && cfg.tlsServerName !== '' && { 'grpc.ssl_target_name_override': cfg.tlsServerName }),
    });
    return client;
  };

  const run = (signal: AbortSignal): Promise<CheckResult> =>
    new Promise((resolve) => {
      const call = channel().makeUnaryRequest<Buffer, number>(
        CHECK_PATH,
        (b) => b,
        decodeHealthResponse,
        request,
        new Metadata(),
        { deadline: Date.now() + cfg.timeoutMs },
        (err, status) => {
          signal.removeEventListener('abort', onAbort);
          if (err) {
            const timedOut = err.code === GrpcStatus.DEADLINE_EXCEEDED || err.code === GrpcStatus.CANCELLED;
            const code = timedOut ? 'DeadlineExceeded' : goCodeName(err.code);
            const desc = timedOut ? 'context deadline exceeded' : err.details;
            resolve({ status: 'critical', output: `rpc error: code = ${code} desc = ${desc}` });
          } else if (status !== 1) {
            const name = SERVING_STATUS[status ?? 0] ?? String(status);
            resolve({ status: 'critical', output: `gRPC ${cfg.target} serving status: ${name}` });
          } else {
            resolve({ status: 'passing', output: `gRPC check ${cfg.target}: success` });
          }
        },
      );
      // Cancelling answers the callback with CANCELLED; the deadline covers the usual case.
      const onAbort = (): void => call.cancel();
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });

  return {
    run,
    close: () => {
      client?.close();
      client = undefined;
    },
  };
}
