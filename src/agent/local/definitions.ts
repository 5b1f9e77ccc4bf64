/**
 * Service and check definitions in Consul's JSON shape (`agent/structs.ServiceDefinition`,
 * `CheckDefinition`, `CheckType`), as `PUT /v1/agent/service/register`, `PUT
 * /v1/agent/check/register` and the `service`/`services`/`check`/`checks` keys of config files
 * give them. Keys match case-insensitively and ignoring underscores (`consulObject`), so `Name`,
 * `name`, `service_id` and `ServiceID` all land on their field, and config files' snake_case works
 * unchanged.
 *
 * Parsing is two steps: the zod schema checks types (a `ZodError` names the field), then
 * {@link toServiceDefinition} / {@link toCheckDefinition} apply Consul's semantic rules (defaults,
 * check type, required fields), throwing {@link DefinitionError} with Consul's wording.
 *
 * Script checks (`args`) run arbitrary commands, so they are refused unless the agent allows
 * them for where the definition comes from ({@link ScriptChecksPolicy}), as Consul's
 * `enable_script_checks` / `enable_local_script_checks`.
 */

import { z } from 'zod';
import { consulBody, goDuration } from '../../api/wire/consul-json.ts';
import { formatGoDuration } from '../../api/wire/duration.ts';
import type { ServiceRow } from '../../catalog/types.ts';
import { DefinitionError } from './errors.ts';

/** The statuses a check may be registered or updated with (`maintenance` is the catalog's own). */
export type CheckStatus = 'passing' | 'warning' | 'critical';
export const CHECK_STATUSES: readonly CheckStatus[] = ['passing', 'warning', 'critical'];

export function isCheckStatus(s: unknown): s is CheckStatus {
  return typeof s === 'string' && (CHECK_STATUSES as readonly string[]).includes(s);
}

/**
 * Whether script checks may be registered, and from where: `enable_script_checks` allows them
 * from config files and the HTTP API, `enable_local_script_checks` from config files only
 * (Consul's `ConfigSourceLocal` vs `ConfigSourceRemote`). Absent: refused, as Consul's defaults.
 */
export interface ScriptChecksPolicy {
  /** Where the definition comes from. @default 'api' */
  source?: 'config' | 'api';
  /** @default false */
  enableScriptChecks?: boolean;
  /** @default false */
  enableLocalScriptChecks?: boolean;
}

/** The policy for definitions from `source`, given the agent's two options. */
export function scriptChecksPolicy(
  config: { enableScriptChecks: boolean; enableLocalScriptChecks: boolean },
  source: 'config' | 'api',
): ScriptChecksPolicy {
  return {
    source,
    enableScriptChecks: config.enableScriptChecks,
    enableLocalScriptChecks: config.enableLocalScriptChecks,
  };
}

function scriptsAllowed(p: ScriptChecksPolicy): boolean {
  if (p.enableScriptChecks) return true;
  return (p.source ?? 'api') === 'config' && p.enableLocalScriptChecks === true;
}

/** Consul's `DefaultBufSize`: the default `OutputMaxSize`. */
export const DEFAULT_OUTPUT_MAX_SIZE = 4096;

const strMap = z.record(z.string(), z.string());
const port = z.number().int().min(0).max(65535);
const count = z.number().int().min(0);
const meshGateway = z.looseObject({ Mode: z.string().optional() });

