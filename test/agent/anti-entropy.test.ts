import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { CommandInput, WriteReply } from '../../src/agent/backend.ts';
import { AntiEntropy, scaledInterval } from '../../src/agent/local/anti-entropy.ts';
import { parseCheckDefinition, parseServiceDefinition } from '../../src/agent/local/definitions.ts';
import { LOCAL_STATE_FILE, LocalStateFile, restorable } from '../../src/agent/local/persist.ts';
import { LocalState, SERF_HEALTH_CHECK_ID } from '../../src/agent/local/state.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import type { NodeInput } from '../../src/catalog/types.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';

const NODE: NodeInput = {
  ID: '11111111-2222-3333-4444-555555555555',
  Node: 'n1',
  Address: '10.0.0.1',
  Datacenter: 'dc1',
};

/** A MemoryCatalog that counts the writes the local state sends it. */
class CountingCatalog extends MemoryCatalog {
  writes: CommandInput[] = [];
  override async write(cmd: CommandInput): Promise<WriteReply> {
    this.writes.push(structuredClone(cmd));
    return super.write(cmd);
  }
}

function setup(opts: { random?: () => number; clusterSize?: () => number; readFails?: () => boolean } = {}) {
  const clock = new FakeClock();
  const catalog = new CountingCatalog();
  catalog.apply({ type: 'register', node: NODE });
  catalog.apply({
    type: 'register',
    node: NODE,
    skipNodeUpdate: true,
    checks: [
      {
        CheckID: SERF_HEALTH_CHECK_ID,
        Name: 'Serf Health Status',
        Status: 'passing',
        Notes: '',
        Output: 'Agent alive and reachable',
        ServiceID: '',
        ServiceName: '',
        ServiceTags: [],
        Type: '',
        Definition: {},
      },
    ],
  });
  const local = new LocalState({ node: NODE, catalog, clock, logger: silentLogger() });
  const readFails = opts.readFails ?? (() => false);
  const ae = new AntiEntropy({
    state: local,
    catalog: {
      read: (...args: Parameters<CountingCatalog['read']>) =>
        readFails() ? Promise.reject(new Error('No cluster leader')) : catalog.read(...args),
    },
    nodeName: NODE.Node,
    clock,
    logger: silentLogger(),
    clusterSize: opts.clusterSize ?? (() => 1),
    ...(opts.random && { random: opts.random }),
  });
  return { clock, catalog, local, ae };
}

const web = parseServiceDefinition({
  name: 'web',
  id: 'web-1',
  port: 8080,
  tags: ['v1'],
  meta: { team: 'a' },
  check: { ttl: '30s', status: 'passing' },
});

function nodeServices(catalog: MemoryCatalog): string[] {
  return (catalog.state.registry.nodeServices(NODE.Node).result?.services ?? []).map((s) => s.ID);
}
function nodeChecks(catalog: MemoryCatalog): string[] {
  return catalog.state.registry.nodeChecks(NODE.Node).result.map((c) => c.CheckID);
}

test('a full sync of a node the catalog already mirrors writes nothing', async (t) => {
  const { catalog, local, ae } = setup();
  local.addService(web);
  await local.flush();
  t.deepEqual(nodeServices(catalog), ['web-1']);
  const before = catalog.writes.length;
  await ae.syncNow();
  await local.flush();
  t.is(ae.fullSyncs, 1);
  t.is(catalog.writes.length, before, 'an identical catalog must not be rewritten (it would wake watchers)');
  t.true(local.inSync);
});

test('a service deleted from the catalog behind the agent is registered again, with its checks', async (t) => {
  const { catalog, local, ae } = setup();
  local.addService(web);
  await local.flush();
  catalog.apply({ type: 'deregister', node: NODE.Node, serviceId: 'web-1' });
  t.deepEqual(nodeServices(catalog), []);
  await ae.syncNow();
  await local.flush();
  t.deepEqual(nodeServices(catalog), ['web-1']);
  t.deepEqual(nodeChecks(catalog), [SERF_HEALTH_CHECK_ID, 'service:web-1']);
});

