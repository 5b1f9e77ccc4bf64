/** The server RPC edge: malformed requests are refused by name, garbage never takes the server down. */

import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { RpcClient } from '../../src/agent/rpc/client.ts';
import { type RPC_METHODS, RPC_SERVICE, RpcError } from '../../src/agent/rpc/service.ts';
import { type ApiServer, startApiServer } from '../support/api-server.ts';

let api: ApiServer;
const rpc = new RpcClient();
test.before(async () => {
  api = await startApiServer();
});
test.after.always(async () => {
  rpc.close();
  await api?.close();
});

test('malformed requests get a bad-request refusal naming the problem', async (t) => {
  const cases: [(typeof RPC_METHODS)[number], unknown, RegExp][] = [
    ['Apply', {}, /command/],
    ['Apply', { command: { type: 'kv', op: { Verb: 'explode', Key: 'x' } } }, /Verb|op/],
    ['Apply', { command: { type: 'nope' } }, /type/],
    [
      'Query',
      { name: 'kv.get', args: {}, opts: { consistency: 'sometimes', minIndex: 0, waitMs: 0 } },
      /consistency/,
    ],
    [
      'Query',
      { name: 'drop.tables', args: {}, opts: { consistency: 'default', minIndex: 0, waitMs: 0 } },
      /unknown query/,
    ],
    ['Join', { id: '' }, /id/],
    ['RemovePeer', {}, /Must specify/],
    ['RenewSession', { id: 5 }, /id/],
  ];
  for (const [method, request, message] of cases) {
    const err = await t.throwsAsync(rpc.call(api.server.address, method, request, 5_000), {
      instanceOf: RpcError,
    });
    t.is(err?.kind, 'bad-request', `${method} ${JSON.stringify(request)}`);
    t.regex(err?.message ?? '', message);
  }
});

test('a valid forwarded write and read go through', async (t) => {
  const w = await rpc.call<{ index: number; result: { ok: boolean } }>(
    api.server.address,
    'Apply',
    {
      command: { type: 'kv', op: { Verb: 'set', Key: 'rpc/k', Value: Buffer.from('v').toString('base64') } },
    },
    5_000,
  );
  t.true(w.result.ok);
  const r = await rpc.call<{ index: number; result: { Key: string }[] }>(
    api.server.address,
    'Query',
    { name: 'kv.get', args: { key: 'rpc/k' }, opts: { consistency: 'consistent', minIndex: 0, waitMs: 0 } },
    5_000,
  );
  t.is(r.result[0].Key, 'rpc/k');
  t.true(r.index >= w.index);
});

test('undecodable frames and raw garbage on the port leave the server serving', async (t) => {
  // A gRPC call whose body is not JSON.
  const Raw = grpc.makeGenericClientConstructor(
    {
      Apply: {
        path: `/${RPC_SERVICE}/Apply`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    RPC_SERVICE,
  );
  const raw = new Raw(api.server.address, grpc.credentials.createInsecure());
  const code = await new Promise<number | undefined>((resolve) => {
    (raw as unknown as { Apply: (b: Buffer, cb: (e: grpc.ServiceError | null) => void) => void }).Apply(
      Buffer.from('\x00\xffnot json'),
      (e) => resolve(e?.code),
    );
  });
  t.not(code, undefined, 'the call fails');
  raw.close();
  // Bytes that are not HTTP/2 at all.
  const [host, port] = api.server.address.split(':');
  await new Promise<void>((resolve) => {
    const s = connect(Number(port), host, () => {
      // Half-close after the garbage: the server answers (or not) and closes its side.
      s.end(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\x01\x02garbage'));
    });
    s.resume();
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
  const r = await rpc.call<{ leaderAddress: string }>(api.server.address, 'Info', {}, 5_000);
  t.is(r.leaderAddress, api.server.address, 'still serving');
});
