import { hkdfSync } from 'node:crypto';
import { preSharedKey } from '@libp2p/pnet';
import test from 'ava';
import {
  decodeGossipKey,
  GossipKeyError,
  generateGossipKey,
  PNET_LABEL,
  pskFromGossipKey,
} from '../../src/agent/gossip/key.ts';

const SWARM_KEY = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n([0-9a-f]{64})$/;

function pskHex(key: string): string {
  const m = SWARM_KEY.exec(new TextDecoder().decode(pskFromGossipKey(key)));
  if (!m) throw new Error('not a swarm key');
  return m[1];
}

test('generateGossipKey: 32 random bytes in standard base64, as consul keygen prints', (t) => {
  const a = generateGossipKey();
  const b = generateGossipKey();
  t.regex(a, /^[A-Za-z0-9+/]{43}=$/);
  t.is(Buffer.from(a, 'base64').length, 32);
  t.not(a, b);
});

for (const size of [16, 24, 32]) {
  test(`pskFromGossipKey: a ${size}-byte key gives a swarm.key with its HKDF-SHA256 PSK`, (t) => {
    const raw = Buffer.alloc(size, 7);
    const hex = pskHex(raw.toString('base64'));
    const expected = Buffer.from(hkdfSync('sha256', raw, new Uint8Array(0), PNET_LABEL, 32)).toString('hex');
    t.is(hex, expected);
    t.not(hex, raw.toString('hex').padEnd(64, '0'), 'the raw key is not used as the PSK');
  });
}

test('pskFromGossipKey: @libp2p/pnet accepts the result as its swarm key', (t) => {
  for (const size of [16, 24, 32]) {
    const psk = pskFromGossipKey(Buffer.alloc(size, size).toString('base64'));
    t.notThrows(() => preSharedKey({ psk })());
  }
});

test('pskFromGossipKey: deterministic per key, different across keys and sizes', (t) => {
  const k = generateGossipKey();
  t.is(pskHex(k), pskHex(k));
  t.not(pskHex(k), pskHex(generateGossipKey()));
  const k16 = Buffer.alloc(16, 1).toString('base64');
  const k32 = Buffer.alloc(32, 1).toString('base64');
  t.not(pskHex(k16), pskHex(k32));
});

test('pskFromGossipKey: surrounding whitespace (a pasted line) is ignored', (t) => {
  const k = generateGossipKey();
  t.is(pskHex(`  ${k}\n`), pskHex(k));
});

test('bad base64 is a one-line GossipKeyError naming encrypt', (t) => {
  for (const bad of ['', 'not base64!', 'abc', '====', 'AAAA AAAA', 'AAAAA===']) {
    const err = t.throws(() => pskFromGossipKey(bad), { instanceOf: GossipKeyError }, bad);
    t.regex(err?.message ?? '', /encrypt/);
    t.false(err?.message.includes('\n'));
  }
});

test('a wrong key length is a one-line GossipKeyError naming encrypt and the size', (t) => {
  for (const size of [1, 8, 15, 17, 31, 33, 64]) {
    const err = t.throws(() => decodeGossipKey(Buffer.alloc(size).toString('base64')), {
      instanceOf: GossipKeyError,
    });
    t.regex(err?.message ?? '', /encrypt key: must be 16, 24 or 32 bytes/);
    t.regex(err?.message ?? '', new RegExp(`got ${size}$`));
  }
});
