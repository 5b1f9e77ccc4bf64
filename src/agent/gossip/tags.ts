/**
 * What an agent tells the pool about itself in its gossip tags, with Consul's tag names (so
 * `consul members -detailed` habits carry over), and how the rest of the agent reads them back:
 * which members are servers of which datacenter, and where their RPC port is.
 */

import { VERSION } from '../../version.ts';
import type { Member } from './core/types.ts';

export interface TagSource {
  nodeId: string;
  datacenter: string;
  server: boolean;
  bootstrap: boolean;
  bootstrapExpect: number;
  /** Server RPC port (servers only). */
  serverPort: number;
}

export function agentTags(s: TagSource): Record<string, string> {
  const tags: Record<string, string> = {
    role: s.server ? 'consul' : 'node',
    dc: s.datacenter,
    segment: '',
    id: s.nodeId,
    vsn: '2',
    vsn_min: '2',
    vsn_max: '3',
    build: VERSION,
  };
  if (s.server) {
    tags.port = String(s.serverPort);
    tags.raft_vsn = '3';
    if (s.bootstrap) tags.bootstrap = '1';
    if (s.bootstrapExpect > 0) tags.expect = String(s.bootstrapExpect);
  }
  return tags;
}

/** "ip:port" of a member's gossip address → the IP. */
export function memberIp(m: Pick<Member, 'addr'>): string {
  return m.addr.slice(0, m.addr.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

export interface ServerMember {
  name: string;
  id: string;
  /** Server RPC "host:port". */
  rpcAddr: string;
  bootstrapExpect: number;
  status: Member['status'];
}

/** The member as a server of `datacenter`, or undefined when it is a client or of another dc. */
export function asServer(m: Member, datacenter: string): ServerMember | undefined {
  const t = m.meta;
  if (t.role !== 'consul' || t.dc !== datacenter) return undefined;
  const port = Number(t.port);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  const ip = memberIp(m);
  return {
    name: m.name,
    id: t.id ?? '',
    rpcAddr: ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`,
    bootstrapExpect: Number(t.expect ?? 0) || 0,
    status: m.status,
  };
}

/** Serf's member status numbers, as `/v1/agent/members` reports them (suspect counts as alive). */
export function serfStatusCode(status: Member['status'], leaving = false): number {
  if (leaving) return 2;
  switch (status) {
    case 'alive':
    case 'suspect':
      return 1;
    case 'left':
      return 3;
    case 'failed':
      return 4;
  }
}
