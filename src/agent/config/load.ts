/**
 * Loading the agent configuration as Consul's agent/config/builder.go does:
 *
 *   built-in defaults < `-dev` defaults < config files and dirs, in command-line order < flags
 *
 * Each source is checked on its own (so an error names its file and key), then they are merged
 * (`merge.ts`), then the result is validated as a whole and resolved into a
 * {@link ResolvedConfig}: camelCase, durations in milliseconds, addresses picked.
 *
 * A `-config-dir` contributes its `*.json` files in lexical order (every file when
 * `-config-format` is given); a `.hcl` file is refused with an error rather than skipped, since
 * silently ignoring part of an operator's configuration is worse than stopping.
 *
 * Deliberate differences from Consul, each for a reason:
 * - an unknown key is a warning, not Consul's `invalid config key` error, so a config written
 *   for Consul (with keys meshd does not implement yet) still loads and says what it ignored;
 * - HCL is not supported; go-sockaddr templates in addresses are not supported;
 * - `ports.grpc` defaults to 8502, where Consul disables gRPC outside `-dev`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname as osHostname, networkInterfaces as osNetworkInterfaces } from 'node:os';
import { extname, join } from 'node:path';
import { parseRecursor } from '../../api/dns/recursor.ts';
import { parseGoDuration } from '../../api/wire/duration.ts';
import { ConfigError } from './errors.ts';
import { type ConfigPath, parseAgentFlags } from './flags.ts';
import { checkSource, mergeConfig } from './merge.ts';
import { builtinDefaults, devDefaults, type RawConfig } from './schema.ts';

/** One network interface address, as `os.networkInterfaces()` lists them. */
export interface InterfaceAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  internal: boolean;
}

