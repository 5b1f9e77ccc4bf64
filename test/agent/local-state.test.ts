import test from 'ava';
import { z } from 'zod';
import type { CommandInput, WriteReply } from '../../src/agent/backend.ts';
import { parseCheckDefinition, parseServiceDefinition } from '../../src/agent/local/definitions.ts';
import {
  DefinitionError,
  NotTtlCheckError,
  UnknownCheckError,
  UnknownServiceError,
} from '../../src/agent/local/errors.ts';
import {
  DEFAULT_NODE_MAINTENANCE_REASON,
  DEFAULT_SERVICE_MAINTENANCE_REASON,
  LocalState,
  type LocalStateInit,
  truncateOutput,
} from '../../src/agent/local/state.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import type { NodeInput, RegisterCommand } from '../../src/catalog/types.ts';
import { FakeClock } from '../support/fake-clock.ts';

/** Records commands; `failNext` writes throw (no leader), `refuse` answers ok:false. */
class FakeCatalog {
  commands: CommandInput[] = [];
  failNext = 0;
  attempts = 0;
  refuse: ((cmd: CommandInput) => string | undefined) | undefined;
  /** When set, each write waits for it (to race local changes against a write in flight). */
  gate: Promise<void> | undefined;
  write = async (cmd: CommandInput): Promise<WriteReply> => {
    this.attempts++;
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('No cluster leader');
    }
    const refused = this.refuse?.(cmd);
    if (refused) return { index: 0, result: { ok: false, error: refused } };
    this.commands.push(structuredClone(cmd));
    return { index: this.commands.length, result: { ok: true, value: true } };
  };
}

const NODE: NodeInput = {
  ID: '11111111-2222-3333-4444-555555555555',
  Node: 'n1',
  Address: '10.0.0.1',
  Datacenter: 'dc1',
};

function setup(init: LocalStateInit = {}) {
  const clock = new FakeClock();
  const catalog = new FakeCatalog();
  const local = new LocalState({ node: NODE, catalog, clock, logger: silentLogger() }, init);
  return { clock, catalog, local };
}

const web = (extra: Record<string, unknown> = {}) =>
  parseServiceDefinition({ name: 'web', port: 8080, tags: ['v1'], check: { ttl: '10s' }, ...extra });

const registers = (cmds: CommandInput[]) =>
  cmds.filter((c): c is Omit<RegisterCommand, 'now'> => c.type === 'register');

test('a service with its TTL check is pushed as one register command for this node', async (t) => {
  const { catalog, local } = setup();
  local.addService(web());
  await local.flush();
  t.is(catalog.commands.length, 1);
  const [cmd] = registers(catalog.commands);
  t.deepEqual(cmd.node, NODE);
  t.true(cmd.skipNodeUpdate);
  t.is(cmd.service?.ID, 'web');
  t.is(cmd.service?.Port, 8080);
  t.deepEqual(cmd.service?.Weights, { Passing: 1, Warning: 1 });
  t.is(cmd.checks?.length, 1);
  const check = cmd.checks?.[0];
  t.is(check?.CheckID, 'service:web');
  t.is(check?.Name, "Service 'web' check");
  t.is(check?.Status, 'critical');
  t.is(check?.ServiceID, 'web');
  t.is(check?.Type, 'ttl');
  t.deepEqual(check?.Definition, { TTL: '10s' });
  t.true(local.inSync);
});

test('pass/warn/fail set status and output and re-arm the TTL; expiry turns the check critical', async (t) => {
  const { clock, catalog, local } = setup();
  local.addService(web());
  await local.flush();

  local.updateTtl('service:web', 'passing', 'all good');
  await local.flush();
  let last = registers(catalog.commands).at(-1);
  t.deepEqual(
    last?.checks?.map((c) => [c.CheckID, c.Status, c.Output]),
    [['service:web', 'passing', 'all good']],
  );
  t.is(last?.service, undefined, 'a check change alone does not re-send the service');

  clock.advance(8_000);
  local.updateTtl('service:web', 'warning', 'slow');
  clock.advance(8_000); // 16 s after the first pass, 8 s after the re-arm
  t.is(local.check('service:web')?.check.Status, 'warning');
  local.updateTtl('service:web', 'critical', 'down');
  t.is(local.check('service:web')?.check.Status, 'critical');
  local.updateTtl('service:web', 'passing', 'back');
  await local.flush();

  clock.advance(9_999);
  t.is(local.check('service:web')?.check.Status, 'passing');
  clock.advance(1);
  const expired = local.check('service:web')?.check;
  t.is(expired?.Status, 'critical');
  t.is(expired?.Output, 'TTL expired (last output before timeout follows): back');
  await local.flush();
  last = registers(catalog.commands).at(-1);
  t.is(last?.checks?.[0].Status, 'critical');
  t.is(clock.pending, 0, 'an expired TTL is not re-armed until the next update');
});

