/**
 * Answer building, pure and through the responder over an in-memory catalog: what Consul answers
 * for each kind of name, health filtering, shuffling, TTLs, rcodes, SOA placement and trimming.
 */

import test from 'ava';
import type { Answer } from 'dns-packet';
import {
  healthyInstances,
  rfc1464,
  type ServiceInstance,
  serviceSrvAnswers,
  shuffle,
  srvWeight,
  trimResponse,
} from '../../src/api/dns/answer.ts';
import { serviceTtlMs } from '../../src/api/dns/responder.ts';
import type { CheckRow, NodeRow, ServiceRow } from '../../src/catalog/types.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';
import { ask, datas, register, responderFor } from './helpers.ts';

const node = (name: string, address: string): NodeRow => ({
  ID: '',
  Node: name,
  Address: address,
  Datacenter: 'dc1',
  TaggedAddresses: {},
  Meta: {},
  CreateIndex: 1,
  ModifyIndex: 1,
});
const service = (n: string, extra: Partial<ServiceRow> = {}): ServiceRow => ({
  Node: n,
  ID: 'web',
  Service: 'web',
  Tags: [],
  Address: '',
  TaggedAddresses: {},
  Port: 80,
  Meta: {},
  Weights: { Passing: 10, Warning: 1 },
  EnableTagOverride: false,
  Kind: '',
  Proxy: {},
  Connect: {},
  CreateIndex: 1,
  ModifyIndex: 1,
  ...extra,
});
const check = (n: string, status: CheckRow['Status'], serviceId = 'web'): CheckRow => ({
  Node: n,
  CheckID: `c-${serviceId}-${status}`,
  Name: 'c',
  Status: status,
  Notes: '',
  Output: '',
  ServiceID: serviceId,
  ServiceName: serviceId === '' ? '' : 'web',
  ServiceTags: [],
  Type: '',
  Definition: {},
  CreateIndex: 1,
  ModifyIndex: 1,
});
const inst = (
  name: string,
  statuses: CheckRow['Status'][],
  extra: Partial<ServiceRow> = {},
): ServiceInstance => ({
  node: node(name, `10.0.0.${name.length}`),
  service: service(name, extra),
  checks: statuses.map((s) => check(name, s)),
});

test('healthyInstances drops critical always, warning and maintenance only with only_passing', (t) => {
  const rows = [inst('a', ['passing']), inst('b', ['warning']), inst('c', ['critical']), inst('d', [])];
  t.deepEqual(
    healthyInstances(rows, false).map((r) => r.node.Node),
    ['a', 'b', 'd'],
  );
  t.deepEqual(
    healthyInstances(rows, true).map((r) => r.node.Node),
    ['a', 'd'],
  );
  // A node-level critical check takes every instance on the node out.
  const nodeDown = { ...inst('e', ['passing']), checks: [check('e', 'critical', ''), check('e', 'passing')] };
  t.deepEqual(healthyInstances([nodeDown], false), []);
});

test('shuffle is a permutation that follows the rng', (t) => {
  const items = [1, 2, 3, 4, 5, 6];
  const a = shuffle(items, () => 0);
  t.deepEqual([...a].sort(), items);
  t.notDeepEqual(a, items, 'rng 0 swaps every element with the first');
  t.deepEqual(items, [1, 2, 3, 4, 5, 6], 'the input is not changed');
});

test('SRV weight is the Warning weight when a check warns, else the Passing weight', (t) => {
  t.is(srvWeight(inst('a', ['passing'])), 10);
  t.is(srvWeight(inst('a', ['warning', 'passing'])), 1);
});

