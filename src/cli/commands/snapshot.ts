/** `meshd snapshot save|restore`: point-in-time snapshots of the servers' state through /v1/snapshot. */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { type CliCommand, type Context, group, leaf } from '../command.ts';
import { indexOf } from '../http-client.ts';

function fileArg(ctx: Context): string | undefined {
  if (ctx.args.length === 0) {
    ctx.err('Missing FILE argument');
    return undefined;
  }
  if (ctx.args.length > 1) {
    ctx.err(`Too many arguments (expected 1, got ${ctx.args.length})`);
    return undefined;
  }
  return ctx.args[0];
}

/** Checks a saved snapshot: it must not be empty, and a gzip archive (Consul's format) must decompress whole. */
export async function verifySnapshot(path: string): Promise<void> {
  const { size } = await stat(path);
  if (size === 0) throw new Error('snapshot is empty');
  const head = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    createReadStream(path, { start: 0, end: 1 })
      .on('data', (c) => chunks.push(c as Buffer))
      .on('end', () => resolve(Buffer.concat(chunks)))
      .on('error', reject);
  });
  if (head[0] === 0x1f && head[1] === 0x8b) {
    // The inflater sits inside the pipeline, with a sink after it, so every error it raises
    // (a truncated archive errors at its final flush) rejects the pipeline instead of escaping.
    const sink = new Writable({ write: (_chunk, _enc, done) => done() });
    await pipeline(createReadStream(path), createGunzip(), sink);
  }
}

const save = leaf({
  name: 'snapshot save',
  synopsis: 'Saves snapshot of server state',
  usage: '[options] FILE',
  help: `
Retrieves an atomic, point-in-time snapshot of the state of the servers, which
includes key/value entries, service catalog, prepared queries, sessions, and
ACLs, and saves it to FILE.

    $ meshd snapshot save backup.snap

The snapshot is written to FILE.unverified first, checked, then renamed to FILE.
With -stale, any server may answer, even when the cluster has no leader.`,
  http: 'server',
  async run(ctx) {
    const file = fileArg(ctx);
    if (file === undefined) return 1;
    const unverified = `${file}.unverified`;
    let index: bigint;
    try {
      const res = await ctx.client().open('GET', '/v1/snapshot', { stale: true });
      index = indexOf(res) ?? 0n;
      try {
        await pipeline(res, createWriteStream(unverified));
      } catch (e) {
        await rm(unverified, { force: true });
        ctx.err(`Error writing unverified snapshot file: ${(e as Error).message}`);
        return 1;
      }
    } catch (e) {
      ctx.err(`Error saving snapshot: ${(e as Error).message}`);
      return 1;
    }
    try {
      await verifySnapshot(unverified);
    } catch (e) {
      await rm(unverified, { force: true });
      ctx.err(`Error verifying snapshot file: ${(e as Error).message}`);
      return 1;
    }
    try {
      await rename(unverified, file);
    } catch (e) {
      ctx.err(`Error renaming unverified snapshot file: ${(e as Error).message}`);
      return 1;
    }
    ctx.out(`Saved and verified snapshot to index ${index}`);
    return 0;
  },
});

const restore = leaf({
  name: 'snapshot restore',
  synopsis: 'Restores snapshot of server state',
  usage: '[options] FILE',
  help: `
Restores an atomic, point-in-time snapshot of the state of the servers, which
includes key/value entries, service catalog, prepared queries, sessions, and
ACLs. The snapshot is read from FILE.

    $ meshd snapshot restore backup.snap

Restores involve a potentially dangerous low-level Raft operation that is not
designed to handle server failures during a restore. This command is primarily
intended to be used when recovering from a disaster, restoring into a fresh
cluster of servers.`,
  http: 'server',
  async run(ctx) {
    const file = fileArg(ctx);
    if (file === undefined) return 1;
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error(`${file} is not a file`);
      size = st.size;
    } catch (e) {
      ctx.err(`Error opening snapshot file: ${(e as Error).message}`);
      return 1;
    }
    try {
      await ctx
        .client()
        .request('PUT', '/v1/snapshot', { body: createReadStream(file), contentLength: size });
    } catch (e) {
      ctx.err(`Error restoring snapshot: ${(e as Error).message}`);
      return 1;
    }
    ctx.out('Restored snapshot');
    return 0;
  },
});

export const snapshot: CliCommand = group({
  name: 'snapshot',
  synopsis: 'Saves and restores snapshots of server state',
  help: `
Saves and restores point-in-time snapshots of the state of the servers, for
disaster recovery.

    $ meshd snapshot save backup.snap
    $ meshd snapshot restore backup.snap`,
  subcommands: { restore, save },
});
