/**
 * The gossip transport on real loopback sockets. Every test uses its own 127.0.0.x addresses (ava
 * runs a file's tests concurrently) and awaits conditions with deadlines, never fixed sleeps.
 */

import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p } from '@libp2p/interface';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import test, { type ExecutionContext } from 'ava';
import { createLibp2p } from 'libp2p';
import {
  encodeFrame,
  FrameDecoder,
  GOSSIP_PROTOCOL,
  type GossipHost,
  type GossipHostOptions,
  type MessageVia,
  parseGossipAddr,
  startGossipHost,
} from '../../src/agent/gossip/host.ts';
import { IdentityFileError, identityPath, loadOrCreateIdentity } from '../../src/agent/gossip/identity.ts';
import { generateGossipKey, packetKeyFromGossipKey, pskFromGossipKey } from '../../src/agent/gossip/key.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import { freePort, waitFor } from '../support/agent-process.ts';

const MAX_FRAME = 64 * 1024;
const TOPIC = 'meshd/test';
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

interface TestHost {
  host: GossipHost;
  inbox: string[];
  topicInbox: string[];
  unreachable: string[];
}

async function start(
  t: ExecutionContext,
  ip: string,
  extra: Partial<GossipHostOptions> = {},
): Promise<TestHost> {
  const host = await startGossipHost({
    bind: ip,
    port: await freePort(ip),
    privateKey: await loadOrCreateIdentity(undefined),
    maxFrameBytes: MAX_FRAME,
    logger: silentLogger(),
    topics: [TOPIC],
    ...extra,
  });
  t.teardown(() => host.stop());
  const th: TestHost = { host, inbox: [], topicInbox: [], unreachable: [] };
  host.onMessage((b) => th.inbox.push(text(b)));
  host.onTopicMessage((topic, b) => th.topicInbox.push(`${topic}:${text(b)}`));
  host.onUnreachable((addr) => th.unreachable.push(addr));
  return th;
}

/** A bare libp2p node speaking the same transport stack, to write arbitrary bytes on a gossip stream. */
async function rawNode(t: ExecutionContext, ip: string, psk?: Uint8Array): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp({ dialOpts: { localAddress: ip } as object })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: psk ? preSharedKey({ psk }) : undefined,
  });
  t.teardown(() => node.stop());
  return node;
}

function targetOf(h: GossipHost) {
  const e = parseGossipAddr(h.addr)!;
  return multiaddr(`/ip4/${e.ip}/tcp/${e.port}`);
}

test('frame decoder: frames split anywhere, byte by byte, several per chunk', (t) => {
  const payloads = [bytes('a'), new Uint8Array(0), new Uint8Array(300).fill(9), bytes('last')];
  const wire = Buffer.concat(payloads.map(encodeFrame));
  for (const step of [1, 2, 7, wire.length]) {
    const d = new FrameDecoder(1000);
    const got: Uint8Array[] = [];
    for (let i = 0; i < wire.length; i += step) {
      t.is(
        d.push(wire.subarray(i, i + step), (f) => got.push(f)),
        undefined,
      );
    }
    t.deepEqual(
      got.map((g) => Buffer.from(g).toString('hex')),
      payloads.map((p) => Buffer.from(p).toString('hex')),
    );
  }
});

test('frame decoder: oversize lengths are refused before their body, bad varints are malformed', (t) => {
  const noop = () => {};
  t.is(new FrameDecoder(100).push(encodeFrame(new Uint8Array(101)).subarray(0, 2), noop), 'oversize');
  t.is(new FrameDecoder(100).push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x7f), noop), 'oversize');
  t.is(new FrameDecoder(2 ** 31).push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0x01), noop), 'malformed');
  t.is(new FrameDecoder(100).push(Uint8Array.of(0x81, 0x00), noop), 'malformed', 'non-minimal');
});

test('two hosts exchange direct frames both ways, in order, over one reused connection', async (t) => {
  const a = await start(t, '127.0.0.21');
  const b = await start(t, '127.0.0.22');
  t.regex(a.host.addr, /^127\.0\.0\.21:\d+$/);
  t.regex(a.host.peerId, /^12D3KooW/);
  for (let i = 0; i < 50; i++) a.host.send(b.host.addr, bytes(`a${i}`));
  await waitFor('b to get 50 frames', () => b.inbox.length === 50);
  t.deepEqual(
    b.inbox,
    Array.from({ length: 50 }, (_, i) => `a${i}`),
  );
  b.host.send(a.host.addr, bytes('pong'));
  await waitFor('a to get the reply', () => a.inbox.length === 1);
  t.deepEqual(a.inbox, ['pong']);
  t.like(a.host.stats(), { 'frames.out': 50, 'frames.in': 1, connections: 1 });
  t.like(b.host.stats(), { 'frames.in': 50, 'frames.out': 1, connections: 1 });
  t.deepEqual(a.unreachable, []);
});

