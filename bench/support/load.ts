/**
 * One closed-loop load level with autocannon: `connections` clients each keep one request in flight
 * for `seconds`. Latencies are collected per response at full precision (autocannon's own histogram
 * rounds to whole milliseconds) and only for 2xx answers; anything else counts as an error.
 */

import autocannon, { type RequestParams } from 'autocannon';
import { percentile } from './host.ts';

export interface LoadLevel {
  url: string;
  connections: number;
  seconds: number;
  /** Builds each request (vary the path or body per request). */
  next: () => RequestParams;
}

export interface LoadResult {
  /** 2xx responses per second. */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  /** Non-2xx answers, connection errors and timeouts. */
  errors: number;
  statusCodes: Record<string, number>;
}

export async function runLoad(level: LoadLevel): Promise<LoadResult> {
  const latencies: number[] = [];
  const instance = autocannon({
    url: level.url,
    connections: level.connections,
    duration: level.seconds,
    pipelining: 1,
    timeout: 30,
    requests: [{ setupRequest: (req) => ({ ...req, ...level.next() }) }],
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) latencies.push(ms);
  });
  const r = await instance;
  const sorted = Float64Array.from(latencies).sort();
  const statusCodes: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(r.statusCodeStats)) statusCodes[code] = count;
  return {
    perSecond: latencies.length / r.duration,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    ok: latencies.length,
    errors: r.non2xx + r.errors + r.timeouts,
    statusCodes,
  };
}
