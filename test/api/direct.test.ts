/**
 * The direct (koa-free) listener itself: routing by prefix, 405 with Allow, the error table, and a
 * route whose answer cannot even be sent still gets a 500 while the server keeps serving.
 */

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { silentLogger } from '../../src/agent/logger.ts';
import type { AgentApi } from '../../src/api/http/context.ts';
import { type DirectRoute, directListener } from '../../src/api/http/direct.ts';
import { badRequest } from '../../src/api/http/errors.ts';

const routes: DirectRoute[] = [
  {
    prefix: '/v1/test/',
    methods: {
      GET: async (ex) => ({ status: 200, json: { path: ex.path, q: ex.query.q ?? null } }),
      PUT: async () => {
        throw badRequest('Missing thing');
      },
      // BigInt has no JSON form: JSON.stringify throws while the answer is sent.
      POST: async () => ({ status: 200, json: { n: 1n } }),
      DELETE: async () => {
        throw new Error('a bug');
      },
    },
  },
];

async function serve(t: import('ava').ExecutionContext) {
  const agent = { datacenter: 'dc1', nodeName: 'n', nodeId: 'id' } as unknown as AgentApi;
  const server = createServer(
    directListener(routes, agent, silentLogger(), (_req, res) => {
      res.writeHead(299).end('fallback');
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('routes by prefix; other paths fall through', async (t) => {
  const base = await serve(t);
  const r = await fetch(`${base}/v1/test/a%2Fb?q=1`);
  t.is(r.status, 200);
  t.deepEqual(await r.json(), { path: '/v1/test/a%2Fb', q: '1' });
  const other = await fetch(`${base}/v1/else`);
  t.is(other.status, 299);
  t.is(await other.text(), 'fallback');
});

test('errors: the table for known ones, 500 for bugs and for answers that cannot be sent', async (t) => {
  const base = await serve(t);
  let r = await fetch(`${base}/v1/test/x`, { method: 'PUT' });
  t.is(r.status, 400);
  t.is(await r.text(), 'Missing thing');
  r = await fetch(`${base}/v1/test/x`, { method: 'DELETE' });
  t.is(r.status, 500);
  t.is(await r.text(), 'internal server error');
  r = await fetch(`${base}/v1/test/x`, { method: 'POST' });
  t.is(r.status, 500);
  t.is(await r.text(), 'internal server error');
  r = await fetch(`${base}/v1/test/x`, { method: 'PATCH' });
  t.is(r.status, 405);
  t.is(r.headers.get('allow'), 'GET, PUT, POST, DELETE');
  // Still serving.
  t.is((await fetch(`${base}/v1/test/y`)).status, 200);
});
