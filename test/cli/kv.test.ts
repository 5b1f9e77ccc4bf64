import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { decodeBase64Strict, formatExport, parseExport } from '../../src/cli/commands/kv.ts';
import { FakeConsul, runCli, tempDir } from './fake-consul.ts';

async function fake(t: { teardown(fn: () => Promise<void>): void }): Promise<FakeConsul> {
  const f = await FakeConsul.start();
  t.teardown(() => f.close());
  return f;
}

/** app/a=1 (index 11), app/b/c=2 (12), other=x (13). */
const SEED = { 'app/a': '1', 'app/b/c': '2', other: 'x' };

test('kv get prints the raw value; a leading / is dropped', async (t) => {
  const f = (await fake(t)).withKV(SEED);
  const r = await runCli(['kv', 'get', '/app/a'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(r.stdout, '1\n');
  t.like(f.requests[0], { method: 'GET', path: '/v1/kv/app/a', query: '' });
});

test('kv get of a missing key is an error; a key is required', async (t) => {
  const f = (await fake(t)).withKV(SEED);
  const missing = await runCli(['kv', 'get', 'nope'], { addr: f.addr });
  t.is(missing.code, 1);
  t.is(missing.stderr, 'Error! No key exists at: nope\n');
  const none = await runCli(['kv', 'get'], { addr: f.addr });
  t.is(none.code, 1);
  t.is(none.stderr, 'Error! Missing KEY argument\n');
  const two = await runCli(['kv', 'get', 'a', 'b'], { addr: f.addr });
  t.is(two.code, 1);
  t.is(two.stderr, 'Too many arguments (expected 1, got 2)\n');
  t.is(f.requests.length, 1);
});

test('kv get -recurse, -keys, -separator, -base64, -datacenter, -stale', async (t) => {
  const f = (await fake(t)).withKV(SEED);
  const rec = await runCli(['kv', 'get', '-recurse', 'app'], { addr: f.addr });
  t.is(rec.stdout, 'app/a:1\napp/b/c:2\n');
  t.is(f.requests[0].query, 'recurse=');
  const keys = await runCli(['kv', 'get', '-keys', 'app/'], { addr: f.addr });
  t.is(keys.stdout, 'app/a\napp/b/\n');
  t.is(f.requests[1].query, 'keys=&separator=%2F');
  const flat = await runCli(['kv', 'get', '-keys', '-separator=', 'app/'], { addr: f.addr });
  t.is(flat.stdout, 'app/a\napp/b/c\n');
  t.is(f.requests[2].query, 'keys=');
  const all = await runCli(['kv', 'get', '-keys'], { addr: f.addr });
  t.is(all.stdout, 'app/\nother\n');
  t.is(f.requests[3].path, '/v1/kv/');
  const b64 = await runCli(['kv', 'get', '-base64', '-datacenter', 'dc2', '-stale', 'app/a'], {
    addr: f.addr,
  });
  t.is(b64.stdout, 'MQ==\n');
  t.is(f.requests[4].query, 'dc=dc2&stale=');
  const empty = await runCli(['kv', 'get', '-recurse', 'zzz'], { addr: f.addr });
  t.is(empty.code, 0);
  t.is(empty.stdout, '');
});

test('kv get -detailed aligns the fields as consul does', async (t) => {
  const f = (await fake(t)).withKV(SEED);
  const r = await runCli(['kv', 'get', '-detailed', 'app/a'], { addr: f.addr });
  t.is(
    r.stdout,
    [
      'CreateIndex      11',
      'Flags            0',
      'Key              app/a',
      'LockIndex        0',
      'ModifyIndex      11',
      'Session          -',
      'Value            1',
      '',
    ].join('\n'),
  );
  const rec = await runCli(['kv', 'get', '-recurse', '-detailed', '-base64', 'app'], { addr: f.addr });
  const blocks = rec.stdout.split('\n\n');
  t.is(blocks.length, 2);
  t.true(blocks[0].endsWith('Value            MQ=='));
  t.true(blocks[1].startsWith('CreateIndex      12\n'));
  t.true(blocks[1].endsWith('Value            Mg==\n'));
});

test('kv put writes the value as the body; @file and - (stdin) read the data', async (t) => {
  const f = (await fake(t)).withKV();
  const dir = tempDir(t);
  writeFileSync(join(dir, 'data.txt'), 'from a file\n');
  const lit = await runCli(['kv', 'put', 'app/x', 'hello world'], { addr: f.addr });
  t.is(lit.code, 0);
  t.is(lit.stdout, 'Success! Data written to: app/x\n');
  t.like(f.requests[0], { method: 'PUT', path: '/v1/kv/app/x', query: '' });
  t.is(f.requests[0].body.toString(), 'hello world');
  t.is(f.requests[0].headers['content-type'], 'application/octet-stream');
  const file = await runCli(['kv', 'put', 'app/f', '@data.txt'], { addr: f.addr, cwd: dir });
  t.is(file.code, 0);
  t.is(f.requests[1].body.toString(), 'from a file\n');
  const stdin = await runCli(['kv', 'put', 'app/s', '-'], { addr: f.addr, stdin: 'from stdin\n\x00\xff' });
  t.is(stdin.code, 0);
  t.deepEqual(f.requests[2].body, Buffer.from('from stdin\n\x00\xff'));
  const empty = await runCli(['kv', 'put', 'app/e'], { addr: f.addr });
  t.is(empty.code, 0);
  t.is(f.requests[3].body.length, 0);
  const dash = await runCli(['kv', 'put', 'app/d', '-not-a-flag'], { addr: f.addr });
  t.is(dash.code, 0);
  t.is(f.requests[4].body.toString(), '-not-a-flag');
  t.is(f.kv.get('app/f')?.value.toString(), 'from a file\n');
});

test('kv put -flags, -base64 and binary values round trip', async (t) => {
  const f = (await fake(t)).withKV();
  const r = await runCli(['kv', 'put', '-flags=42', '-base64', 'bin', 'AAEC/w=='], { addr: f.addr });
  t.is(r.code, 0);
  t.is(f.requests[0].query, 'flags=42');
  t.deepEqual(f.requests[0].body, Buffer.from([0, 1, 2, 255]));
  const got = await runCli(['kv', 'get', 'bin'], { addr: f.addr });
  t.deepEqual(got.stdoutBytes, Buffer.from([0, 1, 2, 255, 10]));
  const bad = await runCli(['kv', 'put', '-base64', 'bin', 'not base64!'], { addr: f.addr });
  t.is(bad.code, 1);
  t.is(bad.stderr, 'Error! Cannot base 64 decode data: illegal base64 data at input byte 3\n');
  t.is(f.requests.length, 2);
});

test('kv put errors: missing file, arguments, HTTP failure', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/kv/k', { status: 500, body: 'x' });
  const missing = await runCli(['kv', 'put', 'k', '@/nonexistent/file'], { addr: f.addr });
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^Error! Failed to read file: ENOENT.*\n$/);
  const none = await runCli(['kv', 'put'], { addr: f.addr });
  t.is(none.stderr, 'Error! Missing KEY argument\n');
  const three = await runCli(['kv', 'put', 'a', 'b', 'c'], { addr: f.addr });
  t.is(three.stderr, 'Error! Too many arguments (expected 1 or 2, got 3)\n');
  const failed = await runCli(['kv', 'put', 'k', 'v'], { addr: f.addr });
  t.is(failed.code, 1);
  t.is(failed.stderr, 'Error! Failed writing data: Unexpected response code: 500 (x)\n');
});

