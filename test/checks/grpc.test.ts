import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import test from 'ava';
import { grpcProbe } from '../../src/agent/checks/grpc.ts';
import { freePort } from '../support/agent-process.ts';
import { never } from './support.ts';

const PROTO = fileURLToPath(new URL('./health.proto', import.meta.url));

/** A grpc-js server implementing grpc.health.v1: '' and 'web' serve, 'db' does not. */
async function healthServer(): Promise<{ addr: string; requested: string[]; close: () => void }> {
  const def = protoLoader.loadSync(PROTO, { enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } };
  };
  const statuses: Record<string, string> = { '': 'SERVING', web: 'SERVING', db: 'NOT_SERVING' };
  const requested: string[] = [];
  const server = new grpc.Server();
  server.addService(pkg.grpc.health.v1.Health.service, {
    Check: (
      call: grpc.ServerUnaryCall<{ service: string }, unknown>,
      cb: grpc.sendUnaryData<{ status: string }>,
    ) => {
      requested.push(call.request.service);
      const status = statuses[call.request.service];
      if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      else cb(null, { status });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { addr: `127.0.0.1:${port}`, requested, close: () => server.forceShutdown() };
}

const probe = (target: string) =>
  grpcProbe({ target, useTls: false, tlsServerName: '', tlsSkipVerify: false, timeoutMs: 5_000 });

test('SERVING is passing, NOT_SERVING critical, the service after the slash is asked for', async (t) => {
  const srv = await healthServer();
  t.teardown(srv.close);
  const whole = probe(srv.addr);
  const web = probe(`${srv.addr}/web`);
  const db = probe(`${srv.addr}/db`);
  const nope = probe(`${srv.addr}/nope`);
  t.teardown(() => {
    for (const p of [whole, web, db, nope]) p.close?.();
  });

  t.deepEqual(await whole.run(never()), { status: 'passing', output: `gRPC check ${srv.addr}: success` });
  t.deepEqual(await web.run(never()), { status: 'passing', output: `gRPC check ${srv.addr}/web: success` });
  t.deepEqual(await db.run(never()), {
    status: 'critical',
    output: `gRPC ${srv.addr}/db serving status: NOT_SERVING`,
  });
  t.deepEqual(await nope.run(never()), {
    status: 'critical',
    output: 'rpc error: code = NotFound desc = unknown service',
  });
  t.deepEqual(srv.requested, ['', 'web', 'db', 'nope']);
});

test('nothing listening is critical (Unavailable)', async (t) => {
  const p = probe(`127.0.0.1:${await freePort()}`);
  t.teardown(() => p.close?.());
  const r = await p.run(never());
  t.is(r.status, 'critical');
  t.regex(r.output, /^rpc error: code = Unavailable desc = /);
});
