/**
 * One table from error classes to Consul's status codes and plain-text bodies. Handlers throw;
 * this middleware answers. Bad input is always a 4xx naming the problem; only a fault of meshd
 * itself (or a cluster without a leader, as Consul answers it) is a 5xx.
 */

import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { z } from 'zod';
import { RpcError } from '../../agent/rpc/service.ts';
import { TooManyWaitersError } from '../../catalog/watch.ts';
import { NotLeaderError, RaftStoppedError } from '../../raft/errors.ts';
import { FilterSyntaxError } from '../filter/index.ts';
import { DurationError } from '../wire/duration.ts';
import { BadJsonError, BodyTooLargeError } from '../wire/json-body.ts';

/** An error whose status and text are exactly what the client should get. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export const badRequest = (message: string): HttpError => new HttpError(400, message);
export const notFound = (message: string): HttpError => new HttpError(404, message);

/** The first zod issue as one line naming the field: `Request decode failed: Port: expected number`. */
export function describeZodError(err: z.ZodError, prefix = 'Request decode failed'): string {
  const issue = err.issues[0];
  const path = issue.path.map(String).join('.');
  return `${prefix}: ${path ? `${path}: ` : ''}${issue.message}`;
}

/** An error a handler threw, as the status and one-line message the client gets; undefined for a bug. */
export function classify(err: unknown): { status: number; message: string } | undefined {
  if (err instanceof HttpError) return { status: err.status, message: err.message };
  if (err instanceof BodyTooLargeError) return { status: 413, message: err.message };
  if (err instanceof BadJsonError) return { status: 400, message: `Request decode failed: ${err.message}` };
  if (err instanceof FilterSyntaxError)
    return { status: 400, message: `Failed to create boolean expression evaluator: ${err.message}` };
  if (err instanceof DurationError) return { status: 400, message: err.message };
  if (err instanceof z.ZodError) return { status: 400, message: describeZodError(err) };
  if (err instanceof TooManyWaitersError) return { status: 429, message: err.message };
  if (err instanceof RpcError) {
    switch (err.kind) {
      case 'bad-request':
        return { status: err.status ?? 400, message: err.message };
      case 'conflict':
        return { status: 409, message: err.message };
      case 'not-leader':
      case 'unavailable':
        return { status: 500, message: err.message.includes('leader') ? 'No cluster leader' : err.message };
      case 'timeout':
        return { status: 504, message: err.message };
      default:
        return undefined;
    }
  }
  if (err instanceof NotLeaderError) return { status: 500, message: 'No cluster leader' };
  if (err instanceof RaftStoppedError) return { status: 503, message: 'agent is shutting down' };
  return undefined;
}

export function errorResponder(logger: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (err) {
      // The client went away: nobody to answer.
      if (ctx.req.destroyed && (err as { name?: string })?.name === 'AbortError') return;
      const known = classify(err);
      if (known) {
        ctx.status = known.status;
        ctx.type = 'text/plain';
        ctx.body = known.message;
        return;
      }
      logger.error({ err, method: ctx.method, path: ctx.path }, 'HTTP handler failed');
      ctx.status = 500;
      ctx.type = 'text/plain';
      ctx.body = 'internal server error';
    }
  };
}