test('a TTL that expires before any update says just "TTL expired"', async (t) => {
  const { clock, local } = setup();
  local.addCheck(parseCheckDefinition({ Name: 'heartbeat', TTL: '30s', Status: 'passing' }));
  t.is(local.check('heartbeat')?.check.Status, 'passing');
  clock.advance(30_000);
  t.is(local.check('heartbeat')?.check.Status, 'critical');
  t.is(local.check('heartbeat')?.check.Output, 'TTL expired');
});

test('updates: unknown check, non-TTL check, output capped at OutputMaxSize', (t) => {
  const { local } = setup();
  t.throws(() => local.updateTtl('nope', 'passing', ''), { instanceOf: UnknownCheckError });
  local.addCheck(
    parseCheckDefinition({ name: 'api', http: 'http://127.0.0.1:1/health', interval: '10s', timeout: '1s' }),
  );
  const http = local.check('api');
  t.is(http?.check.Status, 'critical', 'a non-TTL check waits for its runner, critical until then');
  t.is(http?.check.Type, 'http');
  t.is(http?.Interval, '10s');
  t.is(http?.Timeout, '1s');
  t.deepEqual(http?.check.Definition, { HTTP: 'http://127.0.0.1:1/health', Interval: '10s', Timeout: '1s' });
  t.throws(() => local.updateTtl('api', 'passing', ''), { instanceOf: NotTtlCheckError });

  local.addCheck(parseCheckDefinition({ name: 'small', ttl: '1m', output_max_size: 5 }));
  local.updateTtl('small', 'passing', '0123456789');
  t.is(local.check('small')?.check.Output, '01234 ... (captured 5 of 10 bytes)');
  t.is(truncateOutput('short', 4096), 'short');
});

test('node maintenance is a critical _node_maintenance check; enabling twice keeps the first reason', async (t) => {
  const { catalog, local } = setup();
  local.enableNodeMaintenance();
  local.enableNodeMaintenance('second reason is ignored');
  const c = local.check('_node_maintenance')?.check;
  t.like(c, {
    CheckID: '_node_maintenance',
    Name: 'Node Maintenance Mode',
    Status: 'critical',
    Notes: DEFAULT_NODE_MAINTENANCE_REASON,
    ServiceID: '',
    Type: 'maintenance',
  });
  t.true(local.nodeMaintenance);
  await local.flush();
  t.is(registers(catalog.commands).at(-1)?.checks?.[0].CheckID, '_node_maintenance');
  local.disableNodeMaintenance();
  local.disableNodeMaintenance(); // no-op
  await local.flush();
  t.deepEqual(catalog.commands.at(-1), { type: 'deregister', node: 'n1', checkId: '_node_maintenance' });
  t.is(local.check('_node_maintenance'), undefined);
  t.false(local.nodeMaintenance);
});

test('service maintenance is bound to the service and goes with it', async (t) => {
  const { catalog, local } = setup();
  t.throws(() => local.enableServiceMaintenance('web'), { instanceOf: UnknownServiceError });
  local.addService(web());
  local.enableServiceMaintenance('web', 'deploying');
  const c = local.check('_service_maintenance:web')?.check;
  t.like(c, {
    Name: 'Service Maintenance Mode',
    Status: 'critical',
    Notes: 'deploying',
    ServiceID: 'web',
    ServiceName: 'web',
  });
  t.deepEqual(c?.ServiceTags, ['v1']);
  local.disableServiceMaintenance('web');
  local.enableServiceMaintenance('web');
  t.is(local.check('_service_maintenance:web')?.check.Notes, DEFAULT_SERVICE_MAINTENANCE_REASON);
  // Re-registering the service with replace-existing-checks keeps the maintenance check.
  local.addService(web({ check: undefined }), { replaceExistingChecks: true });
  t.truthy(local.check('_service_maintenance:web'));
  t.is(local.check('service:web'), undefined);
  await local.flush();
  catalog.commands = [];
  local.removeService('web');
  t.is(local.check('_service_maintenance:web'), undefined);
  await local.flush();
  t.deepEqual(
    catalog.commands,
    [{ type: 'deregister', node: 'n1', serviceId: 'web' }],
    "the service's checks go with it",
  );
  t.true(local.inSync);
  t.throws(() => local.removeService('web'), { instanceOf: UnknownServiceError });
});