test('SRV: node target when the node address serves, <hex>.addr target for a service IP, hostname as is', (t) => {
  const ctx = { qname: 'web.service.consul', qtype: 'SRV', domain: 'consul.', datacenter: 'dc1', ttl: 5 };
  const rows = [
    inst('a', ['passing']),
    inst('bb', ['passing'], { Address: '192.168.1.7', Port: 81 }),
    inst('ccc', ['passing'], { Address: 'db.example.com', Port: 82 }),
    inst('a', ['passing']), // same node/address/port: listed once
  ];
  const { answers, additionals } = serviceSrvAnswers(rows, ctx);
  t.deepEqual(
    answers.map((a) => (a as { data: unknown }).data),
    [
      { priority: 1, weight: 10, port: 80, target: 'a.node.dc1.consul.' },
      { priority: 1, weight: 10, port: 81, target: 'c0a80107.addr.dc1.consul.' },
      { priority: 1, weight: 10, port: 82, target: 'db.example.com.' },
    ],
  );
  t.deepEqual(
    additionals.map((a) => [a.name, a.type, (a as { data: unknown }).data]),
    [
      ['a.node.dc1.consul.', 'A', '10.0.0.1'],
      ['c0a80107.addr.dc1.consul.', 'A', '192.168.1.7'],
    ],
  );
  t.true(answers.every((a) => (a as { ttl: number }).ttl === 5));
});

test('rfc1464 escapes backquotes, equals and edge spaces in keys', (t) => {
  t.is(rfc1464('a=b', 'v'), 'a`=b=v');
  t.is(rfc1464(' k ', 'x`y'), '` k` =x``y');
});

test('service_ttl: exact key first, then the longest matching prefix*, else 0', (t) => {
  const cfg = { serviceTtlMs: { '*': 1_000, 'db*': 2_000, 'db-main': 3_000, 'dbx*': 4_000 } };
  t.is(serviceTtlMs(cfg, 'db-main'), 3_000);
  t.is(serviceTtlMs(cfg, 'db-other'), 2_000);
  t.is(serviceTtlMs(cfg, 'dbx1'), 4_000);
  t.is(serviceTtlMs(cfg, 'web'), 1_000);
  t.is(serviceTtlMs({ serviceTtlMs: {} }, 'web'), 0);
});

test('trimResponse: 512-byte UDP caps answers at min(udp_answer_limit, 8) and keeps extras in step', (t) => {
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  for (let i = 0; i < 10; i++) {
    answers.push({
      type: 'SRV',
      name: 'web.service.consul',
      data: { port: 80, target: `n${i}.node.dc1.consul` },
    });
    additionals.push({ type: 'A', name: `n${i}.node.dc1.consul`, data: `10.0.0.${i}` });
  }
  const p = { answers: [...answers], additionals: [...additionals], questions: [] };
  t.true(trimResponse(p, { transport: 'udp', ednsSize: undefined, udpAnswerLimit: 3, qtype: 'SRV' }));
  t.is(p.answers.length, 3);
  t.deepEqual(
    p.additionals.map((a) => a.name),
    ['n0.node.dc1.consul', 'n1.node.dc1.consul', 'n2.node.dc1.consul'],
  );
  const big = { answers: [...answers], additionals: [...additionals], questions: [] };
  t.false(trimResponse(big, { transport: 'udp', ednsSize: 4096, udpAnswerLimit: 3, qtype: 'SRV' }));
  t.is(big.answers.length, 10, 'with a large EDNS0 buffer the answer limit does not apply');
  const tcp = { answers: [...answers], additionals: [...additionals], questions: [] };
  t.false(trimResponse(tcp, { transport: 'tcp', ednsSize: undefined, udpAnswerLimit: 3, qtype: 'SRV' }));
  t.is(tcp.answers.length, 10);
});

// ---- through the responder ----

function catalog(): MemoryCatalog {
  const cat = new MemoryCatalog();
  register(cat, {
    node: 'n1',
    address: '10.0.0.1',
    service: 'web',
    tags: ['v1'],
    status: 'passing',
    meta: { rack: 'r1' },
  });
  register(cat, { node: 'n2', address: '10.0.0.2', service: 'web', tags: ['v2'], status: 'warning' });
  register(cat, { node: 'n3', address: '10.0.0.3', service: 'web', tags: ['v1'], status: 'critical' });
  register(cat, { node: 'n4', address: '10.0.0.4', service: 'down', status: 'critical' });
  register(cat, { node: 'n5', address: 'fd00::5', service: 'six', status: 'passing' });
  register(cat, {
    node: 'n6',
    address: '10.0.0.6',
    service: 'api',
    serviceAddress: '192.168.0.6',
    port: 9000,
  });
  return cat;
}

