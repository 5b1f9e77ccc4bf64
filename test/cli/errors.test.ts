import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { deadAddr, FakeConsul, runCli, runMany, tempDir } from './fake-consul.ts';

async function fake(
  t: { teardown(fn: () => Promise<void>): void },
  socketPath?: string,
): Promise<FakeConsul> {
  const f = await FakeConsul.start(socketPath);
  t.teardown(() => f.close());
  return f;
}

const snapDir = mkdtempSync(join(tmpdir(), 'meshd-err-'));
writeFileSync(join(snapDir, 'in.snap'), 'snapshot bytes');
test.after.always(() => rmSync(snapDir, { recursive: true, force: true }));

/** One invocation of every command that reaches the agent, with its Consul error prefix. */
const EVERY: Array<[string[], string]> = [
  [['members'], 'Error retrieving members: '],
  [['info'], 'Error querying agent: '],
  [['leave'], 'Error leaving: '],
  [['reload'], 'Error reloading: '],
  [['kv', 'get', 'k'], 'Error querying agent: '],
  [['kv', 'put', 'k', 'v'], 'Error! Failed writing data: '],
  [['kv', 'delete', 'k'], 'Error deleting key k: '],
  [['kv', 'export'], 'Error querying agent: '],
  [['kv', 'import', '[{"key":"k","value":""}]'], 'Error! Failed writing data for key k: '],
  [['catalog', 'services'], 'Error listing services: '],
  [['catalog', 'nodes'], 'Error listing nodes: '],
  [['catalog', 'datacenters'], 'Error listing datacenters: '],
  [['operator', 'raft', 'list-peers'], 'Error getting peers: Failed to retrieve raft configuration: '],
  [['operator', 'raft', 'remove-peer', '-id=x'], 'Error removing peer: '],
  [['snapshot', 'save', join(snapDir, 'out.snap')], 'Error saving snapshot: '],
  [['snapshot', 'restore', join(snapDir, 'in.snap')], 'Error restoring snapshot: '],
];

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('with the agent down, every command fails with one line and exit 1', async (t) => {
  const addr = await deadAddr();
  const results = await runMany(EVERY.map(([args]) => [args, { addr }]));
  results.forEach((r, i) => {
    const [args, prefix] = EVERY[i];
    t.is(r.code, 1, args.join(' '));
    t.is(r.stdout, '', args.join(' '));
    t.regex(
      r.stderr,
      new RegExp(
        `^${reEscape(prefix)}(Get|Put|Delete) "http://${reEscape(addr)}/v1/[^"]*": .*ECONNREFUSED[^\\n]*\\n$`,
      ),
    );
  });
});

test('an HTTP 500 with body "x" fails every command with one line and exit 1', async (t) => {
  const f = await fake(t);
  const answer = { status: 500, body: 'x' };
  for (const [method, path] of [
    ['GET', '/v1/agent/members'],
    ['GET', '/v1/agent/self'],
    ['PUT', '/v1/agent/leave'],
    ['PUT', '/v1/agent/reload'],
    ['GET', '/v1/kv/k'],
    ['PUT', '/v1/kv/k'],
    ['DELETE', '/v1/kv/k'],
    ['GET', '/v1/kv/'],
    ['GET', '/v1/catalog/services'],
    ['GET', '/v1/catalog/nodes'],
    ['GET', '/v1/catalog/datacenters'],
    ['GET', '/v1/operator/raft/configuration'],
    ['DELETE', '/v1/operator/raft/peer'],
    ['GET', '/v1/snapshot'],
    ['PUT', '/v1/snapshot'],
  ]) {
    f.on(method, path, answer);
  }
  const results = await runMany(EVERY.map(([args]) => [args, { addr: f.addr }]));
  results.forEach((r, i) => {
    const [args, prefix] = EVERY[i];
    t.is(r.code, 1, args.join(' '));
    t.is(r.stderr, `${prefix}Unexpected response code: 500 (x)\n`, args.join(' '));
  });
});

test('an unknown flag is a one-line usage error, exit 1, and no request', async (t) => {
  const f = await fake(t);
  const words = new Set(['kv', 'catalog', 'operator', 'raft', 'snapshot']);
  const withBogus = EVERY.map(([args]) => {
    let at = 0;
    while (words.has(args[at])) at++;
    return [...args.slice(0, at + 1), '-bogus', ...args.slice(at + 1)];
  });
  const results = await runMany(withBogus.map((args) => [args, { addr: f.addr }]));
  results.forEach((r, i) => {
    t.is(r.code, 1, EVERY[i][0].join(' '));
    t.is(r.stderr, 'flag provided but not defined: -bogus\n', EVERY[i][0].join(' '));
  });
  const missing = await runCli(['kv', 'get', '-separator'], { addr: f.addr });
  t.is(missing.stderr, 'flag needs an argument: -separator\n');
  const badUint = await runCli(['kv', 'put', '-flags=abc', 'k'], { addr: f.addr });
  t.is(badUint.stderr, 'invalid value "abc" for flag -flags: parse error\n');
  t.is(f.requests.length, 0);
});

