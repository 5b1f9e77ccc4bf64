import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import {
  CHECKS_WATCH,
  connectWatch,
  deregisterScope,
  NODES_WATCH,
  nodeChecksWatch,
  nodeWatch,
  Registry,
  SERVICES_WATCH,
  serviceWatch,
} from '../../src/catalog/registry.ts';
import type {
  CheckInput,
  DeregisterCommand,
  HealthStatus,
  NodeInput,
  RegisterCommand,
  ServiceInput,
} from '../../src/catalog/types.ts';
import { type QueryRun, WatchRegistry } from '../../src/catalog/watch.ts';
import { RecordingRegistry } from '../support/recording-watches.ts';

const UUID_A = '0a1b2c3d-0000-4000-8000-00000000000a';
const UUID_B = '0a1b2c3d-0000-4000-8000-00000000000b';

/**
 * A register command. A bare node name leaves an existing node as it is (`skipNodeUpdate`) and
 * creates a missing one at 10.0.0.1; a full NodeInput writes the node.
 */
function reg(
  node: string | NodeInput,
  extra: { service?: ServiceInput; checks?: CheckInput[]; skipNodeUpdate?: boolean } = {},
): RegisterCommand {
  if (typeof node === 'string') {
    return {
      type: 'register',
      node: { Node: node, Address: '10.0.0.1' },
      skipNodeUpdate: true,
      now: 0,
      ...extra,
    };
  }
  return { type: 'register', node, now: 0, ...extra };
}

function dereg(node: string, ids: { serviceId?: string; checkId?: string } = {}): DeregisterCommand {
  return { type: 'deregister', node, now: 0, ...ids };
}

function ok(r: Registry, index: number, cmd: RegisterCommand) {
  const res = r.register(index, cmd);
  assert.ok(res.ok, res.ok ? '' : res.error);
  return res.checks;
}

/** Lets settled promises run their reactions (no clock involved). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Parks on a query run's watch keys as a blocking query would, and reports whether it woke. */
function park(watches: WatchRegistry, run: QueryRun<unknown>) {
  const ac = new AbortController();
  const state = { woken: false };
  watches.waitForChange(run.watch, watches.lastIndex, ac.signal).then(
    () => {
      state.woken = true;
    },
    () => {},
  );
  return { state, stop: () => ac.abort() };
}

/** A registry with web on n1 and n2, db on n3, and checks. */
function sample(watches?: WatchRegistry): Registry {
  const r = new Registry(watches);
  ok(
    r,
    1,
    reg(
      { Node: 'n1', Address: '10.0.0.1', Meta: { env: 'prod' } },
      {
        service: { Service: 'web', ID: 'web-1', Tags: ['v1', 'Primary'], Port: 80 },
        checks: [
          { CheckID: 'serfHealth', Name: 'Serf', Status: 'passing' },
          { CheckID: 'web-http', Name: 'HTTP', ServiceID: 'web-1', Status: 'passing' },
        ],
      },
    ),
  );
  ok(
    r,
    2,
    reg(
      { Node: 'n2', Address: '10.0.0.2', Meta: { env: 'dev' } },
      {
        service: { Service: 'web', ID: 'web-2', Tags: ['v2'], Port: 80 },
        checks: [{ CheckID: 'web-http', ServiceID: 'web-2', Status: 'warning' }],
      },
    ),
  );
  ok(
    r,
    3,
    reg(
      { Node: 'n3', Address: '10.0.0.3', Meta: { env: 'prod' } },
      { service: { Service: 'db', Tags: ['primary'] }, checks: [{ CheckID: 'db-tcp', ServiceID: 'db' }] },
    ),
  );
  return r;
}

// ---- register ----

test('register creates the node, the service and the checks with Consul defaults', (t) => {
  const r = new Registry();
  const checks = ok(
    r,
    5,
    reg(
      { Node: 'n1', Address: '10.0.0.1', ID: UUID_A.toUpperCase() },
      {
        service: { Service: 'web', Tags: ['a'] },
        checks: [
          { CheckID: 'c1', ServiceID: 'web' },
          { CheckID: '', Name: 'mem' },
        ],
      },
    ),
  );
  t.deepEqual(r.getNode('n1'), {
    ID: UUID_A,
    Node: 'n1',
    Address: '10.0.0.1',
    Datacenter: '',
    TaggedAddresses: {},
    Meta: {},
    CreateIndex: 5,
    ModifyIndex: 5,
  });
  t.deepEqual(r.getService('n1', 'web'), {
    Node: 'n1',
    ID: 'web',
    Service: 'web',
    Tags: ['a'],
    Address: '',
    TaggedAddresses: {},
    Port: 0,
    Meta: {},
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false,
    Kind: '',
    Proxy: {},
    Connect: {},
    CreateIndex: 5,
    ModifyIndex: 5,
  });
  t.deepEqual(r.getCheck('n1', 'c1'), {
    Node: 'n1',
    CheckID: 'c1',
    Name: '',
    Status: 'critical',
    Notes: '',
    Output: '',
    ServiceID: 'web',
    ServiceName: 'web',
    ServiceTags: ['a'],
    Type: '',
    Definition: {},
    CreateIndex: 5,
    ModifyIndex: 5,
  });
  t.like(r.getCheck('n1', 'mem'), {
    CheckID: 'mem',
    Name: 'mem',
    ServiceID: '',
    ServiceName: '',
    ServiceTags: [],
  });
  t.deepEqual(
    checks.map((c) => c.CheckID),
    ['c1', 'mem'],
  );
  t.is(r.lastIndex, 5);
});

