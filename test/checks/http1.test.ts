/**
 * HTTP checks on the wire, through the HTTP/1.1 client of src/agent/checks/http1.ts: servers here
 * are raw TCP servers writing exact bytes (often in several writes, split where a parser is most
 * likely to slip), and counting connections to tell a reused socket from a new one.
 */

import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { HttpAgents, httpProbe } from '../../src/agent/checks/http.ts';
import { waitFor } from '../support/agent-process.ts';
import { httpConfig } from './support.ts';

/** Answers one request: `req` is its raw bytes (head and body), `n` its index among all requests. */
type Reply = (sock: net.Socket, req: string, n: number) => unknown;

interface Raw {
  base: string;
  /** Each request received, as raw bytes (latin1). */
  requests: string[];
  /** Connections accepted so far. */
  connections: () => number;
  /** Server-side sockets still open. */
  open: () => number;
}

/** A TCP server that splits what it reads into requests (head, and body by Content-Length) for `reply`. */
async function raw(t: ExecutionContext, reply: Reply, host = '127.0.0.1'): Promise<Raw> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.setNoDelay(true); // each write its own segment, so the client reads the parts separately
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const length = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end));
        const size = end + 4 + (length === null ? 0 : Number(length[1]));
        if (buf.length < size) return;
        const req = buf.slice(0, size);
        buf = buf.slice(size);
        requests.push(req);
        void reply(sock, req, requests.length - 1);
      }
    });
  });
  server.listen(0, host);
  await once(server, 'listening');
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    server.close();
    await once(server, 'close');
  });
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    requests,
    connections: () => connections,
    open: () => sockets.size,
  };
}

/** Writes `parts` one by one with a pause between them: the client gets them as separate reads. */
async function dribble(sock: net.Socket, parts: string[]): Promise<void> {
  for (const [i, part] of parts.entries()) {
    if (i > 0) await delay(5);
    if (!sock.destroyed) sock.write(part, 'latin1');
  }
}

function pool(t: ExecutionContext, opts?: ConstructorParameters<typeof HttpAgents>[0]): HttpAgents {
  const agents = new HttpAgents(opts);
  t.teardown(() => agents.destroy());
  return agents;
}

/** A deadline far enough for any run here, so that a client bug fails a test rather than hanging it. */
const soon = (): AbortSignal => AbortSignal.timeout(5_000);

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

test('a chunked body with extensions and trailers, split at awkward places, is read whole; the socket is reused', async (t) => {
  const srv = await raw(t, (sock) =>
    dribble(sock, [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r',
      '\n\r\n1',
      'a;name="x y";q=1\r\nabcdefghijklm',
      'nopqrstuvwxyz\r',
      '\n5\r\nab',
      'cde\r\n3 ; ext\r\n',
      'xyz\r\n0\r\nX-Trailer: a\r\n',
      'Another: b\r\n\r',
      '\n',
    ]),
  );
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/c`), agents);
  for (let i = 0; i < 2; i++) {
    t.deepEqual(await probe(soon()), {
      status: 'passing',
      output: `HTTP GET ${srv.base}/c: 200 OK Output: abcdefghijklmnopqrstuvwxyzabcdexyz`,
    });
  }
  t.is(srv.connections(), 1);
});

test('a Content-Length body split across writes (the head too) is read whole; the socket is reused', async (t) => {
  const srv = await raw(t, (sock, _req, n) =>
    dribble(sock, [
      'HTTP/1.1 503 Service Unavailable\r\nContent-',
      'Length: 10\r\n\r',
      '\nhello',
      ` wor${n}`,
    ]),
  );
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.deepEqual(await probe(soon()), {
    status: 'critical',
    output: `HTTP GET ${srv.base}/: 503 Service Unavailable Output: hello wor0`,
  });
  t.is((await probe(soon())).output, `HTTP GET ${srv.base}/: 503 Service Unavailable Output: hello wor1`);
  t.is(srv.connections(), 1);
});

test('a body without length is read until the server closes; that socket is not reused', async (t) => {
  const srv = await raw(t, async (sock) => {
    await dribble(sock, ['HTTP/1.1 200 OK\r\n\r\nfirst ', 'second']);
    await delay(5);
    sock.end();
  });
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.is((await probe(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: first second`);
  t.is((await probe(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: first second`);
  t.is(srv.connections(), 2);
});

test('100 Continue (and other 1xx) before the response are skipped', async (t) => {
  const srv = await raw(t, (sock, _req, n) =>
    n === 0
      ? dribble(sock, [
          'HTTP/1.1 100 Continue\r\n\r\n',
          `HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n${OK}`,
        ])
      : dribble(sock, [`HTTP/1.1 100 Continue\r\n\r\n${OK}`]),
  );
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`, { method: 'POST', body: 'x' }), agents);
  t.deepEqual(await probe(soon()), {
    status: 'passing',
    output: `HTTP POST ${srv.base}/: 200 OK Output: ok`,
  });
  t.deepEqual(await probe(soon()), {
    status: 'passing',
    output: `HTTP POST ${srv.base}/: 200 OK Output: ok`,
  });
  t.is(srv.connections(), 1);
});

