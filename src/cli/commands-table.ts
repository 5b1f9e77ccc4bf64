/** The `meshd` subcommands and their dispatch. */

import { VERSION } from '../version.ts';
import { clientCommands } from './commands/index.ts';

/** One subcommand of `meshd`. */
interface Command {
  synopsis: string;
  run(args: string[]): Promise<number> | number;
}

const builtins: Record<string, Command> = {
  version: {
    synopsis: 'Print the meshd version',
    run: () => {
      console.log(`meshd v${VERSION}`);
      console.log(`node ${process.version}`);
      return 0;
    },
  },
  agent: {
    synopsis: 'Runs a meshd agent',
    // Loaded on demand: client commands start without the daemon's modules.
    run: async (args) => {
      const { runAgent } = await import('./agent-command.ts');
      return runAgent(args);
    },
  },
};

/** The command called `name`, its module loaded; undefined if there is none. */
async function command(name: string): Promise<Command | undefined> {
  if (Object.hasOwn(builtins, name)) return builtins[name];
  if (Object.hasOwn(clientCommands, name)) return clientCommands[name]();
  return undefined;
}

async function help(): Promise<string> {
  const names = [...Object.keys(builtins), ...Object.keys(clientCommands)];
  const synopses = await Promise.all(names.map(async (name) => (await command(name))?.synopsis ?? ''));
  const width = Math.max(...names.map((c) => c.length));
  const lines = names.map((name, i) => `    ${name.padEnd(width)}    ${synopses[i]}`);
  return [
    'Usage: meshd [--version] [--help] <command> [<args>]',
    '',
    'Available commands are:',
    ...lines,
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-help' || first === '-h' || first === 'help') {
    console.log(await help());
    return 0;
  }
  if (first === '--version' || first === '-version' || first === '-v') return builtins.version.run([]);
  const found = await command(first);
  if (!found) {
    console.error(`meshd: unknown command "${first}"\n\n${await help()}`);
    return 1;
  }
  return found.run(rest);
}
