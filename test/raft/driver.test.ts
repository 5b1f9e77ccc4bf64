import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { silentLogger } from '../../src/agent/logger.ts';
import { RaftNode } from '../../src/raft/driver.ts';
import { NotLeaderError } from '../../src/raft/errors.ts';
import { GrpcTransport } from '../../src/raft/grpc-transport.ts';
import { encodeKvCommand, type KvResult, KvStateMachine } from '../../src/raft/kv-fsm.ts';
import { LevelRaftStorage } from '../../src/raft/level-storage.ts';
import type { Configuration } from '../../src/raft/types.ts';
import { freePort } from '../support/agent-process.ts';
import { waitFor } from '../support/raft-cluster.ts';

interface Member {
  id: string;
  address: string;
  node: RaftNode<KvResult>;
  fsm: KvStateMachine;
  storage: LevelRaftStorage;
}

/** In-process servers with real LevelDB stores and gRPC transports on 127.0.0.x. */
class InProcessCluster {
  readonly members: Member[] = [];
  private readonly root: string;
  /** Server n's port on 127.0.0.n, picked free by the kernel (a random fixed range collided). */
  private readonly ports = new Map<number, number>();

  private constructor(root: string) {
    this.root = root;
  }

  static async start(size: number): Promise<InProcessCluster> {
    const c = new InProcessCluster(await mkdtemp(join(tmpdir(), 'meshd-driver-')));
    for (let n = 1; n <= size; n++) await c.reservePort(n);
    const config: Configuration = {
      servers: Array.from({ length: size }, (_, i) => ({
        id: `d${i + 1}`,
        address: c.addr(i + 1),
        suffrage: 'voter',
      })),
    };
    await Promise.all(config.servers.map((_, i) => c.add(i + 1, config)));
    return c;
  }

  private async reservePort(n: number): Promise<void> {
    if (!this.ports.has(n)) this.ports.set(n, await freePort(`127.0.0.${n}`));
  }

  addr(n: number): string {
    return `127.0.0.${n}:${this.ports.get(n)}`;
  }

  /** Starts server n; with no bootstrap it starts empty and waits to be added by the leader. */
  async add(n: number, bootstrap?: Configuration): Promise<Member> {
    await this.reservePort(n);
    const logger = silentLogger();
    const fsm = new KvStateMachine();
    const storage = await LevelRaftStorage.open(join(this.root, `d${n}`));
    const node = await RaftNode.start<KvResult>({
      id: `d${n}`,
      address: this.addr(n),
      storage,
      transport: new GrpcTransport({ listen: this.addr(n), logger }),
      fsm,
      logger,
      bootstrap,
      tickMs: 20,
    });
    const m = { id: `d${n}`, address: this.addr(n), node, fsm, storage };
    this.members.push(m);
    return m;
  }

  async leader(): Promise<Member> {
    return waitFor('a leader', () => this.members.find((m) => m.node.status().role === 'leader'), 20_000);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.node.stop()));
    await rm(this.root, { recursive: true, force: true });
  }
}

const put = (key: string, value: string) => encodeKvCommand({ op: 'put', key, value });

/** Makes every write of `storage` wait until released, oldest first. */
function holdWrites(storage: LevelRaftStorage) {
  const original = storage.persist.bind(storage);
  const held: Array<() => void> = [];
  let holding = true;
  storage.persist = async (batch) => {
    if (holding) await new Promise<void>((resolve) => held.push(resolve));
    return original(batch);
  };
  return {
    held: () => held.length,
    releaseOne: () => held.shift()?.(),
    releaseAll: () => {
      holding = false;
      for (const release of held.splice(0)) release();
    },
  };
}

