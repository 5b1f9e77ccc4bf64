/**
 * The UDP response cache (src/api/dns/response-cache.ts) on its own, then through the responder
 * with the agent cache: variants, IDs, versions, seconds, bounds, and what is never cached.
 */

import test from 'ava';
import { ResponseCache } from '../../src/api/dns/response-cache.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';
import { ask, baseConfig, datas, query, readReply, register, responderFor } from './helpers.ts';

/** A response: the query's ID, then `body` (what differs between variants). */
function response(id: number, body: string): Buffer {
  const b = Buffer.alloc(2 + body.length);
  b.writeUInt16BE(id, 0);
  b.write(body, 2, 'latin1');
  return b;
}

function clock(start = 10_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

test('a query is answered from the cache once its variants are in, in turn, each under its own ID', (t) => {
  const c = clock();
  const cache = new ResponseCache({ version: () => 1, now: c.now, variants: 3 });
  const q = query('web.service.consul', 'A', { id: 1 });
  for (const [i, body] of ['first', 'secnd', 'third'].entries()) {
    t.is(cache.get(q), undefined, `variant ${i} not in yet`);
    cache.put(q, response(1, body), 1);
  }
  const bodies: string[] = [];
  for (let id = 100; id < 106; id++) {
    const out = cache.get(query('web.service.consul', 'A', { id })) as Buffer;
    t.is(out.readUInt16BE(0), id);
    bodies.push(out.toString('latin1', 2));
  }
  t.deepEqual(bodies, ['first', 'secnd', 'third', 'first', 'secnd', 'third']);
  t.is(cache.stats.hits, 6);
});

test('an answer that is the same every time is complete with one response', (t) => {
  const cache = new ResponseCache({ version: () => 1, now: clock().now, variants: 8 });
  const q = query('n1.node.consul', 'A');
  cache.put(q, response(4242, 'same'), 1);
  t.is(cache.get(q), undefined);
  cache.put(q, response(4242, 'same'), 1);
  t.is(cache.get(q)?.toString('latin1', 2), 'same');
});

test('a new version, or the next second, makes a cached response stale; one computed under an old version is not kept', (t) => {
  const c = clock(10_400);
  let version = 1;
  const cache = new ResponseCache({ version: () => version, now: c.now, variants: 1 });
  const q = query('web.service.consul', 'A');
  cache.put(q, response(1, 'v1'), 1);
  t.is(cache.get(q)?.toString('latin1', 2), 'v1');
  version = 2;
  t.is(cache.get(q), undefined, 'the data changed');
  t.is(cache.size, 0);
  cache.put(q, response(1, 'v1 late'), 1);
  t.is(cache.size, 0, 'computed before the change: not kept');
  cache.put(q, response(1, 'v2'), 2);
  c.t = 10_999;
  t.is(cache.get(q)?.toString('latin1', 2), 'v2');
  c.t = 11_000;
  t.is(cache.get(q), undefined, 'the second it was made in is over (SOA serials are seconds)');
});

test('queries differing in anything but the ID are different entries; runts and long queries are never cached', (t) => {
  const cache = new ResponseCache({ version: () => 1, now: clock().now, variants: 1 });
  cache.put(query('web.service.consul', 'A'), response(1, 'a'), 1);
  t.is(cache.get(query('web.service.consul', 'AAAA')), undefined);
  t.is(cache.get(query('WEB.service.consul', 'A')), undefined, 'case is echoed, so it is part of the key');
  t.is(cache.get(query('web.service.consul', 'A', { edns: 4096 })), undefined);
  t.is(cache.get(query('web.service.consul', 'A', { id: 9 }))?.toString('latin1', 2), 'a');
  const runt = Buffer.alloc(11);
  cache.put(runt, response(0, 'x'), 1);
  t.is(cache.get(runt), undefined);
  const long = Buffer.concat([query('web.service.consul', 'A'), Buffer.alloc(600)]);
  cache.put(long, response(0, 'x'), 1);
  t.is(cache.get(long), undefined);
  t.is(cache.size, 1);
});

test('the byte bound evicts the oldest entries first', (t) => {
  const cache = new ResponseCache({ version: () => 1, now: clock().now, variants: 1, maxBytes: 300 });
  const names = ['a', 'b', 'c', 'd'].map((n) => query(`${n}.service.consul`, 'A'));
  for (const q of names) cache.put(q, response(1, 'x'.repeat(60)), 1);
  t.true(cache.size < 4);
  t.is(cache.get(names[0] as Buffer), undefined, 'the oldest went first');
  t.truthy(cache.get(names[3] as Buffer));
});

test('through the responder: a catalog change reaches the very next query', async (t) => {
  const cat = new MemoryCatalog();
  for (let i = 1; i <= 3; i++)
    register(cat, {
      node: `m${i}`,
      address: `10.1.0.${i}`,
      service: 'web',
      id: `web${i}`,
      status: 'passing',
    });
  // A clock that stands still: only the agent cache's version can make a cached answer stale.
  const { responder, cache } = responderFor(cat, {}, { version: () => cache.version, now: () => 10_000 });
  t.teardown(() => cache.close());
  const q = query('web.service.consul', 'A', { edns: 4096 });
  // The first answer's fetch moves the version, so it is not kept: 9 answers make 8 variants.
  for (let i = 0; i < 9; i++) await ask(responder, 'web.service.consul', 'A', { edns: 4096 });
  const hit = responder.cached(q);
  t.truthy(hit, 'warm after 9 answers');
  t.is(readReply(hit as Buffer).answers.length, 3);

  register(cat, { node: 'm1', address: '10.1.0.1', service: 'web', id: 'web1', status: 'critical' });
  // The agent cache's blocking query brings the change; from then on no cached answer is served.
  const deadline = Date.now() + 5_000;
  const answer = async () =>
    readReply(responder.cached(q) ?? (await ask(responder, 'web.service.consul', 'A', { edns: 4096 })).raw);
  while ((await answer()).answers.length !== 2) {
    if (Date.now() > deadline) return t.fail('the critical instance never left the answers');
    await new Promise((r) => setTimeout(r, 10));
  }
  for (let i = 0; i < 20; i++) t.false(datas((await answer()).answers).includes('"10.1.0.1"'));
  t.truthy(responder.cached(q), 'and the new answer is cached in turn');
});

test('through the responder: answers over TCP, from a recursor or SERVFAIL are not cached', async (t) => {
  const cat = new MemoryCatalog();
  register(cat, { node: 'm1', address: '10.1.0.1', service: 'web', status: 'passing' });
  const forwarded = Buffer.from(query('example.com', 'A'));
  const { responder, cache } = responderFor(
    cat,
    { recursors: [{ host: '127.0.0.1', port: 53 }] },
    { version: () => cache.version, forward: async () => forwarded },
  );
  t.teardown(() => cache.close());
  for (let i = 0; i < 10; i++) {
    await ask(responder, 'web.service.consul', 'A', { transport: 'tcp' });
    await ask(responder, 'example.com', 'A');
  }
  t.is(responder.cached(query('web.service.consul', 'A')), undefined);
  t.is(responder.cached(query('example.com', 'A')), undefined);
  for (let i = 0; i < 10; i++) await ask(responder, 'web.service.consul', 'A');
  t.truthy(responder.cached(query('web.service.consul', 'A')), 'the same question over UDP is');

  const failing = responderFor(
    cat,
    {},
    {
      version: () => 1,
      data: {
        serviceInstances: () => Promise.reject(new Error('no server')),
        node: () => Promise.reject(new Error('no server')),
        nodes: () => Promise.reject(new Error('no server')),
      },
    },
  );
  t.teardown(() => failing.cache.close());
  for (let i = 0; i < 10; i++)
    t.is((await ask(failing.responder, 'web.service.consul', 'A')).rcode, 'SERVFAIL');
  t.is(failing.responder.cached(query('web.service.consul', 'A')), undefined);
});

test('through the responder: a reloaded configuration applies to the very next query, cached or not', async (t) => {
  const cat = new MemoryCatalog();
  register(cat, { node: 'm1', address: '10.1.0.1', service: 'web', id: 'web1', status: 'passing' });
  register(cat, { node: 'm2', address: '10.1.0.2', service: 'web', id: 'web2', status: 'warning' });
  const { responder, cache } = responderFor(cat, {}, { version: () => cache.version, now: () => 10_000 });
  t.teardown(() => cache.close());
  const q = query('web.service.consul', 'A');
  for (let i = 0; i < 10; i++) await ask(responder, 'web.service.consul', 'A');
  const warm = responder.cached(q);
  t.truthy(warm);
  t.is(readReply(warm as Buffer).answers.length, 2, 'warning instances count unless only_passing');
  t.is((readReply(warm as Buffer).answers[0] as { ttl?: number }).ttl, 0);

  responder.reconfigure({ ...baseConfig, onlyPassing: true, serviceTtlMs: { '*': 30_000 } });
  t.is(responder.cached(q), undefined, 'nothing computed under the old configuration is served');
  const next = await ask(responder, 'web.service.consul', 'A');
  t.deepEqual(datas(next.answers), ['"10.1.0.1"']);
  t.is((next.answers[0] as { ttl?: number }).ttl, 30);
  for (let i = 0; i < 10; i++) await ask(responder, 'web.service.consul', 'A');
  t.deepEqual(datas(readReply(responder.cached(q) as Buffer).answers), ['"10.1.0.1"'], 'then cached anew');
});
