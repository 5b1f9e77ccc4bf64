/**
 * End to end through a real `meshd agent -dev`: a service registered over the agent API with an
 * HTTP check turns passing in the catalog, then critical when its target starts failing.
 */

import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

interface HealthEntry {
  Checks: { CheckID: string; Status: string; Output: string }[];
}

test('an HTTP check registered over the API drives /v1/health/service', async (t) => {
  let code = 200;
  const target = createServer((_req, res) => res.writeHead(code).end(code === 200 ? 'up' : 'down'));
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}/health`;
  const agent = await startAgent(['-dev']);
  t.teardown(async () => {
    await agent.stop();
    target.closeAllConnections();
    target.close();
  });
  await waitLeader(agent);

  const reg = await fetch(`${agent.http}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ Name: 'web', Port: 8080, Check: { HTTP: url, Interval: '1s', Timeout: '1s' } }),
  });
  t.is(reg.status, 200, await reg.text());

  const webCheck = async () => {
    const r = await fetch(`${agent.http}/v1/health/service/web`);
    const entries = (await r.json()) as HealthEntry[];
    return entries[0]?.Checks.find((c) => c.CheckID === 'service:web');
  };
  const passing = await waitFor('web passing', async () => {
    const c = await webCheck();
    return c?.Status === 'passing' ? c : undefined;
  });
  t.is(passing.Output, `HTTP GET ${url}: 200 OK Output: up`);

  code = 503;
  const critical = await waitFor('web critical', async () => {
    const c = await webCheck();
    return c?.Status === 'critical' ? c : undefined;
  });
  t.is(critical.Output, `HTTP GET ${url}: 503 Service Unavailable Output: down`);

  const passingOnly = await fetch(`${agent.http}/v1/health/service/web?passing`);
  t.deepEqual(await passingOnly.json(), []);
});
