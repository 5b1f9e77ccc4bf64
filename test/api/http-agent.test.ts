import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { type LoadConfigOptions, loadConfig } from '../../src/agent/config/load.ts';
import type { Member } from '../../src/agent/gossip/core/types.ts';
import { JoinError } from '../../src/agent/gossip/membership.ts';
import { UserEvents } from '../../src/agent/gossip/user-events.ts';
import { LocalAgent } from '../../src/agent/local/local-agent.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import { agentHttpRoutes } from '../../src/api/http/agent/routes.ts';
import type { AgentApi } from '../../src/api/http/context.ts';
import { createHttpHandler } from '../../src/api/http/server.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';

const NODE_ID = '0f0e0d0c-0b0a-0908-0706-050403020100';
const OTHER_ID = '1f0e0d0c-0b0a-0908-0706-050403020100';

interface Harness {
  base: string;
  catalog: MemoryCatalog;
  local: LocalAgent;
  files: Record<string, string>;
  leaves: number;
  stopAsked: Promise<unknown> | undefined;
}

const CONFIG_FILE = '/etc/meshd/services.json';

async function start(
  t: import('ava').ExecutionContext,
  files: Record<string, string> = {},
  gossip?: FakeGossip,
): Promise<Harness> {
  const fs: Pick<LoadConfigOptions, 'readFile' | 'readDir'> = {
    readFile: async (p) => {
      const text = files[p];
      if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return text;
    },
  };
  const argv = ['-dev', '-node=node1', `-config-file=${CONFIG_FILE}`, '-retry-join=10.9.9.9'];
  files[CONFIG_FILE] ??= '{}';
  const load = () => loadConfig({ argv, hostname: 'h', ...fs });
  const { config } = await load();
  const catalog = new MemoryCatalog({ now: (i) => 1_700_000_000_000 + i });
  catalog.servers = [
    {
      ID: NODE_ID,
      Node: 'node1',
      Address: '127.0.0.1:8300',
      Leader: true,
      Voter: true,
      ProtocolVersion: '3',
    },
    {
      ID: OTHER_ID,
      Node: 'server2',
      Address: '10.0.0.2:8300',
      Leader: false,
      Voter: true,
      ProtocolVersion: '3',
    },
  ];
  const h: Harness = {
    base: '',
    catalog,
    local: undefined as unknown as LocalAgent,
    files,
    leaves: 0,
    stopAsked: undefined,
  };
  const local = new LocalAgent({
    config,
    nodeId: NODE_ID,
    catalog,
    logger: silentLogger(),
    reloadConfig: load,
    leave: async (opts) => {
      h.leaves++;
      h.stopAsked = opts.beforeStop;
    },
  });
  local.start();
  h.local = local;
  const agent: AgentApi = { catalog, datacenter: 'dc1', nodeName: 'node1', nodeId: NODE_ID, local, gossip };
  const handler = createHttpHandler({ agent, logger: silentLogger(), routers: agentHttpRoutes() });
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  h.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    await local.stop();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return h;
}

