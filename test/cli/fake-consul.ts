/**
 * Test support for the CLI: a fake Consul agent on 127.0.0.1 (records every request, answers with
 * canned Consul-shaped responses or a small in-memory KV store) and a runner of the real CLI as a
 * child process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Recorded {
  method: string;
  /** Path as sent, still percent-encoded. */
  path: string;
  /** Raw query string without `?`. */
  query: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** A Buffer or string is sent as is; anything else as JSON. */
  body?: unknown;
}

export type Handler = (req: Recorded) => Reply | Promise<Reply>;

interface KVEntry {
  value: Buffer;
  flags: bigint;
  createIndex: number;
  modifyIndex: number;
  lockIndex: number;
  session?: string;
}

export class FakeConsul {
  readonly requests: Recorded[] = [];
  readonly kv = new Map<string, KVEntry>();
  private readonly routes = new Map<string, Handler>();
  private readonly server: http.Server;
  private index = 10;
  private kvEnabled = false;
  addr = '';

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const url = req.url ?? '/';
        const q = url.indexOf('?');
        const rec: Recorded = {
          method: req.method ?? '',
          path: q === -1 ? url : url.slice(0, q),
          query: q === -1 ? '' : url.slice(q + 1),
          headers: req.headers,
          body: Buffer.concat(chunks),
        };
        this.requests.push(rec);
        let reply: Reply;
        try {
          reply = await this.answer(rec);
        } catch (e) {
          reply = { status: 500, body: String(e) };
        }
        const body =
          reply.body === undefined
            ? Buffer.alloc(0)
            : Buffer.isBuffer(reply.body)
              ? reply.body
              : typeof reply.body === 'string'
                ? Buffer.from(reply.body)
                : Buffer.from(JSON.stringify(reply.body));
        res.writeHead(reply.status ?? 200, { 'Content-Length': body.length, ...reply.headers });
        res.end(body);
      });
    });
  }

  /** Listens on 127.0.0.1 and a free port, or on the given unix socket (then `addr` is `unix://...`). */
  static async start(socketPath?: string): Promise<FakeConsul> {
    const fake = new FakeConsul();
    if (socketPath) {
      await new Promise<void>((resolve) => fake.server.listen(socketPath, resolve));
      fake.addr = `unix://${socketPath}`;
    } else {
      await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
      fake.addr = `127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    }
    return fake;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Answers `METHOD /path` (path as sent, percent-encoded) with a fixed reply or a handler. */
  on(method: string, path: string, reply: Reply | Handler): this {
    this.routes.set(`${method} ${path}`, typeof reply === 'function' ? reply : () => reply);
    return this;
  }

  /** Serves /v1/kv/ from an in-memory store, with Consul's recurse/keys/separator/cas/flags semantics. */
  withKV(entries: Record<string, string | { value: string; flags?: bigint; session?: string }> = {}): this {
    this.kvEnabled = true;
    for (const [key, v] of Object.entries(entries)) {
      const e = typeof v === 'string' ? { value: v } : v;
      this.index++;
      this.kv.set(key, {
        value: Buffer.from(e.value),
        flags: e.flags ?? 0n,
        createIndex: this.index,
        modifyIndex: this.index,
        lockIndex: 0,
        session: e.session,
      });
    }
    return this;
  }

  private async answer(req: Recorded): Promise<Reply> {
    const route = this.routes.get(`${req.method} ${req.path}`);
    if (route) return route(req);
    if (this.kvEnabled && req.path.startsWith('/v1/kv/')) return this.kvAnswer(req);
    return { status: 404, body: `no route for ${req.method} ${req.path}` };
  }

  private kvJson(key: string, e: KVEntry): string {
    const value = e.value.length ? `"${e.value.toString('base64')}"` : 'null';
    const session = e.session ? `,"Session":${JSON.stringify(e.session)}` : '';
    return `{"LockIndex":${e.lockIndex},"Key":${JSON.stringify(key)},"Flags":${e.flags},"Value":${value},"CreateIndex":${e.createIndex},"ModifyIndex":${e.modifyIndex}${session}}`;
  }

  private kvAnswer(req: Recorded): Reply {
    const key = decodeURIComponent(req.path.slice('/v1/kv/'.length));
    const q = new URLSearchParams(req.query);
    const headers = { 'X-Consul-Index': String(this.index) };
    const keys = [...this.kv.keys()].filter((k) => k.startsWith(key)).sort();
    if (req.method === 'GET') {
      if (q.has('keys')) {
        const sep = q.get('separator') ?? '';
        const out = new Set<string>();
        for (const k of keys) {
          const at = sep ? k.indexOf(sep, key.length) : -1;
          out.add(at === -1 ? k : k.slice(0, at + sep.length));
        }
        return out.size ? { headers, body: [...out] } : { status: 404, headers };
      }
      const hits = q.has('recurse') ? keys : keys.filter((k) => k === key);
      if (hits.length === 0) return { status: 404, headers };
      return { headers, body: `[${hits.map((k) => this.kvJson(k, this.kv.get(k)!)).join(',')}]` };
    }
    if (req.method === 'PUT') {
      const existing = this.kv.get(key);
      if (q.has('cas')) {
        const cas = Number(q.get('cas'));
        if (cas === 0 ? existing !== undefined : existing?.modifyIndex !== cas)
          return { headers, body: 'false' };
      }
      let session = existing?.session;
      let lockIndex = existing?.lockIndex ?? 0;
      if (q.has('acquire')) {
        if (existing?.session && existing.session !== q.get('acquire')) return { headers, body: 'false' };
        if (existing?.session !== q.get('acquire')) lockIndex++;
        session = q.get('acquire') ?? undefined;
      }
      if (q.has('release')) {
        if (existing?.session !== q.get('release')) return { headers, body: 'false' };
        session = undefined;
      }
      this.index++;
      this.kv.set(key, {
        value: req.body,
        flags: BigInt(q.get('flags') ?? '0'),
        createIndex: existing?.createIndex ?? this.index,
        modifyIndex: this.index,
        lockIndex,
        session,
      });
      return { headers: { 'X-Consul-Index': String(this.index) }, body: 'true' };
    }
    if (req.method === 'DELETE') {
      if (q.has('cas')) {
        const cas = Number(q.get('cas'));
        if (cas === 0 || this.kv.get(key)?.modifyIndex !== cas) return { headers, body: 'false' };
      }
      for (const k of q.has('recurse') ? keys : [key]) this.kv.delete(k);
      this.index++;
      return { headers: { 'X-Consul-Index': String(this.index) }, body: 'true' };
    }
    return { status: 405, body: 'method not allowed' };
  }
}

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'meshd-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An address where nothing listens: a port just released. */
export async function deadAddr(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

export const MAIN = new URL('../../bin/meshd.js', import.meta.url).pathname;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export interface RunOptions {
  /** Sets MESHD_HTTP_ADDR. */
  addr?: string;
  env?: Record<string, string>;
  stdin?: string | Buffer;
  cwd?: string;
}

/** Runs `node bin/meshd.js ...args` with a clean environment (no inherited CONSUL_* / MESHD_*). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('CONSUL_') && !k.startsWith('MESHD_')) env[k] = v;
  }
  if (opts.addr) env.MESHD_HTTP_ADDR = opts.addr;
  Object.assign(env, opts.env);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env, cwd: opts.cwd, stdio: 'pipe' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        stdout: stdoutBytes.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        stdoutBytes,
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Runs several CLI invocations, a few at a time (each is a Node process). */
export async function runMany(invocations: Array<[string[], RunOptions]>, limit = 4): Promise<CliResult[]> {
  const results: CliResult[] = new Array(invocations.length);
  let next = 0;
  const worker = async () => {
    while (next < invocations.length) {
      const i = next++;
      results[i] = await runCli(...invocations[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, invocations.length) }, worker));
  return results;
}
