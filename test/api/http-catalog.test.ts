import test from 'ava';
import { type ApiServer, startApiServer } from '../support/api-server.ts';

let api: ApiServer;
test.before(async () => {
  api = await startApiServer();
});
test.after.always(async () => {
  await api?.close();
});

const put = (path: string, body: unknown) =>
  fetch(`${api.url}${path}`, { method: 'PUT', body: typeof body === 'string' ? body : JSON.stringify(body) });

async function register(
  node: string,
  address: string,
  service?: Record<string, unknown>,
  checks?: unknown[],
) {
  const r = await put('/v1/catalog/register', {
    Node: node,
    Address: address,
    Service: service,
    Checks: checks,
  });
  if (r.status !== 200) throw new Error(`register ${node}: ${r.status} ${await r.text()}`);
}

test.serial('register, then every catalog read answers in Consul shape with X-Consul-Index', async (t) => {
  await register(
    'n1',
    '10.0.0.1',
    { Service: 'web', ID: 'web-1', Tags: ['v1', 'blue'], Port: 80, Meta: { env: 'prod' } },
    [
      { CheckID: 'web-ok', Name: 'web ok', ServiceID: 'web-1', Status: 'passing' },
      { CheckID: 'mem', Name: 'memory', Status: 'warning' },
    ],
  );
  await register('n2', '10.0.0.2', { Service: 'web', ID: 'web-2', Tags: ['v2'], Port: 81 }, [
    { CheckID: 'web-ok', ServiceID: 'web-2', Status: 'critical' },
  ]);
  await register('n3', '10.0.0.3', { Service: 'db', Port: 5432 });

  let r = await fetch(`${api.url}/v1/catalog/datacenters`);
  t.deepEqual(await r.json(), ['dc1']);

  r = await fetch(`${api.url}/v1/catalog/nodes`);
  t.true(Number(r.headers.get('x-consul-index')) > 0);
  t.deepEqual(
    ((await r.json()) as { Node: string }[]).map((n) => n.Node),
    ['n1', 'n2', 'n3'],
  );

  r = await fetch(`${api.url}/v1/catalog/services`);
  t.deepEqual(await r.json(), { web: ['blue', 'v1', 'v2'], db: [] });

  r = await fetch(`${api.url}/v1/catalog/service/web?tag=v1`);
  const web = (await r.json()) as Record<string, unknown>[];
  t.is(web.length, 1);
  t.like(web[0], {
    Node: 'n1',
    Address: '10.0.0.1',
    ServiceID: 'web-1',
    ServiceName: 'web',
    ServicePort: 80,
  });
  t.deepEqual(web[0].ServiceMeta, { env: 'prod' });

  r = await fetch(`${api.url}/v1/catalog/service/web?filter=${encodeURIComponent('ServicePort == 81')}`);
  t.deepEqual(
    ((await r.json()) as { Node: string }[]).map((x) => x.Node),
    ['n2'],
  );

  r = await fetch(`${api.url}/v1/catalog/node/n1`);
  const node = (await r.json()) as { Node: { Node: string }; Services: Record<string, { Port: number }> };
  t.is(node.Node.Node, 'n1');
  t.is(node.Services['web-1'].Port, 80);
  r = await fetch(`${api.url}/v1/catalog/node-services/n1`);
  t.is(((await r.json()) as { Services: unknown[] }).Services.length, 1);
  r = await fetch(`${api.url}/v1/catalog/node-services/nope`);
  t.is(r.status, 404);

  r = await fetch(`${api.url}/v1/health/node/n1`);
  t.deepEqual(
    ((await r.json()) as { CheckID: string }[]).map((c) => c.CheckID),
    ['mem', 'web-ok'],
  );
  r = await fetch(`${api.url}/v1/health/checks/web`);
  t.is(((await r.json()) as unknown[]).length, 2);
  r = await fetch(`${api.url}/v1/health/state/critical`);
  t.deepEqual(
    ((await r.json()) as { Node: string }[]).map((c) => c.Node),
    ['n2'],
  );
  r = await fetch(`${api.url}/v1/health/service/web`);
  t.is(((await r.json()) as unknown[]).length, 2);
  r = await fetch(`${api.url}/v1/health/service/web?passing`);
  t.deepEqual(await r.json(), [], 'n1 has a warning node check, n2 a critical service check');
  r = await fetch(`${api.url}/v1/health/service/db?passing`);
  t.is(((await r.json()) as unknown[]).length, 1);
  const selector = encodeURIComponent('Service.Tags contains "v2" and Node.Address == "10.0.0.2"');
  r = await fetch(`${api.url}/v1/health/service/web?filter=${selector}`);
  t.deepEqual(
    ((await r.json()) as { Node: { Node: string } }[]).map((e) => e.Node.Node),
    ['n2'],
  );
  r = await fetch(`${api.url}/v1/health/state/any?filter=${encodeURIComponent('ServiceName == web')}`);
  t.is(((await r.json()) as unknown[]).length, 2);
});

test.serial('deregister a service, a check, then the node', async (t) => {
  let r = await put('/v1/catalog/deregister', { Node: 'n2', ServiceID: 'web-2' });
  t.is(await r.json(), true);
  r = await fetch(`${api.url}/v1/catalog/service/web`);
  t.is(((await r.json()) as unknown[]).length, 1);
  r = await put('/v1/catalog/deregister', { Node: 'n1', CheckID: 'mem' });
  t.is(await r.json(), true);
  r = await fetch(`${api.url}/v1/health/service/web?passing`);
  t.is(((await r.json()) as unknown[]).length, 1, 'n1 passes once its warning check is gone');
  r = await put('/v1/catalog/deregister', { node: 'n3' });
  t.is(await r.json(), true);
  r = await fetch(`${api.url}/v1/catalog/services`);
  t.deepEqual(await r.json(), { web: ['blue', 'v1'] });
});

