/**
 * `/v1/kv/<key>` runs on the direct (koa-free) path: the same answers, headers and errors as
 * the koa routes give, Consul's shape for misses.
 */

import { request } from 'node:http';
import test from 'ava';
import { pino } from 'pino';
import { waitFor } from '../support/agent-process.ts';
import { type ApiServer, startApiServer } from '../support/api-server.ts';

let api: ApiServer;
test.before(async () => {
  api = await startApiServer();
  await fetch(`${api.url}/v1/kv/app/config`, { method: 'PUT', body: 'hello' });
  await fetch(`${api.url}/v1/kv/app/db/url`, { method: 'PUT', body: 'pg://x' });
});
test.after.always(async () => {
  await api?.close();
});

/**
 * A request through node:http with the target exactly as given (fetch would normalize it); a body
 * in `chunks` goes with chunked transfer encoding, no Content-Length.
 */
function rawRequest(
  method: string,
  target: string,
  chunks: Buffer[] = [],
): Promise<{ status: number; connection: string | undefined; text: string }> {
  const { hostname, port } = new URL(api.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path: target }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, text }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may close once it has answered, before the whole body is written.
      const answeredEarly = chunks.length > 0 && (err.code === 'EPIPE' || err.code === 'ECONNRESET');
      if (!answeredEarly) reject(err);
    });
    for (const c of chunks) req.write(c);
    req.end();
  });
}

test('a client gone mid-body: nothing written, nothing logged, the server answers on', async (t) => {
  const lines: string[] = [];
  const own = await startApiServer({
    logger: pino({ level: 'warn' }, { write: (l: string) => lines.push(l) }),
  });
  try {
    const { hostname, port } = new URL(own.url);
    await new Promise<void>((resolve) => {
      const req = request({
        host: hostname,
        port,
        method: 'PUT',
        path: '/v1/kv/half',
        headers: { 'content-length': 1000 },
      });
      req.on('error', () => {}); // our own destroy
      req.on('close', () => resolve());
      req.write(Buffer.alloc(100, 1), () => req.destroy());
    });
    // Once the server has seen the connection close, its handler has run to the end.
    await waitFor(
      'the server to see the connection close',
      () => new Promise<boolean>((r) => own.http.getConnections((_e, n) => r(n === 0))),
      5_000,
      10,
    );
    t.is((await fetch(`${own.url}/v1/kv/half`)).status, 404);
    t.is((await fetch(`${own.url}/v1/kv/after`, { method: 'PUT', body: 'v' })).status, 200);
    t.deepEqual(lines, []);
  } finally {
    await own.close();
  }
});

test('an entry: JSON with base64 value, read headers, content length', async (t) => {
  const r = await fetch(`${api.url}/v1/kv/app/config`);
  t.is(r.status, 200);
  t.is(r.headers.get('content-type'), 'application/json; charset=utf-8');
  t.true(Number(r.headers.get('x-consul-index')) > 0);
  t.is(r.headers.get('x-consul-knownleader'), 'true');
  t.is(r.headers.get('x-consul-effective-consistency'), 'leader');
  const text = await r.text();
  t.is(Number(r.headers.get('content-length')), Buffer.byteLength(text));
  const [entry] = JSON.parse(text) as { Key: string; Value: string; Flags: number }[];
  t.is(entry.Key, 'app/config');
  t.is(Buffer.from(entry.Value, 'base64').toString(), 'hello');
  const stale = await fetch(`${api.url}/v1/kv/app/config?stale`);
  t.is(stale.headers.get('x-consul-effective-consistency'), 'stale');
});

test('?raw, ?recurse, ?keys with ?separator; percent-encoded keys', async (t) => {
  let r = await fetch(`${api.url}/v1/kv/app/config?raw`);
  t.is(r.headers.get('content-type'), 'application/octet-stream');
  t.is(r.headers.get('x-content-type-options'), 'nosniff');
  t.is(await r.text(), 'hello');
  r = await fetch(`${api.url}/v1/kv/app/?recurse`);
  t.deepEqual(
    ((await r.json()) as { Key: string }[]).map((e) => e.Key),
    ['app/config', 'app/db/url'],
  );
  r = await fetch(`${api.url}/v1/kv/app/?keys&separator=/`);
  t.deepEqual(await r.json(), ['app/config', 'app/db/']);
  r = await fetch(`${api.url}/v1/kv/app%2Fconfig?raw`);
  t.is(await r.text(), 'hello');
});

