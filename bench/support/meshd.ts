/**
 * Real `meshd agent -server` processes for the benches, started like test/agent/cluster.test.ts
 * does (data dirs on disk, one host per server on 127.0.0.x) and tracked for cleanup by PID.
 */

import { join } from 'node:path';
import {
  type AgentProcess,
  freePorts,
  startAgent,
  waitFor,
  waitLeader,
} from '../../test/support/agent-process.ts';
import { trackChild } from './host.ts';

export interface MeshdServer {
  name: string;
  host: string;
  serverPort: number;
  proc: AgentProcess;
  /** `http://host:port` */
  http: string;
  pid: number;
}

/**
 * Starts one server per host; several of them find each other with -retry-join and bootstrap once
 * (-bootstrap-expect), a single one bootstraps itself. Resolves once they agree on a leader, with
 * the leader first.
 */
export async function startMeshdServers(hosts: string[], root: string): Promise<MeshdServer[]> {
  const specs = [];
  for (const [i, host] of hosts.entries()) {
    const [httpPort, serverPort, serfPort] = await freePorts(3, host);
    specs.push({
      name: `s${i + 1}`,
      host,
      httpPort,
      serverPort,
      serfPort,
      dir: join(root, `meshd-s${i + 1}`),
    });
  }
  const servers: MeshdServer[] = [];
  for (const s of specs) {
    const bootstrap =
      specs.length === 1
        ? ['-bootstrap']
        : [
            `-bootstrap-expect=${specs.length}`,
            '-retry-interval=1s',
            ...specs.filter((o) => o !== s).map((o) => `-retry-join=${o.host}:${o.serfPort}`),
          ];
    const proc = await startAgent(
      ['-server', `-data-dir=${s.dir}`, `-node=${s.name}`, '-log-level=warn', ...bootstrap],
      { host: s.host, httpPort: s.httpPort, serverPort: s.serverPort, serfPort: s.serfPort },
    );
    trackChild(proc.child);
    servers.push({
      name: s.name,
      host: s.host,
      serverPort: s.serverPort,
      proc,
      http: proc.http,
      pid: proc.child.pid as number,
    });
  }
  const dump = () => servers.map((s) => `--- ${s.name}\n${s.proc.logs().slice(-3000)}`).join('\n');
  try {
    const leaderAddr = await waitLeader(servers[0].proc, 60_000);
    for (const s of servers)
      await waitFor(`${s.name} to agree`, async () => (await waitLeader(s.proc)) === leaderAddr);
    const leader = servers.find((s) => `${s.host}:${s.serverPort}` === leaderAddr);
    if (!leader) throw new Error(`leader ${leaderAddr} is none of the servers`);
    // Writes go through once the leader has committed its first entry of the term.
    await waitFor(
      'the leader to accept writes',
      async () =>
        (await fetch(`${leader.http}/v1/kv/bench-probe`, { method: 'PUT', body: 'x' })).status === 200,
      30_000,
    );
    return [leader, ...servers.filter((s) => s !== leader)];
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${dump()}`);
  }
}
