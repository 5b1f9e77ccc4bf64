/**
 * A real cluster: three server processes on 127.0.0.1..3 that find each other through
 * -retry-join and bootstrap once (-bootstrap-expect=3), plus a client agent on 127.0.0.4 that
 * forwards everything to them. Kill -9 of the leader, then of everything, loses nothing that was
 * acknowledged.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type AgentProcess, freePorts, startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

const HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const CLIENT_HOST = '127.0.0.4';

interface ServerSpec {
  host: string;
  httpPort: number;
  serverPort: number;
  serfPort: number;
  dir: string;
  name: string;
}

function serverArgs(s: ServerSpec, all: ServerSpec[]): string[] {
  return [
    '-server',
    '-bootstrap-expect=3',
    `-data-dir=${s.dir}`,
    `-node=${s.name}`,
    '-retry-interval=1s',
    ...all.filter((o) => o !== s).map((o) => `-retry-join=${o.host}:${o.serfPort}`),
  ];
}

async function put(a: AgentProcess, key: string, value: string): Promise<boolean> {
  const r = await fetch(`${a.http}/v1/kv/${key}`, { method: 'PUT', body: value });
  if (r.status !== 200) throw new Error(`PUT ${key}: ${r.status} ${await r.text()}`);
  return (await r.json()) as boolean;
}

async function getRaw(a: AgentProcess, key: string, query = ''): Promise<string | undefined> {
  const r = await fetch(`${a.http}/v1/kv/${key}?raw${query}`);
  if (r.status === 404) return undefined;
  if (r.status !== 200) throw new Error(`GET ${key}: ${r.status} ${await r.text()}`);
  return r.text();
}

test('3 servers + 1 client: bootstrap once, forward, survive kill -9 of the leader and of everything', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'meshd-cluster-'));
  const specs: ServerSpec[] = [];
  for (const [i, host] of HOSTS.entries()) {
    const [httpPort, serverPort, serfPort] = await freePorts(3, host);
    specs.push({
      host,
      httpPort,
      serverPort,
      serfPort,
      dir: join(root, `s${i + 1}`),
      name: `s${i + 1}`,
    });
  }
  const running = new Map<string, AgentProcess>();
  const start = async (s: ServerSpec): Promise<AgentProcess> => {
    const a = await startAgent(serverArgs(s, specs), {
      host: s.host,
      httpPort: s.httpPort,
      serverPort: s.serverPort,
      serfPort: s.serfPort,
    });
    running.set(s.name, a);
    return a;
  };
  const clientDir = join(root, 'client');
  const startClient = () =>
    startAgent(
      [
        '-node=c1',
        `-data-dir=${clientDir}`,
        '-retry-interval=1s',
        `-retry-join=${specs[0].host}:${specs[0].serfPort}`,
      ],
      { host: CLIENT_HOST },
    );
  let client: AgentProcess | undefined;
  t.teardown(async () => {
    await Promise.all([...running.values()].map((a) => a.stop('SIGKILL')));
    await client?.stop('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });
  const dump = () => [...running.entries()].map(([n, a]) => `--- ${n}\n${a.logs().slice(-3000)}`).join('\n');

  await Promise.all(specs.map(start));
  const leaderAddr = await waitLeader(running.get('s1') as AgentProcess, 30_000).catch((err) => {
    throw new Error(`${err.message}\n${dump()}`);
  });
  // Every server agrees on one leader and on a 3-voter configuration.
  for (const s of specs) {
    const a = running.get(s.name) as AgentProcess;
    t.is(
      await waitLeader(a).catch((err) => {
        throw new Error(`${err.message}\n${dump()}`);
      }),
      leaderAddr,
    );
    const conf = (await (await fetch(`${a.http}/v1/operator/raft/configuration`)).json()) as {
      Servers: { Node: string; Voter: boolean }[];
    };
    t.deepEqual(
      conf.Servers.map((x) => x.Voter),
      [true, true, true],
    );
  }
  const peers = (await (await fetch(`${running.get('s2')?.http}/v1/status/peers`)).json()) as string[];
  t.deepEqual(peers, specs.map((s) => `${s.host}:${s.serverPort}`).sort());

  // Writes through the client agent; reads from every server with ?stale after convergence.
  client = await startClient();
  await waitFor('the client to reach the servers', async () => put(client as AgentProcess, 'probe', '1'));
  for (let i = 0; i < 20; i++) t.true(await put(client, `k/${i}`, `v${i}`));
  const last = await fetch(`${client.http}/v1/kv/k/19`);
  const lastIndex = Number(last.headers.get('x-consul-index'));
  for (const s of specs) {
    const a = running.get(s.name) as AgentProcess;
    await waitFor(`${s.name} to apply index ${lastIndex}`, async () => {
      const r = await fetch(`${a.http}/v1/kv/k/19?stale`);
      return r.status === 200 && Number(r.headers.get('x-consul-index')) >= lastIndex;
    });
    const r = await fetch(`${a.http}/v1/kv/k?recurse&stale`);
    t.is(((await r.json()) as unknown[]).length, 20, `${s.name} has every key`);
  }
  // A blocking query through the client wakes on a write made through a server.
  const idx = Number((await fetch(`${client.http}/v1/kv/watched`)).headers.get('x-consul-index'));
  const parked = fetch(`${client.http}/v1/kv/watched?index=${idx}&wait=30s`);
  await put(running.get('s3') as AgentProcess, 'watched', 'yes');
  const woken = await parked;
  t.is(woken.status, 200);
  t.true(Number(woken.headers.get('x-consul-index')) > idx);

  // The client registered its own node through the servers.
  await waitFor('the client node in the catalog', async () => {
    const r = await fetch(`${client?.http}/v1/catalog/nodes`);
    return ((await r.json()) as { Node: string }[]).some((n) => n.Node === 'c1');
  });

  // kill -9 the leader: a new one is elected and writes through the client resume.
  const leaderSpec = specs.find((s) => `${s.host}:${s.serverPort}` === leaderAddr) as ServerSpec;
  await (running.get(leaderSpec.name) as AgentProcess).stop('SIGKILL');
  running.delete(leaderSpec.name);
  const acked: string[] = [];
  await waitFor(
    'writes to resume after the leader died',
    async () => {
      if (!(await put(client as AgentProcess, 'after-failover', 'ok').catch(() => false))) return false;
      return true;
    },
    30_000,
  );
  for (let i = 0; i < 10; i++) {
    t.true(await put(client, `f/${i}`, `x${i}`));
    acked.push(`f/${i}`);
  }
  const survivor = [...running.values()][0];
  const newLeader = await waitLeader(survivor);
  t.not(newLeader, leaderAddr);

  // kill -9 everything, restart everything: every acknowledged write is there.
  await Promise.all([...running.values()].map((a) => a.stop('SIGKILL')));
  running.clear();
  await client.stop('SIGKILL');
  await Promise.all(specs.map(start));
  client = await startClient();
  await waitLeader(running.get('s1') as AgentProcess, 30_000);
  await waitFor(
    'the restarted cluster to serve reads',
    async () => (await getRaw(client as AgentProcess, 'k/0')) === 'v0',
    30_000,
  );
  for (let i = 0; i < 20; i++) t.is(await getRaw(client, `k/${i}`), `v${i}`);
  for (const [i, key] of acked.entries()) t.is(await getRaw(client, key), `x${i}`);
  t.is(await getRaw(client, 'watched'), 'yes');
});

test('servers added later join as non-voters and are promoted; leave removes one, autopilot a dead one', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'meshd-join-'));
  const config = join(root, 'autopilot.json');
  // 3 × 1 s, floored at 10 s: the dead-server delay before gossip lands.
  await writeFile(config, JSON.stringify({ autopilot: { server_stabilization_time: '1s' } }));
  const hosts = ['127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8', '127.0.0.9'];
  const specs: ServerSpec[] = [];
  for (const [i, host] of hosts.entries()) {
    const [httpPort, serverPort, serfPort] = await freePorts(3, host);
    specs.push({
      host,
      httpPort,
      serverPort,
      serfPort,
      dir: join(root, `j${i + 1}`),
      name: `j${i + 1}`,
    });
  }
  const first = specs.slice(0, 3);
  const procs: AgentProcess[] = [];
  t.teardown(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await rm(root, { recursive: true, force: true });
  });
  for (const s of first) {
    procs.push(
      await startAgent([...serverArgs(s, first), `-config-file=${config}`], {
        host: s.host,
        httpPort: s.httpPort,
        serverPort: s.serverPort,
        serfPort: s.serfPort,
      }),
    );
  }
  await waitLeader(procs[0], 30_000);
  const voters = async (): Promise<string[]> => {
    const r = await fetch(`${procs[0].http}/v1/operator/raft/configuration`);
    const c = (await r.json()) as { Servers: { Node: string; Voter: boolean }[] };
    return c.Servers.filter((s) => s.Voter)
      .map((s) => s.Node)
      .sort();
  };
  const addLate = async (late: ServerSpec): Promise<AgentProcess> => {
    const p = await startAgent(
      [
        '-server',
        `-data-dir=${late.dir}`,
        `-node=${late.name}`,
        '-retry-interval=1s',
        `-retry-join=${first[0].host}:${first[0].serfPort}`,
      ],
      { host: late.host, httpPort: late.httpPort, serverPort: late.serverPort, serfPort: late.serfPort },
    );
    procs.push(p);
    await waitFor(`${late.name} to become a voter`, async () => (await voters()).includes(late.name), 30_000);
    return p;
  };

  // j4 joins, is promoted, then leaves gracefully (`meshd leave` calls this endpoint).
  const leaving = await addLate(specs[3]);
  t.deepEqual(await voters(), ['j1', 'j2', 'j3', 'j4']);
  const left = await fetch(`${leaving.http}/v1/agent/leave`, { method: 'PUT' });
  t.is(left.status, 200);
  t.is(await leaving.exited, 0, 'the agent exits after leaving');
  await waitFor('the leave to reach j1', async () => (await voters()).length === 3);
  t.deepEqual(await voters(), ['j1', 'j2', 'j3'], 'leave removed it from the configuration');

  // j5 joins, catches up on what was written before, then dies: autopilot removes it.
  await put(procs[0], 'before-join', 'yes');
  const lateProc = await addLate(specs[4]);
  t.deepEqual(await voters(), ['j1', 'j2', 'j3', 'j5']);
  await waitFor(
    'the late server to catch up',
    async () => (await getRaw(lateProc, 'before-join', '&stale')) === 'yes',
  );

  await lateProc.stop('SIGKILL');
  await waitFor('autopilot to remove the dead server', async () => (await voters()).length === 3, 60_000);
  t.deepEqual(await voters(), ['j1', 'j2', 'j3']);
  t.true(await put(procs[0], 'after-cleanup', 'ok'));
});
