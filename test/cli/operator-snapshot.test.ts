import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { FakeConsul, runCli, tempDir } from './fake-consul.ts';

async function fake(t: { teardown(fn: () => Promise<void>): void }): Promise<FakeConsul> {
  const f = await FakeConsul.start();
  t.teardown(() => f.close());
  return f;
}

test('operator raft list-peers: GET /v1/operator/raft/configuration as a table', async (t) => {
  const f = await fake(t);
  f.on('GET', '/v1/operator/raft/configuration', {
    body: {
      Servers: [
        { ID: 'id-b', Node: 'b', Address: '10.0.0.2:8300', Leader: true, Voter: true, ProtocolVersion: '3' },
        { ID: 'id-a', Node: 'a', Address: '10.0.0.1:8300', Leader: false, Voter: false, ProtocolVersion: '' },
      ],
      Index: 5,
    },
  });
  const r = await runCli(['operator', 'raft', 'list-peers', '-stale'], { addr: f.addr });
  t.is(r.code, 0);
  t.is(
    r.stdout,
    [
      'Node  ID    Address        State     Voter  RaftProtocol',
      'a     id-a  10.0.0.1:8300  follower  false  <=1',
      'b     id-b  10.0.0.2:8300  leader    true   3',
      '',
    ].join('\n'),
  );
  t.like(f.requests[0], { method: 'GET', path: '/v1/operator/raft/configuration', query: 'stale=' });
  f.on('GET', '/v1/operator/raft/configuration', { status: 500, body: 'No cluster leader' });
  const bad = await runCli(['operator', 'raft', 'list-peers'], { addr: f.addr });
  t.is(bad.code, 1);
  t.is(
    bad.stderr,
    'Error getting peers: Failed to retrieve raft configuration: Unexpected response code: 500 (No cluster leader)\n',
  );
});

test('operator raft remove-peer: DELETE /v1/operator/raft/peer by -address or -id', async (t) => {
  const f = await fake(t);
  f.on('DELETE', '/v1/operator/raft/peer', { body: '' });
  const byAddr = await runCli(['operator', 'raft', 'remove-peer', '-address=10.0.0.9:8300'], {
    addr: f.addr,
  });
  t.is(byAddr.code, 0);
  t.is(byAddr.stdout, 'Removed peer with address "10.0.0.9:8300"\n');
  t.like(f.requests[0], {
    method: 'DELETE',
    path: '/v1/operator/raft/peer',
    query: 'address=10.0.0.9%3A8300',
  });
  const byId = await runCli(['operator', 'raft', 'remove-peer', '-id', 'abc-123'], { addr: f.addr });
  t.is(byId.stdout, 'Removed peer with id "abc-123"\n');
  t.is(f.requests[1].query, 'id=abc-123');
  const both = await runCli(['operator', 'raft', 'remove-peer', '-id=a', '-address=b:1'], { addr: f.addr });
  t.is(both.code, 1);
  t.is(both.stderr, 'Error removing peer: Only one of -address or -id may be specified\n');
  const none = await runCli(['operator', 'raft', 'remove-peer'], { addr: f.addr });
  t.is(none.stderr, 'Error removing peer: Missing peer address/ID\n');
  t.is(f.requests.length, 2);
  f.on('DELETE', '/v1/operator/raft/peer', {
    status: 500,
    body: 'address "x" was not found in the Raft configuration',
  });
  const notFound = await runCli(['operator', 'raft', 'remove-peer', '-address=x'], { addr: f.addr });
  t.is(notFound.code, 1);
  t.is(
    notFound.stderr,
    'Error removing peer: Unexpected response code: 500 (address "x" was not found in the Raft configuration)\n',
  );
});

test('snapshot save: GET /v1/snapshot to the file, verified, index from X-Consul-Index', async (t) => {
  const f = await fake(t);
  const archive = gzipSync(Buffer.alloc(100_000, 'state'));
  f.on('GET', '/v1/snapshot', { headers: { 'X-Consul-Index': '42' }, body: archive });
  const dir = tempDir(t);
  const file = join(dir, 'backup.snap');
  const r = await runCli(['snapshot', 'save', '-token=t0k', file], { addr: f.addr });
  t.is(r.stderr, '');
  t.is(r.code, 0);
  t.is(r.stdout, 'Saved and verified snapshot to index 42\n');
  t.deepEqual(readFileSync(file), archive);
  t.false(existsSync(`${file}.unverified`));
  t.like(f.requests[0], { method: 'GET', path: '/v1/snapshot', query: '' });
  t.is(f.requests[0].headers['x-consul-token'], 't0k');
});

test('snapshot save refuses an empty or truncated snapshot and leaves no file', async (t) => {
  const f = await fake(t);
  const dir = tempDir(t);
  f.on('GET', '/v1/snapshot', { headers: { 'X-Consul-Index': '1' }, body: '' });
  const empty = await runCli(['snapshot', 'save', join(dir, 'a.snap')], { addr: f.addr });
  t.is(empty.code, 1);
  t.is(empty.stderr, 'Error verifying snapshot file: snapshot is empty\n');
  t.false(existsSync(join(dir, 'a.snap')));
  t.false(existsSync(join(dir, 'a.snap.unverified')));
  f.on('GET', '/v1/snapshot', { body: gzipSync(randomBytes(10_000)).subarray(0, 5_000) });
  const cut = await runCli(['snapshot', 'save', join(dir, 'b.snap')], { addr: f.addr });
  t.is(cut.code, 1);
  t.regex(cut.stderr, /^Error verifying snapshot file: .+\n$/);
  t.false(existsSync(join(dir, 'b.snap')));
  f.on('GET', '/v1/snapshot', { status: 500, body: 'x' });
  const failed = await runCli(['snapshot', 'save', join(dir, 'c.snap')], { addr: f.addr });
  t.is(failed.code, 1);
  t.is(failed.stderr, 'Error saving snapshot: Unexpected response code: 500 (x)\n');
  t.false(existsSync(join(dir, 'c.snap.unverified')));
  const noFile = await runCli(['snapshot', 'save'], { addr: f.addr });
  t.is(noFile.stderr, 'Missing FILE argument\n');
});

test('snapshot restore: PUT /v1/snapshot with the file as the body', async (t) => {
  const f = await fake(t);
  f.on('PUT', '/v1/snapshot', { body: '' });
  const dir = tempDir(t);
  const data = gzipSync(Buffer.alloc(50_000, 'restore me'));
  writeFileSync(join(dir, 'in.snap'), data);
  const r = await runCli(['snapshot', 'restore', join(dir, 'in.snap')], { addr: f.addr });
  t.is(r.code, 0);
  t.is(r.stdout, 'Restored snapshot\n');
  t.like(f.requests[0], { method: 'PUT', path: '/v1/snapshot', query: '' });
  t.deepEqual(f.requests[0].body, data);
  t.is(f.requests[0].headers['content-length'], String(data.length));
  const missing = await runCli(['snapshot', 'restore', join(dir, 'nope.snap')], { addr: f.addr });
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^Error opening snapshot file: ENOENT.*\n$/);
  f.on('PUT', '/v1/snapshot', { status: 500, body: 'x' });
  const failed = await runCli(['snapshot', 'restore', join(dir, 'in.snap')], { addr: f.addr });
  t.is(failed.code, 1);
  t.is(failed.stderr, 'Error restoring snapshot: Unexpected response code: 500 (x)\n');
});