test('a catalog edit of the agent-owned service or check is overwritten with the agent view', async (t) => {
  const { catalog, local, ae } = setup();
  local.addService(web);
  await local.flush();
  const row = catalog.state.registry.nodeServices(NODE.Node).result?.services[0];
  t.truthy(row);
  const { Node: _n, CreateIndex: _c, ModifyIndex: _m, ...fields } = row as NonNullable<typeof row>;
  catalog.apply({ type: 'register', node: NODE, skipNodeUpdate: true, service: { ...fields, Port: 9999 } });
  const check = catalog.state.registry
    .nodeChecks(NODE.Node)
    .result.find((c) => c.CheckID === 'service:web-1');
  const {
    Node: _n2,
    CreateIndex: _c2,
    ModifyIndex: _m2,
    ...checkFields
  } = check as NonNullable<typeof check>;
  catalog.apply({
    type: 'register',
    node: NODE,
    skipNodeUpdate: true,
    checks: [{ ...checkFields, Status: 'critical' }],
  });
  await ae.syncNow();
  await local.flush();
  t.is(catalog.state.registry.nodeServices(NODE.Node).result?.services[0].Port, 8080);
  const repaired = catalog.state.registry
    .nodeChecks(NODE.Node)
    .result.find((c) => c.CheckID === 'service:web-1');
  t.is(repaired?.Status, 'passing');
});

test('services and checks the agent does not know are deregistered; serfHealth and consul stay', async (t) => {
  const { catalog, local, ae } = setup();
  catalog.apply({
    type: 'register',
    node: NODE,
    skipNodeUpdate: true,
    service: { ID: 'consul', Service: 'consul', Port: 8300 },
  });
  catalog.apply({
    type: 'register',
    node: NODE,
    skipNodeUpdate: true,
    service: { ID: 'ghost', Service: 'ghost', Port: 1 },
  });
  catalog.apply({
    type: 'register',
    node: NODE,
    skipNodeUpdate: true,
    checks: [
      {
        CheckID: 'stray',
        Name: 'stray',
        Status: 'passing',
        Notes: '',
        Output: '',
        ServiceID: '',
        ServiceName: '',
        ServiceTags: [],
        Type: '',
        Definition: {},
      },
    ],
  });
  t.deepEqual(nodeServices(catalog), ['consul', 'ghost']);
  await ae.syncNow();
  await local.flush();
  t.deepEqual(nodeServices(catalog), ['consul']);
  t.deepEqual(nodeChecks(catalog), [SERF_HEALTH_CHECK_ID]);
  t.is(local.services().length, 0, 'the markers used for deletion are gone once done');
  t.true(local.inSync);
});

test('the node missing from the catalog is registered again by the next full sync', async (t) => {
  const { catalog, local, ae } = setup();
  local.addService(web);
  await local.flush();
  catalog.apply({ type: 'deregister', node: NODE.Node });
  t.is(catalog.state.registry.nodeServices(NODE.Node).result, null);
  await ae.syncNow();
  await local.flush();
  t.deepEqual(nodeServices(catalog), ['web-1']);
});

test('full syncs run periodically on the clock, staggered, and stop with stop()', async (t) => {
  const { clock, local, ae } = setup();
  local.addService(web);
  await local.flush();
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  ae.start();
  // The first comes within 3 s, each next one within two periods (period + a stagger up to one).
  const at: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = ae.fullSyncs;
    const deadline = clock.now() + (i === 0 ? 3_000 : 120_000);
    while (ae.fullSyncs === before) {
      t.true(clock.now() <= deadline, `full sync ${i + 1} did not come in time`);
      clock.advance(500);
      await settle();
    }
    at.push(clock.now());
  }
  t.true(at[1] - at[0] >= 60_000, 'not before a whole period');
  await ae.stop();
  const after = ae.fullSyncs;
  clock.advance(600_000);
  await settle();
  t.is(ae.fullSyncs, after, 'no full sync after stop');
});

