/**
 * The leader's reconciliation of gossip members into the catalog, against a real one-server
 * catalog and a scripted member list: alive → node + passing serfHealth (+ the `consul` service
 * for a server), failed → critical, left or reaped → deregistered, and nothing written when the
 * catalog already agrees.
 */

import test from 'ava';
import type { Member, MembershipEvent } from '../../src/agent/gossip/core/types.ts';
import type { MemberSource } from '../../src/agent/server/reconcile.ts';
import { waitFor } from '../support/agent-process.ts';
import { startApiServer } from '../support/api-server.ts';

class ScriptedMembers implements MemberSource {
  list: Member[] = [];
  readonly #listeners = new Set<(e: MembershipEvent) => void>();
  members(): Member[] {
    return this.list;
  }
  on(listener: (e: MembershipEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  set(m: Member, type: 'join' | 'failed' | 'leave' | 'update'): void {
    this.list = [...this.list.filter((o) => o.name !== m.name), m];
    for (const l of this.#listeners) l({ type, member: m });
  }
  reap(name: string): void {
    const m = this.list.find((o) => o.name === name) as Member;
    this.list = this.list.filter((o) => o.name !== name);
    for (const l of this.#listeners) l({ type: 'reap', member: m });
  }
}

function member(name: string, ip: string, status: Member['status'], server = false): Member {
  const meta: Record<string, string> = {
    role: server ? 'consul' : 'node',
    dc: 'dc1',
    id: `00000000-0000-0000-0000-${name
      .padStart(12, '0')
      .slice(-12)
      .replace(/[^0-9a-f]/g, 'a')}`,
  };
  if (server) meta.port = '8300';
  return { name, id: meta.id, addr: `${ip}:8301`, meta, status, incarnation: 1, statusSince: 0 };
}

test('members are reconciled into the catalog with serfHealth, and only when it differs', async (t) => {
  const source = new ScriptedMembers();
  source.list = [member('test-node', '127.0.0.1', 'alive', true), member('web1', '10.0.0.1', 'alive')];
  const api = await startApiServer({ members: source });
  t.teardown(() => api.close());
  const reg = api.server.fsm.state.registry;
  const check = (node: string) => reg.getCheck(node, 'serfHealth');

  await waitFor('web1 registered', () => check('web1')?.Status === 'passing');
  t.is(reg.getNode('web1')?.Address, '10.0.0.1');
  t.is(check('web1')?.Output, 'Agent alive and reachable');
  await waitFor('the leader registered', () => reg.getService('test-node', 'consul') !== undefined);
  t.is(reg.getService('test-node', 'consul')?.Port, 8300, 'a server gets the consul service');
  t.is(reg.getService('web1', 'consul'), undefined, 'a client does not');

  // A service on web1, registered through the catalog API as its agent would.
  const reply = await api.server.write({
    type: 'register',
    node: { Node: 'web1', Address: '10.0.0.1' },
    skipNodeUpdate: true,
    service: { ID: 'web', Service: 'web', Port: 80 },
  });
  t.true(reply.result.ok);

  // Steady state: an update event for an unchanged member writes nothing. Events are handled in
  // order, so once the probe member that follows is registered, web1's update was handled too.
  const before = api.server.fsm.state.lastIndex;
  source.set(member('web1', '10.0.0.1', 'alive'), 'update');
  source.set(member('probe', '10.0.0.9', 'alive'), 'join');
  await waitFor('probe registered', () => check('probe')?.Status === 'passing');
  t.is(api.server.fsm.state.lastIndex, before + 1, 'only the probe was written');

  source.set(member('web1', '10.0.0.1', 'failed'), 'failed');
  await waitFor('web1 critical', () => check('web1')?.Status === 'critical');
  t.is(check('web1')?.Output, 'Agent not live or unreachable');
  t.truthy(reg.getService('web1', 'web'), 'a failed node keeps its services (health filters them)');

  source.set(member('web1', '10.0.0.1', 'alive'), 'join');
  await waitFor('web1 passing again', () => check('web1')?.Status === 'passing');

  source.set(member('web1', '10.0.0.1', 'left'), 'leave');
  await waitFor('web1 deregistered', () => reg.getNode('web1') === undefined);
  t.is(reg.getService('web1', 'web'), undefined);

  // A reaped member, and a catalog node with serfHealth that gossip never knew, both go.
  source.set(member('db1', '10.0.0.2', 'failed'), 'failed');
  await waitFor('db1 critical', () => check('db1')?.Status === 'critical');
  source.reap('db1');
  await waitFor('db1 deregistered', () => reg.getNode('db1') === undefined);

  // The leader never deregisters itself.
  source.set(member('test-node', '127.0.0.1', 'left', true), 'leave');
  source.set(member('other', '10.0.0.3', 'alive'), 'join');
  await waitFor('other registered', () => check('other')?.Status === 'passing');
  t.truthy(reg.getNode('test-node'));
});
