import test from 'ava';
import { RaftCluster, type ServerProcess, waitFor } from '../support/raft-cluster.ts';

/**
 * Writers that keep proposing unique keys to whichever server leads, recording each write only once
 * a server acknowledged it (applied on a quorum after fsync).
 */
class WriteLoad {
  readonly acked = new Map<string, string>();
  private stopped = false;
  private readonly done: Promise<void>[] = [];
  private hint = 0;
  private readonly cluster: RaftCluster;

  constructor(cluster: RaftCluster, writers: number) {
    this.cluster = cluster;
    for (let w = 0; w < writers; w++) this.done.push(this.writer(w));
  }

  private async writer(w: number): Promise<void> {
    let i = 0;
    while (!this.stopped) {
      const all = this.cluster.servers;
      let target: ServerProcess | undefined = all[this.hint % all.length];
      if (!target.child) {
        this.hint++;
        target = undefined;
      }
      if (!target) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const key = `w${w}-${i}`;
      const value = `v${w}-${i}-${'x'.repeat(32)}`;
      try {
        const r = await this.cluster.request<{ leader?: string }>(
          target,
          'POST',
          '/put',
          { key, value },
          3000,
        );
        if (r.status === 200) {
          this.acked.set(key, value);
          i++;
          continue;
        }
        if (r.status === 421 && r.body.leader) {
          const idx = this.cluster.servers.findIndex((s) => s.id === r.body.leader);
          if (idx >= 0) this.hint = idx;
          else this.hint++;
        } else this.hint++;
      } catch {
        this.hint++;
      }
      // A refused or failed write is retried under a new key: its outcome may be unknown.
      i++;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.done);
  }
}

test('kill -9 the leader under write load: a new leader takes over, and no acknowledged write is lost', async (t) => {
  const cluster = await RaftCluster.start({ size: 3, tickMs: 50, snapshotThreshold: 400, trailingLogs: 100 });
  t.teardown(() => cluster.stop());
  const first = await cluster.leader();
  const load = new WriteLoad(cluster, 8);
  t.teardown(() => load.stop());
  await waitFor('300 acknowledged writes', () => load.acked.size >= 300, 60_000);

  await cluster.kill(first);
  const atKill = load.acked.size;
  t.log(`killed leader ${first.id} after ${atKill} acknowledged writes`);
  const second = await cluster.leader();
  t.not(second.id, first.id);
  await waitFor('writes to resume under the new leader', () => load.acked.size >= atKill + 300, 60_000);
  await load.stop();
  t.log(`${load.acked.size} writes acknowledged in all; new leader ${second.id}`);

  // Every server killed at once, then all restarted from disk.
  await Promise.all(cluster.servers.map((s) => cluster.kill(s)));
  await Promise.all(cluster.servers.map((s) => cluster.startServer(s)));
  const third = await cluster.leader();

  const missing: string[] = [];
  const keys = [...load.acked.keys()];
  for (let i = 0; i < keys.length; i += 32) {
    await Promise.all(
      keys.slice(i, i + 32).map(async (key) => {
        const r = await cluster.request<{ value: string | null }>(
          third,
          'GET',
          `/get?key=${encodeURIComponent(key)}`,
        );
        if (r.status !== 200 || r.body.value !== load.acked.get(key)) missing.push(key);
      }),
    );
  }
  t.deepEqual(missing, [], `acknowledged writes lost after restart: ${missing.slice(0, 10).join(', ')}`);

  // The restarted cluster still replicates: a new write lands on every server.
  const w = await cluster.request(third, 'POST', '/put', { key: 'after-restart', value: 'ok' });
  t.is(w.status, 200);
  for (const s of cluster.servers) {
    await waitFor(`${s.id} to apply the write`, async () => {
      const st = await cluster.request<{ appliedIndex: number }>(s, 'GET', '/status');
      return st.body.appliedIndex >= (w.body as { index: number }).index;
    });
  }
});

test('a follower restarted with a wiped disk is caught up through a snapshot', async (t) => {
  const cluster = await RaftCluster.start({ size: 3, tickMs: 50, snapshotThreshold: 200, trailingLogs: 20 });
  t.teardown(() => cluster.stop());
  const leader = await cluster.leader();
  const follower = cluster.servers.find((s) => s !== leader)!;
  await cluster.kill(follower);
  for (let i = 0; i < 600; i++) {
    const r = await cluster.request(leader, 'POST', '/put', { key: `k${i % 50}`, value: `v${i}` });
    t.is(r.status, 200);
  }
  const { rm } = await import('node:fs/promises');
  await rm(follower.data, { recursive: true, force: true });
  await cluster.startServer(follower);
  const target = (await cluster.request<{ commitIndex: number }>(leader, 'GET', '/status')).body.commitIndex;
  const st = await waitFor('the wiped follower to catch up', async () => {
    const s = await cluster.request<{ appliedIndex: number; snapshotIndex: number }>(
      follower,
      'GET',
      '/status',
    );
    return s.body.appliedIndex >= target ? s.body : undefined;
  });
  t.true(st.snapshotIndex > 0, 'caught up from a snapshot, not from a replayed log');
  // Its state machine holds the latest values: read through it after a transfer makes it answer.
  const r = await cluster.request<{ value: string }>(follower, 'GET', '/get?key=k49');
  t.is(r.status, 200);
  t.is(r.body.value, 'v599');
});
