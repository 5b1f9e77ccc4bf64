/**
 * Runs real `meshd agent` processes for multi-process tests: free ports picked per agent, logs
 * kept for failure messages, readiness and conditions awaited with deadlines (never fixed sleeps).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../bin/meshd.js', import.meta.url));

/**
 * `n` distinct ports free on `host` right now, none handed out before by this process. They are
 * held until all are picked: freeing one before asking for the next lets the kernel hand out the
 * same port twice.
 */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const held: ReturnType<typeof createServer>[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < n) {
      const s = await new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, host, () => resolve(server));
      });
      held.push(s);
      const port = (s.address() as { port: number }).port;
      // Handed to an earlier caller of this process, which may not have bound it yet: skip it
      // (and keep holding it, so the kernel offers another).
      if (!handedOut.has(`${host}:${port}`)) ports.push(port);
    }
  } finally {
    await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))));
  }
  for (const port of ports) handedOut.add(`${host}:${port}`);
  return ports;
}

/**
 * Every port {@link freePorts} handed out in this process. Tests of one file run at once, and the
 * kernel may offer a port it just handed one test to the next before the first has bound it: two
 * in-process Raft clusters then got one address and talked to each other.
 */
const handedOut = new Set<string>();

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface AgentProcess {
  child: ChildProcess;
  http: string;
  serverPort: number;
  /** Gossip "host:port", what `-join`/`-retry-join` of other agents name. */
  gossip: string;
  logs: () => string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartAgentOptions {
  host?: string;
  env?: NodeJS.ProcessEnv;
  httpPort?: number;
  serverPort?: number;
  serfPort?: number;
}

export async function startAgent(args: string[], opts: StartAgentOptions = {}): Promise<AgentProcess> {
  const host = opts.host ?? '127.0.0.1';
  const [pickedHttp, pickedServer, pickedSerf] = await freePorts(3, host);
  const httpPort = opts.httpPort ?? pickedHttp;
  const serverPort = opts.serverPort ?? pickedServer;
  const serfPort = opts.serfPort ?? pickedSerf;
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'agent',
      `-client=${host}`,
      `-bind=${host}`,
      `-advertise=${host}`,
      `-http-port=${httpPort}`,
      `-server-port=${serverPort}`,
      `-serf-lan-port=${serfPort}`,
      '-dns-port=-1',
      '-grpc-port=-1',
      '-log-level=info',
      '-log-json',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const http = `http://${host}:${httpPort}`;
  return {
    child,
    http,
    serverPort,
    gossip: `${host}:${serfPort}`,
    logs: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Waits until the agent answers HTTP and knows a leader. */
export async function waitLeader(a: AgentProcess, timeoutMs = 20_000): Promise<string> {
  return waitFor(
    `a leader via ${a.http}`,
    async () => {
      if (a.child.exitCode !== null)
        throw new Error(`agent exited ${a.child.exitCode}: ${a.logs().slice(-2000)}`);
      const r = await fetch(`${a.http}/v1/status/leader`);
      const leader = (await r.json()) as string;
      return leader !== '' ? leader : undefined;
    },
    timeoutMs,
  );
}

/** A port free on `host` right now (use {@link freePorts} when picking several). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return (await freePorts(1, host))[0];
}
