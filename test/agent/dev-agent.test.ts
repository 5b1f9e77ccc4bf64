import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

test('meshd agent -dev serves the KV and catalog API end to end, and stops on SIGTERM', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-dev-'));
  const pidFile = join(dir, 'agent.pid');
  const a = await startAgent(['-dev', '-node=dev1', `-pid-file=${pidFile}`]);
  t.teardown(async () => {
    await a.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  await waitLeader(a);
  t.is((await readFile(pidFile, 'utf8')).trim(), String(a.child.pid));

  // KV: put, get, raw, cas, keys, recurse, delete.
  let r = await fetch(`${a.http}/v1/kv/app/config`, { method: 'PUT', body: 'hello' });
  t.is(r.status, 200);
  t.is(await r.json(), true);
  r = await fetch(`${a.http}/v1/kv/app/config`);
  t.is(r.status, 200);
  const idx = Number(r.headers.get('x-consul-index'));
  t.true(idx > 0);
  t.is(r.headers.get('x-consul-knownleader'), 'true');
  const [entry] = (await r.json()) as { Key: string; Value: string; ModifyIndex: number }[];
  t.is(entry.Key, 'app/config');
  t.is(entry.Value, b64('hello'));
  r = await fetch(`${a.http}/v1/kv/app/config?raw`);
  t.is(await r.text(), 'hello');
  r = await fetch(`${a.http}/v1/kv/app/config?cas=1`, { method: 'PUT', body: 'x' });
  t.is(await r.json(), false, 'a stale CAS loses');
  r = await fetch(`${a.http}/v1/kv/app/config?cas=${entry.ModifyIndex}`, { method: 'PUT', body: 'v2' });
  t.is(await r.json(), true);
  await fetch(`${a.http}/v1/kv/app/other`, { method: 'PUT', body: '' });
  r = await fetch(`${a.http}/v1/kv/app/?keys`);
  t.deepEqual(await r.json(), ['app/config', 'app/other']);
  r = await fetch(`${a.http}/v1/kv/app?recurse`);
  t.is(((await r.json()) as unknown[]).length, 2);
  r = await fetch(`${a.http}/v1/kv/missing`);
  t.is(r.status, 404);
  t.true(Number(r.headers.get('x-consul-index')) > 0, 'a 404 still carries X-Consul-Index');

  // Blocking query: parks, wakes on a change to its key, not on another key.
  r = await fetch(`${a.http}/v1/kv/app/config`);
  const before = Number(r.headers.get('x-consul-index'));
  const parked = fetch(`${a.http}/v1/kv/app/config?index=${before}&wait=20s`);
  await fetch(`${a.http}/v1/kv/unrelated`, { method: 'PUT', body: '1' });
  await fetch(`${a.http}/v1/kv/app/config`, { method: 'PUT', body: 'v3' });
  // Had the unrelated write answered it, the answer would still hold the old value.
  const woken = await parked;
  t.true(Number(woken.headers.get('x-consul-index')) > before);
  t.is(((await woken.json()) as { Value: string }[])[0].Value, b64('v3'));

  // Short wait with no change: same index at the deadline.
  r = await fetch(
    `${a.http}/v1/kv/app/config?index=${Number(woken.headers.get('x-consul-index'))}&wait=100ms`,
  );
  t.is(r.headers.get('x-consul-index'), woken.headers.get('x-consul-index'));

  // Catalog and health.
  r = await fetch(`${a.http}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({
      node: 'web-1',
      address: '10.0.0.5',
      service: { service: 'web', tags: ['v1'], port: 8080 },
      check: { name: 'web alive', serviceid: 'web', status: 'passing' },
    }),
  });
  t.is(r.status, 200, await r.clone().text());
  r = await fetch(`${a.http}/v1/catalog/service/web`);
  const svc = (await r.json()) as { Node: string; ServicePort: number; ServiceTags: string[] }[];
  t.is(svc.length, 1);
  t.is(svc[0].Node, 'web-1');
  t.is(svc[0].ServicePort, 8080);
  r = await fetch(`${a.http}/v1/health/service/web?passing`);
  t.is(((await r.json()) as unknown[]).length, 1);
  r = await fetch(`${a.http}/v1/catalog/nodes`);
  const nodes = ((await r.json()) as { Node: string }[]).map((n) => n.Node);
  t.true(nodes.includes('web-1'));
  await waitFor('the agent to register its own node', async () => {
    const res = await fetch(`${a.http}/v1/catalog/nodes`);
    return ((await res.json()) as { Node: string }[]).some((n) => n.Node === 'dev1');
  });
  r = await fetch(`${a.http}/v1/catalog/services?filter=${encodeURIComponent('ServiceTags contains "v1"')}`);
  t.deepEqual(await r.json(), { web: ['v1'] });

  // Bad input: 4xx naming the problem, never a 500.
  r = await fetch(`${a.http}/v1/catalog/register`, { method: 'PUT', body: '{"Node": ' });
  t.is(r.status, 400);
  r = await fetch(`${a.http}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({ Node: 'x', Address: 5 }),
  });
  t.is(r.status, 400);
  t.regex(await r.text(), /Address/);
  r = await fetch(`${a.http}/v1/kv/big`, { method: 'PUT', body: Buffer.alloc(600 * 1024) });
  t.is(r.status, 413);
  r = await fetch(`${a.http}/v1/nope`);
  t.is(r.status, 404);
  r = await fetch(`${a.http}/v1/catalog/nodes?filter=${encodeURIComponent('Node ==')}`);
  t.is(r.status, 400);
  r = await fetch(`${a.http}/v1/kv/x?index=abc`);
  t.is(r.status, 400);

  // Snapshot save, change, restore: the state goes back, a parked query wakes.
  r = await fetch(`${a.http}/v1/snapshot`);
  t.is(r.status, 200);
  const archive = Buffer.from(await r.arrayBuffer());
  t.is(archive[0], 0x1f, 'gzip archive');
  await fetch(`${a.http}/v1/kv/app/config`, { method: 'PUT', body: 'after-snapshot' });
  const cur = await fetch(`${a.http}/v1/kv/app/config`);
  const curIndex = Number(cur.headers.get('x-consul-index'));
  const parkedOnRestore = fetch(`${a.http}/v1/kv/app/config?index=${curIndex}&wait=20s`);
  r = await fetch(`${a.http}/v1/snapshot`, { method: 'PUT', body: archive });
  t.is(r.status, 200, await r.clone().text());
  const afterRestore = await parkedOnRestore;
  t.is(((await afterRestore.json()) as { Value: string }[])[0].Value, b64('v3'));
  r = await fetch(`${a.http}/v1/kv/app/config?raw`);
  t.is(await r.text(), 'v3', 'the restored value');
  r = await fetch(`${a.http}/v1/kv/after-restore`, { method: 'PUT', body: 'ok' });
  t.is(await r.json(), true, 'writes continue after a restore');
  r = await fetch(`${a.http}/v1/snapshot`, { method: 'PUT', body: 'not a snapshot' });
  t.is(r.status, 400);

  // Operator view.
  r = await fetch(`${a.http}/v1/operator/raft/configuration`);
  const conf = (await r.json()) as { Servers: { Node: string; Leader: boolean; Voter: boolean }[] };
  t.deepEqual(
    conf.Servers.map((s) => [s.Node, s.Leader, s.Voter]),
    [['dev1', true, true]],
  );

  t.is(await a.stop('SIGTERM'), 0, a.logs().slice(-2000));
  await t.throwsAsync(stat(pidFile), undefined, 'the pid file is removed on exit');
});

test('a second agent on the same data dir refuses to start; a restart resumes the data', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-data-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const args = ['-server', '-bootstrap', `-data-dir=${dir}`, '-node=solo'];
  const a = await startAgent(args);
  t.teardown(() => a.stop('SIGKILL'));
  await waitLeader(a);
  await fetch(`${a.http}/v1/kv/durable`, { method: 'PUT', body: 'kept' });

  const b = await startAgent(args);
  t.is(await b.exited, 1);
  t.regex(b.logs(), /in use by another meshd agent/);

  t.is(await a.stop('SIGTERM'), 0);
  const c = await startAgent(args);
  t.teardown(() => c.stop('SIGKILL'));
  await waitLeader(c);
  const r = await fetch(`${c.http}/v1/kv/durable?raw`);
  t.is(await r.text(), 'kept');
  t.is(await c.stop('SIGTERM'), 0);
});
