/**
 * The batched UDP socket (native/udp-batch.c through src/api/dns/udp-batch.ts) on its own, with a
 * handler that knows no DNS: batching, who gets which answer, answers sent later or too long for a
 * slot, datagrams too long for one, errors, closing, and a worker that ends with a socket open.
 * Skipped where the addon was not built (npm ci builds it; under CI a failed build fails).
 */

import { createSocket, type Socket } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import test from 'ava';
import {
  BatchUdpSocket,
  loadUdpBatch,
  loadUdpBatchError,
  type OnDatagram,
} from '../../src/api/dns/udp-batch.ts';
import { waitFor } from '../support/agent-process.ts';

const native = loadUdpBatch();
const nativeTest = native !== undefined ? test : test.skip;
if (native === undefined) test.skip(`batched UDP I/O: ${loadUdpBatchError()}`, () => {});

function open(
  t: { teardown(fn: () => unknown): void },
  onDatagram: OnDatagram,
  host = '127.0.0.1',
  port = 0,
) {
  const sock = new BatchUdpSocket(native as NonNullable<typeof native>, host, port, onDatagram);
  t.teardown(() => sock.close());
  return sock;
}

function client(t: { teardown(fn: () => unknown): void }, type: 'udp4' | 'udp6' = 'udp4') {
  const sock = createSocket(type);
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  t.teardown(() => sock.close());
  return { sock, got };
}

const bound = (s: Socket) => new Promise<void>((r) => s.bind(0, '127.0.0.1', r));

nativeTest('a burst is read in batches of up to `batch`; each answer goes to its own sender', async (t) => {
  const n = 100;
  const server = open(t, (q) => Buffer.concat([Buffer.from('re:'), q]));
  const a = client(t);
  const b = client(t);
  await Promise.all([bound(a.sock), bound(b.sock)]);
  // Sent before this test yields, so all are queued in the server's socket when it first reads.
  for (let i = 0; i < n; i++) (i % 2 ? b : a).sock.send(`q${i}`, server.port, '127.0.0.1');
  await waitFor('every answer', () => a.got.length + b.got.length === n || undefined);
  t.deepEqual(a.got.map(String).sort(), Array.from({ length: n / 2 }, (_, i) => `re:q${2 * i}`).sort());
  t.deepEqual(b.got.map(String).sort(), Array.from({ length: n / 2 }, (_, i) => `re:q${2 * i + 1}`).sort());
  const batch = native?.batch ?? 0;
  t.is(server.stats.datagrams, n);
  t.is(server.stats.batches, Math.ceil(n / batch));
  t.deepEqual(server.sent, { ok: n, refused: 0 });
});

nativeTest(
  'an answer can go later, to a copy of the sender; one longer than a slot goes whole',
  async (t) => {
    const slot = native?.slot ?? 0;
    const server: BatchUdpSocket = open(t, (q, from) => {
      const peer = server.peer(from);
      const copy = Buffer.from(q);
      setTimeout(() => server.send(Buffer.concat([Buffer.from('later:'), copy]), peer), 20);
      return Buffer.alloc(slot + 1000, 0x61);
    });
    const c = client(t);
    await bound(c.sock);
    c.sock.send('x', server.port, '127.0.0.1');
    await waitFor('both answers', () => c.got.length === 2 || undefined);
    t.is(c.got[0]?.length, slot + 1000);
    t.is(String(c.got[1]), 'later:x');
  },
);

nativeTest('an answer the kernel refuses is counted, and the socket goes on answering', async (t) => {
  let refusedSend: boolean | undefined;
  const server: BatchUdpSocket = open(t, (q, from) => {
    if (String(q) === 'to port 0') {
      // A sockaddr_in with port 0 (bytes 2-3): Linux refuses to send there (EINVAL).
      const peer = server.peer(from);
      peer[2] = 0;
      peer[3] = 0;
      refusedSend = server.send(Buffer.from('lost'), peer);
      return undefined;
    }
    return Buffer.from(`re:${q}`);
  });
  const c = client(t);
  await bound(c.sock);
  c.sock.send('to port 0', server.port, '127.0.0.1');
  c.sock.send('after', server.port, '127.0.0.1');
  await waitFor('the answer after', () => c.got.length === 1 || undefined);
  t.false(refusedSend);
  t.deepEqual(server.sent, { ok: 1, refused: 1 });
  t.deepEqual(c.got.map(String), ['re:after']);
});

