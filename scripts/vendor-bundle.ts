/**
 * Builds the dependency bundle (see src/cli/vendor.ts for why): `npm run vendor`, and `npm ci` /
 * `npm install` through the `prepare` script.
 *
 * One esbuild entry per package our sources import, with code splitting so that packages shared
 * between entries (libp2p's many small ones) exist once. Each entry is a generated facade that
 * re-exports the package's names as Node itself sees them: for a CommonJS package esbuild alone
 * would offer only a default export, where Node offers named ones too.
 *
 * Fails (exit 1) when esbuild reports an error: a broken bundle must not pass silently. Without
 * esbuild (an install without it), says so and exits 0: meshd runs unbundled, only slower to start.
 */

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  BUNDLED_MIME_TYPES,
  installedTreeHash,
  PROJECT_ROOT,
  packageOf,
  sourceBareImports,
  VENDOR_DIR,
  VENDOR_EXTERNALS,
  VENDOR_FORMAT_VERSION,
  type VendorManifest,
} from '../src/cli/vendor.ts';

type Esbuild = typeof import('esbuild');

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

async function facadeSource(specifier: string): Promise<string> {
  const namespace = (await import(specifier)) as Record<string, unknown>;
  const names = Object.keys(namespace).filter((n) => n !== 'default' && IDENTIFIER.test(n));
  const lines = [`export { ${names.join(', ')} } from '${specifier}';`];
  if ('default' in namespace) lines.push(`export { default } from '${specifier}';`);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  let esbuild: Esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    console.error('meshd vendor: esbuild is not installed; meshd will run unbundled (slower start-up)');
    return 0;
  }
  const tree = installedTreeHash();
  if (tree === undefined) {
    console.error('meshd vendor: node_modules/.package-lock.json is missing; run npm ci first');
    return 1;
  }
  const started = performance.now();
  const specifiers = sourceBareImports().filter((s) => !VENDOR_EXTERNALS.includes(packageOf(s)));

  // Built beside the live bundle and swapped in at the end, so a running agent never sees half a
  // bundle and a failed build leaves no manifest behind.
  const staging = `${VENDOR_DIR}.staging`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, 'facades'), { recursive: true });
  const entryPoints: Record<string, string> = {};
  const entries: Record<string, string> = {};
  for (const [i, specifier] of specifiers.entries()) {
    const name = `entry-${i}`;
    const facade = join(staging, 'facades', `${name}.mjs`);
    writeFileSync(facade, await facadeSource(specifier));
    entryPoints[name] = facade;
    entries[specifier] = `${name}.js`;
  }

  const result = await esbuild.build({
    entryPoints,
    outdir: staging,
    absWorkingDir: PROJECT_ROOT,
    nodePaths: [join(PROJECT_ROOT, 'node_modules')],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    external: [...VENDOR_EXTERNALS],
    // CommonJS code inside an ES module bundle calls require() for Node's builtins.
    banner: {
      js: "import { createRequire as __meshdCreateRequire } from 'node:module';\nconst require = __meshdCreateRequire(import.meta.url);",
    },
    logLevel: 'warning',
    metafile: true,
    // V8 keeps every module's source text for lazy compilation: ~5 MiB of heap per agent for the
    // unminified bundle. Whitespace and syntax minification take ~4.5 MiB off each agent's RSS;
    // identifiers stay, so stack traces through dependencies keep their function names.
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'eof',
    plugins: [httpThroughRequire(), mimeDbSubset()],
  });
  rmSync(join(staging, 'facades'), { recursive: true });
  const manifest: VendorManifest = { version: VENDOR_FORMAT_VERSION, tree, entries };
  writeFileSync(join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  rmSync(VENDOR_DIR, { recursive: true, force: true });
  renameSync(staging, VENDOR_DIR);

  const files = Object.keys(result.metafile.outputs).length;
  const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
  const inputs = Object.keys(result.metafile.inputs).length;
  console.error(
    `meshd vendor: ${specifiers.length} packages (${inputs} modules) → ${files} files, ` +
      `${(bytes / 2 ** 20).toFixed(1)} MiB in ${Math.round(performance.now() - started)} ms`,
  );
  return 0;
}

/** Every copy of mime-db's table, cut down to the types meshd sends (BUNDLED_MIME_TYPES, why there). */
function mimeDbSubset(): import('esbuild').Plugin {
  return {
    name: 'meshd-mime-db-subset',
    setup(build) {
      build.onLoad({ filter: /[\\/]mime-db[\\/]db\.json$/ }, (args) => {
        const db = JSON.parse(readFileSync(args.path, 'utf8')) as Record<string, unknown>;
        const missing = BUNDLED_MIME_TYPES.filter((type) => !(type in db));
        if (missing.length > 0) {
          return { errors: [{ text: `mime-db at ${args.path} lacks ${missing.join(', ')}` }] };
        }
        const kept = Object.fromEntries(BUNDLED_MIME_TYPES.map((type) => [type, db[type]]));
        return { contents: JSON.stringify(kept), loader: 'json' };
      });
    },
  };
}

/** node:http's exports that load undici when read (Node 24): never re-exported. */
const UNDICI_GETTERS = new Set(['WebSocket', 'CloseEvent', 'MessageEvent']);

/**
 * Bundled ES modules get `node:http` through `require`, not an ES import: Node's ESM facade of a
 * builtin reads every export, and node:http's lazy WebSocket/CloseEvent/MessageEvent getters then
 * load all of undici (~2 MiB of RSS per settled agent). See src/node-http.ts for meshd's own imports.
 */
function httpThroughRequire(): import('esbuild').Plugin {
  const names = Object.keys(createRequire(import.meta.url)('node:http')).filter(
    (n) => !UNDICI_GETTERS.has(n),
  );
  return {
    name: 'meshd-http-through-require',
    setup(build) {
      build.onResolve({ filter: /^(node:)?http$/ }, () => ({ path: 'node:http', namespace: 'meshd-http' }));
      build.onLoad({ filter: /.*/, namespace: 'meshd-http' }, () => ({
        // The banner's createRequire, called directly: a `require('node:http')` here would be
        // resolved by this plugin again.
        contents:
          "const http = __meshdCreateRequire(import.meta.url)('node:http');\n" +
          `export default http;\nexport const { ${names.join(', ')} } = http;\n`,
        loader: 'js',
      }));
    },
  };
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error(`meshd vendor: ${(err as Error).message}`);
  process.exitCode = 1;
}
