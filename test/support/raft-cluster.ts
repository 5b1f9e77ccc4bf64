/**
 * Spawns raft-kv-server processes on distinct loopback addresses (127.0.0.1, .2, .3, ...) and talks
 * to them over HTTP: shared by the multi-process tests and the benchmark.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SERVER = new URL('./raft-kv-server.ts', import.meta.url).pathname;

export interface ClusterOptions {
  size: number;
  tickMs?: number;
  snapshotThreshold?: number;
  trailingLogs?: number;
  /** Where data dirs go; a fresh temporary dir by default. */
  dataRoot?: string;
}

export interface ServerProcess {
  id: string;
  raft: string;
  http: string;
  data: string;
  child: ChildProcess | null;
  stderr: string;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export class RaftCluster {
  readonly servers: ServerProcess[];
  private readonly opts: ClusterOptions;
  private readonly root: string;

  private constructor(root: string, opts: ClusterOptions) {
    this.root = root;
    this.opts = opts;
    // Distinct loopback addresses, one port range per run so parallel runs do not collide. Below
    // Linux's ephemeral range (32768-60999): there, any outgoing connection or port-0 bind of
    // another test may take the port between this pick and the server's bind.
    const port = 10_000 + 2 * Math.floor(Math.random() * 11_000);
    this.servers = Array.from({ length: opts.size }, (_, i) => ({
      id: `s${i + 1}`,
      raft: `127.0.0.${i + 1}:${port}`,
      http: `127.0.0.${i + 1}:${port + 1}`,
      data: join(root, `s${i + 1}`),
      child: null,
      stderr: '',
    }));
  }

  static async start(opts: ClusterOptions): Promise<RaftCluster> {
    const root = opts.dataRoot ?? (await mkdtemp(join(tmpdir(), 'meshd-raft-')));
    const c = new RaftCluster(root, opts);
    try {
      await Promise.all(c.servers.map((s) => c.startServer(s)));
    } catch (err) {
      // The ones that did start would keep the test process from exiting.
      await Promise.all(c.servers.map((s) => c.kill(s)));
      throw err;
    }
    return c;
  }

  async startServer(s: ServerProcess): Promise<void> {
    const peers = this.servers.map((p) => `${p.id}=${p.raft}`).join(',');
    const args = [
      SERVER,
      '--id',
      s.id,
      '--raft',
      s.raft,
      '--http',
      s.http,
      '--data',
      s.data,
      '--peers',
      peers,
    ];
    if (this.opts.tickMs) args.push('--tick-ms', String(this.opts.tickMs));
    if (this.opts.snapshotThreshold) args.push('--snapshot-threshold', String(this.opts.snapshotThreshold));
    if (this.opts.trailingLogs !== undefined) args.push('--trailing-logs', String(this.opts.trailingLogs));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    s.child = child;
    s.stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      s.stderr = (s.stderr + d.toString()).slice(-8192);
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes(`ready ${s.id}`)) {
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.once('exit', (code) =>
        reject(new Error(`${s.id} exited with ${code} before ready: ${s.stderr}`)),
      );
    });
  }

  kill(s: ServerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = s.child;
    s.child = null;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  async request<T = Record<string, unknown>>(
    s: ServerProcess,
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 5000,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`http://${s.http}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  /** The server that is leader according to itself and every live server that knows a leader. */
  async leader(timeoutMs = 30_000): Promise<ServerProcess> {
    return waitFor(
      'a leader',
      async () => {
        for (const s of this.servers) {
          if (!s.child) continue;
          try {
            const st = await this.request<{ role: string }>(s, 'GET', '/status', undefined, 1000);
            if (st.body.role === 'leader') return s;
          } catch {
            // Not up yet.
          }
        }
        return undefined;
      },
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => this.kill(s, 'SIGKILL')));
    if (!this.opts.dataRoot) await rm(this.root, { recursive: true, force: true });
  }
}
