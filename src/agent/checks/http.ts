/**
 * HTTP checks (Consul's `CheckHTTP`): 2xx is passing, 429 warning, anything else (or no answer)
 * critical. Output is `HTTP <method> <url>: <status line> Output: <body>`, the body cut to its
 * last `OutputMaxSize` bytes as Consul's circular buffer does. Redirects are followed as Go's
 * client does (up to 10; 301/302/303 turn into GET without a body) unless `DisableRedirects`.
 *
 * Unlike Consul (which opens a connection per run), connections are kept alive in a pool shared
 * by all checks ({@link HttpAgents}): a thousand checks against one server then cost a handful of
 * sockets instead of a TCP handshake each. A request that fails on a reused socket the server
 * just closed is retried once on a new one, so keep-alive never turns into a false critical.
 *
 * Requests go through the small HTTP/1.1 client of `http1.ts` rather than `node:http`, whose
 * machinery cost twice the CPU per run on a client agent. Each check's request is validated and
 * serialized once, with the headers Node's client sent (see {@link prepare}), and written whole on
 * every run; only a redirect builds another.
 */

import net from 'node:net';
import { Http1Pool, type Http1Request, type Http1Response } from './http1.ts';
import type { CheckResult, Probe } from './types.ts';

const USER_AGENT = 'Consul Health Check';
const ACCEPT = 'text/plain, text/*, */*';
const MAX_REDIRECTS = 10;

export interface HttpCheckConfig {
  url: string;
  /** @default 'GET' */
  method: string;
  header: Record<string, string[]>;
  body: string;
  disableRedirects: boolean;
  tlsServerName: string;
  tlsSkipVerify: boolean;
  outputMaxSize: number;
}

/** Keep-alive connections shared by every HTTP check of the agent (pooled per host and TLS setting). */
export class HttpAgents extends Http1Pool {}

/** Go's `urlErrorOp`: `Get`, `Post`, ... */
const op = (method: string): string => method.charAt(0) + method.slice(1).toLowerCase();

// Request validation as Node's http client did it (the same errors, so the same outputs).
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_HEADER_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
const CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;
const CLOSE = /(?:^|\W)close(?:$|\W)/i;
/** Methods sent without `Content-Length: 0` when they have no body (Node's, close to Go's). */
const NO_EMPTY_LENGTH = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

type Header = [name: string, value: string];

/** One request of a run: the check's own, or one a redirect led to. */
interface Hop {
  url: URL;
  method: string;
  body: string | undefined;
  /** The check's headers (one entry per value) with the User-Agent and Accept defaults. */
  headers: Header[];
  req: Http1Request;
}

/**
 * Serializes a request as Node's client wrote it: the headers in order, then `Host` (host[:port],
 * IPv6 in brackets, no default port), `Authorization` from the URL's user info, `Connection:
 * keep-alive` and `Content-Length`, each unless the check sets it; a `Transfer-Encoding: chunked`
 * the check sets frames the body. Throws Node's errors for an invalid method or header.
 */
function prepare(
  url: URL,
  method: string,
  headers: Header[],
  body: string | undefined,
  cfg: Pick<HttpCheckConfig, 'tlsServerName' | 'tlsSkipVerify'>,
): Http1Request {
  if (!TOKEN.test(method))
    throw new TypeError(`Method must be a valid HTTP token [${JSON.stringify(method)}]`);
  let head = `${method} ${url.pathname || '/'}${url.search} HTTP/1.1\r\n`;
  let host = false;
  let auth = false;
  let connection = false;
  let length = false;
  let chunked = false;
  let close = false;
  for (const [name, value] of headers) {
    if (!TOKEN.test(name))
      throw new TypeError(`Header name must be a valid HTTP token [${JSON.stringify(name)}]`);
    if (INVALID_HEADER_CHAR.test(value)) {
      throw new TypeError(`Invalid character in header content [${JSON.stringify(name)}]`);
    }
    head += `${name}: ${value}\r\n`;
    const lower = name.toLowerCase();
    if (lower === 'host') host = true;
    else if (lower === 'authorization') auth = true;
    else if (lower === 'connection') {
      connection = true;
      close ||= CLOSE.test(value);
    } else if (lower === 'content-length') length = true;
    else if (lower === 'transfer-encoding') {
      length = true;
      chunked ||= CHUNKED.test(value);
    }
  }
  if (!host) head += `Host: ${url.host}\r\n`;
  if (!auth && (url.username !== '' || url.password !== '')) {
    const user = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    head += `Authorization: Basic ${Buffer.from(user).toString('base64')}\r\n`;
  }
  if (!connection) head += 'Connection: keep-alive\r\n';
  const content = body === undefined ? undefined : Buffer.from(body);
  if (!length && (content !== undefined || !NO_EMPTY_LENGTH.has(method))) {
    head += `Content-Length: ${content?.length ?? 0}\r\n`;
  }
  head += '\r\n';
  let bytes = Buffer.from(head, 'latin1');
  if (chunked) {
    const size = content?.length ?? 0;
    const chunk = size === 0 ? '' : `${size.toString(16)}\r\n${body}\r\n`;
    bytes = Buffer.concat([bytes, Buffer.from(chunk), Buffer.from('0\r\n\r\n')]);
  } else if (content !== undefined) bytes = Buffer.concat([bytes, content]);

  const secure = url.protocol === 'https:';
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const servername = cfg.tlsServerName !== '' ? cfg.tlsServerName : net.isIP(hostname) === 0 ? hostname : '';
  return {
    target: { secure, host: hostname, port, servername, rejectUnauthorized: !cfg.tlsSkipVerify },
    key: secure ? `https|${hostname}|${port}|${cfg.tlsSkipVerify}|${servername}` : `http|${hostname}|${port}`,
    bytes,
    noBody: method === 'HEAD',
    close,
  };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const SENSITIVE = ['authorization', 'www-authenticate', 'cookie', 'cookie2'];

/** The request a redirect response leads to, as Go's client follows it. */
function redirect(
  from: Hop,
  res: Http1Response,
  location: string,
  cfg: Pick<HttpCheckConfig, 'tlsServerName' | 'tlsSkipVerify'>,
): Hop {
  const url = new URL(location, from.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`unsupported protocol scheme ${JSON.stringify(url.protocol.slice(0, -1))}`);
  }
  const code = res.status;
  const keepMethod = code === 307 || code === 308 || from.method === 'HEAD' || from.method === 'GET';
  const method = keepMethod ? from.method : 'GET';
  const body = code === 307 || code === 308 ? from.body : undefined;
  const headers =
    url.host === from.url.host
      ? from.headers
      : from.headers.filter(([k]) => !SENSITIVE.includes(k.toLowerCase()));
  return { url, method, body, headers, req: prepare(url, method, headers, body, cfg) };
}

