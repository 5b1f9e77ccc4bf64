/**
 * Every read the API can make of the catalog, by name. A query is a synchronous function of the
 * state and JSON arguments returning {@link QueryRun} (data, index, watch keys), so the same
 * named query runs in-process on a server, or on a server on behalf of a client agent that sent
 * `{name, args}` over RPC, and parks the same way for blocking queries.
 *
 * Results are JSON-serializable wire-ready data (KV values base64), because they may cross RPC.
 */

import { kvKeyWatch, kvPrefixWatch } from './kv.ts';
import { type CatalogState, kvReadOp, kvWire } from './state.ts';
import type { HealthStatus, KvOp, KvWireEntry, TxnResult } from './types.ts';
import type { QueryRun } from './watch.ts';

type NodeMeta = Record<string, string> | undefined;

export const catalogQueries = {
  /** `GET /v1/kv/<key>`: the entry, or null (a 404 at the edge, still with an index). */
  'kv.get': (s: CatalogState, a: { key: string }): QueryRun<KvWireEntry[] | null> => {
    const e = s.kv.get(a.key);
    return { index: s.kv.keyIndex(a.key), result: e ? [kvWire(e)] : null, watch: [kvKeyWatch(a.key)] };
  },
  /** `GET /v1/kv/<prefix>?recurse`. */
  'kv.list': (s: CatalogState, a: { prefix: string }): QueryRun<KvWireEntry[] | null> => {
    const rows = s.kv.list(a.prefix).map((e) => kvWire(e));
    return {
      index: s.kv.prefixIndex(a.prefix),
      result: rows.length ? rows : null,
      watch: [kvPrefixWatch(a.prefix)],
    };
  },
  /** `GET /v1/kv/<prefix>?keys[&separator=]`. */
  'kv.keys': (s: CatalogState, a: { prefix: string; separator?: string }): QueryRun<string[] | null> => {
    const keys = s.kv.keys(a.prefix, a.separator ?? '');
    return {
      index: s.kv.prefixIndex(a.prefix),
      result: keys.length ? keys : null,
      watch: [kvPrefixWatch(a.prefix)],
    };
  },
  /**
   * A `/v1/txn` whose ops are all reads (`get`, `get-tree`, `check-*`): served without Raft, as
   * Consul's read-only transactions are.
   */
  'txn.read': (s: CatalogState, a: { ops: { KV: KvOp }[] }): QueryRun<TxnResult> => {
    const results: { KV: KvWireEntry }[] = [];
    for (let i = 0; i < a.ops.length; i++) {
      const what = kvReadOp(s.kv, a.ops[i].KV, results);
      if (what !== undefined) {
        return {
          index: s.kv.tableIndex,
          result: { Results: null, Errors: [{ OpIndex: i, What: what }] },
          watch: [],
        };
      }
    }
    return { index: s.kv.tableIndex, result: { Results: results, Errors: null }, watch: [] };
  },

  'catalog.nodes': (s: CatalogState, a: { nodeMeta?: NodeMeta }) =>
    s.registry.nodes({ nodeMeta: a.nodeMeta }),
  'catalog.services': (s: CatalogState, a: { nodeMeta?: NodeMeta }) =>
    s.registry.services({ nodeMeta: a.nodeMeta }),
  'catalog.service': (
    s: CatalogState,
    a: { service: string; tags?: string[]; nodeMeta?: NodeMeta; connect?: boolean },
  ) => s.registry.serviceNodes(a.service, { tags: a.tags, nodeMeta: a.nodeMeta, connect: a.connect }),
  'catalog.node': (s: CatalogState, a: { node: string }) => s.registry.nodeServices(a.node),
  'health.node': (s: CatalogState, a: { node: string }) => s.registry.nodeChecks(a.node),
  'health.checks': (s: CatalogState, a: { service: string }) => s.registry.serviceChecks(a.service),
  'health.state': (s: CatalogState, a: { state: HealthStatus | 'any' }) => s.registry.checksInState(a.state),
  'health.service': (
    s: CatalogState,
    a: { service: string; tags?: string[]; passingOnly?: boolean; nodeMeta?: NodeMeta },
  ) =>
    s.registry.checkServiceNodes(a.service, {
      tags: a.tags,
      passingOnly: a.passingOnly,
      nodeMeta: a.nodeMeta,
    }),

  'session.info': (s: CatalogState, a: { id: string }) => s.sessions.info(a.id),
  'session.list': (s: CatalogState, _a: Record<string, never>) => s.sessions.list(),
  'session.node': (s: CatalogState, a: { node: string }) => s.sessions.nodeSessions(a.node),
} as const;

export type CatalogQueries = typeof catalogQueries;
export type QueryName = keyof CatalogQueries;
export type QueryArgs<N extends QueryName> = Parameters<CatalogQueries[N]>[1];
export type QueryResult<N extends QueryName> = ReturnType<CatalogQueries[N]>['result'];

export function isQueryName(name: string): name is QueryName {
  return Object.hasOwn(catalogQueries, name);
}

/** Runs a named query (the RPC server's entry point; args were validated by the caller's edge). */
export function runQuery<N extends QueryName>(
  state: CatalogState,
  name: N,
  args: QueryArgs<N>,
): QueryRun<QueryResult<N>> {
  const fn = catalogQueries[name] as (s: CatalogState, a: QueryArgs<N>) => QueryRun<QueryResult<N>>;
  return fn(state, args);
}
