/** The agent-side DNS cache: warm reads skip the backend, blocking queries keep entries fresh. */

import test from 'ava';
import type { ReadOptions } from '../../src/agent/backend.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import { CatalogCache } from '../../src/api/dns/cache.ts';
import type { QueryArgs, QueryName } from '../../src/catalog/queries.ts';
import { waitFor } from '../support/agent-process.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';
import { register } from './helpers.ts';

/** A MemoryCatalog that counts reads and how many are parked right now. */
class CountingCatalog extends MemoryCatalog {
  reads: ReadOptions[] = [];
  parked = 0;
  failNext = 0;
  override async read<N extends QueryName>(name: N, args: QueryArgs<N>, opts: ReadOptions) {
    this.reads.push(opts);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('no leader');
    }
    this.parked++;
    try {
      return await super.read(name, args, opts);
    } finally {
      this.parked--;
    }
  }
}

test('a warm read does not call the backend; a change arrives through the blocking query', async (t) => {
  const cat = new CountingCatalog();
  register(cat, { node: 'n1', address: '10.0.0.1', service: 'web', status: 'passing' });
  const cache = new CatalogCache(cat, silentLogger(), { maxStaleMs: 5_000 });
  t.teardown(() => cache.close());
  const first = await cache.get('health.service', { service: 'web' });
  t.is(first.length, 1);
  t.is(cat.reads[0].consistency, 'stale', 'allow_stale reads any server');
  t.is(cat.reads[0].maxStaleMs, 5_000);
  await waitFor('the refresh query to park', () => cat.parked === 1);
  const readsWhenWarm = cat.reads.length;
  for (let i = 0; i < 20; i++) t.is((await cache.get('health.service', { service: 'web' })).length, 1);
  t.is(cat.reads.length, readsWhenWarm, 'twenty warm reads, no backend call');
  t.true(cat.reads[readsWhenWarm - 1].minIndex > 0, 'the parked read blocks on the index it has');
  t.is(cache.stats.hits, 20);

  register(cat, { node: 'n2', address: '10.0.0.2', service: 'web', status: 'passing' });
  await waitFor(
    'the new instance in the cache',
    async () => (await cache.get('health.service', { service: 'web' })).length === 2,
  );
});

test('entries unused for idleMs are dropped and their blocking query aborted', async (t) => {
  const cat = new CountingCatalog();
  const cache = new CatalogCache(cat, silentLogger(), { idleMs: 100 });
  t.teardown(() => cache.close());
  await cache.get('catalog.node', { node: 'ghost' });
  await waitFor('the refresh query to park', () => cat.parked === 1);
  t.is(cache.size, 1);
  await waitFor('the idle entry to go', () => cache.size === 0 && cat.parked === 0);
  t.pass();
});

test('the cache is bounded: the least recently used entry goes first', async (t) => {
  const cat = new CountingCatalog();
  // Use is recorded to the second: each read here comes a second after the one before.
  let clock = 0;
  const cache = new CatalogCache(cat, silentLogger(), { maxEntries: 2, now: () => (clock += 1_000) });
  t.teardown(() => cache.close());
  await cache.get('health.service', { service: 'a' });
  await cache.get('health.service', { service: 'b' });
  await cache.get('health.service', { service: 'a' }); // a is now the most recent
  await cache.get('health.service', { service: 'c' });
  t.is(cache.size, 2);
  const before = cat.reads.length;
  await cache.get('health.service', { service: 'a' });
  t.is(cat.reads.length, before, 'a stayed cached');
  await cache.get('health.service', { service: 'b' });
  t.true(cat.reads.length > before, 'b was evicted and fetched again');
});

test('within a second a read does not reorder the eviction queue', async (t) => {
  const cat = new CountingCatalog();
  const clock = 5_000;
  const cache = new CatalogCache(cat, silentLogger(), { maxEntries: 2, now: () => clock });
  t.teardown(() => cache.close());
  await cache.get('health.service', { service: 'a' });
  await cache.get('health.service', { service: 'b' });
  await cache.get('health.service', { service: 'a' }); // same second: a stays the oldest
  await cache.get('health.service', { service: 'c' });
  const before = cat.reads.length;
  await cache.get('health.service', { service: 'b' });
  t.is(cat.reads.length, before, 'b stayed cached');
  await cache.get('health.service', { service: 'a' });
  t.true(cat.reads.length > before, 'a went first');
});

test('a failed first fetch rejects and the next question tries again', async (t) => {
  const cat = new CountingCatalog();
  register(cat, { node: 'n1', address: '10.0.0.1', service: 'web' });
  const cache = new CatalogCache(cat, silentLogger());
  t.teardown(() => cache.close());
  cat.failNext = 1;
  await t.throwsAsync(cache.get('health.service', { service: 'web' }), { message: 'no leader' });
  t.is((await cache.get('health.service', { service: 'web' })).length, 1);
});

test('allow_stale false reads through the leader; a reload switches the reads that follow', async (t) => {
  const cat = new CountingCatalog();
  register(cat, { node: 'n1', address: '10.0.0.1', service: 'web', status: 'passing' });
  register(cat, { node: 'n2', address: '10.0.0.2', service: 'api', status: 'passing' });
  const cache = new CatalogCache(cat, silentLogger(), { allowStale: false });
  t.teardown(() => cache.close());
  await cache.get('health.service', { service: 'web' });
  t.is(cat.reads[0].consistency, 'default');
  cache.setStale(true, 2_000);
  await cache.get('health.service', { service: 'api' });
  const last = cat.reads.at(-1);
  t.is(last?.consistency, 'stale');
  t.is(last?.maxStaleMs, 2_000);
});
