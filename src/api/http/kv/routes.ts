/**
 * `/v1/kv/<key>`: Consul's KV endpoint (agent/kvs_endpoint.go). GET with `recurse`, `keys`
 * (and `separator`), `raw`; PUT with `flags`, `cas`, `acquire`, `release` and the raw value as
 * body; DELETE with `recurse`, `cas`. Served on the direct path (direct.ts): KV is what clients
 * hit hardest.
 */

import type { KvOp, KvWireEntry } from '../../../catalog/types.ts';
import { BodyTooLargeError } from '../../wire/json-body.ts';
import { readRawBody } from '../body.ts';
import { type AgentApi, writeValue } from '../context.ts';
import type { DirectAnswer, DirectExchange, DirectRoute } from '../direct.ts';
import { badRequest, HttpError } from '../errors.ts';
import { checkDatacenter, flag, param, readOptions, setReadHeaders, uintParam } from '../read.ts';

/** Consul's `kv_max_value_size` default. */
export const MAX_KV_VALUE_BYTES = 512 * 1024;

/** The key is everything after `/v1/kv/`, percent-decoded once. */
function keyOf(ex: DirectExchange): string {
  const raw = ex.path.slice('/v1/kv/'.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badRequest(`Invalid key encoding: ${JSON.stringify(raw)}`);
  }
}

async function getKv(ex: DirectExchange, agent: AgentApi): Promise<DirectAnswer> {
  checkDatacenter(ex, agent.datacenter);
  const key = keyOf(ex);
  const opts = readOptions(ex);

  if (param(ex, 'keys') !== undefined) {
    const separator = param(ex, 'separator') ?? '';
    const reply = await agent.catalog.read('kv.keys', { prefix: key, separator }, opts);
    setReadHeaders(ex, reply, opts.consistency);
    // Consul answers a miss with 404 and no body, its index headers still set.
    return reply.result === null ? { status: 404 } : { status: 200, json: reply.result };
  }
  const recurse = param(ex, 'recurse') !== undefined;
  const reply = recurse
    ? await agent.catalog.read('kv.list', { prefix: key }, opts)
    : await agent.catalog.read('kv.get', { key }, opts);
  setReadHeaders(ex, reply, opts.consistency);
  const rows: KvWireEntry[] | null = reply.result;
  if (rows === null) return { status: 404 };
  if (param(ex, 'raw') !== undefined && !recurse) {
    const value = rows[0].Value;
    ex.set('X-Content-Type-Options', 'nosniff');
    return {
      status: 200,
      bytes: value === null ? Buffer.alloc(0) : Buffer.from(value, 'base64'),
      type: 'application/octet-stream',
    };
  }
  return { status: 200, json: rows };
}

async function putKv(ex: DirectExchange, agent: AgentApi): Promise<DirectAnswer> {
  checkDatacenter(ex, agent.datacenter);
  const key = keyOf(ex);
  if (key === '') throw badRequest('Missing key name');
  const flags = uintParam(ex, 'flags', 'flags') ?? 0;
  const cas = uintParam(ex, 'cas', 'cas index');
  const acquire = param(ex, 'acquire');
  const release = param(ex, 'release');
  if (acquire !== undefined && release !== undefined)
    throw badRequest('Conflicting flags: ?acquire and ?release');
  if ((acquire ?? release) === '') throw badRequest('Missing session ID');
  let body: Buffer;
  try {
    body = await readRawBody(ex, MAX_KV_VALUE_BYTES);
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
  return { status: 200, json: writeValue(reply) === true };
}

async function deleteKv(ex: DirectExchange, agent: AgentApi): Promise<DirectAnswer> {
  checkDatacenter(ex, agent.datacenter);
  const key = keyOf(ex);
  const recurse = flag(ex, 'recurse');
  const cas = uintParam(ex, 'cas', 'cas index');
  if (key === '' && !recurse) throw badRequest('Missing key name');
  let op: KvOp;
  if (recurse) op = { Verb: 'delete-tree', Key: key };
  else if (cas !== undefined) op = { Verb: 'delete-cas', Key: key, Index: cas };
  else op = { Verb: 'delete', Key: key };
  const reply = await agent.catalog.write({ type: 'kv', op });
  return { status: 200, json: writeValue(reply) === true };
}

/** Keys may contain slashes, and may be empty for `?recurse` and `?keys` on the root. */
export const kvRoute: DirectRoute = {
  prefix: '/v1/kv/',
  methods: { GET: getKv, HEAD: getKv, PUT: putKv, DELETE: deleteKv },
};