const put = (h: Harness, path: string, body?: unknown) =>
  fetch(`${h.base}${path}`, {
    method: 'PUT',
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
const get = (h: Harness, path: string) => fetch(`${h.base}${path}`);
const json = async <T = Record<string, unknown>>(r: Response): Promise<T> => (await r.json()) as T;

async function expectStatus(
  t: import('ava').ExecutionContext,
  r: Response,
  status: number,
  text?: RegExp | string,
) {
  const body = await r.text();
  t.is(r.status, status, body);
  if (typeof text === 'string') t.is(body, text);
  else if (text) t.regex(body, text);
}

test('service register (any key case) → agent views → catalog; TTL pass shows passing in /v1/health/checks', async (t) => {
  const h = await start(t);
  let r = await put(h, '/v1/agent/service/register', {
    name: 'web',
    ID: 'web-1',
    tags: ['v1'],
    port: 8080,
    meta: { Version: '1' },
    check: { ttl: '30s', notes: 'heartbeat' },
  });
  await expectStatus(t, r, 200, '');

  const services = await json<Record<string, Record<string, unknown>>>(await get(h, '/v1/agent/services'));
  t.deepEqual(Object.keys(services), ['web-1']);
  t.like(services['web-1'], {
    ID: 'web-1',
    Service: 'web',
    Port: 8080,
    Datacenter: 'dc1',
    EnableTagOverride: false,
  });
  t.deepEqual(services['web-1'].Tags, ['v1']);
  t.deepEqual(services['web-1'].Meta, { Version: '1' });

  r = await get(h, '/v1/agent/service/web-1');
  const one = await json(r);
  t.is(r.headers.get('x-consul-contenthash'), one.ContentHash as string);
  t.is(one.Service, 'web');

  const checks = await json<Record<string, Record<string, unknown>>>(await get(h, '/v1/agent/checks'));
  t.like(checks['service:web-1'], {
    Node: 'node1',
    CheckID: 'service:web-1',
    Status: 'critical',
    Notes: 'heartbeat',
    ServiceID: 'web-1',
    ServiceName: 'web',
    Type: 'ttl',
  });

  await h.local.state.flush();
  const inCatalog = await json<{ ServiceID: string; ServicePort: number }[]>(
    await get(h, '/v1/catalog/service/web'),
  );
  t.deepEqual(
    inCatalog.map((s) => [s.ServiceID, s.ServicePort]),
    [['web-1', 8080]],
  );
  let health = await json<{ CheckID: string; Status: string; Output: string }[]>(
    await get(h, '/v1/health/checks/web'),
  );
  t.is(health[0].Status, 'critical');

  r = await put(h, '/v1/agent/check/pass/service:web-1?note=all%20good');
  await expectStatus(t, r, 200);
  await h.local.state.flush();
  health = await json(await get(h, '/v1/health/checks/web'));
  t.deepEqual(
    health.map((c) => [c.CheckID, c.Status, c.Output]),
    [['service:web-1', 'passing', 'all good']],
  );

  r = await put(h, '/v1/agent/check/update/service:web-1', { status: 'warning', output: 'slow' });
  await expectStatus(t, r, 200);
  await put(h, '/v1/agent/check/fail/service:web-1');
  t.is(
    (await json<Record<string, { Status: string }>>(await get(h, '/v1/agent/checks')))['service:web-1']
      .Status,
    'critical',
  );

  r = await put(h, '/v1/agent/service/deregister/web-1');
  await expectStatus(t, r, 200);
  await h.local.state.flush();
  t.deepEqual(await json(await get(h, '/v1/catalog/service/web')), []);
  t.deepEqual(await json(await get(h, '/v1/agent/checks')), {});
});

test('Connect.SidecarService over the API registers the sidecar proxy; deregistering the service removes it', async (t) => {
  const h = await start(t);
  await expectStatus(
    t,
    await put(h, '/v1/agent/service/register', {
      Name: 'web',
      Port: 8080,
      Connect: { SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191 }] } } },
    }),
    200,
    '',
  );
  const services = await json<Record<string, Record<string, unknown>>>(await get(h, '/v1/agent/services'));
  t.deepEqual(Object.keys(services).sort(), ['web', 'web-sidecar-proxy']);
  t.like(services['web-sidecar-proxy'], { Kind: 'connect-proxy', Port: 21000 });
  t.like(services['web-sidecar-proxy'].Proxy as Record<string, unknown>, {
    DestinationServiceName: 'web',
    LocalServicePort: 8080,
  });
  await expectStatus(t, await put(h, '/v1/agent/service/deregister/web'), 200, '');
  t.deepEqual(Object.keys(await json<Record<string, unknown>>(await get(h, '/v1/agent/services'))), []);
});

