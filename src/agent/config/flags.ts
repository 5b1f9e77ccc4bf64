/**
 * `meshd agent` command-line flags, parsed as Go's `flag` package parses Consul's
 * (agent/config/flags.go):
 * - `-flag value`, `-flag=value`, `--flag value` and `--flag=value` are all the same;
 * - boolean flags take no separate value (`-server`); `-server=false` sets one explicitly, and
 *   `-server false` is NOT a value but a stray argument (an error here; Go would silently stop
 *   parsing there);
 * - a flag that needs a value takes the next argument whatever it looks like (`-node -x` names
 *   the node `-x`), as Go does;
 * - `--` ends the flags; parsing also stops at the first non-flag argument, and any argument
 *   left over is an error since `agent` takes none;
 * - a repeated single-valued flag keeps its last value; `-join`, `-retry-join`, `-recursor`,
 *   `-config-file` and `-config-dir` accumulate in order.
 *
 * The result is one more partial config (snake_case, like a file) that the loader merges last,
 * plus what is about the command line itself (`-dev`, the config paths, `-config-format`).
 */
import { DurationError, parseGoDuration } from '../../api/wire/duration.ts';
import { ConfigError } from './errors.ts';
import type { RawConfig } from './schema.ts';

/** A `-config-file` or `-config-dir` argument, in command-line order (Consul keeps one list). */
export interface ConfigPath {
  kind: 'file' | 'dir';
  path: string;
}

export interface ParsedFlags {
  /** The flags that set config keys, as a partial config merged after every file. */
  config: RawConfig;
  /** `-dev`: in-memory single server with dev defaults. */
  dev: boolean;
  /** Config files and directories in the order given. */
  configPaths: ConfigPath[];
  /** `-config-format`: parse every file as this format whatever its extension. */
  configFormat: 'json' | 'hcl' | undefined;
  /** `-h` / `-help` was given: the caller prints usage and exits. */
  help: boolean;
}

type Value = string | number | boolean;

interface FlagSpec {
  kind: 'bool' | 'string' | 'int' | 'duration';
  /** One line for `-help`. */
  usage: string;
  /** For ports: the values allowed, with the message when outside them. */
  range?: { min: number; max: number; message: string };
  apply: (f: ParsedFlags, value: Value) => void;
}

const PORT_RANGE = { min: -1, max: 65535, message: 'must be between 1 and 65535, or -1 to disable' };

/** Sets `config[a][b]`, creating the nested object. */
function setNested(f: ParsedFlags, outer: 'ports' | 'ui_config', inner: string, value: Value): void {
  const cfg = f.config as Record<string, Record<string, Value> | undefined>;
  const obj = cfg[outer] ?? {};
  obj[inner] = value;
  cfg[outer] = obj;
}

function setKey(key: keyof RawConfig) {
  return (f: ParsedFlags, value: Value): void => {
    (f.config as Record<string, Value>)[key] = value;
  };
}

function appendKey(key: 'retry_join' | 'start_join' | 'recursors') {
  return (f: ParsedFlags, value: Value): void => {
    f.config[key] = [...(f.config[key] ?? []), String(value)];
  };
}

const portFlag = (port: string, usage: string): FlagSpec => ({
  kind: 'int',
  usage,
  range: PORT_RANGE,
  apply: (f, v) => setNested(f, 'ports', port, v),
});

