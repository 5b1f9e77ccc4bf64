/**
 * The gossip packet codec (packet.ts): plain and sealed round trips, what each side refuses, no
 * nonce reuse, and fuzzing with random and mutated packets (every input gives a payload or a
 * fault, never a throw).
 */

import test from 'ava';
import fc from 'fast-check';
import { generateGossipKey, packetKeyFromGossipKey } from '../../src/agent/gossip/key.ts';
import { MAX_PACKET_BYTES, PacketCodec, SEAL_OVERHEAD } from '../../src/agent/gossip/packet.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | string) => (typeof b === 'string' ? b : new TextDecoder().decode(b));

test('sealed packets open under the same cluster key, from any agent holding it', (t) => {
  const key = generateGossipKey();
  const a = new PacketCodec(packetKeyFromGossipKey(key));
  const b = new PacketCodec(packetKeyFromGossipKey(key));
  const p = a.seal(bytes('ping'));
  t.is(p.length, 4 + SEAL_OVERHEAD);
  t.is(text(b.open(p)), 'ping');
  t.is(text(a.open(p)), 'ping', 'the sender can open its own packet too');
  t.is(a.maxPayload, MAX_PACKET_BYTES - SEAL_OVERHEAD);
  // Many packets from one sender: every nonce differs (a counter), and all open.
  const nonces = new Set<string>();
  for (let i = 0; i < 1_000; i++) {
    const q = a.seal(bytes(`m${i}`));
    nonces.add(Buffer.from(q.subarray(17, 29)).toString('hex'));
    t.is(text(b.open(q)), `m${i}`);
  }
  t.is(nonces.size, 1_000);
});

test('another key, a keyless sender, a keyless receiver, a tampered byte: all refused by name', (t) => {
  const keyed = new PacketCodec(packetKeyFromGossipKey(generateGossipKey()));
  const other = new PacketCodec(packetKeyFromGossipKey(generateGossipKey()));
  const plain = new PacketCodec(undefined);
  const sealed = keyed.seal(bytes('secret'));
  t.is(other.open(sealed), 'auth');
  t.is(plain.open(sealed), 'key_mismatch');
  t.is(keyed.open(plain.seal(bytes('hello'))), 'plain_refused');
  t.is(text(plain.open(plain.seal(bytes('hello')))), 'hello');
  t.is(plain.maxPayload, MAX_PACKET_BYTES - 1);
  for (const i of [0, 5, 20, sealed.length - 1]) {
    const bad = Uint8Array.from(sealed);
    bad[i] ^= 0x40;
    t.true(typeof keyed.open(bad) === 'string', `flipped byte ${i} refused`);
  }
  t.is(keyed.open(new Uint8Array()), 'short');
  t.is(keyed.open(sealed.subarray(0, SEAL_OVERHEAD - 1)), 'short');
  t.is(keyed.open(Uint8Array.of(9, 1, 2)), 'version');
});

test('fuzz: random and mutated packets give a payload or a fault, never a throw', (t) => {
  const key = packetKeyFromGossipKey(generateGossipKey());
  const sender = new PacketCodec(key);
  const keyed = new PacketCodec(key);
  const plain = new PacketCodec(undefined);
  const valid = sender.seal(bytes('{"type":"ping"}'));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 2_000 }),
        fc
          .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })), {
            minLength: 1,
            maxLength: 4,
          })
          .map((flips) => {
            const p = Uint8Array.from(valid);
            for (const [i, x] of flips) p[i] ^= x;
            return p;
          }),
      ),
      (packet) => {
        for (const codec of [keyed, plain]) {
          const r = codec.open(packet);
          if (typeof r === 'string') continue;
          // Only an unaltered sealed packet, or a plain one given to the keyless codec, opens.
          if (codec === keyed) return text(r) === '{"type":"ping"}' && Buffer.compare(packet, valid) === 0;
        }
        return true;
      },
    ),
    { numRuns: 2_000, seed: 42 },
  );
  t.pass();
});
