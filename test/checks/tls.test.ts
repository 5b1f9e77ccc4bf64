import './tls-trust.ts';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import test, { type ExecutionContext } from 'ava';
import { CheckRunners } from '../../src/agent/checks/check-runners.ts';
import { type GrpcCheckConfig, grpcProbe } from '../../src/agent/checks/grpc.ts';
import { type H2PingCheckConfig, h2pingProbe } from '../../src/agent/checks/h2ping.ts';
import { HttpAgents, httpProbe } from '../../src/agent/checks/http.ts';
import { type TcpCheckConfig, tcpProbe } from '../../src/agent/checks/tcp.ts';
import { parseCheckDefinition } from '../../src/agent/local/definitions.ts';
import type { LocalState } from '../../src/agent/local/state.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import { waitFor } from '../support/agent-process.ts';
import { FakeClock, httpConfig, localState, never } from './support.ts';

const pem = (name: string): string =>
  readFileSync(new URL(`../fixtures/tls/${name}`, import.meta.url), 'utf8');
/** Signed by the test CA (trusted here, see tls-trust.ts); names only `meshd.test`. */
const SIGNED = { cert: pem('server.pem'), key: pem('server-key.pem') };
/** Its own issuer; names `IP:127.0.0.1`, so the only thing wrong with it is that nobody trusts it. */
const SELF_SIGNED = { cert: pem('self-signed.pem'), key: pem('self-signed-key.pem') };

interface Listening {
  addr: string;
  /** The SNI name of each TLS ClientHello that had one. */
  sni: string[];
  /** TLS handshakes the server completed. */
  handshakes: () => number;
  close: () => Promise<void>;
}

/** Server options for `creds`, recording each SNI name a client sends (none is sent for an IP). */
function serverTls(creds: typeof SIGNED, sni: string[]): tls.TlsOptions {
  return {
    ...creds,
    SNICallback: (name, cb) => {
      sni.push(name);
      cb(null, undefined); // the server's own certificate
    },
  };
}

/** Starts `server` on 127.0.0.1; `make` builds it from the TLS options that record SNI names. */
async function listen(
  make: (sni: string[]) => net.Server,
  close: () => void = () => undefined,
): Promise<Listening> {
  const sni: string[] = [];
  const server = make(sni);
  let handshakes = 0;
  server.on('secureConnection', (s: tls.TLSSocket) => {
    handshakes++;
    s.on('error', () => undefined);
  });
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    addr: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    sni,
    handshakes: () => handshakes,
    close: async () => {
      close();
      server.close();
      await once(server, 'close');
    },
  };
}

/** An https server answering 200 `fine`. */
function httpsServer(creds: typeof SIGNED): Promise<Listening> {
  let s: https.Server | undefined;
  return listen(
    (sni) => {
      s = https.createServer(serverTls(creds, sni), (_req, res) => res.end('fine'));
      return s;
    },
    () => s?.closeAllConnections(),
  );
}

/** A TLS server that completes the handshake, then hangs up. */
function tlsServer(creds: typeof SIGNED): Promise<Listening> {
  return listen((sni) => tls.createServer(serverTls(creds, sni), (s) => s.end()));
}

/** A plain TCP service that greets in clear text, as an SSH server does. */
function bannerServer(): Promise<Listening> {
  const sockets = new Set<net.Socket>();
  return listen(
    () =>
      net.createServer((sock) => {
        sockets.add(sock);
        sock.on('error', () => undefined);
        sock.on('close', () => sockets.delete(sock));
        sock.write('SSH-2.0-OpenSSH_9.2\r\n');
      }),
    () => {
      for (const sock of sockets) sock.destroy();
    },
  );
}

/** An HTTP/2 server, over TLS (ALPN h2) when given a certificate, else cleartext (h2c); counts pings. */
async function h2Server(creds?: typeof SIGNED): Promise<Listening & { pings: () => number }> {
  const sessions = new Set<http2.ServerHttp2Session>();
  let pings = 0;
  const l = await listen(
    (sni) => {
      const s = creds === undefined ? http2.createServer() : http2.createSecureServer(serverTls(creds, sni));
      s.on('session', (session) => {
        sessions.add(session);
        session.on('ping', () => pings++);
        session.on('error', () => undefined);
        session.on('close', () => sessions.delete(session));
      });
      return s;
    },
    () => {
      for (const session of sessions) session.destroy();
    },
  );
  return { ...l, pings: () => pings };
}

