/**
 * The agent configuration as written in JSON config files, with Consul's snake_case keys
 * (agent/config/config.go in Consul). Every field is optional here: a file, the command line,
 * the built-in defaults and the `-dev` defaults are each one partial {@link RawConfig}, merged in
 * that order by `load.ts`. Values stay as written (durations as Go duration strings such as
 * `"30s"`); `load.ts` turns the merged result into the camelCase {@link ResolvedConfig} with
 * durations in milliseconds.
 *
 * Objects are strict so that keys meshd does not know are found (and reported as warnings by
 * the loader, naming the file and key path); records (`node_meta`, `service_ttl`, service and
 * check definitions) accept any key.
 */
import { z } from 'zod';
import { DurationError, parseGoDuration } from '../../api/wire/duration.ts';

/** A Go duration string (`"10s"`, `"1h30m"`), checked here so the error names its file and key. */
const duration = z.string().superRefine((value, ctx) => {
  try {
    parseGoDuration(value);
  } catch (err) {
    if (!(err instanceof DurationError)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message });
  }
});

/** A TCP/UDP port; -1 disables a listener where Consul allows it (checked after the merge). */
const port = z
  .number()
  .int({ error: 'expected an integer port' })
  .min(-1, { error: 'must be between 1 and 65535, or -1 to disable' })
  .max(65535, { error: 'must be between 1 and 65535, or -1 to disable' });

/** The log levels Consul accepts (any case); `err` is Consul's spelling of `error`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'err', 'error'] as const;
const logLevel = z.string().refine((v) => (LOG_LEVELS as readonly string[]).includes(v.toLowerCase()), {
  error: `must be one of ${LOG_LEVELS.join(', ')}`,
});

/**
 * A service or check definition, kept loose until the agent's local-state module validates it
 * against Consul's definition schema; it must at least be a JSON object.
 */
const definition = z.record(z.string(), z.unknown());

/** Agent ACL tokens (Consul 1.11+ names); only their shape is checked for now. */
const aclTokens = z.strictObject({
  /** Bootstraps the ACL system on the first leader; the legacy name is `master`. */
  initial_management: z.string().optional(),
  /** Used by the agent for its own internal operations (node registration, anti-entropy). */
  agent: z.string().optional(),
  /** Allows agent API calls when servers are unreachable; legacy `agent_master`. */
  agent_recovery: z.string().optional(),
  /** Used for requests that carry no token (the anonymous token when unset). */
  default: z.string().optional(),
  /** Used by secondary datacenters to replicate ACLs from the primary. */
  replication: z.string().optional(),
  /** Registers services and checks defined in config files. */
  config_file_service_registration: z.string().optional(),
  /** Used by the DNS interface. */
  dns: z.string().optional(),
});

