/**
 * The dependency bundle: what `npm ci` prepares (scripts/vendor-bundle.ts) and how `bin/meshd.js`
 * uses it.
 *
 * Why it exists: our sources run unbuilt, but our dependencies are ~1,200 small ES modules (libp2p
 * alone is ~600), and Node resolves, reads and links each one on its own, synchronously: ~600 ms of
 * a dev agent's start. Pre-bundled into a few dozen files by esbuild at install time, the same code
 * loads in ~150 ms. Our own sources are never bundled: stack traces keep their real lines.
 *
 * Safety rules:
 * - The bundle is used only when its manifest matches this format version and the installed
 *   dependency tree (a hash of npm's `node_modules/.package-lock.json`); otherwise every import
 *   resolves as usual, only slower.
 * - Every package our sources import at run time is a bundle entry, so that no package is loaded
 *   twice (once inside the bundle, once from node_modules), which would break `instanceof` and
 *   module-level state. A source importing a package that the bundle does not know (the bundle is
 *   older than the sources) gets a one-time warning naming it.
 */

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isBuiltin, registerHooks } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The project root (this file is src/cli/vendor.ts). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where the bundle lives: under node_modules, so `npm ci` (which empties it) always rebuilds it. */
export const VENDOR_DIR = join(PROJECT_ROOT, 'node_modules', '.cache', 'meshd-vendor');

/**
 * Bumped whenever the layout of the bundle or of the manifest changes, or what the bundle holds
 * for the same dependencies (2: node:http through require; 3: mime-db cut to BUNDLED_MIME_TYPES).
 */
export const VENDOR_FORMAT_VERSION = 3;

/**
 * The media types of mime-db (~2,500) that the bundle keeps. koa loads two copies of mime-types
 * (its own and accepts'), and each turns the whole table into objects at load time: 1.9 MiB of
 * every agent's RSS, for types meshd never sends. These are the ones it sends: what the sources set
 * as `ctx.type`, and what koa picks for a body by its kind (JSON, HTML or text, bytes).
 * test/cli/vendor.test.ts checks both, and that koa labels them as with the whole table.
 */
export const BUNDLED_MIME_TYPES: readonly string[] = [
  'application/json',
  'application/octet-stream',
  'application/gzip',
  'application/javascript',
  'text/javascript',
  'text/plain',
  'text/html',
  'text/css',
];

/**
 * Packages that stay unbundled: `level` loads a native addon found relative to its own files, and
 * `pino` starts worker threads from its own files (pretty logging). Neither is large.
 */
export const VENDOR_EXTERNALS: readonly string[] = ['level', 'pino'];

export interface VendorManifest {
  version: number;
  /** Hash of the installed dependency tree the bundle was built from; see `installedTreeHash`. */
  tree: string;
  /** Bare specifier → bundle file name (relative to VENDOR_DIR). */
  entries: Record<string, string>;
}

/** A hash of npm's record of what is installed; it changes with any install, update or removal. */
export function installedTreeHash(root: string = PROJECT_ROOT): string | undefined {
  try {
    const lock = readFileSync(join(root, 'node_modules', '.package-lock.json'));
    return createHash('sha256').update(lock).digest('hex');
  } catch {
    return undefined;
  }
}

/** The package a bare specifier names: `@scope/pkg/sub` → `@scope/pkg`, `pkg/sub` → `pkg`. */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Whether a specifier names a package (not a relative path, absolute path, URL or builtin). */
export function isBareSpecifier(specifier: string): boolean {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('#')) return false;
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier)) return false; // node:, file:, data:
  return !isBuiltin(specifier);
}

// Static imports and re-exports (also spread over lines), side-effect imports, dynamic imports with
// a literal. `import type` and `export type` are erased by type stripping and load nothing.
const STATIC_IMPORT = /(?:^|[;}\n])\s*(import|export)\s+(type\s+)?(?:[^;'"`]*?\sfrom\s*)?['"]([^'"\n]+)['"]/g;
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g;

/** The bare specifiers a module's source loads at run time. */
export function runtimeBareImports(source: string): Set<string> {
  const found = new Set<string>();
  // Comment lines (`//`, and the `/*`, ` *` lines of block comments) may quote imports as examples.
  source = source.replace(/^\s*(?:\/\/|\/\*|\*).*$/gm, '');
  for (const m of source.matchAll(STATIC_IMPORT)) {
    if (m[2] === undefined && isBareSpecifier(m[3])) found.add(m[3]);
  }
  for (const m of source.matchAll(DYNAMIC_IMPORT)) {
    if (isBareSpecifier(m[1])) found.add(m[1]);
  }
  return found;
}

/** Every `.ts` file under a directory, recursively. */
export function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(path);
  }
  return files;
}

