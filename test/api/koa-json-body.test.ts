import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import Koa from 'koa';
import { serializeJsonBodies } from '../../src/api/http/koa-json-body.ts';

test('JSON bodies go out as koa would send them; strings, buffers and empty bodies are untouched', async (t) => {
  const app = new Koa();
  serializeJsonBodies(app);
  app.use(async (ctx) => {
    switch (ctx.path) {
      case '/object':
        ctx.body = { a: [1, 'x'], b: null };
        break;
      case '/true':
        ctx.body = true;
        break;
      case '/typed':
        ctx.type = 'application/vnd.meshd+json';
        ctx.body = [1];
        break;
      case '/text':
        ctx.body = 'plain';
        break;
      case '/bytes':
        ctx.body = Buffer.from([1, 2]);
        break;
      case '/none':
        ctx.body = null;
        break;
    }
  });
  const server = createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const get = async (p: string) => {
    const r = await fetch(`${base}${p}`);
    return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
  };
  const json = 'application/json; charset=utf-8';
  t.deepEqual(await get('/object'), { status: 200, type: json, body: '{"a":[1,"x"],"b":null}' });
  t.deepEqual(await get('/true'), { status: 200, type: json, body: 'true' });
  t.deepEqual(await get('/typed'), { status: 200, type: 'application/vnd.meshd+json', body: '[1]' });
  t.deepEqual(await get('/text'), { status: 200, type: 'text/plain; charset=utf-8', body: 'plain' });
  t.deepEqual(await get('/bytes'), { status: 200, type: 'application/octet-stream', body: '\u0001\u0002' });
  t.is((await get('/none')).status, 204);
});
