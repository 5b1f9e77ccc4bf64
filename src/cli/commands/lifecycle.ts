/** `meshd leave` and `meshd reload`: ask the local agent to leave the cluster or to reload its configuration. */
import { type CliCommand, type Context, leaf } from '../command.ts';

function noArgs(ctx: Context): boolean {
  if (ctx.args.length === 0) return true;
  ctx.err(`Error found unexpected args: [${ctx.args.join(' ')}]`);
  return false;
}

export const leave: CliCommand = leaf({
  name: 'leave',
  synopsis: 'Gracefully leaves the cluster and shuts down',
  usage: '[options]',
  help: `
Causes the agent to gracefully leave the cluster and shut down.`,
  http: 'client',
  async run(ctx) {
    if (!noArgs(ctx)) return 1;
    try {
      await ctx.client().request('PUT', '/v1/agent/leave');
    } catch (e) {
      ctx.err(`Error leaving: ${(e as Error).message}`);
      return 1;
    }
    ctx.out('Graceful leave complete');
    return 0;
  },
});

export const reload: CliCommand = leaf({
  name: 'reload',
  synopsis: 'Triggers the agent to reload configuration files',
  usage: '[options]',
  help: `
Causes the agent to reload its configuration files, as a SIGHUP would.`,
  http: 'client',
  async run(ctx) {
    if (!noArgs(ctx)) return 1;
    try {
      await ctx.client().request('PUT', '/v1/agent/reload');
    } catch (e) {
      ctx.err(`Error reloading: ${(e as Error).message}`);
      return 1;
    }
    ctx.out('Configuration reload triggered');
    return 0;
  },
});
