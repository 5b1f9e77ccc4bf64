/**
 * zod schemas of the catalog commands and query options, for the server RPC edge: a command that
 * arrives from another agent is checked here before it can reach Raft, exactly as the HTTP edge
 * checks what users send. (The HTTP routes build commands from their own, richer request schemas.)
 */

import { z } from 'zod';
import type { KvVerb } from './types.ts';

const str = z.string();
const strMap = z.record(z.string(), z.string());
const index = z.number().int().min(0);

const status = z.enum(['passing', 'warning', 'critical', 'maintenance']);

export const NodeInputSchema = z.object({
  ID: str.optional(),
  Node: str.min(1),
  Address: str,
  Datacenter: str.optional(),
  TaggedAddresses: strMap.optional(),
  Meta: strMap.optional(),
});

export const ServiceInputSchema = z.object({
  ID: str.optional(),
  Service: str.min(1),
  Tags: z.array(str).optional(),
  Address: str.optional(),
  TaggedAddresses: z.record(z.string(), z.object({ Address: str, Port: z.number().int() })).optional(),
  Port: z.number().int().min(0).max(65535).optional(),
  Meta: strMap.optional(),
  Weights: z.object({ Passing: z.number().int(), Warning: z.number().int() }).optional(),
  EnableTagOverride: z.boolean().optional(),
  Kind: str.optional(),
  Proxy: z.record(z.string(), z.unknown()).optional(),
  Connect: z.record(z.string(), z.unknown()).optional(),
});

export const CheckInputSchema = z.object({
  CheckID: str.min(1),
  Name: str.optional(),
  Status: status.optional(),
  Notes: str.optional(),
  Output: str.optional(),
  ServiceID: str.optional(),
  ServiceName: str.optional(),
  ServiceTags: z.array(str).optional(),
  Type: str.optional(),
  Definition: z.record(z.string(), z.unknown()).optional(),
});

/** Every KV verb of `/v1/kv` and `/v1/txn`. */
export const KV_VERBS = [
  'set',
  'cas',
  'delete',
  'delete-cas',
  'delete-tree',
  'lock',
  'unlock',
  'get',
  'get-tree',
  'check-index',
  'check-session',
  'check-not-exists',
] as const satisfies readonly KvVerb[];

export const KvOpSchema = z.object({
  Verb: z.enum(KV_VERBS),
  Key: str,
  Value: str.nullable().optional(),
  Flags: z.number().int().min(0).optional(),
  Index: index.optional(),
  Session: str.optional(),
});

export const SessionRowInputSchema = z.object({
  ID: str.min(1),
  Name: str,
  Node: str.min(1),
  NodeChecks: z.array(str),
  ServiceChecks: z.array(z.object({ ID: str, Namespace: str })),
  LockDelay: z.number().int().min(0),
  Behavior: z.enum(['release', 'delete']),
  TTL: str,
});

/** A command without `now` (the proposing server stamps it). */
export const CommandInputSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('register'),
    node: NodeInputSchema,
    skipNodeUpdate: z.boolean().optional(),
    service: ServiceInputSchema.optional(),
    checks: z.array(CheckInputSchema).optional(),
  }),
  z.object({
    type: z.literal('deregister'),
    node: str.min(1),
    serviceId: str.optional(),
    checkId: str.optional(),
  }),
  z.object({ type: z.literal('kv'), op: KvOpSchema }),
  z.object({ type: z.literal('txn'), ops: z.array(z.object({ KV: KvOpSchema })) }),
  z.object({ type: z.literal('session-create'), session: SessionRowInputSchema }),
  z.object({ type: z.literal('session-destroy'), id: str.min(1) }),
  z.object({ type: z.literal('tombstone-reap'), upToIndex: index }),
  z.object({ type: z.literal('restore'), snapshot: z.string().base64() }),
]);

export const ReadOptionsSchema = z.object({
  consistency: z.enum(['default', 'consistent', 'stale']),
  maxStaleMs: z.number().min(0).optional(),
  minIndex: index,
  waitMs: z
    .number()
    .min(0)
    .max(15 * 60_000),
});