test('inputs are copied: mutating the command afterwards changes no row', (t) => {
  const r = new Registry();
  const cmd = reg(
    { Node: 'n1', Address: 'a', Meta: { k: 'v' } },
    {
      service: { Service: 'web', Tags: ['x'], Meta: { m: '1' } },
      checks: [{ CheckID: 'c', Definition: { HTTP: 'u' } }],
    },
  );
  ok(r, 1, cmd);
  (cmd.node.Meta as Record<string, string>).k = 'changed';
  cmd.service?.Tags?.push('y');
  (cmd.checks?.[0].Definition as Record<string, unknown>).HTTP = 'changed';
  t.deepEqual(r.getNode('n1')?.Meta, { k: 'v' });
  t.deepEqual(r.getService('n1', 'web')?.Tags, ['x']);
  t.deepEqual(r.getCheck('n1', 'c')?.Definition, { HTTP: 'u' });
});

test('an identical re-registration keeps every ModifyIndex and wakes nobody; a change bumps only what changed', async (t) => {
  const watches = new WatchRegistry();
  const r = new Registry(watches);
  const cmd = reg(
    { Node: 'n1', Address: '10.0.0.1', Meta: { a: '1', b: '2' } },
    {
      service: { Service: 'web', Port: 80 },
      checks: [{ CheckID: 'c1', ServiceID: 'web', Status: 'passing' }],
    },
  );
  ok(r, 1, cmd);
  const before = r.toSnapshot();
  const q = park(watches, r.nodes());
  const all = park(watches, { index: 0, result: null, watch: [NODES_WATCH, SERVICES_WATCH, CHECKS_WATCH] });
  // Same content, meta keys in another order: Consul compares maps, not their order.
  const checks = ok(r, 2, { ...structuredClone(cmd), node: { ...cmd.node, Meta: { b: '2', a: '1' } } });
  await flush();
  t.deepEqual(r.toSnapshot(), before, 'nothing changed, indexes included');
  t.is(watches.lastIndex, 1, 'no notify at all');
  t.false(q.state.woken);
  t.false(all.state.woken);
  t.is(checks[0].ModifyIndex, 1, 'the unchanged check is still returned');

  ok(
    r,
    3,
    reg(
      { Node: 'n1', Address: '10.0.0.1', Meta: { a: '1', b: '2' } },
      { service: { Service: 'web', Port: 81 } },
    ),
  );
  t.like(r.getNode('n1'), { CreateIndex: 1, ModifyIndex: 1 });
  t.like(r.getService('n1', 'web'), { CreateIndex: 1, ModifyIndex: 3, Port: 81 });
  t.like(r.getCheck('n1', 'c1'), { ModifyIndex: 1 });
  await flush();
  t.false(q.state.woken, 'the nodes list did not change');
  t.true(all.state.woken);
  ok(r, 4, reg({ Node: 'n1', Address: '10.0.0.9', Meta: { a: '1', b: '2' } }));
  t.like(r.getNode('n1'), { CreateIndex: 1, ModifyIndex: 4, Address: '10.0.0.9' });
  await flush();
  t.true(q.state.woken);
});

test('skipNodeUpdate leaves an existing node alone but still creates a missing one', (t) => {
  const r = new Registry();
  ok(r, 1, reg({ Node: 'n1', Address: 'a', Meta: { k: 'v' } }));
  ok(r, 2, reg({ Node: 'n1', Address: '' }, { skipNodeUpdate: true, service: { Service: 'web' } }));
  t.like(r.getNode('n1'), { Address: 'a', ModifyIndex: 1 });
  t.deepEqual(r.getNode('n1')?.Meta, { k: 'v' });
  t.is(r.getService('n1', 'web')?.ModifyIndex, 2);
  ok(r, 3, reg({ Node: 'n2', Address: 'b' }, { skipNodeUpdate: true }));
  t.like(r.getNode('n2'), { Address: 'b', CreateIndex: 3 });
});

test('names and IDs match case-insensitively; a node keeps its first spelling', (t) => {
  const r = new Registry();
  ok(r, 1, reg('Node-A', { service: { Service: 'Web', ID: 'Web-1' } }));
  ok(r, 2, reg({ Node: 'node-a', Address: '10.0.0.1' }, { checks: [{ CheckID: 'C1', ServiceID: 'web-1' }] }));
  t.is(r.getNode('NODE-A')?.ModifyIndex, 1, 'same node, same fields: no change');
  t.is(r.getNode('node-a')?.Node, 'Node-A');
  t.like(r.getCheck('node-a', 'c1'), {
    Node: 'Node-A',
    CheckID: 'C1',
    ServiceID: 'Web-1',
    ServiceName: 'Web',
  });
  t.is(r.serviceNodes('web').result.length, 1);
  t.is(r.serviceNodes('WEB').result[0].service.ID, 'Web-1');
  t.deepEqual(Object.keys(r.services().result), ['Web'], 'the name as registered');
  t.deepEqual(
    r.nodeChecks('NODE-a').result.map((c) => c.CheckID),
    ['C1'],
  );
});

