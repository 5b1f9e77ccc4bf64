/**
 * `/v1/kv/<key>`: Consul's KV endpoint (agent/kvs_endpoint.go): GET with `recurse`, `keys`,
 * `separator`, `raw`; PUT with `flags`, `cas`, `acquire`, `release` and the raw value as body;
 * DELETE with `recurse`, `cas`.
 */

import Router from '@koa/router';
import type { KvOp, KvWireEntry } from '../../../catalog/types.ts';
import { BodyTooLargeError } from '../../wire/json-body.ts';
import { readRawBody } from '../body.ts';
import type { ApiContext } from '../context.ts';
import { writeValue } from '../context.ts';
import { badRequest, HttpError } from '../errors.ts';
import { checkDatacenter, flag, param, readOptions, setReadHeaders, uintParam } from '../read.ts';

/** Consul's `kv_max_value_size` default. */
export const MAX_KV_VALUE_BYTES = 512 * 1024;

/** The key is everything after `/v1/kv/`, percent-decoded once. */
function keyOf(ctx: ApiContext): string {
  const raw = ctx.path.slice('/v1/kv/'.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badRequest(`Invalid key encoding: ${JSON.stringify(raw)}`);
  }
}

async function getKv(ctx: ApiContext): Promise<void> {
  const { agent } = ctx.state;
  checkDatacenter(ctx, agent.datacenter);
  const key = keyOf(ctx);
  const opts = readOptions(ctx);
  const keysOnly = param(ctx, 'keys') !== undefined;
  const recurse = param(ctx, 'recurse') !== undefined;
  const raw = param(ctx, 'raw') !== undefined;

  if (keysOnly) {
    const separator = param(ctx, 'separator') ?? '';
    const reply = await agent.catalog.read('kv.keys', { prefix: key, separator }, opts);
    setReadHeaders(ctx, reply, opts.consistency);
    if (reply.result === null) {
      ctx.status = 404;
      return;
    }
    ctx.body = reply.result;
    return;
  }
  const reply = recurse
    ? await agent.catalog.read('kv.list', { prefix: key }, opts)
    : await agent.catalog.read('kv.get', { key }, opts);
  setReadHeaders(ctx, reply, opts.consistency);
  const rows: KvWireEntry[] | null = reply.result;
  if (rows === null) {
    ctx.status = 404;
    return;
  }
  if (raw && !recurse) {
    const value = rows[0].Value;
    ctx.type = 'application/octet-stream';
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.body = value === null ? Buffer.alloc(0) : Buffer.from(value, 'base64');
    return;
  }
  ctx.body = rows;
}

async function putKv(ctx: ApiContext): Promise<void> {
  const { agent } = ctx.state;
  checkDatacenter(ctx, agent.datacenter);
  const key = keyOf(ctx);
  if (key === '') throw badRequest('Missing key name');
  const flags = uintParam(ctx, 'flags', 'flags') ?? 0;
  const cas = uintParam(ctx, 'cas', 'cas index');
  const acquire = param(ctx, 'acquire');
  const release = param(ctx, 'release');
  if (acquire !== undefined && release !== undefined)
    throw badRequest('Conflicting flags: ?acquire and ?release');
  if ((acquire ?? release) === '') throw badRequest('Missing session ID');
  let body: Buffer;
  try {
    body = await readRawBody(ctx, MAX_KV_VALUE_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLargeError) {
      throw new HttpError(
        413,
        `Request body too large, max size: ${MAX_KV_VALUE_BYTES} bytes. See https://developer.hashicorp.com/consul/docs/agent/config/config-files#kv_max_value_size.`,
      );
    }
    throw err;
  }
  const op: KvOp = { Verb: 'set', Key: key, Value: body.toString('base64'), Flags: flags };
  if (acquire !== undefined) Object.assign(op, { Verb: 'lock', Session: acquire });
  else if (release !== undefined) Object.assign(op, { Verb: 'unlock', Session: release });
  else if (cas !== undefined) Object.assign(op, { Verb: 'cas', Index: cas });
  const reply = await agent.catalog.write({ type: 'kv', op });
  ctx.body = writeValue(reply) === true;
}

async function deleteKv(ctx: ApiContext): Promise<void> {
  const { agent } = ctx.state;
  checkDatacenter(ctx, agent.datacenter);
  const key = keyOf(ctx);
  const recurse = flag(ctx, 'recurse');
  const cas = uintParam(ctx, 'cas', 'cas index');
  if (key === '' && !recurse) throw badRequest('Missing key name');
  let op: KvOp;
  if (recurse) op = { Verb: 'delete-tree', Key: key };
  else if (cas !== undefined) op = { Verb: 'delete-cas', Key: key, Index: cas };
  else op = { Verb: 'delete', Key: key };
  const reply = await agent.catalog.write({ type: 'kv', op });
  ctx.body = writeValue(reply) === true;
}

export function kvRoutes(): Router {
  const router = new Router();
  // `(.*)`: keys may contain slashes, and may be empty for `?recurse` and `?keys` on the root.
  router.get(/^\/v1\/kv\/(.*)$/, getKv);
  router.put(/^\/v1\/kv\/(.*)$/, putKv);
  router.delete(/^\/v1\/kv\/(.*)$/, deleteKv);
  return router;
}