test('kv put -cas -modify-index: success, CAS failure, create-only with 0, missing index', async (t) => {
  const f = (await fake(t)).withKV(SEED);
  const ok = await runCli(['kv', 'put', '-cas', '-modify-index=11', 'app/a', 'new'], { addr: f.addr });
  t.is(ok.code, 0);
  t.is(ok.stdout, 'Success! Data written to: app/a\n');
  t.is(f.requests[0].query, 'cas=11');
  const stale = await runCli(['kv', 'put', '-cas', '-modify-index=11', 'app/a', 'newer'], { addr: f.addr });
  t.is(stale.code, 1);
  t.is(stale.stderr, 'Error! Did not write to app/a: CAS failed\n');
  t.is(f.kv.get('app/a')?.value.toString(), 'new');
  const create = await runCli(['kv', 'put', '-cas', '-modify-index=0', 'app/new', 'v'], { addr: f.addr });
  t.is(create.code, 0);
  t.is(f.requests[2].query, 'cas=0');
  const noIndex = await runCli(['kv', 'put', '-cas', 'app/a', 'v'], { addr: f.addr });
  t.is(noIndex.code, 1);
  t.is(noIndex.stderr, 'Must specify -modify-index with -cas!\n');
  t.is(f.requests.length, 3);
});