test('HEAD, 204 and 304 responses have no body whatever their headers say; the socket is reused', async (t) => {
  const srv = await raw(t, (sock, req) => {
    if (req.startsWith('HEAD ')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
    else if (req.startsWith('GET /nc ')) sock.write('HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n');
    else if (req.startsWith('GET /nm '))
      sock.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n');
    else sock.write(OK);
  });
  const agents = pool(t);
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/`, { method: 'HEAD' }), agents)(soon()), {
    status: 'passing',
    output: `HTTP HEAD ${srv.base}/: 200 OK Output: `,
  });
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/nc`), agents)(soon()), {
    status: 'passing',
    output: `HTTP GET ${srv.base}/nc: 204 No Content Output: `,
  });
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/nm`), agents)(soon()), {
    status: 'critical',
    output: `HTTP GET ${srv.base}/nm: 304 Not Modified Output: `,
  });
  // Each next request went on the same socket, and its response was read from its first byte.
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/ok`), agents)(soon()), {
    status: 'passing',
    output: `HTTP GET ${srv.base}/ok: 200 OK Output: ok`,
  });
  t.is(srv.requests.length, 4);
  t.is(srv.connections(), 1);
});

test('a response with Connection: close is not reused, even if the server keeps the socket open', async (t) => {
  const srv = await raw(t, (sock) =>
    sock.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'),
  );
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.is((await probe(soon())).status, 'passing');
  t.is((await probe(soon())).status, 'passing');
  t.is(srv.connections(), 2);
  await waitFor('the client to close both sockets', () => srv.open() === 0);
  t.is(agents.idle, 0);
});

