/** `meshd catalog services|nodes|datacenters`: the service catalog through /v1/catalog, as `consul catalog`. */
import { type CliCommand, group, leaf } from '../command.ts';
import type { FlagDef } from '../flags.ts';
import { escapePath, type Query } from '../http-client.ts';
import { columnize, tabwrite } from '../table.ts';

const nodeMetaFlag: FlagDef = {
  name: 'node-meta',
  kind: 'list',
  placeholder: 'key=value',
  usage:
    'Metadata to filter nodes with the given key=value pairs. This flag may be specified multiple times to ' +
    'filter on multiple sources of metadata.',
  validate: (v) => (v.includes('=') ? undefined : `Missing = in argument: ${v}`),
};

/** `-node-meta key=value` flags as the `node-meta=key:value` query parameters of the API. */
function nodeMetaQuery(values: string[]): Query {
  return values.map((v) => {
    const eq = v.indexOf('=');
    return ['node-meta', `${v.slice(0, eq)}:${v.slice(eq + 1)}`];
  });
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface CatalogNodeServices {
  Node?: unknown;
  Services?: Record<string, { Service: string; Tags?: string[] | null }> | null;
}

const services = leaf({
  name: 'catalog services',
  synopsis: 'Lists all registered services in a datacenter',
  usage: '[options]',
  help: `
Retrieves the list of services registered in a given datacenter. By default,
the datacenter of the local agent is queried.

    $ meshd catalog services
    $ meshd catalog services -tags
    $ meshd catalog services -node=web-01`,
  http: 'server',
  output: true,
  flags: [
    {
      name: 'node',
      kind: 'string',
      placeholder: 'id or name',
      usage: 'Node ID or name for which to list services.',
    },
    nodeMetaFlag,
    {
      name: 'tags',
      kind: 'bool',
      usage: "Display each service's tags as a comma-separated list beside each service.",
    },
  ],
  async run(ctx) {
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    const { flags } = ctx;
    const node = flags.string('node');
    const query = nodeMetaQuery(flags.list('node-meta'));
    const client = ctx.client();
    let byName: Record<string, string[]> = {};
    if (node) {
      try {
        const { value } = await client.json<CatalogNodeServices>(
          'GET',
          `/v1/catalog/node/${escapePath(node)}`,
          {
            query,
            stale: true,
            accept: [404],
          },
        );
        for (const s of Object.values(value?.Services ?? {})) {
          byName[s.Service] = [...(byName[s.Service] ?? []), ...(s.Tags ?? [])];
        }
      } catch (e) {
        ctx.err(`Error listing services for node: ${(e as Error).message}`);
        return 1;
      }
    } else {
      try {
        byName = (
          await client.json<Record<string, string[] | null>>('GET', '/v1/catalog/services', {
            query,
            stale: true,
          })
        ).value as Record<string, string[]>;
      } catch (e) {
        ctx.err(`Error listing services: ${(e as Error).message}`);
        return 1;
      }
    }
    const names = Object.keys(byName ?? {}).sort(cmp);
    if (ctx.format === 'json') {
      ctx.json(Object.fromEntries(names.map((n) => [n, [...new Set(byName[n] ?? [])].sort(cmp)])));
      return 0;
    }
    if (names.length === 0) {
      ctx.err('No services match the given query - try expanding your search.');
      return 0;
    }
    if (flags.bool('tags')) {
      const rows = names.map((n) => [n, [...new Set(byName[n] ?? [])].sort(cmp).join(',')]);
      ctx.out(tabwrite(rows).trim());
    } else {
      for (const n of names) ctx.out(n);
    }
    return 0;
  },
});

interface CatalogNode {
  ID?: string;
  Node: string;
  Address?: string;
  Datacenter?: string;
  TaggedAddresses?: Record<string, string> | null;
  Meta?: Record<string, string> | null;
}

interface CatalogServiceEntry {
  ID?: string;
  Node: string;
  Address?: string;
  Datacenter?: string;
  TaggedAddresses?: Record<string, string> | null;
  NodeMeta?: Record<string, string> | null;
}

/** `k1=v1, k2=v2`, sorted by key. */
function mapToKV(m: Record<string, string> | null | undefined): string {
  return Object.keys(m ?? {})
    .sort(cmp)
    .map((k) => `${k}=${m![k]}`)
    .join(', ');
}

export function nodeRows(nodes: CatalogNode[], detailed: boolean): string[][] {
  if (detailed) {
    return [
      ['Node', 'ID', 'Address', 'DC', 'TaggedAddresses', 'Meta'],
      ...nodes.map((n) => [
        n.Node,
        n.ID ?? '',
        n.Address ?? '',
        n.Datacenter ?? '',
        mapToKV(n.TaggedAddresses),
        mapToKV(n.Meta),
      ]),
    ];
  }
  return [
    ['Node', 'ID', 'Address', 'DC'],
    ...nodes.map((n) => {
      const id = n.ID ?? '';
      const dash = id.indexOf('-');
      return [n.Node, dash > 0 ? id.slice(0, dash) : id, n.Address ?? '', n.Datacenter ?? ''];
    }),
  ];
}

const nodes = leaf({
  name: 'catalog nodes',
  synopsis: 'Lists all nodes in the given datacenter',
  usage: '[options]',
  help: `
Retrieves the list of nodes registered in a given datacenter. By default, the
datacenter of the local agent is queried.

    $ meshd catalog nodes
    $ meshd catalog nodes -detailed
    $ meshd catalog nodes -service=redis
    $ meshd catalog nodes -near=node-web`,
  http: 'server',
  output: true,
  flags: [
    {
      name: 'detailed',
      kind: 'bool',
      usage: 'Output detailed information about the nodes including their addresses and metadata.',
    },
    {
      name: 'filter',
      kind: 'string',
      usage: 'Filter to use with the request (see the /catalog/nodes API documentation).',
    },
    {
      name: 'near',
      kind: 'string',
      placeholder: 'node name',
      usage:
        'Node name to sort the node list in ascending order based on estimated round-trip time from that node.',
    },
    nodeMetaFlag,
    {
      name: 'service',
      kind: 'string',
      placeholder: 'id or name',
      usage: 'Service id or name to filter nodes.',
    },
  ],
  async run(ctx) {
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    const { flags } = ctx;
    const near = flags.string('near');
    const service = flags.string('service');
    const filter = flags.string('filter');
    const query = nodeMetaQuery(flags.list('node-meta'));
    if (near) query.push(['near', near]);
    if (filter) query.push(['filter', filter]);
    const client = ctx.client();
    let list: CatalogNode[];
    if (service) {
      try {
        const entries =
          (
            await client.json<CatalogServiceEntry[]>('GET', `/v1/catalog/service/${escapePath(service)}`, {
              query,
              stale: true,
            })
          ).value ?? [];
        const seen = new Set<string>();
        list = [];
        for (const s of entries) {
          if (seen.has(s.Node)) continue;
          seen.add(s.Node);
          list.push({ ...s, Meta: s.NodeMeta });
        }
      } catch (e) {
        ctx.err(`Error listing nodes for service: ${(e as Error).message}`);
        return 1;
      }
    } else {
      try {
        list =
          (await client.json<CatalogNode[]>('GET', '/v1/catalog/nodes', { query, stale: true })).value ?? [];
      } catch (e) {
        ctx.err(`Error listing nodes: ${(e as Error).message}`);
        return 1;
      }
    }
    if (list.length === 0) {
      ctx.err('No nodes match the given query - try expanding your search.');
      return 0;
    }
    // With -near the agent's order (by round-trip time) is the point; otherwise sort by name.
    if (!near) list = [...list].sort((a, b) => cmp(a.Node, b.Node));
    if (ctx.format === 'json') {
      ctx.json(list);
      return 0;
    }
    ctx.out(columnize(nodeRows(list, flags.bool('detailed'))));
    return 0;
  },
});

const datacenters = leaf({
  name: 'catalog datacenters',
  synopsis: 'Lists all known datacenters',
  usage: '[options]',
  help: `
Retrieves the list of all known datacenters, sorted by estimated round-trip
time from the current datacenter.

    $ meshd catalog datacenters`,
  http: 'client',
  output: true,
  async run(ctx) {
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    let dcs: string[];
    try {
      dcs = (await ctx.client().json<string[]>('GET', '/v1/catalog/datacenters')).value ?? [];
    } catch (e) {
      ctx.err(`Error listing datacenters: ${(e as Error).message}`);
      return 1;
    }
    if (dcs.length === 0) {
      ctx.err('No datacenters found');
      return 1;
    }
    if (ctx.format === 'json') {
      ctx.json(dcs);
      return 0;
    }
    for (const dc of dcs) ctx.out(dc);
    return 0;
  },
});

export const catalog: CliCommand = group({
  name: 'catalog',
  synopsis: 'Interact with the catalog',
  help: `
Interact with the catalog: list the datacenters, nodes and services it knows.

    $ meshd catalog datacenters
    $ meshd catalog nodes
    $ meshd catalog services`,
  subcommands: { datacenters, nodes, services },
});
