import test from 'ava';
import { FakeConsul, runCli } from './fake-consul.ts';

async function fake(t: { teardown(fn: () => Promise<void>): void }): Promise<FakeConsul> {
  const f = await FakeConsul.start();
  t.teardown(() => f.close());
  return f;
}

const NODES = [
  {
    ID: 'b1b2b3b4-1111-2222-3333-444444444444',
    Node: 'web',
    Address: '10.0.0.2',
    Datacenter: 'dc1',
    TaggedAddresses: { wan: '1.2.3.4', lan: '10.0.0.2' },
    Meta: { rack: 'r1', 'consul-network-segment': '' },
  },
  {
    ID: 'a1a2a3a4-1111-2222-3333-444444444444',
    Node: 'db',
    Address: '10.0.0.1',
    Datacenter: 'dc1',
    TaggedAddresses: null,
    Meta: null,
  },
];

test('catalog services: GET /v1/catalog/services, names sorted; -tags aligned like consul', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/catalog/services', { body: { web: ['v2', 'v1'], consul: [], db: null } });
  const plain = await runCli(['catalog', 'services'], { addr: f.addr });
  t.is(plain.code, 0);
  t.is(plain.stdout, 'consul\ndb\nweb\n');
  t.like(f.requests[0], { method: 'GET', path: '/v1/catalog/services', query: '' });
  const tags = await runCli(['catalog', 'services', '-tags', '-node-meta', 'rack=r1', '-stale'], {
    addr: f.addr,
  });
  t.is(tags.stdout, 'consul      \ndb          \nweb         v1,v2\n');
  t.is(f.requests[1].query, 'node-meta=rack%3Ar1&stale=');
});

test('catalog services -node: GET /v1/catalog/node/<node>; nothing found is a message, exit 0', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/catalog/node/n1', {
    body: {
      Node: { Node: 'n1' },
      Services: {
        web1: { Service: 'web', Tags: ['b'] },
        web2: { Service: 'web', Tags: ['a', 'b'] },
        db: { Service: 'db', Tags: [] },
      },
    },
  });
  const r = await runCli(['catalog', 'services', '-node=n1', '-tags'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(r.stdout, 'db       \nweb      a,b\n');
  const none = await runCli(['catalog', 'services', '-node=ghost'], { addr: f.addr });
  t.is(none.code, 0);
  t.is(none.stdout, '');
  t.is(none.stderr, 'No services match the given query - try expanding your search.\n');
});

test('catalog nodes: sorted by name, short IDs; -detailed adds tagged addresses and meta', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/catalog/nodes', { body: NODES });
  const r = await runCli(['catalog', 'nodes'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(
    r.stdout,
    'Node  ID        Address   DC\ndb    a1a2a3a4  10.0.0.1  dc1\nweb   b1b2b3b4  10.0.0.2  dc1\n',
  );
  t.like(f.requests[0], { method: 'GET', path: '/v1/catalog/nodes', query: '' });
  const d = await runCli(['catalog', 'nodes', '-detailed', '-filter', 'Meta.rack == r1', '-datacenter=dc1'], {
    addr: f.addr,
  });
  t.is(
    d.stdout,
    [
      'Node  ID                                    Address   DC   TaggedAddresses            Meta',
      `db    a1a2a3a4-1111-2222-3333-444444444444  10.0.0.1  dc1  ${' '.repeat(25)}  `,
      'web   b1b2b3b4-1111-2222-3333-444444444444  10.0.0.2  dc1  lan=10.0.0.2, wan=1.2.3.4  consul-network-segment=, rack=r1',
      '',
    ].join('\n'),
  );
  t.is(f.requests[1].query, 'dc=dc1&filter=Meta.rack+%3D%3D+r1');
});

test('catalog nodes -service: GET /v1/catalog/service/<s>, one row per node; -near keeps the agent order', async (t) => {
  const f = await fake(t);
  const instance = (node: string, id: string) => ({
    ID: id,
    Node: node,
    Address: '10.0.0.9',
    Datacenter: 'dc1',
    TaggedAddresses: {},
    NodeMeta: { zone: 'a' },
    ServiceName: 'web',
  });
  f.on('GET', '/v1/catalog/service/web', {
    body: [instance('z', 'zz-1'), instance('a', 'aa-1'), instance('z', 'zz-1')],
  });
  const r = await runCli(['catalog', 'nodes', '-service=web', '-detailed'], { addr: f.addr });
  t.is(
    r.stdout,
    'Node  ID    Address   DC   TaggedAddresses  Meta\na     aa-1  10.0.0.9  dc1                   zone=a\nz     zz-1  10.0.0.9  dc1                   zone=a\n',
  );
  const near = await runCli(['catalog', 'nodes', '-service=web', '-near=_agent'], { addr: f.addr });
  t.is(near.stdout, 'Node  ID  Address   DC\nz     zz  10.0.0.9  dc1\na     aa  10.0.0.9  dc1\n');
  t.is(f.requests[1].query, 'near=_agent');
  f.on('GET', '/v1/catalog/nodes', { body: [] });
  const none = await runCli(['catalog', 'nodes'], { addr: f.addr });
  t.is(none.code, 0);
  t.is(none.stderr, 'No nodes match the given query - try expanding your search.\n');
});

test('catalog datacenters: one per line in the agent order; none is an error', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/catalog/datacenters', { body: ['dc2', 'dc1'] });
  const r = await runCli(['catalog', 'datacenters'], { addr: f.addr });
  t.is(r.stdout, 'dc2\ndc1\n');
  t.like(f.requests[0], { method: 'GET', path: '/v1/catalog/datacenters', query: '' });
  f.on('GET', '/v1/catalog/datacenters', { body: [] });
  const none = await runCli(['catalog', 'datacenters'], { addr: f.addr });
  t.is(none.code, 1);
  t.is(none.stderr, 'No datacenters found\n');
});

test('catalog HTTP errors are one line', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/catalog/services', { status: 500, body: 'x' });
  f.on('GET', '/v1/catalog/nodes', { status: 403, body: 'Permission denied' });
  const s = await runCli(['catalog', 'services'], { addr: f.addr });
  t.is(s.code, 1);
  t.is(s.stderr, 'Error listing services: Unexpected response code: 500 (x)\n');
  const n = await runCli(['catalog', 'nodes'], { addr: f.addr });
  t.is(n.stderr, 'Error listing nodes: Unexpected response code: 403 (Permission denied)\n');
});