const PROTO = fileURLToPath(new URL('./health.proto', import.meta.url));

/** A grpc-js server implementing grpc.health.v1 (everything SERVING), over TLS when given a certificate. */
async function grpcServer(
  creds?: typeof SIGNED,
): Promise<{ addr: string; calls: () => number; close: () => void }> {
  const def = protoLoader.loadSync(PROTO, { enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } };
  };
  let calls = 0;
  const server = new grpc.Server();
  server.addService(pkg.grpc.health.v1.Health.service, {
    Check: (_call: unknown, cb: grpc.sendUnaryData<{ status: string }>) => {
      calls++;
      cb(null, { status: 'SERVING' });
    },
  });
  const credentials =
    creds === undefined
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(
          null,
          [{ private_key: Buffer.from(creds.key), cert_chain: Buffer.from(creds.cert) }],
          false,
        );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { addr: `127.0.0.1:${port}`, calls: () => calls, close: () => server.forceShutdown() };
}

/** A check connection pool for the test; at its end the pool goes, then `srv`. */
function poolClosing(t: ExecutionContext, srv: { close(): Promise<void> | void }): HttpAgents {
  const agents = new HttpAgents();
  t.teardown(async () => {
    agents.destroy();
    await srv.close();
  });
  return agents;
}

const tcp = (address: string, over: Partial<TcpCheckConfig> = {}) =>
  tcpProbe({ address, useTls: true, tlsServerName: '', tlsSkipVerify: false, ...over });

const h2ping = (address: string, over: Partial<H2PingCheckConfig> = {}) =>
  h2pingProbe({ address, useTls: true, tlsServerName: '', tlsSkipVerify: false, ...over });

/** A gRPC probe, closed when the test ends. */
function grpcCheck(t: ExecutionContext, target: string, over: Partial<GrpcCheckConfig> = {}) {
  const p = grpcProbe({
    target,
    useTls: true,
    tlsServerName: '',
    tlsSkipVerify: false,
    timeoutMs: 5_000,
    ...over,
  });
  t.teardown(() => p.close?.());
  return p;
}

test('HTTPS: a self-signed certificate is passing with TLSSkipVerify, critical without', async (t) => {
  const srv = await httpsServer(SELF_SIGNED);
  const agents = poolClosing(t, srv);
  const url = `https://${srv.addr}/ok`;
  t.deepEqual(await httpProbe(httpConfig(url, { tlsSkipVerify: true }), agents)(never()), {
    status: 'passing',
    output: `HTTP GET ${url}: 200 OK Output: fine`,
  });
  // After the skip-verify check kept its connection alive: that socket must not be reused.
  const strict = await httpProbe(httpConfig(url), agents)(never());
  t.is(strict.status, 'critical');
  t.true(strict.output.startsWith(`Get "${url}": self-signed certificate`), strict.output);
  t.is(srv.handshakes(), 1, 'the verifying check did not complete a handshake');
});

