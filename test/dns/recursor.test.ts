/** Names outside our domains go to the recursors: fake upstream servers on loopback sockets. */

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import test from 'ava';
import type { Answer, DecodedPacket } from 'dns-packet';
import dnsPacket from 'dns-packet';
import { forward, parseRecursor } from '../../src/api/dns/recursor.ts';
import { freePorts } from '../support/agent-process.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';
import { ask, responderFor } from './helpers.ts';

interface Upstream {
  port: number;
  udpQueries: number;
  tcpQueries: number;
  close(): Promise<void>;
}

/**
 * A DNS server on 127.0.0.1 answering every question with `answers` A records; over UDP with
 * `udpTruncates` it answers TC and nothing else; `rcode` overrides NOERROR.
 */
async function upstream(opts: {
  answers: number;
  rcode?: number;
  udpTruncates?: boolean;
}): Promise<Upstream> {
  const [port] = await freePorts(1);
  const build = (req: DecodedPacket, tcp: boolean): Buffer => {
    const answers: Answer[] = [];
    const truncate = !tcp && opts.udpTruncates === true;
    if (!truncate) {
      for (let i = 0; i < opts.answers; i++)
        answers.push({ type: 'A', name: req.questions?.[0].name ?? '', ttl: 60, data: `192.0.2.${i + 1}` });
    }
    const flags = 0x0080 | (truncate ? dnsPacket.TRUNCATED_RESPONSE : 0) | (opts.rcode ?? 0);
    return dnsPacket.encode({ type: 'response', id: req.id, flags, questions: req.questions, answers });
  };
  const state = { udpQueries: 0, tcpQueries: 0 };
  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', (m, r) => {
    state.udpQueries++;
    udp.send(build(dnsPacket.decode(m), false), r.port, r.address);
  });
  await new Promise<void>((r) => udp.bind(port, '127.0.0.1', () => r()));
  const tcp: Server = createServer((s) => {
    s.on('data', (d: Buffer) => {
      state.tcpQueries++;
      const out = build(dnsPacket.decode(d.subarray(2)), true);
      s.end(Buffer.concat([Buffer.from([out.length >> 8, out.length & 0xff]), out]));
    });
  });
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', () => r()));
  return {
    port,
    get udpQueries() {
      return state.udpQueries;
    },
    get tcpQueries() {
      return state.tcpQueries;
    },
    async close() {
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

const shortForward: typeof forward = (q, r, t) => forward(q, r, t, 300);

test('parseRecursor: IP, IP:port, [v6]:port; anything else refused', (t) => {
  t.deepEqual(parseRecursor('8.8.8.8'), { host: '8.8.8.8', port: 53 });
  t.deepEqual(parseRecursor('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
  t.deepEqual(parseRecursor('[::1]:5300'), { host: '::1', port: 5300 });
  t.deepEqual(parseRecursor('::1'), { host: '::1', port: 53 });
  t.throws(() => parseRecursor('dns.example.com'));
});

test('outside the domain: the recursor answers; one that fails (SERVFAIL) is skipped', async (t) => {
  const bad = await upstream({ answers: 0, rcode: 2 });
  const good = await upstream({ answers: 2 });
  t.teardown(async () => {
    await bad.close();
    await good.close();
  });
  const recursors = [bad, good].map((u) => ({ host: '127.0.0.1', port: u.port }));
  const { responder, cache } = responderFor(new MemoryCatalog(), { recursors }, { forward: shortForward });
  t.teardown(() => cache.close());
  const r = await ask(responder, 'example.com', 'A');
  t.is(r.rcode, 'NOERROR');
  t.deepEqual(
    r.answers.map((a) => (a as { data: string }).data),
    ['192.0.2.1', '192.0.2.2'],
  );
  t.is(bad.udpQueries, 1);
  // With recursors configured, our own answers advertise recursion.
  const own = await ask(responder, 'nope.service.consul', 'A');
  t.true(own.packet.flag_ra);
});

test('a truncated UDP answer is asked again over TCP for a TCP requester, passed on to a UDP one', async (t) => {
  const up = await upstream({ answers: 3, udpTruncates: true });
  t.teardown(() => up.close());
  const recursors = [{ host: '127.0.0.1', port: up.port }];
  const { responder, cache } = responderFor(new MemoryCatalog(), { recursors }, { forward: shortForward });
  t.teardown(() => cache.close());
  const overTcp = await ask(responder, 'example.com', 'A', { transport: 'tcp' });
  t.is(overTcp.answers.length, 3);
  t.false(overTcp.tc);
  t.is(up.tcpQueries, 1);
  const overUdp = await ask(responder, 'example.com', 'A', { transport: 'udp' });
  t.true(overUdp.tc, 'the UDP requester retries over TCP itself');
  t.is(up.tcpQueries, 1);
});

test('when every recursor fails the answer is SERVFAIL with recursion available', async (t) => {
  const [deadPort] = await freePorts(1);
  const recursors = [{ host: '127.0.0.1', port: deadPort }];
  const { responder, cache } = responderFor(new MemoryCatalog(), { recursors }, { forward: shortForward });
  t.teardown(() => cache.close());
  const r = await ask(responder, 'example.com', 'A', { edns: 1232 });
  t.is(r.rcode, 'SERVFAIL');
  t.true(r.packet.flag_ra);
});