test('every refusal returns an error and changes nothing', async (t) => {
  const watches = new WatchRegistry();
  const r = sample(watches);
  ok(
    r,
    4,
    reg(
      { Node: 'n4', Address: '10.0.0.4', ID: UUID_A },
      { checks: [{ CheckID: 'serfHealth', Status: 'passing' }] },
    ),
  );
  const before = r.toSnapshot();
  const lastNotify = watches.lastIndex;
  const refusals: Array<[RegisterCommand, RegExp]> = [
    [reg({ Node: '', Address: 'x' }), /^Must provide node$/],
    [reg('a\u0000b'), /NUL/],
    [reg('n1', { checks: [{ CheckID: 'x\u0000' }] }), /NUL/],
    [reg({ Node: 'n5', Address: '' }), /Must provide address/],
    [reg({ Node: 'n5', Address: '' }, { skipNodeUpdate: true }), /Must provide address/],
    [reg({ Node: 'n5', Address: 'x', ID: 'not-a-uuid' }), /not a UUID/],
    [reg({ Node: 'n5', Address: 'x', ID: UUID_A }), /aliases existing node "n4"/],
    [reg({ Node: 'n4', Address: '10.0.0.4', ID: UUID_B }), /Node name n4 is reserved by node/],
    [reg('n1', { service: { Service: '', ID: 'x' } }), /^Must provide service name with ID$/],
    [reg('n1', { service: { Service: '' } }), /^Must provide service name$/],
    [reg('n1', { service: { Service: 'web', Address: '0.0.0.0' } }), /^Invalid service address$/],
    [
      reg('n1', { service: { Service: 'p', Kind: 'connect-proxy' } }),
      /DestinationServiceName must be non-empty/,
    ],
    [reg('n1', { checks: [{ CheckID: '' }] }), /Must provide check ID or name/],
    [reg('n1', { checks: [{ CheckID: 'c', Status: 'bogus' as HealthStatus }] }), /Invalid check status/],
    [reg('n1', { checks: [{ CheckID: 'c', ServiceID: 'db' }] }), /Missing service registration/],
    // The node change and the service come first in the command; the bad check still voids them.
    [
      reg(
        { Node: 'n1', Address: '10.9.9.9' },
        { service: { Service: 'api' }, checks: [{ CheckID: 'ok' }, { CheckID: 'bad', ServiceID: 'nope' }] },
      ),
      /Missing service registration/,
    ],
    [reg('brand-new', { checks: [{ CheckID: 'x', ServiceID: 'web-1' }] }), /Missing service registration/],
  ];
  for (const [cmd, error] of refusals) {
    const res = r.register(10, cmd);
    t.false(res.ok, JSON.stringify(cmd));
    if (!res.ok) t.regex(res.error, error);
  }
  await flush();
  t.deepEqual(r.toSnapshot(), before);
  t.is(watches.lastIndex, lastNotify, 'no refusal notified anyone');
  t.is(r.getNode('brand-new'), undefined);
});

test('node IDs: a critical serfHealth frees the name; a node without ID can take one', (t) => {
  const r = new Registry();
  ok(
    r,
    1,
    reg({ Node: 'n1', Address: 'a', ID: UUID_A }, { checks: [{ CheckID: 'serfHealth', Status: 'passing' }] }),
  );
  t.false(r.register(2, reg({ Node: 'n1', Address: 'a', ID: UUID_B })).ok);
  ok(
    r,
    3,
    reg(
      { Node: 'n1', Address: 'a', ID: UUID_A },
      { checks: [{ CheckID: 'serfHealth', Status: 'critical' }] },
    ),
  );
  ok(r, 4, reg({ Node: 'n1', Address: 'a', ID: UUID_B }));
  t.is(r.getNode('n1')?.ID, UUID_B);
  ok(r, 5, reg({ Node: 'n2', Address: 'b', ID: UUID_A })); // the old ID was released
  ok(r, 6, reg({ Node: 'n3', Address: 'c' }));
  ok(r, 7, reg({ Node: 'n3', Address: 'c', ID: '0a1b2c3d-0000-4000-8000-00000000000c' }));
  t.is(r.getNode('n3')?.ModifyIndex, 7);
});

test('a check copies the service name and tags when written; re-registering only the service leaves them (Consul)', (t) => {
  const r = new Registry();
  ok(
    r,
    1,
    reg('n1', { service: { Service: 'web', Tags: ['v1'] }, checks: [{ CheckID: 'c', ServiceID: 'web' }] }),
  );
  ok(r, 2, reg('n1', { service: { Service: 'web', Tags: ['v2'] } }));
  t.deepEqual(r.getCheck('n1', 'c')?.ServiceTags, ['v1']);
  t.is(r.getCheck('n1', 'c')?.ModifyIndex, 1);
  ok(
    r,
    3,
    reg('n1', { service: { Service: 'web', Tags: ['v3'] }, checks: [{ CheckID: 'c', ServiceID: 'web' }] }),
  );
  t.like(r.getCheck('n1', 'c'), { ServiceTags: ['v3'], ModifyIndex: 3 });
  ok(r, 4, reg('n1', { checks: [{ CheckID: 'node', ServiceName: 'web', ServiceTags: ['x'] }] }));
  t.like(r.getCheck('n1', 'node'), { ServiceName: '', ServiceTags: [] });
});

test('commands at an earlier index throw; several commands may share one index', (t) => {
  const r = new Registry();
  ok(r, 5, reg('n1'));
  ok(r, 5, reg('n2'));
  t.throws(() => r.register(4, reg('n3')), { instanceOf: RangeError });
  t.throws(() => r.deregister(4, dereg('n1')), { instanceOf: RangeError });
  t.is(r.getNode('n3'), undefined);
});

// ---- deregister ----

test('deregister: a check, a service with its checks, a node with everything', (t) => {
  const r = sample();
  ok(
    r,
    4,
    reg('n1', { service: { Service: 'api', ID: 'api' }, checks: [{ CheckID: 'api-c', ServiceID: 'api' }] }),
  );

  let res = r.deregister(5, dereg('n1', { checkId: 'WEB-HTTP' }));
  t.deepEqual(
    res.removedChecks.map((c) => c.CheckID),
    ['web-http'],
  );
  t.false(res.removedNode);
  t.truthy(r.getService('n1', 'web-1'), 'the service stays');

  res = r.deregister(6, dereg('n1', { serviceId: 'api', checkId: 'serfHealth' }));
  t.deepEqual(
    res.removedChecks.map((c) => c.CheckID),
    ['api-c'],
    'a service ID wins over a check ID, and takes only its own checks',
  );
  t.is(r.getService('n1', 'api'), undefined);
  t.truthy(r.getCheck('n1', 'serfHealth'));

  res = r.deregister(7, dereg('n2'));
  t.true(res.removedNode);
  t.deepEqual(
    res.removedChecks.map((c) => `${c.Node}/${c.CheckID}`),
    ['n2/web-http'],
  );
  t.is(r.getNode('n2'), undefined);
  t.is(r.getService('n2', 'web-2'), undefined);
  t.deepEqual(r.nodeChecks('n2').result, []);
  t.deepEqual(
    r.serviceNodes('web').result.map((x) => x.node.Node),
    ['n1'],
  );
});

