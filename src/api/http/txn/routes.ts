/**
 * `PUT /v1/txn` (Consul's transaction endpoint, KV operations): all ops apply atomically in one
 * Raft entry, or none do. A transaction made only of reads is served without Raft, with the read
 * consistency modes. 200 with `Results` on success; 409 with `Errors` on a rollback.
 */

import Router from '@koa/router';
import { z } from 'zod';
import { KV_VERBS } from '../../../catalog/command-schema.ts';
import { isKvReadVerb, MAX_TXN_OPS } from '../../../catalog/state.ts';
import type { KvOp, TxnResult } from '../../../catalog/types.ts';
import { consulBody } from '../../wire/consul-json.ts';
import { jsonBody } from '../body.ts';
import { type ApiContext, writeValue } from '../context.ts';
import { badRequest, HttpError } from '../errors.ts';
import { checkDatacenter, readOptions, setReadHeaders } from '../read.ts';

/** Consul's `txn_max_req_len` default. */
export const MAX_TXN_BODY_BYTES = 512 * 1024;

const KvOpBody = z.object({
  Verb: z.enum(KV_VERBS, { error: (i) => `unknown KV verb ${JSON.stringify(i.input)}` }),
  Key: z.string(),
  Value: z.string().base64({ error: 'Value must be base64' }).nullable().optional(),
  Flags: z.number().int().min(0).optional(),
  Index: z.number().int().min(0).optional(),
  Session: z.string().optional(),
});

const TxnBody = consulBody(
  z.array(
    z
      .object({
        KV: KvOpBody.optional(),
        Node: z.unknown().optional(),
        Service: z.unknown().optional(),
        Check: z.unknown().optional(),
        Intention: z.unknown().optional(),
      })
      .strict(),
    { error: 'Request decode failed: the body must be a JSON array of operations' },
  ),
);

export function txnRoutes(): Router {
  const router = new Router();
  router.put('/v1/txn', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const body = await jsonBody(ctx, TxnBody, MAX_TXN_BODY_BYTES);
    if (body.length > MAX_TXN_OPS) {
      throw new HttpError(413, `Transaction contains too many operations (${body.length} > ${MAX_TXN_OPS})`);
    }
    const ops: { KV: KvOp }[] = body.map((op, i) => {
      const other = (['Node', 'Service', 'Check', 'Intention'] as const).find((k) => op[k] !== undefined);
      if (other) throw badRequest(`operation ${i}: ${other} operations are not supported yet; only KV`);
      if (!op.KV) throw badRequest(`operation ${i}: missing KV`);
      const { Value, ...rest } = op.KV;
      return { KV: Value === null || Value === undefined ? rest : { ...rest, Value } };
    });
    let result: TxnResult;
    if (ops.length > 0 && ops.every((op) => isKvReadVerb(op.KV.Verb))) {
      const opts = readOptions(ctx);
      const reply = await agent.catalog.read('txn.read', { ops }, { ...opts, minIndex: 0 });
      setReadHeaders(ctx, reply, opts.consistency);
      result = reply.result;
    } else {
      const reply = await agent.catalog.write({ type: 'txn', ops });
      result = writeValue(reply) as TxnResult;
      ctx.set('X-Consul-Index', String(reply.index));
    }
    ctx.status = result.Errors ? 409 : 200;
    ctx.body = result;
  });
  return router;
}
