/**
 * Gossip membership with real agent processes on 127.0.0.10..19 (one server, nine clients, one
 * cluster key): all join through one address and see ten alive; a user event reaches every agent;
 * each agent dials members until it has six gossip peers once the joins are over;
 * kill -9 of one is reported failed by every other agent and its catalog `serfHealth` check turns
 * critical, and force-leave then makes it left and deregistered; a graceful leave is reported left
 * and deregisters the node; an agent with another key never gets in.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { generateGossipKey } from '../../src/agent/gossip/key.ts';
import { type AgentProcess, freePorts, startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

interface ApiMember {
  Name: string;
  Addr: string;
  Status: number;
  Tags: Record<string, string>;
}

const ALIVE = 1;
const LEFT = 3;
const FAILED = 4;

async function members(a: AgentProcess): Promise<ApiMember[]> {
  const r = await fetch(`${a.http}/v1/agent/members`);
  if (r.status !== 200) throw new Error(`members: ${r.status} ${await r.text()}`);
  return (await r.json()) as ApiMember[];
}

async function statusOf(a: AgentProcess, name: string): Promise<number | undefined> {
  return (await members(a)).find((m) => m.Name === name)?.Status;
}

test('10 agents join through one address; an event reaches all; kill -9 → failed everywhere, serfHealth critical, force-leave → left and deregistered; leave → left and deregistered; a wrong key never gets in', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'meshd-gossip-'));
  const key = generateGossipKey();
  const hosts = Array.from({ length: 10 }, (_, i) => `127.0.0.${10 + i}`);
  const agents: AgentProcess[] = [];
  const names = hosts.map((_, i) => `g${i}`);
  t.teardown(async () => {
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    await rm(root, { recursive: true, force: true });
  });
  const dump = () =>
    agents.map((a, i) => `--- ${names[i] ?? 'intruder'}\n${a.logs().slice(-2500)}`).join('\n');
  const fail = (err: Error) => {
    throw new Error(`${err.message}\n${dump()}`);
  };

  const [seedSerf] = await freePorts(1, hosts[0]);
  const seed = `${hosts[0]}:${seedSerf}`;
  const common = (i: number) => [
    `-node=${names[i]}`,
    `-data-dir=${join(root, names[i])}`,
    `-encrypt=${key}`,
    '-retry-interval=1s',
  ];
  agents.push(
    await startAgent([...common(0), '-server', '-bootstrap-expect=1'], {
      host: hosts[0],
      serfPort: seedSerf,
    }),
  );
  for (let i = 1; i < hosts.length; i++) {
    agents.push(await startAgent([...common(i), `-retry-join=${seed}`], { host: hosts[i] }));
  }
  await waitLeader(agents[0], 30_000).catch(fail);

  // Everyone sees all ten alive.
  for (const [i, a] of agents.entries()) {
    await waitFor(
      `${names[i]} to see 10 alive`,
      async () => {
        const ms = await members(a);
        return ms.length === 10 && ms.every((m) => m.Status === ALIVE);
      },
      60_000,
    ).catch(fail);
  }
  const seen = await members(agents[3]);
  t.deepEqual(seen.map((m) => m.Name).sort(), [...names].sort());
  t.is(seen.find((m) => m.Name === 'g0')?.Tags.role, 'consul');
  t.is(seen.find((m) => m.Name === 'g5')?.Tags.role, 'node');
  t.is(seen.find((m) => m.Name === 'g5')?.Addr, hosts[5]);
  // The membership's counters are in the agent's metrics, one gauge series per stat.
  const gossipStat = async (stat: string, a = agents[3]) => {
    const metrics = (await (await fetch(`${a.http}/v1/agent/metrics`)).json()) as {
      Gauges: { Name: string; Value: number; Labels: Record<string, string> }[];
    };
    return metrics.Gauges.find((g) => g.Name === 'meshd.gossip' && g.Labels.stat === stat)?.Value;
  };
  t.is(await gossipStat('members'), 10);
  // Convergence can beat the agent's first probe round: wait for an answered probe.
  await waitFor(
    'an answered probe in meshd.gossip{stat=acks}',
    async () => ((await gossipStat('acks')) ?? 0) > 0,
    10_000,
  );

  // The leader registered every member with a passing serfHealth check.
  await waitFor(
    'all ten nodes registered with serfHealth passing',
    async () => {
      const r = await fetch(`${agents[0].http}/v1/health/state/passing`);
      const checks = (await r.json()) as { Node: string; CheckID: string }[];
      return checks.filter((c) => c.CheckID === 'serfHealth').length === 10;
    },
    30_000,
  ).catch(fail);

  // A user event fired on one agent reaches every agent once, right after the join: while the
  // agents have not dialed their gossipsub peers yet, piggybacking on SWIM's packets carries it.
  const fired = (await (
    await fetch(`${agents[4].http}/v1/event/fire/deploy`, { method: 'PUT', body: 'v2' })
  ).json()) as {
    ID: string;
  };
  for (const [i, a] of agents.entries()) {
    await waitFor(
      `${names[i]} to receive the event`,
      async () => {
        const events = (await (await fetch(`${a.http}/v1/event/list?name=deploy`)).json()) as {
          ID: string;
        }[];
        return events.length === 1 && events[0].ID === fired.ID;
      },
      30_000,
    ).catch(fail);
  }

  // Once the joins are over, every agent has dialed members until it has the six connections
  // gossipsub broadcasts over (membership.ts defers those dials while members are joining).
  for (const [i, a] of agents.entries()) {
    await waitFor(
      `${names[i]} to have 6 gossip peers`,
      async () => ((await gossipStat('peers', a)) ?? 0) >= 6,
      30_000,
    ).catch(fail);
  }

  // kill -9 g9: every other agent reports it failed, and its serfHealth check turns critical.
  const victim = agents[9];
  await victim.stop('SIGKILL');
  for (const [i, a] of agents.slice(0, 9).entries()) {
    await waitFor(
      `${names[i]} to report g9 failed`,
      async () => (await statusOf(a, 'g9')) === FAILED,
      60_000,
    ).catch(fail);
  }
  await waitFor(
    'g9 serfHealth critical in the catalog',
    async () => {
      const r = await fetch(`${agents[0].http}/v1/health/node/g9`);
      const checks = (await r.json()) as { CheckID: string; Status: string }[];
      return checks.find((c) => c.CheckID === 'serfHealth')?.Status === 'critical';
    },
    30_000,
  ).catch(fail);
  // force-leave g9 from another agent: left everywhere, then deregistered by the leader.
  t.is((await fetch(`${agents[2].http}/v1/agent/force-leave/g9`, { method: 'PUT' })).status, 200);
  for (const [i, a] of agents.slice(0, 9).entries()) {
    await waitFor(
      `${names[i]} to report g9 left`,
      async () => (await statusOf(a, 'g9')) === LEFT,
      30_000,
    ).catch(fail);
  }
  await waitFor(
    'g9 deregistered after force-leave',
    async () =>
      ((await (await fetch(`${agents[0].http}/v1/health/node/g9`)).json()) as unknown[]).length === 0,
    30_000,
  ).catch(fail);

  // No healthy agent was ever reported failed along the way.
  for (const a of agents.slice(0, 9)) {
    const others = (await members(a)).filter((m) => m.Name !== 'g9');
    t.true(
      others.every((m) => m.Status === ALIVE),
      JSON.stringify(others),
    );
  }

  // g8 leaves gracefully: reported left, and deregistered from the catalog.
  const leaving = agents[8];
  t.is((await fetch(`${leaving.http}/v1/agent/leave`, { method: 'PUT' })).status, 200);
  t.is(await leaving.exited, 0);
  for (const [i, a] of agents.slice(0, 8).entries()) {
    await waitFor(
      `${names[i]} to report g8 left`,
      async () => (await statusOf(a, 'g8')) === LEFT,
      30_000,
    ).catch(fail);
  }
  await waitFor(
    'g8 deregistered',
    async () =>
      (await fetch(`${agents[0].http}/v1/catalog/node/g8`)).status === 404 ||
      (await (await fetch(`${agents[0].http}/v1/catalog/node/g8`)).json()) === null,
    30_000,
  ).catch(fail);

  // An agent with another key: its join fails, and nobody ever lists it.
  const intruder = await startAgent(
    [
      '-node=intruder',
      `-data-dir=${join(root, 'intruder')}`,
      `-encrypt=${generateGossipKey()}`,
      '-retry-interval=1s',
      `-retry-join=${seed}`,
    ],
    { host: '127.0.0.20' },
  );
  agents.push(intruder);
  await waitFor(
    'the intruder to fail joining twice',
    () => (intruder.logs().match(/join failed/g) ?? []).length >= 2,
    60_000,
  ).catch(fail);
  for (const a of agents.slice(0, 8)) t.is(await statusOf(a, 'intruder'), undefined);
  t.deepEqual(
    (await members(intruder)).map((m) => m.Name),
    ['intruder'],
  );
});
