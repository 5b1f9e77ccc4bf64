import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ConfigError } from '../../src/agent/config/errors.ts';
import { parseAgentFlags } from '../../src/agent/config/flags.ts';
import { type LoadConfigOptions, loadConfig } from '../../src/agent/config/load.ts';
import { checkSource, mergeConfig } from '../../src/agent/config/merge.ts';
import { builtinDefaults, devDefaults, RawConfigSchema } from '../../src/agent/config/schema.ts';

/** A fake filesystem: file path → contents; directories are the path prefixes. */
function fakeFs(files: Record<string, string>): Pick<LoadConfigOptions, 'readFile' | 'readDir'> {
  return {
    readFile: async (path) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return text;
    },
    readDir: async (dir) => {
      const prefix = `${dir}/`;
      const names = Object.keys(files)
        .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/'))
        .map((p) => p.slice(prefix.length));
      if (names.length === 0) throw Object.assign(new Error(`ENOENT: ${dir}`), { code: 'ENOENT' });
      return names.reverse(); // any order: the loader must sort
    },
  };
}

/** One private IPv4 interface, so the default bind 0.0.0.0 resolves deterministically. */
const oneNic = () => ({
  lo: [{ address: '127.0.0.1', family: 'IPv4' as const, internal: true }],
  eth0: [
    { address: '10.1.2.3', family: 'IPv4' as const, internal: false },
    { address: 'fe80::1', family: 'IPv6' as const, internal: false },
  ],
});

const load = (argv: string[], files: Record<string, string> = {}, extra: Partial<LoadConfigOptions> = {}) =>
  loadConfig({ argv, hostname: 'host-a', networkInterfaces: oneNic, ...fakeFs(files), ...extra });

const json = (v: unknown): string => JSON.stringify(v, null, 2);

async function configError(t: import('ava').ExecutionContext, p: Promise<unknown>): Promise<ConfigError> {
  const err = await t.throwsAsync(p, { instanceOf: ConfigError });
  return err as ConfigError;
}

// ---------------------------------------------------------------- flags

test('flags: -flag value, -flag=value, --flag and --flag=value are the same', (t) => {
  const forms = [
    ['-datacenter', 'east', '-http-port', '9500'],
    ['-datacenter=east', '-http-port=9500'],
    ['--datacenter', 'east', '--http-port', '9500'],
    ['--datacenter=east', '--http-port=9500'],
  ];
  for (const argv of forms) {
    const f = parseAgentFlags(argv);
    t.deepEqual(f.config, { datacenter: 'east', ports: { http: 9500 } }, argv.join(' '));
  }
});

test('flags: booleans take no value, but accept =false', (t) => {
  const f = parseAgentFlags(['-server', '--bootstrap', '-dev', '-ui', '-log-json']);
  t.true(f.dev);
  t.deepEqual(f.config, { server: true, bootstrap: true, ui_config: { enabled: true }, log_json: true });
  t.deepEqual(parseAgentFlags(['-server=false', '-dev=0', '--ui=FALSE']).config, {
    server: false,
    ui_config: { enabled: false },
  });
  t.false(parseAgentFlags(['-dev=f']).dev);
  const err = t.throws(() => parseAgentFlags(['-server=maybe']), { instanceOf: ConfigError });
  t.is(err.message, 'invalid boolean value "maybe" for flag -server');
});

test('flags: a bool followed by a word is a stray argument, not a value', (t) => {
  const err = t.throws(() => parseAgentFlags(['-server', 'false', '-dev']), { instanceOf: ConfigError });
  t.regex(err.message, /unexpected argument "false"/);
});

