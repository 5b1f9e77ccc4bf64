/**
 * End to end: a real `meshd agent -dev` answering `dig` (Debian's dnsutils) over UDP and TCP.
 * Instances are registered through the HTTP catalog API on their own nodes with checks in every
 * state; each expectation is awaited with a deadline, since answers come from the agent's cache.
 */

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { type AgentProcess, freePorts, startAgent, waitFor, waitLeader } from '../support/agent-process.ts';

const run = promisify(execFile);

interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

interface DigReply {
  status: string;
  flags: string[];
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  size: number;
}

/** Runs dig against `host:port` and reads its sections (one try, no TCP retry unless asked). */
async function dig(host: string, port: number, args: string[]): Promise<DigReply> {
  const { stdout } = await run('dig', [`@${host}`, '-p', String(port), '+time=2', '+tries=1', ...args]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? '';
  const flags = (/;; flags: ([a-z ]+);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
  const size = Number(/MSG SIZE\s+rcvd: (\d+)/.exec(stdout)?.[1] ?? 0);
  const sections: Record<string, DigRecord[]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] };
  let current: DigRecord[] | undefined;
  for (const line of stdout.split('\n')) {
    const header = /^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (header) {
      current = sections[header[1]];
      continue;
    }
    if (line.trim() === '' || line.startsWith(';')) {
      if (line.trim() === '') current = undefined;
      continue;
    }
    const m = /^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$/.exec(line);
    if (m && current) current.push({ name: m[1], ttl: Number(m[2]), type: m[3], data: m[4] });
  }
  return {
    status,
    flags,
    answer: sections.ANSWER,
    authority: sections.AUTHORITY,
    additional: sections.ADDITIONAL,
    size,
  };
}

