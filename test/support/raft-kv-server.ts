/**
 * One Raft server process with the test KV state machine, for the multi-process tests and the
 * benchmark: `node test/support/raft-kv-server.ts --id n1 --raft 127.0.0.1:7001 --http 127.0.0.1:8001
 *   --data /tmp/n1 --peers n1=127.0.0.1:7001,n2=127.0.0.2:7001,n3=127.0.0.3:7001`
 *
 * HTTP (JSON): POST /put {key,value} · GET /get?key= (linearizable) · GET /status ·
 * POST /bench {concurrency,seconds,size} runs proposers inside this process (the leader) and reports.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { createLogger } from '../../src/agent/logger.ts';
import { RaftNode } from '../../src/raft/driver.ts';
import { NotLeaderError } from '../../src/raft/errors.ts';
import { GrpcTransport } from '../../src/raft/grpc-transport.ts';
import { encodeKvCommand, type KvResult, KvStateMachine } from '../../src/raft/kv-fsm.ts';
import { LevelRaftStorage } from '../../src/raft/level-storage.ts';
import type { Configuration } from '../../src/raft/types.ts';

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    raft: { type: 'string' },
    http: { type: 'string' },
    data: { type: 'string' },
    peers: { type: 'string' },
    'tick-ms': { type: 'string', default: '100' },
    'snapshot-threshold': { type: 'string', default: '16384' },
    'trailing-logs': { type: 'string', default: '10240' },
    'log-level': { type: 'string', default: 'warn' },
  },
});
for (const k of ['id', 'raft', 'http', 'data', 'peers'] as const) {
  if (!values[k]) {
    console.error(`raft-kv-server: --${k} is required`);
    process.exit(2);
  }
}
const id = values.id!;
const logger = createLogger({ level: values['log-level'] as 'warn', base: { node: id } });
const config: Configuration = {
  servers: values
    .peers!.split(',')
    .map((p) => p.split('='))
    .map(([pid, address]) => ({ id: pid, address, suffrage: 'voter' as const })),
};
const fsm = new KvStateMachine();
const storage = await LevelRaftStorage.open(values.data!, { logger });
const transport = new GrpcTransport({ listen: values.raft!, logger });
const node = await RaftNode.start<KvResult>({
  id,
  address: values.raft!,
  storage,
  transport,
  fsm,
  logger,
  bootstrap: config,
  tickMs: Number(values['tick-ms']),
  snapshotThreshold: Number(values['snapshot-threshold']),
  // Tests that set a threshold want snapshots as soon as it is crossed.
  snapshotIntervalMs: 0,
  trailingLogs: Number(values['trailing-logs']),
});
node.on('fatal', () => process.exit(70));

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>) : {};
}

function reply(res: ServerResponse, status: number, payload: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(payload));
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0;
}

/** Proposers inside the leader: measures Raft (fsync, replication, apply), not an HTTP stack. */
async function bench(concurrency: number, seconds: number, size: number) {
  const value = 'x'.repeat(size);
  const latencies: number[] = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  let seq = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          await node.propose(encodeKvCommand({ op: 'put', key: `bench/${w}/${seq++ % 1000}`, value }));
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    proposals: latencies.length,
    errors,
    perSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

const http = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  void (async () => {
    try {
      if (req.method === 'POST' && url.pathname === '/put') {
        const b = await body(req);
        const r = await node.propose(
          encodeKvCommand({ op: 'put', key: String(b.key), value: String(b.value) }),
        );
        reply(res, 200, { index: r.index });
      } else if (req.method === 'GET' && url.pathname === '/get') {
        await node.readIndex();
        reply(res, 200, { value: fsm.get(url.searchParams.get('key') ?? '') });
      } else if (req.method === 'GET' && url.pathname === '/status') {
        reply(res, 200, node.status());
      } else if (req.method === 'POST' && url.pathname === '/bench') {
        const b = await body(req);
        reply(
          res,
          200,
          await bench(Number(b.concurrency ?? 1), Number(b.seconds ?? 10), Number(b.size ?? 100)),
        );
      } else if (req.method === 'POST' && url.pathname === '/transfer') {
        reply(res, 200, { leader: await node.transferLeadership() });
      } else {
        reply(res, 404, { error: 'not found' });
      }
    } catch (err) {
      if (err instanceof NotLeaderError) reply(res, 421, { error: err.message, leader: err.leaderId });
      else reply(res, 503, { error: (err as Error).message, name: (err as Error).name });
    }
  })();
});
const [host, port] = values.http!.split(':');
http.listen(Number(port), host, () => {
  process.stdout.write(`ready ${id}\n`);
});

async function shutdown() {
  http.close();
  await node.stop();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