test('five hosts exchange direct frames all to all', async (t) => {
  const hosts = await Promise.all([31, 32, 33, 34, 35].map((n) => start(t, `127.0.0.${n}`)));
  for (const from of hosts) {
    for (const to of hosts)
      if (from !== to) from.host.send(to.host.addr, bytes(`${from.host.addr}>${to.host.addr}`));
  }
  await waitFor('every host to get 4 frames', () => hosts.every((h) => h.inbox.length === 4));
  for (const to of hosts) {
    const expected = hosts.filter((h) => h !== to).map((from) => `${from.host.addr}>${to.host.addr}`);
    t.deepEqual([...to.inbox].sort(), expected.sort());
    t.deepEqual(to.unreachable, []);
  }
});

test('publish reaches all five hosts through a gossipsub mesh formed over send() connections', async (t) => {
  const [hub, ...spokes] = await Promise.all([41, 42, 43, 44, 45].map((n) => start(t, `127.0.0.${n}`)));
  // A star: only the hub has sent to anyone, so a spoke's message reaches the others only by relay.
  for (const s of spokes) hub.host.send(s.host.addr, bytes('hello'));
  await waitFor('the spokes to get the hub', () => spokes.every((s) => s.inbox.length === 1));
  const [publisher, ...others] = spokes;
  t.is(publisher.host.stats().peers, 1);
  const started = Date.now();
  let n = 0;
  await waitFor(
    'a message published by a spoke to reach every other host',
    () => {
      const all = [hub, ...others].every((h) => h.topicInbox.length > 0);
      if (!all) publisher.host.publish(TOPIC, bytes(`m${n++}`));
      return all;
    },
    20_000,
    100,
  );
  t.log(`mesh delivery to all after ${Date.now() - started} ms, ${n} publishes`);
  for (const h of [hub, ...others]) t.regex(h.topicInbox[0], new RegExp(`^${TOPIC}:m\\d+$`));
  t.deepEqual(publisher.topicInbox, [], 'no echo to the publisher');
  t.true(publisher.host.stats()['topic.out'] >= 1);
});

test('a host with another key cannot deliver anything, nor can one without a key', async (t) => {
  const key = pskFromGossipKey(generateGossipKey());
  // A failed handshake hangs until the dialer's timeout: the senders that must fail get a short
  // one. b, which must take the friend's handshake below, keeps the default (it is also b's
  // budget for an inbound upgrade, which a loaded machine can take more than 1.5 s over).
  const short = { dialTimeoutMs: 1_500 };
  const b = await start(t, '127.0.0.51', { psk: key });
  const keyed = await start(t, '127.0.0.55', { psk: key, ...short });
  const other = await start(t, '127.0.0.52', { psk: pskFromGossipKey(generateGossipKey()), ...short });
  const none = await start(t, '127.0.0.53', short);
  other.host.send(b.host.addr, bytes('from another key'));
  none.host.send(b.host.addr, bytes('from no key'));
  keyed.host.send(none.host.addr, bytes('to no key'));
  await waitFor('all three senders to report unreachable', () =>
    [other, none, keyed].every((h) => h.unreachable.length > 0),
  );
  t.deepEqual(other.unreachable, [b.host.addr]);
  t.deepEqual(none.unreachable, [b.host.addr]);
  t.deepEqual(keyed.unreachable, [none.host.addr]);
  t.deepEqual([b.inbox, none.inbox], [[], []]);
  t.false('frames.in' in b.host.stats() && b.host.stats()['frames.in'] > 0);
  t.is(other.host.stats()['dropped.dial'], 1);
  // The same key does get through.
  const friend = await start(t, '127.0.0.54', { psk: key });
  friend.host.send(b.host.addr, bytes('same key'));
  await waitFor('the keyed frame', () => b.inbox.length === 1);
  t.deepEqual(b.inbox, ['same key']);
});

