import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { HttpAgents, httpProbe } from '../../src/agent/checks/http.ts';
import { freePort } from '../support/agent-process.ts';
import { httpConfig, never } from './support.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A local server whose routes answer 200, 429, 500, redirects, a big body, or hang. */
async function server(): Promise<{
  base: string;
  seen: Seen[];
  connections: () => number;
  hung: Promise<void>;
  close: () => Promise<void>;
}> {
  const seen: Seen[] = [];
  let connections = 0;
  let onHung: () => void = () => undefined;
  const hung = new Promise<void>((r) => {
    onHung = r;
  });
  const pending: ServerResponse[] = [];
  const s: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const route = req.url ?? '';
      if (route === '/ok') res.end('fine');
      else if (route === '/busy') res.writeHead(429).end('slow down');
      else if (route === '/broken') res.writeHead(500).end('oops');
      else if (route === '/moved') res.writeHead(302, { Location: '/ok' }).end();
      else if (route === '/big') res.end(`${'a'.repeat(100)}${'z'.repeat(10)}`);
      else if (route === '/slow') {
        pending.push(res);
        onHung();
      } else res.writeHead(404).end('no');
    });
  });
  s.on('connection', () => connections++);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    seen,
    connections: () => connections,
    hung,
    close: async () => {
      for (const r of pending) r.destroy();
      s.closeAllConnections();
      s.close();
      await once(s, 'close');
    },
  };
}

test("2xx is passing, 429 warning, 500 critical, with Consul's output line", async (t) => {
  const srv = await server();
  const agents = new HttpAgents();
  t.teardown(async () => {
    agents.destroy();
    await srv.close();
  });
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/ok`), agents)(never()), {
    status: 'passing',
    output: `HTTP GET ${srv.base}/ok: 200 OK Output: fine`,
  });
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/busy`), agents)(never()), {
    status: 'warning',
    output: `HTTP GET ${srv.base}/busy: 429 Too Many Requests Output: slow down`,
  });
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/broken`), agents)(never()), {
    status: 'critical',
    output: `HTTP GET ${srv.base}/broken: 500 Internal Server Error Output: oops`,
  });
});

test("method, headers and body are sent; User-Agent and Accept default as Consul's", async (t) => {
  const srv = await server();
  const agents = new HttpAgents();
  t.teardown(async () => {
    agents.destroy();
    await srv.close();
  });
  const r = await httpProbe(
    httpConfig(`${srv.base}/ok`, { method: 'POST', header: { 'X-Token': ['abc'] }, body: '{"ping":1}' }),
    agents,
  )(never());
  t.is(r.status, 'passing');
  t.true(r.output.startsWith(`HTTP POST ${srv.base}/ok: 200 OK`));
  const [req] = srv.seen;
  t.is(req.method, 'POST');
  t.is(req.body, '{"ping":1}');
  t.is(req.headers['x-token'], 'abc');
  t.is(req.headers['user-agent'], 'Consul Health Check');
  t.is(req.headers.accept, 'text/plain, text/*, */*');

  await httpProbe(httpConfig(`${srv.base}/ok`, { header: { 'User-Agent': ['mine'] } }), agents)(never());
  t.is(srv.seen[1].headers['user-agent'], 'mine');
});

test('the output keeps the last OutputMaxSize bytes of the body', async (t) => {
  const srv = await server();
  const agents = new HttpAgents();
  t.teardown(async () => {
    agents.destroy();
    await srv.close();
  });
  const r = await httpProbe(httpConfig(`${srv.base}/big`, { outputMaxSize: 12 }), agents)(never());
  t.is(r.output, `HTTP GET ${srv.base}/big: 200 OK Output: aazzzzzzzzzz`);
});

test('redirects are followed unless DisableRedirects', async (t) => {
  const srv = await server();
  const agents = new HttpAgents();
  t.teardown(async () => {
    agents.destroy();
    await srv.close();
  });
  const followed = await httpProbe(httpConfig(`${srv.base}/moved`), agents)(never());
  t.is(followed.status, 'passing');
  t.is(followed.output, `HTTP GET ${srv.base}/moved: 200 OK Output: fine`);
  const kept = await httpProbe(httpConfig(`${srv.base}/moved`, { disableRedirects: true }), agents)(never());
  t.is(kept.status, 'critical');
  t.true(kept.output.startsWith(`HTTP GET ${srv.base}/moved: 302 Found`));
});

test('a server that does not answer before the deadline is critical', async (t) => {
  const srv = await server();
  const agents = new HttpAgents();
  t.teardown(async () => {
    agents.destroy();
    await srv.close();
  });
  const deadline = new AbortController();
  const run = httpProbe(httpConfig(`${srv.base}/slow`), agents)(deadline.signal);
  await srv.hung; // the request reached the server, which holds it
  deadline.abort();
  t.deepEqual(await run, {
    status: 'critical',
    output: `Get "${srv.base}/slow": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
  });
});

test('a closed port is critical with the dial error', async (t) => {
  const port = await freePort();
  const agents = new HttpAgents();
  t.teardown(() => agents.destroy());
  const r = await httpProbe(httpConfig(`http://127.0.0.1:${port}/`), agents)(never());
  t.is(r.status, 'critical');
  t.is(r.output, `Get "http://127.0.0.1:${port}/": dial tcp 127.0.0.1:${port}: connect: connection refused`);
});

test('a bad URL or scheme is critical, not a crash', async (t) => {
  const agents = new HttpAgents();
  t.teardown(() => agents.destroy());
  t.is((await httpProbe(httpConfig('not a url'), agents)(never())).status, 'critical');
  t.regex(
    (await httpProbe(httpConfig('ftp://127.0.0.1/'), agents)(never())).output,
    /unsupported protocol scheme "ftp"/,
  );
});

test('runs reuse kept-alive connections', async (t) => {
  const srv = await server();
  const agents = new HttpAgents();
  t.teardown(async () => {
    agents.destroy();
    await srv.close();
  });
  const probe = httpProbe(httpConfig(`${srv.base}/ok`), agents);
  for (let i = 0; i < 5; i++) t.is((await probe(never())).status, 'passing');
  t.is(srv.seen.length, 5);
  t.is(srv.connections(), 1);
});