test('a burst of changes is coalesced into one round', async (t) => {
  const { catalog, local } = setup();
  local.addService(web());
  local.updateTtl('service:web', 'passing', 'a');
  local.updateTtl('service:web', 'warning', 'b');
  local.enableNodeMaintenance('x');
  local.disableNodeMaintenance();
  await local.flush();
  // One register for the service with its check's latest status, one (harmless) deregister of
  // the maintenance check that never reached the catalog.
  t.is(catalog.commands.length, 2);
  const [reg] = registers(catalog.commands);
  t.is(reg.checks?.[0].Status, 'warning');
  t.is(reg.checks?.[0].Output, 'b');
  t.true(local.inSync);
});

test('a failing write is retried with backoff until it lands; nothing local is lost meanwhile', async (t) => {
  const { clock, catalog, local } = setup({ retryMinMs: 100, retryMaxMs: 1_000 });
  catalog.failNext = 3;
  local.addService(web());
  await local.flush();
  t.is(catalog.commands.length, 0);
  t.is(local.syncFailures, 1);
  t.false(local.inSync);
  t.is(local.outOfSyncCount, 2, 'the service and its check');
  t.is(local.service('web')?.service.Port, 8080, 'the local state keeps the service');

  // Changes during the backoff wait for the retry and go with it.
  local.updateTtl('service:web', 'passing', 'ok');
  await local.flush();
  t.is(catalog.attempts, 1, 'no write before the retry timer');

  clock.advance(99);
  await local.flush();
  t.is(catalog.attempts, 1);
  clock.advance(1); // retry 1 (100 ms) fails
  await local.flush();
  t.is(catalog.attempts, 2);
  clock.advance(200); // retry 2 (200 ms) fails
  await local.flush();
  t.is(catalog.attempts, 3);
  t.is(local.syncFailures, 3);
  clock.advance(400); // retry 3 (400 ms) lands
  await local.flush();
  t.is(catalog.commands.length, 1);
  t.is(registers(catalog.commands)[0].checks?.[0].Status, 'passing');
  t.true(local.inSync);
  t.is(local.syncFailures, 0);
  t.is(local.lastSyncAt, clock.now());
});

test('a refused write is retried, and does not hold back the other entries', async (t) => {
  const { clock, catalog, local } = setup({ retryMinMs: 100 });
  catalog.refuse = (cmd) =>
    cmd.type === 'register' && cmd.service?.ID === 'bad' ? 'refused for the test' : undefined;
  local.addService(parseServiceDefinition({ name: 'bad' }));
  local.addService(web());
  await local.flush();
  t.deepEqual(
    registers(catalog.commands).map((c) => c.service?.ID),
    ['web'],
  );
  t.false(local.service('bad')?.inSync);
  t.is(local.outOfSyncCount, 1, 'only the refused service');
  catalog.refuse = undefined;
  clock.advance(100);
  await local.flush();
  t.deepEqual(
    registers(catalog.commands).map((c) => c.service?.ID),
    ['web', 'bad'],
  );
  t.true(local.inSync);
});

test('a change racing a write in flight is pushed again', async (t) => {
  const { catalog, local } = setup();
  let open!: () => void;
  catalog.gate = new Promise((r) => {
    open = r;
  });
  local.addService(web());
  await new Promise((r) => setImmediate(r)); // the write is in flight
  local.updateTtl('service:web', 'passing', 'during');
  catalog.gate = undefined;
  open();
  await local.flush();
  const regs = registers(catalog.commands);
  t.is(regs.length, 2);
  t.is(regs[0].checks?.[0].Status, 'critical');
  t.is(regs[1].checks?.[0].Status, 'passing');
  t.true(local.inSync);
});