test('flags: repeatable flags accumulate in order; others keep the last value', (t) => {
  const f = parseAgentFlags([
    '-retry-join=a',
    '-join',
    'x',
    '--retry-join',
    'b',
    '-config-file=/1.json',
    '-config-dir',
    '/d',
    '-config-file',
    '/2.json',
    '-recursor=8.8.8.8',
    '-recursor=1.1.1.1',
    '-node=n1',
    '-node=n2',
  ]);
  t.deepEqual(f.config.retry_join, ['a', 'b']);
  t.deepEqual(f.config.start_join, ['x']);
  t.deepEqual(f.config.recursors, ['8.8.8.8', '1.1.1.1']);
  t.is(f.config.node_name, 'n2');
  t.deepEqual(f.configPaths, [
    { kind: 'file', path: '/1.json' },
    { kind: 'dir', path: '/d' },
    { kind: 'file', path: '/2.json' },
  ]);
});

test('flags: every listed flag maps to its config key', (t) => {
  const f = parseAgentFlags([
    ...['-bootstrap-expect', '3', '-node-id', 'ID', '-bind', '10.0.0.1', '-advertise', '10.0.0.2'],
    ...['-client', '0.0.0.0', '-data-dir', '/var/meshd', '-pid-file', '/run/m.pid', '-encrypt', 'K'],
    ...['-dns-port', '53', '-grpc-port', '-1', '-server-port', '9300', '-serf-lan-port', '9301'],
    ...['-log-level', 'warn', '-domain', 'mesh.', '-alt-domain', 'alt.', '-retry-interval', '5s'],
    ...['-config-format', 'json'],
  ]);
  t.deepEqual(f.config, {
    bootstrap_expect: 3,
    node_id: 'ID',
    bind_addr: '10.0.0.1',
    advertise_addr: '10.0.0.2',
    client_addr: '0.0.0.0',
    data_dir: '/var/meshd',
    pid_file: '/run/m.pid',
    encrypt: 'K',
    ports: { dns: 53, grpc: -1, server: 9300, serf_lan: 9301 },
    log_level: 'warn',
    domain: 'mesh.',
    alt_domain: 'alt.',
    retry_interval: '5s',
  });
  t.is(f.configFormat, 'json');
});

test('flags: values the schema rejects are errors naming the key', async (t) => {
  const err = await configError(t, load(['-dev', '-log-level', 'loud']));
  t.is(err.message, 'command-line flags: "log_level": must be one of trace, debug, info, warn, err, error');
});

test('flags: a value-taking flag takes the next argument even if it starts with a dash (as Go)', (t) => {
  t.is(parseAgentFlags(['-node', '-odd']).config.node_name, '-odd');
});

test('flags: unknown flag is a one-line ConfigError', (t) => {
  const err = t.throws(() => parseAgentFlags(['-server', '-frobnicate']), { instanceOf: ConfigError });
  t.is(err.message, 'unknown flag: -frobnicate');
  t.is(err.name, 'ConfigError');
  t.is(t.throws(() => parseAgentFlags(['--frobnicate=1'])).message, 'unknown flag: -frobnicate');
});

test('flags: a missing value names the flag', (t) => {
  const err = t.throws(() => parseAgentFlags(['-server', '-data-dir']), { instanceOf: ConfigError });
  t.is(err.message, 'flag needs an argument: -data-dir');
});

test('flags: a bad number names the flag and the value', (t) => {
  const e1 = t.throws(() => parseAgentFlags(['-http-port', 'eighty']), { instanceOf: ConfigError });
  t.is(e1.message, 'invalid value "eighty" for flag -http-port: expected an integer');
  const e2 = t.throws(() => parseAgentFlags(['-dns-port=70000']), { instanceOf: ConfigError });
  t.regex(e2.message, /^invalid value "70000" for flag -dns-port: must be between 1 and 65535/);
  const e3 = t.throws(() => parseAgentFlags(['-retry-interval', '5 s']), { instanceOf: ConfigError });
  t.regex(e3.message, /^invalid value "5 s" for flag -retry-interval/);
});

test('flags: bad syntax, -config-format values, -help', (t) => {
  t.is(t.throws(() => parseAgentFlags(['---x'])).message, 'bad flag syntax: ---x');
  t.regex(t.throws(() => parseAgentFlags(['-config-format=yaml'])).message, /must be "json" or "hcl"/);
  t.true(parseAgentFlags(['-h']).help);
  t.true(parseAgentFlags(['--help']).help);
  t.deepEqual(parseAgentFlags(['--']).config, {});
  t.regex(t.throws(() => parseAgentFlags(['-dev', '--', 'x'])).message, /unexpected argument "x"/);
});

