/**
 * The membership rules of the SWIM core, one at a time, with messages passed by hand: incarnation
 * precedence, refutation, suspicion timing and confirmations, awareness, the transmit limit,
 * conflicts, force-leave, reaping, transport hints and join acknowledgements.
 */

import test from 'ava';
import { Awareness } from '../../src/agent/gossip/core/awareness.ts';
import { BroadcastQueue } from '../../src/agent/gossip/core/broadcast-queue.ts';
import { LAN, pushPullInterval, retransmitLimit, swimProfile } from '../../src/agent/gossip/core/config.ts';
import { Suspicion, suspicionBounds, suspicionTimeout } from '../../src/agent/gossip/core/suspicion.ts';
import { Swim } from '../../src/agent/gossip/core/swim.ts';
import type { GossipMessage, Update } from '../../src/agent/gossip/core/types.ts';
import { Prng } from '../support/prng.ts';

function swim(name: string, now = 0, seed = 1): Swim {
  const rng = new Prng(seed);
  return new Swim({
    self: { name, id: `id-${name}`, addr: `${name}:8301`, meta: { role: 'node' } },
    config: { ...LAN },
    random: () => rng.next(),
    now,
  });
}

const alive = (name: string, inc: number, id = `id-${name}`): Update => ({
  kind: 'alive',
  name,
  id,
  addr: `${name}:8301`,
  meta: { role: 'node' },
  inc,
});

const gossip = (from: string, updates: Update[]): GossipMessage => ({
  type: 'gossip',
  from: { name: from, addr: `${from}:8301` },
  updates,
});

const status = (s: Swim, name: string) => s.members().find((m) => m.name === name)?.status;
const inc = (s: Swim, name: string) => s.members().find((m) => m.name === name)?.incarnation;

test('suspicion timeout: starts at max, reaches min after k confirmations, never below', (t) => {
  const b = suspicionBounds(4, 6, 10, 1_000);
  t.deepEqual(b, { minMs: 4_000, maxMs: 24_000, k: 2 });
  t.is(suspicionTimeout(b, 0), 24_000);
  t.true(suspicionTimeout(b, 1) < 24_000 && suspicionTimeout(b, 1) > 4_000);
  t.is(suspicionTimeout(b, 2), 4_000);
  t.is(suspicionTimeout(b, 10), 4_000);
  t.is(suspicionBounds(4, 6, 1, 1_000).minMs, 4_000, 'log10 scale floors at 1');
  t.is(suspicionBounds(4, 6, 1_000, 1_000).minMs, 12_000);
  // Three members: only one can confirm, so none is expected and the minimum applies at once.
  t.is(suspicionBounds(4, 6, 3, 1_000).k, 0);
  t.is(suspicionTimeout(suspicionBounds(4, 6, 3, 1_000), 0), 4_000);
  t.is(suspicionBounds(4, 6, 4, 1_000).k, 2, 'four members: two others can confirm');
  const s = new Suspicion(100, b, 3, 'a');
  t.false(s.confirm('a'), 'the accuser does not confirm itself');
  t.true(s.confirm('b'));
  t.false(s.confirm('b'), 'one confirmation per member');
  t.is(s.confirmations, 1);
  t.is(s.deadline(), 100 + suspicionTimeout(b, 1));
});

test('awareness scales timeouts within [1, max] and the profiles and scaling follow memberlist', (t) => {
  const a = new Awareness(8);
  t.is(a.scale(500), 500);
  a.apply(3);
  t.is(a.scale(500), 2_000);
  a.apply(100);
  t.is(a.score, 7);
  a.apply(-100);
  t.is(a.score, 0);
  t.is(swimProfile('wan').probeIntervalMs, 5_000);
  t.is(swimProfile('local').probeTimeoutMs, 200);
  t.is(swimProfile('lan').reconnectTimeoutMs, 72 * 3_600_000);
  t.is(pushPullInterval(30_000, 32), 30_000);
  t.is(pushPullInterval(30_000, 64), 60_000);
  t.is(retransmitLimit(4, 9), 4);
  t.is(retransmitLimit(4, 10), 8);
});