test('-h prints the usage of a command or group and exits 0', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['members', '-h'],
      /^Usage: meshd members \[options\]\n[\s\S]*HTTP API Options[\s\S]*-http-addr=<address>[\s\S]*Command Options[\s\S]*-detailed/,
    ],
    [['kv', 'get', '--help'], /^Usage: meshd kv get \[options\] \[KEY_OR_PREFIX\]\n[\s\S]*-recurse/],
    [
      ['kv', 'put', 'k', '-help'],
      /^Usage: meshd kv put \[options\] KEY \[DATA\]\n[\s\S]*-modify-index=<int>/,
    ],
    [['kv', '-h'], /^Usage: meshd kv <subcommand>[\s\S]*Subcommands:\n {4}delete {4}Removes data/],
    [['operator', 'raft', '-h'], /list-peers +Display the current Raft peer configuration/],
    [['snapshot', 'save', '-h'], /^Usage: meshd snapshot save \[options\] FILE/],
  ];
  const results = await runMany(cases.map(([args]) => [args, { addr: '127.0.0.1:1' }]));
  results.forEach((r, i) => {
    t.is(r.code, 0, cases[i][0].join(' '));
    t.regex(r.stdout, cases[i][1]);
  });
});

test('a group without a subcommand prints its usage and exits 1', async (t) => {
  const bare = await runCli(['kv']);
  t.is(bare.code, 1);
  t.regex(bare.stderr, /^Usage: meshd kv <subcommand>/);
  const unknown = await runCli(['operator', 'raft', 'frob']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /^meshd operator raft: unknown subcommand "frob"\n/);
});

test('meshd --help lists the agent HTTP subcommands', async (t) => {
  const r = await runCli(['--help']);
  t.is(r.code, 0);
  for (const name of ['catalog', 'info', 'kv', 'leave', 'members', 'operator', 'reload', 'snapshot']) {
    t.regex(r.stdout, new RegExp(`^ {4}${name} `, 'm'));
  }
});

test('-http-addr (any form) beats MESHD_HTTP_ADDR, which beats CONSUL_HTTP_ADDR', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/catalog/datacenters', { body: ['dc1'] });
  const dead = await deadAddr();
  const viaFlag = await runCli(['catalog', 'datacenters', `-http-addr=http://${f.addr}`], { addr: dead });
  t.is(viaFlag.stdout, 'dc1\n');
  const viaDoubleDash = await runCli(['catalog', 'datacenters', '--http-addr', f.addr], { addr: dead });
  t.is(viaDoubleDash.stdout, 'dc1\n');
  const viaConsul = await runCli(['catalog', 'datacenters'], {
    env: { CONSUL_HTTP_ADDR: `http://${f.addr}` },
  });
  t.is(viaConsul.stdout, 'dc1\n');
  const meshdFirst = await runCli(['catalog', 'datacenters'], {
    addr: f.addr,
    env: { CONSUL_HTTP_ADDR: dead },
  });
  t.is(meshdFirst.stdout, 'dc1\n');
  const bad = await runCli(['catalog', 'datacenters', '-http-addr=ftp://x:1']);
  t.is(bad.code, 1);
  t.is(bad.stderr, 'Error initializing client: unsupported scheme "ftp" in HTTP address "ftp://x:1"\n');
});

test('the token is sent as X-Consul-Token from -token, -token-file, MESHD_ or CONSUL_ variables', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/catalog/datacenters', { body: ['dc1'] });
  const dir = tempDir(t);
  writeFileSync(join(dir, 'token'), 'file-token\n');
  await runCli(['catalog', 'datacenters', '-token', 'flag-token'], {
    addr: f.addr,
    env: { MESHD_HTTP_TOKEN: 'env' },
  });
  await runCli(['catalog', 'datacenters', `-token-file=${join(dir, 'token')}`], { addr: f.addr });
  await runCli(['catalog', 'datacenters'], {
    addr: f.addr,
    env: { MESHD_HTTP_TOKEN: 'meshd', CONSUL_HTTP_TOKEN: 'consul' },
  });
  await runCli(['catalog', 'datacenters'], { addr: f.addr, env: { CONSUL_HTTP_TOKEN: 'consul' } });
  await runCli(['catalog', 'datacenters'], { addr: f.addr });
  t.deepEqual(
    f.requests.map((r) => r.headers['x-consul-token']),
    ['flag-token', 'file-token', 'meshd', 'consul', undefined],
  );
});

test('a unix:// address reaches an agent on a unix socket', async (t) => {
  const dir = tempDir(t);
  const f = await fake(t, join(dir, 'http.sock'));
  f.on('GET', '/v1/catalog/datacenters', { body: ['dc1'] });
  const r = await runCli(['catalog', 'datacenters'], { addr: f.addr });
  t.is(r.stderr, '');
  t.is(r.stdout, 'dc1\n');
});
