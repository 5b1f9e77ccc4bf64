/**
 * Anti-entropy and the persisted local state through real agent processes: what a user registered
 * over the API survives kill -9, and the catalog is repaired when edited behind the agent's back.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { freePorts, startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

interface CatalogService {
  ServiceID: string;
  ServicePort: number;
  CreateIndex: number;
}

async function catalogService(http: string, name: string): Promise<CatalogService[]> {
  const r = await fetch(`${http}/v1/catalog/service/${name}`);
  return (await r.json()) as CatalogService[];
}

async function agentServices(http: string): Promise<string[]> {
  const r = await fetch(`${http}/v1/agent/services`);
  return Object.keys((await r.json()) as Record<string, unknown>);
}

/** The agent's `meshd.agent.local.out_of_sync` gauge: local entries not yet in the catalog. */
async function outOfSync(http: string): Promise<number | undefined> {
  const r = await fetch(`${http}/v1/agent/metrics`);
  const { Gauges } = (await r.json()) as { Gauges: { Name: string; Value: number }[] };
  return Gauges.find((g) => g.Name === 'meshd.agent.local.out_of_sync')?.Value;
}

async function put(url: string, body?: unknown): Promise<void> {
  const r = await fetch(url, { method: 'PUT', body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`PUT ${url}: ${r.status} ${await r.text()}`);
}

test('an API-registered service survives kill -9; one deleted from the catalog behind the agent comes back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-ae-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'ae.json');
  await writeFile(config, JSON.stringify({ ae_interval: '1s' }));
  const args = [
    '-server',
    '-bootstrap',
    `-data-dir=${join(dir, 'data')}`,
    '-node=solo',
    `-config-file=${config}`,
  ];

  const a = await startAgent(args);
  t.teardown(() => a.stop('SIGKILL'));
  await waitLeader(a);
  await put(`${a.http}/v1/agent/service/register`, {
    Name: 'web',
    ID: 'web-1',
    Port: 8080,
    Check: { TTL: '10m', Status: 'passing' },
  });
  await put(`${a.http}/v1/agent/check/register`, { Name: 'disk', TTL: '10m' });
  await put(`${a.http}/v1/agent/check/warn/disk?note=${encodeURIComponent('91% full')}`);

  // Acknowledged means persisted: kill -9 right after the answers.
  t.is(await a.stop('SIGKILL'), null);
  const b = await startAgent(args);
  t.teardown(() => b.stop('SIGKILL'));
  await waitLeader(b);
  t.deepEqual(await agentServices(b.http), ['web-1']);
  const checks = (await (await fetch(`${b.http}/v1/agent/checks`)).json()) as Record<
    string,
    { Status: string; Output: string }
  >;
  t.is(checks.disk?.Status, 'warning');
  t.is(checks.disk?.Output, '91% full');
  let before: CatalogService | undefined;
  await waitFor('web-1 in the catalog after the restart', async () => {
    before = (await catalogService(b.http, 'web')).find((s) => s.ServiceID === 'web-1');
    return before !== undefined;
  });

  // Behind the agent's back: the catalog loses the service, then gets a stranger on this node.
  // With a 1 s period anti-entropy may repair before any read here could see the hole, so the
  // deletion shows as a new registration: a CreateIndex past the one before.
  await put(`${b.http}/v1/catalog/deregister`, { Node: 'solo', ServiceID: 'web-1' });
  await put(`${b.http}/v1/catalog/register`, {
    Node: 'solo',
    Address: '127.0.0.1',
    Service: { ID: 'stranger', Service: 'stranger', Port: 1 },
  });
  await waitFor('anti-entropy to restore web-1 and remove the stranger', async () => {
    const web = await catalogService(b.http, 'web');
    const stranger = await catalogService(b.http, 'stranger');
    return (
      web.length === 1 &&
      web[0].ServicePort === 8080 &&
      web[0].CreateIndex > (before?.CreateIndex ?? Number.POSITIVE_INFINITY) &&
      stranger.length === 0
    );
  });
  t.is(await b.stop('SIGTERM'), 0);
});

test("a server that comes back without its data gets the client's services within seconds, not at the next period", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-ae-up-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const serverHost = '127.0.0.61';
  const [serverSerf, serverHttp, serverRpc] = await freePorts(3, serverHost);
  const serverArgs = ['-server', '-bootstrap', `-data-dir=${join(dir, 'server')}`, '-node=s1'];
  const serverOpts = { host: serverHost, serfPort: serverSerf, httpPort: serverHttp, serverPort: serverRpc };
  const s1 = await startAgent(serverArgs, serverOpts);
  t.teardown(() => s1.stop('SIGKILL'));
  await waitLeader(s1);
  // A full-sync period far longer than the test: only the server-up trigger can repair in time.
  const config = join(dir, 'client.json');
  await writeFile(config, JSON.stringify({ ae_interval: '10m' }));
  const c1 = await startAgent(
    [`-data-dir=${join(dir, 'client')}`, '-node=c1', `-retry-join=${s1.gossip}`, `-config-file=${config}`],
    { host: '127.0.0.62' },
  );
  t.teardown(() => c1.stop('SIGKILL'));
  await waitLeader(c1);
  await put(`${c1.http}/v1/agent/service/register`, { Name: 'api', ID: 'api-1', Port: 9090 });
  await waitFor('api-1 in the catalog', async () => (await catalogService(s1.http, 'api')).length === 1);
  // and the client has the write's answer: otherwise its retry would repair, not the trigger.
  await waitFor('c1 to have nothing left to push', async () => (await outOfSync(c1.http)) === 0);

  // The server dies and loses its disk; the client notices it failed.
  await s1.stop('SIGKILL');
  await rm(join(dir, 'server'), { recursive: true, force: true });
  await waitFor(
    'c1 to see s1 failed',
    async () => {
      const r = await fetch(`${c1.http}/v1/agent/members`);
      const members = (await r.json()) as { Name: string; Status: number }[];
      return members.find((m) => m.Name === 's1')?.Status === 4;
    },
    30_000,
  );

  // Back, empty, on the same addresses; it joins the client.
  const s2 = await startAgent([...serverArgs, `-retry-join=${c1.gossip}`], serverOpts);
  t.teardown(() => s2.stop('SIGKILL'));
  await waitLeader(s2);
  const back = Date.now();
  await waitFor(
    'api-1 and c1 in the new catalog',
    async () => {
      const api = await catalogService(s2.http, 'api');
      return api.length === 1 && api[0].ServicePort === 9090;
    },
    20_000,
  );
  t.log(`repaired ${Date.now() - back} ms after the server had a leader again`);
  t.regex(c1.logs(), /anti-entropy: catalog differs/);
});
