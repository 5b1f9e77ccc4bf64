import { randomBytes } from 'node:crypto';
import { pureJsCrypto } from '@chainsafe/libp2p-noise';
import test from 'ava';
import { noiseCrypto } from '../../src/agent/gossip/noise-crypto.ts';

test('native HKDF derives the same three keys as the noise library JS HKDF', (t) => {
  for (let i = 0; i < 50; i++) {
    const ck = randomBytes(32);
    const ikm = randomBytes(i % 2 === 0 ? 32 : 0);
    const a = noiseCrypto.getHKDF(ck, ikm).map((k) => Buffer.from(k).toString('hex'));
    const b = pureJsCrypto.getHKDF(ck, ikm).map((k) => Buffer.from(k).toString('hex'));
    t.deepEqual(a, b);
  }
});
