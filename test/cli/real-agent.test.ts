/** The CLI against a real `meshd agent -dev` process, end to end. */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { startAgent, waitLeader } from '../support/agent-process.ts';
import { runCli } from './fake-consul.ts';

test('kv, catalog, members, info, operator and snapshot commands work against a dev agent', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-cli-'));
  const a = await startAgent(['-dev', '-node=cli-dev']);
  t.teardown(async () => {
    await a.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  await waitLeader(a);
  const addr = a.http.replace('http://', '');
  const cli = (...args: string[]) => runCli(args, { addr });

  let r = await cli('kv', 'put', 'cfg/db/url', 'postgres://x');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Success! Data written to: cfg\/db\/url/);
  r = await cli('kv', 'get', 'cfg/db/url');
  t.is(r.stdout, 'postgres://x\n');
  await cli('kv', 'put', 'cfg/db/user', 'app');
  r = await cli('kv', 'get', '-recurse', 'cfg/');
  t.is(r.stdout, 'cfg/db/url:postgres://x\ncfg/db/user:app\n');
  r = await cli('kv', 'export', 'cfg/');
  t.is(r.code, 0);
  const exported = JSON.parse(r.stdout) as { key: string }[];
  t.deepEqual(
    exported.map((e) => e.key),
    ['cfg/db/url', 'cfg/db/user'],
  );
  r = await cli('kv', 'delete', '-recurse', 'cfg/');
  t.is(r.code, 0);
  r = await cli('kv', 'get', 'cfg/db/url');
  t.is(r.code, 1);
  t.regex(r.stderr, /No key exists/);
  const file = join(dir, 'export.json');
  await writeFile(file, JSON.stringify(exported));
  r = await cli('kv', 'import', `@${file}`);
  t.is(r.code, 0, r.stderr);
  r = await cli('kv', 'get', 'cfg/db/user');
  t.is(r.stdout, 'app\n');

  r = await cli('catalog', 'nodes');
  t.regex(r.stdout, /cli-dev/);
  r = await cli('catalog', 'datacenters');
  t.is(r.stdout, 'dc1\n');
  r = await cli('members');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /cli-dev\s+127\.0\.0\.1:\d+\s+alive\s+server/);
  r = await cli('info');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /server = true/);
  r = await cli('operator', 'raft', 'list-peers');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /cli-dev .*leader\s+true/);

  // -format=json on the commands that print tables.
  r = await cli('members', '-format=json');
  t.is((JSON.parse(r.stdout) as { Name: string }[])[0].Name, 'cli-dev');
  r = await cli('catalog', 'nodes', '-format=json');
  t.true((JSON.parse(r.stdout) as { Node: string }[]).some((n) => n.Node === 'cli-dev'));
  r = await cli('catalog', 'datacenters', '-format=json');
  t.deepEqual(JSON.parse(r.stdout), ['dc1']);
  r = await cli('operator', 'raft', 'list-peers', '-format=json');
  t.like((JSON.parse(r.stdout) as { Node: string; Leader: boolean }[])[0], { Node: 'cli-dev', Leader: true });
  r = await cli('info', '-format=json');
  t.like(JSON.parse(r.stdout), { Config: { NodeName: 'cli-dev' } });
  r = await cli('members', '-format=xml');
  t.is(r.code, 1);
  t.regex(r.stderr, /pretty or json/);

  const snap = join(dir, 'backup.snap');
  r = await cli('snapshot', 'save', snap);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /Saved and verified snapshot to index \d+/);
  t.true((await readFile(snap)).length > 0);
  await cli('kv', 'put', 'cfg/db/user', 'changed');
  r = await cli('snapshot', 'restore', snap);
  t.is(r.code, 0, r.stderr);
  r = await cli('kv', 'get', 'cfg/db/user');
  t.is(r.stdout, 'app\n', 'restored');

  r = await cli('reload');
  t.is(r.code, 0, r.stderr);
  r = await cli('kv', 'get', '-bogus', 'x');
  t.is(r.code, 1);
  r = await cli('leave');
  t.is(r.code, 0, r.stderr);
  t.is(await a.exited, 0);
  r = await cli('members');
  t.is(r.code, 1, 'agent gone: one-line error');
  t.is(r.stderr.trim().split('\n').length, 1);
});