function errorOutput(method: string, url: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  let reason = e.message; // a TimeoutError's message is already Go's wording
  if (e.code === 'ECONNREFUSED' && e.syscall === 'connect') {
    const { address, port } = e as NodeJS.ErrnoException & { address?: string; port?: number };
    reason = `dial tcp ${address}:${port ?? 0}: connect: connection refused`; // Node omits a port 0
  } else if (e.code === 'ENOTFOUND') reason = `dial tcp: lookup ${e.message.split(' ').at(-1)}: no such host`;
  else if (e.code === 'ECONNRESET') reason = 'read: connection reset by peer';
  return `${op(method)} ${JSON.stringify(url)}: ${reason}`;
}

/** `raw` as an http(s) URL, or the critical result every run of a check against it gets. */
function checkUrl(raw: string, method: string): URL | CheckResult {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { status: 'critical', output: `parse ${JSON.stringify(raw)}: invalid URL` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return {
      status: 'critical',
      output: `${op(method)} ${JSON.stringify(raw)}: unsupported protocol scheme ${JSON.stringify(url.protocol.slice(0, -1))}`,
    };
  }
  return url;
}

export function httpProbe(cfg: HttpCheckConfig, agents: HttpAgents): Probe {
  const method = cfg.method === '' ? 'GET' : cfg.method.toUpperCase();
  const headers: Header[] = [];
  for (const [k, v] of Object.entries(cfg.header)) for (const value of v) headers.push([k, value]);
  const lower = new Set(Object.keys(cfg.header).map((k) => k.toLowerCase()));
  if (!lower.has('user-agent')) headers.push(['User-Agent', USER_AGENT]);
  if (!lower.has('accept')) headers.push(['Accept', ACCEPT]);

  // The URL is parsed and the request serialized once per definition; one that cannot be sent
  // fails every run the same way.
  const url = checkUrl(cfg.url, method);
  if (!(url instanceof URL)) return async () => url;
  const body = cfg.body === '' ? undefined : cfg.body;
  let first: Hop;
  try {
    first = { url, method, body, headers, req: prepare(url, method, headers, body, cfg) };
  } catch (err) {
    const result: CheckResult = { status: 'critical', output: errorOutput(method, cfg.url, err) };
    return async () => result;
  }
  return async (signal): Promise<CheckResult> => {
    try {
      let hop = first;
      let res = await agents.request(hop.req, signal, cfg.outputMaxSize);
      for (let hops = 0; !cfg.disableRedirects && REDIRECTS.has(res.status); hops++) {
        if (res.location === undefined) break;
        if (hops === MAX_REDIRECTS) throw new Error('stopped after 10 redirects');
        hop = redirect(hop, res, res.location, cfg);
        res = await agents.request(hop.req, signal, cfg.outputMaxSize);
      }
      const statusLine = res.reason ? `${res.status} ${res.reason}` : String(res.status);
      const output = `HTTP ${method} ${cfg.url}: ${statusLine} Output: ${res.body}`;
      if (res.status >= 200 && res.status <= 299) return { status: 'passing', output };
      if (res.status === 429) return { status: 'warning', output };
      return { status: 'critical', output };
    } catch (err) {
      return { status: 'critical', output: errorOutput(method, cfg.url, err) };
    }
  };
}