/** Every flag `meshd agent` accepts, by name without dashes. */
export const AGENT_FLAGS: ReadonlyMap<string, FlagSpec> = new Map<string, FlagSpec>([
  ['server', { kind: 'bool', usage: 'Run in server mode.', apply: setKey('server') }],
  [
    'bootstrap',
    {
      kind: 'bool',
      usage: 'Elect this server leader without peers (one server only).',
      apply: setKey('bootstrap'),
    },
  ],
  [
    'bootstrap-expect',
    {
      kind: 'int',
      usage: 'Servers to wait for before the first election.',
      apply: setKey('bootstrap_expect'),
    },
  ],
  [
    'dev',
    {
      kind: 'bool',
      usage: 'Development mode: in-memory single server.',
      apply: (f, v) => {
        f.dev = v as boolean;
      },
    },
  ],
  ['node', { kind: 'string', usage: 'Node name (default: hostname).', apply: setKey('node_name') }],
  ['node-id', { kind: 'string', usage: 'Node UUID.', apply: setKey('node_id') }],
  ['datacenter', { kind: 'string', usage: 'Datacenter (default dc1).', apply: setKey('datacenter') }],
  ['bind', { kind: 'string', usage: 'Address for gossip and server RPC.', apply: setKey('bind_addr') }],
  [
    'advertise',
    { kind: 'string', usage: 'Address advertised to other agents.', apply: setKey('advertise_addr') },
  ],
  ['client', { kind: 'string', usage: 'Address(es) for HTTP, DNS and gRPC.', apply: setKey('client_addr') }],
  ['data-dir', { kind: 'string', usage: 'Directory for agent state.', apply: setKey('data_dir') }],
  [
    'config-file',
    {
      kind: 'string',
      usage: 'A JSON config file (repeatable).',
      apply: (f, v) => f.configPaths.push({ kind: 'file', path: String(v) }),
    },
  ],
  [
    'config-dir',
    {
      kind: 'string',
      usage: 'A directory of *.json config files, read in lexical order (repeatable).',
      apply: (f, v) => f.configPaths.push({ kind: 'dir', path: String(v) }),
    },
  ],
  [
    'config-format',
    {
      kind: 'string',
      usage: "Parse config files as this format whatever their extension ('json').",
      apply: (f, v) => {
        if (v !== 'json' && v !== 'hcl') {
          throw new ConfigError(`invalid value "${v}" for flag -config-format: must be "json" or "hcl"`, {
            key: '-config-format',
          });
        }
        f.configFormat = v;
      },
    },
  ],
  ['pid-file', { kind: 'string', usage: 'Write the agent PID here.', apply: setKey('pid_file') }],
  [
    'join',
    { kind: 'string', usage: 'Join this address at start (repeatable).', apply: appendKey('start_join') },
  ],
  [
    'retry-join',
    { kind: 'string', usage: 'Join this address, retrying (repeatable).', apply: appendKey('retry_join') },
  ],
  [
    'retry-interval',
    { kind: 'duration', usage: 'Time between join attempts.', apply: setKey('retry_interval') },
  ],
  ['encrypt', { kind: 'string', usage: 'Gossip encryption key (base64).', apply: setKey('encrypt') }],
  ['http-port', portFlag('http', 'HTTP API port (default 8500).')],
  ['dns-port', portFlag('dns', 'DNS port (default 8600).')],
  ['grpc-port', portFlag('grpc', 'gRPC port (default 8502).')],
  ['server-port', portFlag('server', 'Server RPC port (default 8300).')],
  ['serf-lan-port', portFlag('serf_lan', 'LAN gossip port (default 8301).')],
  ['log-level', { kind: 'string', usage: 'trace, debug, info, warn or error.', apply: setKey('log_level') }],
  ['log-json', { kind: 'bool', usage: 'Log as JSON.', apply: setKey('log_json') }],
  [
    'ui',
    { kind: 'bool', usage: 'Serve the web UI.', apply: (f, v) => setNested(f, 'ui_config', 'enabled', v) },
  ],
  ['domain', { kind: 'string', usage: 'DNS domain (default consul.).', apply: setKey('domain') }],
  ['alt-domain', { kind: 'string', usage: 'Alternate DNS domain.', apply: setKey('alt_domain') }],
  ['recursor', { kind: 'string', usage: 'Upstream DNS server (repeatable).', apply: appendKey('recursors') }],
]);

/** Go's `strconv.ParseBool`. */
function parseBool(name: string, raw: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
  throw new ConfigError(`invalid boolean value "${raw}" for flag -${name}`, { key: `-${name}` });
}

function parseValue(name: string, spec: FlagSpec, raw: string): Value {
  switch (spec.kind) {
    case 'bool':
      return parseBool(name, raw);
    case 'string':
      return raw;
    case 'int': {
      const n = /^[+-]?\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (!Number.isSafeInteger(n)) {
        throw new ConfigError(`invalid value "${raw}" for flag -${name}: expected an integer`, {
          key: `-${name}`,
        });
      }
      if (spec.range && (n < spec.range.min || n > spec.range.max)) {
        throw new ConfigError(`invalid value "${raw}" for flag -${name}: ${spec.range.message}`, {
          key: `-${name}`,
        });
      }
      return n;
    }
    case 'duration':
      try {
        parseGoDuration(raw);
      } catch (err) {
        if (!(err instanceof DurationError)) throw err;
        throw new ConfigError(`invalid value "${raw}" for flag -${name}: ${err.reason}`, { key: `-${name}` });
      }
      return raw;
  }
}

/**
 * Parses `meshd agent` arguments (without the `agent` word).
 * @throws ConfigError for an unknown flag, a missing or malformed value, or a stray argument.
 */
export function parseAgentFlags(argv: readonly string[]): ParsedFlags {
  const out: ParsedFlags = { config: {}, dev: false, configPaths: [], configFormat: undefined, help: false };
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i];
    if (arg.length < 2 || arg[0] !== '-') break; // first non-flag: the flags end
    i++;
    if (arg === '--') break;
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body[0] === '-' || body[0] === '=') {
      throw new ConfigError(`bad flag syntax: ${arg}`, { key: arg });
    }
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const inline = eq === -1 ? undefined : body.slice(eq + 1);
    if (name === 'h' || name === 'help') {
      out.help = true;
      continue;
    }
    const spec = AGENT_FLAGS.get(name);
    if (spec === undefined) throw new ConfigError(`unknown flag: -${name}`, { key: `-${name}` });
    let raw: string;
    if (inline !== undefined) raw = inline;
    else if (spec.kind === 'bool') raw = 'true';
    else if (i < argv.length) raw = argv[i++];
    else throw new ConfigError(`flag needs an argument: -${name}`, { key: `-${name}` });
    spec.apply(out, parseValue(name, spec, raw));
  }
  if (i < argv.length) {
    throw new ConfigError(`unexpected argument "${argv[i]}": meshd agent takes only flags`);
  }
  return out;
}

/** `-help` text: one line per flag, sorted by name. */
export function agentFlagsUsage(): string {
  return [...AGENT_FLAGS.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, spec]) => {
      const arg = spec.kind === 'bool' ? '' : spec.kind === 'int' ? ' <int>' : ` <${spec.kind}>`;
      return `  -${name}${arg}\n      ${spec.usage}`;
    })
    .join('\n');
}