// ---------------------------------------------------------------- defaults

test('defaults: Consul ports and documented values', async (t) => {
  const { config, warnings } = await load(['-data-dir=/d']);
  t.deepEqual(config.ports, { http: 8500, https: -1, grpc: 8502, dns: 8600, server: 8300, serfLan: 8301 });
  t.is(config.datacenter, 'dc1');
  t.is(config.nodeName, 'host-a');
  t.false(config.server);
  t.false(config.bootstrap);
  t.is(config.bootstrapExpect, 0);
  t.is(config.bindAddr, '0.0.0.0');
  t.is(config.advertiseAddr, '10.1.2.3');
  t.deepEqual(config.clientAddrs, ['127.0.0.1']);
  t.is(config.retryIntervalMs, 30_000);
  t.is(config.logLevel, 'info');
  t.false(config.ui.enabled);
  t.is(config.domain, 'consul.');
  t.deepEqual(config.dns, {
    allowStale: true,
    maxStaleMs: 87_600 * 3_600_000,
    nodeTtlMs: 0,
    serviceTtlMs: {},
    onlyPassing: false,
    udpAnswerLimit: 3,
    enableTruncate: false,
  });
  t.is(config.performance.raftMultiplier, 5);
  t.deepEqual(config.autopilot, {
    cleanupDeadServers: true,
    lastContactThresholdMs: 200,
    serverStabilizationTimeMs: 10_000,
  });
  t.is(config.reconnectTimeoutMs, 72 * 3_600_000);
  t.is(config.checkUpdateIntervalMs, 300_000);
  t.false(config.acl.enabled);
  t.is(config.acl.defaultPolicy, 'allow');
  t.true(config.connect.enabled);
  t.deepEqual(config.services, []);
  t.false(config.devMode);
  t.is(config.dataDir, '/d');
  t.deepEqual(warnings, []);
});

test('defaults: the built-in and dev layers satisfy the strict schema', (t) => {
  t.true(RawConfigSchema.safeParse(builtinDefaults('h')).success);
  t.true(RawConfigSchema.safeParse(devDefaults()).success);
});

test('dev: server, bootstrap, loopback, UI, debug logs, no data_dir needed', async (t) => {
  const { config, warnings } = await load(['-dev']);
  t.true(config.devMode);
  t.true(config.server);
  t.true(config.bootstrap);
  t.is(config.dataDir, undefined);
  t.is(config.bindAddr, '127.0.0.1');
  t.is(config.advertiseAddr, '127.0.0.1');
  t.deepEqual(config.clientAddrs, ['127.0.0.1']);
  t.true(config.ui.enabled);
  t.is(config.logLevel, 'debug');
  t.is(config.performance.raftMultiplier, 1);
  t.deepEqual(warnings, []);
});

test('dev: files and flags still override the dev defaults', async (t) => {
  const files = { '/c/a.json': json({ log_level: 'WARN', ui_config: { enabled: false } }) };
  const { config } = await load(['-dev', '-config-dir', '/c', '-bind', '10.9.9.9'], files);
  t.is(config.logLevel, 'warn');
  t.false(config.ui.enabled);
  t.is(config.bindAddr, '10.9.9.9');
  t.is(config.advertiseAddr, '10.9.9.9');
});

// ---------------------------------------------------------------- merging