test('stopping a peer fires onUnreachable at the sender for its address', async (t) => {
  const a = await start(t, '127.0.0.61');
  const b = await start(t, '127.0.0.62');
  const c = await start(t, '127.0.0.63');
  a.host.send(b.host.addr, bytes('1'));
  a.host.send(c.host.addr, bytes('1'));
  await waitFor('b and c to hear from a', () => b.inbox.length === 1 && c.inbox.length === 1);
  await b.host.stop();
  await waitFor('a to report b unreachable', () => a.unreachable.length > 0);
  t.deepEqual(a.unreachable, [b.host.addr]);
  // The sender keeps working with the others, and a send to the stopped peer fails again.
  a.host.send(c.host.addr, bytes('2'));
  a.host.send(b.host.addr, bytes('2'));
  await waitFor('c to get the second frame', () => c.inbox.length === 2);
  await waitFor('the failed redial', () => a.unreachable.length === 2);
  t.deepEqual(a.unreachable, [b.host.addr, b.host.addr]);
  t.is(a.host.stats()['dropped.dial'], 1);
});

test('the send queue is bounded: the oldest frames go first, all counted', async (t) => {
  // A TCP server that accepts and never answers: the dial hangs until its timeout.
  const silent: Server = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.72', resolve));
  t.teardown(() => new Promise<void>((resolve) => silent.close(() => resolve())));
  const sockets = new Set<import('node:net').Socket>();
  silent.on('connection', (s) => sockets.add(s));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  const to = `127.0.0.72:${(silent.address() as { port: number }).port}`;
  const a = await start(t, '127.0.0.71', { sendQueueFrames: 8, dialTimeoutMs: 1_000 });
  for (let i = 0; i < 20; i++) a.host.send(to, bytes(`f${i}`));
  t.like(a.host.stats(), { 'dropped.queue': 12, 'queued.frames': 8, channels: 1 });
  a.host.send(to, new Uint8Array(MAX_FRAME + 1));
  a.host.send('not-an-address', bytes('x'));
  a.host.send(a.host.addr, bytes('x'));
  await waitFor('the dial to time out', () => a.unreachable.length === 1);
  t.like(a.host.stats(), {
    'dropped.queue': 12,
    'dropped.dial': 8,
    'dropped.oversize_out': 1,
    'dropped.bad_addr': 1,
    'dropped.self': 1,
    'queued.frames': 0,
    channels: 0,
  });
});

test('oversize and garbage frames on a raw stream reset it, are counted, and the host keeps working', async (t) => {
  const psk = pskFromGossipKey(generateGossipKey());
  const victim = await start(t, '127.0.0.81', { psk });
  const good = await start(t, '127.0.0.82', { psk });
  const raw = await rawNode(t, '127.0.0.83', psk);

  const oversize = await raw.dialProtocol(targetOf(victim.host), GOSSIP_PROTOCOL);
  oversize.send(encodeFrame(bytes('fine first')));
  oversize.send(encodeFrame(new Uint8Array(MAX_FRAME + 1)));
  await waitFor('the oversize frame to be counted', () => victim.host.stats()['dropped.oversize'] === 1);
  await waitFor('the oversize stream to be reset', () => oversize.status !== 'open');

  const garbage = await raw.dialProtocol(targetOf(victim.host), GOSSIP_PROTOCOL);
  garbage.send(Uint8Array.of(0x80, 0x80, 0x00)); // a non-minimal varint length
  await waitFor('the malformed frame to be counted', () => victim.host.stats()['dropped.malformed'] === 1);
  await waitFor('the garbage stream to be reset', () => garbage.status !== 'open');

  t.deepEqual(victim.inbox, ['fine first']);
  good.host.send(victim.host.addr, bytes('still here'));
  await waitFor('a good frame after the bad ones', () => victim.inbox.length === 2);
  t.deepEqual(victim.inbox, ['fine first', 'still here']);
});

test('garbage on a raw TCP socket (no key) is dropped and the host keeps working', async (t) => {
  const victim = await start(t, '127.0.0.91');
  const good = await start(t, '127.0.0.92');
  const e = parseGossipAddr(victim.host.addr)!;
  for (const junk of [Buffer.alloc(4096, 0xff), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]) {
    const socket = connect({ host: e.ip, port: e.port, localAddress: '127.0.0.93' });
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.write(junk);
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  }
  good.host.send(victim.host.addr, bytes('still here'));
  await waitFor('a good frame after the junk', () => victim.inbox.length === 1);
  t.deepEqual(victim.inbox, ['still here']);
});