test('a miss is 404 with no body and the index headers (as Consul)', async (t) => {
  for (const path of ['/v1/kv/nope', '/v1/kv/nope/?recurse', '/v1/kv/nope/?keys']) {
    const r = await fetch(`${api.url}${path}`);
    t.is(r.status, 404, path);
    t.is(await r.text(), '', path);
    t.true(Number(r.headers.get('x-consul-index')) > 0, path);
  }
});

test('bad parameters are 400 in plain text naming the problem, without read headers', async (t) => {
  const cases: [string, RegExp][] = [
    ['/v1/kv/app/config?index=abc', /Invalid index/],
    ['/v1/kv/app/config?wait=soon', /Invalid wait time/],
    ['/v1/kv/app/config?stale&consistent', /conflicting semantics/],
    ['/v1/kv/app/config?dc=elsewhere', /No path to datacenter "elsewhere"/],
    ['/v1/kv/%E0%A4%A', /Invalid key encoding/],
  ];
  for (const [path, message] of cases) {
    const r = await fetch(`${api.url}${path}`);
    t.is(r.status, 400, path);
    t.regex(r.headers.get('content-type') ?? '', /^text\/plain/, path);
    t.regex(await r.text(), message, path);
    t.is(r.headers.get('x-consul-index'), null, path);
  }
});

test('HEAD answers the GET status without a body; PUT and DELETE still go to their routes', async (t) => {
  const head = await fetch(`${api.url}/v1/kv/app/config`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(await head.text(), '');
  t.is((await fetch(`${api.url}/v1/kv/nope`, { method: 'HEAD' })).status, 404);
  const put = await fetch(`${api.url}/v1/kv/tmp`, { method: 'PUT', body: 'x' });
  t.is(await put.text(), 'true');
  const del = await fetch(`${api.url}/v1/kv/tmp`, { method: 'DELETE' });
  t.is(await del.text(), 'true');
  t.is((await fetch(`${api.url}/v1/kv/tmp`)).status, 404);
  t.is((await fetch(`${api.url}/v1/kv/tmp`, { method: 'PATCH' })).status, 405);
});

test('an absolute-form request target is served like the origin form', async (t) => {
  const r = await rawRequest('GET', `${api.url}/v1/kv/app/config?raw`);
  t.deepEqual([r.status, r.text], [200, 'hello']);
});

test('a blocking read parks until its key changes', async (t) => {
  // Its own key: the other tests run concurrently and read app/config.
  await fetch(`${api.url}/v1/kv/block/me`, { method: 'PUT', body: 'first' });
  const first = await fetch(`${api.url}/v1/kv/block/me`);
  const index = Number(first.headers.get('x-consul-index'));
  const parked = fetch(`${api.url}/v1/kv/block/me?index=${index}&wait=30s`);
  await fetch(`${api.url}/v1/kv/block/me`, { method: 'PUT', body: 'changed' });
  const woken = await parked;
  t.true(Number(woken.headers.get('x-consul-index')) > index);
  const [entry] = (await woken.json()) as { Value: string }[];
  t.is(Buffer.from(entry.Value, 'base64').toString(), 'changed');
});

test('an oversized value is 413 and closes the connection; nothing is written', async (t) => {
  const r = await fetch(`${api.url}/v1/kv/too-big`, { method: 'PUT', body: Buffer.alloc(512 * 1024 + 1) });
  t.is(r.status, 413);
  t.is(r.headers.get('connection'), 'close');
  t.regex(await r.text(), /Request body too large, max size: 524288 bytes/);
  t.is((await fetch(`${api.url}/v1/kv/too-big`)).status, 404);
});

test('a chunked value arrives whole; an oversized one is 413 with nothing written', async (t) => {
  const parts = ['chunk one, ', 'chunk two, ', 'chunk three'].map((s) => Buffer.from(s));
  const ok = await rawRequest('PUT', '/v1/kv/chunked/ok', parts);
  t.deepEqual([ok.status, ok.text], [200, 'true']);
  t.is(await (await fetch(`${api.url}/v1/kv/chunked/ok?raw`)).text(), 'chunk one, chunk two, chunk three');

  const big = await rawRequest(
    'PUT',
    '/v1/kv/chunked/big',
    Array.from({ length: 9 }, () => Buffer.alloc(64 * 1024, 1)),
  );
  t.is(big.status, 413);
  t.is(big.connection, 'close');
  t.regex(big.text, /Request body too large, max size: 524288 bytes/);
  t.is((await fetch(`${api.url}/v1/kv/chunked/big`)).status, 404);
});

test('other methods are 405 naming the allowed ones', async (t) => {
  const r = await fetch(`${api.url}/v1/kv/app/config`, { method: 'POST', body: 'x' });
  t.is(r.status, 405);
  t.is(r.headers.get('allow'), 'GET, HEAD, PUT, DELETE');
});