test('the broadcast queue sends each update a limited number of times, least-sent first, each time to a new recipient; newer replaces older', (t) => {
  const q = new BroadcastQueue<Update>((u) => u.name);
  q.enqueue(alive('a', 1));
  q.enqueue(alive('b', 1));
  q.enqueue(alive('a', 2));
  t.is(q.size, 2);
  const take = (max: number, limit: number, to: string) => q.take(to, { max, limit }).items;
  const first = take(1, 2, 'p');
  t.is(first.length, 1);
  const second = take(1, 2, 'q');
  t.not(first[0].name, second[0].name, 'the unsent one goes next');
  t.deepEqual(take(5, 2, 'p'), [second[0]], 'p already had the first one: only the other');
  t.deepEqual(take(5, 2, 'p'), [], 'nothing new for p');
  t.deepEqual(take(5, 2, 'r'), [first[0]]);
  t.is(q.size, 0, 'each was sent to two recipients: gone');
  q.enqueue(alive('a', 3));
  t.deepEqual(take(5, 3, 'p'), [alive('a', 3)], 'a newer version goes to a recipient of the older one');
  // In a small cluster one recipient may get an update more than once (perRecipient), up to the limit.
  const small = new BroadcastQueue<Update>((u) => u.name);
  small.enqueue(alive('a', 1));
  const twice = (to: string) => small.take(to, { max: 5, limit: 4, perRecipient: 2 }).items.length;
  t.deepEqual([twice('p'), twice('p'), twice('p')], [1, 1, 0], 'p gets it twice, not a third time');
  t.deepEqual([twice('q'), twice('q')], [1, 1], 'q twice too');
  t.is(small.size, 0, 'four transmissions: gone');
});

test('incarnations: alive overrides suspect only when newer; stale updates and unknown members are dropped and counted', (t) => {
  const s = swim('me');
  s.receive(gossip('x', [alive('x', 1)]), 0);
  t.is(status(s, 'x'), 'alive');
  s.receive(gossip('y', [{ kind: 'suspect', name: 'x', inc: 1, by: 'y' }]), 10);
  t.is(status(s, 'x'), 'suspect');
  s.receive(gossip('x', [alive('x', 1)]), 20);
  t.is(status(s, 'x'), 'suspect', 'same incarnation does not clear a suspicion');
  s.receive(gossip('x', [alive('x', 2)]), 30);
  t.is(status(s, 'x'), 'alive');
  s.receive(gossip('y', [{ kind: 'suspect', name: 'x', inc: 1, by: 'y' }]), 40);
  t.is(status(s, 'x'), 'alive', 'a suspicion of an older incarnation is stale');
  s.receive(gossip('y', [{ kind: 'dead', name: 'ghost', inc: 9, by: 'y' }]), 50);
  t.is(status(s, 'ghost'), undefined);
  const stats = s.stats();
  t.true(stats['dropped.stale'] >= 2);
  t.is(stats['dropped.unknown'], 1);
  const events = s
    .drain()
    .events.map((e) =>
      e.type === 'join-ack' || e.type === 'conflict' ? e.type : `${e.type}:${e.member.name}`,
    );
  t.deepEqual(events, ['join:x', 'suspect:x', 'alive:x']);
});

test('a member suspected or declared failed refutes with a higher incarnation, broadcast', (t) => {
  const s = swim('me');
  s.drain();
  s.receive(gossip('y', [{ kind: 'suspect', name: 'me', inc: 1, by: 'y' }]), 0);
  t.is(inc(s, 'me'), 2);
  t.is(status(s, 'me'), 'alive');
  let { broadcasts } = s.drain();
  t.like(broadcasts[0].updates[0], { kind: 'alive', name: 'me', inc: 2 });
  t.is(s.stats().awareness, 1, 'refuting raises awareness');
  s.receive(gossip('y', [{ kind: 'dead', name: 'me', inc: 5, by: 'y' }]), 10);
  t.is(inc(s, 'me'), 6);
  ({ broadcasts } = s.drain());
  t.like(broadcasts[0].updates[0], { kind: 'alive', name: 'me', inc: 6 });
  s.receive(gossip('y', [{ kind: 'left', name: 'me', inc: 6 }]), 20);
  t.is(inc(s, 'me'), 7, 'a force-leave of a live member is refuted too');
});

