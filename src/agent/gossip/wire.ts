/**
 * The gossip wire format: one message per frame, JSON with a format version, validated on the
 * way in. A frame that is not valid JSON, has another version, a wrong type anywhere, or exceeds a
 * bound (frame size, name length, tag count and size, member count) is refused with a one-line
 * {@link GossipWireError}, and the caller drops it and counts it.
 */

import { z } from 'zod';
import { type GossipMessage, MAX_USER_MESSAGE_LENGTH } from './core/types.ts';

export const WIRE_VERSION = 1;
/** Largest frame: a push-pull of a few thousand members with their tags fits. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
const MAX_MEMBERS = 20_000;
const MAX_UPDATES = 256;
/** User messages on one message, and in one push-pull (the core sends at most 64, USER_RECENT). */
const MAX_USER = 64;
const MAX_RECENT = 256;

export class GossipWireError extends Error {
  override name = 'GossipWireError';
}

const name = z.string().min(1).max(256);
const addr = z.string().min(3).max(300);
const inc = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const seq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const meta = z
  .record(z.string().max(128), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 64, { message: 'more than 64 tags' });

const update = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('alive'), name, id: z.string().max(64), addr, meta, inc }),
  z.object({ kind: z.literal('suspect'), name, inc, by: name }),
  z.object({ kind: z.literal('dead'), name, inc, by: name }),
  z.object({ kind: z.literal('left'), name, inc }),
]);

const userBody = z.string().min(1).max(MAX_USER_MESSAGE_LENGTH);

// `user` and `recent` came after the first release of version 1: optional, and an agent that
// predates them drops them as unknown fields (zod objects strip those) rather than the message.
const base = {
  v: z.literal(WIRE_VERSION),
  from: z.object({ name, addr }),
  updates: z.array(update).max(MAX_UPDATES),
  user: z.array(userBody).max(MAX_USER).optional(),
};

const message = z.discriminatedUnion('type', [
  z.object({ ...base, type: z.literal('ping'), seq, target: name }),
  z.object({ ...base, type: z.literal('ack'), seq }),
  z.object({ ...base, type: z.literal('nack'), seq }),
  z.object({ ...base, type: z.literal('ping-req'), seq, target: name, targetAddr: addr }),
  z.object({
    ...base,
    type: z.literal('push-pull'),
    seq,
    join: z.boolean(),
    reply: z.boolean(),
    state: z.array(update).max(MAX_MEMBERS),
    recent: z
      .array(z.object({ body: userBody, ageMs: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) }))
      .max(MAX_RECENT)
      .optional(),
  }),
  z.object({ ...base, type: z.literal('gossip') }),
]);

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeMessage(m: GossipMessage): Uint8Array {
  return encoder.encode(JSON.stringify({ v: WIRE_VERSION, ...m }));
}

export function decodeMessage(bytes: Uint8Array): GossipMessage {
  if (bytes.byteLength > MAX_FRAME_BYTES) {
    throw new GossipWireError(`frame of ${bytes.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new GossipWireError('frame is not UTF-8 JSON');
  }
  if (typeof value === 'object' && value !== null && 'v' in value && value.v !== WIRE_VERSION) {
    throw new GossipWireError(`unsupported wire version ${JSON.stringify(value.v)}`);
  }
  const parsed = message.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new GossipWireError(`invalid message at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const { v: _v, ...m } = parsed.data;
  return m as GossipMessage;
}
