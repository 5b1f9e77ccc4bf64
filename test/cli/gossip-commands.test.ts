/** `meshd join`, `force-leave`, `keygen`, `event` and `watch -type=event` against a fake agent. */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import test from 'ava';
import { waitFor } from '../support/agent-process.ts';
import { FakeConsul, MAIN, runCli, tempDir } from './fake-consul.ts';

async function fake(t: { teardown(fn: () => Promise<void>): void }): Promise<FakeConsul> {
  const f = await FakeConsul.start();
  t.teardown(() => f.close());
  return f;
}

test('join: each address through the agent; counts successes; fails only when none joined', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/agent/join/10.0.0.1', { body: '' });
  f.on('PUT', '/v1/agent/join/10.0.0.2%3A8301', {
    status: 500,
    body: '1 error occurred:\n\t* Failed to join 10.0.0.2:8301: i/o timeout\n\n',
  });
  let r = await runCli(['join', '10.0.0.1', '10.0.0.2:8301'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(r.stdout, 'Successfully joined cluster by contacting 1 nodes.\n');
  t.regex(
    r.stderr,
    /^Error joining address '10\.0\.0\.2:8301': .*Failed to join 10\.0\.0\.2:8301: i\/o timeout/,
  );
  r = await runCli(['join', '-wan', '10.0.0.2:8301'], { addr: f.addr });
  t.is(r.code, 1);
  t.regex(r.stderr, /Failed to join any nodes\.\n$/);
  t.is(f.requests.at(-1)?.query, 'wan=1');
  r = await runCli(['join'], { addr: f.addr });
  t.is(r.code, 1);
  t.regex(r.stderr, /At least one address/);
});

test('force-leave: one node, -prune and -wan passed on; errors are one line', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/agent/force-leave/web-1', { body: '' });
  f.on('PUT', '/v1/agent/force-leave/nobody', {
    status: 404,
    body: "agent: No node found with name 'nobody'",
  });
  let r = await runCli(['force-leave', '-prune', 'web-1'], { addr: f.addr });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '');
  t.is(f.requests[0].query, 'prune=1');
  r = await runCli(['force-leave', 'nobody'], { addr: f.addr });
  t.is(r.code, 1);
  t.regex(r.stderr, /^Error force leaving: .*No node found with name 'nobody'\)?\n$/);
  r = await runCli(['force-leave', 'a', 'b'], { addr: f.addr });
  t.is(r.code, 1);
  t.regex(r.stderr, /single node name/);
});

test('keygen prints 32 random bytes in base64, different each time', async (t) => {
  const [a, b] = await Promise.all([runCli(['keygen']), runCli(['keygen'])]);
  t.is(a.code, 0);
  t.is(Buffer.from(a.stdout.trim(), 'base64').length, 32);
  t.not(a.stdout, b.stdout);
  t.is((await runCli(['keygen', 'extra'])).code, 1);
});

test('event: fires with filters and payload, prints the ID; checks its flags first', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/event/fire/deploy', (req) => ({
    body: {
      ID: '7c2e0c8e-9b2b-4b5a-8f0e-3f1d2b6a9c01',
      Name: 'deploy',
      Payload: req.body.toString('base64'),
    },
  }));
  let r = await runCli(['event', '-name=deploy', '-service=web', '-tag=v1', 'v1.2.3'], { addr: f.addr });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'Event ID: 7c2e0c8e-9b2b-4b5a-8f0e-3f1d2b6a9c01\n');
  t.is(f.requests[0].query, 'service=web&tag=v1');
  t.is(f.requests[0].body.toString(), 'v1.2.3');
  for (const [args, re] of [
    [['event'], /Event name must be specified/],
    [['event', '-name=x', '-tag=v1'], /tag filter without service filter/],
    [['event', '-name=x', '-node=('], /Failed to compile node filter regexp/],
    [['event', '-name=x', 'a', 'b'], /Too many/],
  ] as const) {
    r = await runCli([...args], { addr: f.addr });
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, re);
  }
  t.is(f.requests.length, 1, 'bad invocations never reach the agent');
  f.on('PUT', '/v1/event/fire/big', {
    status: 413,
    body: 'user event exceeds configured limit of 512 bytes',
  });
  r = await runCli(['event', '-name=big', 'x'], { addr: f.addr });
  t.is(r.code, 1);
  t.regex(r.stderr, /Error firing event: .*512 bytes/);
});

test('watch -type=event: the handler gets the list at start and on each new index; SIGTERM ends it', async (t) => {
  const f = await fake(t);
  const dir = tempDir(t);
  const out = joinPath(dir, 'seen');
  const first = [{ ID: 'a', Name: 'deploy', Payload: null, LTime: 1 }];
  const second = [...first, { ID: 'b', Name: 'deploy', Payload: null, LTime: 2 }];
  let release: (() => void) | undefined;
  const blocked = new Promise<void>((r) => {
    release = r;
  });
  f.on('GET', '/v1/event/list', async (req) => {
    if (!req.query.includes('index='))
      return { headers: { 'X-Consul-Index': '18446744073709551615' }, body: first };
    if (req.query.includes('index=18446744073709551615')) {
      await blocked;
      return { headers: { 'X-Consul-Index': '42' }, body: second };
    }
    await new Promise((r) => setTimeout(r, 60_000)); // parked until the watch stops
    return { headers: { 'X-Consul-Index': '42' }, body: second };
  });
  const child = spawn(
    process.execPath,
    [MAIN, 'watch', '-type=event', '-name=deploy', `cat >> ${out}; echo --- >> ${out}`],
    {
      env: { ...process.env, MESHD_HTTP_ADDR: f.addr },
      stdio: 'pipe',
    },
  );
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.teardown(() => child.kill('SIGKILL'));
  const read = () => {
    try {
      return readFileSync(out, 'utf8');
    } catch {
      return '';
    }
  };
  await waitFor('the first run of the handler', () => read().includes('---'));
  t.like(JSON.parse(read().split('---')[0]), [{ ID: 'a' }]);
  t.regex(f.requests[0].query, /name=deploy/);
  release?.();
  await waitFor('the second run', () => read().split('---').length === 3);
  t.deepEqual(
    (JSON.parse(read().split('---')[1]) as { ID: string }[]).map((e) => e.ID),
    ['a', 'b'],
  );
  await waitFor('the next blocking poll', () => f.requests.some((r) => r.query.includes('index=42')));
  child.kill('SIGTERM');
  t.is(await exited, 0);
});

test('watch refuses unsupported types and a missing type', async (t) => {
  let r = await runCli(['watch', '-type=key']);
  t.is(r.code, 1);
  t.regex(r.stderr, /Unsupported watch type: key \(supported: event\)/);
  r = await runCli(['watch']);
  t.is(r.code, 1);
  t.regex(r.stderr, /Watch type must be specified/);
});