export interface LoadConfigOptions {
  /** Arguments after `meshd agent`. */
  argv: readonly string[];
  /**
   * The process environment. Unused for now: Consul's agent takes no configuration from it
   * (the `CONSUL_HTTP_*` variables are for the CLI), and neither does meshd's.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Reads a config file as UTF-8. @default fs.readFile */
  readFile?: (path: string) => Promise<string>;
  /** Names of the regular files (or links to them) in a directory, in any order. @default fs.readdir */
  readDir?: (path: string) => Promise<string[]>;
  /** The default node name. @default os.hostname() */
  hostname?: string;
  /** Interfaces to pick the advertise address from. @default os.networkInterfaces() */
  networkInterfaces?: () => Record<string, readonly InterfaceAddress[] | undefined>;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** The agent configuration after merging and validation, in meshd's own terms. */
export interface ResolvedConfig {
  /** `-dev`: one in-memory server; nothing is written to `dataDir`. */
  devMode: boolean;
  datacenter: string;
  nodeName: string;
  /** Lowercase UUID, or undefined to generate (and persist) one. */
  nodeId: string | undefined;
  nodeMeta: Record<string, string>;
  server: boolean;
  bootstrap: boolean;
  bootstrapExpect: number;
  /** Undefined only in dev mode. */
  dataDir: string | undefined;
  bindAddr: string;
  advertiseAddr: string;
  /** Where HTTP, DNS and gRPC listen (Consul's space-separated `client_addr`). */
  clientAddrs: string[];
  /** -1 means the listener is off. */
  ports: { http: number; https: number; grpc: number; dns: number; server: number; serfLan: number };
  /** Ports auto-assigned to sidecar proxies (inclusive); `min` 0 turns that off. */
  sidecarPorts: { min: number; max: number };
  retryJoin: string[];
  startJoin: string[];
  retryIntervalMs: number;
  /** Base64 gossip key, checked to decode to 16, 24 or 32 bytes. */
  encrypt: string | undefined;
  logLevel: LogLevel;
  logJson: boolean;
  pidFile: string | undefined;
  ui: { enabled: boolean };
  /** Lowercase, with a trailing dot (`consul.`). */
  domain: string;
  altDomain: string | undefined;
  recursors: string[];
  dns: {
    allowStale: boolean;
    maxStaleMs: number;
    nodeTtlMs: number;
    serviceTtlMs: Record<string, number>;
    onlyPassing: boolean;
    udpAnswerLimit: number;
    enableTruncate: boolean;
  };
  performance: { raftMultiplier: number };
  autopilot: {
    cleanupDeadServers: boolean;
    lastContactThresholdMs: number;
    serverStabilizationTimeMs: number;
  };
  reconnectTimeoutMs: number;
  leaveOnTerminate: boolean;
  skipLeaveOnInterrupt: boolean;
  rejoinAfterLeave: boolean;
  /** LAN gossip: the timing profile and what `gossip_lan` overrides (ms; absent = profile's). */
  gossip: {
    profile: 'lan' | 'wan' | 'local';
    gossipNodes?: number;
    gossipIntervalMs?: number;
    probeIntervalMs?: number;
    probeTimeoutMs?: number;
    retransmitMult?: number;
    suspicionMult?: number;
  };
  checkUpdateIntervalMs: number;
  /** Anti-entropy's full-sync period before scaling. */
  aeIntervalMs: number;
  /** Script checks allowed from config files and the HTTP API. */
  enableScriptChecks: boolean;
  /** Script checks allowed from config files only. */
  enableLocalScriptChecks: boolean;
  acl: {
    enabled: boolean;
    defaultPolicy: 'allow' | 'deny';
    downPolicy: 'allow' | 'deny' | 'extend-cache' | 'async-cache';
    tokens: {
      initialManagement?: string;
      agent?: string;
      agentRecovery?: string;
      default?: string;
      replication?: string;
      configFileServiceRegistration?: string;
      dns?: string;
    };
  };
  connect: { enabled: boolean };
  /** Service definitions from config files, unvalidated JSON objects. */
  services: Record<string, unknown>[];
  /** Check definitions from config files, unvalidated JSON objects. */
  checks: Record<string, unknown>[];
  /** The config files read, in merge order. */
  configFiles: string[];
}

async function defaultReadDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile()) names.push(entry.name);
    else if (entry.isSymbolicLink() && (await stat(join(dir, entry.name))).isFile()) names.push(entry.name);
  }
  return names;
}

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function errnoCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'error';
}

/** 1-based line and column of a 0-based offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/** Parses a file's JSON; a syntax error names the file, line and column. */
function parseJsonFile(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    // V8 reports the offset in its message; without one, the input ended early.
    const at = /at position (\d+)/.exec(err.message);
    const { line, column } = lineColumn(text, at ? Number(at[1]) : text.length);
    const what = err.message
      .replace(/ in JSON at position \d+.*$/, '')
      .replace(/ \(line \d+ column \d+\)$/, '');
    throw new ConfigError(`config file ${path}: invalid JSON at line ${line}, column ${column}: ${what}`, {
      source: path,
    });
  }
}

const HCL_REFUSED = 'HCL is not supported, meshd reads JSON config only (convert the file to .json)';

/** The files a `-config-file`/`-config-dir` list names, in the order they are merged. */
async function listConfigFiles(
  paths: readonly ConfigPath[],
  format: 'json' | 'hcl' | undefined,
  readDir: (path: string) => Promise<string[]>,
): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    if (p.kind === 'file') {
      files.push(p.path);
      continue;
    }
    let names: string[];
    try {
      names = await readDir(p.path);
    } catch (err) {
      throw new ConfigError(`config dir ${p.path}: cannot read it (${errnoCode(err)})`, { source: p.path });
    }
    const wanted = names.filter((n) => format !== undefined || n.endsWith('.json') || n.endsWith('.hcl'));
    for (const name of wanted.sort(byCodeUnits)) files.push(join(p.path, name));
  }
  return files;
}

