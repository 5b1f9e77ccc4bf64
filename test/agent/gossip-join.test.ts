/**
 * How a join travels, with real agent processes: in a cluster with a key it is a packet exchange
 * (no libp2p connection, no stream frame on either side); when the packets go unanswered (here UDP
 * does not reach the seed: the joiner names a TCP forwarder) it falls back to TCP and still
 * succeeds; in a cluster without a key it goes over TCP from the start. User events too many for
 * one packet travel as several, not over TCP, and so do the periodic push-pulls of a cluster with
 * a key (the keyed agents run the `local` profile, whose push-pulls come every 15 s).
 */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { generateGossipKey } from '../../src/agent/gossip/key.ts';
import { type AgentProcess, freePorts, startAgent, waitFor } from '../support/agent-process.ts';

async function aliveNames(a: AgentProcess): Promise<string[]> {
  const r = await fetch(`${a.http}/v1/agent/members`);
  const ms = (await r.json()) as { Name: string; Status: number }[];
  return ms
    .filter((m) => m.Status === 1)
    .map((m) => m.Name)
    .sort();
}

/** One of the membership's counters, from the agent's metrics (0 when it was never counted). */
async function gossipStat(a: AgentProcess, stat: string): Promise<number> {
  const metrics = (await (await fetch(`${a.http}/v1/agent/metrics`)).json()) as {
    Gauges: { Name: string; Value: number; Labels: Record<string, string> }[];
  };
  return metrics.Gauges.find((g) => g.Name === 'meshd.gossip' && g.Labels.stat === stat)?.Value ?? 0;
}

async function joinVia(a: AgentProcess, addr: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const r = await fetch(`${a.http}/v1/agent/join/${addr}`, { method: 'PUT' });
  await r.arrayBuffer();
  return { status: r.status, ms: performance.now() - t0 };
}

/** A TCP port on `host` whose connections are piped to `target` (UDP to it reaches nothing). */
async function tcpForwarder(host: string, target: { host: string; port: number }): Promise<Server> {
  const [port] = await freePorts(1, host);
  const server = createServer((down) => {
    const up = tcpConnect(target.port, target.host);
    down.pipe(up).pipe(down);
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return server;
}

test('with a key a join is a packet exchange, falling back to TCP when UDP does not reach; without a key it is TCP', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'meshd-gossip-join-'));
  const agents: AgentProcess[] = [];
  let forwarder: Server | undefined;
  t.teardown(async () => {
    forwarder?.close();
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await rm(root, { recursive: true, force: true });
  });
  const key = generateGossipKey();
  const localProfile = join(root, 'local-profile.json');
  await writeFile(localProfile, JSON.stringify({ gossip_lan: { profile: 'local' } }));
  const keyed = [`-encrypt=${key}`, `-config-file=${localProfile}`];
  const start = async (name: string, host: string, extra: string[]) => {
    const a = await startAgent([`-node=${name}`, `-data-dir=${join(root, name)}`, ...extra], { host });
    agents.push(a);
    await waitFor(`${name} to answer`, async () => (await fetch(`${a.http}/v1/agent/self`)).ok, 30_000);
    return a;
  };
  const [seed, joiner, viaTcp, plainSeed, plainJoiner] = await Promise.all([
    start('seed', '127.0.0.151', [...keyed, '-server', '-bootstrap-expect=1']),
    start('joiner', '127.0.0.152', keyed),
    start('via-tcp', '127.0.0.153', keyed),
    start('plain-seed', '127.0.0.155', []),
    start('plain-joiner', '127.0.0.156', []),
  ]);
  const dump = () => agents.map((a) => a.logs().slice(-1500)).join('\n---\n');

  // Packets only: neither side sent or received a frame on a stream, nor opened a connection.
  const direct = await joinVia(joiner, seed.gossip);
  t.is(direct.status, 200, dump());
  t.deepEqual(await aliveNames(joiner), ['joiner', 'seed']);
  await waitFor(
    'the seed to list the joiner',
    async () => (await aliveNames(seed)).includes('joiner'),
    10_000,
  );
  t.is(await gossipStat(joiner, 'frames.out'), 0);
  t.is(await gossipStat(joiner, 'frames.in'), 0);
  t.is(await gossipStat(seed, 'frames.in'), 0);
  t.is(await gossipStat(seed, 'frames.out'), 0);

  // UDP to the forwarder's address reaches nothing: after the packet wait the join goes over TCP.
  const [seedHost, seedPort] = seed.gossip.split(':');
  forwarder = await tcpForwarder('127.0.0.154', { host: seedHost, port: Number(seedPort) });
  const forwarded = forwarder.address() as { port: number };
  const fallback = await joinVia(viaTcp, `127.0.0.154:${forwarded.port}`);
  t.is(fallback.status, 200, dump());
  t.true(fallback.ms >= 900, `answered in ${fallback.ms} ms: before the packet wait ended`);
  t.true((await aliveNames(viaTcp)).includes('seed'));
  t.true((await gossipStat(seed, 'frames.in')) >= 1);
  await waitFor(
    'every keyed agent to list all three',
    async () => {
      for (const a of [seed, joiner, viaTcp]) {
        if ((await aliveNames(a)).join() !== 'joiner,seed,via-tcp') return false;
      }
      return true;
    },
    20_000,
  );

  // Ten user events at once with random payloads: their JSON does not deflate into one packet, so
  // the agent spreads it over several, and still sends no frame.
  const framesBefore = await gossipStat(joiner, 'frames.out');
  for (let i = 0; i < 10; i++) {
    const r = await fetch(`${joiner.http}/v1/event/fire/bulk-${i}`, {
      method: 'PUT',
      body: randomBytes(300).toString('base64'),
    });
    t.is(r.status, 200);
  }
  for (const a of [seed, joiner, viaTcp]) {
    await waitFor(
      'every agent to list the ten events',
      async () => {
        const events = (await (await fetch(`${a.http}/v1/event/list`)).json()) as { Name: string }[];
        return events.filter((e) => e.Name.startsWith('bulk-')).length === 10;
      },
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${dump()}`);
    });
  }
  t.is(await gossipStat(joiner, 'frames.out'), framesBefore);

  // Periodic push-pulls (each agent's whole state, every 7.5-22.5 s at first in this profile) go
  // as packets too: a round of them on every keyed agent, and not one frame more on any.
  const keyedAgents = [seed, joiner, viaTcp];
  const framesAt = async () =>
    (await Promise.all(keyedAgents.map((a) => gossipStat(a, 'frames.out')))).join();
  const framesBeforePushPulls = await framesAt();
  const pushPullsBefore = await Promise.all(keyedAgents.map((a) => gossipStat(a, 'push_pulls')));
  await waitFor(
    'a periodic push-pull on every keyed agent',
    async () => {
      const now = await Promise.all(keyedAgents.map((a) => gossipStat(a, 'push_pulls')));
      return now.every((n, i) => n > pushPullsBefore[i]);
    },
    40_000,
  );
  t.is(await framesAt(), framesBeforePushPulls);

  // Without a key: TCP only.
  const plain = await joinVia(plainJoiner, plainSeed.gossip);
  t.is(plain.status, 200, dump());
  t.deepEqual(await aliveNames(plainJoiner), ['plain-joiner', 'plain-seed']);
  t.true((await gossipStat(plainSeed, 'frames.in')) >= 1);
  t.true((await gossipStat(plainJoiner, 'frames.out')) >= 1);
});