test('bad input is a 400 naming the problem; unknown IDs are 404s', async (t) => {
  const h = await start(t);
  await expectStatus(
    t,
    await put(h, '/v1/agent/service/register', { name: 'x', port: 'http' }),
    400,
    /^Request decode failed: Port: /,
  );
  await expectStatus(
    t,
    await put(h, '/v1/agent/service/register', '{"name": '),
    400,
    /^Request decode failed: invalid JSON/,
  );
  await expectStatus(t, await put(h, '/v1/agent/service/register'), 400, /Request decode failed/);
  await expectStatus(t, await put(h, '/v1/agent/service/register', { port: 1 }), 400, 'Missing service name');
  await expectStatus(
    t,
    await put(h, '/v1/agent/service/register', { name: 'x', check: { interval: '10s' } }),
    400,
    'Invalid check: TTL must be > 0 for TTL checks',
  );
  await expectStatus(
    t,
    await put(h, '/v1/agent/service/register', { name: 'x', check: { ttl: 'soon' } }),
    400,
    /^Request decode failed: Check\.TTL: invalid duration "soon"/,
  );
  await expectStatus(t, await put(h, '/v1/agent/check/register', { ttl: '1s' }), 400, 'Missing check name');
  await expectStatus(
    t,
    await put(h, '/v1/agent/check/register', { name: 'c', ttl: '1s', serviceid: 'nope' }),
    400,
    'ServiceID "nope" does not exist',
  );
  await expectStatus(t, await put(h, '/v1/agent/check/pass/nope'), 404, /^Unknown check ID "nope"/);
  await expectStatus(t, await put(h, '/v1/agent/check/deregister/nope'), 404, /^Unknown check ID "nope"/);
  await expectStatus(t, await put(h, '/v1/agent/service/deregister/nope'), 404, /^Unknown service ID "nope"/);
  await expectStatus(t, await get(h, '/v1/agent/service/nope'), 404, 'unknown service ID: nope');
  await expectStatus(t, await put(h, '/v1/agent/service/deregister/'), 400, 'Missing service ID');

  await put(h, '/v1/agent/check/register', { name: 'hb', ttl: '1m' });
  await put(h, '/v1/agent/check/register', { name: 'api', tcp: '127.0.0.1:1', interval: '5s' });
  await expectStatus(
    t,
    await put(h, '/v1/agent/check/update/hb', { status: 'bogus' }),
    400,
    'Invalid check status: "bogus"',
  );
  await expectStatus(t, await put(h, '/v1/agent/check/update/hb', {}), 400, 'Invalid check status: ""');
  await expectStatus(t, await put(h, '/v1/agent/check/update/hb', { status: 1 }), 400, /Status/);
  await expectStatus(
    t,
    await put(h, '/v1/agent/check/pass/api'),
    404,
    'CheckID "api" does not have associated TTL',
  );

  await expectStatus(t, await put(h, '/v1/agent/maintenance'), 400, 'Missing value for enable');
  await expectStatus(
    t,
    await put(h, '/v1/agent/maintenance?enable=maybe'),
    400,
    'Invalid value for enable: "maybe"',
  );
  await expectStatus(
    t,
    await put(h, '/v1/agent/service/maintenance/nope?enable=true'),
    404,
    /Unknown service ID "nope"/,
  );
  await expectStatus(t, await put(h, '/v1/agent/service/maintenance/nope'), 400, 'Missing value for enable');
  await expectStatus(
    t,
    await get(h, '/v1/agent/services?filter=Service%20%3D%3D'),
    400,
    /boolean expression/,
  );
});