test('A: passing and warning instances, critical excluded, authoritative, no SOA', async (t) => {
  const { responder, cache } = responderFor(catalog());
  t.teardown(() => cache.close());
  const r = await ask(responder, 'web.service.consul', 'A');
  t.is(r.rcode, 'NOERROR');
  t.true(r.aa);
  t.deepEqual(datas(r.answers), ['"10.0.0.1"', '"10.0.0.2"']);
  t.true(r.answers.every((a) => a.name === 'web.service.consul'));
  t.deepEqual(r.authorities, []);
});

test('only_passing drops the warning instance too', async (t) => {
  const { responder, cache } = responderFor(catalog(), { onlyPassing: true });
  t.teardown(() => cache.close());
  t.deepEqual(datas((await ask(responder, 'web.service.consul', 'A')).answers), ['"10.0.0.1"']);
});

test('tags, RFC 2782 and the service address', async (t) => {
  const { responder, cache } = responderFor(catalog());
  t.teardown(() => cache.close());
  t.deepEqual(datas((await ask(responder, 'v1.web.service.consul', 'A')).answers), ['"10.0.0.1"']);
  const srv = await ask(responder, '_web._v2.service.consul', 'SRV');
  t.deepEqual(datas(srv.answers), [
    JSON.stringify({ priority: 1, weight: 1, port: 80, target: 'n2.node.dc1.consul' }),
  ]);
  t.deepEqual(datas(srv.additionals), ['"10.0.0.2"']);
  t.deepEqual(datas((await ask(responder, 'api.service.consul', 'A')).answers), ['"192.168.0.6"']);
});

test('NXDOMAIN for an unknown service or one with no healthy instance; NODATA for a missing family', async (t) => {
  const { responder, cache } = responderFor(catalog());
  t.teardown(() => cache.close());
  for (const name of ['nope.service.consul', 'down.service.consul', 'web.service.dc2.consul', 'x.consul']) {
    const r = await ask(responder, name, 'A');
    t.is(r.rcode, 'NXDOMAIN', name);
    t.deepEqual(
      r.authorities.map((a) => a.type),
      ['SOA'],
      name,
    );
  }
  const nodata = await ask(responder, 'web.service.consul', 'AAAA');
  t.is(nodata.rcode, 'NOERROR');
  t.deepEqual(nodata.answers, []);
  t.deepEqual(
    nodata.authorities.map((a) => [a.type, a.name]),
    [['SOA', 'consul']],
  );
  const six = await ask(responder, 'six.service.consul', 'AAAA');
  t.deepEqual(datas(six.answers), ['"fd00::5"']);
});

test('node lookups: A, TXT metadata, NXDOMAIN when unknown, nothing for other types', async (t) => {
  const { responder, cache } = responderFor(catalog());
  t.teardown(() => cache.close());
  const a = await ask(responder, 'n1.node.consul', 'A');
  t.deepEqual(datas(a.answers), ['"10.0.0.1"']);
  t.deepEqual(datas(a.additionals), [JSON.stringify([Buffer.from('rack=r1')])]);
  const txt = await ask(responder, 'n1.node.dc1.consul', 'TXT');
  t.deepEqual(
    txt.answers.map((r) => r.type),
    ['TXT'],
  );
  const unknown = await ask(responder, 'ghost.node.consul', 'A');
  t.is(unknown.rcode, 'NXDOMAIN');
  const mx = await ask(responder, 'n1.node.consul', 'MX');
  t.is(mx.rcode, 'NOERROR');
  t.deepEqual([mx.answers, mx.authorities], [[], []]);
});