nativeTest('a datagram longer than a slot arrives cut, and says so', async (t) => {
  const slot = native?.slot ?? 0;
  const seen: Array<{ len: number; cut: boolean }> = [];
  const server = open(t, (q, _from, cut) => {
    seen.push({ len: q.length, cut });
    return Buffer.from('ok');
  });
  const c = client(t);
  await bound(c.sock);
  c.sock.send(Buffer.alloc(slot + 1), server.port, '127.0.0.1');
  c.sock.send(Buffer.alloc(slot), server.port, '127.0.0.1');
  await waitFor('two answers', () => c.got.length === 2 || undefined);
  t.deepEqual(seen, [
    { len: slot, cut: true },
    { len: slot, cut: false },
  ]);
});

nativeTest('a handler that throws loses its datagram only', async (t) => {
  const server = open(t, (q) => {
    if (String(q) === 'bad') throw new Error('handler bug');
    return q;
  });
  const c = client(t);
  await bound(c.sock);
  for (const m of ['one', 'bad', 'two']) c.sock.send(m, server.port, '127.0.0.1');
  await waitFor('two answers', () => c.got.length === 2 || undefined);
  t.deepEqual(c.got.map(String), ['one', 'two']);
  t.is(server.stats.handlerErrors, 1);
});

nativeTest('closing inside the handler answers nothing more; the port is free at once', async (t) => {
  let server: BatchUdpSocket | undefined;
  const handled: string[] = [];
  server = open(t, (q) => {
    handled.push(String(q));
    void server?.close();
    return Buffer.from('never sent');
  });
  const port = server.port;
  const c = client(t);
  await bound(c.sock);
  for (const m of ['a', 'b', 'c']) c.sock.send(m, port, '127.0.0.1');
  await waitFor('the first datagram', () => handled.length > 0 || undefined);
  t.deepEqual(handled, ['a']);
  t.deepEqual(server.sent, { ok: 0, refused: 0 });
  t.false(server.send(Buffer.from('late'), new Uint8Array(16)));
  await server.close();
  // The same port binds again right after close (its descriptor is closed, not pending).
  const again = open(t, (q) => q, '127.0.0.1', port);
  t.is(again.port, port);
  c.sock.send('d', port, '127.0.0.1');
  await waitFor('an answer from the new socket', () => c.got.length === 1 || undefined);
  t.is(String(c.got[0]), 'd');
});

nativeTest('binding a port in use fails as bind does, naming the address', (t) => {
  const first = open(t, (q) => q);
  const err = t.throws(() => open(t, (q) => q, '127.0.0.1', first.port)) as NodeJS.ErrnoException;
  t.is(err.code, 'EADDRINUSE');
  t.regex(err.message, new RegExp(`^bind 127\\.0\\.0\\.1:${first.port}: address already in use`));
  t.is((t.throws(() => open(t, (q) => q, '127.0.0.999')) as NodeJS.ErrnoException).code, 'EINVAL');
});

nativeTest('IPv6: answers go back to a v6 sender', async (t) => {
  const server = open(t, (q) => Buffer.concat([Buffer.from('v6:'), q]), '::1');
  const c = client(t, 'udp6');
  await new Promise<void>((r) => c.sock.bind(0, '::1', r));
  c.sock.send('hi', server.port, '::1');
  await waitFor('the v6 answer', () => c.got[0]);
  t.is(String(c.got[0]), 'v6:hi');
});

nativeTest('a worker that ends with a socket open ends cleanly, and its port is freed', async (t) => {
  const url = new URL('../../src/api/dns/udp-batch.ts', import.meta.url).href;
  const worker = new Worker(
    `import(${JSON.stringify(url)}).then(({ BatchUdpSocket, loadUdpBatch }) => {
       const s = new BatchUdpSocket(loadUdpBatch(), '127.0.0.1', 0, (q) => q);
       require('node:worker_threads').parentPort.postMessage(s.port);
     });`,
    { eval: true },
  );
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const code = await worker.terminate();
  t.is(code, 1);
  const again = open(t, (q) => q, '127.0.0.1', port);
  t.is(again.port, port);
});