export const RawConfigSchema = z.strictObject({
  /** Datacenter this agent belongs to; lowercase `[a-z0-9_-]`. Default `"dc1"`. */
  datacenter: z.string().optional(),
  /** Node name, unique in the datacenter. Default: the machine's hostname. */
  node_name: z.string().optional(),
  /** Stable node UUID; generated and persisted in the data dir when unset. */
  node_id: z.string().optional(),
  /** Arbitrary key/value metadata about the node (a map: a later source replaces it whole). */
  node_meta: z.record(z.string(), z.string()).optional(),
  /** Server mode: takes part in Raft and holds the catalog. Default `false` (client). */
  server: z.boolean().optional(),
  /** Elect itself leader without waiting for peers; only for a single first server. Default `false`. */
  bootstrap: z.boolean().optional(),
  /** Wait for this many servers before electing the first leader. Default `0` (off). */
  bootstrap_expect: z.number().int().optional(),
  /** Where state lives (Raft log, local services); required unless `-dev`. */
  data_dir: z.string().optional(),
  /** Address gossip and server RPC listen on. Default `"0.0.0.0"` (all IPv4 interfaces). */
  bind_addr: z.string().optional(),
  /** Address other agents reach this one at. Default: the bind address, or the only private IPv4. */
  advertise_addr: z.string().optional(),
  /** Space-separated addresses HTTP, DNS and gRPC listen on. Default `"127.0.0.1"` (local only). */
  client_addr: z.string().optional(),
  /** Listener ports (see DEFAULTS for the values). */
  ports: z
    .strictObject({
      /** HTTP API. Default 8500. */
      http: port.optional(),
      /** HTTPS API. Default -1 (disabled until TLS is configured), as Consul. */
      https: port.optional(),
      /** gRPC (xDS, peering). Default 8502. */
      grpc: port.optional(),
      /** DNS interface, TCP and UDP. Default 8600. */
      dns: port.optional(),
      /** Server RPC (and Raft). Default 8300. */
      server: port.optional(),
      /** LAN gossip. Default 8301. */
      serf_lan: port.optional(),
      /** Lowest port given to a sidecar proxy registered without one. Default 21000; 0 turns that off. */
      sidecar_min_port: port.optional(),
      /** Highest such port (inclusive). Default 21255. */
      sidecar_max_port: port.optional(),
    })
    .optional(),
  /** Addresses to join at start, retried until one answers. Default `[]`. */
  retry_join: z.array(z.string()).optional(),
  /** Addresses to join once at start; the agent fails if none answers. Default `[]`. */
  start_join: z.array(z.string()).optional(),
  /** Pause between `retry_join` attempts. Default `"30s"`. */
  retry_interval: duration.optional(),
  /** Base64 gossip encryption key (16, 24 or 32 bytes). Default: none (gossip unencrypted). */
  encrypt: z.string().optional(),
  /** trace, debug, info, warn or error (any case; `err` too). Default `"info"`. */
  log_level: logLevel.optional(),
  /** Log lines as JSON. Default `false`. */
  log_json: z.boolean().optional(),
  /** Write the agent's PID here. Default: none. */
  pid_file: z.string().optional(),
  /** Deprecated alias of `ui_config.enabled`, still accepted as Consul does (with a warning). */
  ui: z.boolean().optional(),
  ui_config: z
    .strictObject({
      /** Serve the web UI from the HTTP API. Default `false`. */
      enabled: z.boolean().optional(),
    })
    .optional(),
  /** DNS domain answered for. Default `"consul."`. */
  domain: z.string().optional(),
  /** A second domain answered for as well. Default: none. */
  alt_domain: z.string().optional(),
  /** Upstream DNS servers for names outside the domain. Default `[]` (answer REFUSED/SERVFAIL). */
  recursors: z.array(z.string()).optional(),
  dns_config: z
    .strictObject({
      /** Any server may answer DNS reads (bounded by `max_stale`). Default `true`. */
      allow_stale: z.boolean().optional(),
      /** Oldest stale data served before asking the leader. Default `"87600h"` (10 years). */
      max_stale: duration.optional(),
      /** TTL of node answers. Default `"0s"` (no caching). */
      node_ttl: duration.optional(),
      /** TTL of service answers by service name (`"*"` for all). Default `{}` (0s). */
      service_ttl: z.record(z.string(), duration).optional(),
      /** Answer only instances whose checks all pass (warning excluded). Default `false`. */
      only_passing: z.boolean().optional(),
      /** Most A/AAAA records in a UDP answer. Default 3. */
      udp_answer_limit: z.number().int().min(0).optional(),
      /** Set the TC bit when a UDP answer was cut. Default `false`. */
      enable_truncate: z.boolean().optional(),
    })
    .optional(),
  performance: z
    .strictObject({
      /**
       * Scales Raft timing (heartbeat, election, lease) for slower machines: 1 is the fastest
       * (Consul's production recommendation), 10 the slowest. Default 5, Consul's default tuned
       * for the smallest cloud instances; `-dev` uses 1.
       */
      raft_multiplier: z.number().int().optional(),
    })
    .optional(),
  autopilot: z
    .strictObject({
      /** Remove failed servers when a replacement joins. Default `true`. */
      cleanup_dead_servers: z.boolean().optional(),
      /** A server silent this long is unhealthy. Default `"200ms"`. */
      last_contact_threshold: duration.optional(),
      /** A new server must stay healthy this long before it votes. Default `"10s"`. */
      server_stabilization_time: duration.optional(),
    })
    .optional(),
  /** Reap failed nodes from the member list after this long; Consul requires ≥ 8h. Default `"72h"`. */
  reconnect_timeout: duration.optional(),
  /** Leave the cluster gracefully on SIGTERM. Default `false` on servers, `true` on clients. */
  leave_on_terminate: z.boolean().optional(),
  /** Rejoin the members known before a graceful leave when restarted. Default `false`. */
  rejoin_after_leave: z.boolean().optional(),
  /** Do not leave the cluster on SIGINT (just stop). Default `true` on servers, `false` on clients. */
  skip_leave_on_interrupt: z.boolean().optional(),
  /**
   * LAN gossip timings (Consul's `gossip_lan`), over the profile's defaults. `profile` is meshd's:
   * `lan` (default, memberlist's DefaultLANConfig), `wan` or `local` (memberlist's other two).
   */
  gossip_lan: z
    .strictObject({
      profile: z.enum(['lan', 'wan', 'local']).optional(),
      /** Random members each gossip round sends updates to. lan: 3. */
      gossip_nodes: z.number().int().min(1).max(64).optional(),
      /** Time between gossip rounds. lan: `"200ms"`. */
      gossip_interval: duration.optional(),
      /** Time between probes of one member. lan: `"1s"`. */
      probe_interval: duration.optional(),
      /** How long a direct probe waits for its ack. lan: `"500ms"`. */
      probe_timeout: duration.optional(),
      /** Each update is retransmitted retransmit_mult × log10(N+1) times. lan: 4. */
      retransmit_mult: z.number().int().min(1).max(64).optional(),
      /** Suspicion lasts suspicion_mult × log10(N) probe intervals at least. lan: 4. */
      suspicion_mult: z.number().int().min(1).max(64).optional(),
    })
    .optional(),
  /** Only push check output changes to the servers this often (status changes go at once). Default `"5m"`. */
  check_update_interval: duration.optional(),
  /**
   * meshd's: anti-entropy's full-sync period (before scaling with the cluster size beyond 128
   * nodes). Consul fixes it at 1 minute. Default `"1m"`.
   */
  ae_interval: duration.optional(),
  /** Run script checks (`args`) registered from config files and the HTTP API. Default `false`. */
  enable_script_checks: z.boolean().optional(),
  /** Run script checks from config files only (the HTTP API still may not). Default `false`. */
  enable_local_script_checks: z.boolean().optional(),
  acl: z
    .strictObject({
      /** Enforce ACLs. Default `false`. */
      enabled: z.boolean().optional(),
      /** allow or deny what no policy mentions. Default `"allow"`. */
      default_policy: z.enum(['allow', 'deny']).optional(),
      /** When the servers cannot be asked: allow, deny, extend-cache, async-cache. Default `"extend-cache"`. */
      down_policy: z.enum(['allow', 'deny', 'extend-cache', 'async-cache']).optional(),
      tokens: aclTokens.optional(),
    })
    .optional(),
  connect: z
    .strictObject({
      /** Service mesh (CA, intentions, sidecars). Default `true` (Consul ≥ 1.14 on servers). */
      enabled: z.boolean().optional(),
    })
    .optional(),
  /** One service definition; folded into `services` per file, as Consul does. */
  service: definition.optional(),
  /** Service definitions, concatenated across files. */
  services: z.array(definition).optional(),
  /** One check definition; folded into `checks` per file. */
  check: definition.optional(),
  /** Check definitions, concatenated across files. */
  checks: z.array(definition).optional(),
});

