/**
 * `npm run bench:checks [-- --checks 1000 --seconds 60 --agent client|dev|both --no-record]`
 *
 * What check runners cost one agent (issue target: 1,000 HTTP checks at a 10 s interval under 5% of
 * one core). Checks run where services run, which is on client agents mostly, and a client agent
 * runs with other V8 settings than a server (src/cli/v8-tuning.ts), so both are measured:
 * `client` is a client agent joined to a `-dev` server on another address, `dev` a `-dev` agent.
 * For each:
 * 1. Starts a local HTTP server (in this process) answering `200 ok`, and the agent.
 * 2. Idle: the agent's CPU over `seconds` with nothing registered.
 * 3. Registers `checks` services `svc-<i>` over `PUT /v1/agent/service/register`, each with an HTTP
 *    check on the server at a 10 s interval, and waits until every check has run once (passing).
 * 4. Loaded: the agent's CPU over `seconds`, and how many check requests the server saw meanwhile.
 * CPU is user + system time of the agent process from /proc/<pid>/stat, in % of one core.
 */

import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startAgent, waitFor, waitLeader } from '../../test/support/agent-process.ts';
import {
  appendResults,
  cleanup,
  cpuSeconds,
  installCleanup,
  machineLine,
  markdownTable,
  rssMiB,
  sleep,
  today,
  trackChild,
  trackDir,
} from '../support/host.ts';

const { values } = parseArgs({
  options: {
    checks: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
    agent: { type: 'string', default: 'both' },
    record: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const CHECKS = Number(values.checks);
const SECONDS = Number(values.seconds);
const INTERVAL = '10s';
const kinds = values.agent === 'both' ? ['client', 'dev'] : [values.agent];
for (const k of kinds)
  if (k !== 'client' && k !== 'dev') throw new Error(`--agent: client, dev or both, not ${k}`);
const KINDS = kinds as ('client' | 'dev')[];

installCleanup();
const machine = machineLine();
console.log(`machine: ${machine}`);

let served = 0;
const target = createServer((_req, res) => {
  served++;
  res.end('ok');
});
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}/health`;

/** The agent's CPU in % of one core over `seconds`, and the requests served meanwhile. */
async function window(pid: number): Promise<{ cpu: number; requests: number }> {
  const c0 = cpuSeconds(pid);
  const s0 = served;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  return { cpu: ((cpuSeconds(pid) - c0) / elapsed) * 100, requests: served - s0 };
}

async function register(http: string, i: number): Promise<void> {
  const r = await fetch(`${http}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ Name: `svc-${i}`, Port: 10_000 + i, Check: { HTTP: url, Interval: INTERVAL } }),
  });
  if (r.status !== 200) throw new Error(`register svc-${i}: ${r.status} ${await r.text()}`);
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);

interface Measured {
  kind: 'client' | 'dev';
  idle: { cpu: number; requests: number };
  loaded: { cpu: number; requests: number };
  rssIdle: number;
  rssLoaded: number;
  registerSeconds: number;
}

/** Starts the agent the checks run on (`client`: with a -dev server of its own to join). */
async function agentFor(kind: 'client' | 'dev'): Promise<{ http: string; pid: number }> {
  const dev = await startAgent(['-dev', '-log-level=warn'], { host: '127.0.0.51' });
  trackChild(dev.child);
  await waitLeader(dev);
  if (kind === 'dev') return { http: dev.http, pid: dev.child.pid as number };
  const dataDir = mkdtempSync(join(tmpdir(), 'meshd-bench-checks-'));
  trackDir(dataDir);
  const client = await startAgent(
    ['-node=bench-client', '-log-level=warn', `-data-dir=${dataDir}`, `-retry-join=${dev.gossip}`],
    {
      host: '127.0.0.52',
    },
  );
  trackChild(client.child);
  await waitLeader(client);
  return { http: client.http, pid: client.child.pid as number };
}

async function measure(kind: 'client' | 'dev'): Promise<Measured> {
  const agent = await agentFor(kind);
  const pid = agent.pid;
  console.log(`${kind}: idle agent, measuring ${SECONDS} s`);
  const idle = await window(pid);
  const rssIdle = rssMiB(pid);

  const t0 = performance.now();
  for (let i = 0; i < CHECKS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, CHECKS - i) }, (_, j) => register(agent.http, i + j)),
    );
  }
  const registerSeconds = (performance.now() - t0) / 1000;
  console.log(
    `${kind}: registered ${CHECKS} checks in ${fmt(registerSeconds)} s; waiting for each to run once`,
  );
  await waitFor(
    'every check to have run once',
    async () => {
      const r = await fetch(
        `${agent.http}/v1/agent/checks?filter=${encodeURIComponent('Status == "passing"')}`,
      );
      return Object.keys((await r.json()) as object).length === CHECKS;
    },
    120_000,
    500,
  );
  console.log(`${kind}: ${CHECKS} checks, measuring ${SECONDS} s`);
  const loaded = await window(pid);
  const rssLoaded = rssMiB(pid);
  await cleanup();
  return { kind, idle, loaded, rssIdle, rssLoaded, registerSeconds };
}

try {
  const results: Measured[] = [];
  for (const kind of KINDS) results.push(await measure(kind));
  const expected = (CHECKS * SECONDS) / 10;
  const name = { client: 'client agent', dev: '`-dev` agent (a server)' };
  const table = markdownTable(
    ['agent', 'CPU % of one core', 'check requests served', 'RSS MiB'],
    results.flatMap((m) => [
      [`${name[m.kind]}, idle`, fmt(m.idle.cpu, 2), String(m.idle.requests), fmt(m.rssIdle)],
      [
        `${name[m.kind]}, ${CHECKS} HTTP checks at ${INTERVAL}`,
        fmt(m.loaded.cpu, 2),
        String(m.loaded.requests),
        fmt(m.rssLoaded),
      ],
    ]),
    1,
  );
  const verdicts = results.map(
    (m) =>
      `${name[m.kind]}: checks cost ${fmt(m.loaded.cpu - m.idle.cpu, 2)} points of a core over idle, ` +
      `${fmt(m.loaded.cpu, 2)}% in all (${m.loaded.cpu <= 5 ? 'within' : 'over'} the 5% target); ` +
      `registering took ${fmt(m.registerSeconds)} s.`,
  );
  console.log(`\n${table}\n`);
  for (const v of verdicts) console.log(v);
  console.log(`(~${expected} check requests expected per window)`);

  if (values.record) {
    appendResults(
      [
        `## bench:checks — ${today()}`,
        '',
        `Machine: ${machine}.`,
        `Command: \`npm run bench:checks\` (--checks ${CHECKS} --seconds ${SECONDS} --agent ${values.agent}). ` +
          `${CHECKS} services registered over the agent API, each with an HTTP check at a ${INTERVAL} ` +
          `interval against one local HTTP server (in the bench process) answering \`200 ok\`; the client ` +
          `agent is joined to a \`-dev\` server on another address. Agent CPU is user + system time from ` +
          `/proc/<pid>/stat over ${SECONDS} s, in % of one core, measured once every check had run (passing).`,
        '',
        table,
        '',
        ...verdicts.map((v) => `- ${v}`),
        '',
      ].join('\n'),
    );
    console.log('\nappended to bench/RESULTS.md');
  }
} finally {
  target.closeAllConnections();
  target.close();
  await cleanup();
}
