import test from 'ava';
import { sessionTtlMs } from '../../src/agent/server/leader-duties.ts';
import { waitFor } from '../support/agent-process.ts';
import { startApiServer } from '../support/api-server.ts';

test('session TTL strings', (t) => {
  t.is(sessionTtlMs(''), 0);
  t.is(sessionTtlMs('10s'), 10_000);
  t.is(sessionTtlMs('1.5m'), 90_000);
  t.is(sessionTtlMs('250ms'), 250);
  t.is(sessionTtlMs('junk'), 0);
});

test('the leader destroys a session not renewed within 2×TTL and releases its lock; renew keeps it', async (t) => {
  const api = await startApiServer({ routers: [] });
  t.teardown(() => api.close());
  const { server } = api;
  await server.write({ type: 'register', node: { Node: 'n1', Address: '10.0.0.1' } });
  const mk = async (id: string) => {
    const r = await server.write({
      type: 'session-create',
      session: {
        ID: id,
        Name: '',
        Node: 'n1',
        NodeChecks: [],
        ServiceChecks: [],
        LockDelay: 0,
        Behavior: 'release',
        // Below the HTTP edge's 10 s minimum: the server enforces TTLs whatever their length.
        TTL: '300ms',
      },
    });
    t.true(r.result.ok);
  };
  await mk('expiring');
  await mk('renewed');
  const lock = await server.write({
    type: 'kv',
    op: { Verb: 'lock', Key: 'leader', Value: Buffer.from('me').toString('base64'), Session: 'expiring' },
  });
  t.deepEqual(lock.result, { ok: true, value: true });

  const started = Date.now();
  const keepAlive = setInterval(() => {
    void server.renewSession('renewed');
  }, 100);
  t.teardown(() => clearInterval(keepAlive));
  await waitFor(
    'the unrenewed session to expire',
    () => server.fsm.state.sessions.get('expiring') === undefined,
    10_000,
  );
  t.true(Date.now() - started >= 500, 'not before 2×TTL (600 ms, minus timer slack)');
  t.is(server.fsm.state.kv.get('leader')?.Session, undefined, 'its lock was released');
  t.truthy(server.fsm.state.sessions.get('renewed'), 'the renewed one lives on');
  clearInterval(keepAlive);
  await waitFor(
    'the other to expire once renewals stop',
    () => server.fsm.state.sessions.get('renewed') === undefined,
    10_000,
  );
  t.is(await server.renewSession('renewed'), null);
});
