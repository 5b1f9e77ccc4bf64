import { ConfigChangeError } from './errors.ts';
import type { Configuration, ServerId, ServerInfo } from './types.ts';

/** A single-server membership change (Raft thesis §4.1: one server at a time keeps majorities overlapping). */
export type ConfigChange =
  | { op: 'addNonvoter'; id: ServerId; address: string }
  | { op: 'promote'; id: ServerId }
  | { op: 'demote'; id: ServerId }
  | { op: 'remove'; id: ServerId };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfiguration(c: Configuration): Uint8Array {
  return encoder.encode(JSON.stringify(c));
}

export function decodeConfiguration(data: Uint8Array): Configuration {
  const c = JSON.parse(decoder.decode(data)) as Configuration;
  if (!Array.isArray(c?.servers)) throw new ConfigChangeError('malformed configuration entry');
  return c;
}

export function sortedServers(servers: ServerInfo[]): ServerInfo[] {
  return servers.slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function voters(c: Configuration): ServerId[] {
  return c.servers.filter((s) => s.suffrage === 'voter').map((s) => s.id);
}

export function isVoter(c: Configuration, id: ServerId): boolean {
  return c.servers.some((s) => s.id === id && s.suffrage === 'voter');
}

export function findServer(c: Configuration, id: ServerId): ServerInfo | undefined {
  return c.servers.find((s) => s.id === id);
}

/** The configuration after `change`, or a ConfigChangeError saying why it is not allowed. */
export function applyChange(c: Configuration, change: ConfigChange): Configuration {
  const existing = findServer(c, change.id);
  const others = c.servers.filter((s) => s.id !== change.id);
  switch (change.op) {
    case 'addNonvoter':
      if (existing) throw new ConfigChangeError(`server ${change.id} is already in the configuration`);
      return {
        servers: sortedServers([
          ...c.servers,
          { id: change.id, address: change.address, suffrage: 'nonvoter' },
        ]),
      };
    case 'promote':
      if (!existing) throw new ConfigChangeError(`server ${change.id} is not in the configuration`);
      if (existing.suffrage === 'voter')
        throw new ConfigChangeError(`server ${change.id} is already a voter`);
      return { servers: sortedServers([...others, { ...existing, suffrage: 'voter' }]) };
    case 'demote':
    case 'remove': {
      if (!existing) throw new ConfigChangeError(`server ${change.id} is not in the configuration`);
      if (change.op === 'demote' && existing.suffrage !== 'voter') {
        throw new ConfigChangeError(`server ${change.id} is not a voter`);
      }
      const next =
        change.op === 'remove'
          ? { servers: others }
          : { servers: sortedServers([...others, { ...existing, suffrage: 'nonvoter' as const }]) };
      if (voters(next).length === 0)
        throw new ConfigChangeError('the configuration must keep at least one voter');
      return next;
    }
  }
}

/**
 * The highest index that a majority of voters has matched: sort the voters' match indexes
 * descending and take the one at position ⌊n/2⌋ (etcd's quorum.MajorityConfig.CommittedIndex).
 */
export function quorumIndex(voterIds: ServerId[], match: (id: ServerId) => number): number {
  if (voterIds.length === 0) return 0;
  const m = voterIds.map(match).sort((a, b) => b - a);
  return m[Math.floor(voterIds.length / 2)];
}

export function hasQuorum(voterIds: ServerId[], yes: (id: ServerId) => boolean): boolean {
  return voterIds.filter(yes).length > voterIds.length / 2;
}
