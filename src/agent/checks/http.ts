/**
 * HTTP checks (Consul's `CheckHTTP`): 2xx is passing, 429 warning, anything else (or no answer)
 * critical. Output is `HTTP <method> <url>: <status line> Output: <body>`, the body cut to its
 * last `OutputMaxSize` bytes as Consul's circular buffer does. Redirects are followed as Go's
 * client does (up to 10; 301/302/303 turn into GET without a body) unless `DisableRedirects`.
 *
 * Unlike Consul (which opens a connection per run), connections are kept alive in agents shared
 * by all checks ({@link HttpAgents}): a thousand checks against one server then cost a handful of
 * sockets instead of a TCP handshake each. A request that fails on a reused socket the server
 * just closed is retried once on a new one, so keep-alive never turns into a false critical.
 */

import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import https from 'node:https';
import http from '../../node-http.ts';
import { TailBuffer } from './output.ts';
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

/** Keep-alive agents shared by every HTTP check of the agent, one per TLS setting. */
export class HttpAgents {
  readonly #plain = new http.Agent({ keepAlive: true, scheduling: 'lifo' });
  readonly #tls = new Map<string, https.Agent>();

  for(url: URL, cfg: Pick<HttpCheckConfig, 'tlsServerName' | 'tlsSkipVerify'>): HttpAgent {
    if (url.protocol === 'http:') return this.#plain;
    const key = `${cfg.tlsSkipVerify}|${cfg.tlsServerName}`;
    let agent = this.#tls.get(key);
    if (agent === undefined) {
      agent = new https.Agent({
        keepAlive: true,
        scheduling: 'lifo',
        rejectUnauthorized: !cfg.tlsSkipVerify,
        ...(cfg.tlsServerName !== '' && { servername: cfg.tlsServerName }),
      });
      this.#tls.set(key, agent);
    }
    return agent;
  }

  destroy(): void {
    this.#plain.destroy();
    for (const a of this.#tls.values()) a.destroy();
    this.#tls.clear();
  }
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor() {
    super('context deadline exceeded (Client.Timeout exceeded while awaiting headers)');
  }
}

/** Go's `urlErrorOp`: `Get`, `Post`, ... */
const op = (method: string): string => method.charAt(0) + method.slice(1).toLowerCase();

interface Attempt {
  url: URL;
  method: string;
  body: string | undefined;
  headers: Record<string, string | string[]>;
}

function send(a: Attempt, agent: HttpAgent, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new TimeoutError());
    const mod = a.url.protocol === 'https:' ? https : http;
    const req = mod.request(a.url, { method: a.method, headers: a.headers, agent });
    const onAbort = (): void => {
      req.destroy(new TimeoutError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.once('response', (res) => {
      signal.removeEventListener('abort', onAbort);
      resolve(res);
    });
    req.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      (err as Error & { reused?: boolean }).reused = req.reusedSocket;
      reject(err);
    });
    req.end(a.body);
  });
}

/** Reads the body into a tail buffer; stops quietly at the deadline (Consul only logs that). */
function readTail(res: IncomingMessage, max: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const buf = new TailBuffer(max);
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve(buf.text());
    };
    const onAbort = (): void => {
      res.destroy();
      done();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    res.on('data', (c: Buffer) => buf.write(c));
    res.once('end', done);
    res.once('error', done);
  });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const SENSITIVE = ['authorization', 'www-authenticate', 'cookie', 'cookie2'];

/** Sends, retrying once on a reused keep-alive socket that was closed under us. */
async function sendOnce(a: Attempt, agent: HttpAgent, signal: AbortSignal): Promise<IncomingMessage> {
  try {
    return await send(a, agent, signal);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { reused?: boolean };
    if (!e.reused || signal.aborted || (e.code !== 'ECONNRESET' && e.code !== 'EPIPE')) throw err;
    return send(a, agent, signal);
  }
}

function errorOutput(method: string, url: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  let reason = e.message; // a TimeoutError's message is already Go's wording
  if (e.code === 'ECONNREFUSED' && e.syscall === 'connect') {
    const { address, port } = e as NodeJS.ErrnoException & { address?: string; port?: number };
    reason = `dial tcp ${address}:${port}: connect: connection refused`;
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
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(cfg.header)) headers[k] = v.length === 1 ? v[0] : v;
  const lower = new Set(Object.keys(headers).map((k) => k.toLowerCase()));
  if (!lower.has('user-agent')) headers['User-Agent'] = USER_AGENT;
  if (!lower.has('accept')) headers.Accept = ACCEPT;

  // The URL is parsed once per definition; one that cannot be probed fails every run the same way.
  const url = checkUrl(cfg.url, method);
  if (!(url instanceof URL)) return async () => url;
  return async (signal): Promise<CheckResult> => {
    let attempt: Attempt = { url, method, body: cfg.body === '' ? undefined : cfg.body, headers };
    try {
      let res = await sendOnce(attempt, agents.for(url, cfg), signal);
      for (let hops = 0; !cfg.disableRedirects && REDIRECTS.has(res.statusCode ?? 0); hops++) {
        const location = res.headers.location;
        if (location === undefined) break;
        res.resume();
        if (hops === MAX_REDIRECTS) throw new Error('stopped after 10 redirects');
        const next = new URL(location, attempt.url);
        const code = res.statusCode ?? 0;
        const keepMethod = code === 307 || code === 308 || method === 'HEAD' || method === 'GET';
        const nextHeaders = { ...attempt.headers };
        if (next.host !== attempt.url.host) {
          for (const k of Object.keys(nextHeaders))
            if (SENSITIVE.includes(k.toLowerCase())) delete nextHeaders[k];
        }
        attempt = {
          url: next,
          method: keepMethod ? attempt.method : 'GET',
          body: code === 307 || code === 308 ? attempt.body : undefined,
          headers: nextHeaders,
        };
        res = await sendOnce(attempt, agents.for(next, cfg), signal);
      }
      const body = await readTail(res, cfg.outputMaxSize, signal);
      const code = res.statusCode ?? 0;
      const statusLine = res.statusMessage ? `${code} ${res.statusMessage}` : String(code);
      const output = `HTTP ${method} ${cfg.url}: ${statusLine} Output: ${body}`;
      if (code >= 200 && code <= 299) return { status: 'passing', output };
      if (code === 429) return { status: 'warning', output };
      return { status: 'critical', output };
    } catch (err) {
      return { status: 'critical', output: errorOutput(method, cfg.url, err) };
    }
  };
}