test('a probe without ack goes indirect, then suspects; the suspicion fires after its timeout and is confirmed faster', (t) => {
  const s = swim('me');
  for (const n of ['a', 'b', 'c', 'd']) s.receive(gossip(n, [alive(n, 1)]), 0);
  s.drain();
  // Run the clock until the first probe goes out.
  let now = 0;
  let ping: GossipMessage | undefined;
  while (!ping) {
    now = s.nextDeadline();
    s.tick(now);
    ping = s.drain().messages.find((m) => m.message.type === 'ping')?.message;
  }
  const target = (ping as Extract<GossipMessage, { type: 'ping' }>).target;
  now += LAN.probeTimeoutMs;
  s.tick(now);
  const reqs = s.drain().messages.filter((m) => m.message.type === 'ping-req');
  t.is(reqs.length, 3, 'IndirectChecks ping-reqs');
  t.false(reqs.some((r) => r.to === `${target}:8301`));
  now += LAN.probeIntervalMs;
  s.tick(now);
  t.is(status(s, target), 'suspect');
  const out = s.drain();
  t.true(out.broadcasts.some((b) => b.updates.some((u) => u.kind === 'suspect' && u.name === target)));
  t.is(s.stats().awareness, 3, 'three missing nacks');
  // Two independent confirmations bring the timeout down to the minimum.
  const b = suspicionBounds(4, 6, 5, LAN.probeIntervalMs);
  const others = ['a', 'b', 'c', 'd'].filter((n) => n !== target);
  s.receive(gossip(others[0], [{ kind: 'suspect', name: target, inc: 1, by: others[0] }]), now);
  s.receive(gossip(others[1], [{ kind: 'suspect', name: target, inc: 1, by: others[1] }]), now);
  s.tick(now + b.minMs - 1);
  t.is(status(s, target), 'suspect');
  s.tick(now + b.minMs);
  t.is(status(s, target), 'failed');
  t.true(s.drain().events.some((e) => e.type === 'failed'));
});

test('our own failed probe of a member someone else suspects confirms it, and spreads the confirmation', (t) => {
  const s = swim('me');
  for (const n of ['a', 'b', 'c', 'd']) s.receive(gossip(n, [alive(n, 1)]), 0);
  s.receive(gossip('b', [{ kind: 'suspect', name: 'a', inc: 1, by: 'b' }]), 0);
  t.is(status(s, 'a'), 'suspect');
  s.drain();
  // Members other than `a` answer every probe; `a` answers nothing.
  let now = 0;
  let confirmation: Update | undefined;
  while (!confirmation && now < 10_000) {
    now = s.nextDeadline();
    s.tick(now);
    const out = s.drain();
    for (const m of out.messages) {
      if (m.message.type !== 'ping' || m.message.target === 'a') continue;
      const from = m.message.target;
      s.receive(
        { type: 'ack', seq: m.message.seq, from: { name: from, addr: `${from}:8301` }, updates: [] },
        now,
      );
    }
    confirmation = out.broadcasts
      .flatMap((b) => b.updates)
      .find((u) => u.kind === 'suspect' && u.name === 'a');
  }
  t.like(confirmation, { kind: 'suspect', name: 'a', inc: 1, by: 'me' }, 'broadcast as our own suspicion');
  t.is(s.stats().confirmations, 1);
  // One confirmation (of k = 2 expected) cuts the timeout from its maximum.
  const b = suspicionBounds(4, 6, 5, LAN.probeIntervalMs);
  const deadline = suspicionTimeout(b, 1);
  t.true(deadline < b.maxMs);
  s.tick(deadline - 1);
  t.is(status(s, 'a'), 'suspect');
  s.tick(deadline);
  t.is(status(s, 'a'), 'failed');
});

