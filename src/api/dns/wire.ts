/**
 * Encoding responses fast: a record object is encoded (and measured) once and its bytes reused
 * for as long as the object lives, so an answer built once from a cache entry costs a copy per
 * response instead of a fresh encode of every name. The bytes are dns-packet's, with one kind of
 * name compression (RFC 1035 4.1.4), the one that pays most: a record whose owner name is the
 * question's name (every answer of a service lookup) points at the question (offset 12) instead
 * of repeating it. Consul compresses too; for `web.service.consul` that is 18 bytes per record,
 * so more records fit a 512-byte UDP answer.
 */

import type { Answer, Packet, Question } from 'dns-packet';
import dnsPacket from 'dns-packet';

/** dns-packet's per-section codecs, which it exports but its type declarations leave out. */
const codecs = dnsPacket as unknown as {
  answer: { encode(rr: Answer): Buffer };
  name: { encodingLength(n: string): number };
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

const compressed = new WeakMap<Answer, Buffer>();

/** The record with its owner name replaced by a pointer to the question's name (offset 12). */
function compressedBytes(rr: Answer): Buffer {
  let b = compressed.get(rr);
  if (b === undefined) {
    const full = recordBytes(rr);
    b = Buffer.concat([Buffer.from([0xc0, 0x0c]), full.subarray(codecs.name.encodingLength(rr.name))]);
    compressed.set(rr, b);
  }
  return b;
}

/** A name as compared for compression: case-insensitive, trailing dot ignored. */
const nameKey = (n: string): string => (n.endsWith('.') ? n.slice(0, -1) : n).toLowerCase();

/** How each record of `p` goes on the wire: pointing at the question when it names the same. */
function bytesFor(p: Packet): (rr: Answer) => Buffer {
  const questions = p.questions ?? [];
  if (questions.length !== 1) return recordBytes;
  const asked = questions[0].name;
  const qname = nameKey(asked);
  if (qname === '') return recordBytes; // the root: nothing to save
  // Answers are built from the asked name itself: the identity check spares most comparisons, and
  // a name of another length (the targets in the additional section) cannot be the same.
  return (rr) =>
    rr.name === asked || (Math.abs(rr.name.length - asked.length) <= 1 && nameKey(rr.name) === qname)
      ? compressedBytes(rr)
      : recordBytes(rr);
}

const sections = (p: Packet): Answer[][] => [p.answers ?? [], p.authorities ?? [], p.additionals ?? []];

/** The encoded size of `p`, from the cached sizes of its records. */
export function messageLength(p: Packet): number {
  const bytes = bytesFor(p);
  let n = 12;
  for (const q of p.questions ?? []) n += codecs.question.encodingLength(q);
  for (const list of sections(p)) for (const rr of list) n += bytes(rr).length;
  return n;
}

/** `p` on the wire; decodes to what `dnsPacket.encode(p)` does, smaller by the compressed names. */
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
  const bytes = bytesFor(p);
  for (const list of [an, ns, ar]) for (const rr of list) parts.push(bytes(rr));
  return Buffer.concat(parts);
}