test('an HTTP/1.0 response is reused only with Connection: keep-alive', async (t) => {
  const srv = await raw(t, (sock, req) =>
    sock.write(
      req.startsWith('GET /ka ')
        ? 'HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nka'
        : 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nno',
    ),
  );
  const agents = pool(t);
  const plain = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.is((await plain(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: no`);
  t.is((await plain(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: no`);
  t.is(srv.connections(), 2);
  const kept = httpProbe(httpConfig(`${srv.base}/ka`), agents);
  t.is((await kept(soon())).output, `HTTP GET ${srv.base}/ka: 200 OK Output: ka`);
  t.is((await kept(soon())).output, `HTTP GET ${srv.base}/ka: 200 OK Output: ka`);
  t.is(srv.connections(), 3);
});

test('a response that is no HTTP, oversized headers or a bad Content-Length is critical with a clear output', async (t) => {
  const replies: Record<string, string> = {
    '/garbage': 'garbage\r\n\r\n',
    '/status': 'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok',
    '/big': `HTTP/1.1 200 OK\r\n${'X-Filler: 0123456789abcdef\r\n'.repeat(3000)}\r\nok`,
    '/length': 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok',
    '/lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
    '/header': 'HTTP/1.1 200 OK\r\nBad Header: 1\r\nContent-Length: 2\r\n\r\nok',
  };
  const srv = await raw(t, (sock, req) => {
    const path = req.split(' ')[1];
    // The big head goes out in pieces: the client must give up on size, not wait for the end.
    void dribble(sock, path === '/big' ? (replies[path].match(/[\s\S]{1,8192}/g) ?? []) : [replies[path]]);
  });
  const agents = pool(t);
  const run = async (path: string) =>
    (await httpProbe(httpConfig(`${srv.base}${path}`), agents)(soon())).output;
  const prefix = (path: string) => `Get "${srv.base}${path}": `;
  t.is(await run('/garbage'), `${prefix('/garbage')}malformed HTTP response "garbage"`);
  t.is(await run('/status'), `${prefix('/status')}malformed HTTP response "HTTP/1.1 2000 OK"`);
  t.is(await run('/big'), `${prefix('/big')}net/http: server response headers exceeded 65536 bytes; aborted`);
  t.is(await run('/length'), `${prefix('/length')}bad Content-Length "2x"`);
  t.is(
    await run('/lengths'),
    `${prefix('/lengths')}http: message cannot contain multiple Content-Length headers; got "2" and "3"`,
  );
  t.is(await run('/header'), `${prefix('/header')}malformed MIME header line: Bad Header: 1`);
  // None of those sockets went back to the pool.
  t.is(srv.connections(), 6);
});

test('a server of another protocol is critical at once, not at the deadline', async (t) => {
  const srv = await raw(t, (sock) => sock.write('SSH-2.0-OpenSSH_9.2\r\n')); // and then waits
  const agents = pool(t);
  const r = await httpProbe(httpConfig(`${srv.base}/`), agents)(soon());
  t.deepEqual(r, {
    status: 'critical',
    output: `Get "${srv.base}/": malformed HTTP response "SSH-2.0-OpenSSH_9.2"`,
  });
});

test('101 Switching Protocols ends the run (critical) and its socket is not reused', async (t) => {
  const srv = await raw(t, (sock) =>
    sock.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00',
    ),
  );
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  const r = await probe(soon());
  t.deepEqual(r, { status: 'critical', output: `HTTP GET ${srv.base}/: 101 Switching Protocols Output: ` });
  await probe(soon());
  t.is(srv.connections(), 2);
});

test('an idle socket the server closes is dropped: the next run passes on a new socket', async (t) => {
  const srv = await raw(t, (sock) => {
    sock.write(OK);
    setTimeout(() => sock.end(), 20); // the server's keep-alive timeout, shorter than the interval
  });
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.is((await probe(soon())).status, 'passing');
  t.is(agents.idle, 1);
  await waitFor(
    'the client to drop the socket the server closed',
    () => agents.idle === 0 && srv.open() === 0,
  );
  t.deepEqual(await probe(soon()), { status: 'passing', output: `HTTP GET ${srv.base}/: 200 OK Output: ok` });
  t.is(srv.connections(), 2);
});

test('a reused socket closed or reset as the request goes out is retried once on a new connection', async (t) => {
  for (const hangUp of ['end', 'reset'] as const) {
    // The first request on each connection is answered; the second one finds the server gone.
    const srv = await raw(t, (sock, _req, n) => {
      if (n % 3 !== 1) sock.write(OK);
      else if (hangUp === 'end') sock.end();
      else sock.resetAndDestroy();
    });
    const agents = pool(t);
    const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
    t.is((await probe(soon())).status, 'passing');
    t.deepEqual(await probe(soon()), {
      status: 'passing',
      output: `HTTP GET ${srv.base}/: 200 OK Output: ok`,
    });
    t.is(srv.requests.length, 3, hangUp);
    t.is(srv.connections(), 2, hangUp);
  }
});

test('a new connection closed before any response is critical, without a retry', async (t) => {
  const srv = await raw(t, (sock) => sock.end());
  const agents = pool(t);
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/`), agents)(soon()), {
    status: 'critical',
    output: `Get "${srv.base}/": read: connection reset by peer`,
  });
  t.is(srv.connections(), 1);
});

test('unsolicited bytes on an idle socket drop it', async (t) => {
  const srv = await raw(t, (sock) => {
    sock.write(OK);
    // A late 408 of a server that gave up on the connection: not an answer to the next request.
    setTimeout(() => sock.write('HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n'), 20);
  });
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.is((await probe(soon())).status, 'passing');
  await waitFor('the client to drop the socket', () => agents.idle === 0 && srv.open() === 0);
  t.is((await probe(soon())).status, 'passing');
  t.is(srv.connections(), 2);
});

test('a body larger than OutputMaxSize keeps its tail, and its socket is still reused', async (t) => {
  const body = `${'a'.repeat(200_000)}the end`;
  const srv = await raw(t, (sock) =>
    dribble(sock, [
      `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 70_000)}`,
      body.slice(70_000),
    ]),
  );
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`, { outputMaxSize: 10 }), agents);
  t.is((await probe(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: aaathe end`);
  t.is((await probe(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: aaathe end`);
  t.is(srv.connections(), 1);
});

