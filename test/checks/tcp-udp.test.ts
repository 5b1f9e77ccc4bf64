import dgram from 'node:dgram';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import test from 'ava';
import { tcpProbe } from '../../src/agent/checks/tcp.ts';
import { udpProbe } from '../../src/agent/checks/udp.ts';
import { freePort } from '../support/agent-process.ts';
import { never } from './support.ts';

const tcp = (address: string) =>
  tcpProbe({ address, useTls: false, tlsServerName: '', tlsSkipVerify: false });

test('TCP: a listener is passing, a closed port critical', async (t) => {
  let accepted = 0;
  const srv = createServer((s) => {
    accepted++;
    s.destroy();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => srv.close());
  const addr = `127.0.0.1:${(srv.address() as AddressInfo).port}`;
  t.deepEqual(await tcp(addr)(never()), { status: 'passing', output: `TCP connect ${addr}: Success` });

  const closed = `127.0.0.1:${await freePort()}`;
  t.deepEqual(await tcp(closed)(never()), {
    status: 'critical',
    output: `dial tcp ${closed}: connect: connection refused`,
  });
  t.is((await tcp('no-port')(never())).status, 'critical');
  t.true(accepted >= 1);
});

test('TCP: a connection still pending at the deadline is critical (i/o timeout)', async (t) => {
  // 10.255.255.1 is not routed here: the SYN goes nowhere, so the connect never completes.
  const deadline = new AbortController();
  const run = tcp('10.255.255.1:9')(deadline.signal);
  deadline.abort();
  const r = await run;
  t.is(r.status, 'critical');
  t.regex(r.output, /^dial tcp 10\.255\.255\.1:9: /);
});

test('UDP: silence until the deadline is passing; a reply is passing; a closed port is critical', async (t) => {
  const sock = dgram.createSocket('udp4');
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  let received = 0;
  let echo = false;
  let onDatagram: () => void = () => undefined;
  sock.on('message', (_m, rinfo) => {
    received++;
    onDatagram();
    if (echo) sock.send('pong', rinfo.port, rinfo.address);
  });
  t.teardown(() => sock.close());
  const addr = `127.0.0.1:${sock.address().port}`;

  // Quiet service: the run lasts until its deadline, then passes.
  const deadline = new AbortController();
  const got = new Promise<void>((r) => {
    onDatagram = r;
  });
  const quiet = udpProbe(addr)(deadline.signal);
  await got;
  deadline.abort();
  t.deepEqual(await quiet, { status: 'passing', output: `UDP connect ${addr}: Success` });

  echo = true;
  t.deepEqual(await udpProbe(addr)(never()), { status: 'passing', output: `UDP connect ${addr}: Success` });
  t.is(received, 2);

  // Nothing listens: the ICMP port-unreachable comes back as ECONNREFUSED before any deadline.
  const closed = `127.0.0.1:${await freePort()}`;
  const r = await udpProbe(closed)(never());
  t.is(r.status, 'critical');
  t.regex(r.output, new RegExp(`^read udp 127\\.0\\.0\\.1:\\d+->${closed}: read: connection refused$`));
});