test('deregistering missing things is not an error and changes nothing', async (t) => {
  const watches = new WatchRegistry();
  const r = sample(watches);
  const before = r.toSnapshot();
  for (const cmd of [
    dereg('nope'),
    dereg('n1', { serviceId: 'nope' }),
    dereg('n1', { checkId: 'nope' }),
    dereg('nope', { checkId: 'c' }),
  ]) {
    t.deepEqual(r.deregister(9, cmd), { removedChecks: [], removedNode: false });
  }
  t.deepEqual(r.toSnapshot(), before);
  t.is(watches.lastIndex, 3);
});

test('deregisterScope follows Consul precedence; empty strings are absent', (t) => {
  t.is(deregisterScope(dereg('n', { serviceId: 's', checkId: 'c' })), 'service');
  t.is(deregisterScope(dereg('n', { checkId: 'c' })), 'check');
  t.is(deregisterScope(dereg('n', { serviceId: '', checkId: '' })), 'node');
  t.is(deregisterScope(dereg('n')), 'node');
});

// ---- queries ----

test('nodes: sorted by name, filtered by node meta; index is the nodes table index', (t) => {
  const r = sample();
  ok(r, 4, reg({ Node: 'a0', Address: 'x', Meta: { env: 'prod', rack: '1' } }));
  const all = r.nodes();
  t.deepEqual(
    all.result.map((n) => n.Node),
    ['a0', 'n1', 'n2', 'n3'],
  );
  t.is(all.index, 4);
  t.deepEqual(all.watch, [NODES_WATCH]);
  t.deepEqual(
    r.nodes({ nodeMeta: { env: 'prod' } }).result.map((n) => n.Node),
    ['a0', 'n1', 'n3'],
  );
  t.deepEqual(
    r.nodes({ nodeMeta: { env: 'prod', rack: '1' } }).result.map((n) => n.Node),
    ['a0'],
  );
  t.deepEqual(r.nodes({ nodeMeta: { missing: '' } }).result, []);
  ok(r, 5, reg('n1', { service: { Service: 'x' } }));
  t.is(r.nodes().index, 4, 'a service write does not move the nodes index');
  t.is(new Registry().nodes().index, 0);
});

test('services: name to unique sorted tags; node meta filter reads nodes too', (t) => {
  const r = sample();
  ok(r, 4, reg('n3', { service: { Service: 'web', ID: 'web-3', Tags: ['v2', 'a', 'v2'] } }));
  const all = r.services();
  t.deepEqual(all.result, { db: ['primary'], web: ['Primary', 'a', 'v1', 'v2'] });
  t.deepEqual(Object.keys(all.result), ['db', 'web']);
  t.is(all.index, 4);
  t.deepEqual(all.watch, [SERVICES_WATCH]);
  const prod = r.services({ nodeMeta: { env: 'prod' } });
  t.deepEqual(prod.result, { db: ['primary'], web: ['Primary', 'a', 'v1', 'v2'] });
  t.deepEqual(r.services({ nodeMeta: { env: 'dev' } }).result, { web: ['v2'] });
  t.deepEqual(prod.watch, [SERVICES_WATCH, NODES_WATCH]);
  ok(r, 5, reg({ Node: 'n9', Address: 'z' }));
  t.is(r.services({ nodeMeta: { env: 'prod' } }).index, 5);
  t.is(r.services().index, 4);
});

test('serviceNodes: by node then ID, tags all required case-insensitively, node meta, connect', (t) => {
  const r = sample();
  ok(r, 4, reg('n0', { service: { Service: 'web', ID: 'web-b', Tags: ['V1'] } }));
  ok(r, 5, reg('n0', { service: { Service: 'web', ID: 'web-a' } }));
  const all = r.serviceNodes('web');
  t.deepEqual(
    all.result.map((x) => `${x.node.Node}/${x.service.ID}`),
    ['n0/web-a', 'n0/web-b', 'n1/web-1', 'n2/web-2'],
  );
  t.is(all.result[2].node.Address, '10.0.0.1');
  t.deepEqual(all.watch, [serviceWatch('web')]);
  t.is(all.index, 5);
  t.deepEqual(
    r.serviceNodes('web', { tags: ['v1'] }).result.map((x) => x.service.ID),
    ['web-b', 'web-1'],
  );
  t.deepEqual(
    r.serviceNodes('web', { tags: ['v1', 'primary'] }).result.map((x) => x.service.ID),
    ['web-1'],
  );
  t.deepEqual(
    r.serviceNodes('web', { nodeMeta: { env: 'dev' } }).result.map((x) => x.service.ID),
    ['web-2'],
  );
  t.is(r.serviceNodes('web', { tags: ['nope'] }).index, 5, 'filters do not change the index');
  t.deepEqual(r.serviceNodes('nope').result, []);

  ok(
    r,
    6,
    reg('n1', {
      service: {
        Service: 'web-sidecar-proxy',
        Kind: 'connect-proxy',
        Proxy: { DestinationServiceName: 'web' },
      },
    }),
  );
  ok(r, 7, reg('n3', { service: { Service: 'web', ID: 'web-native', Connect: { Native: true } } }));
  const connect = r.serviceNodes('web', { connect: true });
  t.deepEqual(
    connect.result.map((x) => `${x.node.Node}/${x.service.ID}`),
    ['n1/web-sidecar-proxy', 'n3/web-native'],
  );
  t.deepEqual(connect.watch, [connectWatch('web')]);
  t.is(connect.index, 7);
  t.is(r.serviceNodes('web-sidecar-proxy').result.length, 1, 'the proxy is also a service of its own');
});