/** A check as it appears in a service (`CheckType`) or on its own (`CheckDefinition`: ID, ServiceID). */
export const CheckSchema = z.object({
  ID: z.string().optional(),
  CheckID: z.string().optional(),
  Name: z.string().optional(),
  Notes: z.string().optional(),
  ServiceID: z.string().optional(),
  Status: z.string().optional(),
  ScriptArgs: z
    .array(z.string())
    .meta({ consulAliases: ['args'] })
    .nullable()
    .optional(),
  DockerContainerID: z.string().optional(),
  Shell: z.string().optional(),
  HTTP: z.string().optional(),
  Header: z.record(z.string(), z.array(z.string())).nullable().optional(),
  Method: z.string().optional(),
  Body: z.string().optional(),
  DisableRedirects: z.boolean().optional(),
  TCP: z.string().optional(),
  TCPUseTLS: z.boolean().optional(),
  UDP: z.string().optional(),
  GRPC: z.string().optional(),
  GRPCUseTLS: z.boolean().optional(),
  H2PING: z.string().optional(),
  H2PingUseTLS: z.boolean().optional(),
  OSService: z.string().optional(),
  AliasNode: z.string().optional(),
  AliasService: z.string().optional(),
  TLSServerName: z.string().optional(),
  TLSSkipVerify: z.boolean().optional(),
  Interval: goDuration().optional(),
  Timeout: goDuration().optional(),
  TTL: goDuration().optional(),
  DeregisterCriticalServiceAfter: goDuration().optional(),
  SuccessBeforePassing: count.optional(),
  FailuresBeforeWarning: count.optional(),
  FailuresBeforeCritical: count.optional(),
  OutputMaxSize: z.number().int().optional(),
  Token: z.string().optional(),
  Namespace: z.string().optional(),
  Partition: z.string().optional(),
});
export type CheckInputJson = z.infer<typeof CheckSchema>;

const ProxySchema = z.looseObject({
  DestinationServiceName: z.string().optional(),
  DestinationServiceID: z.string().optional(),
  LocalServiceAddress: z.string().optional(),
  LocalServicePort: port.optional(),
  LocalServiceSocketPath: z.string().optional(),
  Mode: z.string().optional(),
  Config: z.record(z.string(), z.unknown()).nullable().optional(),
  Upstreams: z
    .array(
      z.looseObject({
        DestinationType: z.string().optional(),
        DestinationNamespace: z.string().optional(),
        DestinationPartition: z.string().optional(),
        DestinationPeer: z.string().optional(),
        DestinationName: z.string().optional(),
        Datacenter: z.string().optional(),
        LocalBindAddress: z.string().optional(),
        LocalBindPort: port.optional(),
        LocalBindSocketPath: z.string().optional(),
        Config: z.record(z.string(), z.unknown()).nullable().optional(),
        MeshGateway: meshGateway.optional(),
      }),
    )
    .nullable()
    .optional(),
  MeshGateway: meshGateway.optional(),
  Expose: z
    .looseObject({
      Checks: z.boolean().optional(),
      Paths: z
        .array(
          z.looseObject({
            ListenerPort: port.optional(),
            Path: z.string().optional(),
            LocalPathPort: port.optional(),
            Protocol: z.string().optional(),
          }),
        )
        .nullable()
        .optional(),
    })
    .optional(),
  TransparentProxy: z
    .looseObject({ OutboundListenerPort: port.optional(), DialedDirectly: z.boolean().optional() })
    .optional(),
});

const ConnectSchema = z.looseObject({
  Native: z.boolean().optional(),
  SidecarService: z.record(z.string(), z.unknown()).nullable().optional(),
});

export const ServiceSchema = z.object({
  Kind: z.string().optional(),
  ID: z.string().optional(),
  Name: z.string().optional(),
  Tags: z.array(z.string()).nullable().optional(),
  Address: z.string().optional(),
  TaggedAddresses: z
    .record(z.string(), z.object({ Address: z.string(), Port: port }))
    .nullable()
    .optional(),
  Meta: strMap.nullable().optional(),
  Port: port.optional(),
  SocketPath: z.string().optional(),
  Weights: z
    .object({ Passing: z.number().int().optional(), Warning: z.number().int().optional() })
    .nullable()
    .optional(),
  EnableTagOverride: z.boolean().optional(),
  Proxy: ProxySchema.nullable().optional(),
  Connect: ConnectSchema.nullable().optional(),
  Check: CheckSchema.nullable().optional(),
  Checks: z.array(CheckSchema).nullable().optional(),
  Token: z.string().optional(),
  Namespace: z.string().optional(),
  Partition: z.string().optional(),
});
export type ServiceInputJson = z.infer<typeof ServiceSchema>;

/** The request body / config object of a service, keys folded as Consul does. */
export const ServiceDefinitionBody = consulBody(ServiceSchema);
/** The request body / config object of a check, keys folded as Consul does. */
export const CheckDefinitionBody = consulBody(CheckSchema);