test('the deadline during the body keeps what was read; that socket is not reused', async (t) => {
  let sent!: () => void;
  const partial = new Promise<void>((r) => {
    sent = r;
  });
  const srv = await raw(t, (sock, _req, n) => {
    if (n > 0) return void sock.write(OK);
    sock.write('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100\r\n\r\nhalf a bo', () => sent());
  });
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  const deadline = new AbortController();
  const run = probe(deadline.signal);
  await partial;
  await delay(200); // for the client to read it: the deadline must come after the headers
  deadline.abort();
  t.deepEqual(await run, {
    status: 'critical',
    output: `HTTP GET ${srv.base}/: 500 Internal Server Error Output: half a bo`,
  });
  t.is((await probe(soon())).status, 'passing');
  t.is(srv.connections(), 2);
});

test('a header value with CR/LF (or NUL), or a bad header name, is refused before anything is sent', async (t) => {
  const srv = await raw(t, (sock) => sock.write(OK));
  const agents = pool(t);
  const run = async (header: Record<string, string[]>) =>
    (await httpProbe(httpConfig(`${srv.base}/`, { header }), agents)(soon())).output;
  t.is(
    await run({ 'X-Token': ['abc\r\nX-Injected: 1'] }),
    `Get "${srv.base}/": Invalid character in header content ["X-Token"]`,
  );
  t.is(
    await run({ 'X-Token': ['a\0b'] }),
    `Get "${srv.base}/": Invalid character in header content ["X-Token"]`,
  );
  t.is(
    await run({ 'X-Token: 1\r\nX-Injected': ['1'] }),
    `Get "${srv.base}/": Header name must be a valid HTTP token ["X-Token: 1\\r\\nX-Injected"]`,
  );
  t.is(
    (await httpProbe(httpConfig(`${srv.base}/`, { method: 'GET /x HTTP/1.1\r\n' }), agents)(soon())).output,
    `Get /x http/1.1\r\n "${srv.base}/": Method must be a valid HTTP token ["GET /X HTTP/1.1\\r\\n"]`,
  );
  t.is(srv.connections(), 0);
});

test("the request's bytes are the ones Node's client sent, multi-valued headers as repeated lines", async (t) => {
  const srv = await raw(t, (sock) => sock.write(OK));
  const agents = pool(t);
  const host = srv.base.slice('http://'.length);
  await httpProbe(
    httpConfig(`${srv.base}/p?q=1#frag`, { header: { 'X-A': ['1', '2'], accept: ['a/b'] } }),
    agents,
  )(soon());
  await httpProbe(httpConfig(`${srv.base}/p`, { method: 'post' }), agents)(soon());
  await httpProbe(httpConfig(`${srv.base}/p`, { method: 'PUT', body: 'héllo' }), agents)(soon());
  // Node sent no Content-Length for a GET with a body (which left the body unframed); Go does send one.
  await httpProbe(httpConfig(`http://user:p%40ss@${host}/p`, { body: 'xy' }), agents)(soon());
  t.deepEqual(srv.requests, [
    `GET /p?q=1 HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\naccept: a/b\r\nUser-Agent: Consul Health Check\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`,
    `POST /p HTTP/1.1\r\nUser-Agent: Consul Health Check\r\nAccept: text/plain, text/*, */*\r\nHost: ${host}\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n`,
    `PUT /p HTTP/1.1\r\nUser-Agent: Consul Health Check\r\nAccept: text/plain, text/*, */*\r\nHost: ${host}\r\nConnection: keep-alive\r\nContent-Length: 6\r\n\r\n${Buffer.from('héllo').toString('latin1')}`,
    `GET /p HTTP/1.1\r\nUser-Agent: Consul Health Check\r\nAccept: text/plain, text/*, */*\r\nHost: ${host}\r\nAuthorization: Basic ${Buffer.from('user:p@ss').toString('base64')}\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nxy`,
  ]);
  t.is(srv.connections(), 1);
});