test('output-only changes wait for check_update_interval; status changes go at once', async (t) => {
  const { clock, catalog, local } = setup({ checkUpdateIntervalMs: 60_000 });
  local.addCheck(parseCheckDefinition({ name: 'hb', ttl: '10m' }));
  local.updateTtl('hb', 'passing', 'one');
  await local.flush();
  t.is(catalog.commands.length, 1);
  local.updateTtl('hb', 'passing', 'two');
  await local.flush();
  t.is(catalog.commands.length, 1, 'an output change alone is deferred');
  clock.advance(60_000);
  await local.flush();
  t.is(catalog.commands.length, 2);
  t.is(registers(catalog.commands)[1].checks?.[0].Output, 'two');
  local.updateTtl('hb', 'passing', 'three');
  local.updateTtl('hb', 'warning', 'four');
  await local.flush();
  t.is(catalog.commands.length, 3);
  t.is(registers(catalog.commands)[2].checks?.[0].Status, 'warning');
});

test('checks: register, bound to a service, deregister, replace-existing-checks', async (t) => {
  const { catalog, local } = setup();
  t.throws(() => local.addCheck(parseCheckDefinition({ name: 'c', ttl: '1s', service_id: 'web' })), {
    instanceOf: DefinitionError,
    message: 'ServiceID "web" does not exist',
  });
  local.addService(web({ checks: [{ ttl: '10s' }, { name: 'second', ttl: '20s' }], check: undefined }));
  t.deepEqual(
    local.checks().map((c) => [c.check.CheckID, c.check.Name]),
    [
      ['service:web:1', "Service 'web' check"],
      ['service:web:2', 'second'],
    ],
  );
  local.addCheck(parseCheckDefinition({ name: 'extra', ttl: '1s', service_id: 'web' }));
  t.is(local.check('extra')?.check.ServiceName, 'web');
  local.updateTtl('service:web:1', 'passing', 'kept');
  // Re-registering without replace keeps extra checks, and an unchanged check keeps its status.
  local.addService(
    web({ checks: [{ ttl: '10s' }, { name: 'second', ttl: '20s' }], check: undefined, tags: ['v2'] }),
  );
  t.truthy(local.check('extra'));
  t.is(local.check('service:web:1')?.check.Status, 'passing');
  t.deepEqual(local.check('extra')?.check.ServiceTags, ['v2'], "checks follow the service's tags");
  local.addService(web({ check: { check_id: 'only', ttl: '5s' } }), { replaceExistingChecks: true });
  t.deepEqual(
    local.checks().map((c) => c.check.CheckID),
    ['only'],
  );
  await local.flush();
  catalog.commands = [];
  local.removeCheck('only');
  t.throws(() => local.removeCheck('only'), { instanceOf: UnknownCheckError });
  await local.flush();
  t.deepEqual(catalog.commands, [{ type: 'deregister', node: 'n1', checkId: 'only' }]);
});

test('applyConfig: config entries follow the config; API ones stay; a bad config changes nothing', async (t) => {
  const { local } = setup();
  local.addService(parseServiceDefinition({ name: 'api-svc' }));
  local.applyConfig(
    [web(), parseServiceDefinition({ name: 'db', port: 5432 })],
    [parseCheckDefinition({ name: 'disk', ttl: '1m' })],
  );
  local.updateTtl('service:web', 'passing', 'ok');
  t.deepEqual(
    local.services().map((s) => [s.service.ID, s.source]),
    [
      ['api-svc', 'api'],
      ['db', 'config'],
      ['web', 'config'],
    ],
  );
  const before = JSON.stringify([local.services(), local.checks()]);
  t.throws(() => local.applyConfig([], [parseCheckDefinition({ name: 'x', ttl: '1s', service_id: 'db' })]), {
    instanceOf: DefinitionError,
  });
  t.is(JSON.stringify([local.services(), local.checks()]), before, 'a refused config changes nothing');

  local.applyConfig([web(), parseServiceDefinition({ name: 'cache' })], []);
  t.deepEqual(
    local.services().map((s) => s.service.ID),
    ['api-svc', 'cache', 'web'],
  );
  t.is(local.check('disk'), undefined);
  t.is(local.check('service:web')?.check.Status, 'passing', 'an unchanged check keeps its status');
});

