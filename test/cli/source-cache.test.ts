/**
 * The stripped-source cache (bin/source-cache.js, scripts/strip-sources.ts): modules load from it
 * without Node's TypeScript stripper (amaro, ~17 MiB per process), a source edited since the cache
 * was built falls back to Node's stripping, and `meshd` itself starts without amaro even with a
 * cold compile cache.
 */

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'ava';
import { cachedSource, installSourceCache } from '../../bin/source-cache.js';
import { buildSourceCache } from '../../scripts/strip-sources.ts';
import { PROJECT_ROOT } from '../../src/cli/vendor.ts';
import { runCli } from './fake-consul.ts';

/** Prints which TypeScript stripper modules a process loaded, on stderr, as it exits. */
const REPORTER = `data:text/javascript,${encodeURIComponent(
  "process.on('exit', () => process.stderr.write('AMARO ' + process.moduleLoadList.filter((m) => m.includes('amaro')).length + '\\n'));",
)}`;

function project(t: import('ava').ExecutionContext): string {
  const root = mkdtempSync(join(tmpdir(), 'meshd-source-cache-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'src', 'lib'), { recursive: true });
  writeFileSync(
    join(root, 'src', 'main.ts'),
    "import { twice } from './lib/twice.ts';\nconst n: number = twice(21);\nconsole.log(n, new Error('here').stack?.split('\\n')[1].trim());\n",
  );
  writeFileSync(
    join(root, 'src', 'lib', 'twice.ts'),
    'export function twice(x: number): number {\n  return 2 * x;\n}\n',
  );
  return root;
}

/** Runs src/main.ts of `root` in a fresh node with the cache hook installed; its output and amaro count. */
function run(root: string): { stdout: string; amaro: number } {
  const script = `
    const { installSourceCache } = await import(${JSON.stringify(pathToFileURL(join(PROJECT_ROOT, 'bin', 'source-cache.js')).href)});
    installSourceCache(${JSON.stringify(root)});
    await import(${JSON.stringify(pathToFileURL(join(root, 'src', 'main.ts')).href)});
    process.stdout.write('AMARO ' + process.moduleLoadList.filter((m) => m.includes('amaro')).length + '\\n');
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' },
  });
  const [stdout, amaro] = out.split('AMARO ');
  return { stdout, amaro: Number(amaro) };
}

test('modules load stripped from the cache, lines intact, without amaro; an edited one falls back to Node', (t) => {
  const root = project(t);
  t.is(buildSourceCache(root), 2);
  const cached = run(root);
  t.regex(
    cached.stdout,
    /^42 at .*\/src\/main\.ts:3:/,
    'right answer, and the stack names the .ts at its line',
  );
  t.is(cached.amaro, 0, 'Node never loaded its TypeScript stripper');

  writeFileSync(
    join(root, 'src', 'lib', 'twice.ts'),
    'export function twice(x: number): number {\n  return 3 * x;\n}\n',
  );
  const edited = run(root);
  t.regex(edited.stdout, /^63 /, 'the edited source runs, not its stale stripped copy');
  t.is(edited.amaro, 1, 'stripped by Node instead');
});

test('cachedSource serves only our .ts modules, by hash; a missing cache is not used', (t) => {
  const root = project(t);
  buildSourceCache(root);
  const manifest = { version: 1, files: { 'src/main.ts': 'not-the-hash' } };
  t.is(cachedSource(root, manifest, pathToFileURL(join(root, 'src', 'main.ts')).href), undefined);
  t.is(cachedSource(root, manifest, pathToFileURL(join(root, 'other.ts')).href), undefined);
  t.is(installSourceCache(join(root, 'nowhere')), 0);
  t.is(installSourceCache(root, { MESHD_SOURCE_CACHE: '0' }), 0);
});

test('meshd starts without amaro even with a cold compile cache (npm ci builds the cache)', async (t) => {
  const env = { NODE_DISABLE_COMPILE_CACHE: '1', NODE_OPTIONS: `--import=${REPORTER}` };
  const on = await runCli(['version'], { env });
  t.is(on.code, 0, on.stderr);
  t.regex(on.stderr, /AMARO 0/, 'run `npm run vendor` if sources changed since npm ci');
  const off = await runCli(['version'], { env: { ...env, MESHD_SOURCE_CACHE: '0' } });
  t.regex(off.stderr, /AMARO 1/, 'without the cache, Node strips (the check above can fail)');
  t.is(on.stdout, off.stdout);
});
