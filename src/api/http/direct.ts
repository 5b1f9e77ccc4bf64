/**
 * The hot path without koa. `/v1/kv/<key>` is what clients hit hardest, and on the bench machine
 * koa's per-request context, middleware chain and router cost more than a read itself (a stale
 * KV read: ~18k/s through koa, ~30k/s straight on node's request and response, one core). Routes
 * here see the same narrow request view as the koa routes' helpers (read.ts, body.ts), answer
 * errors with the same table (errors.ts) and count in the same metrics; every other request goes
 * to koa.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ParsedUrlQuery, parse as parseQuery } from 'node:querystring';
import type { Logger } from 'pino';
import type { AgentApi } from './context.ts';
import { classify } from './errors.ts';
import type { HeaderSink, RequestView } from './read.ts';

/** One request on the direct path: what a route reads, and the headers it sets. */
export class DirectExchange implements RequestView, HeaderSink {
  readonly headers: Record<string, string | number> = {};
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The URL path, not decoded (koa's `ctx.path`). */
  readonly path: string;
  readonly query: ParsedUrlQuery;
  constructor(req: IncomingMessage, res: ServerResponse, path: string, query: ParsedUrlQuery) {
    this.req = req;
    this.res = res;
    this.path = path;
    this.query = query;
  }
  set(name: string, value: string): void {
    this.headers[name] = value;
  }
}

/** A route's answer: JSON, bytes of a given type, or no body. */
export type DirectAnswer =
  | { status: number; json: unknown }
  | { status: number; bytes: Buffer; type: string }
  | { status: number };

export type DirectHandler = (ex: DirectExchange, agent: AgentApi) => Promise<DirectAnswer>;

export interface DirectRoute {
  /** A path prefix (`/v1/kv/`): the route owns every path under it; other methods get a 405. */
  prefix: string;
  methods: Readonly<Record<string, DirectHandler>>;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * A node request listener answering the direct routes itself and handing everything else to
 * `fallback` (the koa app).
 */
export function directListener(
  routes: readonly DirectRoute[],
  agent: AgentApi,
  logger: Logger,
  fallback: RequestListener,
): RequestListener {
  const metrics = agent.local?.metrics;
  return (req, res) => {
    const url = originForm(req.url ?? '/');
    const route = url === undefined ? undefined : routes.find((r) => url.startsWith(r.prefix));
    if (url === undefined || route === undefined) {
      fallback(req, res);
      return;
    }
    const method = req.method ?? 'GET';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const ex = new DirectExchange(req, res, path, parseQuery(q < 0 ? '' : url.slice(q + 1)));
    const handler = Object.hasOwn(route.methods, method) ? route.methods[method] : methodNotAllowed(route);
    handler(ex, agent)
      .then((answer) => {
        send(ex, answer);
        metrics?.recordHttpRequest(method, answer.status);
      })
      // Also what sending the answer threw: a request never becomes an unhandled rejection.
      .catch((err: unknown) => {
        // The client went away: nobody to answer.
        if (req.destroyed && (err as { name?: string })?.name === 'AbortError') return;
        let known = classify(err);
        if (!known) {
          logger.error({ err, method, path }, 'HTTP handler failed');
          known = { status: 500, message: 'internal server error' };
        }
        try {
          // Headers set before the failure stay, as in koa (`Connection: close` after a 413, say).
          send(ex, textAnswer(known.status, known.message));
        } catch (sendErr) {
          logger.error({ err: sendErr, method, path }, 'HTTP error answer failed');
          res.destroy();
        }
        metrics?.recordHttpRequest(method, known.status);
      });
  };
}

function methodNotAllowed(route: DirectRoute): DirectHandler {
  return async (ex) => {
    ex.set('Allow', Object.keys(route.methods).join(', '));
    return textAnswer(405, 'Method Not Allowed');
  };
}

function textAnswer(status: number, message: string): DirectAnswer {
  return { status, bytes: Buffer.from(message), type: 'text/plain; charset=utf-8' };
}

/** The path and query of a request target; an absolute-form target (`GET http://h/p`) made relative. */
function originForm(target: string): string | undefined {
  if (target.startsWith('/')) return target;
  try {
    const u = new URL(target);
    return u.pathname + u.search;
  } catch {
    return undefined;
  }
}

function send(ex: DirectExchange, answer: DirectAnswer): void {
  const { res } = ex;
  if (res.headersSent || res.destroyed) return;
  let body: string | Buffer | undefined;
  if ('json' in answer) {
    body = JSON.stringify(answer.json);
    ex.headers['Content-Type'] = 'application/json; charset=utf-8';
    ex.headers['Content-Length'] = Buffer.byteLength(body);
  } else if ('bytes' in answer) {
    body = answer.bytes;
    ex.headers['Content-Type'] = answer.type;
    ex.headers['Content-Length'] = body.length;
  } else {
    ex.headers['Content-Length'] = 0;
  }
  res.writeHead(answer.status, ex.headers);
  res.end(body);
}
