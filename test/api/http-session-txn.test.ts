/**
 * `/v1/session/*` and `/v1/txn` over an in-memory catalog: a tiny CatalogBackend that applies
 * commands straight to a CatalogState (no Raft) and answers reads with the real blocking query.
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { silentLogger } from '../../src/agent/logger.ts';
import { createHttpHandler } from '../../src/api/http/server.ts';
import { sessionRoutes } from '../../src/api/http/session/routes.ts';
import { txnRoutes } from '../../src/api/http/txn/routes.ts';
import type { SessionRow } from '../../src/catalog/types.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';

const catalog = new MemoryCatalog();
let server: Server;
let url: string;

test.before(async () => {
  const reg = catalog.apply({ type: 'register', node: { Node: 'n1', Address: '127.0.0.1' } });
  if (!reg.result.ok) throw new Error(reg.result.error);
  const reg2 = catalog.apply({
    type: 'register',
    node: { Node: 'n2', Address: '127.0.0.2' },
    service: { Service: 'web', ID: 'web' },
    checks: [
      { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' },
      { CheckID: 'svc:1', Name: 'web alive', Status: 'passing', ServiceID: 'web' },
    ],
  });
  if (!reg2.result.ok) throw new Error(reg2.result.error);
  const handler = createHttpHandler({
    agent: { catalog, datacenter: 'dc1', nodeName: 'n1', nodeId: '6f0e4a8e-0000-4000-8000-000000000001' },
    logger: silentLogger(),
    routers: [sessionRoutes(), txnRoutes()],
  });
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.after.always(async () => {
  if (!server) return;
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
});

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const put = (path: string, body?: unknown): Promise<Response> =>
  fetch(`${url}${path}`, {
    method: 'PUT',
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
const get = (path: string): Promise<Response> => fetch(`${url}${path}`);

async function createSession(body?: unknown): Promise<string> {
  const r = await put('/v1/session/create', body);
  if (r.status !== 200) throw new Error(`session create: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { ID: string }).ID;
}

const sessionIds = async (path: string): Promise<string[]> =>
  ((await (await get(path)).json()) as { ID: string }[]).map((s) => s.ID);

test.serial('session create with defaults, info, node, list, renew, destroy', async (t) => {
  let r = await put('/v1/session/create');
  t.is(r.status, 200, await r.clone().text());
  const { ID } = (await r.json()) as { ID: string };
  t.regex(ID, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

  r = await get(`/v1/session/info/${ID}`);
  t.is(r.status, 200);
  t.true(Number(r.headers.get('x-consul-index')) > 0);
  t.is(r.headers.get('x-consul-knownleader'), 'true');
  const rows = (await r.json()) as SessionRow[];
  t.is(rows.length, 1);
  t.like(rows[0], {
    ID,
    Name: '',
    Node: 'n1',
    // n1 has no serfHealth check, so the session is bound to nothing by default.
    NodeChecks: [],
    ServiceChecks: [],
    LockDelay: 15e9,
    Behavior: 'release',
    TTL: '',
  });
  t.true(rows[0].CreateIndex > 0);

  t.deepEqual(await sessionIds('/v1/session/node/n1'), [ID]);
  t.deepEqual(await sessionIds('/v1/session/node/n2'), []);
  t.deepEqual(await sessionIds('/v1/session/list'), [ID]);

  r = await put(`/v1/session/renew/${ID}`);
  t.is(r.status, 200);
  t.deepEqual(
    ((await r.json()) as SessionRow[]).map((s) => s.ID),
    [ID],
  );

  r = await put(`/v1/session/destroy/${ID}`);
  t.is(r.status, 200);
  t.is(await r.json(), true);

  r = await get(`/v1/session/info/${ID}`);
  t.is(r.status, 200);
  t.deepEqual(await r.json(), []);
  t.true(Number(r.headers.get('x-consul-index')) > 0);
  t.deepEqual(await sessionIds('/v1/session/list'), []);

  r = await put(`/v1/session/renew/${ID}`);
  t.is(r.status, 404);
  t.is(await r.text(), `Session id '${ID}' not found`);
});

test.serial('session create: explicit fields, serfHealth default, lock delay cap, TTL form', async (t) => {
  const a = await createSession({
    name: 'lock', // keys are case-insensitive
    Node: 'n2',
    TTL: '90s',
    LockDelay: '2m',
    Behavior: 'delete',
    ServiceChecks: [{ ID: 'svc:1' }],
  });
  const [row] = (await (await get(`/v1/session/info/${a}`)).json()) as SessionRow[];
  t.like(row, {
    Name: 'lock',
    Node: 'n2',
    TTL: '1m30s',
    LockDelay: 60e9,
    Behavior: 'delete',
    NodeChecks: ['serfHealth'],
    ServiceChecks: [{ ID: 'svc:1', Namespace: '' }],
  });

  const b = await createSession({ Node: 'n2', LockDelay: 5_000_000_000, Checks: [] });
  const [row2] = (await (await get(`/v1/session/info/${b}`)).json()) as SessionRow[];
  t.like(row2, { LockDelay: 5e9, NodeChecks: [] });

  // Consul's lockDelayMinThreshold: a bare number below 1000 is seconds.
  const c = await createSession({ LockDelay: 5 });
  const [row3] = (await (await get(`/v1/session/info/${c}`)).json()) as SessionRow[];
  t.is(row3.LockDelay, 5e9);

  t.deepEqual((await sessionIds('/v1/session/node/n2')).sort(), [a, b].sort());
  for (const id of [a, b, c]) t.is((await put(`/v1/session/destroy/${id}`)).status, 200);
});

test.serial('session create refuses bad input with a 400 and creates nothing', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ Node: 'ghost' }, /ghost|node/i],
    [{ TTL: '5s' }, /^Invalid Session TTL/],
    [{ TTL: '25h' }, /^Invalid Session TTL/],
    [{ TTL: 'soon' }, /duration/],
    [{ Behavior: 'explode' }, /Behavior/],
    [{ NodeChecks: ['missing'] }, /missing/],
    ['{"Name":', /decode/i],
  ];
  for (const [body, text] of cases) {
    const r = await put('/v1/session/create', body);
    t.is(r.status, 400, JSON.stringify(body));
    t.regex(await r.text(), text, JSON.stringify(body));
  }
  t.deepEqual(await sessionIds('/v1/session/list'), []);
});

test.serial('session list is a blocking query woken by a create', async (t) => {
  const first = await get('/v1/session/list');
  const index = Number(first.headers.get('x-consul-index'));
  // Whether it parks before or after the create, it must answer with the create, not the deadline.
  const parked = get(`/v1/session/list?index=${index}&wait=10s`);
  const id = await createSession({ Name: 'wake' });
  const r = await parked;
  t.true(Number(r.headers.get('x-consul-index')) > index);
  t.deepEqual(
    ((await r.json()) as SessionRow[]).map((s) => s.ID),
    [id],
  );
  await put(`/v1/session/destroy/${id}`);
});

test.serial('txn: a lock with a session, held against another, released on destroy', async (t) => {
  const a = await createSession({ LockDelay: '0s' });
  const b = await createSession({ LockDelay: '0s' });
  let r = await put('/v1/txn', [{ KV: { Verb: 'lock', Key: 'svc/leader', Value: b64('a'), Session: a } }]);
  t.is(r.status, 200, await r.clone().text());
  const ok = (await r.json()) as { Results: { KV: { Key: string; LockIndex: number; Session: string } }[] };
  t.like(ok.Results[0].KV, { Key: 'svc/leader', LockIndex: 1, Session: a });

  r = await put('/v1/txn', [{ KV: { Verb: 'lock', Key: 'svc/leader', Value: b64('b'), Session: b } }]);
  t.is(r.status, 409);
  const held = (await r.json()) as { Results: null; Errors: { OpIndex: number; What: string }[] };
  t.is(held.Results, null);
  t.is(held.Errors[0].OpIndex, 0);

  r = await put('/v1/txn', [{ KV: { Verb: 'check-session', Key: 'svc/leader', Session: a } }]);
  t.is(r.status, 200);

  t.is(await (await put(`/v1/session/destroy/${a}`)).json(), true);
  r = await get('/v1/kv/svc/leader');
  const [entry] = (await r.json()) as { Session?: string; Value: string }[];
  t.is(entry.Session, undefined, 'released with the session');
  t.is(entry.Value, b64('a'));
  await put(`/v1/session/destroy/${b}`);
});

test.serial('txn: a failing op rolls everything back with a 409', async (t) => {
  let r = await put('/v1/txn', [
    { KV: { Verb: 'set', Key: 't/a', Value: b64('1') } },
    { kv: { verb: 'set', key: 't/b', value: b64('2'), flags: 7 } },
  ]);
  t.is(r.status, 200, await r.clone().text());
  const body = (await r.json()) as {
    Results: { KV: { Key: string; Flags: number; Value: null } }[];
    Errors: null;
  };
  t.deepEqual(
    body.Results.map((x) => [x.KV.Key, x.KV.Flags, x.KV.Value]),
    [
      ['t/a', 0, null],
      ['t/b', 7, null],
    ],
  );
  t.is(body.Errors, null);

  r = await put('/v1/txn', [
    { KV: { Verb: 'set', Key: 't/c', Value: b64('3') } },
    { KV: { Verb: 'delete', Key: 't/a' } },
    { KV: { Verb: 'check-not-exists', Key: 't/b' } },
  ]);
  t.is(r.status, 409);
  const failed = (await r.json()) as { Results: null; Errors: { OpIndex: number; What: string }[] };
  t.is(failed.Results, null);
  t.is(failed.Errors.length, 1);
  t.is(failed.Errors[0].OpIndex, 2);
  t.is((await get('/v1/kv/t/c')).status, 404, 'the set before the failing op was rolled back');
  t.is((await get('/v1/kv/t/a')).status, 200, 'the delete before the failing op was rolled back');
});

test.serial('txn: a read-only transaction is served as a read', async (t) => {
  let r = await put('/v1/txn', [
    { KV: { Verb: 'get', Key: 't/a' } },
    { KV: { Verb: 'get-tree', Key: 't/' } },
    { KV: { Verb: 'check-not-exists', Key: 't/zzz' } },
  ]);
  t.is(r.status, 200, await r.clone().text());
  t.true(Number(r.headers.get('x-consul-index')) > 0);
  t.is(r.headers.get('x-consul-effective-consistency'), 'leader');
  const body = (await r.json()) as { Results: { KV: { Key: string; Value: string } }[]; Errors: null };
  t.deepEqual(
    body.Results.map((x) => [x.KV.Key, x.KV.Value]),
    [
      ['t/a', b64('1')],
      ['t/a', b64('1')],
      ['t/b', b64('2')],
    ],
  );

  r = await put('/v1/txn?stale', [{ KV: { Verb: 'get', Key: 't/b' } }]);
  t.is(r.status, 200);
  t.is(r.headers.get('x-consul-effective-consistency'), 'stale');

  r = await put('/v1/txn', [{ KV: { Verb: 'get', Key: 'nope' } }]);
  t.is(r.status, 409, 'a get of a missing key fails the transaction, as in Consul');
  t.like(((await r.json()) as { Errors: { OpIndex: number }[] }).Errors[0], { OpIndex: 0 });

  r = await put('/v1/txn?stale&consistent', [{ KV: { Verb: 'get', Key: 't/b' } }]);
  t.is(r.status, 400);
});

test.serial('txn: limits and malformed input', async (t) => {
  const many = Array.from({ length: 129 }, (_, i) => ({ KV: { Verb: 'set', Key: `m/${i}` } }));
  let r = await put('/v1/txn', many);
  t.is(r.status, 413);
  t.is(await r.text(), 'Transaction contains too many operations (129 > 128)');
  t.is((await get('/v1/kv/m/0')).status, 404);

  r = await put(
    '/v1/txn',
    JSON.stringify([{ KV: { Verb: 'set', Key: 'big', Value: b64('x'.repeat(600 * 1024)) } }]),
  );
  t.is(r.status, 413);
  t.is((await get('/v1/kv/big')).status, 404);

  r = await put('/v1/txn', '[{"KV": {"Verb": "set", ');
  t.is(r.status, 400);
  t.regex(await r.text(), /decode/i);

  r = await put('/v1/txn', [{ KV: { Verb: 'explode', Key: 'x' } }]);
  t.is(r.status, 400);
  t.regex(await r.text(), /verb/);

  r = await put('/v1/txn', [{ KV: { Verb: 'set', Key: 'x', Value: '***' } }]);
  t.is(r.status, 400);
  t.regex(await r.text(), /base64/);

  r = await put('/v1/txn', [{ Node: { Verb: 'set', Node: { Node: 'x' } } }]);
  t.is(r.status, 400);
  t.regex(await r.text(), /Node operations are not supported/);

  r = await put('/v1/txn', [{}]);
  t.is(r.status, 400);

  r = await put('/v1/txn', { KV: { Verb: 'set', Key: 'x' } });
  t.is(r.status, 400);

  t.is((await get('/v1/kv/x')).status, 404, 'nothing refused was written');
});
