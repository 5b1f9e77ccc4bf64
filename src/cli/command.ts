/**
 * The frame of every CLI subcommand: help (`-h`), Consul-style flags, one-line errors with exit status 1
 * (never a stack trace), and nested groups such as `meshd kv get` or `meshd operator raft list-peers`.
 */

import {
  type FlagDef,
  formatFlagGroups,
  type ParsedFlags,
  parseFlags,
  UsageError,
  wantsHelp,
} from './flags.ts';
import {
  ApiClient,
  CLIENT_FLAGS,
  ClientConfigError,
  type Env,
  httpOptionsFromFlags,
  resolveHttpConfig,
  SERVER_FLAGS,
} from './http-client.ts';

/** Where a command reads and writes; the process by default, a buffer in tests. */
export interface CliIO {
  stdout(chunk: string | Uint8Array): void;
  stderr(chunk: string): void;
  readStdin(): Promise<Buffer>;
  env: Env;
}

let quietPipes = false;

export function processIO(): CliIO {
  if (!quietPipes) {
    quietPipes = true;
    // `meshd kv export | head -1`: a reader that goes away is not an error worth a stack trace.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit(process.exitCode ?? 0);
    });
  }
  return {
    stdout: (chunk) => {
      process.stdout.write(chunk);
    },
    stderr: (chunk) => {
      process.stderr.write(chunk);
    },
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
    env: process.env,
  };
}

/** One subcommand, as `main.ts` dispatches them. */
export interface CliCommand {
  synopsis: string;
  run(args: string[], io?: CliIO): Promise<number>;
}

export interface Context {
  args: string[];
  flags: ParsedFlags;
  io: CliIO;
  /** The agent's HTTP client, from the HTTP flags and the environment. */
  client(): ApiClient;
  /** Writes a line to stdout. */
  out(line: string): void;
  /** Writes a line to stderr. */
  err(line: string): void;
  /** `-format`: `pretty` (tables, the default) or `json`, on commands that declare `output`. */
  format: OutputFormat;
  /** Writes `value` as indented JSON (what `-format=json` prints). */
  json(value: unknown): void;
}

export type OutputFormat = 'pretty' | 'json';

/** The `-format` flag of commands that print tables. */
export const FORMAT_FLAG: FlagDef = {
  name: 'format',
  kind: 'string',
  placeholder: 'pretty|json',
  usage: 'Output format: human-readable tables (pretty, the default) or json.',
  validate: (v) =>
    v === 'pretty' || v === 'json' ? undefined : `invalid -format "${v}": must be pretty or json`,
};

export interface LeafSpec {
  /** Full name after `meshd`, e.g. `kv get`. */
  name: string;
  synopsis: string;
  /** What follows `meshd <name>` in the usage line, e.g. `[options] [KEY_OR_PREFIX]`. */
  usage: string;
  /** Help paragraphs, unindented. */
  help: string;
  flags?: FlagDef[];
  /** Offers `-format=pretty|json` (commands that print tables or lists). */
  output?: boolean;
  /** Which HTTP flags the command takes: `client` (address, token, TLS) or `server` (also -datacenter, -stale). */
  http: 'client' | 'server';
  run(ctx: Context): Promise<number> | number;
}

function indent(text: string, by = '  '): string {
  return text
    .trim()
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}

export function leafHelp(spec: LeafSpec): string {
  return [
    `Usage: meshd ${spec.name} ${spec.usage}`,
    '',
    indent(spec.help),
    formatFlagGroups([
      {
        title: 'HTTP API Options',
        flags: spec.http === 'server' ? [...CLIENT_FLAGS, ...SERVER_FLAGS] : CLIENT_FLAGS,
      },
      { title: 'Command Options', flags: [...(spec.flags ?? []), ...(spec.output ? [FORMAT_FLAG] : [])] },
    ]),
  ].join('\n');
}

/** A message that fits on one line. */
export function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

export function leaf(spec: LeafSpec): CliCommand {
  return {
    synopsis: spec.synopsis,
    async run(argv, io = processIO()) {
      const out = (line: string) => io.stdout(`${line}\n`);
      const err = (line: string) => io.stderr(`${oneLine(line)}\n`);
      if (wantsHelp(argv)) {
        out(leafHelp(spec));
        return 0;
      }
      const defs = [
        ...(spec.flags ?? []),
        ...(spec.output ? [FORMAT_FLAG] : []),
        ...CLIENT_FLAGS,
        ...(spec.http === 'server' ? SERVER_FLAGS : []),
      ];
      try {
        const flags = parseFlags(defs, argv);
        // Resolved up front so that a bad address or token file is reported as such, not as a failed request.
        const client = new ApiClient(resolveHttpConfig(httpOptionsFromFlags(flags), io.env));
        const format: OutputFormat = spec.output && flags.string('format') === 'json' ? 'json' : 'pretty';
        const json = (value: unknown) => out(JSON.stringify(value, null, 2));
        const ctx: Context = { args: flags.args, flags, io, out, err, client: () => client, format, json };
        return await spec.run(ctx);
      } catch (e) {
        if (e instanceof UsageError) {
          err(e.message);
        } else if (e instanceof ClientConfigError) {
          err(`Error initializing client: ${e.message}`);
        } else {
          err(`Error: ${(e as Error)?.message ?? String(e)}`);
        }
        return 1;
      }
    },
  };
}

export interface GroupSpec {
  name: string;
  synopsis: string;
  help: string;
  subcommands: Record<string, CliCommand>;
}

export function groupHelp(spec: GroupSpec): string {
  const names = Object.keys(spec.subcommands).sort();
  const width = Math.max(...names.map((n) => n.length));
  return [
    `Usage: meshd ${spec.name} <subcommand> [options] [args]`,
    '',
    indent(spec.help),
    '',
    'Subcommands:',
    ...names.map((n) => `    ${n.padEnd(width)}    ${spec.subcommands[n].synopsis}`),
  ].join('\n');
}

/** A command made of subcommands: `meshd kv` alone prints its help (exit 1, as Consul), `-h` exit 0. */
export function group(spec: GroupSpec): CliCommand {
  return {
    synopsis: spec.synopsis,
    async run(argv, io = processIO()) {
      const [first, ...rest] = argv;
      const sub =
        first === undefined
          ? undefined
          : Object.hasOwn(spec.subcommands, first)
            ? spec.subcommands[first]
            : undefined;
      if (sub) return sub.run(rest, io);
      if (first === '-h' || first === '-help' || first === '--help') {
        io.stdout(`${groupHelp(spec)}\n`);
        return 0;
      }
      if (first !== undefined) io.stderr(`meshd ${spec.name}: unknown subcommand "${first}"\n\n`);
      io.stderr(`${groupHelp(spec)}\n`);
      return 1;
    },
  };
}