test('an acked probe clears; a ping-req is relayed and answered by ack or nack', (t) => {
  const s = swim('me');
  s.receive(gossip('a', [alive('a', 1)]), 0);
  s.receive(gossip('r', [alive('r', 1)]), 0);
  s.drain();
  s.receive(
    {
      type: 'ping-req',
      seq: 77,
      target: 'a',
      targetAddr: 'a:8301',
      from: { name: 'r', addr: 'r:8301' },
      updates: [],
    },
    0,
  );
  const relayed = s.drain().messages[0];
  t.is(relayed.to, 'a:8301');
  const seq = (relayed.message as { seq: number }).seq;
  s.receive({ type: 'ack', seq, from: { name: 'a', addr: 'a:8301' }, updates: [] }, 5);
  t.like(s.drain().messages[0], { to: 'r:8301', message: { type: 'ack', seq: 77 } });
  s.receive(
    {
      type: 'ping-req',
      seq: 78,
      target: 'a',
      targetAddr: 'a:8301',
      from: { name: 'r', addr: 'r:8301' },
      updates: [],
    },
    10,
  );
  s.drain();
  s.tick(10 + LAN.probeTimeoutMs);
  t.like(s.drain().messages[0], { to: 'r:8301', message: { type: 'nack', seq: 78 } });
  // A ping for another name (a reused address) is ignored.
  s.receive(
    { type: 'ping', seq: 1, target: 'someone-else', from: { name: 'a', addr: 'a:8301' }, updates: [] },
    20,
  );
  t.deepEqual(s.drain().messages, []);
});

test('name conflicts: the member already known keeps the name while alive; a failed one is replaced', (t) => {
  const s = swim('me');
  s.receive(gossip('x', [alive('x', 1, 'id-one')]), 0);
  s.drain();
  s.receive(gossip('z', [alive('x', 5, 'id-two')]), 1);
  t.is(s.members().find((m) => m.name === 'x')?.id, 'id-one');
  const conflict = s.drain().events.find((e) => e.type === 'conflict');
  t.like(conflict, { type: 'conflict', other: { name: 'x', id: 'id-two' } });
  s.receive(gossip('z', [{ kind: 'dead', name: 'x', inc: 1, by: 'z' }]), 2);
  s.receive(gossip('z', [alive('x', 1, 'id-two')]), 3);
  t.is(s.members().find((m) => m.name === 'x')?.id, 'id-two');
  t.is(status(s, 'x'), 'alive');
  // Someone else claiming our own name is a conflict, not a refutation.
  s.drain();
  s.receive(gossip('z', [alive('me', 9, 'id-impostor')]), 4);
  t.is(inc(s, 'me'), 1);
  t.true(s.drain().events.some((e) => e.type === 'conflict'));
});

