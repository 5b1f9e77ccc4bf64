/**
 * Request bodies: read raw with a byte limit (checked while streaming, so an oversized body is
 * refused without being buffered), then parsed as JSON whatever the Content-Type, as Consul does.
 */

import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { BodyTooLargeError, parseJsonBody } from '../wire/json-body.ts';
import type { HeaderSink } from './read.ts';

/** Consul's default limit on JSON request bodies other than KV values. */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;

/** A request whose body can be read: koa's context, or a direct-path exchange. */
export interface BodySource extends HeaderSink {
  readonly req: IncomingMessage;
}

/**
 * The body, refused past `maxBytes`. Read with stream events rather than `for await`: the async
 * iterator cost ~3.5 KiB of garbage per request, an eighth of all a KV write allocates on the
 * leader. A client that goes away mid-body ends the read with an AbortError, which the error
 * handlers leave unanswered (nobody is there to read it).
 */
export function readRawBody(ctx: BodySource, maxBytes: number): Promise<Buffer> {
  const { req } = ctx;
  const declared = Number(req.headers['content-length'] || 0);
  if (declared > maxBytes) {
    // Drain nothing: closing after answering is cheaper than reading what we refuse.
    ctx.set('Connection', 'close');
    return Promise.reject(new BodyTooLargeError(declared, maxBytes));
  }
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  if (req.destroyed) return Promise.reject(clientGone());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (err?: Error) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err) reject(err);
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        // The rest stays unread; the answer closes the connection.
        req.pause();
        ctx.set('Connection', 'close');
        settle(new BodyTooLargeError(size, maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => settle();
    // An aborted request errors (ECONNRESET) before it closes: that is the client going away too.
    const onError = (err: Error) => settle(req.destroyed ? clientGone() : err);
    // 'close' before 'end': the client went away mid-body.
    const onClose = () => settle(clientGone());
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function clientGone(): DOMException {
  return new DOMException('client went away', 'AbortError');
}

/** Reads, parses and validates a JSON body; `undefined` (no body) is passed to the schema as is. */
export async function jsonBody<S extends z.ZodType>(
  ctx: BodySource,
  schema: S,
  maxBytes = MAX_JSON_BODY_BYTES,
): Promise<z.infer<S>> {
  const raw = await readRawBody(ctx, maxBytes);
  const value = parseJsonBody(raw, { maxBytes, trailingData: 'ignore' });
  return schema.parse(value);
}
