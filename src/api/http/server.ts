/**
 * The HTTP API server: the direct (koa-free) read path for the hottest reads, then one koa app
 * with a router per endpoint group; one error table; bound on every `client_addr` address at the
 * HTTP port.
 */

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from 'pino';
import http from '../../node-http.ts';
import { serveUi } from '../ui/serve.ts';
import type { AgentApi, ApiState } from './context.ts';
import { directListener, type RequestListener } from './direct.ts';
import { errorResponder } from './errors.ts';
import { serializeJsonBodies } from './koa-json-body.ts';
import { kvRoute } from './kv/routes.ts';

export interface HttpApiOptions {
  agent: AgentApi;
  logger: Logger;
  /** Extra routers (agent-specific endpoint groups). */
  routers?: Router[];
  /** Serve the web UI at `/ui/` (and redirect `/` there): `ui_config.enabled`. */
  ui?: boolean;
}

/** The request listener of the API (no socket): tests may serve it on their own server. */
export function createHttpHandler(opts: HttpApiOptions): RequestListener {
  const app = createKoaApp(opts);
  return directListener([kvRoute], opts.agent, opts.logger.child({ component: 'http' }), app.callback());
}

function createKoaApp(opts: HttpApiOptions): Koa<ApiState> {
  const app = new Koa<ApiState>();
  app.proxy = false;
  serializeJsonBodies(app);
  const log = opts.logger.child({ component: 'http' });
  // Outermost, so it counts the status the client finally gets.
  const metrics = opts.agent.local?.metrics;
  if (metrics) app.use(metrics.httpMiddleware());
  app.use(errorResponder(log));
  app.use(async (ctx, next) => {
    ctx.state.agent = opts.agent;
    await next();
  });
  if (opts.ui) app.use(serveUi());
  const routers = opts.routers ?? [];
  for (const r of routers) {
    app.use(r.routes());
    app.use(r.allowedMethods());
  }
  app.use(async (ctx) => {
    if (ctx.body === undefined && ctx.status === 404) {
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = `404 page not found: ${ctx.method} ${ctx.path}`;
    }
  });
  // koa logs errors it sees itself; everything is answered by errorResponder before that.
  app.silent = true;
  return app;
}

export interface HttpApi {
  /** Bound "host:port" per listener. */
  addresses: string[];
  close(): Promise<void>;
}

export async function startHttpApi(
  opts: HttpApiOptions & { hosts: string[]; port: number },
): Promise<HttpApi> {
  const handler = createHttpHandler(opts);
  const servers: Server[] = [];
  const addresses: string[] = [];
  try {
    for (const host of opts.hosts) {
      const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handler);
      // Blocking queries hold a request for up to 10 minutes plus jitter.
      server.headersTimeout = 60_000;
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const a = server.address() as AddressInfo;
      addresses.push(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }
  opts.logger.child({ component: 'http' }).info({ addresses }, 'HTTP API listening');
  return {
    addresses,
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