test('addr lookups, SOA and NS for any name in the domain, AXFR refused as NOTIMP', async (t) => {
  const cat = catalog();
  register(cat, { node: 'srv1', address: '10.0.1.1', service: 'consul', port: 8300, status: 'passing' });
  const { responder, cache } = responderFor(cat);
  t.teardown(() => cache.close());
  t.deepEqual(datas((await ask(responder, '0a000001.addr.consul', 'A')).answers), ['"10.0.0.1"']);
  const soa = await ask(responder, 'consul', 'SOA');
  t.is(soa.answers[0].type, 'SOA');
  t.like((soa.answers[0] as { data: object }).data, { mname: 'ns.consul', rname: 'hostmaster.consul' });
  t.deepEqual(datas(soa.authorities), ['"srv1.node.dc1.consul"']);
  t.deepEqual(datas(soa.additionals), ['"10.0.1.1"']);
  const ns = await ask(responder, 'web.service.consul', 'NS');
  t.deepEqual(datas(ns.answers), ['"srv1.node.dc1.consul"']);
  t.is(ns.answers[0].name, 'consul');
  t.is((await ask(responder, 'consul', 'AXFR')).rcode, 'NOTIMP');
});

test('alt domain: answers and SOA carry the alt domain', async (t) => {
  const { responder, cache } = responderFor(catalog());
  t.teardown(() => cache.close());
  const r = await ask(responder, 'web.service.alt.test', 'SRV');
  t.true(datas(r.answers).every((d) => d.includes('.node.dc1.alt.test')));
  const nx = await ask(responder, 'nope.service.alt.test', 'A');
  t.is(nx.authorities[0].name, 'alt.test');
});

test('PTR for a node address; outside the domains REFUSED without recursors', async (t) => {
  const { responder, cache } = responderFor(catalog());
  t.teardown(() => cache.close());
  const ptr = await ask(responder, '1.0.0.10.in-addr.arpa', 'PTR');
  t.deepEqual(datas(ptr.answers), ['"n1.node.dc1.consul"']);
  const none = await ask(responder, '9.9.9.10.in-addr.arpa', 'PTR');
  t.is(none.rcode, 'NXDOMAIN');
  const out = await ask(responder, 'example.com', 'A');
  t.is(out.rcode, 'REFUSED');
  t.false(out.aa);
});

test('TTLs come from node_ttl and service_ttl', async (t) => {
  const { responder, cache } = responderFor(catalog(), { nodeTtlMs: 30_000, serviceTtlMs: { 'w*': 7_000 } });
  t.teardown(() => cache.close());
  const svc = await ask(responder, 'web.service.consul', 'A');
  t.true(svc.answers.every((a) => (a as { ttl: number }).ttl === 7));
  const n = await ask(responder, 'n1.node.consul', 'A');
  t.is((n.answers[0] as { ttl: number }).ttl, 30);
});

test('each answer is shuffled by the rng', async (t) => {
  const cat = new MemoryCatalog();
  for (let i = 1; i <= 6; i++)
    register(cat, { node: `m${i}`, address: `10.1.0.${i}`, service: 'many', status: 'passing' });
  let seed = 1;
  const rng = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  const { responder, cache } = responderFor(cat, {}, { rng });
  t.teardown(() => cache.close());
  const orders = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const r = await ask(responder, 'many.service.consul', 'A', { edns: 4096 });
    t.is(r.answers.length, 6);
    orders.add(r.answers.map((a) => (a as { data: string }).data).join(','));
  }
  t.true(orders.size > 1);
});

test('UDP truncation: 3 answers and TC only with enable_truncate; EDNS0 size respected; TCP gets all', async (t) => {
  const cat = new MemoryCatalog();
  for (let i = 1; i <= 40; i++)
    register(cat, { node: `node-${i}`, address: `10.2.0.${i}`, service: 'big', status: 'passing' });
  const plain = responderFor(cat);
  const truncating = responderFor(cat, { enableTruncate: true });
  t.teardown(() => {
    plain.cache.close();
    truncating.cache.close();
  });
  const quiet = await ask(plain.responder, 'big.service.consul', 'A');
  t.is(quiet.answers.length, 3);
  t.false(quiet.tc, 'Consul sets TC only with enable_truncate');
  const tc = await ask(truncating.responder, 'big.service.consul', 'A');
  t.is(tc.answers.length, 3);
  t.true(tc.tc);
  const srv = await ask(truncating.responder, 'big.service.consul', 'SRV', { edns: 1024 });
  t.true(srv.tc);
  t.true(srv.raw.length <= 1024, `${srv.raw.length} bytes for a 1024-byte buffer`);
  t.true(srv.answers.length > 3 && srv.answers.length < 40);
  t.is(srv.additionals.length, srv.answers.length, 'one A record per SRV target left');
  const tcp = await ask(truncating.responder, 'big.service.consul', 'SRV', { transport: 'tcp' });
  t.is(tcp.answers.length, 40);
  t.false(tcp.tc);
});