/** A service instance as the agent holds it: a catalog row without node and indexes. */
export type LocalServiceFields = Omit<ServiceRow, 'Node' | 'CreateIndex' | 'ModifyIndex'>;

/** A validated check, ready for the local state. */
export interface CheckDefinition {
  CheckID: string;
  Name: string;
  Notes: string;
  /** '' for a node-level check. */
  ServiceID: string;
  /** The initial status (Consul's default: critical). */
  Status: CheckStatus;
  /** Whether `Status` was given (a re-registered check otherwise keeps the status it has). */
  statusGiven: boolean;
  /** `ttl`, `http`, `tcp`, `udp`, `grpc`, `h2ping`, `alias`, `script`, `docker`, `os_service`. */
  Type: string;
  /** Set for TTL checks only. */
  ttlMs: number | undefined;
  /** Go duration strings, '' when unset (the agent's check view shows them). */
  Interval: string;
  Timeout: string;
  outputMaxSize: number;
  /** The rest of the definition, non-empty fields only, durations as Go strings. */
  Definition: Record<string, unknown>;
}

export interface ServiceDefinition {
  service: LocalServiceFields;
  checks: CheckDefinition[];
  /** Parts accepted but not acted on yet, for the caller to log. */
  warnings: string[];
  /** `Connect.SidecarService`: the sidecar proxy registered with the service. */
  sidecar?: SidecarRequest;
}

/** Consul's suffix of a sidecar's ID and name. */
export const SIDECAR_ID_SUFFIX = '-sidecar-proxy';

/**
 * A service's `Connect.SidecarService`, validated, with Consul's defaults filled in; the local
 * state builds it once it knows the port (given, or the next free one of the sidecar range).
 */
export interface SidecarRequest {
  /** `<service ID>-sidecar-proxy`, always (the sidecar's lifecycle follows its service's). */
  id: string;
  /** No port was given: the local state assigns one. */
  autoPort: boolean;
  build(port: number): ServiceDefinition;
}

const SERVICE_KINDS = new Set([
  '',
  'connect-proxy',
  'mesh-gateway',
  'terminating-gateway',
  'ingress-gateway',
  'api-gateway',
]);
/** Consul's `ipaddr.IsAny`. */
const ANY_ADDRESSES = new Set(['0.0.0.0', '::', '[::]']);
const META_KEY = /^[a-zA-Z0-9_-]+$/;

/** Consul's `structs.ValidateServiceMetadata`. */
function checkMeta(meta: Record<string, string>): void {
  const keys = Object.keys(meta);
  const fail = (why: string): never => {
    throw new DefinitionError(`Invalid Service Meta: ${why}`);
  };
  if (keys.length > 64) fail('Node metadata cannot contain more than 64 key/value pairs');
  for (const k of keys.sort()) {
    if (k === '') fail('Key cannot be blank');
    if (!META_KEY.test(k)) fail(`Key contains invalid characters: ${JSON.stringify(k)}`);
    if (k.length > 128) fail(`Key is too long (limit: 128 characters): ${JSON.stringify(k)}`);
    if (k.startsWith('consul-'))
      fail(`Key prefix 'consul-' is reserved for internal use: ${JSON.stringify(k)}`);
    if (meta[k].length > 512) fail(`Value is too long (limit: 512 characters): ${JSON.stringify(k)}`);
  }
}

const positive = (ms: number | undefined): number => (ms !== undefined && ms > 0 ? ms : 0);

