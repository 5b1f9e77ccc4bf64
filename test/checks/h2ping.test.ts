import { once } from 'node:events';
import { createServer as createHttp1 } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { h2pingProbe } from '../../src/agent/checks/h2ping.ts';
import { freePort } from '../support/agent-process.ts';
import { never } from './support.ts';

const probe = (address: string) =>
  h2pingProbe({ address, useTls: false, tlsServerName: '', tlsSkipVerify: false });

test('an HTTP/2 server answers the ping: passing', async (t) => {
  const srv = http2.createServer();
  let pings = 0;
  srv.on('session', (s) => s.on('ping', () => pings++));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  const addr = `127.0.0.1:${(srv.address() as AddressInfo).port}`;
  t.deepEqual(await probe(addr)(never()), { status: 'passing', output: 'HTTP2 ping was successful' });
  t.is(pings, 1);
});

test('a closed port fails to dial; an HTTP/1-only server fails the ping', async (t) => {
  const closed = `127.0.0.1:${await freePort()}`;
  t.deepEqual(await probe(closed)(never()), {
    status: 'critical',
    output: `Failed to dial to ${closed}: connect: connection refused`,
  });

  const h1 = createHttp1((_req, res) => res.end('hi'));
  h1.listen(0, '127.0.0.1');
  await once(h1, 'listening');
  t.teardown(() => {
    h1.closeAllConnections();
    h1.close();
  });
  const r = await probe(`127.0.0.1:${(h1.address() as AddressInfo).port}`)(never());
  t.is(r.status, 'critical');
  t.regex(r.output, /^HTTP2 ping failed: /);
});
