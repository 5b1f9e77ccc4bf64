/**
 * A static 3-member etcd cluster (Debian's etcd-server, 3.4) for the comparison in bench:kv: one
 * member per host on 127.0.0.11..13, data dirs on disk, spoken to through its v3 JSON gateway.
 */

import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort, waitFor } from '../../test/support/agent-process.ts';
import { aptInstall, trackChild } from '../support/host.ts';

export interface EtcdMember {
  name: string;
  /** `http://host:clientPort` */
  url: string;
  pid: number;
  logs: () => string;
}

function etcdVersion(): string | undefined {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return /etcd Version:\s*(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0];
}

/**
 * The etcd version on PATH, installing Debian's etcd-server with apt-get if it is missing. Returns a
 * reason (with what to do about it) instead when neither works.
 */
export function ensureEtcd(): { version: string } | { missing: string } {
  const have = etcdVersion();
  if (have) return { version: have };
  console.log('etcd not found (needs root and package access to install)');
  const failed = aptInstall('etcd-server');
  const after = etcdVersion();
  if (after) return { version: after };
  return {
    missing:
      `etcd is not installed and \`apt-get install -y etcd-server\` failed ` +
      `(${failed}). Install it by hand as root ` +
      "(`apt-get update && apt-get install -y etcd-server`, Debian's etcd 3.4) or put any etcd 3.4+ " +
      'binary on PATH as `etcd`, then rerun; this run measures meshd alone.',
  };
}

/** POSTs JSON to the v3 gateway. */
export async function etcdCall<T>(url: string, path: string, body: unknown): Promise<T> {
  const r = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`etcd ${path}: ${r.status} ${text}`);
  return JSON.parse(text) as T;
}

export const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Starts the members and resolves once they have a leader, with the leader first. */
export async function startEtcdCluster(hosts: string[], root: string): Promise<EtcdMember[]> {
  const specs = [];
  for (const [i, host] of hosts.entries()) {
    specs.push({
      name: `e${i + 1}`,
      host,
      clientPort: await freePort(host),
      peerPort: await freePort(host),
      dir: join(root, `etcd-e${i + 1}`),
    });
  }
  const initialCluster = specs.map((s) => `${s.name}=http://${s.host}:${s.peerPort}`).join(',');
  const members: EtcdMember[] = [];
  for (const s of specs) {
    const url = `http://${s.host}:${s.clientPort}`;
    const peer = `http://${s.host}:${s.peerPort}`;
    const child = spawn(
      'etcd',
      [
        `--name=${s.name}`,
        `--data-dir=${s.dir}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=meshd-bench',
        '--logger=zap',
        '--log-outputs=stderr',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    trackChild(child);
    let out = '';
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-8000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    members.push({ name: s.name, url, pid: child.pid as number, logs: () => out });
  }
  const dump = () => members.map((m) => `--- ${m.name}\n${m.logs().slice(-3000)}`).join('\n');
  try {
    const leaderId = await waitFor(
      'an etcd leader',
      async () => {
        const ids = new Set<string>();
        for (const m of members) {
          const st = await etcdCall<{ leader?: string }>(m.url, '/v3/maintenance/status', {});
          if (!st.leader || st.leader === '0') return undefined;
          ids.add(st.leader);
        }
        return ids.size === 1 ? [...ids][0] : undefined;
      },
      60_000,
      100,
    );
    let leader: EtcdMember | undefined;
    for (const m of members) {
      const st = await etcdCall<{ header: { member_id: string } }>(m.url, '/v3/maintenance/status', {});
      if (st.header.member_id === leaderId) leader = m;
    }
    if (!leader) throw new Error(`etcd leader ${leaderId} is none of the members`);
    await etcdCall(leader.url, '/v3/kv/put', { key: b64('bench-probe'), value: b64('x') });
    return [leader, ...members.filter((m) => m !== leader)];
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${dump()}`);
  }
}
