/**
 * `/v1/session/*` (Consul's session endpoint): create, destroy, renew, info, node, list.
 * Locks are taken with `PUT /v1/kv/<key>?acquire=<id>`; invalidation (node or check failure, TTL
 * expiry on the leader) releases or deletes the session's keys per its Behavior.
 */

import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import { z } from 'zod';
import { consulObject, goDuration } from '../../wire/consul-json.ts';
import { formatGoDuration } from '../../wire/duration.ts';
import { jsonBody } from '../body.ts';
import { type ApiContext, writeValue } from '../context.ts';
import { badRequest, notFound } from '../errors.ts';
import { blockingRead, checkDatacenter } from '../read.ts';

/** Consul's bounds: TTL 10 s..24 h; lock delay at most 60 s (default 15 s). */
const MIN_TTL_MS = 10_000;
const MAX_TTL_MS = 24 * 3_600_000;
const MAX_LOCK_DELAY_MS = 60_000;
const DEFAULT_LOCK_DELAY_MS = 15_000;

const SessionCreate = consulObject({
  Name: z.string().optional(),
  Node: z.string().optional(),
  /** Consul's `lockDelayMinThreshold`: a bare number below 1000 means seconds, not nanoseconds. */
  LockDelay: z
    .preprocess((v) => (typeof v === 'number' && v >= 0 && v < 1000 ? v * 1e9 : v), goDuration())
    .optional(),
  Behavior: z.enum(['release', 'delete']).optional(),
  TTL: z.string().optional(),
  NodeChecks: z.array(z.string()).nullable().optional(),
  ServiceChecks: z
    .array(z.object({ ID: z.string().min(1), Namespace: z.string().optional() }))
    .nullable()
    .optional(),
  /** The pre-1.7 name of NodeChecks. */
  Checks: z.array(z.string()).nullable().optional(),
}).optional();

/** Consul's TTL rule: '' or a duration between 10 s and 24 h; answered in Go's format. */
function normalizeTtl(ttl: string | undefined): string {
  if (ttl === undefined || ttl === '') return '';
  let ms: number;
  try {
    ms = goDuration().parse(ttl);
  } catch {
    throw badRequest(`Request decode failed: invalid duration "${ttl}"`);
  }
  if (ms !== 0 && (ms < MIN_TTL_MS || ms > MAX_TTL_MS)) {
    throw badRequest(`Invalid Session TTL '${ttl}', must be between [10s=24h0m0s]`);
  }
  return ms === 0 ? '' : formatGoDuration(ms);
}

export function sessionRoutes(): Router {
  const router = new Router();

  router.put('/v1/session/create', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const b = (await jsonBody(ctx, SessionCreate)) ?? {};
    const node = b.Node || agent.nodeName;
    let nodeChecks = b.NodeChecks ?? b.Checks ?? undefined;
    if (nodeChecks === undefined || nodeChecks === null) {
      // Consul binds a session to serfHealth by default; before gossip a node may not have it.
      const checks = await agent.catalog.read(
        'health.node',
        { node },
        { consistency: 'default', minIndex: 0, waitMs: 0 },
      );
      nodeChecks = checks.result.some((c) => c.CheckID === 'serfHealth') ? ['serfHealth'] : [];
    }
    const lockDelayMs = b.LockDelay ?? DEFAULT_LOCK_DELAY_MS;
    if (lockDelayMs < 0) throw badRequest('LockDelay must not be negative');
    const id = randomUUID();
    const reply = await agent.catalog.write({
      type: 'session-create',
      session: {
        ID: id,
        Name: b.Name ?? '',
        Node: node,
        NodeChecks: [...new Set(nodeChecks)],
        ServiceChecks: (b.ServiceChecks ?? []).map((c) => ({ ID: c.ID, Namespace: c.Namespace ?? '' })),
        LockDelay: Math.min(lockDelayMs, MAX_LOCK_DELAY_MS) * 1e6,
        Behavior: b.Behavior ?? 'release',
        TTL: normalizeTtl(b.TTL),
      },
    });
    writeValue(reply);
    ctx.body = { ID: id };
  });

  router.put('/v1/session/destroy/:id', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const reply = await agent.catalog.write({ type: 'session-destroy', id: ctx.params.id });
    ctx.body = writeValue(reply) === true;
  });

  router.put('/v1/session/renew/:id', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const row = await agent.catalog.renewSession(ctx.params.id);
    if (row === null) throw notFound(`Session id '${ctx.params.id}' not found`);
    ctx.body = [row];
  });

  const read =
    (
      name: 'session.info' | 'session.node' | 'session.list',
      arg: (ctx: ApiContext) => Record<string, string>,
    ) =>
    async (ctx: ApiContext) => {
      ctx.body = await blockingRead(ctx, name, arg(ctx) as never);
    };
  router.get(
    '/v1/session/info/:id',
    read('session.info', (ctx) => ({ id: ctx.params.id })),
  );
  router.get(
    '/v1/session/node/:node',
    read('session.node', (ctx) => ({ node: ctx.params.node })),
  );
  router.get(
    '/v1/session/list',
    read('session.list', () => ({})),
  );
  return router;
}
