/**
 * The gossip packet format: SWIM's small messages (ping, ack, nack, ping-req, gossip) as single UDP
 * datagrams on the gossip port, as memberlist sends them on Consul's 8301/udp. Over libp2p TCP every
 * pair of agents that exchanged a message needed a connection (TCP, pnet, noise, yamux, identify:
 * ~25 ms of CPU across both ends), and SWIM's round-robin probe talks to every member: 50 agents
 * on one 2-vCPU machine spent most of a minute in handshakes and never converged (bench/RESULTS.md).
 * A datagram costs one system call; the connections that remain are the few gossipsub needs.
 *
 * Layout, version in the first byte:
 * - `0x01 payload` — plain, for a cluster without a key (as memberlist without `encrypt`);
 * - `0x02 salt[16] nonce[12] ciphertext tag[16]` — AES-256-GCM, the header as associated data.
 *
 * A sealed packet's key is HKDF-SHA256 of the cluster key's packet key (see key.ts) with the
 * sender's salt, a random value it draws once per process; its nonces are a random prefix and a
 * counter. So no (key, nonce) pair repeats however many agents share the cluster key and however
 * long they run, which random 96-bit nonces under one shared key would not promise past ~2^32
 * packets. An agent with a key refuses plain packets, and one without a key cannot open sealed
 * ones: a cluster never mixes the two.
 */

import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';

/** Largest datagram sent (memberlist's UDPBufferSize): below a 1500-byte MTU with IP/UDP headers. */
export const MAX_PACKET_BYTES = 1_400;
export const PLAIN = 0x01;
export const SEALED = 0x02;
const SALT = 16;
const NONCE = 12;
const TAG = 16;
const HEADER = 1 + SALT + NONCE;
/** Bytes a sealed packet adds to its payload. */
export const SEAL_OVERHEAD = HEADER + TAG;
/** Sender salts whose derived keys are kept (one per agent heard from). */
const KEY_CACHE = 4_096;

export type PacketFault =
  | 'short' // too short to be a packet of its format
  | 'version' // an unknown first byte
  | 'plain_refused' // plain, but this cluster has a key
  | 'key_mismatch' // sealed, but this agent has no key
  | 'auth'; // sealed under another key, or altered

export class PacketCodec {
  readonly #key: Uint8Array | undefined;
  readonly #salt: Uint8Array;
  readonly #sendKey: KeyObject | undefined;
  readonly #noncePrefix: Buffer;
  #counter = 0n;
  readonly #keys = new Map<string, KeyObject>();

  /** `key`: the packet key derived from the cluster key; undefined for a cluster without one. */
  constructor(key: Uint8Array | undefined) {
    this.#key = key;
    this.#salt = randomBytes(SALT);
    this.#noncePrefix = randomBytes(4);
    this.#sendKey = key === undefined ? undefined : deriveKey(key, this.#salt);
  }

  /** The largest payload that fits in one packet. */
  get maxPayload(): number {
    return MAX_PACKET_BYTES - (this.#key === undefined ? 1 : SEAL_OVERHEAD);
  }

  seal(payload: Uint8Array): Uint8Array {
    if (this.#sendKey === undefined) {
      const out = new Uint8Array(1 + payload.length);
      out[0] = PLAIN;
      out.set(payload, 1);
      return out;
    }
    const header = Buffer.alloc(HEADER);
    header[0] = SEALED;
    header.set(this.#salt, 1);
    this.#noncePrefix.copy(header, 1 + SALT);
    header.writeBigUInt64BE(this.#counter++, 1 + SALT + 4);
    const nonce = header.subarray(1 + SALT);
    const cipher = createCipheriv('aes-256-gcm', this.#sendKey, nonce, { authTagLength: TAG });
    cipher.setAAD(header);
    return Buffer.concat([header, cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
  }

  /** The payload of `packet`, or why it was refused. */
  open(packet: Uint8Array): Uint8Array | PacketFault {
    if (packet.length < 1) return 'short';
    const format = packet[0];
    if (format === PLAIN) return this.#key === undefined ? packet.subarray(1) : 'plain_refused';
    if (format !== SEALED) return 'version';
    if (this.#key === undefined) return 'key_mismatch';
    if (packet.length < SEAL_OVERHEAD) return 'short';
    const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    const header = buf.subarray(0, HEADER);
    const salt = buf.subarray(1, 1 + SALT);
    const id = salt.toString('base64');
    const cached = this.#keys.get(id);
    const key = cached ?? deriveKey(this.#key, salt);
    let payload: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, header.subarray(1 + SALT), {
        authTagLength: TAG,
      });
      decipher.setAAD(header);
      decipher.setAuthTag(buf.subarray(buf.length - TAG));
      payload = Buffer.concat([decipher.update(buf.subarray(HEADER, buf.length - TAG)), decipher.final()]);
    } catch {
      return 'auth';
    }
    // Only a salt whose packet authenticated is kept: forged ones cost a derivation each, no memory.
    if (cached === undefined) {
      if (this.#keys.size >= KEY_CACHE) this.#keys.delete(this.#keys.keys().next().value as string);
      this.#keys.set(id, key);
    }
    return payload;
  }
}

/**
 * As a KeyObject: a cipher made from one skips the checks and copy of a raw key, which were half
 * of what a small packet costs (sealing and opening 150 bytes: 15 instead of 31 µs).
 */
function deriveKey(key: Uint8Array, salt: Uint8Array): KeyObject {
  return createSecretKey(new Uint8Array(hkdfSync('sha256', key, salt, 'meshd gossip packet sender v1', 32)));
}
