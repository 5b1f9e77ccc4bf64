import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { silentLogger } from '../../src/agent/logger.ts';
import { createHttpHandler } from '../../src/api/http/server.ts';
import { UI_CSP } from '../../src/api/ui/serve.ts';
import { MemoryCatalog } from '../support/memory-catalog.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function serve(t: import('ava').ExecutionContext, ui: boolean): Promise<number> {
  const handler = createHttpHandler({
    agent: { catalog: new MemoryCatalog(), datacenter: 'dc1', nodeName: 'n1', nodeId: 'id' },
    logger: silentLogger(),
    ui,
  });
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** A raw request: the path goes out exactly as given (fetch would resolve `..` and `%2e%2e`). */
function get(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      method: opts.method ?? 'GET',
      headers: opts.headers,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.end();
  });
}

test('/ui/ serves the page with a strict CSP and no caching', async (t) => {
  const port = await serve(t, true);
  const r = await get(port, '/ui/');
  t.is(r.status, 200);
  t.regex(String(r.headers['content-type']), /^text\/html/);
  t.is(r.headers['content-security-policy'], UI_CSP);
  t.regex(UI_CSP, /default-src 'self'/);
  t.notRegex(UI_CSP, /unsafe-/);
  t.is(r.headers['cache-control'], 'no-cache');
  t.is(r.headers['x-content-type-options'], 'nosniff');
  t.regex(r.body, /<script type="module" src="app.js"><\/script>/);
  t.regex(r.body, /href="style.css"/);
});

test('/ui/app.js and /ui/style.css have their content types', async (t) => {
  const port = await serve(t, true);
  const js = await get(port, '/ui/app.js');
  t.is(js.status, 200);
  t.regex(String(js.headers['content-type']), /^application\/javascript/);
  t.true(js.body.includes('fetch('));
  t.false(js.body.includes('innerHTML'));
  const css = await get(port, '/ui/style.css');
  t.is(css.status, 200);
  t.regex(String(css.headers['content-type']), /^text\/css/);
});

test('an unchanged asset revalidates to 304; HEAD has no body', async (t) => {
  const port = await serve(t, true);
  const first = await get(port, '/ui/app.js');
  const etag = String(first.headers.etag);
  t.truthy(etag);
  const again = await get(port, '/ui/app.js', { headers: { 'If-None-Match': etag } });
  t.is(again.status, 304);
  t.is(again.body, '');
  const head = await get(port, '/ui/', { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body, '');
});

test('/ and /ui redirect to /ui/', async (t) => {
  const port = await serve(t, true);
  const root = await get(port, '/');
  t.is(root.status, 301);
  t.is(root.headers.location, '/ui/');
  const ui = await get(port, '/ui');
  t.is(ui.status, 301);
  t.is(ui.headers.location, '/ui/');
});

test('unknown assets and path traversal are 404', async (t) => {
  const port = await serve(t, true);
  for (const path of [
    '/ui/nope.js',
    '/ui/serve.ts',
    '/ui/../package.json',
    '/ui/../../package.json',
    '/ui/%2e%2e/package.json',
    '/ui/%2E%2E%2Fpackage.json',
    '/ui/..%2fserve.ts',
    '/ui/./app.js',
    '/ui//app.js',
    '/ui/constructor',
    '/ui/__proto__',
  ]) {
    const r = await get(port, path);
    t.is(r.status, 404, path);
    t.false(r.body.includes('"name"'), path);
  }
});

test('other methods on /ui/ are 405; the API still answers', async (t) => {
  const port = await serve(t, true);
  const post = await get(port, '/ui/', { method: 'POST' });
  t.is(post.status, 405);
  t.is(post.headers.allow, 'GET, HEAD');
  const leader = await get(port, '/v1/kv/missing');
  t.is(leader.status, 404);
});

test('with the UI off, /ui/ and / are 404', async (t) => {
  const port = await serve(t, false);
  t.is((await get(port, '/ui/')).status, 404);
  t.is((await get(port, '/ui/app.js')).status, 404);
  t.is((await get(port, '/')).status, 404);
});