test('the Host header of an IPv6 target has its brackets', async (t) => {
  const srv = await raw(t, (sock) => sock.write(OK), '::1');
  const agents = pool(t);
  t.is((await httpProbe(httpConfig(`${srv.base}/`), agents)(soon())).status, 'passing');
  t.regex(srv.requests[0], new RegExp(`\r\nHost: \\[::1\\]:${srv.base.split(':').at(-1)}\r\n`));
});

test("a redirect to another host drops Authorization and cookies, keeps the check's other headers", async (t) => {
  const target = await raw(t, (sock) => sock.write(OK));
  const port = target.base.split(':').at(-1);
  const srv = await raw(t, (sock) =>
    sock.write(`HTTP/1.1 302 Found\r\nLocation: http://localhost:${port}/there\r\nContent-Length: 0\r\n\r\n`),
  );
  const agents = pool(t);
  const header = { Authorization: ['Bearer x'], Cookie: ['a=1'], 'X-Keep': ['1'] };
  t.deepEqual(await httpProbe(httpConfig(`${srv.base}/here`, { header }), agents)(soon()), {
    status: 'passing',
    output: `HTTP GET ${srv.base}/here: 200 OK Output: ok`,
  });
  t.regex(srv.requests[0], /\r\nAuthorization: Bearer x\r\nCookie: a=1\r\nX-Keep: 1\r\n/);
  t.is(
    target.requests[0],
    `GET /there HTTP/1.1\r\nX-Keep: 1\r\nUser-Agent: Consul Health Check\r\nAccept: text/plain, text/*, */*\r\nHost: localhost:${port}\r\nConnection: keep-alive\r\n\r\n`,
  );
});

test("the server's Keep-Alive timeout is honoured: a socket within a second of it is not reused", async (t) => {
  const srv = await raw(t, (sock) =>
    sock.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2, max=100\r\nContent-Length: 2\r\n\r\nok'),
  );
  let now = 1_000_000;
  const agents = pool(t, { now: () => now });
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.is((await probe(soon())).status, 'passing');
  t.is((await probe(soon())).status, 'passing');
  t.is(srv.connections(), 1, 'reused at once');
  now += 1_100; // the server may close it at 2 s: too close to risk a request
  t.is((await probe(soon())).status, 'passing');
  t.is(srv.connections(), 2);
  t.is(srv.open(), 1, 'the expired socket was closed');
});

test('a socket with bytes after the response is not reused', async (t) => {
  const srv = await raw(t, (sock) => sock.write(`${OK}HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra`));
  const agents = pool(t);
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  t.is((await probe(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: ok`);
  t.is((await probe(soon())).output, `HTTP GET ${srv.base}/: 200 OK Output: ok`);
  t.is(srv.connections(), 2);
});

test('idle sockets are closed after the idle timeout, and at most maxIdlePerKey are kept', async (t) => {
  const srv = await raw(t, (sock) => setTimeout(() => sock.write(OK), 20));
  const agents = pool(t, { idleTimeoutMs: 100, maxIdlePerKey: 2 });
  const probe = httpProbe(httpConfig(`${srv.base}/`), agents);
  // Three runs at once need three sockets; only two stay.
  t.deepEqual(
    (await Promise.all([probe(soon()), probe(soon()), probe(soon())])).map((r) => r.status),
    ['passing', 'passing', 'passing'],
  );
  t.is(srv.connections(), 3);
  t.is(agents.idle, 2);
  await waitFor('the idle sockets to be closed', () => agents.idle === 0 && srv.open() === 0);
});

test('destroy closes idle sockets', async (t) => {
  const srv = await raw(t, (sock) => sock.write(OK));
  const agents = new HttpAgents();
  t.is((await httpProbe(httpConfig(`${srv.base}/`), agents)(soon())).status, 'passing');
  t.is(srv.open(), 1);
  agents.destroy();
  await waitFor('the server to see the socket closed', () => srv.open() === 0);
  t.is(agents.idle, 0);
});

test.serial('an idle socket does not hold the process open', async (t) => {
  const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
  const srv = await raw(t, (sock) => {
    sock.unref(); // the server's side: only the client's socket is counted
    sock.write(OK);
  });
  const agents = pool(t);
  const before = sockets();
  t.is((await httpProbe(httpConfig(`${srv.base}/`), agents)(soon())).status, 'passing');
  t.is(agents.idle, 1);
  t.is(sockets(), before);
});
