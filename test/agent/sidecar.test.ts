import test from 'ava';
import { parseServiceDefinition } from '../../src/agent/local/definitions.ts';
import { DefinitionError } from '../../src/agent/local/errors.ts';
import { LocalState, type LocalStateInit } from '../../src/agent/local/state.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import type { NodeInput } from '../../src/catalog/types.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';

const NODE: NodeInput = { ID: '11111111-2222-3333-4444-555555555555', Node: 'n1', Address: '10.0.0.1' };

function setup(init: LocalStateInit = {}) {
  const catalog = new MemoryCatalog();
  const local = new LocalState({ node: NODE, catalog, clock: new FakeClock(), logger: silentLogger() }, init);
  return { catalog, local };
}

const web = (extra: Record<string, unknown> = {}) =>
  parseServiceDefinition({
    name: 'web',
    id: 'web-1',
    port: 8080,
    tags: ['v1'],
    meta: { team: 'a' },
    connect: { sidecar_service: {} },
    ...extra,
  });

test('connect.sidecar_service registers the sidecar proxy with Consul defaults and checks', async (t) => {
  const { catalog, local } = setup();
  local.addService(
    web({
      connect: {
        sidecar_service: { proxy: { upstreams: [{ destination_name: 'db', local_bind_port: 9191 }] } },
      },
    }),
  );
  const sidecar = local.service('web-1-sidecar-proxy')?.service;
  t.truthy(sidecar);
  t.like(sidecar, {
    ID: 'web-1-sidecar-proxy',
    Service: 'web-sidecar-proxy',
    Kind: 'connect-proxy',
    Port: 21000,
    Tags: ['v1'],
    Meta: { team: 'a' },
    Proxy: {
      DestinationServiceName: 'web',
      DestinationServiceID: 'web-1',
      LocalServiceAddress: '127.0.0.1',
      LocalServicePort: 8080,
    },
  });
  t.like((sidecar?.Proxy.Upstreams as unknown[])?.[0], { DestinationName: 'db', LocalBindPort: 9191 });
  t.deepEqual(local.service('web-1')?.service.Connect, {}, 'the parent row does not carry SidecarService');
  const checks = local.checks().filter((c) => c.check.ServiceID === 'web-1-sidecar-proxy');
  t.deepEqual(
    checks.map((c) => [
      c.check.Name,
      c.check.Type,
      c.check.Definition.TCP ?? c.check.Definition.AliasService,
    ]),
    [
      ['Connect Sidecar Listening', 'tcp', '127.0.0.1:21000'],
      ['Connect Sidecar Aliasing web-1', 'alias', 'web-1'],
    ],
  );
  await local.flush();
  const inCatalog = catalog.state.registry.nodeServices('n1').result?.services.map((s) => s.ID);
  t.deepEqual(inCatalog, ['web-1', 'web-1-sidecar-proxy']);
});

test('sidecar ports: the lowest free one of the range; an update keeps its port; a given port is used', (t) => {
  const { local } = setup();
  local.addService(web());
  local.addService(parseServiceDefinition({ name: 'api', port: 9090, connect: { sidecar_service: {} } }));
  t.is(local.service('api-sidecar-proxy')?.service.Port, 21001);
  local.addService(web({ tags: ['v2'] }));
  t.is(local.service('web-1-sidecar-proxy')?.service.Port, 21000);
  t.deepEqual(local.service('web-1-sidecar-proxy')?.service.Tags, ['v2']);
  local.addService(
    parseServiceDefinition({
      name: 'db',
      port: 5432,
      connect: { sidecar_service: { port: 30000, check: { name: 'mine', ttl: '30s' }, tags: ['own'] } },
    }),
  );
  const db = local.service('db-sidecar-proxy')?.service;
  t.is(db?.Port, 30000);
  t.deepEqual(db?.Tags, ['own']);
  t.deepEqual(
    local
      .checks()
      .filter((c) => c.check.ServiceID === 'db-sidecar-proxy')
      .map((c) => c.check.Name),
    ['mine'],
  );
});

test('deregistering a service deregisters its sidecar', async (t) => {
  const { catalog, local } = setup();
  local.addService(web());
  await local.flush();
  local.removeService('web-1');
  t.is(local.service('web-1-sidecar-proxy'), undefined);
  t.is(local.checks().length, 0);
  await local.flush();
  t.deepEqual(catalog.state.registry.nodeServices('n1').result?.services, []);
});

test('no port left in the range, or auto-assignment off: refused, nothing registered', (t) => {
  const { local } = setup({ sidecarPorts: { min: 21000, max: 21000 } });
  local.addService(web());
  const err = t.throws(
    () =>
      local.addService(parseServiceDefinition({ name: 'api', port: 9090, connect: { sidecar_service: {} } })),
    { instanceOf: DefinitionError },
  );
  t.regex(err?.message ?? '', /none left in the configured range \[21000, 21000\]/);
  t.is(local.service('api'), undefined);

  const off = setup({ sidecarPorts: { min: 0, max: 0 } });
  t.throws(() => off.local.addService(web()), { message: /auto-assignment disabled/ });
});

test('bad sidecar definitions are refused with the reason', (t) => {
  t.throws(
    () =>
      parseServiceDefinition({
        name: 'p',
        port: 1,
        kind: 'connect-proxy',
        proxy: { destination_service_name: 'web' },
        connect: { sidecar_service: {} },
      }),
    { message: /cannot be specified for a proxy/ },
  );
  t.throws(
    () =>
      parseServiceDefinition({
        name: 'web',
        port: 1,
        connect: { sidecar_service: { connect: { sidecar_service: {} } } },
      }),
    { message: /nested SidecarService/ },
  );
  t.throws(
    () => parseServiceDefinition({ name: 'web', port: 1, connect: { sidecar_service: { port: 'x' } } }),
    {
      message: /SidecarService\.Port/,
    },
  );
});

test('a config service with a sidecar keeps it across a reload', (t) => {
  const { local } = setup();
  local.applyConfig([web()], []);
  t.truthy(local.service('web-1-sidecar-proxy'));
  local.applyConfig([web()], []);
  t.is(local.service('web-1-sidecar-proxy')?.source, 'config');
  local.applyConfig([], []);
  t.is(local.service('web-1-sidecar-proxy'), undefined);
  t.is(local.service('web-1'), undefined);
});
