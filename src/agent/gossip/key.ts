/**
 * The gossip cluster key (`-encrypt`, `meshd keygen`): Consul's base64 keys, turned into the pre-shared
 * key of a libp2p private network (`@libp2p/pnet`) and, separately derived, the key that seals the
 * gossip UDP packets (packet.ts).
 *
 * With a key, every gossip connection is first wrapped in XSalsa20 under a PSK derived from it: an agent
 * holding another key (or none) cannot finish a handshake, so it can neither join nor read anything.
 * Inside that, noise still authenticates each agent's libp2p key.
 *
 * Without a key, gossip connections still run over noise: encrypted and authenticated per peer, but
 * anyone who can reach the gossip port can join the cluster, and the UDP packets (probes, acks,
 * piggybacked membership updates) are plain, as with Consul when `encrypt` is unset.
 *
 * The PSK is HKDF-SHA256 of the key (label {@link PNET_LABEL}) rather than the key itself, so that 16-
 * and 24-byte Consul keys work (pnet wants exactly 32 bytes) and the raw key is never used for two things.
 */

import { hkdfSync, randomBytes } from 'node:crypto';

/** HKDF `info`: changing it changes every derived PSK, i.e. splits every cluster. */
export const PNET_LABEL = 'meshd gossip pnet v1';

/** Key sizes Consul accepts for `encrypt` (AES-128, -192, -256). */
export const GOSSIP_KEY_SIZES: readonly number[] = [16, 24, 32];

/** A bad `encrypt` value; the message is one line naming the setting. */
export class GossipKeyError extends Error {
  override readonly name = 'GossipKeyError';
}

/** A new cluster key: 32 random bytes in standard base64, as `consul keygen` prints. */
export function generateGossipKey(): string {
  return randomBytes(32).toString('base64');
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The raw bytes of a Consul gossip key: strict standard base64 of 16, 24 or 32 bytes. */
export function decodeGossipKey(base64: string): Uint8Array {
  const text = base64.trim();
  if (text === '' || !BASE64.test(text)) {
    throw new GossipKeyError('invalid encrypt key: not valid base64 (generate one with `meshd keygen`)');
  }
  const raw = Buffer.from(text, 'base64');
  if (!GOSSIP_KEY_SIZES.includes(raw.length)) {
    throw new GossipKeyError(
      `invalid encrypt key: must be 16, 24 or 32 bytes once base64-decoded, got ${raw.length}`,
    );
  }
  return new Uint8Array(raw);
}

/**
 * The `swarm.key` contents `preSharedKey({ psk })` wants, derived from a Consul gossip key.
 * @throws GossipKeyError when the key is not base64 of 16, 24 or 32 bytes.
 */
export function pskFromGossipKey(base64: string): Uint8Array {
  const psk = Buffer.from(deriveFromGossipKey(base64, PNET_LABEL));
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${psk.toString('hex')}`);
}

/** HKDF `info` of the key that seals gossip packets (packet.ts). */
export const PACKET_LABEL = 'meshd gossip packet v1';

/**
 * The key that seals gossip packets (UDP), derived from a Consul gossip key apart from the pnet PSK.
 * @throws GossipKeyError when the key is not base64 of 16, 24 or 32 bytes.
 */
export function packetKeyFromGossipKey(base64: string): Uint8Array {
  return deriveFromGossipKey(base64, PACKET_LABEL);
}

/** 32 bytes of HKDF-SHA256 of the raw cluster key under `label`: one key per use, never the raw key. */
function deriveFromGossipKey(base64: string, label: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', decodeGossipKey(base64), new Uint8Array(0), label, 32));
}