/** One partial configuration source (a file, the flags, a defaults layer). */
export type RawConfig = z.infer<typeof RawConfigSchema>;

/**
 * Keys whose values are maps rather than structs: as Consul's merge, a later non-empty map
 * replaces an earlier one instead of being merged key by key.
 */
export const MAP_KEYS: ReadonlySet<string> = new Set(['node_meta', 'dns_config.service_ttl']);

/**
 * Built-in defaults: the lowest layer. Same values as Consul's agent/config/default.go unless
 * noted. `node_name` needs the hostname, hence a function.
 */
export function builtinDefaults(hostname: string): RawConfig {
  return {
    datacenter: 'dc1', // Consul's default; single-DC setups never set it
    node_name: hostname, // unique enough on a network and what an operator expects to see
    server: false, // most agents are clients on application hosts
    bootstrap: false, // bootstrapping is a one-time, deliberate act
    bootstrap_expect: 0, // 0 = do not wait for a server count
    bind_addr: '0.0.0.0', // listen on every IPv4 interface; advertise picks one
    client_addr: '127.0.0.1', // HTTP/DNS/gRPC stay local unless opened on purpose
    ports: {
      http: 8500,
      https: -1, // no TLS configured yet, so no HTTPS listener (Consul: -1)
      grpc: 8502, // Consul disables it outside -dev (-1); meshd keeps it on for sidecar xDS
      dns: 8600, // unprivileged; forward port 53 to it
      server: 8300,
      serf_lan: 8301,
      sidecar_min_port: 21000, // Consul's range for auto-assigned sidecar proxy ports
      sidecar_max_port: 21255,
    },
    retry_join: [],
    start_join: [],
    retry_interval: '30s', // gentle on servers while a cluster forms
    log_level: 'info',
    log_json: false,
    ui_config: { enabled: false }, // the UI is opt-in (-ui)
    domain: 'consul.', // so `*.service.consul` works out of the box
    recursors: [],
    dns_config: {
      allow_stale: true, // DNS scales across servers; 87600h means "any staleness"
      max_stale: '87600h',
      node_ttl: '0s', // no caching: answers reflect health at once
      service_ttl: {},
      only_passing: false, // warning instances are still answered
      udp_answer_limit: 3, // keeps UDP answers small and rotates load
      enable_truncate: false,
    },
    performance: { raft_multiplier: 5 }, // Consul's default, safe on small instances
    autopilot: {
      cleanup_dead_servers: true,
      last_contact_threshold: '200ms',
      server_stabilization_time: '10s',
    },
    reconnect_timeout: '72h', // a failed node is reaped from membership after 3 days
    check_update_interval: '5m', // output-only changes are batched to spare the servers
    ae_interval: '1m', // Consul's full-sync period
    enable_script_checks: false, // a script check runs any command: off unless asked for
    enable_local_script_checks: false,
    acl: { enabled: false, default_policy: 'allow', down_policy: 'extend-cache', tokens: {} },
    connect: { enabled: true },
    services: [],
    checks: [],
  };
}

/**
 * `-dev` defaults, above the built-in ones and below files and flags (Consul's DevSource): a
 * single in-memory server that elects itself at once, reachable only from this machine, with
 * the UI on, debug logs and the fastest Raft timing. The advertise address follows the
 * bind address, so it is 127.0.0.1 too unless `-bind` or `-advertise` says otherwise.
 */
export function devDefaults(): RawConfig {
  return {
    server: true,
    // Consul keeps `bootstrap` false and has its server bootstrap when DevMode is set; saying
    // it here instead lets the server code read one flag.
    bootstrap: true,
    bind_addr: '127.0.0.1',
    client_addr: '127.0.0.1',
    ui_config: { enabled: true },
    log_level: 'debug', // Consul's DevSource sets log_level = "DEBUG" (and gRPC 8502, our default anyway)
    performance: { raft_multiplier: 1 },
    connect: { enabled: true },
  };
}