async function put(a: AgentProcess, path: string, body: unknown): Promise<void> {
  const r = await fetch(`${a.http}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`PUT ${path}: ${r.status} ${await r.text()}`);
}

/** An instance of `service` on its own node, with one service check in `status`. */
async function registerInstance(
  a: AgentProcess,
  node: string,
  address: string,
  service: string,
  status: 'passing' | 'warning' | 'critical',
  tags: string[] = [],
  port = 8080,
): Promise<void> {
  await put(a, '/v1/catalog/register', {
    Node: node,
    Address: address,
    Service: { ID: service, Service: service, Port: port, Tags: tags },
    Checks: [{ CheckID: `${service}-check`, Name: 'health', Status: status, ServiceID: service }],
  });
}

async function devAgent(host: string, config: object = {}): Promise<{ a: AgentProcess; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-dns-'));
  const file = join(dir, 'dns.json');
  await writeFile(file, JSON.stringify(config));
  const [port] = await freePorts(1, host);
  const a = await startAgent(['-dev', '-node=dns-agent', `-config-file=${file}`, `-dns-port=${port}`], {
    host,
  });
  const stop = a.stop.bind(a);
  a.stop = async (signal) => {
    const code = await stop(signal);
    await rm(dir, { recursive: true, force: true });
    return code;
  };
  await waitLeader(a);
  return { a, port };
}

const sorted = (rs: DigRecord[]): string[] => rs.map((r) => r.data).sort();

test('dig: A, SRV, tags, RFC 2782, nodes, addr, SOA/NS, NXDOMAIN vs NODATA, health, EDNS0, alt domain', async (t) => {
  const host = '127.0.0.21';
  const { a, port } = await devAgent(host, {
    alt_domain: 'meshd.test',
    dns_config: { service_ttl: { 'web*': '7s' } },
  });
  t.teardown(() => a.stop('SIGKILL'));
  const q = (...args: string[]) => dig(host, port, args);

  for (let i = 1; i <= 10; i++) {
    await registerInstance(a, `web-${i}`, `10.0.1.${i}`, 'web', 'passing', [i % 2 === 1 ? 'v1' : 'v2']);
  }
  await registerInstance(a, 'web-warn', '10.0.2.1', 'web', 'warning', ['v1']);
  await registerInstance(a, 'web-crit', '10.0.2.2', 'web', 'critical', ['v1']);
  await registerInstance(a, 'down-1', '10.0.3.1', 'down', 'critical');
  await registerInstance(a, 'ns-1', '10.0.9.1', 'consul', 'passing', [], 8300);

  // A: the 10 passing and the warning instance, never the critical one; TTL from service_ttl.
  const healthy = [...Array.from({ length: 10 }, (_, i) => `10.0.1.${i + 1}`), '10.0.2.1'].sort();
  const all = await waitFor('all healthy web instances over DNS', async () => {
    const r = await q('web.service.consul', 'A');
    return r.answer.length === 11 ? r : undefined;
  });
  t.is(all.status, 'NOERROR');
  t.true(all.flags.includes('aa'));
  t.deepEqual(sorted(all.answer), healthy);
  t.true(all.answer.every((r) => r.ttl === 7));

  // SRV: a target per instance, its address in the additional section.
  const srv = await q('web.service.consul', 'SRV');
  t.is(srv.answer.length, 11);
  t.true(srv.answer.some((r) => r.data === '1 1 8080 web-1.node.dc1.consul.'));
  t.true(
    srv.additional.some(
      (r) => r.name === 'web-1.node.dc1.consul.' && r.type === 'A' && r.data === '10.0.1.1',
    ),
  );
  t.false(srv.answer.some((r) => r.data.includes('web-crit')));

  // Tags, case-insensitively, and the RFC 2782 forms.
  t.deepEqual(sorted((await q('V2.Web.Service.Consul', 'A')).answer), [
    '10.0.1.10',
    '10.0.1.2',
    '10.0.1.4',
    '10.0.1.6',
    '10.0.1.8',
  ]);
  const rfc = await q('_web._v1.service.consul', 'SRV');
  t.deepEqual(
    rfc.answer.map((r) => r.data.split(' ')[3]).sort(),
    ['web-1', 'web-3', 'web-5', 'web-7', 'web-9', 'web-warn'].map((n) => `${n}.node.dc1.consul.`),
  );
  t.is((await q('_web._tcp.service.consul', 'SRV')).answer.length, 11);

  // Nodes and hex addresses.
  t.deepEqual(sorted((await q('web-3.node.consul', 'A')).answer), ['10.0.1.3']);
  t.deepEqual(sorted((await q('web-3.node.dc1.consul', 'A')).answer), ['10.0.1.3']);
  t.deepEqual(sorted((await q('0a000105.addr.dc1.consul', 'A')).answer), ['10.0.1.5']);

  // NXDOMAIN: unknown service, only critical instances, unknown node; each with the SOA.
  for (const name of ['nope.service.consul', 'down.service.consul', 'ghost.node.consul']) {
    const r = await q(name, 'A');
    t.is(r.status, 'NXDOMAIN', name);
    t.deepEqual(
      r.authority.map((x) => x.type),
      ['SOA'],
      name,
    );
  }
  // NOERROR with no answers: the service exists but has no IPv6 address.
  const nodata = await q('web.service.consul', 'AAAA');
  t.is(nodata.status, 'NOERROR');
  t.deepEqual(nodata.answer, []);
  t.is(nodata.authority[0].type, 'SOA');

  // SOA and NS for the domain, the servers from the `consul` service.
  const soa = await q('consul', 'SOA');
  t.regex(soa.answer[0].data, /^ns\.consul\. hostmaster\.consul\. \d+ 3600 600 86400 0$/);
  const ns = await q('consul', 'NS');
  t.true(ns.answer.some((r) => r.data === 'ns-1.node.dc1.consul.'));
  t.true(ns.additional.some((r) => r.name === 'ns-1.node.dc1.consul.' && r.data === '10.0.9.1'));

  // EDNS0: a 600-byte buffer gets a cut answer that fits (all 11 take ~670 bytes compressed); no
  // TC without enable_truncate.
  const small = await q('web.service.consul', 'SRV', '+bufsize=600', '+ignore');
  t.true(small.size <= 600, `${small.size} bytes`);
  t.true(small.answer.length >= 1 && small.answer.length < 11);
  t.false(small.flags.includes('tc'));
  t.is(small.additional.filter((r) => r.type === 'A').length, small.answer.length);

  // The alt domain answers the same, in its own names (over TCP: its longer names would not all
  // fit dig's 1232-byte UDP buffer).
  const alt = await q('web.service.meshd.test', 'SRV', '+tcp');
  t.is(alt.answer.length, 11);
  t.true(
    alt.answer.every((r) => r.name === 'web.service.meshd.test.' && r.data.endsWith('.node.dc1.meshd.test.')),
  );

  // Outside the domains without recursors: REFUSED.
  t.is((await q('example.com', 'A')).status, 'REFUSED');

  // An instance turning critical leaves the answers (the cache follows the catalog).
  await registerInstance(a, 'web-1', '10.0.1.1', 'web', 'critical', ['v1']);
  await waitFor('web-1 to leave the answers', async () => {
    const r = await q('web.service.consul', 'A');
    return r.answer.length === 10 && !r.answer.some((x) => x.data === '10.0.1.1');
  });
  t.pass();
});

test('dig: only_passing and enable_truncate: TC over UDP with 3 answers, the full answer over TCP', async (t) => {
  const host = '127.0.0.22';
  const { a, port } = await devAgent(host, { dns_config: { only_passing: true, enable_truncate: true } });
  t.teardown(() => a.stop('SIGKILL'));
  const q = (...args: string[]) => dig(host, port, args);
  for (let i = 1; i <= 10; i++) await registerInstance(a, `api-${i}`, `10.1.0.${i}`, 'api', 'passing');
  await registerInstance(a, 'api-warn', '10.1.1.1', 'api', 'warning');

  const full = await waitFor('the 10 passing instances over TCP', async () => {
    const r = await q('api.service.consul', 'A', '+tcp');
    return r.answer.length === 10 ? r : undefined;
  });
  t.false(
    full.answer.some((r) => r.data === '10.1.1.1'),
    'only_passing leaves out the warning instance',
  );
  t.false(full.flags.includes('tc'));

  const udp = await q('api.service.consul', 'A', '+noedns', '+ignore');
  t.true(udp.flags.includes('tc'));
  t.is(udp.answer.length, 3, 'udp_answer_limit');

  // dig's default: retry over TCP on TC, ending with every answer.
  const retried = await q('api.service.consul', 'SRV', '+noedns');
  t.is(retried.answer.length, 10);
});
