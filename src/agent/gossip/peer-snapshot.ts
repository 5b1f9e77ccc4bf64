/**
 * The members an agent last knew, kept in its data dir (Serf's `local.snapshot`), so that a
 * restarted agent finds its cluster again without `-join`, as a restarted Consul agent does.
 *
 * File `<data-dir>/gossip/peers.json`: `{"version":1,"left":bool,"peers":["ip:port",...]}`,
 * rewritten durably (temp file, fsync, rename, dir fsync) at most every {@link WRITE_INTERVAL_MS} while membership
 * changes. `left` records a graceful leave: such an agent does not rejoin on restart unless
 * `rejoin_after_leave` is set. A missing or unreadable file just means "no peers".
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeFileDurably } from '../durable-file.ts';

const VERSION = 1;
const WRITE_INTERVAL_MS = 1_000;
/** Enough addresses to find the cluster again; not the whole pool of a large one. */
const MAX_PEERS = 64;

const fileSchema = z.object({
  version: z.literal(VERSION),
  left: z.boolean(),
  peers: z.array(z.string().max(300)).max(MAX_PEERS),
});

export type PeerSnapshotData = z.infer<typeof fileSchema>;

export async function readPeerSnapshot(dataDir: string, log: Logger): Promise<PeerSnapshotData | undefined> {
  const path = join(dataDir, 'gossip', 'peers.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return fileSchema.parse(JSON.parse(text));
  } catch (err) {
    log.warn({ path, err: (err as Error).message }, 'ignoring an unreadable peer snapshot');
    return undefined;
  }
}

export class PeerSnapshotWriter {
  readonly #dir: string;
  readonly #log: Logger;
  #pending: PeerSnapshotData | undefined;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #lastWritten = '';

  constructor(dataDir: string, log: Logger) {
    this.#dir = join(dataDir, 'gossip');
    this.#log = log;
  }

  /** Records the current peers; written soon (coalesced). */
  update(data: PeerSnapshotData): void {
    this.#pending = { ...data, peers: data.peers.slice(0, MAX_PEERS) };
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, WRITE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Writes what is pending now (at leave and at stop). */
  flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const data = this.#pending;
    this.#pending = undefined;
    if (!data) return this.#writing;
    const text = JSON.stringify(data);
    if (text === this.#lastWritten) return this.#writing;
    this.#writing = this.#writing.then(() => this.#write(text));
    return this.#writing;
  }

  async #write(text: string): Promise<void> {
    try {
      await writeFileDurably(join(this.#dir, 'peers.json'), text);
      this.#lastWritten = text;
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'writing the peer snapshot failed');
    }
  }
}