/** Advances the fake clock in 100 ms steps until `ae` has done `n` more full syncs (or failed ones). */
async function nextSyncAfter(
  t: ExecutionContext,
  clock: FakeClock,
  ae: AntiEntropy,
  limitMs: number,
): Promise<number> {
  const start = clock.now();
  const before = ae.fullSyncs + ae.failures;
  while (ae.fullSyncs + ae.failures === before) {
    if (clock.now() - start > limitMs) {
      t.fail(`no full sync within ${limitMs} ms`);
      return Number.NaN;
    }
    clock.advance(100);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
  return clock.now() - start;
}

test("the period is Consul's: 1 min plus a stagger of up to 1 min times the scale factor", async (t) => {
  // random 0.5 at 256 nodes (scale 2): the next full sync 60 s + 0.5 * 2 * 60 s = 120 s after one.
  const { clock, ae } = setup({ random: () => 0.5, clusterSize: () => 256 });
  ae.start();
  t.is(await nextSyncAfter(t, clock, ae, 3_000), 1_500);
  t.is(await nextSyncAfter(t, clock, ae, 200_000), 120_000);
  t.is(await nextSyncAfter(t, clock, ae, 200_000), 120_000);
  await ae.stop();
});

test('a failed full sync is retried after 15 s plus a stagger, not a whole period', async (t) => {
  let failing = true;
  const { clock, ae, local, catalog } = setup({ random: () => 0.5, readFails: () => failing });
  local.addService(web);
  await local.flush();
  ae.start();
  t.is(await nextSyncAfter(t, clock, ae, 3_000), 1_500);
  t.is(ae.failures, 1);
  t.is(await nextSyncAfter(t, clock, ae, 60_000), 22_500, 'retried after 15 s + 0.5 * 15 s');
  t.is(ae.failures, 2);
  failing = false;
  catalog.apply({ type: 'deregister', node: NODE.Node, serviceId: 'web-1' });
  t.is(await nextSyncAfter(t, clock, ae, 60_000), 22_500);
  t.is(ae.fullSyncs, 1);
  await local.flush();
  // The check's TTL (30 s) ran out meanwhile: its status write, without the service in the catalog,
  // failed and is in a retry backoff, which the repair joins.
  for (let waited = 0; nodeServices(catalog).length === 0 && waited < 60_000; waited += 100) {
    clock.advance(100);
    await local.flush();
  }
  t.deepEqual(nodeServices(catalog), ['web-1'], 'the retry repaired the catalog');
  t.is(ae.fullSyncs + ae.failures, 3, 'no other full sync meanwhile');
  await ae.stop();
});

test('a server coming up brings the next full sync within 3 s; several at once bring one', async (t) => {
  const { clock, ae, local, catalog } = setup({ random: () => 0.5 });
  ae.serverUp();
  clock.advance(10_000);
  t.is(ae.fullSyncs, 0, 'nothing before start()');
  local.addService(web);
  await local.flush();
  ae.start();
  await nextSyncAfter(t, clock, ae, 3_000);
  // A server lost this node's entries, then came back up.
  catalog.apply({ type: 'deregister', node: NODE.Node });
  clock.advance(5_000);
  ae.serverUp();
  ae.serverUp();
  ae.serverUp();
  t.is(await nextSyncAfter(t, clock, ae, 3_000), 1_500);
  await local.flush();
  t.deepEqual(nodeServices(catalog), ['web-1']);
  const syncs = ae.fullSyncs;
  // The three triggers made one sync; the next is a whole period (+ stagger) after it.
  t.is(await nextSyncAfter(t, clock, ae, 200_000), 90_000);
  t.is(ae.fullSyncs, syncs + 1);
  await ae.stop();
});

test('scaledInterval follows Consul: 1x up to 128 nodes, +1x per doubling beyond', (t) => {
  t.is(scaledInterval(60_000, 1), 60_000);
  t.is(scaledInterval(60_000, 128), 60_000);
  t.is(scaledInterval(60_000, 129), 120_000);
  t.is(scaledInterval(60_000, 256), 120_000);
  t.is(scaledInterval(60_000, 257), 180_000);
  t.is(scaledInterval(60_000, 4096), 360_000);
});

// ---- persistence ----

function fileSetup(dir: string) {
  const { clock, catalog, local } = setup();
  const file = new LocalStateFile(dir, () => local.persistable(), silentLogger());
  return { clock, catalog, local, file };
}

test('API services and checks, TTL state and maintenance survive a restart; config entries do not persist', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-local-'));
  const a = fileSetup(dir);
  a.local.addService(web);
  a.local.addService(parseServiceDefinition({ name: 'db', id: 'db-1', port: 5432 }), { source: 'config' });
  a.local.addCheck(parseCheckDefinition({ name: 'disk', ttl: '1m' }));
  a.local.addCheck(parseCheckDefinition({ name: 'ping', tcp: '127.0.0.1:1', interval: '10s' }));
  a.local.updateTtl('disk', 'warning', '91% full');
  a.local.enableServiceMaintenance('web-1', 'upgrading');
  await a.file.flush();
  const onDisk = JSON.parse(readFileSync(join(dir, LOCAL_STATE_FILE), 'utf8'));
  t.is(onDisk.version, 1);
  t.deepEqual(
    onDisk.services.map((s: { ID: string }) => s.ID),
    ['web-1'],
  );

  const b = fileSetup(dir);
  const saved = b.file.load();
  t.truthy(saved);
  t.deepEqual(b.local.restore(saved as NonNullable<typeof saved>), []);
  t.deepEqual(
    b.local.services().map((s) => s.service.ID),
    ['web-1'],
  );
  const disk = b.local.check('disk');
  t.is(disk?.check.Status, 'warning');
  t.is(disk?.check.Output, '91% full');
  t.is(b.local.check('ping')?.check.Status, 'critical', 'a non-TTL check starts from its initial status');
  t.is(b.local.check('_service_maintenance:web-1')?.check.Notes, 'upgrading');
  t.is(b.local.check('service:web-1')?.check.Status, 'passing');
});