test('maintenance: node and service, with reasons; filter on agent services and checks', async (t) => {
  const h = await start(t);
  await put(h, '/v1/agent/service/register', { Name: 'db', Port: 5432, Tags: ['primary'] });
  await put(h, '/v1/agent/service/register', { Name: 'cache', Port: 6379 });
  await expectStatus(t, await put(h, '/v1/agent/maintenance?enable=true'), 200);
  await expectStatus(t, await put(h, '/v1/agent/service/maintenance/db?enable=true&reason=upgrading'), 200);
  const checks = await json<Record<string, Record<string, unknown>>>(await get(h, '/v1/agent/checks'));
  t.like(checks._node_maintenance, {
    Name: 'Node Maintenance Mode',
    Status: 'critical',
    Notes:
      'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.',
  });
  t.like(checks['_service_maintenance:db'], {
    Status: 'critical',
    Notes: 'upgrading',
    ServiceID: 'db',
    ServiceName: 'db',
  });

  const filtered = await json(
    await get(h, `/v1/agent/services?filter=${encodeURIComponent('"primary" in Tags')}`),
  );
  t.deepEqual(Object.keys(filtered), ['db']);
  const critical = await json(
    await get(h, `/v1/agent/checks?filter=${encodeURIComponent('ServiceID == "db"')}`),
  );
  t.deepEqual(Object.keys(critical), ['_service_maintenance:db']);

  await h.local.state.flush();
  const health = await json<{ CheckID: string }[]>(await get(h, '/v1/health/node/node1'));
  t.deepEqual(
    health.map((c) => c.CheckID),
    ['_node_maintenance', '_service_maintenance:db'],
  );
  await expectStatus(t, await put(h, '/v1/agent/maintenance?enable=false'), 200);
  await expectStatus(t, await put(h, '/v1/agent/service/maintenance/db?enable=false'), 200);
  t.deepEqual(await json(await get(h, '/v1/agent/checks')), {});
});

test('service register with replace-existing-checks, and hash blocking on /v1/agent/service/:id', async (t) => {
  const h = await start(t);
  await put(h, '/v1/agent/service/register', { name: 'web', checks: [{ ttl: '1m' }, { ttl: '2m' }] });
  await put(h, '/v1/agent/service/register', { name: 'web', check: { check_id: 'one', ttl: '1m' } });
  let ids = Object.keys(await json(await get(h, '/v1/agent/checks')));
  t.deepEqual(ids.sort(), ['one', 'service:web:1', 'service:web:2']);
  await put(h, '/v1/agent/service/register?replace-existing-checks', {
    name: 'web',
    check: { check_id: 'one', ttl: '1m' },
  });
  ids = Object.keys(await json(await get(h, '/v1/agent/checks')));
  t.deepEqual(ids, ['one']);

  const first = await get(h, '/v1/agent/service/web');
  const hash = first.headers.get('x-consul-contenthash');
  // Know when the request has parked (no sleeping): wrap the wait it parks on.
  const state = h.local.state;
  const original = state.waitForChange.bind(state);
  const { promise: isParked, resolve: parkedNow } = Promise.withResolvers<void>();
  state.waitForChange = (after, signal) => {
    parkedNow();
    return original(after, signal);
  };
  const parked = get(h, `/v1/agent/service/web?hash=${hash}&wait=10s`);
  await isParked;
  await put(h, '/v1/agent/service/register', {
    name: 'web',
    port: 81,
    check: { check_id: 'one', ttl: '1m' },
  });
  const woken = await parked;
  t.not(woken.headers.get('x-consul-contenthash'), hash);
  t.is((await json(woken)).Port, 81);
  const timedOut = await get(
    h,
    `/v1/agent/service/web?hash=${woken.headers.get('x-consul-contenthash')}&wait=50ms`,
  );
  t.is(timedOut.headers.get('x-consul-contenthash'), woken.headers.get('x-consul-contenthash'));
});

function fakeMember(
  name: string,
  ip: string,
  status: Member['status'],
  meta: Record<string, string>,
): Member {
  return { name, id: meta.id ?? '', addr: `${ip}:8301`, meta, status, incarnation: 1, statusSince: 0 };
}

