/** Shared by the DNS tests: a catalog with services in given health states, and asking questions. */

import type { Answer, DecodedPacket, Packet, RecordType } from 'dns-packet';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/agent/logger.ts';
import { CatalogCache } from '../../src/api/dns/cache.ts';
import { cachedData } from '../../src/api/dns/index.ts';
import { DnsResponder, type DnsResponderConfig, type Transport } from '../../src/api/dns/responder.ts';
import type { HealthStatus } from '../../src/catalog/types.ts';
import type { MemoryCatalog } from '../support/memory-catalog.ts';

export interface Instance {
  node: string;
  address: string;
  service: string;
  id?: string;
  port?: number;
  serviceAddress?: string;
  tags?: string[];
  status?: HealthStatus;
  meta?: Record<string, string>;
  weights?: { Passing: number; Warning: number };
}

export function register(cat: MemoryCatalog, i: Instance): void {
  const id = i.id ?? i.service;
  cat.apply({
    type: 'register',
    node: { Node: i.node, Address: i.address, Meta: i.meta },
    service: {
      ID: id,
      Service: i.service,
      Port: i.port ?? 80,
      Address: i.serviceAddress ?? '',
      Tags: i.tags ?? [],
      ...(i.weights ? { Weights: i.weights } : {}),
    },
    checks: i.status ? [{ CheckID: `check:${id}`, Name: 'c', Status: i.status, ServiceID: id }] : [],
  });
}

export const baseConfig: DnsResponderConfig = {
  domain: 'consul.',
  altDomain: 'alt.test.',
  datacenter: 'dc1',
  recursors: [],
  nodeTtlMs: 0,
  serviceTtlMs: {},
  onlyPassing: false,
  udpAnswerLimit: 3,
  enableTruncate: false,
};

export function responderFor(
  cat: MemoryCatalog,
  cfg: Partial<DnsResponderConfig> = {},
  deps: Partial<ConstructorParameters<typeof DnsResponder>[1]> = {},
): { responder: DnsResponder; cache: CatalogCache } {
  const cache = new CatalogCache(cat, silentLogger());
  const responder = new DnsResponder({ ...baseConfig, ...cfg }, { data: cachedData(cache), ...deps });
  return { responder, cache };
}

export interface AskOptions {
  transport?: Transport;
  /** EDNS0 UDP payload size; none = no OPT record. */
  edns?: number;
  id?: number;
}

/** `type` is a record type name (`ANY` included, which dns-packet's types leave out). */
export function query(name: string, type: RecordType | 'ANY', opts: AskOptions = {}): Buffer {
  const p: Packet = {
    type: 'query',
    id: opts.id ?? 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as RecordType, name, class: 'IN' }],
  };
  if (opts.edns !== undefined) {
    p.additionals = [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: opts.edns,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ];
  }
  return dnsPacket.encode(p);
}

export interface Reply {
  raw: Buffer;
  packet: DecodedPacket;
  rcode: string;
  tc: boolean;
  aa: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

export function readReply(raw: Buffer): Reply {
  const packet = dnsPacket.decode(raw);
  const additionals = (packet.additionals ?? []).filter((a) => a.type !== 'OPT');
  return {
    raw,
    packet,
    rcode: (packet as unknown as { rcode: string }).rcode,
    tc: packet.flag_tc,
    aa: packet.flag_aa,
    answers: packet.answers ?? [],
    authorities: packet.authorities ?? [],
    additionals,
  };
}

export async function ask(
  responder: DnsResponder,
  name: string,
  type: RecordType | 'ANY',
  opts: AskOptions = {},
): Promise<Reply> {
  const raw = query(name, type, opts);
  const out = await responder.respond(dnsPacket.decode(raw), raw, opts.transport ?? 'udp');
  return readReply(out);
}

/** The `data` of each record, sorted, for order-free comparisons. */
export const datas = (rrs: readonly Answer[]): string[] =>
  rrs.map((r) => JSON.stringify((r as { data: unknown }).data)).sort();