test('force-leave turns a failed member left (prune forgets it); an alive member is untouched; reaping after the timeouts', (t) => {
  const s = swim('me');
  for (const n of ['a', 'b', 'c']) s.receive(gossip(n, [alive(n, 1)]), 0);
  s.receive(gossip('c', [{ kind: 'dead', name: 'a', inc: 1, by: 'c' }]), 0);
  t.true(s.forceLeave('a', 1, false));
  t.is(status(s, 'a'), 'left');
  t.true(s.forceLeave('b', 1, false));
  t.is(status(s, 'b'), 'alive');
  t.false(s.forceLeave('nobody', 1, false));
  s.receive(gossip('c', [{ kind: 'dead', name: 'b', inc: 1, by: 'c' }]), 2);
  t.true(s.forceLeave('B', 3, true), 'names match case-insensitively');
  t.is(status(s, 'b'), undefined);
  // A left member is reaped after the tombstone timeout, a failed one after reconnect_timeout.
  s.receive(gossip('a', [alive('a', 2)]), 4);
  t.is(status(s, 'a'), 'alive', 'a left member that comes back newer is alive again');
  s.receive(gossip('c', [{ kind: 'left', name: 'a', inc: 2 }]), 5);
  s.tick(5 + LAN.tombstoneTimeoutMs + 1_000);
  t.is(status(s, 'a'), undefined);
  s.receive(gossip('d', [alive('d', 1)]), 0);
  s.receive(gossip('c', [{ kind: 'dead', name: 'd', inc: 1, by: 'c' }]), 10);
  const later = 10 + LAN.reconnectTimeoutMs - 5_000;
  s.tick(later);
  t.is(status(s, 'd'), 'failed');
  s.tick(later + 10_000);
  t.is(status(s, 'd'), undefined);
  t.true(s.drain().events.some((e) => e.type === 'reap' && e.member.name === 'd'));
});

test('a transport hint probes an alive member at once; leave broadcasts left and stops probing', (t) => {
  const s = swim('me');
  s.receive(gossip('a', [alive('a', 1)]), 0);
  s.receive(gossip('b', [alive('b', 1)]), 0);
  s.drain();
  s.hintUnreachable('a:8301', 1);
  t.like(s.drain().messages[0], { to: 'a:8301', message: { type: 'ping', target: 'a' } });
  // A second hint while that probe waits skips straight to indirect probes.
  s.hintUnreachable('a:8301', 2);
  t.true(s.drain().messages.every((m) => m.message.type === 'ping-req'));
  s.hintUnreachable('unknown:1', 3);
  t.deepEqual(s.drain().messages, []);
  s.leave(4);
  t.is(status(s, 'me'), 'left');
  t.like(s.drain().broadcasts[0].updates[0], { kind: 'left', name: 'me', inc: 2 });
  for (let now = 5; now < 10_000; now += 100) s.tick(now);
  t.false(s.drain().messages.some((m) => m.message.type === 'ping'));
});

test('join: push-pull to the seed, whose answer merges its members and acknowledges the join', (t) => {
  const seed = swim('seed');
  seed.receive(gossip('a', [alive('a', 1)]), 0);
  seed.drain();
  const joiner = swim('new', 0, 2);
  joiner.join(['seed:8301'], 0);
  const req = joiner.drain().messages[0];
  t.like(req, { to: 'seed:8301', message: { type: 'push-pull', join: true, reply: false } });
  seed.receive(req.message, 1);
  t.is(status(seed, 'new'), 'alive');
  const out = seed.drain();
  const reply = out.messages.find((m) => m.to === 'new:8301') as { message: GossipMessage };
  t.true(
    out.broadcasts.some((b) => b.updates.some((u) => u.name === 'new')),
    'the newcomer is broadcast',
  );
  joiner.receive(reply.message, 2);
  t.deepEqual(
    joiner
      .members()
      .map((m) => m.name)
      .sort(),
    ['a', 'new', 'seed'],
  );
  t.deepEqual(
    joiner.drain().events.find((e) => e.type === 'join-ack'),
    { type: 'join-ack', addr: 'seed:8301', members: 3 },
  );
});

