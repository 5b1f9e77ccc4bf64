/** `meshd operator raft list-peers|remove-peer`: the Raft configuration through /v1/operator/raft. */
import { type CliCommand, group, leaf } from '../command.ts';
import { columnize } from '../table.ts';

export interface RaftServer {
  ID: string;
  Node: string;
  Address: string;
  Leader: boolean;
  Voter: boolean;
  ProtocolVersion?: string;
}

export function peerRows(servers: RaftServer[]): string[][] {
  const sorted = [...servers].sort((a, b) =>
    a.Node < b.Node ? -1 : a.Node > b.Node ? 1 : a.ID < b.ID ? -1 : 1,
  );
  return [
    ['Node', 'ID', 'Address', 'State', 'Voter', 'RaftProtocol'],
    ...sorted.map((s) => [
      s.Node || '(unknown)',
      s.ID,
      s.Address,
      s.Leader ? 'leader' : 'follower',
      String(!!s.Voter),
      s.ProtocolVersion || '<=1',
    ]),
  ];
}

const listPeers = leaf({
  name: 'operator raft list-peers',
  synopsis: 'Display the current Raft peer configuration',
  usage: '[options]',
  help: `
Displays the current Raft peer configuration.

    $ meshd operator raft list-peers

Use -stale to read the configuration from any server, for instance when the
cluster has no leader.`,
  http: 'server',
  output: true,
  async run(ctx) {
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    let servers: RaftServer[];
    try {
      const { value } = await ctx
        .client()
        .json<{ Servers?: RaftServer[] | null }>('GET', '/v1/operator/raft/configuration', { stale: true });
      servers = value?.Servers ?? [];
    } catch (e) {
      ctx.err(`Error getting peers: Failed to retrieve raft configuration: ${(e as Error).message}`);
      return 1;
    }
    if (ctx.format === 'json') {
      ctx.json(servers);
      return 0;
    }
    ctx.out(columnize(peerRows(servers)));
    return 0;
  },
});

const removePeer = leaf({
  name: 'operator raft remove-peer',
  synopsis: 'Remove a server from the Raft configuration',
  usage: '[options]',
  help: `
Removes the server with the given -address (or -id) from the Raft
configuration.

There are rare cases where a peer may be left behind in the Raft configuration
even though the server is no longer present and known to the cluster. This
command can be used to remove the failed server so that it no longer affects
the Raft quorum. A server still listed by "meshd members" should rather be
made to leave the cluster.`,
  http: 'server',
  flags: [
    {
      name: 'address',
      kind: 'string',
      placeholder: 'IP:port',
      usage: 'The address to remove from the Raft configuration.',
    },
    { name: 'id', kind: 'string', usage: 'The ID to remove from the Raft configuration.' },
  ],
  async run(ctx) {
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    const address = ctx.flags.string('address') ?? '';
    const id = ctx.flags.string('id') ?? '';
    if (address && id) {
      ctx.err('Error removing peer: Only one of -address or -id may be specified');
      return 1;
    }
    if (!address && !id) {
      ctx.err('Error removing peer: Missing peer address/ID');
      return 1;
    }
    try {
      await ctx
        .client()
        .request('DELETE', '/v1/operator/raft/peer', { query: [id ? ['id', id] : ['address', address]] });
    } catch (e) {
      ctx.err(`Error removing peer: ${(e as Error).message}`);
      return 1;
    }
    ctx.out(
      id
        ? `Removed peer with id ${JSON.stringify(id)}`
        : `Removed peer with address ${JSON.stringify(address)}`,
    );
    return 0;
  },
});

const raft = group({
  name: 'operator raft',
  synopsis: 'Provides cluster-level tools for Raft',
  help: `
The Raft operator command is used to interact with the Raft subsystem. The
command can be used to verify Raft peers or in rare cases to recover quorum by
removing invalid peers.`,
  subcommands: { 'list-peers': listPeers, 'remove-peer': removePeer },
});

export const operator: CliCommand = group({
  name: 'operator',
  synopsis: 'Provides cluster-level tools for operators',
  help: `
Provides cluster-level tools for operators, such as interacting with the Raft
subsystem. Use with care: some of these operations can affect the availability
of the cluster.`,
  subcommands: { raft },
});