test('port 0 is resolved, and a wildcard bind advertises the advertise address', async (t) => {
  const h = await startGossipHost({
    bind: '0.0.0.0',
    port: 0,
    advertise: '127.0.0.101',
    privateKey: await loadOrCreateIdentity(undefined),
    maxFrameBytes: MAX_FRAME,
    logger: silentLogger(),
    topics: [],
  });
  t.teardown(() => h.stop());
  t.regex(h.addr, /^127\.0\.0\.101:\d+$/);
  t.not(parseGossipAddr(h.addr)?.port, 0);
  const peer = await start(t, '127.0.0.102');
  peer.host.send(h.addr, bytes('via advertise'));
  let got = '';
  h.onMessage((b) => {
    got = text(b);
  });
  await waitFor('the frame', () => got === 'via advertise');
  await t.throwsAsync(
    startGossipHost({
      bind: '0.0.0.0',
      port: 0,
      privateKey: await loadOrCreateIdentity(undefined),
      maxFrameBytes: MAX_FRAME,
      logger: silentLogger(),
      topics: [],
    }),
    { name: 'GossipConfigError', message: /advertise/ },
  );
});

test('the identity persists across restarts: same peer ID, file mode 0600', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-gossip-id-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = await start(t, '127.0.0.111', { privateKey: await loadOrCreateIdentity(dir) });
  const peerId = first.host.peerId;
  const addr = first.host.addr;
  await first.host.stop();
  t.is((await stat(identityPath(dir))).mode & 0o777, 0o600);
  const e = parseGossipAddr(addr)!;
  const second = await start(t, '127.0.0.111', { port: e.port, privateKey: await loadOrCreateIdentity(dir) });
  t.is(second.host.peerId, peerId);
  t.is(JSON.parse(await readFile(identityPath(dir), 'utf8')).peerId, peerId);
  t.not((await start(t, '127.0.0.112')).host.peerId, peerId, 'no data dir: a fresh identity');
});

test('a corrupt or newer identity file is a one-line error naming the path', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-gossip-id-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await loadOrCreateIdentity(dir);
  const path = identityPath(dir);
  const good = JSON.parse(await readFile(path, 'utf8'));
  const cases: Array<[string, RegExp]> = [
    ['{"version":1,"type":"Ed25519","privateKey":"AAAA', /corrupt: not JSON/],
    ['', /corrupt: not JSON/],
    [JSON.stringify({ ...good, privateKey: 'AAAA' }), /corrupt: the private key does not decode/],
    [JSON.stringify({ ...good, peerId: '12D3KooWother' }), /corrupt: the peer ID does not match/],
    [JSON.stringify({ ...good, version: 2 }), /format version 2, newer than this meshd reads \(1\)/],
  ];
  for (const [contents, why] of cases) {
    await writeFile(path, contents);
    const err = await t.throwsAsync(loadOrCreateIdentity(dir), { instanceOf: IdentityFileError });
    t.true(err?.message.includes(path), err?.message);
    t.regex(err?.message ?? '', why);
    t.false(err?.message.includes('\n'));
  }
});

