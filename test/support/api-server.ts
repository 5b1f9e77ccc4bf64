/**
 * An in-process API server over a real one-server catalog (Raft on memory storage, the server RPC
 * on a free loopback port): route tests exercise the same backend `meshd agent -dev` uses, without
 * spawning a process.
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Router from '@koa/router';
import type { Logger } from 'pino';
import { silentLogger } from '../../src/agent/logger.ts';
import type { MemberSource } from '../../src/agent/server/reconcile.ts';
import { CatalogServer } from '../../src/agent/server/server.ts';
import { agentHttpRoutes } from '../../src/api/http/agent/routes.ts';
import { createHttpHandler } from '../../src/api/http/server.ts';

export interface ApiServer {
  url: string;
  server: CatalogServer;
  http: Server;
  close(): Promise<void>;
}

export async function startApiServer(
  opts: { routers?: Router[]; nodeName?: string; members?: MemberSource; logger?: Logger } = {},
): Promise<ApiServer> {
  const logger = opts.logger ?? silentLogger();
  const server = await CatalogServer.start({
    nodeId: '11111111-2222-3333-4444-555555555555',
    nodeName: opts.nodeName ?? 'test-node',
    datacenter: 'dc1',
    rpcListen: '127.0.0.1:0',
    dataDir: undefined,
    bootstrap: true,
    bootstrapExpect: 0,
    join: () => [],
    members: opts.members,
    retryIntervalMs: 1000,
    autopilot: { cleanupDeadServers: false, deadServerAfterMs: 60_000 },
    logger,
    tickMs: 20,
  });
  const raft = await server.raftStarted();
  const deadline = Date.now() + 10_000;
  while (raft.status().role !== 'leader') {
    if (Date.now() > deadline) throw new Error('in-process server did not become leader');
    await new Promise((r) => setTimeout(r, 10));
  }
  const handler = createHttpHandler({
    agent: {
      catalog: server,
      datacenter: 'dc1',
      nodeName: opts.nodeName ?? 'test-node',
      nodeId: server.nodeId,
    },
    logger,
    routers: opts.routers ?? agentHttpRoutes(),
  });
  const http = createServer(handler);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    http,
    async close() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await server.stop();
    },
  };
}