test('a persisted entry that the config now defines keeps the config definition', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-local-'));
  const a = fileSetup(dir);
  a.local.addService(web);
  await a.file.flush();
  const b = fileSetup(dir);
  const fromConfig = parseServiceDefinition({ name: 'web', id: 'web-1', port: 7000 });
  b.local.applyConfig([fromConfig], []);
  b.local.restore(b.file.load() as NonNullable<ReturnType<LocalStateFile['load']>>);
  t.is(b.local.service('web-1')?.service.Port, 7000);
  t.is(b.local.service('web-1')?.source, 'config');
});

test('an unreadable file is moved aside and the agent starts empty; a newer format refuses', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-local-'));
  writeFileSync(join(dir, LOCAL_STATE_FILE), '{"version": 1, "services": [tru');
  const a = fileSetup(dir);
  t.is(a.file.load(), undefined);
  const names = readdirSync(dir);
  t.false(names.includes(LOCAL_STATE_FILE));
  t.true(
    names.some((n) => n.startsWith(`${LOCAL_STATE_FILE}.bad-`)),
    names.join(','),
  );

  writeFileSync(
    join(dir, LOCAL_STATE_FILE),
    JSON.stringify({ version: 2, services: [], checks: [], maintenance: [] }),
  );
  t.throws(() => a.file.load(), { message: /format version 2, newer than this meshd's 1/ });
});

test('a runner status change is not a disk write; a TTL update is', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-local-'));
  const a = fileSetup(dir);
  const changes: boolean[] = [];
  a.local.addEventListener('state:changed', (e) =>
    changes.push((e as CustomEvent<{ persistent: boolean }>).detail.persistent),
  );
  a.local.addCheck(parseCheckDefinition({ name: 'web', http: 'http://127.0.0.1:1/', interval: '10s' }));
  a.local.addCheck(parseCheckDefinition({ name: 'disk', ttl: '1m' }));
  a.local.updateCheck('web', 'passing', 'HTTP GET http://127.0.0.1:1/: 200 OK');
  a.local.updateTtl('disk', 'passing', 'fine');
  t.deepEqual(changes, [true, true, false, true]);
});

test('a persisted script check comes back only while enable_script_checks is on', (t) => {
  const script = parseCheckDefinition(
    { name: 'backup', args: ['/bin/true'], interval: '1m' },
    {
      source: 'api',
      enableScriptChecks: true,
    },
  );
  const ttl = parseCheckDefinition({ name: 'disk', ttl: '1m' });
  const saved = {
    services: [],
    checks: [
      { def: script, status: 'critical' as const, output: '' },
      { def: ttl, status: 'passing' as const, output: 'ok' },
    ],
    maintenance: [],
  };
  const on = restorable(saved, { enableScriptChecks: true });
  t.is(on.state.checks.length, 2);
  t.deepEqual(on.warnings, []);
  const off = restorable(saved, { enableScriptChecks: false });
  t.deepEqual(
    off.state.checks.map((c) => c.def.CheckID),
    ['disk'],
  );
  t.regex(off.warnings[0], /"backup" not restored: enable_script_checks is off/);
});
