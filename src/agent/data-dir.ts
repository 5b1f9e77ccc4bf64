/**
 * The agent's data dir: an exclusive lock (a second agent on the same dir refuses to start), the
 * node ID kept across restarts, and the `-pid-file`.
 */

import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<dir>/meshd.lock`, holding this process's PID. A lock left by a process that no longer
 * runs (kill -9, power loss) is taken over; one held by a live process is refused.
 * @returns a function that releases the lock.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'meshd.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.sync();
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new DataDirLockedError(`data dir ${dir} is in use by another meshd agent (pid ${pid})`);
      }
      await rm(path, { force: true });
    }
  }
  throw new DataDirLockedError(`could not lock data dir ${dir}`);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The node ID: the configured one, else the one saved in `<dir>/node-id`, else a new random UUID
 * saved there (Consul keeps it in the same file name).
 */
export async function resolveNodeId(
  dir: string | undefined,
  configured: string | undefined,
): Promise<string> {
  if (configured) return configured.toLowerCase();
  if (!dir) return randomUUID();
  const path = join(dir, 'node-id');
  const saved = (await readFile(path, 'utf8').catch(() => '')).trim().toLowerCase();
  if (UUID.test(saved)) return saved;
  const id = randomUUID();
  const fh = await open(path, 'w', 0o600);
  await fh.writeFile(id);
  await fh.sync();
  await fh.close();
  return id;
}

export async function writePidFile(path: string): Promise<() => Promise<void>> {
  await writeFile(path, `${process.pid}\n`, { mode: 0o644 });
  return async () => {
    await rm(path, { force: true });
  };
}
