/**
 * bench:gossip — meshd's gossip membership against HashiCorp Serf, N agent processes each, same
 * machine, same run:
 * `npm run bench:gossip -- [N ...] [--settle N] [--idle 20] [--only meshd|serf] [--no-record]`.
 *
 * Per system and N (agents on 127.0.1.x for meshd, 127.0.2.x for Serf, each joining agent 1;
 * each cluster's gossip encrypted with its own random key, `-encrypt`, as production's should be):
 * 1. join: all N agents are started alone and answer their API (start-up time is reported: a Node
 *    process takes far longer than a Go binary to start); then every agent is asked to join agent
 *    1 at once (`PUT /v1/agent/join`, `serf join`), and the join time runs until every agent lists
 *    N alive;
 * 2. settle for `--settle` seconds (default the larger of N, one probe round, and 30: after a
 *    join meshd's members dial the few connections gossipsub keeps, which at N = 10 took the
 *    first ~20 s, 47 → 24 → 16 → 8 ms/s per agent in 5 s steps, then 4–8: part of the join's
 *    cost, not idle), then idle: RSS per agent, CPU ms per
 *    agent per second (/proc), bytes per agent per second sent on lo (nftables counters by source
 *    address); false failures (any agent listing a live member as anything but alive, polled
 *    every 2 s) are counted through both, every agent polled while settling and agent 1 alone
 *    during the idle window, so that the CPU measured is not the cost of answering the bench;
 * 3. kill -9 of agent N: time until the first, and until every, other agent lists it failed;
 * 4. graceful leave of agent N−1: time until every other agent lists it left.
 * Views are polled in rounds over all agents (8 at a time); a time's resolution is one round, and
 * the mean round is printed.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  appendResults,
  aptInstall,
  cleanup,
  cpuSeconds,
  installCleanup,
  machineLine,
  markdownTable,
  rssMiB,
  sleep,
  today,
  trackDir,
  wrapProse,
} from '../support/host.ts';
import { ensureSerf, type GossipSystem, meshd, type Status, serf } from './systems.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    idle: { type: 'string', default: '20' },
    settle: { type: 'string' },
    only: { type: 'string' },
    'no-record': { type: 'boolean', default: false },
  },
});
const SIZES = positionals.length > 0 ? positionals.map(Number) : [10, 30, 50];
const IDLE_S = Number(values.idle);
/** Seconds between the join and the idle window; undefined: max(N, 30) (see the header). */
const SETTLE_S = values.settle === undefined ? undefined : Number(values.settle);
const PHASE_TIMEOUT_MS = 120_000;
const POLL_CONCURRENCY = 8;

interface Result {
  startup: number;
  join: number;
  rssMeanMiB: number;
  rssMaxMiB: number;
  cpuMsPerSec: number;
  bytesPerSec: number;
  falseFailures: number;
  detectFirst: number;
  detectAll: number;
  leaveAll: number;
  pollRoundMs: number;
}

// ---- nftables byte counters per source address ----

const NFT_TABLE = 'meshd_bench';
/** By path: under npm, `nft` on PATH is node_modules/.bin/nft (an unrelated JS tool). */
const NFT_PATHS = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'];
const nftPath = () => NFT_PATHS.find((p) => existsSync(p));

/** Debian's nftables, installed with apt-get when missing; throws saying how when that fails. */
function ensureNft(): void {
  if (nftPath()) return;
  console.log('nft not found: the byte counters need nftables');
  const failed = aptInstall('nftables');
  if (!nftPath())
    throw new Error(`nftables is not installed (${failed}); run apt-get install -y nftables as root`);
}