/** The bare specifiers that the sources under `srcDir` load at run time, sorted. */
export function sourceBareImports(srcDir: string = join(PROJECT_ROOT, 'src')): string[] {
  const all = new Set<string>();
  for (const file of sourceFiles(srcDir)) {
    for (const s of runtimeBareImports(readFileSync(file, 'utf8'))) all.add(s);
  }
  return [...all].sort();
}

/** Why a manifest cannot be used, or undefined when it can. */
export function manifestProblem(manifest: unknown, treeHash: string | undefined): string | undefined {
  const m = manifest as Partial<VendorManifest> | null;
  if (m === null || typeof m !== 'object') return 'manifest is not an object';
  if (m.version !== VENDOR_FORMAT_VERSION)
    return `format version ${String(m.version)}, expected ${VENDOR_FORMAT_VERSION}`;
  if (treeHash === undefined) return 'node_modules/.package-lock.json is missing';
  if (m.tree !== treeHash) return 'dependencies changed since it was built';
  if (m.entries === null || typeof m.entries !== 'object') return 'manifest has no entries';
  return undefined;
}

export interface VendorResolverOptions {
  manifest: VendorManifest;
  dir: string;
  /** Modules under this URL prefix are ours: an unknown package imported from them is reported. */
  sourcePrefix: string;
  onUnknown: (specifier: string, parentURL: string) => void;
}

/** Maps the bundle's specifiers to its files; anything else resolves as usual. */
export function vendorResolver(
  options: VendorResolverOptions,
): (specifier: string, parentURL?: string) => string | undefined {
  const urls = new Map<string, string>();
  for (const [specifier, file] of Object.entries(options.manifest.entries)) {
    urls.set(specifier, pathToFileURL(join(options.dir, file)).href);
  }
  const reported = new Set<string>();
  return (specifier, parentURL) => {
    const url = urls.get(specifier);
    if (url !== undefined) return url;
    if (
      parentURL?.startsWith(options.sourcePrefix) &&
      isBareSpecifier(specifier) &&
      !VENDOR_EXTERNALS.includes(packageOf(specifier)) &&
      !reported.has(specifier)
    ) {
      reported.add(specifier);
      options.onUnknown(specifier, parentURL);
    }
    return undefined;
  };
}

/**
 * Called by bin/meshd.js before anything else loads. Returns whether the bundle is in use. With
 * MESHD_VENDOR_DEBUG set, says on stderr whether it is and why not. Otherwise a missing bundle is
 * silent (a normal state, e.g. after `npm ci --ignore-scripts`) and a stale one is one line on
 * stderr. MESHD_VENDOR=0 turns it off.
 */
export function installVendorHook(env: NodeJS.ProcessEnv = process.env): boolean {
  const debug = (why: string): false => {
    if (env.MESHD_VENDOR_DEBUG) process.stderr.write(`meshd: dependency bundle not used: ${why}\n`);
    return false;
  };
  if (env.MESHD_VENDOR === '0') return debug('MESHD_VENDOR=0');
  const manifestPath = join(VENDOR_DIR, 'manifest.json');
  if (!existsSync(manifestPath)) return debug(`${manifestPath} does not exist (npm run vendor builds it)`);
  let manifest: unknown;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    return debug(`${manifestPath}: ${(err as Error).message}`);
  }
  const problem = manifestProblem(manifest, installedTreeHash());
  if (problem !== undefined) {
    // A bundle that exists but no longer matches (e.g. after `npm install <pkg>`, which does not
    // run `prepare`) is worth a word: the operator gets a slower start until it is rebuilt.
    if (!env.MESHD_VENDOR_DEBUG)
      process.stderr.write(
        `meshd: dependency bundle not used (${problem}); run \`npm run vendor\` to rebuild it\n`,
      );
    return debug(`${problem} (npm run vendor rebuilds it)`);
  }
  const resolveVendor = vendorResolver({
    manifest: manifest as VendorManifest,
    dir: VENDOR_DIR,
    sourcePrefix: pathToFileURL(join(PROJECT_ROOT, 'src')).href,
    onUnknown: (specifier, parentURL) =>
      process.emitWarning(
        `${fileURLToPath(parentURL)} imports '${specifier}', which the dependency bundle does not have; ` +
          'run `npm run vendor` (until then it may load twice)',
        'MeshdVendorWarning',
      ),
  });
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const url = resolveVendor(specifier, context.parentURL);
      if (url !== undefined) return { url, format: 'module', shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
  if (env.MESHD_VENDOR_DEBUG) {
    const count = Object.keys((manifest as VendorManifest).entries).length;
    process.stderr.write(`meshd: dependency bundle in use: ${count} packages from ${VENDOR_DIR}\n`);
  }
  return true;
}
