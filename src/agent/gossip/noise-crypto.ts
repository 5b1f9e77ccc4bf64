/**
 * The noise handshake's crypto with HKDF done by Node's OpenSSL. `@chainsafe/libp2p-noise`'s default
 * for Node already uses native SHA-256, X25519 and ChaCha20-Poly1305, but derives keys with
 * @noble/hashes' JS HKDF: in bench:gossip that was the largest single item of a handshake's CPU
 * in a freshly started agent (several ms per handshake before the JIT warms up). RFC 5869 is the same
 * function either way; test/gossip/noise-crypto.test.ts checks both give the same keys.
 */

import { hkdfSync } from 'node:crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  // Noise's HKDF(ck, ikm): extract with salt ck, expand with empty info to three 32-byte keys.
  getHKDF(ck, ikm) {
    const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, new Uint8Array(0), 96));
    return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)];
  },
};