test('nodeServices: the node and its services by ID, or null', (t) => {
  const r = sample();
  ok(r, 4, reg('n1', { service: { Service: 'api', ID: 'a-api' } }));
  const q = r.nodeServices('n1');
  t.is(q.result?.node.Node, 'n1');
  t.deepEqual(
    q.result?.services.map((s) => s.ID),
    ['a-api', 'web-1'],
  );
  t.is(q.index, 4);
  t.deepEqual(q.watch, [nodeWatch('n1')]);
  const missing = r.nodeServices('nope');
  t.is(missing.result, null);
  t.is(missing.index, 0, 'no node ever went away');
  t.deepEqual(r.nodeServices('n2').result?.services.length, 1);
  t.is(r.nodeServices('n2').index, 2);
});

test('nodeChecks, serviceChecks and checksInState: contents, order and indexes', (t) => {
  const r = sample();
  ok(
    r,
    4,
    reg('n0', {
      service: { Service: 'web', ID: 'w' },
      checks: [{ CheckID: 'z', ServiceID: 'w', Status: 'passing' }],
    }),
  );
  t.deepEqual(
    r.nodeChecks('n1').result.map((c) => c.CheckID),
    ['serfHealth', 'web-http'],
  );
  t.is(r.nodeChecks('n1').index, 1);
  t.deepEqual(r.nodeChecks('n1').watch, [nodeChecksWatch('n1')]);
  t.deepEqual(
    r.serviceChecks('web').result.map((c) => `${c.Node}/${c.CheckID}`),
    ['n0/z', 'n1/web-http', 'n2/web-http'],
  );
  t.is(r.serviceChecks('web').index, 4);
  t.deepEqual(
    r.checksInState('passing').result.map((c) => `${c.Node}/${c.CheckID}`),
    ['n0/z', 'n1/serfHealth', 'n1/web-http'],
  );
  t.deepEqual(
    r.checksInState('critical').result.map((c) => `${c.Node}/${c.CheckID}`),
    ['n3/db-tcp'],
  );
  t.deepEqual(
    r.checksInState('any').result.map((c) => `${c.Node}/${c.CheckID}`),
    ['n0/z', 'n1/serfHealth', 'n1/web-http', 'n2/web-http', 'n3/db-tcp'],
  );
  t.is(r.checksInState('maintenance').index, 4);
  t.deepEqual(r.checksInState('any').watch, [CHECKS_WATCH]);
});

test('checkServiceNodes: node checks then the instance checks; passingOnly drops warning and maintenance', (t) => {
  const r = sample();
  ok(
    r,
    4,
    reg('n1', {
      service: { Service: 'web', ID: 'web-0', Tags: ['v1'] },
      checks: [
        { CheckID: 'a-node', Status: 'passing' },
        { CheckID: 'a-svc', ServiceID: 'web-0', Status: 'passing' },
      ],
    }),
  );
  const q = r.checkServiceNodes('web');
  t.deepEqual(
    q.result.map((x) => [x.service.ID, x.checks.map((c) => c.CheckID)]),
    [
      ['web-0', ['a-node', 'serfHealth', 'a-svc']],
      ['web-1', ['a-node', 'serfHealth', 'web-http']],
      ['web-2', ['web-http']],
    ],
  );
  t.is(q.index, 4);
  t.deepEqual(q.watch, [serviceWatch('web')]);
  t.deepEqual(
    r.checkServiceNodes('web', { passingOnly: true }).result.map((x) => x.service.ID),
    ['web-0', 'web-1'],
    'web-2 is only warning',
  );
  ok(r, 5, reg('n1', { checks: [{ CheckID: 'a-svc', ServiceID: 'web-0', Status: 'maintenance' }] }));
  t.deepEqual(
    r.checkServiceNodes('web', { passingOnly: true }).result.map((x) => x.service.ID),
    ['web-1'],
  );
  ok(r, 6, reg('n1', { checks: [{ CheckID: 'a-node', Status: 'critical' }] }));
  t.deepEqual(
    r.checkServiceNodes('web', { passingOnly: true }).result,
    [],
    'a node check fails every instance',
  );
  t.deepEqual(
    r.checkServiceNodes('web', { tags: ['V1'], nodeMeta: { env: 'prod' } }).result.map((x) => x.service.ID),
    ['web-0', 'web-1'],
  );
  t.deepEqual(
    r.checkServiceNodes('db').result[0].checks.map((c) => c.Status),
    ['critical'],
  );
});

// ---- indexes and watches ----