/** Reads and checks one config file. */
async function loadFile(
  path: string,
  format: 'json' | 'hcl' | undefined,
  read: (path: string) => Promise<string>,
): Promise<{ config: RawConfig; warnings: string[] }> {
  const source = `config file ${path}`;
  const ext = extname(path);
  const kind = format ?? (ext === '.json' ? 'json' : ext === '.hcl' ? 'hcl' : undefined);
  if (kind === 'hcl') throw new ConfigError(`${source}: ${HCL_REFUSED}`, { source: path });
  if (kind === undefined) {
    throw new ConfigError(
      `${source}: unknown extension "${ext}"; name it *.json or pass -config-format=json`,
      {
        source: path,
      },
    );
  }
  let text: string;
  try {
    text = await read(path);
  } catch (err) {
    throw new ConfigError(`${source}: cannot read it (${errnoCode(err)})`, { source: path });
  }
  return checkSource(parseJsonFile(path, text), source, path);
}

/**
 * Loads the agent configuration from flags and the config files they name.
 * @returns the resolved config and warnings (unknown keys, deprecated or risky settings) for
 *   the caller to log.
 * @throws ConfigError naming the flag, file or key at fault.
 */
export async function loadConfig(
  opts: LoadConfigOptions,
): Promise<{ config: ResolvedConfig; warnings: string[] }> {
  const flags = parseAgentFlags(opts.argv);
  if (flags.configFormat === 'hcl') throw new ConfigError(`-config-format=hcl: ${HCL_REFUSED}`);
  const warnings: string[] = [];
  let merged = builtinDefaults(opts.hostname ?? osHostname());
  if (flags.dev) merged = mergeConfig(merged, devDefaults());

  const read = opts.readFile ?? ((p: string) => readFile(p, 'utf8'));
  const files = await listConfigFiles(flags.configPaths, flags.configFormat, opts.readDir ?? defaultReadDir);
  for (const file of files) {
    const loaded = await loadFile(file, flags.configFormat, read);
    warnings.push(...loaded.warnings);
    merged = mergeConfig(merged, loaded.config);
  }
  const fromFlags = checkSource(flags.config, 'command-line flags');
  warnings.push(...fromFlags.warnings);
  merged = mergeConfig(merged, fromFlags.config);

  const config = resolve(merged, {
    devMode: flags.dev,
    configFiles: files,
    interfaces: opts.networkInterfaces ?? osNetworkInterfaces,
    warn: (w) => warnings.push(w),
  });
  return { config, warnings };
}

interface ResolveContext {
  devMode: boolean;
  configFiles: string[];
  interfaces: () => Record<string, readonly InterfaceAddress[] | undefined>;
  warn: (warning: string) => void;
}

const fail = (message: string, key?: string): never => {
  throw new ConfigError(message, { key });
};

/** Duration to ms; the schema already checked every source, so this cannot fail on user input. */
const ms = (d: string | undefined): number => parseGoDuration(d ?? '0s');

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DATACENTER = /^[a-z0-9_-]+$/;
const DNS_LABEL = /^[a-zA-Z0-9-]+$/;

function checkIp(key: string, value: string): string {
  if (value.includes('{{'))
    fail(`${key} "${value}": go-sockaddr templates are not supported; give an IP`, key);
  if (isIP(value) === 0) fail(`${key} "${value}" is not an IP address`, key);
  return value;
}

/** 10/8, 172.16/12, 192.168/16 and 100.64/10 (shared address space), as go-sockaddr's private set. */
function isPrivateIPv4(ip: string): boolean {
  const [a, b] = ip.split('.').map(Number);
  return (
    a === 10 ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 100 && b >= 64 && b <= 127)
  );
}

/** Global unicast IPv6: not link-local (fe80::/10), unique-local (fc00::/7) or loopback. */
function isPublicIPv6(ip: string): boolean {
  const first = Number.parseInt(ip.split(':')[0] || '0', 16);
  return !((first & 0xffc0) === 0xfe80 || (first & 0xfe00) === 0xfc00 || ip === '::1');
}

