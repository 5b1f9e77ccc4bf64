import test from 'ava';
import { type ApiServer, startApiServer } from '../support/api-server.ts';

let api: ApiServer;
test.before(async () => {
  api = await startApiServer({ nodeName: 'n1' });
  const r = await fetch(`${api.url}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({
      Node: 'n1',
      Address: '10.0.0.1',
      Check: { CheckID: 'alive', Name: 'alive', Status: 'passing' },
    }),
  });
  if (r.status !== 200) throw new Error(await r.text());
});
test.after.always(async () => {
  await api?.close();
});

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const put = (path: string, body?: unknown) =>
  fetch(`${api.url}${path}`, {
    method: 'PUT',
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });

test.serial('session create, info, node, list, renew, destroy', async (t) => {
  let r = await put('/v1/session/create', {
    Name: 'lock',
    TTL: '15s',
    LockDelay: '5s',
    NodeChecks: ['alive'],
  });
  t.is(r.status, 200, await r.clone().text());
  const { ID } = (await r.json()) as { ID: string };
  t.regex(ID, /^[0-9a-f-]{36}$/);
  r = await fetch(`${api.url}/v1/session/info/${ID}`);
  t.true(Number(r.headers.get('x-consul-index')) > 0);
  const [info] = (await r.json()) as Record<string, unknown>[];
  t.like(info, {
    ID,
    Name: 'lock',
    Node: 'n1',
    TTL: '15s',
    LockDelay: 5e9,
    Behavior: 'release',
    NodeChecks: ['alive'],
  });
  r = await fetch(`${api.url}/v1/session/node/n1`);
  t.deepEqual(
    ((await r.json()) as { ID: string }[]).map((s) => s.ID),
    [ID],
  );
  r = await fetch(`${api.url}/v1/session/list`);
  t.is(((await r.json()) as unknown[]).length, 1);
  r = await put(`/v1/session/renew/${ID}`);
  t.is(r.status, 200);
  t.is(((await r.json()) as { ID: string }[])[0].ID, ID);

  // A lock with it, then destroy: the key is released.
  r = await put(`/v1/kv/svc/leader?acquire=${ID}`, 'me');
  t.is(await r.json(), true);
  r = await fetch(`${api.url}/v1/kv/svc/leader`);
  t.is(((await r.json()) as { Session: string }[])[0].Session, ID);
  r = await put(`/v1/session/destroy/${ID}`);
  t.is(await r.json(), true);
  r = await fetch(`${api.url}/v1/kv/svc/leader`);
  t.is(((await r.json()) as { Session?: string }[])[0].Session, undefined);
  r = await fetch(`${api.url}/v1/session/info/${ID}`);
  t.deepEqual(await r.json(), []);
  r = await put(`/v1/session/renew/${ID}`);
  t.is(r.status, 404);
  t.regex(await r.text(), /not found/);
});

test.serial('session create refuses bad input with a 400', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ Node: 'ghost' }, /node/i],
    [{ TTL: '5s' }, /TTL/],
    [{ TTL: 'soon' }, /duration/],
    [{ Behavior: 'explode' }, /Behavior/],
    [{ NodeChecks: ['missing'] }, /missing/],
    ['{"Name":', /decode/i],
  ];
  for (const [body, text] of cases) {
    const r = await put('/v1/session/create', body);
    t.is(r.status, 400, JSON.stringify(body));
    t.regex(await r.text(), text);
  }
  t.is(
    ((await (await fetch(`${api.url}/v1/session/list`)).json()) as unknown[]).length,
    0,
    'nothing was created',
  );
});

test.serial('an acquire with an unknown session is a 400; a held lock makes others fail', async (t) => {
  let r = await put('/v1/kv/l?acquire=00000000-0000-0000-0000-000000000000', 'x');
  t.is(r.status, 400);
  const a = ((await (await put('/v1/session/create', { LockDelay: '0s' })).json()) as { ID: string }).ID;
  const b = ((await (await put('/v1/session/create', {})).json()) as { ID: string }).ID;
  t.is(await (await put(`/v1/kv/l?acquire=${a}`, 'a')).json(), true);
  t.is(await (await put(`/v1/kv/l?acquire=${b}`, 'b')).json(), false);
  t.is(await (await put(`/v1/kv/l?release=${b}`, 'b')).json(), false, 'only the holder releases');
  t.is(await (await put(`/v1/kv/l?release=${a}`, 'a2')).json(), true);
  t.is(
    await (await put(`/v1/kv/l?acquire=${b}`, 'b')).json(),
    true,
    'free after release (no delay on release)',
  );
  r = await fetch(`${api.url}/v1/kv/l`);
  t.is(((await r.json()) as { LockIndex: number }[])[0].LockIndex, 2);
});

test.serial('txn: atomic writes, 409 rollback, read-only txn', async (t) => {
  let r = await put('/v1/txn', [
    { KV: { Verb: 'set', Key: 't/a', Value: b64('1') } },
    { kv: { verb: 'set', key: 't/b', value: b64('2'), flags: 7 } },
  ]);
  t.is(r.status, 200, await r.clone().text());
  let body = (await r.json()) as {
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
    { KV: { Verb: 'check-index', Key: 't/a', Index: 1 } },
  ]);
  t.is(r.status, 409);
  const failed = (await r.json()) as { Errors: { OpIndex: number; What: string }[] };
  t.is(failed.Errors[0].OpIndex, 1);
  t.regex(failed.Errors[0].What, /index check/);
  t.is((await fetch(`${api.url}/v1/kv/t/c`)).status, 404, 'the set before the failing op was rolled back');

  r = await put('/v1/txn', [{ KV: { Verb: 'get', Key: 't/a' } }, { KV: { Verb: 'get-tree', Key: 't/' } }]);
  t.is(r.status, 200);
  t.true(Number(r.headers.get('x-consul-index')) > 0);
  body = (await r.json()) as typeof body;
  t.is(body.Results.length, 3);
  t.is((body.Results[0].KV as unknown as { Value: string }).Value, b64('1'));

  // Limits and malformed transactions: test/api/http-session-txn.test.ts.
});