test('a host stopped in a child process lets it exit; startup time and RSS are reported', async (t) => {
  const hostUrl = new URL('../../src/agent/gossip/host.ts', import.meta.url).href;
  const idUrl = new URL('../../src/agent/gossip/identity.ts', import.meta.url).href;
  const keyUrl = new URL('../../src/agent/gossip/key.ts', import.meta.url).href;
  const script = `
    const t0 = performance.now();
    const { startGossipHost } = await import(${JSON.stringify(hostUrl)});
    const { loadOrCreateIdentity } = await import(${JSON.stringify(idUrl)});
    const { pskFromGossipKey, generateGossipKey } = await import(${JSON.stringify(keyUrl)});
    const { pino } = await import('pino');
    const psk = pskFromGossipKey(generateGossipKey());
    const opts = (ip) => ({ bind: ip, port: 0, psk, maxFrameBytes: 65536, logger: pino({ level: 'silent' }), topics: ['t'] });
    const t1 = performance.now();
    const a = await startGossipHost({ ...opts('127.0.0.121'), privateKey: await loadOrCreateIdentity(undefined) });
    const t2 = performance.now();
    const rss = process.memoryUsage().rss;
    const b = await startGossipHost({ ...opts('127.0.0.122'), privateKey: await loadOrCreateIdentity(undefined) });
    await new Promise((resolve) => { b.onMessage(resolve); a.send(b.addr, new Uint8Array([1])); });
    a.publish('t', new Uint8Array([2]));
    await a.stop();
    await b.stop();
    process.stdout.write(JSON.stringify({ importMs: t1 - t0, startMs: t2 - t1, rssMiB: rss / 2 ** 20 }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: new URL('../..', import.meta.url).pathname,
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await exited;
  clearTimeout(timer);
  t.is(code, 0, `the child must exit on its own; stderr: ${err}`);
  const m = JSON.parse(out) as { importMs: number; startMs: number; rssMiB: number };
  t.log(
    `import ${m.importMs.toFixed(0)} ms, start ${m.startMs.toFixed(0)} ms, RSS after one host ${m.rssMiB.toFixed(0)} MiB`,
  );
  t.true(m.startMs < 2_000);
});

test('packets: both ways over UDP on the gossip port, sealed under the cluster key; too large is handed back', async (t) => {
  const key = generateGossipKey();
  const packetKey = packetKeyFromGossipKey(key);
  const psk = pskFromGossipKey(key);
  const a = await start(t, '127.0.0.131', { psk, packetKey });
  const b = await start(t, '127.0.0.132', { psk, packetKey });
  const vias: MessageVia[] = [];
  b.host.onMessage((_bytes, via) => vias.push(via));
  t.true(a.host.sendPacket(b.host.addr, bytes('ping over udp')));
  await waitFor('the packet at b', () => b.inbox.includes('ping over udp'));
  t.true(b.host.sendPacket(a.host.addr, bytes('ack over udp')));
  await waitFor('the packet at a', () => a.inbox.includes('ack over udp'));
  t.deepEqual(vias, [{ kind: 'packet', remote: a.host.addr }], 'sent from the gossip port itself');
  t.is(a.host.connectedPeers(), 0, 'no connection was needed');
  t.false(a.host.sendPacket(b.host.addr, new Uint8Array(a.host.maxPacketPayload + 1)));
  t.is(a.host.stats()['packets.out'], 1);
  t.is(b.host.stats()['packets.in'], 1);
});

test('packets under another key, plain packets to a keyed agent and UDP garbage are dropped and counted', async (t) => {
  const key = generateGossipKey();
  const a = await start(t, '127.0.0.133', {
    psk: pskFromGossipKey(key),
    packetKey: packetKeyFromGossipKey(key),
  });
  const other = generateGossipKey();
  const stranger = await start(t, '127.0.0.134', {
    psk: pskFromGossipKey(other),
    packetKey: packetKeyFromGossipKey(other),
  });
  const keyless = await start(t, '127.0.0.135');
  stranger.host.sendPacket(a.host.addr, bytes('let me in'));
  keyless.host.sendPacket(a.host.addr, bytes('me too'));
  const { ip, port } = parseGossipAddr(a.host.addr) ?? { ip: '', port: 0 };
  const raw = createSocket('udp4');
  t.teardown(() => raw.close());
  for (const garbage of [Buffer.alloc(0), Buffer.from([0xff, 1, 2]), Buffer.from([2, 1, 2, 3])]) {
    await new Promise<void>((resolve) => raw.send(garbage, port, ip, () => resolve()));
  }
  await waitFor('all five counted', () => {
    const s = a.host.stats();
    return (
      s['dropped.packet_auth'] === 1 &&
      s['dropped.packet_plain_refused'] === 1 &&
      (s['dropped.packet_short'] ?? 0) + (s['dropped.packet_version'] ?? 0) === 3
    );
  });
  t.deepEqual(a.inbox, []);
  // Still working for its own cluster.
  const friend = await start(t, '127.0.0.136', {
    psk: pskFromGossipKey(key),
    packetKey: packetKeyFromGossipKey(key),
  });
  friend.host.sendPacket(a.host.addr, bytes('hello'));
  await waitFor('the friend packet', () => a.inbox.includes('hello'));
});

test('connect opens a connection without a stream; isConnected and connectedPeers see it; a dead address, and a closed connection, are reported', async (t) => {
  const a = await start(t, '127.0.0.137');
  const b = await start(t, '127.0.0.138');
  t.false(a.host.isConnected(b.host.addr));
  a.host.connect(b.host.addr);
  t.true(a.host.isConnected(b.host.addr), 'counts while dialing');
  await waitFor('one peer', () => a.host.connectedPeers() === 1 && b.host.connectedPeers() === 1);
  const dead = `127.0.0.139:${await freePort('127.0.0.139')}`;
  a.host.connect(dead);
  await waitFor('the dead address reported', () => a.unreachable.includes(dead));
  t.false(a.host.isConnected(dead));
  // The connection carries no stream of ours: when b goes away, its closing is the hint.
  await waitFor('identify told a where b listens', () => a.host.isConnected(b.host.addr));
  t.false(a.unreachable.includes(b.host.addr));
  await b.host.stop();
  await waitFor('b reported unreachable when its connection closed', () =>
    a.unreachable.includes(b.host.addr),
  );
  t.is(a.host.stats().disconnects, 1);
});

test('trimConnections closes connections beyond the cap, sparing young ones, and reports none unreachable', async (t) => {
  const a = await start(t, '127.0.0.141');
  const others = await Promise.all(
    ['127.0.0.142', '127.0.0.143', '127.0.0.144', '127.0.0.145'].map((ip) => start(t, ip)),
  );
  for (const o of others) a.host.connect(o.host.addr);
  await waitFor(
    'four peers, identified',
    () => others.every((o) => a.host.isConnected(o.host.addr)) && a.host.connectedPeers() === 4,
  );
  a.host.trimConnections(2, 60_000);
  t.is(a.host.connectedPeers(), 4, 'connections younger than the minimum age are spared');
  a.host.trimConnections(2, 0);
  await waitFor('two peers left', () => a.host.connectedPeers() === 2);
  t.is(a.host.stats().trimmed, 2);
  // Still talking to a trimmed peer works: the next send dials again.
  const trimmed = others.filter((o) => !a.host.isConnected(o.host.addr));
  t.is(trimmed.length, 2);
  a.host.send(trimmed[0].host.addr, bytes('after the trim'));
  await waitFor('the frame after the trim', () => trimmed[0].inbox.includes('after the trim'));
  t.deepEqual(a.unreachable, [], 'a trim is not news');
});

/** The kernel's view of the one established TCP connection from `src` to `dst` (iproute2's ss). */
function tcpConnection(src: string, dst: string): { bytes: string; keepaliveSec: number | undefined } {
  const out = execFileSync('ss', ['-tnoiH', 'state', 'established', 'src', src, 'dst', dst], {
    encoding: 'utf8',
  });
  const sent = /bytes_sent:(\d+)/.exec(out)?.[1];
  const received = /bytes_received:(\d+)/.exec(out)?.[1];
  const keepalive = /timer:\(keepalive,(?:(\d+)min)?(\d+)?(?:sec)?/.exec(out);
  return {
    bytes: `${sent ?? 0}/${received ?? 0}`,
    keepaliveSec: keepalive ? Number(keepalive[1] ?? 0) * 60 + Number(keepalive[2] ?? 0) : undefined,
  };
}

test('an idle connection sends nothing for longer than a yamux keepalive; the kernel keeps it alive instead', async (t) => {
  const psk = pskFromGossipKey(generateGossipKey());
  const a = await start(t, '127.0.0.146', { psk });
  const b = await start(t, '127.0.0.147', { psk });
  a.host.connect(b.host.addr);
  await waitFor(
    'a connection, identified',
    () => a.host.isConnected(b.host.addr) && b.host.connectedPeers() === 1,
  );
  // Identify and gossipsub's subscriptions and mesh grafts go first: wait until 3 s pass in silence.
  let last = tcpConnection('127.0.0.146', '127.0.0.147').bytes;
  let quietSince = Date.now();
  await waitFor('the connection to fall quiet', () => {
    const now = tcpConnection('127.0.0.146', '127.0.0.147').bytes;
    if (now !== last) [last, quietSince] = [now, Date.now()];
    return Date.now() - quietSince >= 3_000;
  });
  const { keepaliveSec } = tcpConnection('127.0.0.146', '127.0.0.147');
  t.true(
    keepaliveSec !== undefined && keepaliveSec <= 60,
    `kernel keepalive armed within 60 s: ${keepaliveSec}`,
  );
  // yamux would ping every 30 s (and libp2p's 2-minute inactivity close would need those pings).
  const quietFor = 31_000 - (Date.now() - quietSince);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, quietFor)));
  t.is(tcpConnection('127.0.0.146', '127.0.0.147').bytes, last, 'no byte either way in 31 s');
  t.true(a.host.isConnected(b.host.addr));
  t.is(a.host.stats().disconnects ?? 0, 0);
});