/** Consul's advertise choice: the bind address, or for 0.0.0.0 / :: the only suitable interface address. */
function pickAdvertise(bind: string, interfaces: ResolveContext['interfaces']): string {
  const anyV4 = bind === '0.0.0.0';
  const anyV6 = isIP(bind) === 6 && /^[0:]+$/.test(bind);
  if (!anyV4 && !anyV6) return bind;
  const kind = anyV4 ? 'private IPv4' : 'public IPv6';
  const found = new Set<string>();
  for (const addrs of Object.values(interfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      if (anyV4 && a.family === 'IPv4' && isPrivateIPv4(a.address)) found.add(a.address);
      if (anyV6 && a.family === 'IPv6' && isPublicIPv6(a.address)) found.add(a.address);
    }
  }
  if (found.size === 0) fail(`no ${kind} address found; set "advertise_addr" (-advertise)`, 'advertise_addr');
  if (found.size > 1) {
    const list = [...found].sort(byCodeUnits).join(', ');
    fail(
      `multiple ${kind} addresses found (${list}); set "bind_addr" (-bind) and/or "advertise_addr" (-advertise)`,
    );
  }
  return [...found][0];
}

function checkPort(name: string, value: number | undefined, canDisable: boolean): number {
  const v = value ?? -1;
  if ((v >= 1 && v <= 65535) || (canDisable && v === -1)) return v;
  return fail(
    `ports.${name} cannot be ${v}: must be between 1 and 65535${canDisable ? ', or -1 to disable' : ''}`,
    `ports.${name}`,
  );
}

/** Lowercase with one trailing dot, as Consul's DNS server uses domains. */
const fqdn = (d: string): string => `${d.toLowerCase().replace(/\.+$/, '')}.`;

function checkEncrypt(key: string): string {
  const b64 = /^[A-Za-z0-9+/]*={0,2}$/.test(key) && key.length % 4 === 0;
  const bytes = b64 ? Buffer.from(key, 'base64').length : 0;
  // The key itself never goes into the message: it is a secret.
  if (![16, 24, 32].includes(bytes))
    fail('encrypt has invalid key: must be base64 of 16, 24 or 32 bytes', 'encrypt');
  return key;
}