/** Consul's `CheckType.Validate` and `CheckType.Type`: the check's type, or a refusal. */
function checkType(c: CheckInputJson, scripts: ScriptChecksPolicy): string {
  const interval = positive(c.Interval);
  const ttl = positive(c.TTL);
  const script = (c.ScriptArgs?.length ?? 0) > 0;
  const alias = !!(c.AliasNode || c.AliasService);
  const intervalCheck = script || !!(c.HTTP || c.TCP || c.UDP || c.GRPC || c.H2PING || c.OSService);
  const invalid = (why: string): never => {
    throw new DefinitionError(`Invalid check: ${why}`);
  };
  if (interval > 0 && ttl > 0) invalid('Interval and TTL cannot both be specified');
  if (intervalCheck && interval <= 0)
    invalid('Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks');
  if (intervalCheck && alias) invalid('Interval cannot be set for Alias checks');
  if (alias && ttl > 0) invalid('TTL must be not be set for Alias checks');
  if (!intervalCheck && !alias && ttl <= 0) invalid('TTL must be > 0 for TTL checks');
  if ((c.OutputMaxSize ?? 0) < 0) invalid('MaxOutputMaxSize must be positive');
  if (script && !scriptsAllowed(scripts)) {
    throw new DefinitionError(
      (scripts.source ?? 'api') === 'config'
        ? "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"
        : "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
    );
  }
  // The order of Consul's `CheckType.Type`.
  if (c.GRPC) return 'grpc';
  if (c.HTTP) return 'http';
  if (ttl > 0) return 'ttl';
  if (c.TCP) return 'tcp';
  if (c.UDP) return 'udp';
  if (alias) return 'alias';
  if (script && c.DockerContainerID) return 'docker';
  if (script) return 'script';
  if (c.H2PING) return 'h2ping';
  return 'os_service';
}

const DEFINITION_FIELDS = [
  'HTTP',
  'Header',
  'Method',
  'Body',
  'DisableRedirects',
  'TLSServerName',
  'TLSSkipVerify',
  'TCP',
  'TCPUseTLS',
  'UDP',
  'GRPC',
  'GRPCUseTLS',
  'H2PING',
  'H2PingUseTLS',
  'OSService',
  'AliasNode',
  'AliasService',
  'ScriptArgs',
  'DockerContainerID',
  'Shell',
  'SuccessBeforePassing',
  'FailuresBeforeWarning',
  'FailuresBeforeCritical',
  'OutputMaxSize',
] as const;
const DURATION_FIELDS = ['Interval', 'Timeout', 'TTL', 'DeregisterCriticalServiceAfter'] as const;

/** Consul's `HealthCheckDefinition`: what the check does, non-empty fields only, durations as Go strings. */
function definitionOf(c: CheckInputJson): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of DEFINITION_FIELDS) {
    const v = c[k];
    if (v === undefined || v === null || v === '' || v === false || v === 0) continue;
    out[k] = structuredClone(v);
  }
  for (const k of DURATION_FIELDS) {
    const ms = positive(c[k]);
    if (ms > 0) out[k] = formatGoDuration(ms);
  }
  return out;
}

function initialStatus(status: string | undefined): CheckStatus {
  if (status === undefined || status === '') return 'critical';
  if (!isCheckStatus(status)) {
    throw new DefinitionError(
      `Invalid check status ${JSON.stringify(status)}: must be passing, warning or critical`,
    );
  }
  return status;
}

function toCheck(
  c: CheckInputJson,
  checkId: string,
  name: string,
  serviceId: string,
  scripts: ScriptChecksPolicy,
): CheckDefinition {
  const Type = checkType(c, scripts);
  const interval = positive(c.Interval);
  const timeout = positive(c.Timeout);
  return {
    CheckID: checkId,
    Name: name,
    Notes: c.Notes ?? '',
    ServiceID: serviceId,
    Status: initialStatus(c.Status),
    statusGiven: c.Status !== undefined && c.Status !== '',
    Type,
    ttlMs: Type === 'ttl' ? positive(c.TTL) : undefined,
    Interval: interval > 0 ? formatGoDuration(interval) : '',
    Timeout: timeout > 0 ? formatGoDuration(timeout) : '',
    outputMaxSize: c.OutputMaxSize && c.OutputMaxSize > 0 ? c.OutputMaxSize : DEFAULT_OUTPUT_MAX_SIZE,
    // Consul defaults H2PingUseTLS to true (its register endpoint decodes onto `H2PingUseTLS: true`);
    // a false is dropped from the definition like every false, so the runner reads it as absent.
    Definition: definitionOf(c.H2PING ? { ...c, H2PingUseTLS: c.H2PingUseTLS ?? true } : c),
  };
}