test('merge: config-dir files in lexical order, then -config-file order, flags last', async (t) => {
  const files = {
    '/etc/meshd/b.json': json({ datacenter: 'from-b', node_name: 'b', log_level: 'debug' }),
    '/etc/meshd/a.json': json({ datacenter: 'from-a', node_name: 'a', data_dir: '/a', log_level: 'trace' }),
    '/etc/meshd/10-z.json': json({ datacenter: 'from-10', ports: { http: 1 } }),
    '/etc/meshd/notes.txt': 'not config',
    '/extra.json': json({ node_name: 'extra', ports: { dns: 5353 } }),
  };
  const { config } = await load(
    ['-config-dir', '/etc/meshd', '-config-file', '/extra.json', '-log-level', 'error'],
    files,
  );
  t.deepEqual(config.configFiles, [
    '/etc/meshd/10-z.json',
    '/etc/meshd/a.json',
    '/etc/meshd/b.json',
    '/extra.json',
  ]);
  t.is(config.datacenter, 'from-b'); // b after a after 10-z
  t.is(config.nodeName, 'extra'); // the -config-file comes after the dir
  t.is(config.dataDir, '/a');
  t.is(config.logLevel, 'error'); // flags win
  t.is(config.ports.http, 1); // objects merge key by key
  t.is(config.ports.dns, 5353);
  t.is(config.ports.server, 8300);
});

test('merge: arrays concatenate across files and flags; service/check fold into the lists', async (t) => {
  const files = {
    '/c/1.json': json({
      retry_join: ['a'],
      service: { name: 'web', port: 80 },
      checks: [{ id: 'c1', ttl: '10s' }],
    }),
    '/c/2.json': json({
      retry_join: ['b'],
      services: [{ name: 'db' }],
      service: { name: 'cache' },
      check: { id: 'c2', ttl: '5s' },
      recursors: ['8.8.8.8'],
    }),
  };
  const { config } = await load(
    ['-data-dir=/d', '-config-dir=/c', '-retry-join', 'c', '-recursor', '1.1.1.1'],
    files,
  );
  t.deepEqual(config.retryJoin, ['a', 'b', 'c']);
  t.deepEqual(
    config.services.map((s) => s.name),
    ['web', 'db', 'cache'],
  );
  t.deepEqual(
    config.checks.map((c) => c.id),
    ['c1', 'c2'],
  );
  t.deepEqual(config.recursors, ['8.8.8.8', '1.1.1.1']);
});

test('merge: maps (node_meta, service_ttl) are replaced whole by a later non-empty map', (t) => {
  const a = { node_meta: { a: '1', b: '2' }, dns_config: { service_ttl: { '*': '5s' }, allow_stale: false } };
  const b = { node_meta: { c: '3' }, dns_config: { service_ttl: {} } };
  const m = mergeConfig(a, b);
  t.deepEqual(m.node_meta, { c: '3' });
  t.deepEqual(m.dns_config, { service_ttl: { '*': '5s' }, allow_stale: false });
  t.deepEqual(a.node_meta, { a: '1', b: '2' }, 'inputs untouched');
});

test('durations become milliseconds, including service_ttl', async (t) => {
  const files = {
    '/x.json': json({
      retry_interval: '1m30s',
      dns_config: { node_ttl: '1.5s', service_ttl: { '*': '10s', web: '250ms' } },
      reconnect_timeout: '8h',
    }),
  };
  const { config } = await load(['-data-dir=/d', '-config-file=/x.json'], files);
  t.is(config.retryIntervalMs, 90_000);
  t.is(config.dns.nodeTtlMs, 1_500);
  t.deepEqual(config.dns.serviceTtlMs, { '*': 10_000, web: 250 });
  t.is(config.reconnectTimeoutMs, 8 * 3_600_000);
});

// ---------------------------------------------------------------- file errors and warnings

test('unknown keys are warnings naming the file and key path, sorted', async (t) => {
  const files = {
    '/etc/meshd/a.json': json({ foo: { bar: 1 }, ports: { http: 8500, bogus: 1 }, zzz: true }),
  };
  const { config, warnings } = await load(['-data-dir=/d', '-config-file', '/etc/meshd/a.json'], files);
  t.deepEqual(warnings, [
    'config file /etc/meshd/a.json: unknown key "foo"',
    'config file /etc/meshd/a.json: unknown key "ports.bogus"',
    'config file /etc/meshd/a.json: unknown key "zzz"',
  ]);
  t.is(config.ports.http, 8500);
});

