/** The `meshd` subcommands and their dispatch. */

import { VERSION } from '../version.ts';
import { clientCommands } from './commands/index.ts';

/** One subcommand of `meshd`. */
interface Command {
  synopsis: string;
  run(args: string[]): Promise<number> | number;
}

const commands: Record<string, Command> = {
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
  ...clientCommands,
};

function help(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `    ${name.padEnd(width)}    ${c.synopsis}`);
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
    console.log(help());
    return 0;
  }
  if (first === '--version' || first === '-version' || first === '-v') return commands.version.run([]);
  const command = commands[first];
  if (!command) {
    console.error(`meshd: unknown command "${first}"\n\n${help()}`);
    return 1;
  }
  return command.run(rest);
}
