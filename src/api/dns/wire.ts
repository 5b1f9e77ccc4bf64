/**
 * Encoding responses fast: a record object is encoded (and measured) once and its bytes reused
 * for as long as the object lives, so an answer built once from a cache entry costs a copy per
 * response instead of a fresh encode of every name. The bytes are dns-packet's, with name
 * compression (RFC 1035 4.1.4) of owner names, where it pays most:
 * - a record whose owner name is the question's name (every answer of a service lookup) points at
 *   the question (offset 12): for `web.service.consul` 18 bytes per record;
 * - a record whose owner name was written in full earlier in the message, as an owner or as an SRV
 *   target, points there: the A records of an SRV answer's additional section name its targets
 *   (22 bytes each for `web-1.node.dc1.consul`).
 * Consul compresses too, so more records fit a 512-byte UDP answer. Names inside other records'
 * data, and common suffixes, are written in full.
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

/** A record on the wire in full, and the part of it after its owner name (a view of the same bytes). */
interface RecordBytes {
  full: Buffer;
  afterOwner: Buffer;
}

const encoded = new WeakMap<Answer, RecordBytes>();

function recordBytes(rr: Answer): RecordBytes {
  let b = encoded.get(rr);
  if (b === undefined) {
    const full = codecs.answer.encode(rr);
    b = { full, afterOwner: full.subarray(codecs.name.encodingLength(rr.name)) };
    encoded.set(rr, b);
  }
  return b;
}

/** Where the question's name is: right after the header. */
const QUESTION_NAME_OFFSET = 12;

/** A name as compared for compression: case-insensitive, trailing dot ignored. */
const nameKey = (n: string): string => (n.endsWith('.') ? n.slice(0, -1) : n).toLowerCase();

/** Whether `rr`'s owner name is the question's (`asked`; `qname` its key), as the question compares. */
function namesQuestion(rr: Answer, asked: string, qname: string): boolean {
  // Answers are built from the asked name itself: the identity check spares most comparisons, and
  // a name of another length (the targets in the additional section) cannot be the same.
  return rr.name === asked || (Math.abs(rr.name.length - asked.length) <= 1 && nameKey(rr.name) === qname);
}

/** A name as written earlier in the message: exact, but for a trailing dot (the bytes are the same). */
const writtenKey = (n: string): string => (n.endsWith('.') ? n.slice(0, -1) : n);

/** A compression pointer can reach this far into the message (14 bits). */
const MAX_POINTER = 0x3fff;
/** Fixed fields between an owner name and an SRV record's target: type, class, TTL, rdlength, priority, weight, port. */
const SRV_TARGET_AFTER_OWNER = 2 + 2 + 4 + 2 + 6;

/**
 * The records of `p` as they go on the wire, in order, each as one or two byte strings (a pointer
 * and the rest of the record): passed to `emit`. Returns the message's length.
 */
function layout(p: Packet, emit?: (b: Buffer) => void): number {
  const questions = p.questions ?? [];
  const asked = questions.length === 1 ? questions[0].name : undefined;
  const qname = asked === undefined ? '' : nameKey(asked);
  let offset = 12;
  for (const q of questions) {
    const b = questionBytes(q);
    emit?.(b);
    offset += b.length;
  }
  /** Names written in full so far, by writtenKey, and where. */
  const written = new Map<string, number>();
  for (const list of [p.answers ?? [], p.authorities ?? [], p.additionals ?? []]) {
    for (const rr of list) {
      const start = offset;
      const { full, afterOwner } = recordBytes(rr);
      const earlier =
        asked !== undefined && qname !== '' && namesQuestion(rr, asked, qname)
          ? QUESTION_NAME_OFFSET
          : written.get(writtenKey(rr.name));
      let ownerLength: number;
      if (earlier !== undefined) {
        emit?.(pointerTo(earlier));
        emit?.(afterOwner);
        ownerLength = 2;
      } else {
        emit?.(full);
        ownerLength = full.length - afterOwner.length;
        // The root and names past the pointers' reach are not worth remembering.
        if (ownerLength > 2 && start <= MAX_POINTER) written.set(writtenKey(rr.name), start);
      }
      offset += ownerLength + afterOwner.length;
      if (rr.type === 'SRV') {
        const target = (rr.data as { target?: unknown }).target;
        const at = start + ownerLength + SRV_TARGET_AFTER_OWNER;
        const key = typeof target === 'string' ? writtenKey(target) : '';
        // The root target ('.') is not worth remembering either.
        if (key !== '' && at <= MAX_POINTER && !written.has(key)) written.set(key, at);
      }
    }
  }
  return offset;
}

const pointers = new Map<number, Buffer>();
function pointerTo(offset: number): Buffer {
  let b = pointers.get(offset);
  if (b === undefined) {
    b = Buffer.from([0xc0 | (offset >> 8), offset & 0xff]);
    pointers.set(offset, b);
  }
  return b;
}

/** The encoded size of `p`, from the cached sizes of its records. */
export function messageLength(p: Packet): number {
  return layout(p);
}

/** `p` on the wire; decodes to what `dnsPacket.encode(p)` does, smaller by the compressed names. */
export function encodeMessage(p: Packet): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(p.id ?? 0, 0);
  header.writeUInt16BE(((p.flags ?? 0) & 0x7fff) | (p.type === 'response' ? 0x8000 : 0), 2);
  header.writeUInt16BE((p.questions ?? []).length, 4);
  header.writeUInt16BE((p.answers ?? []).length, 6);
  header.writeUInt16BE((p.authorities ?? []).length, 8);
  header.writeUInt16BE((p.additionals ?? []).length, 10);
  parts.push(header);
  const length = layout(p, (b) => parts.push(b));
  return Buffer.concat(parts, length);
}
