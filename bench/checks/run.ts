/**
 * `npm run bench:checks [-- --checks 1000 --seconds 60 --no-record]`
 *
 * What check runners cost one `meshd agent -dev` (issue target: 1,000 HTTP checks at a 10 s
 * interval under 5% of one core):
 * 1. Starts a local HTTP server (in this process) answering `200 ok`, and the agent.
 * 2. Idle: the agent's CPU over `seconds` with nothing registered.
 * 3. Registers `checks` services `svc-<i>` over `PUT /v1/agent/service/register`, each with an HTTP
 *    check on the server at a 10 s interval, and waits until every check has run once (passing).
 * 4. Loaded: the agent's CPU over `seconds`, and how many check requests the server saw meanwhile.
 * CPU is user + system time of the agent process from /proc/<pid>/stat, in % of one core.
 */

import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
} from '../support/host.ts';

const { values } = parseArgs({
  options: {
    checks: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
    record: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const CHECKS = Number(values.checks);
const SECONDS = Number(values.seconds);
const INTERVAL = '10s';

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

try {
  const agent = await startAgent(['-dev', '-log-level=warn']);
  trackChild(agent.child);
  await waitLeader(agent);
  const pid = agent.child.pid as number;

  console.log(`idle agent: measuring ${SECONDS} s`);
  const idle = await window(pid);
  const rssIdle = rssMiB(pid);

  const t0 = performance.now();
  for (let i = 0; i < CHECKS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, CHECKS - i) }, (_, j) => register(agent.http, i + j)),
    );
  }
  const registerSeconds = (performance.now() - t0) / 1000;
  console.log(`registered ${CHECKS} checks in ${fmt(registerSeconds)} s; waiting for each to run once`);
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

  console.log(`${CHECKS} checks: measuring ${SECONDS} s`);
  const loaded = await window(pid);
  const rssLoaded = rssMiB(pid);
  const expected = (CHECKS * SECONDS) / 10;

  const table = markdownTable(
    ['agent', 'CPU % of one core', 'check requests served', 'RSS MiB'],
    [
      ['idle, nothing registered', fmt(idle.cpu, 2), String(idle.requests), fmt(rssIdle)],
      [
        `${CHECKS} HTTP checks, ${INTERVAL} interval`,
        fmt(loaded.cpu, 2),
        String(loaded.requests),
        fmt(rssLoaded),
      ],
    ],
    1,
  );
  const verdict = loaded.cpu <= 5 ? 'within' : 'over';
  console.log(`\n${table}\n`);
  console.log(
    `checks cost ${fmt(loaded.cpu - idle.cpu, 2)} points of a core over idle (${verdict} the 5% target); ` +
      `${loaded.requests} of ~${expected} expected requests in the window`,
  );

  if (values.record) {
    appendResults(
      [
        `## bench:checks — ${today()}`,
        '',
        `Machine: ${machine}.`,
        `Command: \`npm run bench:checks\` (--checks ${CHECKS} --seconds ${SECONDS}). One \`meshd agent -dev\` ` +
          `on 127.0.0.1; ${CHECKS} services registered over the agent API, each with an HTTP check at a ` +
          `${INTERVAL} interval against one local HTTP server (in the bench process) answering \`200 ok\`. ` +
          `Agent CPU is user + system time from /proc/<pid>/stat over ${SECONDS} s, in % of one core, ` +
          `measured once every check had run (passing); registering took ${fmt(registerSeconds)} s.`,
        '',
        table,
        '',
        `Checks cost ${fmt(loaded.cpu - idle.cpu, 2)} points of a core over the idle agent (target: ≤ 5% ` +
          `in all, ${verdict}).`,
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
