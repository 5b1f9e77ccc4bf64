/** The subcommands that are HTTP clients of the local agent, by name. */
import type { CliCommand } from '../command.ts';
import { catalog } from './catalog.ts';
import { event, forceLeave, join, keygen } from './gossip.ts';
import { info } from './info.ts';
import { kv } from './kv.ts';
import { leave, reload } from './lifecycle.ts';
import { members } from './members.ts';
import { operator } from './operator.ts';
import { snapshot } from './snapshot.ts';
import { watch } from './watch.ts';

export const clientCommands: Record<string, CliCommand> = {
  catalog,
  event,
  'force-leave': forceLeave,
  info,
  join,
  keygen,
  kv,
  leave,
  members,
  operator,
  reload,
  snapshot,
  watch,
};
