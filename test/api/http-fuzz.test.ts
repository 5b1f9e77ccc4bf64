/**
 * Bad input never gets a 5xx: random methods, paths, query strings and bodies against every
 * endpoint group of a real one-server catalog, plus the agent's own endpoints.
 */

import test from 'ava';
import fc from 'fast-check';
import { type ApiServer, startApiServer } from '../support/api-server.ts';

let api: ApiServer;
test.before(async () => {
  api = await startApiServer({ nodeName: 'fuzz' });
  await fetch(`${api.url}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({ Node: 'fuzz', Address: '127.0.0.1', Service: { Service: 'web', Port: 80 } }),
  });
});
test.after.always(async () => {
  await api?.close();
});

const paths = [
  '/v1/kv/',
  '/v1/kv/a',
  '/v1/kv/a/b',
  '/v1/txn',
  '/v1/session/create',
  '/v1/session/destroy/x',
  '/v1/session/renew/x',
  '/v1/session/info/x',
  '/v1/session/node/fuzz',
  '/v1/session/list',
  '/v1/catalog/register',
  '/v1/catalog/deregister',
  '/v1/catalog/nodes',
  '/v1/catalog/services',
  '/v1/catalog/service/web',
  '/v1/catalog/node/fuzz',
  '/v1/catalog/node-services/fuzz',
  '/v1/health/node/fuzz',
  '/v1/health/checks/web',
  '/v1/health/service/web',
  '/v1/health/state/any',
  '/v1/status/leader',
  '/v1/status/peers',
  '/v1/operator/raft/configuration',
  '/v1/operator/raft/peer',
  '/v1/operator/autopilot/health',
  '/v1/snapshot',
];

const queryKeys = [
  'index',
  'wait',
  'stale',
  'consistent',
  'max_stale',
  'recurse',
  'keys',
  'separator',
  'raw',
  'cas',
  'flags',
  'acquire',
  'release',
  'filter',
  'tag',
  'node-meta',
  'passing',
  'dc',
  'id',
  'address',
];

const junk = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    '-1',
    '0',
    '1',
    '99999999999999999999',
    '1.5',
    'NaN',
    '5m',
    '10x',
    '%',
    '%zz',
    'true',
    'Node ==',
    '(',
  ),
);

const body = fc.oneof(
  fc.constant(undefined),
  fc.string({ maxLength: 64 }),
  fc.json({ maxDepth: 3 }),
  fc.constantFrom(
    '{',
    '[]',
    '[{"KV":{}}]',
    '{"Node":5}',
    '{"Service":{"Port":"x"}}',
    'null',
    '"str"',
    '{"TTL":"1h"}',
  ),
);

test('random requests never get a 5xx', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('GET', 'PUT', 'POST', 'DELETE'),
      fc.constantFrom(...paths),
      fc.array(fc.tuple(fc.constantFrom(...queryKeys), junk), { maxLength: 4 }),
      body,
      async (method, path, query, payload) => {
        const qs = query
          .filter(([k]) => k !== 'index' && k !== 'wait') // blocking params are below, with a short wait
          .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
          .join('&');
        const url = `${api.url}${path}${qs ? `?${qs}` : ''}`;
        const init: RequestInit = { method, signal: AbortSignal.timeout(10_000) };
        if (payload !== undefined && method !== 'GET') init.body = payload;
        const r = await fetch(url, init);
        await r.arrayBuffer();
        if (r.status >= 500) throw new Error(`${method} ${url} body=${String(payload)} → ${r.status}`);
      },
    ),
    { numRuns: 400 },
  );
  // Blocking parameters with junk values, on reads, with a short wait.
  for (const v of ['-1', 'x', '1e9', '99999999999999999999', '']) {
    const r = await fetch(`${api.url}/v1/kv/a?index=${encodeURIComponent(v)}&wait=10ms`);
    t.true(r.status < 500, `index=${v} → ${r.status}`);
    // index=0: the wait is parsed and checked, but nothing blocks (an empty wait means 5 minutes).
    const w = await fetch(`${api.url}/v1/kv/a?index=0&wait=${encodeURIComponent(v)}`);
    t.true(w.status < 500, `wait=${v} → ${w.status}`);
  }
  t.pass();
});
