/**
 * The packet path under garbage: random bytes and mutated valid queries never throw out of the
 * handler, are answered FORMERR/NOTIMP (or dropped) and counted, and the real UDP and TCP
 * listeners keep answering afterwards.
 */

import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { silentLogger } from '../../src/agent/logger.ts';
import {
  type DnsStats,
  handlePacket,
  listenDns,
  MAX_UDP_QUERY,
  newDnsStats,
} from '../../src/api/dns/server.ts';
import { loadUdpBatch, loadUdpBatchError } from '../../src/api/dns/udp-batch.ts';
import { waitFor } from '../support/agent-process.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';
import { query, readReply, register, responderFor } from './helpers.ts';

/** A UDP test run once over node:dgram and once over batched I/O (skipped where not built). */
function udpTest(title: string, run: (t: ExecutionContext, udpIo: 'dgram' | 'batch') => Promise<void>): void {
  test(`${title} (dgram)`, (t) => run(t, 'dgram'));
  if (loadUdpBatch() !== undefined) test(`${title} (batch)`, (t) => run(t, 'batch'));
  else test.skip(`${title} (batch: ${loadUdpBatchError()})`, (t) => run(t, 'batch'));
}

/** Listeners on 127.0.0.1 over `udpIo`, and a UDP client socket collecting what comes back. */
async function listening(t: ExecutionContext, udpIo: 'dgram' | 'batch') {
  const { respond, cache } = setup();
  const dns = await listenDns({ hosts: ['127.0.0.1'], port: 0, respond, logger: silentLogger(), udpIo });
  t.teardown(async () => {
    cache.close();
    await dns.close();
  });
  t.is(dns.udpIo.kind, udpIo);
  const port = Number(dns.addresses[0].split(':')[1]);
  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  const replies: Buffer[] = [];
  udp.on('message', (m) => replies.push(m));
  return { dns, port, udp, replies };
}

function setup() {
  const cat = new MemoryCatalog();
  register(cat, { node: 'n1', address: '10.0.0.1', service: 'web', status: 'passing' });
  const { responder, cache } = responderFor(cat);
  return { respond: responder.respond.bind(responder), cache };
}

const validQueries = [
  query('web.service.consul', 'A'),
  query('web.service.consul', 'SRV', { edns: 1232 }),
  query('_web._tcp.service.consul', 'SRV'),
  query('n1.node.consul', 'ANY'),
  query('consul', 'SOA', { edns: 4096 }),
];

/** Each outcome is accounted for exactly once: answered by the responder, or counted as bad. */
function accounted(before: DnsStats, after: DnsStats): number {
  return (
    after.queries -
    before.queries +
    (after.formerr - before.formerr) +
    (after.notimp - before.notimp) +
    (after.dropped - before.dropped)
  );
}

test('random bytes: never a throw, always FORMERR/NOTIMP/dropped or an answer, each counted', async (t) => {
  const { respond, cache } = setup();
  t.teardown(() => cache.close());
  const stats = newDnsStats();
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), async (bytes) => {
      const raw = Buffer.from(bytes);
      const before = { ...stats };
      const out = await handlePacket(raw, 'udp', respond, stats, silentLogger());
      if (accounted(before, stats) < 1) return false;
      if (out === undefined) return true;
      // Whatever goes back is a response to this ID.
      return out.length >= 12 && out.readUInt16BE(0) === raw.readUInt16BE(0) && (out[2] & 0x80) !== 0;
    }),
    { numRuns: 3_000 },
  );
  t.true(stats.malformed > 0);
});

test('mutated valid queries: flipped, truncated, extended bytes are answered or refused, never thrown', async (t) => {
  const { respond, cache } = setup();
  t.teardown(() => cache.close());
  const stats = newDnsStats();
  const mutation = fc.record({
    base: fc.integer({ min: 0, max: validQueries.length - 1 }),
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
    cut: fc.option(fc.nat()),
    tail: fc.uint8Array({ maxLength: 20 }),
  });
  await fc.assert(
    fc.asyncProperty(mutation, async ({ base, flips, cut, tail }) => {
      let raw = Buffer.from(validQueries[base]);
      for (const [at, v] of flips) raw[at % raw.length] = v;
      if (cut !== null) raw = raw.subarray(0, cut % (raw.length + 1));
      raw = Buffer.concat([raw, Buffer.from(tail)]);
      const before = { ...stats };
      const out = await handlePacket(raw, 'udp', respond, stats, silentLogger());
      if (accounted(before, stats) !== 1) return false;
      if (out !== undefined) dnsPacket.decode(out); // whatever we send decodes
      return true;
    }),
    { numRuns: 3_000 },
  );
  t.true(stats.queries > 0, 'some mutations are still valid queries');
  t.true(stats.formerr > 0, 'some are answered FORMERR');
});

