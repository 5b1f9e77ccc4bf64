/**
 * `/v1/operator/raft/configuration`, `DELETE /v1/operator/raft/peer?id=|address=`,
 * `/v1/operator/autopilot/health`, and `/v1/snapshot` (GET saves a gzip'd catalog snapshot, PUT
 * restores one through Raft, so every server switches to it at the same index).
 */

import { gzipSync } from 'node:zlib';
import Router from '@koa/router';
import { gunzipSnapshot, parseSnapshot, SnapshotFormatError } from '../../../catalog/fsm.ts';
import { WatchRegistry } from '../../../catalog/watch.ts';
import { BodyTooLargeError } from '../../wire/json-body.ts';
import { readRawBody } from '../body.ts';
import { type ApiContext, writeValue } from '../context.ts';
import { badRequest, HttpError } from '../errors.ts';
import { checkDatacenter, param } from '../read.ts';

/**
 * A restore travels as one Raft entry (and one server RPC message when forwarded), so the
 * compressed archive is bounded below both frame limits (4 MiB RPC, 8 MiB Raft).
 */
export const MAX_SNAPSHOT_ARCHIVE_BYTES = 2 * 1024 * 1024;

export function operatorRoutes(): Router {
  const router = new Router();
  router.get('/v1/operator/raft/configuration', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    ctx.body = await ctx.state.agent.catalog.raftConfiguration();
  });
  router.delete('/v1/operator/raft/peer', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    const id = param(ctx, 'id');
    const address = param(ctx, 'address');
    if (!id && !address)
      throw badRequest("Must specify either ?id with the server's ID or ?address with IP:port");
    await ctx.state.agent.catalog.removePeer(id ? { id } : { address });
    ctx.status = 200;
    ctx.body = '';
  });
  router.get('/v1/operator/autopilot/health', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    const health = await ctx.state.agent.catalog.autopilotHealth();
    // Consul answers 429 when the cluster is unhealthy, so load balancers can probe it.
    ctx.status = health.Healthy ? 200 : 429;
    ctx.body = health;
  });
  router.get('/v1/snapshot', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    const { index, chunks } = await ctx.state.agent.catalog.snapshot();
    ctx.set('X-Consul-Index', String(Math.max(1, index)));
    ctx.type = 'application/gzip';
    ctx.body = gzipSync(Buffer.concat(chunks));
  });
  router.put('/v1/snapshot', async (ctx: ApiContext) => {
    checkDatacenter(ctx, ctx.state.agent.datacenter);
    let archive: Buffer;
    try {
      archive = await readRawBody(ctx, MAX_SNAPSHOT_ARCHIVE_BYTES);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        throw new HttpError(
          413,
          `snapshot archive too large: the limit is ${MAX_SNAPSHOT_ARCHIVE_BYTES} bytes compressed (a restore is one Raft entry)`,
        );
      }
      throw err;
    }
    // Validate here so a bad archive is a 400 and never reaches the log.
    try {
      parseSnapshot(gunzipSnapshot(archive), new WatchRegistry());
    } catch (err) {
      if (err instanceof SnapshotFormatError) throw badRequest(`Invalid snapshot: ${err.message}`);
      throw err;
    }
    const reply = await ctx.state.agent.catalog.write({
      type: 'restore',
      snapshot: archive.toString('base64'),
    });
    writeValue(reply);
    ctx.status = 200;
    ctx.body = '';
  });
  return router;
}
