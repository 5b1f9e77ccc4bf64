/**
 * The subcommands that are HTTP clients of the local agent, by name, each loaded only when it runs
 * (or when `meshd help` lists them): `meshd agent` then never loads the CLI's modules (~0.7 MiB of
 * an agent's RSS), and `meshd kv get` loads only the kv command.
 */
import type { CliCommand } from '../command.ts';

export const clientCommands: Record<string, () => Promise<CliCommand>> = {
  catalog: async () => (await import('./catalog.ts')).catalog,
  event: async () => (await import('./gossip.ts')).event,
  'force-leave': async () => (await import('./gossip.ts')).forceLeave,
  info: async () => (await import('./info.ts')).info,
  join: async () => (await import('./gossip.ts')).join,
  keygen: async () => (await import('./gossip.ts')).keygen,
  kv: async () => (await import('./kv.ts')).kv,
  leave: async () => (await import('./lifecycle.ts')).leave,
  members: async () => (await import('./members.ts')).members,
  operator: async () => (await import('./operator.ts')).operator,
  reload: async () => (await import('./lifecycle.ts')).reload,
  snapshot: async () => (await import('./snapshot.ts')).snapshot,
  watch: async () => (await import('./watch.ts')).watch,
};
