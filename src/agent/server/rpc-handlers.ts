/**
 * The server side of the server RPC: validates each request (the RPC edge) and hands it to the
 * {@link CatalogServer}. A request marked `forwarded` came from a server that believed this one
 * leads; if it does not, it answers `not-leader` instead of forwarding again, so two servers with
 * different ideas of the leader cannot bounce a request between them.
 */

import { z } from 'zod';
import { CommandInputSchema, ReadOptionsSchema } from '../../catalog/command-schema.ts';
import { isQueryName, type QueryArgs, type QueryName } from '../../catalog/queries.ts';
import { NotLeaderError, ProposalDroppedError } from '../../raft/errors.ts';
import type { CommandInput } from '../backend.ts';
import { RpcError, type RpcHandlers } from '../rpc/service.ts';
import type { DiscoveredServer } from './bootstrap.ts';
import type { CatalogServer } from './server.ts';

const ApplyRequest = z.object({ command: CommandInputSchema, forwarded: z.boolean().optional() });
const QueryRequest = z.object({
  name: z.string(),
  args: z.record(z.string(), z.unknown()),
  opts: ReadOptionsSchema,
  forwarded: z.boolean().optional(),
});
const DiscoveredSchema = z.object({
  id: z.string().min(1),
  name: z.string(),
  address: z.string().min(1),
  datacenter: z.string(),
  bootstrapExpect: z.number().int().min(0),
  hasState: z.boolean(),
  leaderAddress: z.string(),
  known: z.array(z.unknown()),
});
const InfoRequest = z.object({ from: DiscoveredSchema.optional() });
const JoinRequest = z.object({ id: z.string().min(1), name: z.string(), address: z.string().min(1) });
const RemovePeerRequest = z.object({ id: z.string().optional(), address: z.string().optional() });
const RenewRequest = z.object({ id: z.string().min(1) });

function parse<T>(schema: z.ZodType<T>, request: unknown, what: string): T {
  const r = schema.safeParse(request);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new RpcError(
      'bad-request',
      `invalid ${what} request: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  return r.data;
}

/** Maps Raft's "not here" errors to the RPC refusal that tells a caller to try the leader. */
function asRpcError(err: unknown): unknown {
  if (err instanceof NotLeaderError) return new RpcError('not-leader', err.message);
  if (err instanceof ProposalDroppedError) return new RpcError('not-leader', err.message);
  return err;
}

export function serverRpcHandlers(server: CatalogServer): RpcHandlers {
  return {
    async Apply(request, signal) {
      const { command, forwarded } = parse(ApplyRequest, request, 'Apply');
      try {
        if (forwarded) return await server.applyLocal(command as CommandInput);
        return await server.write(command as CommandInput, signal);
      } catch (err) {
        throw asRpcError(err);
      }
    },
    async Query(request, signal) {
      const { name, args, opts, forwarded } = parse(QueryRequest, request, 'Query');
      if (!isQueryName(name)) throw new RpcError('bad-request', `unknown query "${name}"`);
      const typedArgs = args as QueryArgs<QueryName>;
      try {
        if (forwarded) return await server.readLocal(name, typedArgs, { ...opts, signal });
        return await server.read(name, typedArgs, { ...opts, signal });
      } catch (err) {
        throw asRpcError(err);
      }
    },
    async Info(request) {
      const { from } = parse(InfoRequest, request, 'Info');
      if (from) server.learn(from as DiscoveredServer);
      return server.describe();
    },
    async Join(request) {
      const { id, name, address } = parse(JoinRequest, request, 'Join');
      try {
        await server.addServer(id, name, address);
        return true;
      } catch (err) {
        throw asRpcError(err);
      }
    },
    async RemovePeer(request) {
      const target = parse(RemovePeerRequest, request, 'RemovePeer');
      if (target.id === undefined && target.address === undefined) {
        throw new RpcError(
          'bad-request',
          "Must specify either ?id with the server's ID or ?address with IP:port",
        );
      }
      await server.removePeer(target);
      return true;
    },
    async RaftConfiguration() {
      return server.raftConfiguration();
    },
    async RenewSession(request) {
      const { id } = parse(RenewRequest, request, 'RenewSession');
      return server.renewSession(id);
    },
    async AutopilotHealth() {
      return server.autopilotHealth();
    },
    async Snapshot() {
      const { index, chunks } = await server.snapshot();
      return { index, data: Buffer.concat(chunks).toString('base64') };
    },
  };
}