class FakeGossip {
  left = false;
  joins: string[][] = [];
  forceLeaves: [string, boolean][] = [];
  readonly events = new UserEvents({ nodeName: () => 'node1', services: () => [] }, () => undefined);
  list: Member[] = [
    fakeMember('node1', '127.0.0.1', 'alive', { role: 'consul', dc: 'dc1', id: NODE_ID, port: '8300' }),
    fakeMember('server2', '10.0.0.2', 'suspect', { role: 'consul', dc: 'dc1', id: OTHER_ID, port: '8300' }),
    fakeMember('web', '10.0.0.3', 'failed', { role: 'node', dc: 'dc1' }),
    fakeMember('gone', '10.0.0.4', 'left', { role: 'node', dc: 'dc1' }),
  ];
  members(): Member[] {
    return this.list;
  }
  async join(addrs: string[]): Promise<number> {
    this.joins.push(addrs);
    if (addrs[0].startsWith('10.0.0.2')) return 1;
    throw new JoinError(`1 error occurred:\n\t* Failed to join ${addrs[0]}: i/o timeout\n\n`);
  }
  forceLeave(name: string, prune: boolean): boolean {
    this.forceLeaves.push([name, prune]);
    return true;
  }
}

test('self and members come from gossip, with Serf status numbers and Consul fields', async (t) => {
  const gossip = new FakeGossip();
  const h = await start(t, {}, gossip);
  const self = await json<{
    Config: Record<string, unknown>;
    Member: Record<string, unknown>;
    Stats: Record<string, Record<string, string>>;
  }>(await get(h, '/v1/agent/self'));
  t.like(self.Config, { Datacenter: 'dc1', NodeName: 'node1', NodeID: NODE_ID, Server: true });
  t.like(self.Member, { Name: 'node1', Addr: '127.0.0.1', Port: 8301, Status: 1 });
  t.is(self.Stats.agent.services, '0');
  t.is(self.Stats.consul.server, 'true');

  type M = { Name: string; Addr: string; Port: number; Tags: Record<string, string>; Status: number };
  const members = await json<M[]>(await get(h, '/v1/agent/members'));
  t.deepEqual(
    members.map((m) => [m.Name, m.Addr, m.Port, m.Tags.role, m.Status]),
    [
      ['gone', '10.0.0.4', 8301, 'node', 3],
      ['node1', '127.0.0.1', 8301, 'consul', 1],
      ['server2', '10.0.0.2', 8301, 'consul', 1], // suspect is still alive to Serf
      ['web', '10.0.0.3', 8301, 'node', 4],
    ],
  );
  t.is(members[2].Tags.id, OTHER_ID);
  t.like(members[0], {
    ProtocolMin: 1,
    ProtocolMax: 5,
    ProtocolCur: 2,
    DelegateMin: 2,
    DelegateMax: 5,
    DelegateCur: 4,
  });
  const onlyOther = await json<M[]>(
    await get(h, `/v1/agent/members?filter=${encodeURIComponent('Status == 4')}`),
  );
  t.deepEqual(
    onlyOther.map((m) => m.Name),
    ['web'],
  );
  const wan = await json<M[]>(await get(h, '/v1/agent/members?wan=1'));
  t.deepEqual(
    wan.map((m) => m.Name),
    ['node1.dc1', 'server2.dc1'],
  );
  gossip.left = true;
  const leaving = await json<M[]>(await get(h, '/v1/agent/members'));
  t.is(leaving.find((m) => m.Name === 'node1')?.Status, 2, 'a leaving agent reports itself leaving');
});