test('specific bad packets: short, response, opcode, counts, bad name', async (t) => {
  const { respond, cache } = setup();
  t.teardown(() => cache.close());
  const stats = newDnsStats();
  const h = (raw: Buffer) => handlePacket(raw, 'udp', respond, stats, silentLogger());
  t.is(await h(Buffer.alloc(5)), undefined, 'shorter than a header: dropped');
  const asResponse = Buffer.from(validQueries[0]);
  asResponse[2] |= 0x80;
  t.is(await h(asResponse), undefined, 'a response is never answered');
  const update = Buffer.from(validQueries[0]);
  update[2] = (update[2] & 0x87) | (5 << 3);
  t.is(readReply(await asBuffer(h(update))).rcode, 'NOTIMP');
  const twoQuestions = Buffer.from(validQueries[0]);
  twoQuestions.writeUInt16BE(2, 4);
  t.is(readReply(await asBuffer(h(twoQuestions))).rcode, 'FORMERR');
  const badLabel = Buffer.from(validQueries[0]);
  badLabel[12] = 0x80; // neither a label length nor a pointer
  const formerr = await asBuffer(h(badLabel));
  t.is(formerr.readUInt16BE(0), 4242);
  t.is(formerr[3] & 0x0f, 1);
  t.deepEqual({ ...stats }, { ...newDnsStats(), malformed: 3, formerr: 2, notimp: 1, dropped: 2 });
});

async function asBuffer(p: Promise<Buffer | undefined>): Promise<Buffer> {
  const b = await p;
  if (b === undefined) throw new Error('expected an answer');
  return b;
}

udpTest(
  'the UDP and TCP listeners survive garbage and keep answering on the same socket',
  async (t, udpIo) => {
    const { dns, port, udp, replies } = await listening(t, udpIo);
    const garbage = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 300 }), { numRuns: 200, seed: 7 });
    for (const g of garbage) udp.send(Buffer.from(g), port, '127.0.0.1');
    udp.send(query('web.service.consul', 'A', { id: 777 }), port, '127.0.0.1');
    const answer = await waitFor('the UDP reply', () =>
      replies.find((r) => r.length >= 12 && r.readUInt16BE(0) === 777),
    );
    t.deepEqual(
      readReply(answer).answers.map((a) => (a as { data: string }).data),
      ['10.0.0.1'],
    );
    t.true(dns.stats.malformed > 0);

    // TCP: a garbage frame and two queries pipelined on one connection, answered in full.
    const sock = new Socket();
    t.teardown(() => sock.destroy());
    await new Promise<void>((r) => sock.connect(port, '127.0.0.1', r));
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
    });
    const frame = (b: Buffer) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
    sock.write(
      Buffer.concat([
        frame(Buffer.from([1, 2, 3])),
        frame(query('web.service.consul', 'A', { id: 1 })),
        frame(query('n1.node.consul', 'A', { id: 2 })),
      ]),
    );
    const frames = await waitFor('both TCP answers', () => {
      const out: Buffer[] = [];
      let rest = buf;
      while (rest.length >= 2 && rest.length >= 2 + rest.readUInt16BE(0)) {
        out.push(rest.subarray(2, 2 + rest.readUInt16BE(0)));
        rest = rest.subarray(2 + rest.readUInt16BE(0));
      }
      return out.length === 2 ? out : undefined;
    });
    t.deepEqual(frames.map((f) => f.readUInt16BE(0)).sort(), [1, 2]);
  },
);

udpTest(
  'a UDP query longer than MAX_UDP_QUERY gets FORMERR; one posing as a response is dropped',
  async (t, udpIo) => {
    const { dns, port, udp, replies } = await listening(t, udpIo);
    // A valid query padded past the limit, and the same with the QR bit set.
    const long = Buffer.concat([query('web.service.consul', 'A', { id: 4242 }), Buffer.alloc(MAX_UDP_QUERY)]);
    const response = Buffer.from(long);
    response.writeUInt16BE(4243, 0);
    response[2] = (response[2] as number) | 0x80;
    udp.send(response, port, '127.0.0.1');
    udp.send(long, port, '127.0.0.1');
    udp.send(query('web.service.consul', 'A', { id: 4244 }), port, '127.0.0.1');
    await waitFor('the answer after them', () => replies.find((r) => r.readUInt16BE(0) === 4244));
    const formerr = replies.find((r) => r.readUInt16BE(0) === 4242);
    t.is(formerr?.length, 12);
    t.is((formerr?.readUInt16BE(2) ?? 0) & 0x800f, 0x8001);
    t.false(replies.some((r) => r.readUInt16BE(0) === 4243));
    t.is(dns.stats.formerr, 1);
    t.is(dns.stats.malformed, 2);
  },
);

test('an idle TCP connection is closed after idleMs', async (t) => {
  const { respond, cache } = setup();
  const dns = await listenDns({
    hosts: ['127.0.0.1'],
    port: 0,
    respond,
    logger: silentLogger(),
    idleMs: 150,
  });
  t.teardown(async () => {
    cache.close();
    await dns.close();
  });
  const port = Number(dns.addresses[0].split(':')[1]);
  const sock = new Socket();
  t.teardown(() => sock.destroy());
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r) => sock.connect(port, '127.0.0.1', r));
  await closed;
  t.pass();
});