test('unknown nested key reports the full path', (t) => {
  const { warnings } = checkSource({ dns_config: { foo: { bar: 1 } }, acl: { tokens: { bar: 'x' } } }, 'f');
  t.deepEqual(warnings, ['f: unknown key "acl.tokens.bar"', 'f: unknown key "dns_config.foo"']);
});

test('a wrong type is a ConfigError naming the file and key', async (t) => {
  const files = { '/x.json': json({ ports: { http: '8500' } }) };
  const err = await configError(t, load(['-data-dir=/d', '-config-file=/x.json'], files));
  t.is(err.message, 'config file /x.json: "ports.http": expected number, got string');
  t.is(err.source, '/x.json');
  t.is(err.key, 'ports.http');
});

test('wrong types: arrays, objects, integers, durations, enums, definitions', (t) => {
  const cases: Array<[unknown, string]> = [
    [{ retry_join: 'a' }, '"retry_join": expected array, got string'],
    [{ retry_join: [1] }, '"retry_join.0": expected string, got number'],
    [{ ports: 8500 }, '"ports": expected object, got number'],
    [{ bootstrap_expect: 1.5 }, '"bootstrap_expect": expected an integer, got 1.5'],
    [{ server: 'true' }, '"server": expected boolean, got string'],
    [{ retry_interval: 30 }, '"retry_interval": expected string, got number'],
    [{ ports: { http: 70000 } }, '"ports.http": must be between 1 and 65535, or -1 to disable'],
    [{ services: [{ name: 'x' }, 'web'] }, '"services.1": expected object, got string'],
    [{ service: [] }, '"service": expected object, got array'],
    [{ log_level: 'loud' }, '"log_level": must be one of trace, debug, info, warn, err, error'],
  ];
  for (const [input, message] of cases) {
    const err = t.throws(() => checkSource(input, 'config file /f.json'), { instanceOf: ConfigError });
    t.is(err.message, `config file /f.json: ${message}`);
  }
  const dur = t.throws(() => checkSource({ dns_config: { max_stale: '5 minutes' } }, 'f'));
  t.regex(dur.message, /^f: "dns_config.max_stale": invalid duration "5 minutes"/);
});

test('the top level of a file must be an object', async (t) => {
  const err = await configError(t, load(['-config-file=/x.json'], { '/x.json': '[1]' }));
  t.is(err.message, 'config file /x.json: the top level must be a JSON object, got array');
});

test('malformed JSON names the file, line and column', async (t) => {
  const files = { '/etc/meshd/bad.json': '{\n  "datacenter": "dc1",\n  "server": true,\n}\n' };
  const err = await configError(t, load(['-config-file', '/etc/meshd/bad.json'], files));
  t.regex(err.message, /^config file \/etc\/meshd\/bad\.json: invalid JSON at line 4, column 1: /);
  const cut = await configError(t, load(['-config-file=/c.json'], { '/c.json': '{\n "a": 1' }));
  t.regex(cut.message, /^config file \/c\.json: invalid JSON at line 2, column 8/);
});

test('HCL is refused clearly, from -config-file, -config-dir and -config-format', async (t) => {
  const files = { '/c/a.json': '{}', '/c/b.hcl': 'server = true', '/x.hcl': 'server = true' };
  const e1 = await configError(t, load(['-config-file=/x.hcl'], files));
  t.is(
    e1.message,
    'config file /x.hcl: HCL is not supported, meshd reads JSON config only (convert the file to .json)',
  );
  const e2 = await configError(t, load(['-config-dir=/c'], files));
  t.regex(e2.message, /^config file \/c\/b\.hcl: HCL is not supported/);
  const e3 = await configError(t, load(['-config-format=hcl', '-dev'], files));
  t.regex(e3.message, /^-config-format=hcl: HCL is not supported/);
});