test('join goes through gossip: 200 when an address answers, 500 with the errors when none does', async (t) => {
  const gossip = new FakeGossip();
  const h = await start(t, {}, gossip);
  await expectStatus(t, await put(h, '/v1/agent/join/10.0.0.2'), 200, '');
  await expectStatus(t, await put(h, '/v1/agent/join/10.0.0.2:8301'), 200);
  await expectStatus(
    t,
    await put(h, '/v1/agent/join/10.1.1.1'),
    500,
    /Failed to join 10\.1\.1\.1: i\/o timeout/,
  );
  t.deepEqual(gossip.joins, [['10.0.0.2'], ['10.0.0.2:8301'], ['10.1.1.1']]);
  await expectStatus(t, await put(h, '/v1/agent/join/10.0.0.2:99999'), 400, /Invalid address/);
  await expectStatus(t, await put(h, '/v1/agent/join/10.0.0.2?wan=1'), 400, /WAN/);
  t.is(gossip.joins.length, 3, 'refused requests never reach gossip');
});

test('force-leave asks gossip to mark a member left (prune forgets it); never this agent, 404 if unknown', async (t) => {
  const gossip = new FakeGossip();
  const h = await start(t, {}, gossip);
  await expectStatus(t, await put(h, '/v1/agent/force-leave/web'), 200);
  await expectStatus(t, await put(h, '/v1/agent/force-leave/WEB?prune'), 200);
  t.deepEqual(gossip.forceLeaves, [
    ['web', false],
    ['WEB', true],
  ]);
  await expectStatus(
    t,
    await put(h, '/v1/agent/force-leave/nobody'),
    404,
    "agent: No node found with name 'nobody'",
  );
  await expectStatus(t, await put(h, '/v1/agent/force-leave/node1'), 400, /local agent/);
  t.is(gossip.forceLeaves.length, 2);
});

test('events: fire keeps the event locally and publishes it; list filters by name and blocks on the index', async (t) => {
  const gossip = new FakeGossip();
  const published: string[] = [];
  (gossip as { events: UserEvents }).events = new UserEvents(
    { nodeName: () => 'node1', services: () => [{ name: 'web', tags: ['v1'] }] },
    (b) => published.push(b),
  );
  const h = await start(t, {}, gossip);
  let r = await put(h, '/v1/event/fire/deploy?service=web&tag=v1', 'v1.2.3');
  t.is(r.status, 200);
  const fired = await json<{
    ID: string;
    Name: string;
    Payload: string;
    ServiceFilter: string;
    Version: number;
  }>(r);
  t.like(fired, { Name: 'deploy', ServiceFilter: 'web', Version: 1 });
  t.is(Buffer.from(fired.Payload, 'base64').toString(), 'v1.2.3');
  t.is(published.length, 1);

  r = await get(h, '/v1/event/list?name=deploy');
  const index = r.headers.get('x-consul-index') as string;
  t.regex(index, /^\d+$/);
  t.not(index, '0');
  t.deepEqual(
    (await json<{ ID: string }[]>(r)).map((e) => e.ID),
    [fired.ID],
  );
  t.deepEqual(await json<unknown[]>(await get(h, '/v1/event/list?name=other')), []);

  // A blocking list wakes on the next event, and times out with the same index otherwise.
  const parked = get(h, `/v1/event/list?index=${index}&wait=30s`);
  const second = await json<{ ID: string }>(await put(h, '/v1/event/fire/restart'));
  const woken = await parked;
  t.not(woken.headers.get('x-consul-index'), index);
  t.deepEqual(
    (await json<{ ID: string }[]>(woken)).map((e) => e.ID),
    [fired.ID, second.ID],
  );
  const idle = await get(h, `/v1/event/list?index=${woken.headers.get('x-consul-index')}&wait=50ms`);
  t.is(idle.headers.get('x-consul-index'), woken.headers.get('x-consul-index'));

  await expectStatus(
    t,
    await put(h, '/v1/event/fire/big', 'x'.repeat(600)),
    413,
    /exceeds configured limit of 512 bytes/,
  );
  await expectStatus(t, await put(h, '/v1/event/fire/bad?node=(', ''), 400, /Invalid node filter/);
  await expectStatus(
    t,
    await put(h, '/v1/event/fire/bad?tag=v1', ''),
    400,
    /tag filter without service filter/,
  );
  await expectStatus(t, await get(h, '/v1/event/list?index=abc'), 400, /Invalid index/);
  // An event whose service filter matches no local service is not kept here.
  await put(h, '/v1/event/fire/elsewhere?service=db');
  t.deepEqual(await json<unknown[]>(await get(h, '/v1/event/list?name=elsewhere')), []);
});

