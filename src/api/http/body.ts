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

export async function readRawBody(ctx: BodySource, maxBytes: number): Promise<Buffer> {
  const declared = Number(ctx.req.headers['content-length'] || 0);
  if (declared > maxBytes) {
    // Drain nothing: closing after answering is cheaper than reading what we refuse.
    ctx.set('Connection', 'close');
    throw new BodyTooLargeError(declared, maxBytes);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      ctx.set('Connection', 'close');
      throw new BodyTooLargeError(size, maxBytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
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
