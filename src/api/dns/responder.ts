/**
 * One DNS question in, one response out, decided as Consul's DNS server decides (agent/dns.go
 * `handleQuery`, `handlePtr`, `handleRecurse` and miekg/dns's mux):
 *
 * - names in our domain (or alt domain): SOA and NS questions get the zone's SOA / name servers
 *   whatever the name; AXFR is NOTIMP; everything else is looked up by what the name asks for.
 *   Nothing by that name (unknown service, no healthy instance, unknown node, bad name, another
 *   datacenter) is NXDOMAIN; a name that exists without records of the asked type is NOERROR
 *   with no answers (both with the SOA in the authority section); a failed catalog read is
 *   SERVFAIL;
 * - `*.arpa.`: reverse lookups of node addresses, then the recursors, then NXDOMAIN;
 * - anything else goes to the recursors, or is REFUSED when there are none.
 *
 * Sockets, framing and malformed packets are server.ts's job; catalog reads go through `data`.
 */

import type { Answer, DecodedPacket, OptAnswer, Packet } from 'dns-packet';
import dnsPacket from 'dns-packet';
import type { NodeRow, ServiceRow } from '../../catalog/types.ts';
import {
  addrAnswers,
  healthyInstances,
  nameserverRecords,
  nodeAnswers,
  nodeFqdn,
  type RecordContext,
  type ServiceInstance,
  serviceAddressAnswers,
  serviceSrvAnswers,
  shuffle,
  soaRecord,
  trimResponse,
} from './answer.ts';
import { canonicalName, type DnsQuery, ipFromArpa, ipToHex, matchDomain, parseQueryName } from './names.ts';
import { forward, type RecursorAddr } from './recursor.ts';
import { ResponseCache } from './response-cache.ts';
import { encodeMessage } from './wire.ts';

/** Where answers come from (the agent cache in production, anything in tests). */
export interface DnsData {
  /** `health.service`: every instance of `service` (with `tag`), whatever its health. */
  serviceInstances(service: string, tag: string | undefined): Promise<ServiceInstance[]>;
  /** `catalog.node`: null when the node is unknown. */
  node(name: string): Promise<{ node: NodeRow; services: ServiceRow[] } | null>;
  /** `catalog.nodes`. */
  nodes(): Promise<NodeRow[]>;
}

export interface DnsResponderConfig {
  /** Lowercase with a trailing dot. */
  domain: string;
  altDomain?: string | undefined;
  datacenter: string;
  recursors: readonly RecursorAddr[];
  nodeTtlMs: number;
  /** By service name; a key ending in `*` is a prefix, `*` alone matches every service. */
  serviceTtlMs: Record<string, number>;
  onlyPassing: boolean;
  udpAnswerLimit: number;
  enableTruncate: boolean;
}

export interface DnsResponderDeps {
  data: DnsData;
  /** @default Math.random */
  rng?: () => number;
  /** @default Date.now */
  now?: () => number;
  /** @default recursor.ts `forward` */
  forward?: typeof forward;
  /**
   * The version of `data` (bumped whenever anything it returns changes). Given, UDP responses are
   * cached by their query's bytes (response-cache.ts) and served through {@link DnsResponder.cached}.
   */
  version?: () => number;
}

export type Transport = 'udp' | 'tcp';

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const QR = 0x8000;
const AA = dnsPacket.AUTHORITATIVE_ANSWER;
const TC = dnsPacket.TRUNCATED_RESPONSE;
const RD = dnsPacket.RECURSION_DESIRED;
const RA = dnsPacket.RECURSION_AVAILABLE;
const CD = dnsPacket.CHECKING_DISABLED;

/** What a lookup found: the rcode, the records, and whether an SOA belongs in the authority. */
interface LookupResult {
  rcode: number;
  answers: Answer[];
  additionals: Answer[];
  soa: boolean;
}

interface BuiltRecords {
  /** How many instances passed the health filter (0: NXDOMAIN). */
  healthy: number;
  answers: Answer[];
  additionals: Answer[];
}

const MAX_BUILT_PER_ROWS = 64;

const nxdomain = (): LookupResult => ({ rcode: RCODE.NXDOMAIN, answers: [], additionals: [], soa: true });

export class DnsResponder {
  #cfg: DnsResponderConfig;
  readonly #data: DnsData;
  readonly #rng: () => number;
  readonly #now: () => number;
  readonly #forward: typeof forward;
  #built = new WeakMap<ServiceInstance[], Map<string, BuiltRecords>>();
  /** Bumped by {@link reconfigure}: part of the version responses are cached under. */
  #configEpoch = 0;
  readonly #version: () => number;
  readonly #responses: ResponseCache | undefined;

