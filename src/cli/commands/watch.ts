/**
 * `meshd watch -type=event [-name=<n>] [handler...]`: Consul's watch for user events. Long-polls
 * `/v1/event/list` with the last `X-Consul-Index` (a uint64, kept as a bigint); each time it
 * changes (and once at start) the event list is printed as JSON, or piped as JSON to the handler
 * (`sh -c`, stdout and stderr inherited), which runs to completion before the next poll.
 * An unreachable agent is retried with backoff; SIGINT/SIGTERM end the watch with status 0.
 */
import { spawn } from 'node:child_process';
import { type CliCommand, leaf } from '../command.ts';
import type { Query } from '../http-client.ts';

const SUPPORTED = ['event'];
const WAIT = '5m';
/** With no event yet the index is 0, which does not block: poll gently instead. */
const EMPTY_POLL_MS = 1_000;
const MAX_BACKOFF_MS = 5_000;

function runHandler(command: string, input: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { stdio: ['pipe', 'inherit', 'inherit'] });
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

export const watch: CliCommand = leaf({
  name: 'watch',
  synopsis: 'Watch for changes in the cluster',
  usage: '[options] [handler...]',
  help: `
Watches a view of the cluster and prints it as JSON, or runs the handler with it on stdin, at
start and whenever it changes. Supported types: ${SUPPORTED.join(', ')}.`,
  http: 'server',
  flags: [
    { name: 'type', kind: 'string', usage: `Type of view to watch (${SUPPORTED.join(', ')}).` },
    { name: 'name', kind: 'string', usage: 'Event name to watch (type event).' },
  ],
  async run(ctx) {
    const type = ctx.flags.string('type') ?? '';
    if (type === '') {
      ctx.err('Watch type must be specified');
      return 1;
    }
    if (!SUPPORTED.includes(type)) {
      ctx.err(`Unsupported watch type: ${type} (supported: ${SUPPORTED.join(', ')})`);
      return 1;
    }
    const handler = ctx.args.join(' ');
    const name = ctx.flags.string('name') ?? '';
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        stop.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
    let index: bigint | undefined;
    let backoff = 250;
    try {
      while (!stop.signal.aborted) {
        const query: Query = [];
        if (name) query.push(['name', name]);
        if (index !== undefined && index > 0n) query.push(['index', index.toString()], ['wait', WAIT]);
        let body: Buffer;
        let next: bigint;
        try {
          const res = await ctx.client().request('GET', '/v1/event/list', { query, signal: stop.signal });
          body = res.body;
          next = res.index ?? 0n;
          backoff = 250;
        } catch (e) {
          if (stop.signal.aborted) break;
          ctx.err(`Error querying events: ${(e as Error).message}`);
          await sleep(backoff);
          backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
          continue;
        }
        if (index === undefined || next !== index) {
          const json = JSON.stringify(JSON.parse(body.toString('utf8') || '[]'), null, 2);
          if (handler === '') ctx.out(json);
          else await runHandler(handler, `${json}\n`);
        }
        index = next;
        if (next === 0n) await sleep(EMPTY_POLL_MS);
      }
      return 0;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
});