test('reload re-applies config-file services and checks, keeps API ones; a bad config is a 400 that changes nothing', async (t) => {
  const h = await start(t, {
    [CONFIG_FILE]: JSON.stringify({
      services: [{ name: 'cfg-web', port: 80, check: { ttl: '1m' } }],
      check: { id: 'disk', name: 'Disk', ttl: '5m' },
    }),
  });
  await put(h, '/v1/agent/service/register', { name: 'api-svc' });
  t.deepEqual(Object.keys(await json(await get(h, '/v1/agent/services'))), ['api-svc', 'cfg-web']);
  await put(h, '/v1/agent/check/pass/service:cfg-web');

  h.files[CONFIG_FILE] = JSON.stringify({
    services: [
      { name: 'cfg-web', port: 80, check: { ttl: '1m' } },
      { name: 'cfg-db', port: 5432, enable_tag_override: true },
    ],
    log_level: 'warn',
  });
  await expectStatus(t, await put(h, '/v1/agent/reload'), 200);
  t.deepEqual(Object.keys(await json(await get(h, '/v1/agent/services'))), ['api-svc', 'cfg-db', 'cfg-web']);
  const checks = await json<Record<string, { Status: string }>>(await get(h, '/v1/agent/checks'));
  t.deepEqual(Object.keys(checks), ['service:cfg-web']);
  t.is(checks['service:cfg-web'].Status, 'passing', 'an unchanged check survives a reload');
  t.is(h.local.logger.level, 'warn');

  h.files[CONFIG_FILE] = '{"services": [';
  await expectStatus(t, await put(h, '/v1/agent/reload'), 400, /invalid JSON/);
  h.files[CONFIG_FILE] = JSON.stringify({ services: [{ name: 'x', port: 'eighty' }] });
  await expectStatus(
    t,
    await put(h, '/v1/agent/reload'),
    400,
    'services[0] ("x"): Port: Invalid input: expected number, received string',
  );
  t.deepEqual(Object.keys(await json(await get(h, '/v1/agent/services'))), ['api-svc', 'cfg-db', 'cfg-web']);
});

test('metrics: Consul JSON and Prometheus text', async (t) => {
  const h = await start(t);
  await put(h, '/v1/agent/service/register', { name: 'web', check: { ttl: '1m' } });
  const m = await json<{ Timestamp: string; Gauges: { Name: string; Value: number }[]; Counters: unknown[] }>(
    await get(h, '/v1/agent/metrics'),
  );
  t.regex(m.Timestamp, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC$/);
  const gauge = (name: string) => m.Gauges.find((g) => g.Name === name)?.Value;
  t.is(gauge('consul.agent.local.services'), 1);
  t.is(gauge('consul.agent.local.checks'), 1);
  const r = await get(h, '/v1/agent/metrics?format=prometheus');
  t.regex(r.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await r.text();
  t.regex(text, /^consul_agent_local_services 1$/m);
  t.regex(text, /^# TYPE consul_agent_local_checks gauge$/m);
  // Requests on the direct (koa-free) path count like the others.
  await get(h, '/v1/kv/no-such-key');
  const after = await (await get(h, '/v1/agent/metrics?format=prometheus')).text();
  t.regex(after, /^consul_api_http_requests\{method="GET",code="404"\} [1-9]/m);
});

test('leave answers 200, then asks the agent to stop', async (t) => {
  const h = await start(t);
  await expectStatus(t, await put(h, '/v1/agent/leave'), 200);
  t.is(h.leaves, 1);
  await h.stopAsked; // settles once the answer is out
});