test('kv put -acquire / -release with -session', async (t) => {
  const f = (await fake(t)).withKV();
  const acq = await runCli(['kv', 'put', '-acquire', '-session=s1', 'lock', 'holder'], { addr: f.addr });
  t.is(acq.code, 0);
  t.is(acq.stdout, 'Success! Lock acquired on: lock\n');
  t.is(f.requests[0].query, 'acquire=s1');
  const other = await runCli(['kv', 'put', '-acquire', '-session=s2', 'lock'], { addr: f.addr });
  t.is(other.code, 1);
  t.is(other.stderr, 'Error! Did not acquire lock\n');
  const wrong = await runCli(['kv', 'put', '-release', '-session=s2', 'lock'], { addr: f.addr });
  t.is(wrong.stderr, 'Error! Did not release lock\n');
  const rel = await runCli(['kv', 'put', '-release', '-session=s1', '-flags=3', 'lock'], { addr: f.addr });
  t.is(rel.code, 0);
  t.is(rel.stdout, 'Success! Lock released on: lock\n');
  t.is(f.requests[3].query, 'flags=3&release=s1');
  const noSession = await runCli(['kv', 'put', '-acquire', 'lock'], { addr: f.addr });
  t.is(noSession.code, 1);
  t.is(noSession.stderr, 'Error! Missing -session (required with -acquire and -release)\n');
  t.is(f.requests.length, 4);
});

test('kv delete: a key, -recurse, -cas', async (t) => {
  const f = (await fake(t)).withKV(SEED);
  const one = await runCli(['kv', 'delete', 'other'], { addr: f.addr });
  t.is(one.stdout, 'Success! Deleted key: other\n');
  t.like(f.requests[0], { method: 'DELETE', path: '/v1/kv/other', query: '' });
  const casFail = await runCli(['kv', 'delete', '-cas', '-modify-index=5', 'app/a'], { addr: f.addr });
  t.is(casFail.code, 1);
  t.is(casFail.stderr, 'Error! Did not delete key app/a: CAS failed\n');
  t.is(f.requests[1].query, 'cas=5');
  const cas = await runCli(['kv', 'delete', '-cas', '-modify-index=11', 'app/a'], { addr: f.addr });
  t.is(cas.code, 0);
  t.is(cas.stdout, 'Success! Deleted key: app/a\n');
  const rec = await runCli(['kv', 'delete', '-recurse', 'app'], { addr: f.addr });
  t.is(rec.stdout, 'Success! Deleted keys with prefix: app\n');
  t.is(f.requests[3].query, 'recurse=');
  t.deepEqual([...f.kv.keys()], []);
});

test('kv delete argument errors make no request', async (t) => {
  const f = (await fake(t)).withKV(SEED);
  const cases: Array<[string[], string]> = [
    [['kv', 'delete'], 'Error! Missing KEY argument\n'],
    [['kv', 'delete', '-cas', 'k'], 'Must specify -modify-index with -cas!\n'],
    [['kv', 'delete', '-modify-index=3', 'k'], 'Cannot specify -modify-index without -cas!\n'],
    [
      ['kv', 'delete', '-cas', '-modify-index=3', '-recurse', 'k'],
      'Cannot specify both -cas and -recurse!\n',
    ],
  ];
  for (const [args, stderr] of cases) {
    const r = await runCli(args, { addr: f.addr });
    t.is(r.code, 1, args.join(' '));
    t.is(r.stderr, stderr);
  }
  t.is(f.requests.length, 0);
});

const EXPORTED = [
  '[',
  '\t{',
  '\t\t"key": "app/\\u003ck\\u003e\\u0026",',
  '\t\t"flags": 0,',
  '\t\t"value": ""',
  '\t},',
  '\t{',
  '\t\t"key": "app/a",',
  '\t\t"flags": 18446744073709551615,',
  '\t\t"value": "MQ=="',
  '\t},',
  '\t{',
  '\t\t"key": "app/b/c",',
  '\t\t"flags": 7,',
  '\t\t"value": "PCY+"',
  '\t}',
  ']',
  '',
].join('\n');

