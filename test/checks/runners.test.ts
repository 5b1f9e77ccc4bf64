import { once } from 'node:events';
import { type AddressInfo, createServer, type Server } from 'node:net';
import test from 'ava';
import { CheckRunners, type CheckRunnersInit } from '../../src/agent/checks/check-runners.ts';
import { DEFAULT_SCRIPT_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, runSpec } from '../../src/agent/checks/spec.ts';
import { parseCheckDefinition, parseServiceDefinition } from '../../src/agent/local/definitions.ts';
import type { LocalState } from '../../src/agent/local/state.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import { waitFor } from '../support/agent-process.ts';
import { FakeClock, localState, settle } from './support.ts';

/** A TCP listener counting connections. */
async function listener(): Promise<{ addr: string; accepted: () => number; server: Server }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { addr: `127.0.0.1:${(server.address() as AddressInfo).port}`, accepted: () => n, server };
}

const noCatalog = {
  read: () => Promise.reject(new Error('no catalog in this test')),
};

async function setup(init: CheckRunnersInit = {}) {
  const clock = new FakeClock();
  const state: LocalState = await localState(clock);
  const runners = new CheckRunners(
    { state, catalog: noCatalog, clock, logger: silentLogger() },
    { rng: () => 0.5, ...init },
  );
  return { clock, state, runners };
}

const status = (state: LocalState, id: string) => state.check(id)?.check.Status;

test('defaults: 10 s timeout (30 s for scripts), 1 s minimum interval', (t) => {
  const view = (raw: Record<string, unknown>) => {
    const def = parseCheckDefinition(raw, { source: 'config', enableScriptChecks: true });
    return {
      check: {
        CheckID: def.CheckID,
        Name: def.Name,
        Status: def.Status,
        Notes: '',
        Output: '',
        ServiceID: '',
        ServiceName: '',
        ServiceTags: [],
        Type: def.Type,
        Definition: def.Definition,
      },
      Interval: def.Interval,
      Timeout: def.Timeout,
      ttlMs: def.ttlMs,
      source: 'api' as const,
      inSync: false,
    };
  };
  const http = runSpec(view({ name: 'h', http: 'http://x/', interval: '100ms' }));
  t.is(http?.intervalMs, 1_000);
  t.true(http?.intervalRaised);
  t.is(http?.timeoutMs, DEFAULT_TIMEOUT_MS);
  t.is(
    runSpec(view({ name: 's', args: ['/bin/true'], interval: '5s' }))?.timeoutMs,
    DEFAULT_SCRIPT_TIMEOUT_MS,
  );
  t.is(runSpec(view({ name: 't', tcp: 'x:1', interval: '5s', timeout: '2s' }))?.timeoutMs, 2_000);
  t.is(runSpec(view({ name: 'ttl', ttl: '5s' })), undefined, 'TTL checks have no runner');
});

test('a runner starts when a check appears, restarts when its definition changes, stops when removed', async (t) => {
  const a = await listener();
  const b = await listener();
  t.teardown(() => {
    a.server.close();
    b.server.close();
  });
  const { clock, state, runners } = await setup();
  t.teardown(() => runners.stop());
  runners.start();
  state.addCheck(parseCheckDefinition({ name: 'db', tcp: a.addr, interval: '10s' }));
  clock.advance(100); // the reconciliation the change scheduled (at most one per 100 ms)
  t.deepEqual(runners.running, ['db']);
  t.is(status(state, 'db'), 'critical', 'registered critical until its first run');

  clock.advance(4_999); // first run at rng (0.5) × interval
  await settle();
  t.is(a.accepted(), 0);
  clock.advance(1);
  await waitFor('the first run', () => status(state, 'db') === 'passing');
  t.is(state.check('db')?.check.Output, `TCP connect ${a.addr}: Success`);
  t.is(a.accepted(), 1);

  // New target: the old runner stops, a new one probes the new address.
  state.addCheck(parseCheckDefinition({ name: 'db', tcp: b.addr, interval: '10s' }));
  clock.advance(100);
  t.deepEqual(runners.running, ['db']);
  clock.advance(5_000);
  await waitFor('the new target to be probed', () => b.accepted() === 1);
  clock.advance(10_000);
  await waitFor('a second run of the new target', () => b.accepted() === 2);
  t.is(a.accepted(), 1, 'the old runner is gone');

  state.removeCheck('db');
  clock.advance(100);
  t.deepEqual(runners.running, []);
  clock.advance(60_000);
  await settle();
  t.is(b.accepted(), 2);
});

test('stop ends every runner and leaves no timer', async (t) => {
  const { clock, state, runners } = await setup();
  runners.start();
  state.addService(parseServiceDefinition({ name: 'web', check: { tcp: '127.0.0.1:1', interval: '10s' } }));
  state.addCheck(parseCheckDefinition({ name: 'node-http', http: 'http://127.0.0.1:1/', interval: '5s' }));
  clock.advance(100);
  t.deepEqual(runners.running, ['node-http', 'service:web']);
  runners.stop();
  t.deepEqual(runners.running, []);
  t.is(clock.pending, 0);
});