test('gossip rounds go to random members, heard from directly or not; a probe goes indirect after the probe timeout, or at once on a hint', (t) => {
  const s = swim('me');
  // Ten members known only through a broadcast, one heard from directly: all are gossip targets.
  s.receive(
    gossip('b0', [...Array.from({ length: 10 }, (_, i) => alive(`m${i}`, 1)), alive('b0', 1)]),
    0,
    false,
  );
  s.receive(gossip('near', [alive('near', 1)]), 0);
  s.drain();
  const gossipTargets = new Set<string>();
  for (let now = 1_000; now < 5_000; now += LAN.gossipIntervalMs) {
    s.receive(gossip('near', [alive(`x${now}`, 1)]), now, false); // keeps the queue non-empty
    s.tick(now);
    for (const m of s.drain().messages) if (m.message.type === 'gossip') gossipTargets.add(m.to);
  }
  t.true(
    [...gossipTargets].some((a) => a.startsWith('m')),
    'members known only from a broadcast get gossip',
  );
  t.true(gossipTargets.size >= 10, `${gossipTargets.size} targets`);

  const p = swim('me');
  p.receive(gossip('b0', [alive('far', 1), alive('b0', 1)]), 0, false);
  p.drain();
  let pingAt = -1;
  for (let now = 0; now < 2_000 && pingAt < 0; now += 10) {
    p.tick(now);
    if (p.drain().messages.some((m) => m.message.type === 'ping')) pingAt = now;
  }
  t.true(pingAt >= 0, 'probed');
  p.tick(pingAt + LAN.probeTimeoutMs - 10);
  t.false(
    p.drain().messages.some((m) => m.message.type === 'ping-req'),
    'direct wait',
  );
  p.tick(pingAt + LAN.probeTimeoutMs);
  t.true(
    p.drain().messages.some((m) => m.message.type === 'ping-req'),
    'indirect probes go out at the probe timeout',
  );

  const h = swim('me');
  h.receive(gossip('b0', [alive('far', 1), alive('b0', 1)]), 0, false);
  h.drain();
  for (let now = 0; now < 2_000; now += 10) {
    h.tick(now);
    const ping = h.drain().messages.find((m) => m.message.type === 'ping');
    if (!ping) continue;
    h.hintUnreachable(ping.to, now + 20);
    t.true(
      h.drain().messages.some((m) => m.message.type === 'ping-req'),
      'a refused connection ends the direct wait: indirect probes go out at once',
    );
    break;
  }
});

test('piggybacked updates stay within the byte budget of one packet; one larger update goes alone', (t) => {
  const q = new BroadcastQueue<Update>((u) => u.name);
  const big = (name: string, bytes: number): Update => ({
    kind: 'alive',
    name,
    id: `id-${name}`,
    addr: `${name}:8301`,
    meta: { pad: 'x'.repeat(bytes) },
    inc: 1,
  });
  for (let i = 0; i < 20; i++) q.enqueue(big(`n${i}`, 200));
  const first = q.take('a', { max: 24, limit: 3, maxBytes: 1_000 });
  const size = first.items.reduce((sum, u) => sum + JSON.stringify(u).length + 1, 0);
  t.true(first.items.length >= 3 && size <= 1_000, `${first.items.length} updates, ${size} bytes`);
  t.is(first.bytes, size, 'take reports the bytes it took');
  const queueOfTwo = () => {
    const lone = new BroadcastQueue<Update>((u) => u.name);
    lone.enqueue(big('huge', 5_000));
    lone.enqueue(big('small', 10));
    return (oversizeAlone?: boolean) =>
      lone.take('a', { max: 24, limit: 3, maxBytes: 1_000, oversizeAlone }).items.map((u) => u.name);
  };
  const names = queueOfTwo();
  t.deepEqual(names(), ['huge'], 'an update over the budget is not starved: it goes on a message of its own');
  t.deepEqual(names(), ['small']);
  const waiting = queueOfTwo();
  t.deepEqual(waiting(false), ['small'], 'without oversizeAlone, one over the budget waits');
  t.deepEqual(waiting(false), [], 'and keeps waiting');
});

