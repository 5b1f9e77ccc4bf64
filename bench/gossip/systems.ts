/**
 * The two systems bench:gossip compares, behind one interface: meshd agents (one server, the rest
 * clients) and HashiCorp Serf agents, each agent a process on its own loopback address.
 */

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptInstall, trackChild } from '../support/host.ts';

const MAIN = fileURLToPath(new URL('../../bin/meshd.js', import.meta.url));

/** A member's status as the bench compares them. */
export type Status = 'alive' | 'leaving' | 'left' | 'failed' | 'other';

export interface GossipSystem {
  name: string;
  ip(i: number): string;
  /**
   * Spawns agent i (1-based); agent 1 is the seed the others join. `key`: the base64 gossip key
   * (32 bytes, AES-256) the cluster's traffic is encrypted with, as production gossip should be.
   */
  spawn(i: number, dir: string, key: string): ChildProcess;
  /** Whether agent i answers its API. */
  ready(i: number): Promise<boolean>;
  /** Agent i's view: member name → status. Throws if it does not answer. */
  members(i: number): Promise<Map<string, Status>>;
  leave(i: number): Promise<void>;
  /** Asks agent i to join agent 1. */
  join(i: number): Promise<void>;
  memberName(i: number): string;
}

function execText(cmd: string, args: string[], timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}

export const meshd: GossipSystem = {
  name: 'meshd',
  ip: (i) => `127.0.1.${i}`,
  memberName: (i) => `m${i}`,
  spawn(i, dir, key) {
    const ip = this.ip(i);
    const args = [
      MAIN,
      'agent',
      `-node=${this.memberName(i)}`,
      `-bind=${ip}`,
      `-client=${ip}`,
      `-data-dir=${join(dir, `m${i}`)}`,
      `-log-level=${process.env.BENCH_LOG_LEVEL ?? 'warn'}`,
      '-dns-port=-1',
      '-grpc-port=-1',
      `-encrypt=${key}`,
      ...(i === 1 ? ['-server', '-bootstrap-expect=1'] : []),
    ];
    // Logs go to a file: an unread pipe would fill and block the agent's synchronous log writes.
    const log = openSync(join(dir, `${this.memberName(i)}.log`), 'w');
    const child = spawn(process.execPath, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    trackChild(child);
    return child;
  },
  async ready(i) {
    try {
      return (await fetch(`http://${this.ip(i)}:8500/v1/agent/self`, { signal: AbortSignal.timeout(2_000) }))
        .ok;
    } catch {
      return false;
    }
  },
  async members(i) {
    const r = await fetch(`http://${this.ip(i)}:8500/v1/agent/members`, {
      signal: AbortSignal.timeout(5_000),
    });
    const list = (await r.json()) as { Name: string; Status: number }[];
    const names: Status[] = ['other', 'alive', 'leaving', 'left', 'failed'];
    return new Map(list.map((m) => [m.Name, names[m.Status] ?? 'other']));
  },
  async leave(i) {
    await fetch(`http://${this.ip(i)}:8500/v1/agent/leave`, { method: 'PUT' });
  },
  async join(i) {
    const r = await fetch(`http://${this.ip(i)}:8500/v1/agent/join/${this.ip(1)}`, { method: 'PUT' });
    if (!r.ok) throw new Error(`meshd join from m${i}: ${r.status} ${await r.text()}`);
  },
};

export function serfVersion(): string | undefined {
  const r = spawnSync('serf', ['version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.split('\n')[0].trim();
}

/** Serf on PATH, installed with apt-get when missing; a reason when that fails. */
export function ensureSerf(): { version: string } | { missing: string } {
  const have = serfVersion();
  if (have) return { version: have };
  console.log('serf not found');
  aptInstall('serf');
  const after = serfVersion();
  return after
    ? { version: after }
    : { missing: 'serf is not installed and apt-get could not install it (apt-get install serf)' };
}

export const serf: GossipSystem = {
  name: 'Serf',
  ip: (i) => `127.0.2.${i}`,
  memberName: (i) => `s${i}`,
  spawn(i, dir, key) {
    const ip = this.ip(i);
    const args = [
      'agent',
      `-node=${this.memberName(i)}`,
      `-bind=${ip}:7946`,
      `-rpc-addr=${ip}:7373`,
      '-log-level=warn',
      `-encrypt=${key}`,
    ];
    const log = openSync(join(dir, `${this.memberName(i)}.log`), 'w');
    const child = spawn('serf', args, { stdio: ['ignore', log, log] });
    closeSync(log);
    trackChild(child);
    return child;
  },
  async ready(i) {
    try {
      await execText('serf', ['members', `-rpc-addr=${this.ip(i)}:7373`], 2_000);
      return true;
    } catch {
      return false;
    }
  },
  async members(i) {
    const out = await execText('serf', ['members', `-rpc-addr=${this.ip(i)}:7373`, '-format=json']);
    const list = (JSON.parse(out) as { members: { name: string; status: string }[] }).members;
    return new Map(
      list.map((m) => [
        m.name,
        (['alive', 'leaving', 'left', 'failed'].includes(m.status) ? m.status : 'other') as Status,
      ]),
    );
  },
  async leave(i) {
    await execText('serf', ['leave', `-rpc-addr=${this.ip(i)}:7373`], 15_000);
  },
  async join(i) {
    await execText('serf', ['join', `-rpc-addr=${this.ip(i)}:7373`, `${this.ip(1)}:7946`], 15_000);
  },
};