test('an unknown extension needs -config-format=json', async (t) => {
  const files = { '/etc/meshd.conf': json({ datacenter: 'x' }) };
  const err = await configError(t, load(['-dev', '-config-file=/etc/meshd.conf'], files));
  t.regex(err.message, /unknown extension "\.conf"; name it \*\.json or pass -config-format=json/);
  const { config } = await load(['-dev', '-config-format=json', '-config-file=/etc/meshd.conf'], files);
  t.is(config.datacenter, 'x');
});

test('a missing file or dir is a ConfigError naming it', async (t) => {
  t.is(
    (await configError(t, load(['-config-file=/nope.json']))).message,
    'config file /nope.json: cannot read it (ENOENT)',
  );
  t.is(
    (await configError(t, load(['-config-dir=/nope']))).message,
    'config dir /nope: cannot read it (ENOENT)',
  );
});

test('deprecated "ui" is accepted with a warning', async (t) => {
  const { config, warnings } = await load(['-data-dir=/d', '-config-file=/u.json'], {
    '/u.json': json({ ui: true }),
  });
  t.true(config.ui.enabled);
  t.deepEqual(warnings, ['config file /u.json: "ui" is deprecated; use "ui_config.enabled"']);
});

// ---------------------------------------------------------------- validation after merge

test('validation: bootstrap rules as Consul', async (t) => {
  const msg = async (argv: string[]) => (await configError(t, load(['-data-dir=/d', ...argv]))).message;
  t.is(
    await msg(['-server', '-bootstrap', '-bootstrap-expect=3']),
    "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive",
  );
  t.is(await msg(['-bootstrap-expect=3']), "'bootstrap_expect > 0' requires 'server = true'");
  t.is(await msg(['-bootstrap']), "'bootstrap = true' requires 'server = true'");
  t.is(await msg(['-dev', '-bootstrap-expect=3']), "'bootstrap_expect > 0' is not allowed in dev mode");
  t.is(await msg(['-server', '-bootstrap-expect=-1']), 'bootstrap_expect cannot be -1: must be 0 or more');

  const one = await load(['-data-dir=/d', '-server', '-bootstrap-expect=1']);
  t.true(one.config.bootstrap);
  t.is(one.config.bootstrapExpect, 0);
  t.true(one.warnings.some((w) => w.startsWith('bootstrap_expect = 1')));
  const three = await load(['-data-dir=/d', '-server', '-bootstrap-expect=3']);
  t.is(three.config.bootstrapExpect, 3);
  t.deepEqual(three.warnings, []);
});

test('validation: data_dir is required unless -dev', async (t) => {
  const err = await configError(t, load([]));
  t.is(err.message, 'data_dir is required unless -dev is given');
  t.is(err.key, 'data_dir');
});

test('validation: ports, with -1 only where a listener can be off', async (t) => {
  t.is((await load(['-data-dir=/d', '-http-port=-1', '-dns-port=-1'])).config.ports.http, -1);
  const e1 = await configError(t, load(['-data-dir=/d', '-server-port=-1']));
  t.is(e1.message, 'ports.server cannot be -1: must be between 1 and 65535');
  const e2 = await configError(t, load(['-data-dir=/d', '-http-port=0']));
  t.is(e2.message, 'ports.http cannot be 0: must be between 1 and 65535, or -1 to disable');
});