  constructor(cfg: DnsResponderConfig, deps: DnsResponderDeps) {
    this.#cfg = cfg;
    this.#data = deps.data;
    this.#rng = deps.rng ?? Math.random;
    this.#now = deps.now ?? Date.now;
    this.#forward = deps.forward ?? forward;
    const dataVersion = deps.version ?? (() => 0);
    // The data's version counts single changes; a configuration epoch above any it will reach.
    this.#version = () => dataVersion() + this.#configEpoch * 2 ** 40;
    this.#responses =
      deps.version === undefined ? undefined : new ResponseCache({ version: this.#version, now: this.#now });
  }

  /**
   * A reloaded configuration (Consul's `DNSServer.ReloadConfig`): answers from now on follow it,
   * and nothing computed under the previous one is served again.
   */
  reconfigure(cfg: DnsResponderConfig): void {
    this.#cfg = cfg;
    this.#configEpoch++;
    this.#built = new WeakMap();
    this.#responses?.clear();
  }

  /** Response-cache hits so far. */
  get cachedAnswers(): number {
    return this.#responses?.stats.hits ?? 0;
  }

  /**
   * The response to a UDP query with exactly these bytes (but the ID) answered before, if it is
   * still current; undefined otherwise (then {@link respond} answers it).
   */
  cached(raw: Buffer): Buffer | undefined {
    return this.#responses?.get(raw);
  }

  /**
   * The wire response to `req` (decoded from `raw`, exactly one question, already checked by the
   * server). Never throws: an unexpected failure is SERVFAIL.
   */
  async respond(req: DecodedPacket, raw: Buffer, transport: Transport): Promise<Buffer> {
    const version = this.#version();
    try {
      const { out, cacheable } = await this.#respond(req, raw, transport);
      if (cacheable && transport === 'udp') this.#responses?.put(raw, out, version);
      return out;
    } catch {
      const res = reply(req, RCODE.SERVFAIL, AA | (this.#cfg.recursors.length > 0 ? RA : 0));
      try {
        return dnsPacket.encode(res);
      } catch {
        return dnsPacket.encode({ ...res, questions: [] });
      }
    }
  }

  /** The response, and whether it came from our data alone (not a recursor, not a failed read). */
  async #respond(
    req: DecodedPacket,
    raw: Buffer,
    transport: Transport,
  ): Promise<{ out: Buffer; cacheable: boolean }> {
    const q = (req.questions ?? [])[0];
    const name = canonicalName(q.name);
    const domain = matchDomain(name, this.#cfg);
    if (domain === undefined) {
      if (name === 'arpa.' || name.endsWith('.arpa.')) return this.#reverse(req, raw, transport, name);
      return { out: await this.#recurse(req, raw, transport), cacheable: false };
    }
    const recursion = this.#cfg.recursors.length > 0 ? RA : 0;
    const res = reply(req, RCODE.NOERROR, AA | recursion);
    if (q.type === 'SOA' || q.type === 'NS') {
      const { ns, glue } = await this.#nameservers(domain);
      if (q.type === 'SOA') {
        res.answers = [soaRecord(domain, this.#now())];
        res.authorities = ns;
      } else {
        res.answers = ns;
      }
      res.additionals = glue;
    } else if (q.type === 'AXFR') {
      setRcode(res, RCODE.NOTIMP);
    } else {
      let result: LookupResult;
      try {
        result = await this.#lookup(parseQueryName(name, q.type, domain, this.#cfg), q.name, q.type, domain);
      } catch {
        result = { rcode: RCODE.SERVFAIL, answers: [], additionals: [], soa: false };
      }
      setRcode(res, result.rcode);
      res.answers = result.answers;
      res.additionals = result.additionals;
      if (result.soa) res.authorities = [soaRecord(domain, this.#now())];
    }
    const ednsSize = echoEdns(req, res);
    const trimmed = trimResponse(res, {
      transport,
      ednsSize,
      udpAnswerLimit: this.#cfg.udpAnswerLimit,
      qtype: q.type,
    });
    if (trimmed && this.#cfg.enableTruncate && transport === 'udp') res.flags = (res.flags ?? 0) | TC;
    const rcode = (res.flags ?? 0) & 0x000f;
    return { out: encodeFitting(res, transport, ednsSize), cacheable: rcode !== RCODE.SERVFAIL };
  }

  async #lookup(query: DnsQuery, qname: string, qtype: string, domain: string): Promise<LookupResult> {
    switch (query.kind) {
      case 'invalid':
        return nxdomain();
      case 'addr': {
        const ctx = this.#ctx(qname, qtype, domain, this.#cfg.datacenter, this.#cfg.nodeTtlMs);
        return { rcode: RCODE.NOERROR, ...addrAnswers(query.ip, query.family, ctx), soa: false };
      }
      case 'node': {
        // Consul answers only these types for a node; any other is NOERROR with nothing at all.
        if (!['ANY', 'A', 'AAAA', 'TXT'].includes(qtype)) {
          return { rcode: RCODE.NOERROR, answers: [], additionals: [], soa: false };
        }
        if (query.datacenter !== this.#cfg.datacenter) return nxdomain();
        const found = await this.#data.node(query.node);
        if (found === null) return nxdomain();
        const ctx = this.#ctx(qname, qtype, domain, query.datacenter, this.#cfg.nodeTtlMs);
        return { rcode: RCODE.NOERROR, ...nodeAnswers(found.node, ctx), soa: false };
      }
      case 'service': {
        if (query.datacenter !== this.#cfg.datacenter) return nxdomain();
        const all = await this.#data.serviceInstances(query.service, query.tag);
        const built = this.#serviceRecords(all, `${qtype}\n${qname}\n${domain}`, () => {
          const healthy = healthyInstances(all, this.#cfg.onlyPassing);
          const ctx = this.#ctx(
            qname,
            qtype,
            domain,
            query.datacenter,
            serviceTtlMs(this.#cfg, query.service),
          );
          const records =
            qtype === 'SRV'
              ? serviceSrvAnswers(healthy, ctx)
              : { answers: serviceAddressAnswers(healthy, ctx), additionals: [] };
          return { healthy: healthy.length, ...records };
        });
        if (built.healthy === 0) return nxdomain();
        // Shuffled for every answer, so clients that take the first record spread the load.
        const answers = shuffle(built.answers, this.#rng);
        // Instances, but none with a record of this type: NODATA.
        return { rcode: RCODE.NOERROR, answers, additionals: built.additionals, soa: answers.length === 0 };
      }
    }
  }

  /**
   * The records of one service answer, built once per cache value and question: the cache hands
   * out the same rows object until the catalog changes, so a warm question only shuffles and
   * copies bytes (wire.ts keeps each record's encoding).
   */
  #serviceRecords(rows: ServiceInstance[], key: string, build: () => BuiltRecords): BuiltRecords {
    let byQuestion = this.#built.get(rows);
    if (byQuestion === undefined) {
      byQuestion = new Map();
      this.#built.set(rows, byQuestion);
    }
    let built = byQuestion.get(key);
    if (built === undefined) {
      // Bounded: names differing only in case are different keys.
      if (byQuestion.size >= MAX_BUILT_PER_ROWS) byQuestion.clear();
      built = build();
      byQuestion.set(key, built);
    }
    return built;
  }

  #ctx(qname: string, qtype: string, domain: string, datacenter: string, ttlMs: number): RecordContext {
    return { qname, qtype, domain, datacenter, ttl: Math.floor(ttlMs / 1000) };
  }

  async #nameservers(domain: string): Promise<{ ns: Answer[]; glue: Answer[] }> {
    try {
      const servers = healthyInstances(
        await this.#data.serviceInstances('consul', undefined),
        this.#cfg.onlyPassing,
      );
      return nameserverRecords(
        shuffle(servers, this.#rng),
        domain,
        this.#cfg.datacenter,
        Math.floor(this.#cfg.nodeTtlMs / 1000),
      );
    } catch {
      // Consul answers the SOA without name servers when it cannot list the servers.
      return { ns: [], glue: [] };
    }
  }

  /** PTR: a node with that address, else the recursors, else NXDOMAIN with our SOA. */
  async #reverse(
    req: DecodedPacket,
    raw: Buffer,
    transport: Transport,
    name: string,
  ): Promise<{ out: Buffer; cacheable: boolean }> {
    const recursion = this.#cfg.recursors.length > 0 ? RA : 0;
    const res = reply(req, RCODE.NOERROR, AA | recursion);
    const ip = ipFromArpa(name);
    if (ip !== undefined) {
      const hex = ipToHex(ip);
      const nodes = await this.#data.nodes();
      const node = nodes.find((n) => isAddress(n.Address) && ipToHex(n.Address) === hex);
      if (node !== undefined) {
        const target = nodeFqdn(node.Node, node.Datacenter || this.#cfg.datacenter, this.#cfg.domain);
        res.answers = [
          { type: 'PTR', name: (req.questions ?? [])[0].name, ttl: 0, class: 'IN', data: target },
        ];
      }
    }
    if ((res.answers ?? []).length === 0) {
      if (this.#cfg.recursors.length > 0) {
        return { out: await this.#recurse(req, raw, transport), cacheable: false };
      }
      setRcode(res, RCODE.NXDOMAIN);
      res.authorities = [soaRecord(this.#cfg.domain, this.#now())];
    }
    const ednsSize = echoEdns(req, res);
    return { out: encodeFitting(res, transport, ednsSize), cacheable: true };
  }

  /** Outside our domains: the recursors' answer, SERVFAIL when they all fail, REFUSED without any. */
  async #recurse(req: DecodedPacket, raw: Buffer, transport: Transport): Promise<Buffer> {
    if (this.#cfg.recursors.length === 0) return dnsPacket.encode(reply(req, RCODE.REFUSED, 0));
    const answer = await this.#forward(raw, this.#cfg.recursors, transport);
    if (answer !== undefined) return answer;
    const res = reply(req, RCODE.SERVFAIL, RA);
    echoEdns(req, res);
    return dnsPacket.encode(res);
  }
}

const isAddress = (a: string): boolean => /^[0-9.]+$/.test(a) || a.includes(':');

/**
 * The TTL of a service's answers (Consul's `GetTTLForService`): an exact `service_ttl` key first,
 * else the longest `prefix*` key that matches.
 */
export function serviceTtlMs(cfg: Pick<DnsResponderConfig, 'serviceTtlMs'>, service: string): number {
  const s = service.toLowerCase();
  let best: { len: number; ttl: number } | undefined;
  for (const [key, ttl] of Object.entries(cfg.serviceTtlMs)) {
    const k = key.toLowerCase();
    if (!k.endsWith('*')) {
      if (k === s) return ttl;
      continue;
    }
    const prefix = k.slice(0, -1);
    if (s.startsWith(prefix) && (best === undefined || prefix.length > best.len))
      best = { len: prefix.length, ttl };
  }
  return best?.ttl ?? 0;
}

/**
 * A response skeleton as miekg/dns's `SetReply` makes it: same ID and opcode, the question, RD
 * and CD copied for a QUERY.
 */
function reply(req: DecodedPacket, rcode: number, flags: number): Packet {
  const opcodeBits = (req.flags ?? 0) & 0x7800;
  const copied = opcodeBits === 0 ? (req.flags ?? 0) & (RD | CD) : 0;
  return {
    type: 'response',
    id: req.id ?? 0,
    flags: QR | opcodeBits | copied | flags | rcode,
    questions: (req.questions ?? []).slice(0, 1),
    answers: [],
    authorities: [],
    additionals: [],
  };
}

function setRcode(p: Packet, rcode: number): void {
  p.flags = ((p.flags ?? 0) & ~0x000f) | rcode;
}

/**
 * When the request carried EDNS0, the response does too, echoing its UDP size (Consul's
 * `setEDNS`); returns that size.
 */
function echoEdns(req: DecodedPacket, res: Packet): number | undefined {
  const opt = (req.additionals ?? []).find((a): a is OptAnswer => a.type === 'OPT');
  if (opt === undefined) return undefined;
  res.additionals = [...(res.additionals ?? []), optRecord(opt.udpPayloadSize)];
  return opt.udpPayloadSize;
}

/**
 * Our OPT record for a requester's UDP size. Shared per size (clients use a handful of sizes), so
 * wire.ts encodes it once rather than per answer; a bounded table, as the size comes off the wire.
 */
const optRecords = new Map<number, Answer>();
function optRecord(udpPayloadSize: number): Answer {
  let rr = optRecords.get(udpPayloadSize);
  if (rr === undefined) {
    rr = {
      type: 'OPT',
      name: '.',
      udpPayloadSize,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      options: [],
    } as unknown as Answer;
    if (optRecords.size < 64) optRecords.set(udpPayloadSize, rr);
  }
  return rr;
}

/**
 * Encodes `res`; over UDP, a message still larger than the requester can take (one answer too big
 * alone, which Consul sends anyway) loses its additional records, then its answers, and gets TC
 * so the requester retries over TCP rather than never getting the datagram.
 */
function encodeFitting(res: Packet, transport: Transport, ednsSize: number | undefined): Buffer {
  let out = encodeMessage(res);
  if (transport === 'tcp') return out;
  const limit = Math.max(512, Math.min(ednsSize ?? 512, 65535 - 68));
  if (out.length <= limit) return out;
  res.additionals = (res.additionals ?? []).filter((a) => a.type === 'OPT');
  res.authorities = [];
  out = encodeMessage(res);
  if (out.length <= limit) return out;
  res.answers = [];
  res.flags = (res.flags ?? 0) | TC;
  return encodeMessage(res);
}
