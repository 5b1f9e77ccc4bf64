/**
 * Builds the stripped-source cache that bin/source-cache.js serves (see there for why): every
 * `src/**\/*.ts` with its types blanked out by Node's own stripper, and a manifest of the SHA-256
 * of each source it was made from. Run by `npm ci` / `npm install` (the `prepare` script) and
 * `npm run vendor`. Built beside the live cache and swapped in, so a running agent never sees half
 * of one.
 */

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { SOURCE_CACHE_DIR, SOURCE_CACHE_VERSION } from '../bin/source-cache.js';
import { PROJECT_ROOT, sourceFiles } from '../src/cli/vendor.ts';

/** Strips every `.ts` under `root/src` into `root/node_modules/.cache/meshd-src`; returns how many. */
export function buildSourceCache(root: string): number {
  const live = join(root, SOURCE_CACHE_DIR);
  const staging = `${live}.staging`;
  rmSync(staging, { recursive: true, force: true });
  const files: Record<string, string> = {};
  for (const path of sourceFiles(join(root, 'src'))) {
    const rel = relative(root, path).split('\\').join('/');
    const source = readFileSync(path, 'utf8');
    const out = join(staging, rel.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, stripTypeScriptTypes(source, { mode: 'strip' }));
    files[rel] = createHash('sha256').update(source).digest('hex');
  }
  writeFileSync(
    join(staging, 'manifest.json'),
    `${JSON.stringify({ version: SOURCE_CACHE_VERSION, files }, null, 2)}\n`,
  );
  rmSync(live, { recursive: true, force: true });
  mkdirSync(dirname(live), { recursive: true });
  renameSync(staging, live);
  return Object.keys(files).length;
}

if (import.meta.main) {
  const started = performance.now();
  const n = buildSourceCache(PROJECT_ROOT);
  console.error(`meshd sources: ${n} modules stripped in ${Math.round(performance.now() - started)} ms`);
}