test('a member we do not know talking to us gets a push-pull unless it becomes known within 2 s; at most one per 5 s', (t) => {
  const s = swim('me');
  const pushPullsTo = (now: number) => {
    s.tick(now);
    return s
      .drain()
      .messages.filter((m) => m.message.type === 'push-pull')
      .map((m) => m.to);
  };
  s.receive(
    { type: 'ping', seq: 1, target: 'me', from: { name: 'ghost', addr: 'ghost:8301' }, updates: [] },
    0,
  );
  const out = s.drain().messages;
  t.true(out.some((m) => m.to === 'ghost:8301' && m.message.type === 'ack'));
  t.false(
    out.some((m) => m.message.type === 'push-pull'),
    'not at once: its join may be on its way',
  );
  t.true(s.nextDeadline() <= 2_000, 'wakes up when the grace ends');
  t.deepEqual(pushPullsTo(1_999), []);
  t.deepEqual(pushPullsTo(2_000), ['ghost:8301'], 'still unknown after 2 s');
  // Another stranger within 5 s of that push-pull: rate-limited.
  s.receive(
    { type: 'ping', seq: 2, target: 'me', from: { name: 'ghost2', addr: 'ghost2:8301' }, updates: [] },
    2_500,
  );
  t.deepEqual(pushPullsTo(4_500), [], 'rate-limited');
  // One that becomes known (its join's broadcast arrives) within its grace gets none.
  s.receive(
    { type: 'ping', seq: 3, target: 'me', from: { name: 'late', addr: 'late:8301' }, updates: [] },
    10_000,
  );
  s.receive(gossip('a', [alive('late', 1)]), 10_500, false);
  t.deepEqual(pushPullsTo(12_000), [], 'known by then');
  s.receive(
    { type: 'ping', seq: 4, target: 'me', from: { name: 'ghost3', addr: 'ghost3:8301' }, updates: [] },
    13_000,
  );
  t.deepEqual(pushPullsTo(15_000), ['ghost3:8301']);
  // A broadcast relayed from a member we do not know is no reason: it did not talk to us.
  s.receive(gossip('ghost4', []), 20_000, false);
  t.deepEqual(pushPullsTo(23_000), []);
  t.is(s.stats().stranger_push_pulls, 2);
});

test('an idle member sends no gossip and does not wake up for it: an update leaves the queue after its transmit limit', (t) => {
  const s = swim('me');
  s.receive(gossip('a', [alive('a', 1)]), 0);
  s.drain();
  let gossipSent = 0;
  for (let now = 0; now < 10_000; now += LAN.gossipIntervalMs) {
    s.tick(now);
    for (const m of s.drain().messages) {
      if (m.message.type === 'gossip') gossipSent++;
      else if (m.message.type === 'ping')
        s.receive(
          {
            type: 'ack',
            seq: (m.message as { seq: number }).seq,
            from: { name: 'a', addr: 'a:8301' },
            updates: [],
          },
          now,
        );
    }
  }
  // Two members: memberlist's limit of 4 transmissions, all to the one other member, then silence.
  t.true(gossipSent <= retransmitLimit(LAN.retransmitMult, 2), `${gossipSent} gossip messages in 10 s`);
  // Nor does it wake up for gossip rounds: the next deadline is the next probe (or later), not
  // the next gossip interval; an update queued brings the gossip round back at once.
  const now = 10_000;
  s.tick(now);
  s.drain();
  t.true(s.nextDeadline() > now + LAN.gossipIntervalMs, `next deadline in ${s.nextDeadline() - now} ms`);
  s.receive(gossip('a', [alive('b', 1)]), now);
  t.true(s.nextDeadline() <= now + LAN.gossipIntervalMs, 'a queued update is gossiped within an interval');
});

test("an idle member wakes up once per probe: not for an acked probe's timeout, nor to look for members to reap", (t) => {
  const s = swim('me');
  s.receive(gossip('a', [alive('a', 1), alive('d', 1)]), 0);
  s.receive(gossip('a', [{ kind: 'dead', name: 'd', inc: 1, by: 'a' }]), 0);
  t.is(status(s, 'd'), 'failed', 'a failed member waits out reconnect_timeout (72 h)');
  // Run as the agent does: wake up at the core's next deadline, every ping acked at once.
  const wakes: number[] = [];
  for (let now = 0; now < 10_000; now = s.nextDeadline()) {
    wakes.push(now);
    s.tick(now);
    for (const m of s.drain().messages) {
      if (m.message.type !== 'ping') continue;
      const ack: GossipMessage = {
        type: 'ack',
        seq: m.message.seq,
        from: { name: 'a', addr: 'a:8301' },
        updates: [],
      };
      s.receive(ack, now);
    }
  }
  // Once the updates are gossiped out, one wake-up per probe interval (1 s); with a wake-up at
  // each acked probe's timeout and a reap check every second it was three.
  const idle = wakes.filter((w) => w >= 5_000);
  t.true(idle.length <= 5_000 / LAN.probeIntervalMs + 1, `${idle.length} wake-ups in the last 5 s`);
});