test('kv export prints Go-style indented JSON with base64 values; import writes it back', async (t) => {
  const source = (await fake(t)).withKV({
    'app/a': { value: '1', flags: 18446744073709551615n },
    'app/b/c': { value: '<&>', flags: 7n },
    'app/<k>&': '',
    other: 'x',
  });
  const exp = await runCli(['kv', 'export', 'app'], { addr: source.addr });
  t.is(exp.code, 0);
  t.is(exp.stdout, EXPORTED);
  t.like(source.requests[0], { method: 'GET', path: '/v1/kv/app', query: 'recurse=' });

  const target = (await fake(t)).withKV();
  const dir = tempDir(t);
  writeFileSync(join(dir, 'export.json'), exp.stdout);
  const imp = await runCli(['kv', 'import', `@${join(dir, 'export.json')}`], { addr: target.addr });
  t.is(imp.code, 0);
  t.is(imp.stdout, 'Imported: app/<k>&\nImported: app/a\nImported: app/b/c\n');
  t.deepEqual(
    target.requests.map((r) => `${r.method} ${r.path}?${r.query} ${r.body.toString()}`),
    [
      'PUT /v1/kv/app/%3Ck%3E&? ',
      'PUT /v1/kv/app/a?flags=18446744073709551615 1',
      'PUT /v1/kv/app/b/c?flags=7 <&>',
    ],
  );
  const again = await runCli(['kv', 'export', 'app'], { addr: target.addr });
  t.is(again.stdout, EXPORTED);
});

test('kv import reads stdin (-) or the argument itself; -prefix moves the tree', async (t) => {
  const f = (await fake(t)).withKV();
  const data = JSON.stringify([
    { Key: 'a', Flags: 1, Value: 'eA==' },
    { key: 'b/', value: '' },
  ]);
  const stdin = await runCli(['kv', 'import', '-'], { addr: f.addr, stdin: data });
  t.is(stdin.code, 0);
  t.is(stdin.stdout, 'Imported: a\nImported: b/\n');
  const arg = await runCli(['kv', 'import', '-prefix=restored/', data], { addr: f.addr });
  t.is(arg.stdout, 'Imported: restored/a\nImported: restored/b/\n');
  t.deepEqual([...f.kv.keys()].sort(), ['a', 'b/', 'restored/a', 'restored/b/']);
  t.is(f.kv.get('restored/a')?.flags, 1n);
  const empty = await runCli(['kv', 'export'], { addr: (await fake(t)).withKV().addr });
  t.is(empty.stdout, '[]\n');
});

test('kv import errors: bad JSON, bad base64, no data, HTTP failure', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/kv/k', { status: 500, body: 'x' });
  const json = await runCli(['kv', 'import', '{"key":'], { addr: f.addr });
  t.is(json.code, 1);
  t.regex(json.stderr, /^Cannot unmarshal data: .+\n$/);
  const notList = await runCli(['kv', 'import', '{}'], { addr: f.addr });
  t.is(notList.stderr, 'Cannot unmarshal data: cannot unmarshal object into a list of entries\n');
  const b64 = await runCli(['kv', 'import', '[{"key":"k","value":"%%%"}]'], { addr: f.addr });
  t.is(b64.code, 1);
  t.is(b64.stderr, 'Error base 64 decoding value for key k: illegal base64 data at input byte 0\n');
  const none = await runCli(['kv', 'import'], { addr: f.addr });
  t.is(none.stderr, 'Error! Missing DATA argument\n');
  t.is(f.requests.length, 0);
  const http = await runCli(['kv', 'import', '[{"key":"k","value":"eA=="}]'], { addr: f.addr });
  t.is(http.code, 1);
  t.is(http.stderr, 'Error! Failed writing data for key k: Unexpected response code: 500 (x)\n');
});

test('export/import helpers: strict base64, case-insensitive fields, Go escaping', (t) => {
  t.deepEqual(decodeBase64Strict('AAEC/w=='), Buffer.from([0, 1, 2, 255]));
  t.deepEqual(decodeBase64Strict('YWJj\nZGVm'), Buffer.from('abcdef'));
  for (const bad of ['A', 'AA', 'AA=', 'A===', 'AA==AA==', 'YW-j'])
    t.throws(() => decodeBase64Strict(bad), undefined, bad);
  t.deepEqual(parseExport('[{"KEY":"k","FLAGS":2,"VALUE":"eA=="}]'), [
    { key: 'k', flags: 2n, value: 'eA==' },
  ]);
  t.deepEqual(parseExport('null'), []);
  t.throws(() => parseExport('[{"key":"k","flags":-1}]'), { message: /flags of type uint64/ });
  t.throws(() => parseExport('[{"key":"k","flags":1.5}]'), { message: /flags of type uint64/ });
  t.is(
    formatExport([{ key: '\u2028"', flags: 0n, value: '' }]),
    '[\n\t{\n\t\t"key": "\\u2028\\"",\n\t\t"flags": 0,\n\t\t"value": ""\n\t}\n]',
  );
});
