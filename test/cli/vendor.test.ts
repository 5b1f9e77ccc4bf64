import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'ava';
import {
  BUNDLED_MIME_TYPES,
  installedTreeHash,
  manifestProblem,
  PROJECT_ROOT,
  packageOf,
  runtimeBareImports,
  sourceBareImports,
  sourceFiles,
  VENDOR_DIR,
  VENDOR_EXTERNALS,
  VENDOR_FORMAT_VERSION,
  type VendorManifest,
  vendorResolver,
} from '../../src/cli/vendor.ts';
import { runCli } from './fake-consul.ts';

test('runtimeBareImports finds what loads at run time and skips what type stripping erases', (t) => {
  const source = [
    "import { a } from 'alpha';",
    "import type { T } from 'erased-type';",
    'import type {',
    '  U,',
    "} from 'erased-multiline';",
    'import {',
    '  b,',
    '  type C,',
    "} from '@scope/beta/sub';",
    "import { type D, e } from 'gamma';",
    "export * from 'delta';",
    "export type { F } from 'erased-reexport';",
    "import 'side-effect';",
    "const m = await import('dynamic');",
    "import { x } from './relative.ts';",
    "import { y } from 'node:fs';",
    "import { z } from 'path';",
    "// import { w } from 'in-a-line-comment';",
    " * import { v } from 'in-a-block-comment';",
  ].join('\n');
  t.deepEqual([...runtimeBareImports(source)].sort(), [
    '@scope/beta/sub',
    'alpha',
    'delta',
    'dynamic',
    'gamma',
    'side-effect',
  ]);
});

test('packageOf names the package of a subpath specifier', (t) => {
  t.is(packageOf('@libp2p/crypto/keys'), '@libp2p/crypto');
  t.is(packageOf('zod'), 'zod');
  t.is(packageOf('zod/v4'), 'zod');
});

test('the sources import libp2p at run time, and @libp2p/interface only as types', (t) => {
  const imports = sourceBareImports();
  t.true(imports.includes('libp2p'));
  t.true(imports.includes('@grpc/grpc-js'));
  t.false(imports.includes('@libp2p/interface'));
});

const manifest: VendorManifest = {
  version: VENDOR_FORMAT_VERSION,
  tree: 'abc',
  entries: { libp2p: 'entry-0.js', '@libp2p/tcp': 'entry-1.js' },
};

test('manifestProblem refuses another format, another dependency tree, or no tree at all', (t) => {
  t.is(manifestProblem(manifest, 'abc'), undefined);
  t.regex(
    manifestProblem({ ...manifest, version: VENDOR_FORMAT_VERSION + 1 }, 'abc') ?? '',
    /format version/,
  );
  t.regex(manifestProblem(manifest, 'def') ?? '', /dependencies changed/);
  t.regex(manifestProblem(manifest, undefined) ?? '', /package-lock/);
  t.regex(manifestProblem(null, 'abc') ?? '', /not an object/);
  t.regex(manifestProblem({ version: VENDOR_FORMAT_VERSION, tree: 'abc' }, 'abc') ?? '', /no entries/);
});

test('vendorResolver maps bundled packages and reports, once, a package the bundle lacks', (t) => {
  const unknown: string[] = [];
  const resolve = vendorResolver({
    manifest,
    dir: '/opt/vendor',
    sourcePrefix: 'file:///app/src',
    onUnknown: (specifier) => unknown.push(specifier),
  });
  const ours = 'file:///app/src/agent/agent.ts';
  t.is(resolve('libp2p', ours), pathToFileURL('/opt/vendor/entry-0.js').href);
  t.is(resolve('@libp2p/tcp', 'file:///elsewhere/x.js'), pathToFileURL('/opt/vendor/entry-1.js').href);
  t.is(resolve('./relative.ts', ours), undefined);
  t.is(resolve('node:fs', ours), undefined);
  t.is(resolve('fs', ours), undefined);
  t.is(resolve('pino', ours), undefined);
  t.is(resolve('not-bundled', 'file:///app/node_modules/x/index.js'), undefined);
  t.deepEqual(unknown, []);
  t.is(resolve('not-bundled', ours), undefined);
  t.is(resolve('not-bundled', ours), undefined);
  t.deepEqual(unknown, ['not-bundled']);
});

// The installed bundle: `npm ci` builds it through the `prepare` script, so it exists and matches
// node_modules wherever the test command runs after an install.
const manifestPath = join(VENDOR_DIR, 'manifest.json');

test('the installed bundle matches node_modules and covers every package the sources load', (t) => {
  t.true(existsSync(manifestPath), `${manifestPath} is missing: run npm run vendor`);
  const installed = JSON.parse(readFileSync(manifestPath, 'utf8')) as VendorManifest;
  t.is(manifestProblem(installed, installedTreeHash()), undefined);
  const needed = sourceBareImports().filter((s) => !VENDOR_EXTERNALS.includes(packageOf(s)));
  t.deepEqual(Object.keys(installed.entries).sort(), needed);
  for (const file of Object.values(installed.entries)) t.true(existsSync(join(VENDOR_DIR, file)), file);
});

