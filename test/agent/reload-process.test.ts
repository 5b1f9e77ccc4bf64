/**
 * SIGHUP through a real agent process: changed configuration files are applied (a new service, a
 * changed one, one removed), and a broken file is logged and changes nothing.
 */

import { createSocket } from 'node:dgram';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import dnsPacket from 'dns-packet';
import { exchangeUdp } from '../../src/api/dns/recursor.ts';
import { freePort, startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

async function services(http: string): Promise<Record<string, number>> {
  const r = await fetch(`${http}/v1/agent/services`);
  const body = (await r.json()) as Record<string, { Port: number }>;
  return Object.fromEntries(Object.entries(body).map(([id, s]) => [id, s.Port]));
}

test('SIGHUP applies changed config files; a broken one is logged and changes nothing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-hup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const conf = join(dir, 'conf');
  await mkdir(conf);
  await writeFile(join(conf, 'web.json'), JSON.stringify({ service: { name: 'web', port: 80 } }));
  await writeFile(join(conf, 'old.json'), JSON.stringify({ service: { name: 'old', port: 1 } }));
  const a = await startAgent(['-dev', `-config-dir=${conf}`], { host: '127.0.0.71' });
  t.teardown(() => a.stop('SIGKILL'));
  await waitLeader(a);
  t.deepEqual(await services(a.http), { web: 80, old: 1 });
  const pid = a.child.pid as number;

  await writeFile(join(conf, 'web.json'), JSON.stringify({ service: { name: 'web', port: 8080 } }));
  await writeFile(join(conf, 'api.json'), JSON.stringify({ services: [{ name: 'api', port: 9090 }] }));
  await unlink(join(conf, 'old.json'));
  process.kill(pid, 'SIGHUP');
  await waitFor('the reload to apply', async () => {
    const s = await services(a.http);
    return s.web === 8080 && s.api === 9090 && s.old === undefined;
  });
  t.regex(a.logs(), /reloaded on SIGHUP/);

  await writeFile(join(conf, 'api.json'), '{"services": [{"name": "api", "port": ');
  await writeFile(join(conf, 'web.json'), JSON.stringify({ service: { name: 'web', port: 1234 } }));
  process.kill(pid, 'SIGHUP');
  await waitFor('the failed reload to be logged', () => /reload on SIGHUP failed/.test(a.logs()));
  t.deepEqual(await services(a.http), { web: 8080, api: 9090 }, 'nothing of the broken reload applied');
  t.is(a.child.exitCode, null, 'the agent is still up');
  t.is(await a.stop('SIGTERM'), 0);
});

test('SIGHUP applies dns_config: only_passing drops a warning instance from the next answer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-hup-dns-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const conf = join(dir, 'conf');
  await mkdir(conf);
  await writeFile(
    join(conf, 'web.json'),
    JSON.stringify({ service: { name: 'web', port: 80, check: { ttl: '10m', status: 'warning' } } }),
  );
  const host = '127.0.0.72';
  const dnsPort = await freePort(host);
  const a = await startAgent(['-dev', `-config-dir=${conf}`, `-dns-port=${dnsPort}`], { host });
  t.teardown(() => a.stop('SIGKILL'));
  await waitLeader(a);
  const ask = async () =>
    dnsPacket.decode(
      await exchangeUdp(
        dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'web.service.consul' }] }),
        { host, port: dnsPort },
        2_000,
      ),
    );
  await waitFor('web in DNS', async () => ((await ask()).answers ?? []).length === 1);

  await writeFile(join(conf, 'dns.json'), JSON.stringify({ dns_config: { only_passing: true } }));
  process.kill(a.child.pid as number, 'SIGHUP');
  await waitFor('the reload', () => /reloaded on SIGHUP/.test(a.logs()));
  const after = await ask();
  t.is((after as unknown as { rcode: string }).rcode, 'NXDOMAIN');
  t.deepEqual(after.answers ?? [], []);

  // The DNS server's counters are in the agent's metrics; a garbage packet counts as malformed.
  const dnsStat = async (stat: string): Promise<number> => {
    const m = (await (await fetch(`${a.http}/v1/agent/metrics`)).json()) as {
      Gauges: { Name: string; Value: number; Labels: Record<string, string> }[];
    };
    return m.Gauges.find((g) => g.Name === 'meshd.dns' && g.Labels.stat === stat)?.Value ?? -1;
  };
  t.true((await dnsStat('queries')) >= 2);
  t.is(await dnsStat('udpSendErrors'), 0, 'exported, and nothing lost on loopback');
  t.is(await dnsStat('udpSocketErrors'), 0);
  const before = await dnsStat('malformed');
  const sock = createSocket('udp4');
  t.teardown(() => sock.close());
  sock.send(Buffer.from([1, 2, 3]), dnsPort, host);
  await waitFor('the runt counted', async () => (await dnsStat('malformed')) === before + 1);
});