test('definitions: Consul JSON in any key case, snake_case from config files, and refusals', (t) => {
  const def = parseServiceDefinition({
    NAME: 'api',
    id: 'api-1',
    enable_tag_override: true,
    tagged_addresses: { lan: { address: '10.0.0.9', port: 80 } },
    meta: { Version: '2' },
    weights: { passing: 3 },
    connect: { native: true },
    checks: [{ http: 'http://x/', interval: 10_000_000_000, deregister_critical_service_after: '90m' }],
  });
  t.like(def.service, {
    ID: 'api-1',
    Service: 'api',
    EnableTagOverride: true,
    Weights: { Passing: 3, Warning: 1 },
  });
  t.deepEqual(def.service.Meta, { Version: '2' }, 'meta keys are kept as given');
  t.deepEqual(def.service.TaggedAddresses, { lan: { Address: '10.0.0.9', Port: 80 } });
  t.deepEqual(def.service.Connect, { Native: true });
  t.deepEqual(def.checks[0].Definition, {
    HTTP: 'http://x/',
    Interval: '10s',
    DeregisterCriticalServiceAfter: '1h30m0s',
  });

  const refused = (raw: unknown) => t.throws(() => parseServiceDefinition(raw))?.message;
  t.is(refused({ port: 1 }), 'Missing service name');
  t.regex(refused({ name: 'x', port: 'http' }) ?? '', /expected number/);
  t.deepEqual(
    t.throws(() => parseServiceDefinition({ name: 'x', port: 'http' }), { instanceOf: z.ZodError })?.issues[0]
      .path,
    ['Port'],
  );
  t.is(refused({ name: 'x', address: '0.0.0.0' }), 'Invalid service address');
  t.is(refused({ name: 'x', check: { interval: '10s' } }), 'Invalid check: TTL must be > 0 for TTL checks');
  t.is(
    refused({ name: 'x', check: { http: 'http://x', ttl: '1s', interval: '1s' } }),
    'Invalid check: Interval and TTL cannot both be specified',
  );
  t.regex(
    refused({ name: 'x', check: { args: ['/bin/true'], interval: '1s' } }) ?? '',
    /Scripts are disabled/,
  );
  t.regex(refused({ name: 'x', meta: { 'consul-x': '1' } }) ?? '', /reserved/);
  t.regex(refused({ name: 'p', kind: 'connect-proxy', port: 1 }) ?? '', /DestinationServiceName/);
  t.regex(
    refused({ name: 'x', check: { ttl: '1s', status: 'bogus' } }) ?? '',
    /Invalid check status "bogus"/,
  );
  const bad = t.throws(() => parseServiceDefinition({ name: 'x', check: { ttl: '10x' } }), {
    instanceOf: z.ZodError,
  });
  t.deepEqual(bad?.issues[0].path, ['Check', 'TTL']);
  t.is(bad?.issues[0].message, 'invalid duration "10x": unknown unit "x"');
  t.is(t.throws(() => parseCheckDefinition({ ttl: '1s' }))?.message, 'Missing check name');

  const sidecar = parseServiceDefinition({ name: 'web', connect: { sidecar_service: {} } });
  t.deepEqual(sidecar.service.Connect, {}, 'expanded into its own service (see sidecar.test.ts)');
  t.is(sidecar.sidecar?.id, 'web-sidecar-proxy');
  t.deepEqual(sidecar.warnings, []);
});

test('stop clears timers and ends syncing; the state stays readable', async (t) => {
  const { clock, catalog, local } = setup();
  catalog.failNext = 1;
  local.addService(web());
  await local.flush();
  t.true(clock.pending > 0);
  await local.stop();
  t.is(clock.pending, 0);
  t.is(local.service('web')?.service.ID, 'web');
  t.throws(() => local.addService(web()));
});

test('waitForChange resolves on the next change, rejects on abort', async (t) => {
  const { local } = setup();
  const v = local.version;
  const ac = new AbortController();
  const waiting = local.waitForChange(v, ac.signal);
  local.enableNodeMaintenance();
  await waiting;
  const ac2 = new AbortController();
  const never = local.waitForChange(local.version, ac2.signal);
  ac2.abort(new Error('gone'));
  await t.throwsAsync(never, { message: 'gone' });
});