test('an unrelated change moves no index and wakes no watcher; a related one does both', async (t) => {
  const watches = new WatchRegistry();
  const r = sample(watches);
  const queries = {
    web: () => r.serviceNodes('web'),
    webHealth: () => r.checkServiceNodes('web'),
    webChecks: () => r.serviceChecks('web'),
    n1: () => r.nodeServices('n1'),
    n1Checks: () => r.nodeChecks('n1'),
    nodes: () => r.nodes(),
  };
  type Name = keyof typeof queries;
  const names = Object.keys(queries) as Name[];
  /** Applies `change`, then says which queries moved their index and which woke. */
  const after = async (change: () => void) => {
    const runs = names.map((n) => queries[n]());
    const parked = runs.map((run) => park(watches, run));
    change();
    await flush();
    const moved = names.filter((n, i) => queries[n]().index !== runs[i].index);
    const woke = names.filter((_, i) => parked[i].state.woken);
    for (const p of parked) p.stop();
    return { moved, woke };
  };

  // db on n3 changes: nothing about web or n1.
  t.deepEqual(
    await after(() =>
      ok(
        r,
        4,
        reg(
          { Node: 'n3', Address: '10.0.0.3', Meta: { env: 'prod' } },
          { service: { Service: 'db', Port: 5 } },
        ),
      ),
    ),
    {
      moved: [],
      woke: [],
    },
  );
  // A check on n3 changes.
  t.deepEqual(
    await after(() =>
      ok(
        r,
        5,
        reg(
          { Node: 'n3', Address: '10.0.0.3', Meta: { env: 'prod' } },
          { checks: [{ CheckID: 'db-tcp', ServiceID: 'db', Status: 'passing' }] },
        ),
      ),
    ),
    {
      moved: [],
      woke: [],
    },
  );
  // A no-op write on n1.
  t.deepEqual(await after(() => ok(r, 6, reg({ Node: 'n1', Address: '10.0.0.1', Meta: { env: 'prod' } }))), {
    moved: [],
    woke: [],
  });
  // web's check on n2 changes: web's views, not n1's nor the node list.
  const w = await after(() =>
    ok(
      r,
      7,
      reg(
        { Node: 'n2', Address: '10.0.0.2', Meta: { env: 'dev' } },
        { checks: [{ CheckID: 'web-http', ServiceID: 'web-2', Status: 'passing' }] },
      ),
    ),
  );
  // One key for the catalog and health views of web (Consul's service.<name> index): all three move.
  t.deepEqual(w.moved, ['web', 'webHealth', 'webChecks']);
  t.deepEqual(w.woke, ['web', 'webHealth', 'webChecks']);
  // A node-level check on n1: every instance on n1 (web) and n1's checks.
  const nodeCheck = await after(() =>
    ok(
      r,
      8,
      reg(
        { Node: 'n1', Address: '10.0.0.1', Meta: { env: 'prod' } },
        { checks: [{ CheckID: 'serfHealth', Status: 'critical' }] },
      ),
    ),
  );
  t.deepEqual(nodeCheck.moved, ['web', 'webHealth', 'webChecks', 'n1Checks']);
  t.deepEqual(nodeCheck.woke, ['web', 'webHealth', 'webChecks', 'n1Checks']);
  // n1's address: the node list, n1, and web (its catalog view shows the node).
  const nodeChange = await after(() =>
    ok(r, 9, reg({ Node: 'n1', Address: '10.1.1.1', Meta: { env: 'prod' } })),
  );
  t.deepEqual(nodeChange.moved, ['web', 'webHealth', 'webChecks', 'n1', 'nodes']);
  t.deepEqual(nodeChange.woke, ['web', 'webHealth', 'webChecks', 'n1', 'nodes']);
  t.is(r.serviceNodes('web').index, 9);
  t.is(r.serviceNodes('db').index, 5, 'db did not move');
});

test('deregistering the last instance moves the service queries forward and wakes them', async (t) => {
  const watches = new WatchRegistry();
  const r = sample(watches);
  const db = r.checkServiceNodes('db');
  t.is(db.index, 3);
  const parked = park(watches, db);
  r.deregister(4, dereg('n3', { serviceId: 'db' }));
  await flush();
  t.true(parked.state.woken);
  for (const q of [r.serviceNodes('db'), r.checkServiceNodes('db'), r.serviceChecks('db')]) {
    t.deepEqual(q.result, []);
    t.is(q.index, 4, 'the extinction index');
  }
  t.is(r.serviceNodes('web').index, 2, 'web is untouched');
  // Registering again moves it on from there.
  ok(r, 5, reg('n3', { service: { Service: 'db' } }));
  t.is(r.serviceNodes('db').index, 5);
  // Removing a whole node does the same for its services and for the node's own queries.
  const n2 = park(watches, r.nodeServices('n2'));
  r.deregister(6, dereg('n2'));
  await flush();
  t.true(n2.state.woken);
  t.is(r.nodeServices('n2').index, 6);
  t.is(r.nodeChecks('n2').index, 6);
  t.is(r.serviceNodes('web').index, 6, 'web lost an instance');
  t.is(r.nodes().index, 6);
});

test('renaming an instance (same ID, new name) moves both names', (t) => {
  const r = new Registry();
  ok(r, 1, reg('n1', { service: { Service: 'a', ID: 's' } }));
  ok(r, 2, reg('n1', { service: { Service: 'other' } }));
  ok(r, 3, reg('n1', { service: { Service: 'b', ID: 's' } }));
  t.deepEqual(r.serviceNodes('a').result, []);
  t.is(r.serviceNodes('a').index, 3);
  t.is(r.serviceNodes('b').index, 3);
  t.is(r.serviceNodes('other').index, 2);
});