function nft(args: string[]): string {
  const bin = nftPath();
  if (!bin) throw new Error('nft not found (apt-get install -y nftables)');
  return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function countersStart(ips: string[]): void {
  try {
    nft(['delete', 'table', 'ip', NFT_TABLE]);
  } catch {
    // not there
  }
  nft(['add', 'table', 'ip', NFT_TABLE]);
  nft(['add', 'chain', 'ip', NFT_TABLE, 'out', '{ type filter hook output priority 0 ; }']);
  for (const ip of ips) nft(['add', 'rule', 'ip', NFT_TABLE, 'out', 'ip', 'saddr', ip, 'counter']);
}

function countersRead(): Map<string, number> {
  const out = JSON.parse(nft(['-j', 'list', 'table', 'ip', NFT_TABLE])) as {
    nftables: { rule?: { expr: Record<string, unknown>[] } }[];
  };
  const bytes = new Map<string, number>();
  for (const item of out.nftables) {
    if (!item.rule) continue;
    let ip = '';
    let n = 0;
    for (const e of item.rule.expr) {
      const match = e.match as { right?: string } | undefined;
      if (match?.right) ip = match.right;
      const counter = e.counter as { bytes?: number } | undefined;
      if (counter) n = counter.bytes ?? 0;
    }
    if (ip) bytes.set(ip, n);
  }
  return bytes;
}

function countersStop(): void {
  try {
    nft(['delete', 'table', 'ip', NFT_TABLE]);
  } catch {
    // already gone
  }
}

// ---- polling ----

async function pollAll(
  sys: GossipSystem,
  agents: number[],
): Promise<Map<number, Map<string, Status> | undefined>> {
  const views = new Map<number, Map<string, Status> | undefined>();
  let next = 0;
  const worker = async () => {
    while (next < agents.length) {
      const i = agents[next++];
      views.set(i, await sys.members(i).catch(() => undefined));
    }
  };
  await Promise.all(Array.from({ length: POLL_CONCURRENCY }, worker));
  return views;
}

/**
 * Polls in rounds until `done(view)` holds for every agent; returns, per agent, the time (ms since
 * `t0`) of the round in which it first held.
 */
async function until(
  what: string,
  sys: GossipSystem,
  agents: number[],
  t0: number,
  done: (view: Map<string, Status>) => boolean,
  rounds: number[],
): Promise<Map<number, number>> {
  const at = new Map<number, number>();
  const deadline = performance.now() + PHASE_TIMEOUT_MS;
  while (at.size < agents.length) {
    if (performance.now() > deadline) {
      throw new Error(
        `${sys.name}: timed out after ${PHASE_TIMEOUT_MS / 1000} s waiting for ${what} (${at.size}/${agents.length} agents)`,
      );
    }
    const started = performance.now();
    const views = await pollAll(
      sys,
      agents.filter((i) => !at.has(i)),
    );
    const now = performance.now();
    rounds.push(now - started);
    for (const [i, v] of views) if (v && done(v)) at.set(i, now - t0);
  }
  return at;
}

async function runSystem(sys: GossipSystem, n: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `bench-gossip-${sys.name}-`));
  trackDir(dir);
  const all = Array.from({ length: n }, (_, k) => k + 1);
  const rounds: number[] = [];
  const pids = new Map<number, number>();
  const children = new Map<number, ReturnType<GossipSystem['spawn']>>();
  try {
    // 1. Start everyone alone; once all answer, everyone joins agent 1 at once.
    const firstSpawn = performance.now();
    const key = randomBytes(32).toString('base64');
    for (const i of all) children.set(i, sys.spawn(i, dir, key));
    for (const [i, c] of children) pids.set(i, c.pid as number);
    const readyAt = await until('every agent to answer', sys, all, firstSpawn, () => true, []);
    const startup = Math.max(...readyAt.values());
    await sleep(2_000); // let start-up work (JIT, first timers) settle before timing the join
    const names = all.map((i) => sys.memberName(i));
    const allAlive = (v: Map<string, Status>) => names.every((nm) => v.get(nm) === 'alive');
    const joinAt = performance.now();
    // A join that fails under the load of N simultaneous ones is retried, as -retry-join would
    // (which retries until it succeeds), until the join phase times out.
    const joinWithRetry = async (i: number) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await sys.join(i);
          return;
        } catch (err) {
          if (performance.now() - joinAt > PHASE_TIMEOUT_MS) throw err;
          console.log(
            `${sys.name}: join of agent ${i} failed (attempt ${attempt}): ${(err as Error).message.trim()}`,
          );
          await sleep(1_000);
        }
      }
    };
    const joins = Promise.all(all.slice(1).map(joinWithRetry));
    joins.catch(() => undefined); // reported through `until` timing out if it matters
    const joined = await until('every agent to list N alive', sys, all, joinAt, allAlive, rounds);
    await joins;

    // 2. Settle (false failures counted), then idle.
    let falseFailures = 0;
    const watchFor = async (ms: number, observed: number[]) => {
      const from = performance.now();
      while (performance.now() - from < ms) {
        await sleep(2_000);
        const views = await pollAll(sys, observed);
        for (const v of views.values()) {
          if (!v) continue;
          for (const nm of names) if (v.get(nm) !== 'alive') falseFailures++;
        }
      }
    };
    await watchFor((SETTLE_S ?? Math.max(n, 30)) * 1000, all);
    countersStart(all.map((i) => sys.ip(i)));
    const cpu0 = new Map(all.map((i) => [i, cpuSeconds(pids.get(i) as number)]));
    const idleStart = performance.now();
    // Only agent 1 is asked during the idle window: answering the bench's polls is not idle work
    // (a members request cost a meshd agent several ms of CPU), and a failure declaration reaches
    // every member's view, agent 1's too.
    await watchFor(IDLE_S * 1000, all.slice(0, 1));
    const idleS = (performance.now() - idleStart) / 1000;
    const bytes = countersRead();
    countersStop();
    const cpu = all.map((i) => ((cpuSeconds(pids.get(i) as number) - (cpu0.get(i) ?? 0)) * 1000) / idleS);
    const rss = all.map((i) => rssMiB(pids.get(i) as number));
    const sent = all.map((i) => (bytes.get(sys.ip(i)) ?? 0) / idleS);

    // 3. kill -9 of the last agent.
    const victim = n;
    const victimName = sys.memberName(victim);
    const watchers = all.filter((i) => i !== victim);
    process.kill(pids.get(victim) as number, 'SIGKILL');
    const killedAt = performance.now();
    const detected = await until(
      `${victimName} failed everywhere`,
      sys,
      watchers,
      killedAt,
      (v) => v.get(victimName) === 'failed',
      rounds,
    );

    // 4. Graceful leave of agent n-1.
    const leaver = n - 1;
    const leaverName = sys.memberName(leaver);
    const stayers = watchers.filter((i) => i !== leaver);
    const leaveAt = performance.now();
    await sys.leave(leaver).catch(() => undefined);
    const left = await until(
      `${leaverName} left everywhere`,
      sys,
      stayers,
      leaveAt,
      (v) => v.get(leaverName) === 'left',
      rounds,
    );

    return {
      startup,
      join: Math.max(...joined.values()),
      rssMeanMiB: rss.reduce((a, b) => a + b, 0) / n,
      rssMaxMiB: Math.max(...rss),
      cpuMsPerSec: cpu.reduce((a, b) => a + b, 0) / n,
      bytesPerSec: sent.reduce((a, b) => a + b, 0) / n,
      falseFailures,
      detectFirst: Math.min(...detected.values()),
      detectAll: Math.max(...detected.values()),
      leaveAll: Math.max(...left.values()),
      pollRoundMs: rounds.reduce((a, b) => a + b, 0) / Math.max(1, rounds.length),
    };
  } finally {
    countersStop();
    for (const c of children.values()) {
      if (c.exitCode === null && c.signalCode === null && c.pid) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await cleanup(1_000);
  }
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');

function table(n: number, m: Result | undefined, r: Result | undefined): string {
  const rows: [string, (x: Result) => number, (v: number) => string, string][] = [
    ['join: all N alive everywhere', (x) => x.join, s, '≤ Serf'],
    ['start-up: all N processes answering', (x) => x.startup, s, ''],
    ['kill -9: first agent reports failed', (x) => x.detectFirst, s, '≤ Serf'],
    ['kill -9: all agents report failed', (x) => x.detectAll, s, '≤ Serf'],
    ['leave: all agents report left', (x) => x.leaveAll, s, '≤ Serf'],
    ['RSS per agent, mean (MiB)', (x) => x.rssMeanMiB, (v) => v.toFixed(1), '≤ 100 MB'],
    ['RSS per agent, max (MiB)', (x) => x.rssMaxMiB, (v) => v.toFixed(1), ''],
    ['CPU ms per agent per s, idle', (x) => x.cpuMsPerSec, (v) => v.toFixed(2), '≤ 2x Serf'],
    ['bytes sent per agent per s, idle', (x) => x.bytesPerSec, (v) => v.toFixed(0), ''],
    ['false failures', (x) => x.falseFailures, (v) => String(v), '0'],
    ['poll round (resolution)', (x) => x.pollRoundMs, (v) => `${v.toFixed(0)} ms`, ''],
  ];
  return markdownTable(
    [`N = ${n}`, 'meshd', 'Serf', 'meshd/Serf', 'target'],
    rows.map(([label, get, fmt, target]) => [
      label,
      m ? fmt(get(m)) : '—',
      r ? fmt(get(r)) : '—',
      m && r ? ratio(get(m), get(r)) : '—',
      target,
    ]),
    1,
  );
}

async function main(): Promise<void> {
  installCleanup();
  const runSerf = values.only !== 'meshd';
  const runMeshd = values.only !== 'serf';
  let serfVersion = 'not run';
  if (runSerf) {
    const have = ensureSerf();
    if ('missing' in have) throw new Error(have.missing);
    serfVersion = have.version;
  }
  ensureNft();
  console.log(machineLine());
  const sections: string[] = [];
  for (const n of SIZES) {
    console.log(`\n== N = ${n} ==`);
    const failures: string[] = [];
    const attempt = async (sys: GossipSystem): Promise<Result | undefined> => {
      try {
        const res = await runSystem(sys, n);
        console.log(sys.name, res);
        return res;
      } catch (err) {
        const msg = (err as Error).message.split('\n')[0];
        console.log(`${sys.name} at N=${n} failed: ${msg}`);
        failures.push(`${sys.name} at N=${n} did not complete: ${msg}`);
        return undefined;
      }
    };
    const m = runMeshd ? await attempt(meshd) : undefined;
    const r = runSerf ? await attempt(serf) : undefined;
    const t = [table(n, m, r), ...failures.map((f) => `\n${f}`)].join('\n');
    console.log(`\n${t}`);
    sections.push(t);
  }
  if (!values['no-record'] && runMeshd && runSerf) {
    appendResults(
      [
        `## bench:gossip — ${today()}`,
        '',
        wrapProse(
          `${machineLine()}. meshd (1 server + N−1 clients, LAN profile, log level warn) vs ${serfVersion} ` +
            `(defaults, LAN), both encrypted (\`-encrypt\`, a random 32-byte key per cluster), N processes ` +
            'each on their own loopback address, one system after the other. ' +
            `After the join a settle of ${SETTLE_S ?? 'max(N, 30)'} s (every agent polled every 2 s), then idle ` +
            `${IDLE_S} s (agent 1 alone polled, so that idle CPU is not the cost of answering the bench). ` +
            "Bytes are what each agent's address sent on lo (nftables counters, headers included).",
        ),
        '',
        ...sections.flatMap((t) => [t, '']),
      ].join('\n'),
    );
  }
}

main().catch((err: unknown) => {
  console.error(`bench:gossip failed: ${(err as Error).message}`);
  countersStop();
  process.exitCode = 1;
});
