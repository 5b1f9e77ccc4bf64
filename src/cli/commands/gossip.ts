/**
 * The gossip commands: `meshd join`, `meshd force-leave`, `meshd keygen` and `meshd event`, with
 * Consul's flags, messages and exit codes.
 */
import { randomBytes } from 'node:crypto';
import { type CliCommand, leaf } from '../command.ts';
import type { Query } from '../http-client.ts';

export const join: CliCommand = leaf({
  name: 'join',
  synopsis: 'Tell the agent to join a cluster',
  usage: '[options] address ...',
  help: `
Tells the local agent to join the given addresses (gossip addresses; the port defaults to the
agent's gossip port) and, through them, their cluster.`,
  http: 'client',
  flags: [{ name: 'wan', kind: 'bool', usage: 'Joins a server to another server in the WAN pool.' }],
  async run(ctx) {
    if (ctx.args.length === 0) {
      ctx.err('At least one address to join must be specified.');
      return 1;
    }
    const query: Query = ctx.flags.bool('wan') ? [['wan', '1']] : [];
    let joined = 0;
    for (const address of ctx.args) {
      try {
        await ctx.client().request('PUT', `/v1/agent/join/${encodeURIComponent(address)}`, { query });
        joined++;
      } catch (e) {
        ctx.err(`Error joining address '${address}': ${(e as Error).message}`);
      }
    }
    if (joined === 0) {
      ctx.err('Failed to join any nodes.');
      return 1;
    }
    ctx.out(`Successfully joined cluster by contacting ${joined} nodes.`);
    return 0;
  },
});

export const forceLeave: CliCommand = leaf({
  name: 'force-leave',
  synopsis: 'Forces a member of the cluster to enter the "left" state',
  usage: '[options] name',
  help: `
Forces a member of the cluster to enter the "left" state. A failed member keeps being retried for
reconnect_timeout (72h by default); force-leave ends that at once, and the leader deregisters it.
A member that is in fact alive refutes the leave and stays.`,
  http: 'client',
  flags: [
    { name: 'prune', kind: 'bool', usage: 'Removes the node from the member list entirely.' },
    { name: 'wan', kind: 'bool', usage: 'Acts on the WAN pool.' },
  ],
  async run(ctx) {
    if (ctx.args.length !== 1) {
      ctx.err('A single node name must be specified to force leave.');
      return 1;
    }
    const query: Query = [];
    if (ctx.flags.bool('prune')) query.push(['prune', '1']);
    if (ctx.flags.bool('wan')) query.push(['wan', '1']);
    try {
      await ctx
        .client()
        .request('PUT', `/v1/agent/force-leave/${encodeURIComponent(ctx.args[0])}`, { query });
    } catch (e) {
      ctx.err(`Error force leaving: ${(e as Error).message}`);
      return 1;
    }
    return 0;
  },
});

export const keygen: CliCommand = leaf({
  name: 'keygen',
  synopsis: 'Generates a new encryption key',
  usage: '',
  help: `
Generates a new 32-byte key for the cluster's gossip (the agent's -encrypt / "encrypt"), base64
encoded. Every agent of one cluster must be given the same key.`,
  http: 'client',
  run(ctx) {
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    ctx.out(randomBytes(32).toString('base64'));
    return 0;
  },
});

interface FiredEvent {
  ID: string;
}

export const event: CliCommand = leaf({
  name: 'event',
  synopsis: 'Fire a new event',
  usage: '[options] [payload]',
  help: `
Dispatches a custom user event across the datacenter. The payload is optional; keep it small
(name, payload and filters together are limited to 512 bytes).`,
  http: 'server',
  flags: [
    { name: 'name', kind: 'string', usage: 'Name of the event.' },
    { name: 'node', kind: 'string', placeholder: 'regexp', usage: 'Only agents whose node name matches.' },
    { name: 'service', kind: 'string', placeholder: 'regexp', usage: 'Only agents with a matching service.' },
    {
      name: 'tag',
      kind: 'string',
      placeholder: 'regexp',
      usage: 'Only agents whose matching service has a matching tag.',
    },
  ],
  async run(ctx) {
    const { flags } = ctx;
    const name = flags.string('name') ?? '';
    if (name === '') {
      ctx.err('Event name must be specified');
      return 1;
    }
    const filters: Query = [];
    for (const f of ['node', 'service', 'tag'] as const) {
      const v = flags.string(f) ?? '';
      if (v === '') continue;
      try {
        new RegExp(v);
      } catch (e) {
        ctx.err(`Failed to compile ${f} filter regexp: ${(e as Error).message}`);
        return 1;
      }
      filters.push([f, v]);
    }
    if (flags.string('tag') && !flags.string('service')) {
      ctx.err('Cannot provide tag filter without service filter.');
      return 1;
    }
    if (ctx.args.length > 1) {
      ctx.err('Too many command line arguments.');
      return 1;
    }
    try {
      const r = await ctx.client().json<FiredEvent>('PUT', `/v1/event/fire/${encodeURIComponent(name)}`, {
        query: filters,
        body: ctx.args[0] ?? '',
      });
      ctx.out(`Event ID: ${r.value?.ID ?? ''}`);
      return 0;
    } catch (e) {
      ctx.err(`Error firing event: ${(e as Error).message}`);
      return 1;
    }
  },
});
