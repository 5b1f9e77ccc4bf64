/** `meshd members`: the gossip pool as the local agent sees it (GET /v1/agent/members). */
import { type CliCommand, leaf } from '../command.ts';
import { columnize } from '../table.ts';

export interface AgentMember {
  Name: string;
  Addr: string;
  Port: number;
  Tags?: Record<string, string> | null;
  Status: number;
}

const STATUS = ['none', 'alive', 'leaving', 'left', 'failed'];

/** Serf's member status names: 1 alive, 2 leaving, 3 left, 4 failed. */
export function memberStatus(status: number): string {
  return STATUS[status] ?? 'unknown';
}

function hostPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Consul's order: servers first, then the default partition, then the default segment, then by name. */
export function compareMembers(a: AgentMember, b: AgentMember): number {
  const ta = a.Tags ?? {};
  const tb = b.Tags ?? {};
  const server = Number(tb.role === 'consul') - Number(ta.role === 'consul');
  if (server) return server;
  const isDefault = (p: string | undefined) => !p || p === 'default';
  const defPart = Number(isDefault(tb.ap)) - Number(isDefault(ta.ap));
  if (defPart) return defPart;
  const part = cmp(ta.ap ?? '', tb.ap ?? '');
  if (part) return part;
  const defSeg = Number(!tb.segment) - Number(!ta.segment);
  if (defSeg) return defSeg;
  return cmp(ta.segment ?? '', tb.segment ?? '') || cmp(a.Name, b.Name);
}

function standardRows(members: AgentMember[]): string[][] {
  const rows = [['Node', 'Address', 'Status', 'Type', 'Build', 'Protocol', 'DC', 'Partition', 'Segment']];
  for (const m of members) {
    const tags = m.Tags ?? {};
    const server = tags.role === 'consul';
    const build = (tags.build ?? '').split(':')[0];
    rows.push([
      m.Name,
      hostPort(m.Addr, m.Port),
      memberStatus(m.Status),
      server ? 'server' : 'client',
      build,
      tags.vsn ?? '',
      tags.dc ?? '',
      tags.ap || 'default',
      tags.segment || (server ? '<all>' : '<default>'),
    ]);
  }
  return rows;
}

function detailedRows(members: AgentMember[]): string[][] {
  const rows = [['Node', 'Address', 'Status', 'Tags']];
  for (const m of members) {
    const tags = m.Tags ?? {};
    const pairs = Object.keys(tags)
      .sort()
      .map((k) => `${k}=${tags[k]}`);
    rows.push([m.Name, hostPort(m.Addr, m.Port), memberStatus(m.Status), pairs.join(',')]);
  }
  return rows;
}

export const members: CliCommand = leaf({
  name: 'members',
  synopsis: 'Lists the members of a meshd cluster',
  usage: '[options]',
  help: `
Outputs the members of a running meshd agent's gossip pool, with their status.
Exits with status 2 when no member matches the filters.`,
  http: 'client',
  output: true,
  flags: [
    { name: 'detailed', kind: 'bool', usage: 'Provides detailed information about nodes (all their tags).' },
    {
      name: 'status',
      kind: 'string',
      placeholder: 'regexp',
      usage: 'If provided, output is filtered to only nodes matching the regular expression for status.',
    },
    { name: 'wan', kind: 'bool', usage: 'If the agent is in server mode, list the WAN gossip pool instead.' },
    { name: 'segment', kind: 'string', usage: '(Enterprise-only) The network segment to list members of.' },
    {
      name: 'filter',
      kind: 'string',
      usage: 'Expression used to filter the members, e.g. Tags["dc"] == "dc2" (see the API documentation).',
    },
  ],
  async run(ctx) {
    const { flags } = ctx;
    let statusRe: RegExp;
    try {
      statusRe = new RegExp(flags.string('status') ?? '.*');
    } catch (e) {
      ctx.err(`Failed to compile status regexp: ${(e as Error).message}`);
      return 1;
    }
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    const query: Array<[string, string]> = [];
    if (flags.bool('wan')) query.push(['wan', '1']);
    const segment = flags.string('segment');
    if (segment) query.push(['segment', segment]);
    const filter = flags.string('filter');
    if (filter) query.push(['filter', filter]);
    let list: AgentMember[];
    try {
      list = (await ctx.client().json<AgentMember[]>('GET', '/v1/agent/members', { query })).value ?? [];
    } catch (e) {
      ctx.err(`Error retrieving members: ${(e as Error).message}`);
      return 1;
    }
    const shown = list.filter((m) => statusRe.test(memberStatus(m.Status))).sort(compareMembers);
    if (shown.length === 0) return 2;
    if (ctx.format === 'json') {
      ctx.json(shown);
      return 0;
    }
    ctx.out(columnize(flags.bool('detailed') ? detailedRows(shown) : standardRows(shown)));
    return 0;
  },
});
