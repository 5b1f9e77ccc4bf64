/**
 * Write batching of gossip TCP connections (src/agent/gossip/batched-tcp.ts) on a real loopback
 * socket: what a turn writes leaves in one batch, in order, and back-pressure is reported as the
 * transport reports it.
 */

import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import test from 'ava';
import { batchWrites } from '../../src/agent/gossip/batched-tcp.ts';

async function socketPair(
  t: import('ava').ExecutionContext,
): Promise<{ client: Socket; received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = createServer((s) => s.on('data', (b) => received.push(b)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const client = connect({ host: '127.0.0.1', port, noDelay: true });
  await once(client, 'connect');
  t.teardown(() => {
    client.destroy();
    server.close();
  });
  return { client, received };
}

const bytes = (s: string) => new TextEncoder().encode(s);

test('the writes of one turn go out corked, as one batch, in order; the next turn starts a new batch', async (t) => {
  const { client, received } = await socketPair(t);
  let writevs = 0;
  const writev = client._writev?.bind(client);
  client._writev = (chunks, cb) => {
    writevs++;
    writev?.(chunks, cb);
  };
  const maConn = {
    socket: client,
    sendData: (_data: Iterable<Uint8Array>) => ({ sentBytes: 0, canSendMore: false }),
  };
  batchWrites(maConn);
  t.deepEqual(maConn.sendData([bytes('a'), bytes('bc')]), { sentBytes: 3, canSendMore: true });
  t.deepEqual(maConn.sendData([bytes('d'), bytes('ef')]), { sentBytes: 3, canSendMore: true });
  t.is(client.writableCorked, 1, 'held until the turn is over');
  await new Promise((r) => setImmediate(r));
  t.is(client.writableCorked, 0);
  t.is(writevs, 1, 'four buffers, one writev');
  maConn.sendData([bytes('g')]);
  t.is(client.writableCorked, 1, 'a later turn corks again');
  const deadline = Date.now() + 5_000;
  while (Buffer.concat(received).toString() !== 'abcdefg' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  t.is(Buffer.concat(received).toString(), 'abcdefg');
});

test('back-pressure: a write over the high-water mark stops the batch and says so', async (t) => {
  const { client } = await socketPair(t);
  const maConn = {
    socket: client,
    sendData: (_data: Iterable<Uint8Array>) => ({ sentBytes: 0, canSendMore: false }),
  };
  batchWrites(maConn);
  const big = new Uint8Array(client.writableHighWaterMark + 1);
  t.deepEqual(maConn.sendData([big, bytes('never')]), { sentBytes: big.byteLength, canSendMore: false });
  await once(client, 'drain');
  t.pass('drained once uncorked');
});

test('a connection that is not a TCP socket is left as it is', (t) => {
  const sendData = () => ({ sentBytes: 1, canSendMore: true });
  const maConn = { socket: undefined, sendData };
  batchWrites(maConn);
  t.is(maConn.sendData, sendData);
});