test('DeregisterCriticalServiceAfter: a service critical for longer is deregistered', async (t) => {
  const { clock, state, runners } = await setup({ reapIntervalMs: 5_000 });
  t.teardown(() => runners.stop());
  state.addService(
    parseServiceDefinition({ name: 'web', check: { ttl: '10s', deregister_critical_service_after: '1m' } }),
  );
  state.addService(
    parseServiceDefinition({ name: 'api', check: { ttl: '10s', deregister_critical_service_after: '1m' } }),
  );
  runners.start();
  // api keeps passing (its TTL renewed), web stays critical.
  const renew = () => state.updateTtl('service:api', 'passing', '');
  renew();
  for (let i = 0; i < 12; i++) {
    clock.advance(5_000);
    renew();
  }
  t.truthy(state.service('web'), 'critical for exactly 60 s: not yet');
  clock.advance(5_000);
  t.is(state.service('web'), undefined, 'reaped once critical for longer than 1m');
  t.is(state.check('service:web'), undefined);
  t.truthy(state.service('api'));
});

test('a check turning passing resets its critical time; below one minute is raised to one', async (t) => {
  const { clock, state, runners } = await setup({ reapIntervalMs: 5_000 });
  t.teardown(() => runners.stop());
  state.addService(
    parseServiceDefinition({ name: 'web', check: { ttl: '1h', deregister_critical_service_after: '10s' } }),
  );
  runners.start();
  clock.advance(50_000);
  state.updateTtl('service:web', 'passing', '');
  clock.advance(100);
  state.updateTtl('service:web', 'critical', '');
  clock.advance(55_000);
  t.truthy(state.service('web'), '55 s critical since the reset, 10 s raised to 60 s');
  clock.advance(10_000);
  t.is(state.service('web'), undefined);
});

test('alias of a local service follows its checks', async (t) => {
  const { state, runners } = await setup();
  t.teardown(() => runners.stop());
  state.addService(parseServiceDefinition({ name: 'web', check: { ttl: '1h' } }));
  state.addCheck(parseCheckDefinition({ name: 'web-alias', alias_service: 'web' }));
  runners.start();
  await settle();
  t.is(status(state, 'web-alias'), 'critical');
  t.is(state.check('web-alias')?.check.Output, 'Aliased check "Service \'web\' check" failing: ');

  state.updateTtl('service:web', 'passing', 'ok');
  await settle();
  t.is(status(state, 'web-alias'), 'passing');
  t.is(state.check('web-alias')?.check.Output, 'All checks passing.');

  state.updateTtl('service:web', 'warning', 'slow');
  await settle();
  t.is(status(state, 'web-alias'), 'warning');
  t.is(state.check('web-alias')?.check.Output, 'Aliased check "Service \'web\' check" failing: slow');

  state.removeService('web');
  await settle();
  t.is(status(state, 'web-alias'), 'critical');
  t.is(state.check('web-alias')?.check.Output, 'Service web could not be found on node ');
});

test('alias of a service on another node follows blocking health.node reads', async (t) => {
  const clock = new FakeClock();
  const state = await localState(clock);
  type Row = { CheckID: string; Name: string; Status: string; Output: string; ServiceID: string };
  let rows: Row[] = [{ CheckID: 'c1', Name: 'db check', Status: 'passing', Output: '', ServiceID: 'db' }];
  let index = 10;
  const waiters: (() => void)[] = [];
  const reads: { name: string; minIndex: number }[] = [];
  const catalog = {
    read: async (name: string, _args: unknown, opts: { minIndex: number; signal?: AbortSignal }) => {
      reads.push({ name, minIndex: opts.minIndex });
      if (name === 'catalog.node') return { index, result: null, knownLeader: true, lastContactMs: 0 };
      if (opts.minIndex >= index) {
        await new Promise<void>((resolve, reject) => {
          waiters.push(resolve);
          opts.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
        });
      }
      return { index, result: rows, knownLeader: true, lastContactMs: 0 };
    },
  };
  const runners = new CheckRunners(
    // biome-ignore lint/suspicious/noExplicitAny: a hand-rolled catalog for two query names
    { state, catalog: catalog as any, clock, logger: silentLogger() },
    { rng: () => 0 },
  );
  t.teardown(() => runners.stop());
  state.addCheck(parseCheckDefinition({ name: 'db-alias', alias_node: 'n2', alias_service: 'db' }));
  runners.start();
  await waitFor('the first read', () => status(state, 'db-alias') === 'passing');
  t.is(state.check('db-alias')?.check.Output, 'All checks passing.');
  t.deepEqual(reads[0], { name: 'health.node', minIndex: 0 });
  await waitFor('a blocking read', () => waiters.length === 1);
  t.is(reads.at(-1)?.minIndex, 10);

  rows = [{ CheckID: 'c1', Name: 'db check', Status: 'critical', Output: 'down', ServiceID: 'db' }];
  index = 11;
  waiters.shift()?.();
  await waitFor('the change', () => status(state, 'db-alias') === 'critical');
  t.is(state.check('db-alias')?.check.Output, 'Aliased check "db check" failing: down');

  // The service is gone from the node: no check of it, and the node has no such service.
  rows = [];
  index = 12;
  await waitFor('a blocking read', () => waiters.length === 1);
  waiters.shift()?.();
  await waitFor('the change', () => state.check('db-alias')?.check.Output.startsWith('Service db'));
  t.is(state.check('db-alias')?.check.Output, 'Service db could not be found on node n2');
});

