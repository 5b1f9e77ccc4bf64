// Our TypeScript sources, stripped of their types once at install time (scripts/strip-sources.ts,
// run by `npm ci` and `npm run vendor`), and served from that cache instead of being stripped by
// Node at every start.
//
// Why: Node strips types with amaro, a WebAssembly build of SWC that it loads on the first
// TypeScript module of a process and keeps: ~17 MiB of RSS per process (a one-line .ts file takes
// `node` from 42 to 60 MiB), whatever the compile cache holds. For an agent that runs on every host
// that is a sixth of its memory. Served stripped, no module of ours reaches Node's stripping, so
// amaro never loads.
//
// Stripping only blanks out types, so every line and column stays where it was, and each module
// keeps its own .ts URL: stack traces and import.meta.url are unchanged. A source whose SHA-256 is
// not the one it was stripped from (edited since `npm ci`) is left to Node, as is everything when
// the cache is missing or of another format.
//
// JavaScript, like meshd.js, because it must run before the first TypeScript module loads.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where scripts/strip-sources.ts writes the cache, and the manifest format it writes. */
export const SOURCE_CACHE_DIR = join('node_modules', '.cache', 'meshd-src');
export const SOURCE_CACHE_VERSION = 1;

/**
 * The stripped source for a module URL of ours, or undefined when the cache cannot serve it.
 * `manifest.files` maps a path relative to `root` ("src/cli/main.ts") to its source's SHA-256.
 */
export function cachedSource(root, manifest, url) {
  const rootUrl = pathToFileURL(root).href.replace(/\/?$/, '/');
  if (!url.startsWith(`${rootUrl}src/`) || !url.endsWith('.ts')) return undefined;
  const rel = decodeURIComponent(url.slice(rootUrl.length));
  const want = manifest.files[rel];
  if (typeof want !== 'string') return undefined;
  let source;
  try {
    source = readFileSync(fileURLToPath(url));
  } catch {
    return undefined;
  }
  if (createHash('sha256').update(source).digest('hex') !== want) return undefined;
  try {
    return readFileSync(join(root, SOURCE_CACHE_DIR, rel.replace(/\.ts$/, '.js')), 'utf8');
  } catch {
    return undefined;
  }
}

/** Serves our modules from the cache under `root`; returns how many files it holds (0: not in use). */
export function installSourceCache(root, env = process.env) {
  if (env.MESHD_SOURCE_CACHE === '0') return 0;
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(root, SOURCE_CACHE_DIR, 'manifest.json'), 'utf8'));
  } catch {
    return 0;
  }
  if (manifest?.version !== SOURCE_CACHE_VERSION || typeof manifest.files !== 'object') return 0;
  registerHooks({
    load(url, context, nextLoad) {
      const source = cachedSource(root, manifest, url);
      if (source === undefined) return nextLoad(url, context);
      return { format: 'module', source, shortCircuit: true };
    },
  });
  return Object.keys(manifest.files).length;
}