test('HTTPS: TLSServerName is sent as SNI and the certificate is checked against it, not the URL host', async (t) => {
  const srv = await httpsServer(SIGNED);
  const agents = poolClosing(t, srv);
  const url = `https://${srv.addr}/ok`;
  t.deepEqual(await httpProbe(httpConfig(url, { tlsServerName: 'meshd.test' }), agents)(never()), {
    status: 'passing',
    output: `HTTP GET ${url}: 200 OK Output: fine`,
  });
  // After the meshd.test check kept its connection alive: a check naming another server must not reuse it.
  const other = await httpProbe(httpConfig(url, { tlsServerName: 'other.test' }), agents)(never());
  t.is(other.status, 'critical');
  t.true(other.output.startsWith(`Get "${url}": Hostname/IP does not match`), other.output);
  t.regex(other.output, /Host: other\.test/);

  const byIp = await httpProbe(httpConfig(url), agents)(never());
  t.is(byIp.status, 'critical');
  t.regex(byIp.output, /IP: 127\.0\.0\.1 is not in the cert's list/);
  t.deepEqual(srv.sni, ['meshd.test', 'other.test'], 'no SNI for an IP');
  t.is(srv.handshakes(), 1);
});

test('HTTPS: runs reuse one kept-alive TLS connection, negotiated as http/1.1 by ALPN', async (t) => {
  const alpn: (string | false | null)[] = [];
  let s: https.Server | undefined;
  const srv = await listen(
    (sni) => {
      s = https.createServer({ ...serverTls(SELF_SIGNED, sni), ALPNProtocols: ['http/1.1'] }, (_req, res) =>
        res.end('fine'),
      );
      s.on('secureConnection', (sock: tls.TLSSocket) => alpn.push(sock.alpnProtocol));
      return s;
    },
    () => s?.closeAllConnections(),
  );
  const agents = poolClosing(t, srv);
  const url = `https://${srv.addr}/ok`;
  const probe = httpProbe(httpConfig(url, { tlsSkipVerify: true }), agents);
  for (let i = 0; i < 3; i++) {
    t.deepEqual(await probe(never()), { status: 'passing', output: `HTTP GET ${url}: 200 OK Output: fine` });
  }
  t.is(srv.handshakes(), 1);
  t.deepEqual(alpn, ['http/1.1']);
});

test('TCPUseTLS: a TLS handshake is passing with TLSSkipVerify and completes on the server too', async (t) => {
  const srv = await tlsServer(SELF_SIGNED);
  t.teardown(srv.close);
  t.deepEqual(await tcp(srv.addr, { tlsSkipVerify: true })(never()), {
    status: 'passing',
    output: `TCP+TLS connect ${srv.addr}: Success`,
  });
  // Not a half-done handshake the service would log as failed on every run.
  await waitFor('the server to complete the handshake', () => srv.handshakes() === 1);

  const strict = await tcp(srv.addr)(never());
  t.is(strict.status, 'critical');
  t.true(strict.output.startsWith('tls: self-signed certificate'), strict.output);
  t.is(srv.handshakes(), 1);
});

test('TCPUseTLS: a service that does not speak TLS is critical, though plain TCP passes', async (t) => {
  const srv = await bannerServer();
  t.teardown(srv.close);
  t.deepEqual(await tcp(srv.addr, { useTls: false })(never()), {
    status: 'passing',
    output: `TCP connect ${srv.addr}: Success`,
  });
  const r = await tcp(srv.addr, { tlsSkipVerify: true })(never());
  t.is(r.status, 'critical');
  t.regex(r.output, /^tls: .*wrong version number/);
});

test('TCPUseTLS: TLSServerName is sent as SNI and the certificate is checked against it', async (t) => {
  const srv = await tlsServer(SIGNED);
  t.teardown(srv.close);
  t.deepEqual(await tcp(srv.addr, { tlsServerName: 'meshd.test' })(never()), {
    status: 'passing',
    output: `TCP+TLS connect ${srv.addr}: Success`,
  });
  const other = await tcp(srv.addr, { tlsServerName: 'other.test' })(never());
  t.is(other.status, 'critical');
  t.regex(other.output, /^tls: Hostname\/IP does not match certificate's altnames: Host: other\.test/);
  const byIp = await tcp(srv.addr)(never());
  t.is(byIp.status, 'critical');
  t.regex(byIp.output, /^tls: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1/);
  t.deepEqual(srv.sni, ['meshd.test', 'other.test'], 'no SNI for an IP');
});

test('GRPCUseTLS: a TLS health server is passing with TLSSkipVerify; an untrusted certificate is critical', async (t) => {
  const srv = await grpcServer(SELF_SIGNED);
  t.teardown(srv.close);
  t.deepEqual(await grpcCheck(t, srv.addr, { tlsSkipVerify: true }).run(never()), {
    status: 'passing',
    output: `gRPC check ${srv.addr}: success`,
  });
  t.is(srv.calls(), 1);
  const strict = await grpcCheck(t, srv.addr).run(never());
  t.is(strict.status, 'critical');
  t.regex(strict.output, /^rpc error: code = Unavailable desc = .*self-signed certificate/);
  t.is(srv.calls(), 1, 'no call went through the untrusted connection');
});

test('GRPCUseTLS against a plaintext server, or plaintext against a TLS server, is critical', async (t) => {
  const plain = await grpcServer();
  const secure = await grpcServer(SELF_SIGNED);
  t.teardown(() => {
    plain.close();
    secure.close();
  });
  const tlsToPlain = await grpcCheck(t, plain.addr, { tlsSkipVerify: true }).run(never());
  t.is(tlsToPlain.status, 'critical');
  t.regex(tlsToPlain.output, /^rpc error: code = Unavailable desc = /);
  const plainToTls = await grpcCheck(t, secure.addr, { useTls: false }).run(never());
  t.is(plainToTls.status, 'critical');
  t.regex(plainToTls.output, /^rpc error: code = Unavailable desc = /);
  t.is(plain.calls() + secure.calls(), 0);
  // Each server does answer the matching client.
  t.is((await grpcCheck(t, plain.addr, { useTls: false }).run(never())).status, 'passing');
  t.is((await grpcCheck(t, secure.addr, { tlsSkipVerify: true }).run(never())).status, 'passing');
});

test('GRPCUseTLS: the certificate is checked against TLSServerName, not the target host', async (t) => {
  const srv = await grpcServer(SIGNED);
  t.teardown(srv.close);
  t.deepEqual(await grpcCheck(t, srv.addr, { tlsServerName: 'meshd.test' }).run(never()), {
    status: 'passing',
    output: `gRPC check ${srv.addr}: success`,
  });
  const other = await grpcCheck(t, srv.addr, { tlsServerName: 'other.test' }).run(never());
  t.is(other.status, 'critical');
  t.regex(other.output, /Hostname\/IP does not match certificate's altnames: Host: other\.test/);
  const byIp = await grpcCheck(t, srv.addr).run(never());
  t.is(byIp.status, 'critical');
  t.regex(byIp.output, /Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1/);
  t.is(srv.calls(), 1);
});

test('H2PingUseTLS: an HTTP/2 server over TLS answers the ping; an untrusted certificate is critical', async (t) => {
  const srv = await h2Server(SELF_SIGNED);
  t.teardown(srv.close);
  t.deepEqual(await h2ping(srv.addr, { tlsSkipVerify: true })(never()), {
    status: 'passing',
    output: 'HTTP2 ping was successful',
  });
  t.is(srv.pings(), 1);
  const strict = await h2ping(srv.addr)(never());
  t.is(strict.status, 'critical');
  t.true(strict.output.startsWith(`Failed to dial to ${srv.addr}: self-signed certificate`), strict.output);
  t.is(srv.pings(), 1);
});

test('H2PingUseTLS against a cleartext (h2c) server is critical; without it the ping passes', async (t) => {
  const srv = await h2Server();
  t.teardown(srv.close);
  const r = await h2ping(srv.addr, { tlsSkipVerify: true })(never());
  t.is(r.status, 'critical');
  t.true(r.output.startsWith(`Failed to dial to ${srv.addr}: `), r.output);
  t.is(srv.pings(), 0);
  t.deepEqual(await h2ping(srv.addr, { useTls: false })(never()), {
    status: 'passing',
    output: 'HTTP2 ping was successful',
  });
  t.is(srv.pings(), 1);
});

test('H2PingUseTLS: TLSServerName is sent as SNI and the certificate is checked against it', async (t) => {
  const srv = await h2Server(SIGNED);
  t.teardown(srv.close);
  t.deepEqual(await h2ping(srv.addr, { tlsServerName: 'meshd.test' })(never()), {
    status: 'passing',
    output: 'HTTP2 ping was successful',
  });
  const other = await h2ping(srv.addr, { tlsServerName: 'other.test' })(never());
  t.is(other.status, 'critical');
  t.regex(
    other.output,
    /^Failed to dial to .*: Hostname\/IP does not match certificate's altnames: Host: other\.test/,
  );
  const byIp = await h2ping(srv.addr)(never());
  t.is(byIp.status, 'critical');
  t.regex(
    byIp.output,
    /^Failed to dial to .*: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1/,
  );
  t.deepEqual(srv.sni, ['meshd.test', 'other.test'], 'no SNI for an IP');
  t.is(srv.pings(), 1);
});

/** Runners over a local state; every check's first run comes at once (rng 0). */
async function runners(t: ExecutionContext) {
  const clock = new FakeClock();
  const state: LocalState = await localState(clock);
  const noCatalog = { read: () => Promise.reject(new Error('no catalog in this test')) };
  const r = new CheckRunners({ state, catalog: noCatalog, clock, logger: silentLogger() }, { rng: () => 0 });
  t.teardown(() => r.stop());
  r.start();
  const add = (def: Record<string, unknown>): void => {
    state.addCheck(parseCheckDefinition({ interval: '10s', ...def }));
    clock.advance(100); // the reconciliation, then the first run
  };
  /** The check once its first run reported. */
  const ran = (id: string) =>
    waitFor(`${id} to run`, () => {
      const c = state.check(id)?.check;
      return c?.Output ? c : undefined;
    });
  return { add, ran };
}

test("a registered check's TLS fields (Consul's names) reach its probe", async (t) => {
  const web = await httpsServer(SELF_SIGNED);
  const raw = await tlsServer(SIGNED);
  const rpc = await grpcServer(SELF_SIGNED);
  const h2 = await h2Server(SELF_SIGNED);
  t.teardown(async () => {
    rpc.close();
    await Promise.all([web.close(), raw.close(), h2.close()]);
  });
  const { add, ran } = await runners(t);
  add({ name: 'web', http: `https://${web.addr}/ok`, tls_skip_verify: true });
  add({ name: 'raw', tcp: raw.addr, tcp_use_tls: true, tls_server_name: 'meshd.test' });
  add({ name: 'rpc', grpc: rpc.addr, grpc_use_tls: true, tls_skip_verify: true });
  add({ name: 'h2', h2ping: h2.addr, h2ping_use_tls: true, tls_skip_verify: true });
  t.like(await ran('web'), {
    Status: 'passing',
    Output: `HTTP GET https://${web.addr}/ok: 200 OK Output: fine`,
  });
  t.like(await ran('raw'), { Status: 'passing', Output: `TCP+TLS connect ${raw.addr}: Success` });
  t.deepEqual(raw.sni, ['meshd.test']);
  t.like(await ran('rpc'), { Status: 'passing', Output: `gRPC check ${rpc.addr}: success` });
  t.like(await ran('h2'), { Status: 'passing', Output: 'HTTP2 ping was successful' });
});

test('H2PingUseTLS: false pings in cleartext', async (t) => {
  const h2c = await h2Server();
  t.teardown(h2c.close);
  const { add, ran } = await runners(t);
  add({ name: 'h2c', h2ping: h2c.addr, h2ping_use_tls: false });
  t.like(await ran('h2c'), { Status: 'passing', Output: 'HTTP2 ping was successful' });
});

// Known bug outside src/agent/checks: Consul defaults H2PingUseTLS to true when H2PING is set, but
// the stored definition (src/agent/local/definitions.ts) drops `false` and applies no default, and
// the runner reads an absent field as false, so meshd pings in cleartext. Make this a plain `test`
// once the default is applied where the definition is parsed.
test('H2PING without H2PingUseTLS uses TLS (Consul defaults it to true)', async (t) => {
  const h2 = await h2Server(SELF_SIGNED);
  t.teardown(h2.close);
  const { add, ran } = await runners(t);
  add({ name: 'h2', h2ping: h2.addr, tls_skip_verify: true });
  t.like(await ran('h2'), { Status: 'passing', Output: 'HTTP2 ping was successful' });
});