test('a check keeps the service name it was written with; both names follow its changes', async (t) => {
  const watches = new WatchRegistry();
  const r = new Registry(watches);
  ok(
    r,
    1,
    reg('n1', {
      service: { Service: 'web', ID: 's1' },
      checks: [
        { CheckID: 'c', ServiceID: 's1' },
        { CheckID: 'd', ServiceID: 's1' },
      ],
    }),
  );
  ok(r, 2, reg('n1', { service: { Service: 'db', ID: 's1' } }));
  t.deepEqual(
    r.serviceChecks('web').result.map((c) => c.CheckID),
    ['c', 'd'],
    'Consul: the checks service index reads the stored name',
  );
  t.deepEqual(
    r.checkServiceNodes('db').result[0].checks.map((c) => c.ServiceName),
    ['web', 'web'],
  );
  t.deepEqual(r.serviceNodes('web').result, []);
  t.is(r.serviceChecks('web').index, 2, 'web lost its instance at 2');
  let web = park(watches, r.serviceChecks('web'));
  let db = park(watches, r.checkServiceNodes('db'));
  r.deregister(3, dereg('n1', { checkId: 'd' }));
  await flush();
  t.true(web.state.woken, 'the stored name');
  t.true(db.state.woken, 'the instance it belongs to now');
  t.is(r.serviceChecks('web').index, 3);
  t.is(r.checkServiceNodes('db').index, 3);
  web = park(watches, r.serviceChecks('web'));
  db = park(watches, r.checkServiceNodes('db'));
  ok(r, 4, reg('n1', { checks: [{ CheckID: 'c', ServiceID: 's1', Status: 'passing' }] }));
  await flush();
  t.true(web.state.woken);
  t.true(db.state.woken);
  t.deepEqual(r.serviceChecks('web').result, []);
  t.is(r.serviceChecks('web').index, 4);
  t.is(r.checkServiceNodes('db').index, 4);
  t.deepEqual(
    r.serviceChecks('db').result.map((c) => c.ServiceName),
    ['db'],
  );
});

test('Connect views move with proxies and their nodes, not with their checks', (t) => {
  const r = new Registry();
  const proxy = { Service: 'web-proxy', Kind: 'connect-proxy', Proxy: { DestinationServiceName: 'web' } };
  ok(r, 1, reg('n1', { service: proxy }));
  ok(r, 2, reg('n1', { checks: [{ CheckID: 'p', ServiceID: 'web-proxy', Status: 'passing' }] }));
  ok(r, 3, reg('n1', { checks: [{ CheckID: 'serfHealth', Status: 'passing' }] }));
  t.is(r.serviceNodes('web', { connect: true }).index, 1);
  t.is(r.checkServiceNodes('web-proxy').index, 3);
  ok(r, 4, reg({ Node: 'n1', Address: '10.0.0.2' }));
  t.is(r.serviceNodes('web', { connect: true }).index, 4);
  ok(r, 5, reg('n1', { service: { ...proxy, Proxy: { DestinationServiceName: 'api' } } }));
  t.deepEqual(r.serviceNodes('web', { connect: true }).result, []);
  t.is(r.serviceNodes('web', { connect: true }).index, 5);
  t.is(r.serviceNodes('api', { connect: true }).index, 5);
});

test("a node's own queries keep their index while it exists, whatever other nodes do", (t) => {
  const r = new Registry();
  ok(r, 1, reg('gone'));
  ok(r, 2, reg('stays'));
  r.deregister(3, dereg('gone'));
  t.is(r.nodeChecks('stays').index, 2, 'not the extinction index: the node has no checks but exists');
  t.is(r.nodeServices('stays').index, 2);
  t.is(r.nodeChecks('gone').index, 3);
  t.is(r.nodeServices('never').index, 3, 'an unknown node reports the last node extinction');
});

// ---- snapshot ----

test('snapshot records are plain JSON and restore the exact registry', (t) => {
  const r = sample();
  r.deregister(4, dereg('n3'));
  const snap = r.toSnapshot();
  const restored = Registry.fromSnapshot(JSON.parse(JSON.stringify(snap)));
  t.deepEqual(restored.toSnapshot(), snap);
  t.deepEqual(restored.serviceNodes('db'), r.serviceNodes('db'));
  t.is(restored.nodeServices('n3').index, 4);
  t.is(restored.lastIndex, 4);
  // Record order does not matter to the reader.
  t.deepEqual(Registry.fromSnapshot([...snap].reverse()).toSnapshot(), snap);
});

// ---- properties ----

const NODES = ['n1', 'N1', 'n2', 'n3'];
const SERVICE_NAMES = ['web', 'Web', 'db'];
const STATUSES: HealthStatus[] = ['passing', 'warning', 'critical', 'maintenance'];

const serviceArb: fc.Arbitrary<ServiceInput> = fc.oneof(
  fc.record(
    {
      Service: fc.constantFrom(...SERVICE_NAMES),
      ID: fc.constantFrom('s1', 's2', 'web'),
      Tags: fc.subarray(['a', 'b', 'A']),
      Port: fc.constantFrom(80, 81),
    },
    { requiredKeys: ['Service'] },
  ),
  fc.record({
    Service: fc.constant('web-proxy'),
    ID: fc.constantFrom('p1', 's2'),
    Kind: fc.constant('connect-proxy'),
    Proxy: fc.constantFrom({ DestinationServiceName: 'web' }, { DestinationServiceName: 'db' }),
  }),
  fc.record({
    Service: fc.constantFrom(...SERVICE_NAMES),
    ID: fc.constant('s3'),
    Connect: fc.constant({ Native: true }),
  }),
);

/** A check input; `ref` says which service it names: none, the command's own, or a fixed ID. */
const checkArb = fc.record({
  CheckID: fc.constantFrom('c1', 'c2', 'serfHealth'),
  ref: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('none', 'own') },
    { weight: 2, arbitrary: fc.constantFrom('s1', 'S2', 'web', 'p1', 's3') },
    { weight: 1, arbitrary: fc.constant('missing') },
  ),
  Status: fc.option(fc.constantFrom(...STATUSES), { nil: undefined }),
  Output: fc.constantFrom('', 'ok'),
});

type Cmd = RegisterCommand | DeregisterCommand;

