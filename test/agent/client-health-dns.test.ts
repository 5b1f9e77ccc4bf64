/**
 * Issue 5 through a client agent (real processes): a service registered on the client with an HTTP
 * check reaches the catalog through the server; the client's DNS answers it (its cache reads
 * through the server RPC) while the check passes and drops it once the check fails.
 */

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { freePort, startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

const run = promisify(execFile);

async function digA(host: string, port: number, name: string): Promise<{ status: string; addrs: string[] }> {
  const { stdout } = await run('dig', [`@${host}`, '-p', String(port), '+time=2', '+tries=1', name, 'A']);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? '';
  const addrs = [...stdout.matchAll(/^\S+\s+\d+\s+IN\s+A\s+(\S+)$/gm)].map((m) => m[1]);
  return { status, addrs };
}

test('a client agent runs the HTTP check of its service and answers DNS for it through the server', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'meshd-client-dns-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));

  // The service's health endpoint: healthy until told otherwise.
  let healthy = true;
  const target = createServer((_req, res) => {
    res.statusCode = healthy ? 200 : 503;
    res.end(healthy ? 'ok' : 'down');
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.61', r));
  t.teardown(() => target.close());
  const targetPort = (target.address() as AddressInfo).port;

  const server = await startAgent(
    ['-server', '-bootstrap', `-data-dir=${join(root, 'server')}`, '-node=srv', '-log-level=warn'],
    { host: '127.0.0.60' },
  );
  t.teardown(() => server.stop('SIGKILL'));
  await waitLeader(server);

  const dnsPort = await freePort('127.0.0.61');
  const client = await startAgent(
    [
      `-data-dir=${join(root, 'client')}`,
      '-node=cli',
      '-log-level=warn',
      `-retry-join=${server.gossip}`,
      '-retry-interval=1s',
      `-dns-port=${dnsPort}`,
    ],
    { host: '127.0.0.61' },
  );
  t.teardown(() => client.stop('SIGKILL'));
  await waitLeader(client);

  const reg = await fetch(`${client.http}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({
      Name: 'web',
      Port: targetPort,
      Check: { HTTP: `http://127.0.0.61:${targetPort}/health`, Interval: '1s' },
    }),
  });
  t.is(reg.status, 200, await reg.text());

  // Passing in the catalog (read from the server), then answered by the client's DNS.
  await waitFor('web passing in the catalog', async () => {
    const r = await fetch(`${server.http}/v1/health/service/web?passing`);
    const rows = (await r.json()) as { Node: { Node: string } }[];
    return rows.length === 1 && rows[0].Node.Node === 'cli';
  });
  await waitFor('web answered by the client DNS', async () => {
    const a = await digA('127.0.0.61', dnsPort, 'web.service.consul');
    return a.status === 'NOERROR' && a.addrs.length === 1 && a.addrs[0] === '127.0.0.61';
  });

  // The check fails: critical in the catalog, and the name no longer resolves.
  healthy = false;
  await waitFor('web critical in the catalog', async () => {
    const r = await fetch(`${server.http}/v1/health/checks/web`);
    const rows = (await r.json()) as { Status: string; Output: string }[];
    return rows.length === 1 && rows[0].Status === 'critical' && rows[0].Output.includes('503');
  });
  await waitFor('web gone from the client DNS', async () => {
    const a = await digA('127.0.0.61', dnsPort, 'web.service.consul');
    return a.status === 'NXDOMAIN';
  });
  t.is(await client.stop('SIGTERM'), 0);
});