test.serial('a blocking catalog query wakes on its service, not on another one', async (t) => {
  let r = await fetch(`${api.url}/v1/health/service/web`);
  const index = Number(r.headers.get('x-consul-index'));
  const parked = fetch(`${api.url}/v1/health/service/web?index=${index}&wait=10s`);
  await register('n9', '10.0.0.9', { Service: 'cache', Port: 6379 });
  const unrelated = Number(
    (await fetch(`${api.url}/v1/catalog/service/cache`)).headers.get('x-consul-index'),
  );
  await register('n9', '10.0.0.9', { Service: 'web', ID: 'web-9', Port: 8080 });
  const related = Number((await fetch(`${api.url}/v1/health/service/web`)).headers.get('x-consul-index'));
  r = await parked;
  // Had the change to `cache` answered it, it would carry that change's (lower) index and one instance.
  t.true(related > unrelated);
  t.is(Number(r.headers.get('x-consul-index')), related);
  t.is(((await r.json()) as unknown[]).length, 2);
});

test.serial('bad input: 400 naming the problem, 404 for unknown routes, 405 for wrong methods', async (t) => {
  const cases: [string, string, unknown, number, RegExp][] = [
    ['PUT', '/v1/catalog/register', '{"Node":', 400, /decode/i],
    ['PUT', '/v1/catalog/register', { Address: '1.2.3.4' }, 400, /node/i],
    ['PUT', '/v1/catalog/register', { Node: 'x' }, 400, /address/i],
    [
      'PUT',
      '/v1/catalog/register',
      { Node: 'x', Address: 'a', Service: { Service: 'w', Port: 'eighty' } },
      400,
      /Port/,
    ],
    [
      'PUT',
      '/v1/catalog/register',
      { Node: 'x', Address: 'a', Check: { Status: 'bogus', Name: 'c' } },
      400,
      /Status/,
    ],
    [
      'PUT',
      '/v1/catalog/register',
      { Node: 'x', Address: 'a', Check: { Name: 'c', ServiceID: 'nope' } },
      400,
      /service/i,
    ],
    ['PUT', '/v1/catalog/deregister', {}, 400, /node/i],
    ['GET', '/v1/health/state/sleepy', undefined, 400, /state/i],
    ['GET', '/v1/catalog/nodes?filter=Node%20%3D%3D', undefined, 400, /./],
    ['GET', '/v1/catalog/nodes?stale&consistent', undefined, 400, /conflicting/],
    ['GET', '/v1/catalog/nodes?wait=forever&index=1', undefined, 400, /wait/i],
    ['GET', '/v1/catalog/nodes?dc=elsewhere', undefined, 400, /datacenter/],
    ['GET', '/v1/catalog/nodes?filter=Nope%20%3D%3D%20x', undefined, 400, /Nope/],
    ['GET', '/v1/catalog/service/web?filter=ServicePort%20%3D%3D%20eighty', undefined, 400, /ServicePort/],
    // Checked before blocking: a bad filter does not wait for the index.
    ['GET', '/v1/health/service/web?index=99999&wait=30s&filter=Bogus%20%3D%3D%201', undefined, 400, /Bogus/],
    ['GET', '/v1/catalogue/nodes', undefined, 404, /not found/],
    ['POST', '/v1/catalog/nodes', undefined, 405, /./],
  ];
  for (const [method, path, body, status, text] of cases) {
    const r = await fetch(`${api.url}${path}`, {
      method,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    t.is(r.status, status, `${method} ${path}`);
    t.regex(await r.text(), text, `${method} ${path}`);
  }
  const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
  const r = await fetch(`${api.url}/v1/catalog/register`, { method: 'PUT', body: big });
  t.is(r.status, 413);
});

test.serial('status and operator endpoints', async (t) => {
  let r = await fetch(`${api.url}/v1/status/leader`);
  t.is(await r.json(), api.server.address);
  r = await fetch(`${api.url}/v1/status/peers`);
  t.deepEqual(await r.json(), [api.server.address]);
  r = await fetch(`${api.url}/v1/operator/autopilot/health`);
  t.is(r.status, 200);
  t.like(await r.json(), { Healthy: true, FailureTolerance: 0 });
  r = await fetch(`${api.url}/v1/operator/raft/peer`, { method: 'DELETE' });
  t.is(r.status, 400);
  r = await fetch(`${api.url}/v1/operator/raft/peer?id=unknown`, { method: 'DELETE' });
  t.is(r.status, 400);
  t.regex(await r.text(), /not found/);
});

test.serial('consistency modes: default, ?consistent, ?stale with ?max_stale', async (t) => {
  for (const [query, effective] of [
    ['', 'leader'],
    ['?consistent', 'consistent'],
    ['?stale', 'stale'],
    ['?stale&max_stale=5s', 'stale'],
    ['?max_stale=1s', 'stale'],
  ] as const) {
    const r = await fetch(`${api.url}/v1/catalog/nodes${query}`);
    t.is(r.status, 200, query);
    t.is(r.headers.get('x-consul-effective-consistency'), effective, query);
    t.is(r.headers.get('x-consul-knownleader'), 'true');
    t.is(r.headers.get('x-consul-lastcontact'), '0', 'the leader answered');
  }
  const r = await fetch(`${api.url}/v1/catalog/nodes?max_stale=soon`);
  t.is(r.status, 400);
});