/**
 * `PUT /v1/agent/check/register` (or a config file's check): ID defaults to the name; a check may
 * name the service it belongs to in `ServiceID` (the local state checks that the service exists).
 */
export function toCheckDefinition(c: CheckInputJson, scripts: ScriptChecksPolicy = {}): CheckDefinition {
  if (!c.Name) throw new DefinitionError('Missing check name');
  const checkId = c.ID || c.CheckID || c.Name;
  return toCheck(c, checkId, c.Name, c.ServiceID ?? '', scripts);
}

/**
 * `PUT /v1/agent/service/register` (or a config file's service): Consul's defaults (ID = name,
 * weights 1/1) and checks (IDs `service:<id>`, or `service:<id>:<n>` when there are several;
 * names `Service '<name>' check`), bound to the service.
 */
export function toServiceDefinition(
  s: ServiceInputJson,
  scripts: ScriptChecksPolicy = {},
): ServiceDefinition {
  const warnings: string[] = [];
  if (!s.Name) throw new DefinitionError('Missing service name');
  const kind = s.Kind ?? '';
  if (!SERVICE_KINDS.has(kind)) throw new DefinitionError(`Invalid service kind ${JSON.stringify(kind)}`);
  const id = s.ID || s.Name;
  const address = s.Address ?? '';
  if (ANY_ADDRESSES.has(address)) throw new DefinitionError('Invalid service address');
  const tagged = s.TaggedAddresses ?? {};
  for (const [k, v] of Object.entries(tagged)) {
    if (ANY_ADDRESSES.has(v.Address))
      throw new DefinitionError(`Invalid tagged address ${JSON.stringify(k)}`);
  }
  const meta = s.Meta ?? {};
  checkMeta(meta);
  const weights = { Passing: s.Weights?.Passing ?? 1, Warning: s.Weights?.Warning ?? 1 };
  if (weights.Passing < 1) throw new DefinitionError('Invalid Weights: Passing must be greater than 0');
  if (weights.Warning < 0)
    throw new DefinitionError('Invalid Weights: Warning must be greater or equal than 0');

  const proxy: Record<string, unknown> = structuredClone(s.Proxy ?? {});
  const connect: Record<string, unknown> = structuredClone(s.Connect ?? {});
  if (kind === 'connect-proxy') {
    if (!proxy.DestinationServiceName) {
      throw new DefinitionError('Proxy.DestinationServiceName must be non-empty for Connect proxy services');
    }
    if (!s.Port && !s.SocketPath)
      throw new DefinitionError('Port or SocketPath must be set for a Connect proxy');
    if (connect.Native === true)
      throw new DefinitionError('A Proxy cannot also be Connect Native, only typical services');
  }
  // Expanded into its own service (below); the catalog row does not carry it, as in Consul.
  const sidecarInput = connect.SidecarService as Record<string, unknown> | null | undefined; // schema: record or null
  delete connect.SidecarService;
  if (sidecarInput && kind !== '')
    throw new DefinitionError('A SidecarService cannot be specified for a proxy or gateway service');

  const inputs = [...(s.Check ? [s.Check] : []), ...(s.Checks ?? [])];
  const checks = inputs.map((c, i) => {
    const checkId = c.CheckID || c.ID || (inputs.length === 1 ? `service:${id}` : `service:${id}:${i + 1}`);
    return toCheck(c, checkId, c.Name || `Service '${s.Name}' check`, id, scripts);
  });
  const seen = new Set<string>();
  for (const c of checks) {
    if (seen.has(c.CheckID))
      throw new DefinitionError(`Invalid check: duplicate check ID ${JSON.stringify(c.CheckID)}`);
    seen.add(c.CheckID);
  }

  const definition: ServiceDefinition = {
    service: {
      ID: id,
      Service: s.Name,
      Tags: [...(s.Tags ?? [])],
      Address: address,
      TaggedAddresses: structuredClone(tagged),
      Port: s.Port ?? 0,
      Meta: { ...meta },
      Weights: weights,
      EnableTagOverride: s.EnableTagOverride ?? false,
      Kind: kind,
      Proxy: proxy,
      Connect: connect,
    },
    checks,
    warnings,
  };
  if (sidecarInput) definition.sidecar = sidecarRequest(definition.service, sidecarInput, scripts);
  return definition;
}

