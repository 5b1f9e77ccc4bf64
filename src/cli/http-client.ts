/**
 * The HTTP client of the local agent used by every CLI subcommand but `agent`: where the agent is
 * (`-http-addr`, `MESHD_HTTP_ADDR`, `CONSUL_HTTP_ADDR`), which token to send (`X-Consul-Token`), TLS
 * settings, and a request helper whose failures are one-line errors in the wording of Consul's Go API
 * client (`Unexpected response code: 500 (body)`, `Get "http://…": connect ECONNREFUSED …`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import http from '../node-http.ts';
import { VERSION } from '../version.ts';
import { type FlagDef, type ParsedFlags, parseGoBool } from './flags.ts';

export const DEFAULT_HTTP_ADDR = '127.0.0.1:8500';

export type Env = Record<string, string | undefined>;

/** `MESHD_<name>`, else `CONSUL_<name>`; an empty variable counts as unset. */
export function envSetting(env: Env, name: string): string | undefined {
  for (const prefix of ['MESHD_', 'CONSUL_']) {
    const v = env[prefix + name];
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

/** A wrong address, token file or certificate: the client cannot be built. */
export class ClientConfigError extends Error {
  override name = 'ClientConfigError';
}

export interface Endpoint {
  scheme: 'http' | 'https';
  /** Host name or IP address, IPv6 without brackets. */
  host: string;
  port: number;
  /** Set for `unix:///path/to/socket` addresses. */
  socketPath?: string;
  /** The base URL as shown in messages, e.g. `http://127.0.0.1:8500`. */
  base: string;
}

/**
 * Parses an HTTP address as Consul's CLI accepts it: `host:port`, `http://host:port`,
 * `https://host:port`, `unix:///path`. Without a scheme, `https` is used when `ssl` is set
 * (`CONSUL_HTTP_SSL=true`). A missing port means the scheme's default, as in Go.
 */
export function parseHttpAddr(raw: string, ssl = false): Endpoint {
  const text = raw.trim();
  if (text.startsWith('unix://')) {
    const socketPath = text.slice('unix://'.length);
    if (!socketPath) throw new ClientConfigError(`invalid HTTP address "${raw}": missing socket path`);
    return { scheme: 'http', host: 'localhost', port: 80, socketPath, base: `unix://${socketPath}` };
  }
  let scheme: 'http' | 'https' = ssl ? 'https' : 'http';
  let rest = text;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(text);
  if (m) {
    const s = m[1].toLowerCase();
    if (s !== 'http' && s !== 'https')
      throw new ClientConfigError(`unsupported scheme "${m[1]}" in HTTP address "${raw}"`);
    scheme = s;
    rest = m[2];
  }
  rest = rest.replace(/\/+$/, '');
  if (!rest || /[/?#@\s]/.test(rest)) throw new ClientConfigError(`invalid HTTP address "${raw}"`);
  let url: URL;
  try {
    url = new URL(`${scheme}://${rest}`);
  } catch {
    throw new ClientConfigError(`invalid HTTP address "${raw}"`);
  }
  const port = url.port ? Number(url.port) : scheme === 'https' ? 443 : 80;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { scheme, host, port, base: `${scheme}://${shownHost}:${port}` };
}

/** The `-http-addr`, `-token`, ... flags every HTTP subcommand takes (Consul's "HTTP API Options"). */
export const CLIENT_FLAGS: FlagDef[] = [
  {
    name: 'http-addr',
    kind: 'string',
    placeholder: 'address',
    usage:
      'The address and port of the agent HTTP server, e.g. 127.0.0.1:8500, http://host:8500, https://host:8501 ' +
      'or unix:///path/to/socket. Can also be set with MESHD_HTTP_ADDR or CONSUL_HTTP_ADDR. ' +
      `The default is http://${DEFAULT_HTTP_ADDR}; MESHD_HTTP_SSL=true or CONSUL_HTTP_SSL=true makes it https.`,
  },
  {
    name: 'token',
    kind: 'string',
    usage:
      'ACL token to use in the request, sent as X-Consul-Token. Can also be set with MESHD_HTTP_TOKEN or ' +
      'CONSUL_HTTP_TOKEN. If unset, the agent uses its default token.',
  },
  {
    name: 'token-file',
    kind: 'string',
    usage:
      'File containing the ACL token to use in the request instead of one given with -token. Can also be set ' +
      'with MESHD_HTTP_TOKEN_FILE or CONSUL_HTTP_TOKEN_FILE.',
  },
  {
    name: 'ca-file',
    kind: 'string',
    usage: 'Path to a CA file to use for TLS with the agent (MESHD_CACERT, CONSUL_CACERT).',
  },
  {
    name: 'ca-path',
    kind: 'string',
    usage:
      'Path to a directory of CA certificates to use for TLS with the agent (MESHD_CAPATH, CONSUL_CAPATH).',
  },
  {
    name: 'client-cert',
    kind: 'string',
    usage: 'Path to a client certificate file for TLS (MESHD_CLIENT_CERT, CONSUL_CLIENT_CERT).',
  },
  {
    name: 'client-key',
    kind: 'string',
    usage: 'Path to a client key file for TLS (MESHD_CLIENT_KEY, CONSUL_CLIENT_KEY).',
  },
  {
    name: 'tls-server-name',
    kind: 'string',
    usage: 'The server name to use as the SNI host with TLS (MESHD_TLS_SERVER_NAME, CONSUL_TLS_SERVER_NAME).',
  },
];

/** `-datacenter` and `-stale` (Consul's server flags), for commands answered by the servers. */
export const SERVER_FLAGS: FlagDef[] = [
  {
    name: 'datacenter',
    kind: 'string',
    placeholder: 'name',
    usage:
      'Name of the datacenter to query. If unspecified, the query defaults to the datacenter of the agent.',
  },
  {
    name: 'stale',
    kind: 'bool',
    usage:
      'Permit any server to answer the request instead of only the leader. This allows for lower latency and ' +
      'higher throughput, but can return stale data. The default is false.',
  },
];

export interface HttpOptions {
  httpAddr?: string;
  token?: string;
  tokenFile?: string;
  caFile?: string;
  caPath?: string;
  clientCert?: string;
  clientKey?: string;
  tlsServerName?: string;
  datacenter?: string;
  stale?: boolean;
}

export function httpOptionsFromFlags(flags: ParsedFlags): HttpOptions {
  return {
    httpAddr: flags.string('http-addr'),
    token: flags.string('token'),
    tokenFile: flags.string('token-file'),
    caFile: flags.string('ca-file'),
    caPath: flags.string('ca-path'),
    clientCert: flags.string('client-cert'),
    clientKey: flags.string('client-key'),
    tlsServerName: flags.string('tls-server-name'),
    datacenter: flags.string('datacenter'),
    stale: flags.bool('stale'),
  };
}

export interface TlsSettings {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  rejectUnauthorized: boolean;
}

export interface HttpConfig {
  endpoint: Endpoint;
  token?: string;
  datacenter?: string;
  stale: boolean;
  tls: TlsSettings;
}

function readSetting(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ClientConfigError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** Flags win over `MESHD_*` variables, which win over `CONSUL_*` ones, which win over the defaults. */
export function resolveHttpConfig(opts: HttpOptions, env: Env): HttpConfig {
  const sslText = envSetting(env, 'HTTP_SSL');
  const ssl = sslText !== undefined && parseGoBool(sslText) === true;
  const endpoint = parseHttpAddr(opts.httpAddr || envSetting(env, 'HTTP_ADDR') || DEFAULT_HTTP_ADDR, ssl);

  let token = opts.token || undefined;
  const tokenFile = opts.tokenFile || undefined;
  if (!token && tokenFile) token = readSetting(tokenFile, 'token file').toString('utf8').trim();
  if (!token) token = envSetting(env, 'HTTP_TOKEN');
  if (!token) {
    const envFile = envSetting(env, 'HTTP_TOKEN_FILE');
    if (envFile) token = readSetting(envFile, 'token file').toString('utf8').trim();
  }

  const verifyText = envSetting(env, 'HTTP_SSL_VERIFY');
  const tls: TlsSettings = {
    rejectUnauthorized: verifyText === undefined || parseGoBool(verifyText) !== false,
  };
  const caFile = opts.caFile || envSetting(env, 'CACERT');
  const caPath = opts.caPath || envSetting(env, 'CAPATH');
  if (caFile) {
    tls.ca = [readSetting(caFile, 'CA file')];
  } else if (caPath) {
    let names: string[];
    try {
      names = readdirSync(caPath).sort();
    } catch (e) {
      throw new ClientConfigError(`cannot read CA path ${caPath}: ${(e as Error).message}`);
    }
    tls.ca = names.filter((n) => /\.(pem|crt)$/i.test(n)).map((n) => readSetting(join(caPath, n), 'CA file'));
  }
  const cert = opts.clientCert || envSetting(env, 'CLIENT_CERT');
  const key = opts.clientKey || envSetting(env, 'CLIENT_KEY');
  if (cert) tls.cert = readSetting(cert, 'client certificate');
  if (key) tls.key = readSetting(key, 'client key');
  const servername = opts.tlsServerName || envSetting(env, 'TLS_SERVER_NAME');
  if (servername) tls.servername = servername;

  return {
    endpoint,
    token: token || undefined,
    datacenter: opts.datacenter || undefined,
    stale: !!opts.stale,
    tls,
  };
}

/** A non-2xx answer; the message is Consul's API client wording. */
export class HttpError extends Error {
  override name = 'HttpError';
  readonly status: number;
  readonly body: string;
  constructor(status: number, body: string) {
    const text = body.trim().replace(/\s*\n\s*/g, ' ');
    super(`Unexpected response code: ${status} (${text})`);
    this.status = status;
    this.body = body;
  }
}

/** The agent could not be reached (refused, reset, DNS, TLS). */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

/** Go's path escaping: everything but unreserved characters, sub-delims, ':', '@' and '/' is %-encoded. */
export function escapePath(path: string): string {
  return encodeURIComponent(path).replace(/%(2F|3A|40|24|26|2B|2C|3B|3D)/gi, (s) => decodeURIComponent(s));
}

/** Go's url.QueryEscape. */
function queryEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

export type Query = Array<[string, string]>;

/** Go's url.Values.Encode: sorted by key, `key=` for empty values. */
export function encodeQuery(query: Query): string {
  const sorted = [...query].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return sorted.map(([k, v]) => `${queryEscape(k)}=${queryEscape(v)}`).join('&');
}

export interface RequestOptions {
  query?: Query;
  body?: Buffer | string | Readable;
  contentType?: string;
  contentLength?: number;
  /** Add `stale` when `-stale` was given (reads only). */
  stale?: boolean;
  /** Status codes other than 2xx to hand back instead of throwing (e.g. 404 for a missing key). */
  accept?: number[];
  /** Aborts the request (and closes its socket), e.g. a long poll when the command is stopped. */
  signal?: AbortSignal;
}

export interface ApiResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** `X-Consul-Index`, when present. */
  index?: bigint;
}

function goMethod(method: string): string {
  return method[0].toUpperCase() + method.slice(1).toLowerCase();
}

function describe(err: unknown): string {
  if (err instanceof AggregateError && !err.message) {
    return err.errors.map((e) => (e as Error).message).join('; ');
  }
  return (err as Error).message || String(err);
}

export class ApiClient {
  readonly config: HttpConfig;

  constructor(config: HttpConfig) {
    this.config = config;
  }

  /** The path and query of a request, with the global `dc` and `stale` parameters. */
  target(path: string, opts: RequestOptions = {}): string {
    const query: Query = [...(opts.query ?? [])];
    if (this.config.datacenter) query.push(['dc', this.config.datacenter]);
    if (opts.stale && this.config.stale) query.push(['stale', '']);
    const qs = encodeQuery(query);
    return qs ? `${path}?${qs}` : path;
  }

  /** Sends a request; resolves with the response still streaming. Non-2xx answers are thrown as HttpError. */
  open(method: string, path: string, opts: RequestOptions = {}): Promise<IncomingMessage> {
    const target = this.target(path, opts);
    const { endpoint, tls } = this.config;
    const shown = `${endpoint.base}${target}`;
    const headers: OutgoingHttpHeaders = { 'User-Agent': `meshd/${VERSION}` };
    if (this.config.token) headers['X-Consul-Token'] = this.config.token;
    if (opts.body !== undefined) {
      headers['Content-Type'] = opts.contentType ?? 'application/octet-stream';
      if (typeof opts.body === 'string') headers['Content-Length'] = Buffer.byteLength(opts.body);
      else if (Buffer.isBuffer(opts.body)) headers['Content-Length'] = opts.body.length;
      else if (opts.contentLength !== undefined) headers['Content-Length'] = opts.contentLength;
    } else if (method !== 'GET' && method !== 'HEAD') {
      headers['Content-Length'] = 0;
    }
    const base = {
      method,
      path: target,
      headers,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(endpoint.socketPath
        ? { socketPath: endpoint.socketPath }
        : { host: endpoint.host, port: endpoint.port }),
    };
    return new Promise((resolve, reject) => {
      const fail = (err: unknown) =>
        reject(new ConnectionError(`${goMethod(method)} "${shown}": ${describe(err)}`));
      const onResponse = (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if ((status >= 200 && status < 300) || opts.accept?.includes(status)) {
          resolve(res);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => reject(new HttpError(status, Buffer.concat(chunks).toString('utf8'))));
        res.on('error', fail);
      };
      const req =
        endpoint.scheme === 'https'
          ? https.request({ ...base, ...tls }, onResponse)
          : http.request(base, onResponse);
      req.on('error', fail);
      const body = opts.body;
      if (body === undefined) {
        req.end();
      } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        body.on('error', (e) => {
          req.destroy();
          reject(e);
        });
        body.pipe(req);
      }
    });
  }

  /** Sends a request and reads the whole answer. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    const res = await this.open(method, path, opts);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of res) chunks.push(chunk as Buffer);
    } catch (e) {
      throw new ConnectionError(
        `${goMethod(method)} "${this.config.endpoint.base}${this.target(path, opts)}": ${describe(e)}`,
      );
    }
    return {
      status: res.statusCode ?? 0,
      headers: res.headers,
      body: Buffer.concat(chunks),
      index: indexOf(res),
    };
  }

  /** A request whose answer is JSON (`null` for an accepted non-2xx status such as 404). */
  async json<T>(
    method: string,
    path: string,
    opts: RequestOptions = {},
  ): Promise<{ value: T | null; index?: bigint }> {
    const res = await this.request(method, path, opts);
    if (res.status < 200 || res.status >= 300) return { value: null, index: res.index };
    return { value: parseJson<T>(res.body), index: res.index };
  }
}

export function indexOf(res: IncomingMessage): bigint | undefined {
  const raw = res.headers['x-consul-index'];
  const text = Array.isArray(raw) ? raw[0] : raw;
  return text && /^\d+$/.test(text) ? BigInt(text) : undefined;
}

export function parseJson<T>(body: Buffer): T {
  const text = body.toString('utf8');
  if (text.trim() === '') return null as T;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`invalid JSON in response: ${(e as Error).message}`);
  }
}