test('user messages in a push-pull: delivered if the sender first heard them after we joined, handed on with their age; copies dropped', (t) => {
  const s = swim('me');
  s.receive(gossip('x', [alive('x', 1)]), 1_000); // knows a member from t=1000: "joined"
  s.drain();
  const pushPull = (recent: { body: string; ageMs: number }[]): GossipMessage => ({
    type: 'push-pull',
    seq: 9,
    join: false,
    reply: false,
    state: [alive('x', 1)],
    recent,
    from: { name: 'x', addr: 'x:8301' },
    updates: [],
  });
  s.receive(
    pushPull([
      { body: 'after-join', ageMs: 500 }, // first heard at 1500
      { body: 'before-join', ageMs: 1_500 }, // first heard at 500
    ]),
    2_000,
  );
  const out = s.drain();
  t.deepEqual(out.user, ['after-join'], 'the one fired before we joined is not replayed');
  const reply = out.messages.find((m) => m.message.type === 'push-pull')?.message;
  t.deepEqual(
    reply?.type === 'push-pull' ? reply.recent : undefined,
    [{ body: 'after-join', ageMs: 500 }],
    'handed on with its age from where it was first heard, not from its repair',
  );
  s.receive(gossip('x', []), 2_100);
  s.receive({ ...gossip('x', []), user: ['after-join', 'before-join', 'new'] }, 2_200);
  t.deepEqual(s.drain().user, ['new'], 'copies of either, by any path, are dropped');
  t.false(s.receiveUser('new', 2_300));
  t.true(s.sendUser('mine', 2_400));
  t.deepEqual(s.drain().user, [], 'our own message is not delivered back to us');
});

test('periodic push-pulls go to a connected member three times in four, else to any live member', (t) => {
  const targets = (connected?: (addr: string) => boolean) => {
    const rng = new Prng(7);
    const s = new Swim({
      self: { name: 'me', id: 'id-me', addr: 'me:8301', meta: { role: 'node' } },
      // No probes: every member stays alive; a push-pull every second.
      config: { ...LAN, probeIntervalMs: 1e12, pushPullIntervalMs: 1_000 },
      random: () => rng.next(),
      now: 0,
      connected,
    });
    s.receive(
      gossip(
        'm0',
        Array.from({ length: 20 }, (_, i) => alive(`m${i}`, 1)),
      ),
      0,
    );
    s.drain();
    const to: string[] = [];
    for (let now = 1_000; now <= 400_000; now += 1_000) {
      s.tick(now);
      for (const m of s.drain().messages) if (m.message.type === 'push-pull') to.push(m.to);
    }
    return to;
  };
  const held = new Set(['m3:8301', 'm11:8301']);
  const preferred = targets((addr) => held.has(addr));
  const share = preferred.filter((a) => held.has(a)).length / preferred.length;
  t.true(preferred.length >= 390, `${preferred.length} push-pulls`);
  // 3/4 to the two connected members, plus their 2/20 of the random rest.
  t.true(share > 0.7 && share < 0.85, `share to connected members ${share}`);
  t.true(new Set(preferred).size >= 15, 'the rest still reach the other members');
  // Without connection knowledge (the simulator), and with none held: any live member.
  const blind = targets();
  t.true(blind.filter((a) => held.has(a)).length / blind.length < 0.2);
  t.true(targets(() => false).length >= 390, 'nothing connected: push-pulls still go out');
});