/** `host:port`, with brackets for an IPv6 host. */
const hostPort = (host: string, port: number): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

/**
 * Consul's `sidecarServiceFromNodeService`: the sidecar's own definition (any key case, snake_case
 * from config files) over defaults taken from its service: ID and name with the suffix, kind
 * `connect-proxy`, the service's address, tags and meta when it has none of its own, a proxy
 * pointing at the service (127.0.0.1 and the service's port unless given). Without checks of its
 * own it gets Consul's two: a TCP check of the proxy port every 10 s and an alias of the service.
 * Validated here, with a stand-in port when none was given.
 */
function sidecarRequest(
  parent: LocalServiceFields,
  raw: Record<string, unknown>,
  scripts: ScriptChecksPolicy,
): SidecarRequest {
  let body: ServiceInputJson;
  try {
    body = ServiceDefinitionBody.parse(raw);
  } catch (err) {
    if (!(err instanceof z.ZodError)) throw err;
    const issue = err.issues[0];
    throw new DefinitionError(`Connect.SidecarService.${issue.path.map(String).join('.')}: ${issue.message}`);
  }
  if (body.Connect?.SidecarService)
    throw new DefinitionError('A SidecarService cannot have a nested SidecarService');
  const id = `${parent.ID}${SIDECAR_ID_SUFFIX}`;
  const proxy: Record<string, unknown> = structuredClone(body.Proxy ?? {});
  proxy.DestinationServiceName ||= parent.Service;
  proxy.DestinationServiceID ||= parent.ID;
  const localPort = typeof proxy.LocalServicePort === 'number' ? proxy.LocalServicePort : 0;
  if (!proxy.LocalServiceSocketPath && (!proxy.LocalServiceAddress || localPort < 1)) {
    proxy.LocalServiceAddress ||= '127.0.0.1';
    if (localPort < 1) proxy.LocalServicePort = parent.Port;
  }
  const given: ServiceInputJson = {
    ...body,
    ID: id,
    Name: body.Name || `${parent.Service}${SIDECAR_ID_SUFFIX}`,
    Kind: body.Kind || 'connect-proxy',
    Address: body.Address || parent.Address,
    Tags: body.Tags?.length ? body.Tags : [...parent.Tags],
    Meta: body.Meta && Object.keys(body.Meta).length > 0 ? body.Meta : { ...parent.Meta },
    Proxy: proxy,
  };
  const autoPort = !(body.Port !== undefined && body.Port > 0);
  const ownChecks = body.Check !== undefined || (body.Checks?.length ?? 0) > 0;
  const checkHost = given.Address || String(proxy.LocalServiceAddress ?? '127.0.0.1');
  const build = (port: number): ServiceDefinition => {
    const p = autoPort ? port : (body.Port as number);
    const defaults: ServiceInputJson['Checks'] = [
      { Name: 'Connect Sidecar Listening', TCP: hostPort(checkHost, p), Interval: 10_000 },
      { Name: `Connect Sidecar Aliasing ${parent.ID}`, AliasService: parent.ID },
    ];
    return toServiceDefinition(
      { ...given, Port: p, ...(ownChecks ? {} : { Check: undefined, Checks: defaults }) },
      scripts,
    );
  };
  build(autoPort ? 21_000 : 0);
  return { id, autoPort, build };
}

/** A config file's service (raw JSON, any key case): schema, then Consul's rules. */
export function parseServiceDefinition(
  raw: unknown,
  scripts: ScriptChecksPolicy = { source: 'config' },
): ServiceDefinition {
  return toServiceDefinition(ServiceDefinitionBody.parse(raw), scripts);
}

/** A config file's check (raw JSON, any key case): schema, then Consul's rules. */
export function parseCheckDefinition(
  raw: unknown,
  scripts: ScriptChecksPolicy = { source: 'config' },
): CheckDefinition {
  return toCheckDefinition(CheckDefinitionBody.parse(raw), scripts);
}
