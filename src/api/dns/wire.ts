/**
 * Encoding responses fast: a record object is encoded (and measured) once and its bytes reused
 * for as long as the object lives, so an answer built once from a cache entry costs a copy per
 * response instead of a fresh encode of every name. The bytes are dns-packet's (no name
 * compression, which also keeps sizes conservative, as Consul measures them).
 */

import type { Answer, Packet, Question } from 'dns-packet';
import dnsPacket from 'dns-packet';

/** dns-packet's per-section codecs, which it exports but its type declarations leave out. */
const codecs = dnsPacket as unknown as {
  answer: { encode(rr: Answer): Buffer };
  question: {
    encode(q: Question, buf: Buffer, offset: number): unknown;
    encodingLength(q: Question): number;
  };
};

function questionBytes(q: Question): Buffer {
  const b = Buffer.alloc(codecs.question.encodingLength(q));
  codecs.question.encode(q, b, 0);
  return b;
}

const encoded = new WeakMap<Answer, Buffer>();

function recordBytes(rr: Answer): Buffer {
  let b = encoded.get(rr);
  if (b === undefined) {
    b = codecs.answer.encode(rr);
    encoded.set(rr, b);
  }
  return b;
}

const sections = (p: Packet): Answer[][] => [p.answers ?? [], p.authorities ?? [], p.additionals ?? []];

/** The encoded size of `p`, from the cached sizes of its records. */
export function messageLength(p: Packet): number {
  let n = 12;
  for (const q of p.questions ?? []) n += codecs.question.encodingLength(q);
  for (const list of sections(p)) for (const rr of list) n += recordBytes(rr).length;
  return n;
}

/** `p` on the wire; equal to `dnsPacket.encode(p)`. */
export function encodeMessage(p: Packet): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(p.id ?? 0, 0);
  header.writeUInt16BE(((p.flags ?? 0) & 0x7fff) | (p.type === 'response' ? 0x8000 : 0), 2);
  const [an, ns, ar] = sections(p);
  header.writeUInt16BE((p.questions ?? []).length, 4);
  header.writeUInt16BE(an.length, 6);
  header.writeUInt16BE(ns.length, 8);
  header.writeUInt16BE(ar.length, 10);
  parts.push(header);
  for (const q of p.questions ?? []) parts.push(questionBytes(q));
  for (const list of [an, ns, ar]) for (const rr of list) parts.push(recordBytes(rr));
  return Buffer.concat(parts);
}