test('validation: addresses, datacenter, node id, encrypt, raft multiplier, reconnect timeout', async (t) => {
  const msg = async (argv: string[], files: Record<string, string> = {}) =>
    (await configError(t, load(['-data-dir=/d', ...argv], files))).message;
  t.is(await msg(['-bind=not-an-ip']), 'bind_addr "not-an-ip" is not an IP address');
  t.regex(await msg(['-bind={{ GetPrivateIP }}']), /go-sockaddr templates are not supported/);
  t.is(await msg(['-client=127.0.0.1 nope']), 'client_addr "nope" is not an IP address');
  t.is(await msg(['-datacenter=us east']), 'datacenter cannot be "us east": use only a-z, 0-9, - and _');
  t.is(await msg(['-node-id=123']), 'node_id "123" is not a UUID');
  t.is(await msg(['-encrypt=c2hvcnQ=']), 'encrypt has invalid key: must be base64 of 16, 24 or 32 bytes');
  t.is(await msg(['-recursor=dns.google']), 'recursor "dns.google" is not an IP address or IP:port');
  const perf = { '/p.json': json({ performance: { raft_multiplier: 11 } }) };
  t.is(
    await msg(['-config-file=/p.json'], perf),
    'performance.raft_multiplier cannot be 11: must be between 1 and 10',
  );
  const rt = { '/r.json': json({ reconnect_timeout: '1h' }) };
  t.is(await msg(['-config-file=/r.json'], rt), 'reconnect_timeout must be at least 8h');

  const ok = await load([
    '-data-dir=/d',
    '-datacenter=EU-West_1',
    '-node-id=0E6A6D64-4A38-4C1E-9F34-31E0E7A1D3B2',
    `-encrypt=${Buffer.alloc(32, 7).toString('base64')}`,
    '-client',
    '127.0.0.1  ::1',
    '-recursor=[2001:db8::1]:53',
    '-domain=Mesh',
    '-alt-domain=alt.example.',
    '-log-level=ERR',
  ]);
  t.is(ok.config.datacenter, 'eu-west_1');
  t.is(ok.config.nodeId, '0e6a6d64-4a38-4c1e-9f34-31e0e7a1d3b2');
  t.deepEqual(ok.config.clientAddrs, ['127.0.0.1', '::1']);
  t.is(ok.config.domain, 'mesh.');
  t.is(ok.config.altDomain, 'alt.example.');
  t.is(ok.config.logLevel, 'error');
});

test('advertise: explicit, from bind, or the only private IPv4; several is an error', async (t) => {
  t.is((await load(['-data-dir=/d', '-advertise=192.168.1.9'])).config.advertiseAddr, '192.168.1.9');
  t.is((await load(['-data-dir=/d', '-bind=10.5.5.5'])).config.advertiseAddr, '10.5.5.5');
  const two = () => ({
    eth0: [{ address: '10.0.0.1', family: 'IPv4' as const, internal: false }],
    eth1: [{ address: '192.168.0.1', family: 'IPv4' as const, internal: false }],
  });
  const err = await configError(t, load(['-data-dir=/d'], {}, { networkInterfaces: two }));
  t.regex(err.message, /^multiple private IPv4 addresses found \(10\.0\.0\.1, 192\.168\.0\.1\)/);
  const none = await configError(t, load(['-data-dir=/d'], {}, { networkInterfaces: () => ({}) }));
  t.regex(none.message, /^no private IPv4 address found/);
});

test('node names that DNS cannot serve are a warning', async (t) => {
  const { warnings } = await load(['-data-dir=/d', '-node=web_1.local']);
  t.deepEqual(warnings, [
    'node name "web_1.local" will not be discoverable via DNS: use only letters, digits and dashes',
  ]);
});

// ---------------------------------------------------------------- real filesystem

test('real files: a temp config dir with a link, a subdirectory and non-JSON files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'b.json'), json({ datacenter: 'b', retry_join: ['b'] }));
  await writeFile(join(dir, 'a.json'), json({ datacenter: 'a', retry_join: ['a'], data_dir: dir }));
  await writeFile(join(dir, 'README'), 'ignored');
  await mkdir(join(dir, 'sub.json'));
  await writeFile(join(dir, 'target'), json({ retry_join: ['c'] }));
  await symlink(join(dir, 'target'), join(dir, 'c.json'));
  const { config } = await loadConfig({
    argv: ['-config-dir', dir],
    hostname: 'h',
    networkInterfaces: oneNic,
  });
  t.is(config.datacenter, 'b');
  t.deepEqual(config.retryJoin, ['a', 'b', 'c']);
  t.deepEqual(
    config.configFiles,
    ['a.json', 'b.json', 'c.json'].map((n) => join(dir, n)),
  );
});
