import test from 'ava';
import { FakeConsul, runCli } from './fake-consul.ts';

async function fake(t: { teardown(fn: () => Promise<void>): void }): Promise<FakeConsul> {
  const f = await FakeConsul.start();
  t.teardown(() => f.close());
  return f;
}

const MEMBERS = [
  {
    Name: 'web-1',
    Addr: '10.0.0.3',
    Port: 8301,
    Tags: { role: 'node', dc: 'dc1', build: '0.1.0:abcdef', vsn: '2' },
    Status: 1,
  },
  {
    Name: 'srv-b',
    Addr: '10.0.0.2',
    Port: 8301,
    Tags: { role: 'consul', dc: 'dc1', build: '0.1.0:abcdef', vsn: '2', port: '8300' },
    Status: 1,
  },
  {
    Name: 'srv-a',
    Addr: '10.0.0.1',
    Port: 8301,
    Tags: { role: 'consul', dc: 'dc1', build: '0.1.0', vsn: '2' },
    Status: 4,
  },
  { Name: 'db-1', Addr: '::1', Port: 8301, Tags: { dc: 'dc1', vsn: '2', build: '0.1.0' }, Status: 3 },
];

test('members: GET /v1/agent/members, servers first, aligned like consul members', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/agent/members', { body: MEMBERS });
  const r = await runCli(['members'], { addr: f.addr, env: { MESHD_HTTP_TOKEN: 'tok' } });
  t.is(r.stderr, '');
  t.is(r.code, 0);
  t.is(
    r.stdout,
    [
      'Node   Address        Status  Type    Build  Protocol  DC   Partition  Segment',
      'srv-a  10.0.0.1:8301  failed  server  0.1.0  2         dc1  default    <all>',
      'srv-b  10.0.0.2:8301  alive   server  0.1.0  2         dc1  default    <all>',
      'db-1   [::1]:8301     left    client  0.1.0  2         dc1  default    <default>',
      'web-1  10.0.0.3:8301  alive   client  0.1.0  2         dc1  default    <default>',
      '',
    ].join('\n'),
  );
  t.is(f.requests.length, 1);
  t.like(f.requests[0], { method: 'GET', path: '/v1/agent/members', query: '' });
  t.is(f.requests[0].headers['x-consul-token'], 'tok');
});

test('members -detailed lists the sorted tags; -status filters by regexp', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/agent/members', { body: MEMBERS });
  const detailed = await runCli(['members', '-detailed', '-status=alive|left'], { addr: f.addr });
  t.is(detailed.code, 0);
  t.is(
    detailed.stdout,
    [
      'Node   Address        Status  Tags',
      'srv-b  10.0.0.2:8301  alive   build=0.1.0:abcdef,dc=dc1,port=8300,role=consul,vsn=2',
      'db-1   [::1]:8301     left    build=0.1.0,dc=dc1,vsn=2',
      'web-1  10.0.0.3:8301  alive   build=0.1.0:abcdef,dc=dc1,role=node,vsn=2',
      '',
    ].join('\n'),
  );
});

test('members exits 2 with no output when nothing matches; -wan, -segment and -filter reach the query', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/agent/members', { body: MEMBERS });
  const none = await runCli(
    ['members', '-status', '^none$', '-wan', '-segment=alpha', '-filter=Name == "x"'],
    {
      addr: f.addr,
    },
  );
  t.is(none.code, 2);
  t.is(none.stdout, '');
  t.is(f.requests[0].query, 'filter=Name+%3D%3D+%22x%22&segment=alpha&wan=1');
  const bad = await runCli(['members', '-status=('], { addr: f.addr });
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^Failed to compile status regexp: .+\n$/);
});

test('info: GET /v1/agent/self, Stats sections and keys sorted, tab-indented', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/agent/self', {
    body: {
      Config: { Datacenter: 'dc1', NodeName: 'n1', Server: true, Version: '0.1.0' },
      Member: { Name: 'n1', Addr: '10.0.0.1', Port: 8301, Tags: {}, Status: 1 },
      Stats: {
        raft: { state: 'Leader', applied_index: '5' },
        agent: { services: '1', checks: '0' },
        build: { version: '0.1.0', revision: '', prerelease: '' },
      },
    },
  });
  const r = await runCli(['info'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(
    r.stdout,
    [
      'agent:',
      '\tchecks = 0',
      '\tservices = 1',
      'build:',
      '\tprerelease = ',
      '\trevision = ',
      '\tversion = 0.1.0',
      'consul:',
      '\tserver = true',
      'raft:',
      '\tapplied_index = 5',
      '\tstate = Leader',
      '',
    ].join('\n'),
  );
  t.like(f.requests[0], { method: 'GET', path: '/v1/agent/self', query: '' });
});

test('info tolerates an agent without Stats', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/agent/self', { body: { Config: { Version: '0.1.0', Server: false } } });
  const r = await runCli(['info'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(r.stdout, 'build:\n\tprerelease = \n\trevision = \n\tversion = 0.1.0\nconsul:\n\tserver = false\n');
  f.on('GET', '/v1/agent/self', { body: {} });
  const empty = await runCli(['info'], { addr: f.addr });
  t.is(empty.code, 0);
  t.is(empty.stdout, '');
});

test('leave: PUT /v1/agent/leave', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/agent/leave', { body: '' });
  const r = await runCli(['leave', '-token=secret'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(r.stdout, 'Graceful leave complete\n');
  t.like(f.requests[0], { method: 'PUT', path: '/v1/agent/leave', query: '' });
  t.is(f.requests[0].headers['x-consul-token'], 'secret');
  t.is(f.requests[0].body.length, 0);
  const extra = await runCli(['leave', 'now'], { addr: f.addr });
  t.is(extra.code, 1);
  t.is(extra.stderr, 'Error found unexpected args: [now]\n');
  t.is(f.requests.length, 1);
});

test('reload: PUT /v1/agent/reload', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/agent/reload', { body: '' });
  const r = await runCli(['reload'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(r.stdout, 'Configuration reload triggered\n');
  t.like(f.requests[0], { method: 'PUT', path: '/v1/agent/reload' });
  f.on('PUT', '/v1/agent/reload', { status: 500, body: 'Failed reloading: bad config\n' });
  const bad = await runCli(['reload'], { addr: f.addr });
  t.is(bad.code, 1);
  t.is(bad.stderr, 'Error reloading: Unexpected response code: 500 (Failed reloading: bad config)\n');
});
