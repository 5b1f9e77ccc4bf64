/**
 * The vocabulary of the membership protocol: members as the core tracks them, the updates that
 * spread between agents, the messages that carry them, and the events the core reports.
 */

export interface MemberInfo {
  name: string;
  /** Node ID: tells two agents claiming one name apart. */
  id: string;
  /** Gossip address, "ip:port"; opaque to the core. */
  addr: string;
  /** Tags: role, dc, ports, version, ... */
  meta: Record<string, string>;
}

export type MemberStatus = 'alive' | 'suspect' | 'failed' | 'left';

export interface Member extends MemberInfo {
  status: MemberStatus;
  incarnation: number;
  /** When the status last changed, on the core's clock (ms). */
  statusSince: number;
}

export type MembershipEvent =
  | { type: 'join' | 'update' | 'suspect' | 'alive' | 'failed' | 'leave' | 'reap'; member: Member }
  | { type: 'conflict'; existing: Member; other: MemberInfo }
  | { type: 'join-ack'; addr: string; members: number };

/**
 * Longest user message (Serf's user events, opaque to the core), in UTF-16 units as JSON strings
 * count them. A user event is at most 512 bytes of name, payload and filters (Consul's limit), so
 * its JSON stays far below this even with every character escaped.
 */
export const MAX_USER_MESSAGE_LENGTH = 8_192;

/** A user message in a push-pull: how long ago the sender first heard it decides whether to deliver it. */
export interface RecentUserMessage {
  body: string;
  ageMs: number;
}

/**
 * A statement about one member at one incarnation. `by` names who declared a suspicion or a
 * failure (distinct declarers confirm a suspicion).
 */
export type Update =
  | { kind: 'alive'; name: string; id: string; addr: string; meta: Record<string, string>; inc: number }
  | { kind: 'suspect'; name: string; inc: number; by: string }
  | { kind: 'dead'; name: string; inc: number; by: string }
  | { kind: 'left'; name: string; inc: number };

export interface Sender {
  name: string;
  addr: string;
}

interface Base {
  from: Sender;
  /** Piggybacked updates. */
  updates: Update[];
  /** Piggybacked user messages (absent when none: agents before it ignore the field). */
  user?: string[];
}

export type GossipMessage =
  | (Base & { type: 'ping'; seq: number; target: string })
  | (Base & { type: 'ack'; seq: number })
  | (Base & { type: 'nack'; seq: number })
  | (Base & { type: 'ping-req'; seq: number; target: string; targetAddr: string })
  | (Base & {
      type: 'push-pull';
      seq: number;
      join: boolean;
      reply: boolean;
      state: Update[];
      /** The sender's recent user messages, so that one a member missed is repaired. */
      recent?: RecentUserMessage[];
    })
  | (Base & { type: 'gossip' });

export interface Outgoing {
  to: string;
  message: GossipMessage;
}