/** `p`, or a rejection naming `what` after `ms` (so that a regression fails instead of hanging). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

test('propose resolves with the index and the FSM result; followers refuse with the leader address', async (t) => {
  const c = await InProcessCluster.start(3);
  t.teardown(() => c.stop());
  const leader = await c.leader();
  const r = await leader.node.propose(put('a', '1'));
  t.true(r.index > 1);
  t.deepEqual(r.result, { ok: true });
  const cas = await leader.node.propose(
    encodeKvCommand({ op: 'cas', key: 'a', expected: 'nope', value: '2' }),
  );
  t.deepEqual(cas.result, { ok: false });

  const follower = c.members.find((m) => m !== leader)!;
  const err = await t.throwsAsync(follower.node.propose(put('b', '1')), { instanceOf: NotLeaderError });
  t.is((err as NotLeaderError).leaderId, leader.id);
  t.is((err as NotLeaderError).leaderAddress, leader.address);

  // A linearizable read on the follower sees the committed write.
  await follower.node.readIndex();
  t.is(follower.fsm.get('a'), '1');

  const st = follower.node.status();
  t.is(st.role, 'follower');
  t.is(st.leader, leader.id);
  t.true(st.lastContactMs >= 0 && st.lastContactMs < 2000);
  t.is(st.configuration.servers.length, 3);
  t.true(st.commitIndex >= r.index);
});

test('addVoter brings a new server in as a non-voter, promotes it once caught up; removeServer takes it out', async (t) => {
  const c = await InProcessCluster.start(3);
  t.teardown(() => c.stop());
  const leader = await c.leader();
  for (let i = 0; i < 50; i++) await leader.node.propose(put(`k${i}`, `v${i}`));
  const fresh = await c.add(4);
  t.is(fresh.node.status().configuration.servers.length, 0, 'a new server starts with no configuration');
  const events: string[] = [];
  fresh.node.on('leader:changed', (e) => events.push(e.detail.leader));

  await leader.node.addVoter(fresh.id, fresh.address);
  const cfg = leader.node.status().configuration.servers.find((s) => s.id === fresh.id);
  t.is(cfg?.suffrage, 'voter');
  await waitFor('the new server to apply the log', () => fresh.fsm.get('k49') === 'v49');
  t.true(events.includes(leader.id), 'the new server learned who leads');

  await leader.node.removeServer(fresh.id);
  t.false(leader.node.status().configuration.servers.some((s) => s.id === fresh.id));
});

test('transferLeadership hands over to a caught-up voter; removing the leader makes it step down', async (t) => {
  const c = await InProcessCluster.start(3);
  t.teardown(() => c.stop());
  const first = await c.leader();
  await first.node.propose(put('x', '1'));
  const termBefore = first.node.status().term;
  const target = c.members.find((m) => m !== first)!;
  t.is(await first.node.transferLeadership(target.id), target.id);
  await waitFor('the target to lead', () => target.node.status().role === 'leader');
  t.is(
    target.node.status().term,
    termBefore + 1,
    'TimeoutNow makes the target campaign at once, one term up',
  );
  t.is(first.node.status().role, 'follower');

  await target.node.propose(put('x', '2'));
  await target.node.removeServer(target.id);
  const next = await waitFor('another leader', () =>
    c.members.find((m) => m !== target && m.node.status().role === 'leader'),
  );
  t.not(next.id, target.id);
  const r = await next.node.propose(put('x', '3'));
  t.deepEqual(r.result, { ok: true });
  t.is(next.node.status().configuration.servers.length, 2);
});

/** A 3-server cluster whose leader has committed one entry, then holds every write of its own. */
async function leaderWithHeldWrites(t: ExecutionContext) {
  const c = await InProcessCluster.start(3);
  t.teardown(() => c.stop());
  const leader = await c.leader();
  await leader.node.propose(put('warm', '1'));
  const before = leader.node.status().commitIndex;
  const writes = holdWrites(leader.storage);
  t.teardown(() => writes.releaseAll());
  return { leader, before, writes };
}

test('an entry committed before a Ready is applied without waiting for that Ready to be written', async (t) => {
  const { leader, before, writes } = await leaderWithHeldWrites(t);
  // a=1 goes to the followers before the leader's own write, which is held; their acks commit it.
  const first = leader.node.propose(put('a', '1'));
  await waitFor('a=1 committed by the followers alone', () => leader.node.status().commitIndex > before);
  // b=2 arrives while that write is held: the next Ready carries it to write, and a=1 to apply.
  const second = leader.node.propose(put('b', '2'));
  second.catch(() => undefined); // awaited below; a failed assertion before that must not leave it unhandled
  t.is(writes.held(), 1);
  writes.releaseOne();
  const r = await within(first, 10_000, 'a=1 applied while the write of b=2 is held');
  t.deepEqual(r.result, { ok: true });
  t.is(leader.fsm.get('a'), '1');
  await waitFor('the write carrying b=2 to be held', () => writes.held() === 1);
  t.is(leader.fsm.get('a'), '1', 'a=1 stays applied while the write carrying b=2 is held');

  writes.releaseAll();
  t.deepEqual((await second).result, { ok: true });
  t.is(leader.fsm.get('b'), '2');
});

test('what the followers commit while the leader is writing is answered before that write ends, once', async (t) => {
  const { leader, writes } = await leaderWithHeldWrites(t);
  const applied: number[] = [];
  const apply = leader.fsm.apply.bind(leader.fsm);
  leader.fsm.apply = (e) => {
    applied.push(e.index);
    return apply(e);
  };
  const first = leader.node.propose(put('a', '1'));
  first.catch(() => undefined); // awaited below
  await waitFor('the write carrying a=1 to be held', () => writes.held() === 1);
  const r = await within(first, 10_000, 'a=1 answered while the leader still writes it');
  t.deepEqual(r.result, { ok: true });
  t.is(leader.fsm.get('a'), '1');
  t.is(writes.held(), 1, 'the leader has not written a=1 yet');

  writes.releaseAll();
  const second = await leader.node.propose(put('b', '2'));
  t.deepEqual(second.result, { ok: true });
  t.deepEqual(applied, [r.index, second.index], 'each entry applied once, in order');
});

test('a proposal made while the leader is writing goes to the followers at once and commits without that write', async (t) => {
  const { leader, before, writes } = await leaderWithHeldWrites(t);
  const first = leader.node.propose(put('a', '1'));
  first.catch(() => undefined); // awaited below
  await waitFor('the write carrying a=1 to be held', () => writes.held() === 1);
  // The loop is stuck on that write; b=2 must not wait for it to reach the followers.
  const second = leader.node.propose(put('b', '2'));
  second.catch(() => undefined);
  await waitFor(
    'a=1 and b=2 committed by the followers',
    () => leader.node.status().commitIndex >= before + 2,
    10_000,
  );
  t.is(writes.held(), 1, 'the leader has written neither entry yet');

  writes.releaseAll();
  t.deepEqual((await first).result, { ok: true });
  t.deepEqual((await second).result, { ok: true });
  t.is(leader.fsm.get('b'), '2');
});