const registerArb: fc.Arbitrary<Cmd> = fc
  .record({
    node: fc.constantFrom(...NODES),
    address: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('10.0.0.1', '10.0.0.2') },
      { weight: 1, arbitrary: fc.constant('') },
    ),
    id: fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom(UUID_A, UUID_B) },
    ),
    prod: fc.boolean(),
    skip: fc.boolean(),
    service: fc.option(serviceArb, { nil: undefined }),
    checks: fc.array(checkArb, { maxLength: 2 }),
  })
  .map((a) => {
    const node: NodeInput = { Node: a.node, Address: a.address, Meta: a.prod ? { env: 'prod' } : {} };
    if (a.id !== undefined) node.ID = a.id;
    const cmd: RegisterCommand = { type: 'register', node, skipNodeUpdate: a.skip, now: 0 };
    if (a.service !== undefined) cmd.service = a.service;
    cmd.checks = a.checks.map(({ ref, Status, ...c }) => {
      const check: CheckInput = { ...c };
      if (Status !== undefined) check.Status = Status;
      const own = a.service && (a.service.ID ?? a.service.Service);
      if (ref === 'own' ? own : ref !== 'none') check.ServiceID = ref === 'own' ? own : ref;
      return check;
    });
    return cmd;
  });

const deregisterArb: fc.Arbitrary<Cmd> = fc
  .record({
    node: fc.constantFrom(...NODES),
    serviceId: fc.option(fc.constantFrom('s1', 's2', 'p1'), { nil: undefined }),
    checkId: fc.option(fc.constantFrom('c1', 'serfHealth'), { nil: undefined }),
  })
  .map((a) =>
    dereg(a.node, {
      ...(a.serviceId && { serviceId: a.serviceId }),
      ...(a.checkId && { checkId: a.checkId }),
    }),
  );

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: registerArb },
  { weight: 1, arbitrary: deregisterArb },
);

function apply(r: Registry, index: number, cmd: Cmd): unknown {
  return cmd.type === 'register' ? r.register(index, cmd) : r.deregister(index, cmd);
}

/** Every query the registry answers, over the names the commands use (and some never used). */
function allQueries(r: Registry): Array<[string, QueryRun<unknown>]> {
  const out: Array<[string, QueryRun<unknown>]> = [
    ['nodes', r.nodes()],
    ['nodes prod', r.nodes({ nodeMeta: { env: 'prod' } })],
    ['services', r.services()],
    ['services prod', r.services({ nodeMeta: { env: 'prod' } })],
  ];
  for (const s of [...SERVICE_NAMES, 'web-proxy', 'none']) {
    out.push([`svc ${s}`, r.serviceNodes(s)]);
    out.push([`svc ${s} tag`, r.serviceNodes(s, { tags: ['A'], nodeMeta: { env: 'prod' } })]);
    out.push([`connect ${s}`, r.serviceNodes(s, { connect: true })]);
    out.push([`health ${s}`, r.checkServiceNodes(s)]);
    out.push([`health ${s} passing`, r.checkServiceNodes(s, { passingOnly: true, tags: ['b'] })]);
    out.push([`checks ${s}`, r.serviceChecks(s)]);
  }
  for (const n of [...NODES, 'none']) {
    out.push([`node ${n}`, r.nodeServices(n)]);
    out.push([`node checks ${n}`, r.nodeChecks(n)]);
  }
  for (const s of [...STATUSES, 'any' as const]) out.push([`state ${s}`, r.checksInState(s)]);
  return out;
}

test('property: toSnapshot → fromSnapshot answers every query identically, then behaves identically', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(
        fc.array(fc.tuple(cmdArb, fc.nat({ max: 1 })), { maxLength: 40 }),
        fc.array(cmdArb, { maxLength: 15 }),
        (before, after) => {
          const r = new Registry();
          let index = 1;
          for (const [cmd, step] of before) {
            index += step;
            apply(r, index, cmd);
          }
          const snap = r.toSnapshot();
          const restored = Registry.fromSnapshot(JSON.parse(JSON.stringify(snap)));
          assert.deepEqual(restored.toSnapshot(), snap);
          assert.deepEqual(allQueries(restored), allQueries(r));
          for (const cmd of after) {
            index++;
            assert.deepEqual(apply(restored, index, cmd), apply(r, index, cmd));
          }
          assert.deepEqual(allQueries(restored), allQueries(r));
          assert.deepEqual(restored.toSnapshot(), r.toSnapshot());
        },
      ),
      { numRuns: 200 },
    ),
  );
});

test('property: a query whose result changes moves its index forward and wakes one of its watch keys', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(cmdArb, { maxLength: 40 }), (cmds) => {
        const watches = new RecordingRegistry();
        const r = new Registry(watches);
        let prev = allQueries(r);
        for (const [i, cmd] of cmds.entries()) {
          const index = i + 1;
          const snap = r.toSnapshot();
          const res = apply(r, index, cmd);
          if (typeof res === 'object' && res !== null && 'ok' in res && res.ok === false) {
            assert.deepEqual(r.toSnapshot(), snap, 'a refusal changed something');
          }
          const next = allQueries(r);
          for (const [j, [name, run]] of next.entries()) {
            const old = prev[j][1];
            assert.ok(run.index >= old.index, `${name}: index went back`);
            if (!isDeepStrictEqual(run.result, old.result)) {
              assert.equal(run.index, index, `${name}: result changed at ${index} but index is ${run.index}`);
              assert.ok(
                old.watch.some((k) => watches.changedAt(k) === index),
                `${name}: result changed at ${index} and none of ${old.watch.join(', ')} fired`,
              );
            }
          }
          if (watches.lastIndex < index) assert.deepEqual(r.toSnapshot(), snap, 'changed without notifying');
          prev = next;
        }
      }),
      { numRuns: 300 },
    ),
  );
});
