/**
 * Replacing a small file so that a crash (kill -9, power loss) leaves either its old content or the
 * new one, never a mix: write a temp file beside it, fsync it, rename it over the old one, fsync
 * the directory (so the rename itself is on disk before the caller says "saved"). A failed write
 * (disk full) removes its temp file and leaves the old file as it was.
 */

import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeFileDurably(path: string, text: string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  const f = await open(tmp, 'w', mode);
  try {
    await f.writeFile(text);
    await f.sync();
  } catch (err) {
    await f.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await f.close();
  await rename(tmp, path);
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