test('bin/meshd.js uses the bundle, and MESHD_VENDOR=0 turns it off', async (t) => {
  const on = await runCli(['version'], { env: { MESHD_VENDOR_DEBUG: '1' } });
  t.is(on.code, 0, on.stderr);
  t.regex(on.stderr, /dependency bundle in use: \d+ packages/);
  const off = await runCli(['version'], { env: { MESHD_VENDOR_DEBUG: '1', MESHD_VENDOR: '0' } });
  t.is(off.code, 0, off.stderr);
  t.regex(off.stderr, /dependency bundle not used: MESHD_VENDOR=0/);
  t.is(on.stdout, off.stdout);
});

test('through the bundle, the agent modules never load undici, not even answering JSON', async (t) => {
  // Node 24's ESM facade of node:http reads its lazy WebSocket getter, and koa's body setter reads
  // the lazy Response global: either loads all of undici (~2 MiB of RSS per settled agent). Our
  // sources import node:http from src/node-http.ts, the bundle rewrites the dependencies'
  // `import ... from 'http'` the same way, and koa-json-body.ts serializes JSON bodies first.
  const url = (m: string) => JSON.stringify(pathToFileURL(join(PROJECT_ROOT, m)).href);
  const script = `
    const { installVendorHook } = await import(${url('src/cli/vendor.ts')});
    if (!installVendorHook()) throw new Error('bundle not installed');
    for (const m of [${[
      'src/agent/agent.ts',
      'src/api/http/agent/routes.ts',
      'src/api/dns/index.ts',
      'src/agent/checks/check-runners.ts',
      'src/cli/http-client.ts',
    ]
      .map(url)
      .join(', ')}]) await import(m);
    const { createHttpHandler } = await import(${url('src/api/http/server.ts')});
    const { silentLogger } = await import(${url('src/agent/logger.ts')});
    const http = (await import(${url('src/node-http.ts')})).default;
    const Router = (await import('@koa/router')).default;
    const router = new Router().get('/json', (ctx) => { ctx.body = { ok: [1, 2] }; });
    const agent = { catalog: {}, datacenter: 'dc1', nodeName: 'n', nodeId: 'i' };
    const server = http.createServer(createHttpHandler({ agent, logger: silentLogger(), routers: [router] }));
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const answer = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server.address().port, path: '/json' }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ type: res.headers['content-type'], body }));
      }).on('error', reject);
    });
    server.close();
    process.stdout.write(JSON.stringify({ answer, undici: process.moduleLoadList.filter((m) => m.includes('undici')) }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  t.deepEqual(JSON.parse(out), {
    answer: { type: 'application/json; charset=utf-8', body: '{"ok":[1,2]}' },
    undici: [],
  });
});

test('the bundle keeps every media type the sources send, and koa labels responses as with all of mime-db', (t) => {
  const literals = new Set<string>();
  for (const file of sourceFiles(join(PROJECT_ROOT, 'src'))) {
    if (file.endsWith(join('cli', 'vendor.ts'))) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(
      /['"]((?:application|text|image|multipart|font|audio|video)\/[\w.+-]+)/g,
    )) {
      literals.add(m[1] as string);
    }
  }
  t.true(literals.size > 0);
  t.deepEqual(
    [...literals].filter((type) => !BUNDLED_MIME_TYPES.includes(type)),
    [],
  );

  // One koa app, through the bundle and then from node_modules (all of mime-db): the Content-Type
  // of each kind of body, and of each bundled type and koa's short names set as ctx.type.
  const url = (m: string) => JSON.stringify(pathToFileURL(join(PROJECT_ROOT, m)).href);
  const script = (bundled: boolean) => `
    const { installVendorHook } = await import(${url('src/cli/vendor.ts')});
    if (${bundled} && !installVendorHook()) throw new Error('bundle not installed');
    const http = await import('node:http');
    const { Readable } = await import('node:stream');
    const Koa = (await import('koa')).default;
    const bodies = { object: { a: 1 }, html: '<p>hi</p>', text: 'hi', bytes: Buffer.from('hi'), stream: null };
    const types = [...${JSON.stringify(BUNDLED_MIME_TYPES)}, 'json', 'html', 'text', 'txt', 'bin', 'js', 'css'];
    const app = new Koa().use((ctx) => {
      const [kind, value] = ctx.path.slice(1).split('/').map(decodeURIComponent);
      if (kind === 'body') ctx.body = value === 'stream' ? Readable.from(['hi']) : bodies[value];
      else { ctx.body = 'hi'; ctx.type = value; }
    });
    const server = http.createServer(app.callback());
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const get = (path) => new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server.address().port, path }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers['content-type']));
      }).on('error', reject);
    });
    const out = {};
    for (const b of Object.keys(bodies)) out['body ' + b] = await get('/body/' + b);
    for (const type of types) out['type ' + type] = await get('/type/' + encodeURIComponent(type));
    server.close();
    process.stdout.write(JSON.stringify(out));
  `;
  const run = (bundled: boolean) =>
    JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script(bundled)], { encoding: 'utf8' }),
    ) as Record<string, string>;
  const bundled = run(true);
  t.deepEqual(bundled, run(false));
  t.is(bundled['body object'], 'application/json; charset=utf-8');
  t.is(bundled['body html'], 'text/html; charset=utf-8');
  t.is(bundled['body bytes'], 'application/octet-stream');
  t.is(bundled['type application/gzip'], 'application/gzip');
  t.is(bundled['type text/css'], 'text/css; charset=utf-8');
});

test('PROJECT_ROOT is the directory of package.json', (t) => {
  t.true(existsSync(join(PROJECT_ROOT, 'package.json')));
});