/** Validates the merged config as a whole (Consul's builder `validate`) and converts it. */
function resolve(c: RawConfig, ctx: ResolveContext): ResolvedConfig {
  const datacenter = (c.datacenter ?? '').toLowerCase();
  if (!DATACENTER.test(datacenter)) {
    fail(`datacenter cannot be "${c.datacenter}": use only a-z, 0-9, - and _`, 'datacenter');
  }
  const nodeName = c.node_name ?? '';
  if (nodeName === '') fail('node_name cannot be empty', 'node_name');
  if (!DNS_LABEL.test(nodeName)) {
    ctx.warn(`node name "${nodeName}" will not be discoverable via DNS: use only letters, digits and dashes`);
  } else if (nodeName.length > 63) {
    ctx.warn(`node name "${nodeName}" will not be discoverable via DNS: longer than 63 characters`);
  }
  const nodeId = c.node_id?.toLowerCase();
  if (nodeId !== undefined && !UUID.test(nodeId)) fail(`node_id "${c.node_id}" is not a UUID`, 'node_id');

  // Bootstrap rules, in the order Consul checks them.
  const server = c.server ?? false;
  let bootstrap = c.bootstrap ?? false;
  let bootstrapExpect = c.bootstrap_expect ?? 0;
  if (bootstrapExpect < 0)
    fail(`bootstrap_expect cannot be ${bootstrapExpect}: must be 0 or more`, 'bootstrap_expect');
  if (bootstrapExpect > 0 && ctx.devMode)
    fail("'bootstrap_expect > 0' is not allowed in dev mode", 'bootstrap_expect');
  if (bootstrapExpect > 0 && !server)
    fail("'bootstrap_expect > 0' requires 'server = true'", 'bootstrap_expect');
  if (bootstrapExpect > 0 && bootstrap) {
    fail("'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive", 'bootstrap_expect');
  }
  if (bootstrap && !server) fail("'bootstrap = true' requires 'server = true'", 'bootstrap');
  if (bootstrapExpect === 1) {
    ctx.warn('bootstrap_expect = 1 is the same as bootstrap = true; using bootstrap mode');
    bootstrap = true;
    bootstrapExpect = 0;
  } else if (bootstrapExpect === 2) {
    ctx.warn('bootstrap_expect = 2: a cluster of 2 servers tolerates no failure');
  } else if (bootstrapExpect > 2 && bootstrapExpect % 2 === 0) {
    ctx.warn(`bootstrap_expect = ${bootstrapExpect}: an even number of servers adds no fault tolerance`);
  }
  if (bootstrap && !ctx.devMode) ctx.warn('bootstrap = true: do not enable unless necessary');

  const dataDir = c.data_dir === '' ? undefined : c.data_dir;
  if (dataDir === undefined && !ctx.devMode) fail('data_dir is required unless -dev is given', 'data_dir');

  const bindAddr = checkIp('bind_addr', c.bind_addr ?? '');
  const advertiseAddr =
    c.advertise_addr !== undefined && c.advertise_addr !== ''
      ? checkIp('advertise_addr', c.advertise_addr)
      : pickAdvertise(bindAddr, ctx.interfaces);
  const clientAddrs = (c.client_addr ?? '').split(/\s+/).filter((a) => a !== '');
  if (clientAddrs.length === 0) fail('client_addr cannot be empty', 'client_addr');
  for (const a of clientAddrs) checkIp('client_addr', a);

  const p = c.ports ?? {};
  const ports = {
    http: checkPort('http', p.http, true),
    https: checkPort('https', p.https, true),
    grpc: checkPort('grpc', p.grpc, true),
    dns: checkPort('dns', p.dns, true),
    server: checkPort('server', p.server, false),
    serfLan: checkPort('serf_lan', p.serf_lan, false),
  };
  const sidecarPorts = { min: p.sidecar_min_port ?? 0, max: p.sidecar_max_port ?? 0 };
  if (sidecarPorts.min > 0 && sidecarPorts.max < sidecarPorts.min) {
    fail(
      `ports.sidecar_max_port (${sidecarPorts.max}) must be at least ports.sidecar_min_port (${sidecarPorts.min})`,
      'ports.sidecar_max_port',
    );
  }

  const raftMultiplier = c.performance?.raft_multiplier ?? 5;
  if (raftMultiplier < 1 || raftMultiplier > 10) {
    fail(`performance.raft_multiplier cannot be ${raftMultiplier}: must be between 1 and 10`);
  }
  const aeIntervalMs = ms(c.ae_interval);
  if (aeIntervalMs < 1000) fail('ae_interval must be at least 1s', 'ae_interval');
  const reconnectTimeoutMs = ms(c.reconnect_timeout);
  if (reconnectTimeoutMs < 8 * 3_600_000) fail('reconnect_timeout must be at least 8h', 'reconnect_timeout');

  const recursors = c.recursors ?? [];
  for (const r of recursors) {
    try {
      parseRecursor(r);
    } catch (err) {
      fail((err as Error).message, 'recursors');
    }
  }

  const level = (c.log_level ?? 'info').toLowerCase();
  const d = c.dns_config ?? {};
  const a = c.autopilot ?? {};
  const t = c.acl?.tokens ?? {};
  return {
    devMode: ctx.devMode,
    datacenter,
    nodeName,
    nodeId,
    nodeMeta: { ...c.node_meta },
    server,
    bootstrap,
    bootstrapExpect,
    dataDir,
    bindAddr,
    advertiseAddr,
    clientAddrs,
    ports,
    sidecarPorts,
    retryJoin: c.retry_join ?? [],
    startJoin: c.start_join ?? [],
    retryIntervalMs: ms(c.retry_interval),
    encrypt: c.encrypt === undefined || c.encrypt === '' ? undefined : checkEncrypt(c.encrypt),
    logLevel: (level === 'err' ? 'error' : level) as LogLevel,
    logJson: c.log_json ?? false,
    pidFile: c.pid_file === '' ? undefined : c.pid_file,
    ui: { enabled: c.ui_config?.enabled ?? false },
    domain: fqdn(c.domain ?? 'consul.'),
    altDomain: c.alt_domain === undefined || c.alt_domain === '' ? undefined : fqdn(c.alt_domain),
    recursors,
    dns: {
      allowStale: d.allow_stale ?? true,
      maxStaleMs: ms(d.max_stale),
      nodeTtlMs: ms(d.node_ttl),
      serviceTtlMs: Object.fromEntries(Object.entries(d.service_ttl ?? {}).map(([k, v]) => [k, ms(v)])),
      onlyPassing: d.only_passing ?? false,
      udpAnswerLimit: d.udp_answer_limit ?? 3,
      enableTruncate: d.enable_truncate ?? false,
    },
    performance: { raftMultiplier },
    autopilot: {
      cleanupDeadServers: a.cleanup_dead_servers ?? true,
      lastContactThresholdMs: ms(a.last_contact_threshold),
      serverStabilizationTimeMs: ms(a.server_stabilization_time),
    },
    reconnectTimeoutMs,
    leaveOnTerminate: c.leave_on_terminate ?? !server,
    skipLeaveOnInterrupt: c.skip_leave_on_interrupt ?? server,
    rejoinAfterLeave: c.rejoin_after_leave ?? false,
    gossip: resolveGossip(c.gossip_lan ?? {}),
    checkUpdateIntervalMs: ms(c.check_update_interval),
    aeIntervalMs,
    enableScriptChecks: c.enable_script_checks ?? false,
    enableLocalScriptChecks: c.enable_local_script_checks ?? false,
    acl: {
      enabled: c.acl?.enabled ?? false,
      defaultPolicy: c.acl?.default_policy ?? 'allow',
      downPolicy: c.acl?.down_policy ?? 'extend-cache',
      tokens: {
        initialManagement: t.initial_management,
        agent: t.agent,
        agentRecovery: t.agent_recovery,
        default: t.default,
        replication: t.replication,
        configFileServiceRegistration: t.config_file_service_registration,
        dns: t.dns,
      },
    },
    connect: { enabled: c.connect?.enabled ?? true },
    services: c.services ?? [],
    checks: c.checks ?? [],
    configFiles: ctx.configFiles,
  };
}

function resolveGossip(g: NonNullable<RawConfig['gossip_lan']>): ResolvedConfig['gossip'] {
  const out: ResolvedConfig['gossip'] = { profile: g.profile ?? 'lan' };
  if (g.gossip_nodes !== undefined) out.gossipNodes = g.gossip_nodes;
  if (g.gossip_interval !== undefined) out.gossipIntervalMs = parseGoDuration(g.gossip_interval);
  if (g.probe_interval !== undefined) out.probeIntervalMs = parseGoDuration(g.probe_interval);
  if (g.probe_timeout !== undefined) out.probeTimeoutMs = parseGoDuration(g.probe_timeout);
  if (g.retransmit_mult !== undefined) out.retransmitMult = g.retransmit_mult;
  if (g.suspicion_mult !== undefined) out.suspicionMult = g.suspicion_mult;
  if ((out.probeTimeoutMs ?? 0) > (out.probeIntervalMs ?? Number.POSITIVE_INFINITY)) {
    fail('gossip_lan.probe_timeout cannot exceed gossip_lan.probe_interval', 'gossip_lan.probe_timeout');
  }
  return out;
}