type Row = { CheckID: string; Name: string; Status: string; Output: string; ServiceID: string };

/**
 * A catalog for remote alias checks: `health.node` reads block until {@link publish} raises the
 * index past the one asked for; `catalog.node` finds the node unless it was published as gone.
 */
function remoteCatalog(initial: Row[]) {
  let rows = initial;
  let nodeKnown = true;
  let index = 10;
  const waiters: (() => void)[] = [];
  const catalog = {
    read: async (name: string, _args: unknown, opts: { minIndex: number; signal?: AbortSignal }) => {
      const reply = <T>(result: T) => ({ index, result, knownLeader: true, lastContactMs: 0 });
      if (name === 'catalog.node') return reply(nodeKnown ? { services: [{ ID: 'db' }] } : null);
      while (opts.minIndex >= index) {
        await new Promise<void>((resolve, reject) => {
          waiters.push(resolve);
          opts.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
        });
      }
      return reply(rows);
    },
  };
  const publish = (next: Row[], known = true): void => {
    rows = next;
    nodeKnown = known;
    index++;
    for (const w of waiters.splice(0)) w();
  };
  return { catalog, publish };
}

async function aliasOf(def: Record<string, unknown>, catalog: ReturnType<typeof remoteCatalog>['catalog']) {
  const clock = new FakeClock();
  const state = await localState(clock);
  const runners = new CheckRunners(
    // biome-ignore lint/suspicious/noExplicitAny: a hand-rolled catalog for two query names
    { state, catalog: catalog as any, clock, logger: silentLogger() },
    { rng: () => 0 },
  );
  const { CheckID: id } = parseCheckDefinition(def);
  state.addCheck(parseCheckDefinition(def));
  runners.start();
  /** Waits until the alias reports `output`, then gives its status. */
  const reported = async (output: string) => {
    await waitFor(
      `the alias to report ${JSON.stringify(output)}`,
      () => state.check(id)?.check.Output === output,
    );
    return status(state, id);
  };
  return { runners, reported };
}

/** A check row of the aliased node; node-level unless a service ID is given. */
const row = (Name: string, Status: string, Output = '', ServiceID = ''): Row => ({
  CheckID: Name,
  Name,
  Status,
  Output,
  ServiceID,
});

test("alias of a whole node (AliasNode alone) follows the node's own checks, not its services'", async (t) => {
  const remote = remoteCatalog([
    row('serfHealth', 'passing'),
    row('disk', 'passing'),
    row('db', 'critical', 'down', 'db'),
  ]);
  const { runners, reported } = await aliasOf({ name: 'n2-alias', alias_node: 'n2' }, remote.catalog);
  t.teardown(() => runners.stop());
  t.is(await reported('All checks passing.'), 'passing', 'a critical service check does not count');

  remote.publish([
    row('serfHealth', 'passing'),
    row('disk', 'warning', '91% used'),
    row('db', 'passing', '', 'db'),
  ]);
  t.is(await reported('Aliased check "disk" failing: 91% used'), 'warning');

  // A critical check wins over warnings seen before and after it.
  remote.publish([
    row('disk', 'warning', '91% used'),
    row('serfHealth', 'critical', 'unreachable'),
    row('mem', 'warning'),
  ]);
  t.is(await reported('Aliased check "serfHealth" failing: unreachable'), 'critical');

  remote.publish([row('serfHealth', 'passing'), row('disk', 'passing')]);
  t.is(await reported('All checks passing.'), 'passing');
});

test('alias of a node: one without node-level checks passes, an unknown node is critical', async (t) => {
  const remote = remoteCatalog([row('db', 'passing', '', 'db')]);
  const { runners, reported } = await aliasOf({ name: 'n2-alias', alias_node: 'n2' }, remote.catalog);
  t.teardown(() => runners.stop());
  t.is(await reported('No checks found.'), 'passing');

  remote.publish([], false);
  t.is(await reported('Node n2 could not be found'), 'critical');

  remote.publish([row('serfHealth', 'passing')]);
  t.is(await reported('All checks passing.'), 'passing');
});

test('alias of its own node leaves itself out of what it aggregates', async (t) => {
  // The catalog holds the alias check itself (a node-level check of n1, critical until it reports).
  const remote = remoteCatalog([row('n1-alias', 'critical'), row('serfHealth', 'passing')]);
  const { runners, reported } = await aliasOf({ name: 'n1-alias', alias_node: 'n1' }, remote.catalog);
  t.teardown(() => runners.stop());
  t.is(await reported('All checks passing.'), 'passing');
});
