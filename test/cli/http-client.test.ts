import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import {
  ApiClient,
  ClientConfigError,
  encodeQuery,
  envSetting,
  escapePath,
  parseHttpAddr,
  resolveHttpConfig,
} from '../../src/cli/http-client.ts';
import { tempDir } from './fake-consul.ts';

test('parseHttpAddr takes host:port, http:// and https:// addresses', (t) => {
  t.deepEqual(parseHttpAddr('127.0.0.1:8500'), {
    scheme: 'http',
    host: '127.0.0.1',
    port: 8500,
    base: 'http://127.0.0.1:8500',
  });
  t.like(parseHttpAddr('http://agent.local:18500'), { scheme: 'http', host: 'agent.local', port: 18500 });
  t.like(parseHttpAddr('https://agent.local:8501/'), {
    scheme: 'https',
    port: 8501,
    base: 'https://agent.local:8501',
  });
  t.like(parseHttpAddr('HTTPS://a:1'), { scheme: 'https' });
});

test('parseHttpAddr: IPv6, default ports, CONSUL_HTTP_SSL without a scheme, unix sockets', (t) => {
  t.like(parseHttpAddr('[::1]:8500'), { host: '::1', port: 8500, base: 'http://[::1]:8500' });
  t.like(parseHttpAddr('localhost'), { port: 80, base: 'http://localhost:80' });
  t.like(parseHttpAddr('https://localhost'), { port: 443 });
  t.like(parseHttpAddr('127.0.0.1:8501', true), { scheme: 'https', base: 'https://127.0.0.1:8501' });
  t.like(parseHttpAddr('http://127.0.0.1:8500', true), { scheme: 'http' });
  t.like(parseHttpAddr('unix:///run/meshd.sock'), {
    socketPath: '/run/meshd.sock',
    base: 'unix:///run/meshd.sock',
  });
});

test('parseHttpAddr rejects other schemes and malformed addresses', (t) => {
  t.throws(() => parseHttpAddr('ftp://host:21'), {
    instanceOf: ClientConfigError,
    message: /unsupported scheme "ftp"/,
  });
  for (const bad of ['', 'http://', 'a b:1', 'host:1/path', 'host:99999', 'user@host:1', 'unix://']) {
    t.throws(() => parseHttpAddr(bad), { instanceOf: ClientConfigError }, bad);
  }
});

test('the address comes from the flag, else MESHD_HTTP_ADDR, else CONSUL_HTTP_ADDR, else 127.0.0.1:8500', (t) => {
  const env = { MESHD_HTTP_ADDR: '10.0.0.1:1', CONSUL_HTTP_ADDR: '10.0.0.2:2' };
  t.is(resolveHttpConfig({ httpAddr: 'http://10.0.0.9:9' }, env).endpoint.base, 'http://10.0.0.9:9');
  t.is(resolveHttpConfig({}, env).endpoint.base, 'http://10.0.0.1:1');
  t.is(resolveHttpConfig({}, { CONSUL_HTTP_ADDR: '10.0.0.2:2' }).endpoint.base, 'http://10.0.0.2:2');
  t.is(
    resolveHttpConfig({}, { MESHD_HTTP_ADDR: '', CONSUL_HTTP_ADDR: '10.0.0.2:2' }).endpoint.base,
    'http://10.0.0.2:2',
  );
  t.is(resolveHttpConfig({}, {}).endpoint.base, 'http://127.0.0.1:8500');
  t.is(resolveHttpConfig({}, { CONSUL_HTTP_SSL: 'true' }).endpoint.base, 'https://127.0.0.1:8500');
  t.is(
    resolveHttpConfig({}, { MESHD_HTTP_SSL: '1', CONSUL_HTTP_ADDR: 'h:8501' }).endpoint.base,
    'https://h:8501',
  );
  t.is(resolveHttpConfig({}, { CONSUL_HTTP_SSL: 'false' }).endpoint.scheme, 'http');
});

test('the token comes from -token, -token-file, then the MESHD_ / CONSUL_ variables', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'token');
  writeFileSync(file, '  from-file\n');
  const envFile = join(dir, 'env-token');
  writeFileSync(envFile, 'from-env-file\n');
  const env = { MESHD_HTTP_TOKEN: 'meshd-env', CONSUL_HTTP_TOKEN: 'consul-env' };
  t.is(resolveHttpConfig({ token: 'flag', tokenFile: file }, env).token, 'flag');
  t.is(resolveHttpConfig({ tokenFile: file }, env).token, 'from-file');
  t.is(resolveHttpConfig({}, env).token, 'meshd-env');
  t.is(resolveHttpConfig({}, { CONSUL_HTTP_TOKEN: 'consul-env' }).token, 'consul-env');
  t.is(resolveHttpConfig({}, { CONSUL_HTTP_TOKEN_FILE: envFile }).token, 'from-env-file');
  t.is(resolveHttpConfig({}, {}).token, undefined);
  t.throws(() => resolveHttpConfig({ tokenFile: join(dir, 'missing') }, {}), {
    instanceOf: ClientConfigError,
    message: /cannot read token file/,
  });
});

test('TLS settings come from flags and the CONSUL_ variables', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  writeFileSync(join(dir, 'other.pem'), 'CA2');
  writeFileSync(join(dir, 'README'), 'skip');
  const viaFile = resolveHttpConfig({ caFile: join(dir, 'ca.pem'), tlsServerName: 'server.dc1.consul' }, {});
  t.deepEqual(viaFile.tls.ca?.map(String), ['CA']);
  t.is(viaFile.tls.servername, 'server.dc1.consul');
  t.true(viaFile.tls.rejectUnauthorized);
  const viaEnv = resolveHttpConfig({}, { CONSUL_CAPATH: dir, CONSUL_HTTP_SSL_VERIFY: 'false' });
  t.deepEqual(viaEnv.tls.ca?.map(String), ['CA', 'CA2']);
  t.false(viaEnv.tls.rejectUnauthorized);
});

test('envSetting prefers MESHD_ over CONSUL_ and ignores empty variables', (t) => {
  t.is(envSetting({ MESHD_X: 'a', CONSUL_X: 'b' }, 'X'), 'a');
  t.is(envSetting({ MESHD_X: '', CONSUL_X: 'b' }, 'X'), 'b');
  t.is(envSetting({}, 'X'), undefined);
});

test('paths and queries are encoded as Go encodes them', (t) => {
  t.is(escapePath('a/b c/ü?#%:@=&+'), 'a/b%20c/%C3%BC%3F%23%25:@=&+');
  t.is(
    encodeQuery([
      ['separator', '/'],
      ['keys', ''],
    ]),
    'keys=&separator=%2F',
  );
  t.is(encodeQuery([['node-meta', 'a:b c']]), 'node-meta=a%3Ab+c');
  t.is(encodeQuery([['filter', 'x!*()']]), 'filter=x%21%2A%28%29');
});

test('the client adds dc, and stale only on reads that allow it', (t) => {
  const client = new ApiClient(resolveHttpConfig({ datacenter: 'dc2', stale: true }, {}));
  t.is(client.target('/v1/kv/a', { stale: true }), '/v1/kv/a?dc=dc2&stale=');
  t.is(client.target('/v1/kv/a', { query: [['cas', '3']] }), '/v1/kv/a?cas=3&dc=dc2');
  t.is(new ApiClient(resolveHttpConfig({}, {})).target('/v1/agent/self', { stale: true }), '/v1/agent/self');
});