test('encodeMessage (records encoded once, reused) decodes as dns-packet encodes, owner names compressed', async (t) => {
  const { encodeMessage, messageLength } = await import('../../src/api/dns/wire.ts');
  const dnsPacket = (await import('dns-packet')).default;
  const rr: Answer = { type: 'A', name: 'web.service.consul', ttl: 5, class: 'IN', data: '10.0.0.1' };
  const p = {
    type: 'response' as const,
    id: 7,
    flags: 0x0400 | 3,
    questions: [{ type: 'A' as const, name: 'web.service.consul', class: 'IN' as const }],
    answers: [rr, rr],
    authorities: [],
    additionals: [{ type: 'TXT', name: 'n.node.dc1.consul', ttl: 0, class: 'IN', data: ['a=b'] } as Answer],
  };
  const out = encodeMessage(p);
  t.deepEqual(dnsPacket.decode(out), dnsPacket.decode(dnsPacket.encode(p)));
  // Both answers name the question: each saves its 20-byte name for a 2-byte pointer.
  t.is(out.length, dnsPacket.encodingLength(p) - 2 * 18);
  t.is(messageLength(p), out.length);
  t.is(out.readUInt16BE(12 + 24), 0xc00c, 'the first answer points at the question name');
  // A question asked in other case still matches, and the answer keeps the asked case (Consul too).
  const mixed = { ...p, questions: [{ ...p.questions[0], name: 'WEB.Service.consul' }] };
  const decoded = dnsPacket.decode(encodeMessage(mixed));
  t.is(decoded.answers?.[0].name, 'WEB.Service.consul');
  t.is(decoded.additionals?.[0].name, 'n.node.dc1.consul');
});

test('encodeMessage: the additional records of an SRV answer point at the targets written before them', async (t) => {
  const { encodeMessage, messageLength } = await import('../../src/api/dns/wire.ts');
  const dnsPacket = (await import('dns-packet')).default;
  const srvAnswer = (n: number) => {
    const targets = Array.from({ length: n }, (_, i) => `web-${i}.node.dc1.consul.`);
    return {
      type: 'response' as const,
      id: 9,
      flags: 0x0400,
      questions: [{ type: 'SRV' as const, name: 'web.service.consul', class: 'IN' as const }],
      answers: targets.map(
        (target) =>
          ({
            type: 'SRV',
            name: 'web.service.consul',
            ttl: 0,
            class: 'IN',
            data: { priority: 1, weight: 1, port: 80, target },
          }) as Answer,
      ),
      authorities: [],
      additionals: [
        ...targets.map(
          (name, i) =>
            ({ type: 'A', name, ttl: 0, class: 'IN', data: `10.0.${i >> 8}.${i & 255}` }) as Answer,
        ),
        { type: 'OPT', name: '.', udpPayloadSize: 4096 } as unknown as Answer,
      ],
    };
  };
  const p = srvAnswer(3);
  const out = encodeMessage(p);
  t.deepEqual(dnsPacket.decode(out), dnsPacket.decode(dnsPacket.encode(p)));
  t.is(messageLength(p), out.length);
  // Each answer's owner points at the question (20 → 2 bytes), each extra's at its target (23 → 2).
  t.is(out.length, dnsPacket.encodingLength(p) - 3 * 18 - 3 * 21);
  // Past 16 KiB a pointer cannot reach: a TCP-sized answer still decodes to the same records.
  const big = srvAnswer(1_000);
  const bigOut = encodeMessage(big);
  t.true(bigOut.length > 0x4000);
  t.deepEqual(dnsPacket.decode(bigOut), dnsPacket.decode(dnsPacket.encode(big)));
  t.is(messageLength(big), bigOut.length);
});
