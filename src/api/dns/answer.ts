/**
 * Pure answer building: catalog rows in, DNS records out, as Consul's DNS server builds them
 * (agent/dns.go): which instances are healthy, A/AAAA/CNAME for address questions, SRV with the
 * target's address in the additional section, node records with their metadata as TXT, SOA and NS
 * for the domain, and trimming a response to what its transport can carry.
 *
 * No I/O, no clock, no randomness of its own: `now` and `rng` come from the caller.
 */

import { isIP } from 'node:net';
import type { Answer, Packet, StringAnswer } from 'dns-packet';
import type { CheckRow, NodeRow, ServiceRow } from '../../catalog/types.ts';
import { ipToHex, isWireName } from './names.ts';
import { messageLength } from './wire.ts';

export interface ServiceInstance {
  node: NodeRow;
  service: ServiceRow;
  checks: CheckRow[];
}

/**
 * Consul's `CheckServiceNodes.Filter`: an instance with any critical check is dropped; with
 * `onlyPassing`, one with any check not passing (warning, maintenance) is dropped too.
 */
export function healthyInstances(rows: readonly ServiceInstance[], onlyPassing: boolean): ServiceInstance[] {
  return rows.filter((r) =>
    r.checks.every((c) => c.Status !== 'critical' && (!onlyPassing || c.Status === 'passing')),
  );
}

/** Fisher–Yates with the caller's random source: each answer lists instances in a new order. */
export function shuffle<T>(items: readonly T[], rng: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** What every record of one answer shares. */
export interface RecordContext {
  /** The question's name as asked (case kept, as Consul echoes it). */
  qname: string;
  qtype: string;
  /** The domain the question was asked in (domain or alt domain), lowercase with a trailing dot. */
  domain: string;
  /** The datacenter the lookup was for, used in SRV targets. */
  datacenter: string;
  /** Seconds. */
  ttl: number;
}

const fqdn = (name: string): string => (name.endsWith('.') ? name : `${name}.`);
const sameName = (a: string, b: string): boolean => fqdn(a).toLowerCase() === fqdn(b).toLowerCase();

/** `<node>.node.<dc>.<domain>`, Consul's canonical name of a node. */
export function nodeFqdn(node: string, datacenter: string, domain: string): string {
  return `${node}.node.${datacenter}.${domain}`;
}

/**
 * An A or AAAA record for `ip` when the question type takes that family (Consul's
 * `makeARecord`: A for A/ANY/SRV/NS/TXT questions, AAAA for AAAA/ANY/SRV/NS/TXT), else undefined.
 */
export function addressRecord(
  qtype: string,
  ip: string,
  name: string,
  ttl: number,
): StringAnswer | undefined {
  const family = isIP(ip);
  const both = qtype === 'SRV' || qtype === 'ANY' || qtype === 'NS' || qtype === 'TXT';
  if (family === 4 && (both || qtype === 'A')) return { type: 'A', name, ttl, class: 'IN', data: ip };
  if (family === 6 && (both || qtype === 'AAAA')) return { type: 'AAAA', name, ttl, class: 'IN', data: ip };
  return undefined;
}

function cname(name: string, target: string, ttl: number): StringAnswer {
  return { type: 'CNAME', name, ttl, class: 'IN', data: fqdn(target) };
}

/**
 * The weight of an instance's SRV record (Consul's `findWeight`): its `Weights.Warning` when one
 * of its checks warns, else `Weights.Passing`.
 */
export function srvWeight(inst: ServiceInstance): number {
  const own = inst.checks.filter((c) => c.ServiceName === inst.service.Service || c.ServiceName === '');
  const w = inst.service.Weights ?? { Passing: 1, Warning: 1 };
  const weight = own.some((c) => c.Status === 'warning') ? w.Warning : w.Passing;
  return Math.max(0, Math.min(65535, Math.trunc(weight)));
}

/** RFC 1464 `key=value`, with Consul's escaping of backquotes, `=` and edge spaces in the key. */
export function rfc1464(key: string, value: string): string {
  let k = key.replaceAll('`', '``').replaceAll('=', '`=');
  k = k.replace(/^ +/, (s) => '` '.repeat(s.length)).replace(/ +$/, (s) => '` '.repeat(s.length));
  return `${k}=${value.replaceAll('`', '``')}`;
}

/** A node's metadata as TXT records (`rfc1035-` keys give their bare value), sorted by key. */
export function nodeMetaTxt(node: NodeRow, name: string, ttl: number): Answer[] {
  return (
    Object.keys(node.Meta ?? {})
      .sort()
      .map((key) =>
        key.toLowerCase().startsWith('rfc1035-') ? node.Meta[key] : rfc1464(key, node.Meta[key]),
      )
      // A TXT string is at most 255 bytes; a longer pair cannot be sent as one.
      .filter((txt) => Buffer.byteLength(txt) <= 255)
      .map((txt): Answer => ({ type: 'TXT', name, ttl, class: 'IN', data: [txt] }))
  );
}

/**
 * The records of a service lookup for any question but SRV (Consul's
 * `addServiceNodeRecordsToMessage`): the service address, else the node address, as A/AAAA named
 * like the question; a hostname address becomes a CNAME, answered only when no instance has an
 * IP. Duplicates (two instances at one address) are listed once.
 */
export function serviceAddressAnswers(instances: readonly ServiceInstance[], ctx: RecordContext): Answer[] {
  const answers: Answer[] = [];
  let firstCname: StringAnswer | undefined;
  const seen = new Set<string>();
  for (const inst of instances) {
    const svcAddr = inst.service.Address;
    const nodeAddr = inst.node.Address;
    if (svcAddr === '' && nodeAddr === '') continue;
    let rr: StringAnswer | undefined;
    if (svcAddr === '' || (isIP(svcAddr) === 0 && sameName(svcAddr, ctx.qname) && isIP(nodeAddr) !== 0)) {
      rr =
        isIP(nodeAddr) !== 0
          ? addressRecord(ctx.qtype, nodeAddr, ctx.qname, ctx.ttl)
          : cname(ctx.qname, nodeAddr, ctx.ttl);
    } else if (isIP(svcAddr) !== 0) {
      rr = addressRecord(ctx.qtype, svcAddr, ctx.qname, ctx.ttl);
    } else {
      rr = cname(ctx.qname, svcAddr, ctx.ttl);
    }
    if (rr === undefined || (rr.type === 'CNAME' && !isWireName(rr.data))) continue;
    const key = `${rr.type} ${rr.data}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (rr.type === 'CNAME') firstCname ??= rr;
    else answers.push(rr);
  }
  if (answers.length === 0 && firstCname !== undefined) return [firstCname];
  return answers;
}

/**
 * The SRV records of a service lookup (Consul's `addServiceSRVRecordsToMessage`): one per
 * distinct node/address/port, priority 1, the health-dependent weight, the target
 * `<node>.node.<dc>.<domain>` when the node address serves, `<hex>.addr.<dc>.<domain>` when the
 * service has its own IP, the hostname itself otherwise; the target's A/AAAA (and the node's
 * metadata as TXT) in the additional section.
 */
export function serviceSrvAnswers(
  instances: readonly ServiceInstance[],
  ctx: RecordContext,
): { answers: Answer[]; additionals: Answer[] } {
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  const seen = new Set<string>();
  for (const inst of instances) {
    const { node, service } = inst;
    const tuple = `${node.Node}:${service.Address}:${service.Port}`;
    if (seen.has(tuple)) continue;
    seen.add(tuple);
    const svcAddr = service.Address;
    const nodeAddr = node.Address;
    if (svcAddr === '' && nodeAddr === '') continue;
    const nodeName = nodeFqdn(node.Node, ctx.datacenter, ctx.domain);
    let target: string;
    let extra: StringAnswer | undefined;
    if (svcAddr === '' || (isIP(svcAddr) === 0 && sameName(svcAddr, ctx.qname) && isIP(nodeAddr) !== 0)) {
      if (isIP(nodeAddr) !== 0) {
        target = nodeName;
        extra = addressRecord('SRV', nodeAddr, target, ctx.ttl);
      } else {
        target = fqdn(nodeAddr);
      }
    } else if (isIP(svcAddr) !== 0) {
      target = `${ipToHex(svcAddr)}.addr.${ctx.datacenter}.${ctx.domain}`;
      extra = addressRecord('SRV', svcAddr, target, ctx.ttl);
    } else {
      target = fqdn(svcAddr);
    }
    if (!isWireName(target)) continue;
    answers.push({
      type: 'SRV',
      name: ctx.qname,
      ttl: ctx.ttl,
      class: 'IN',
      data: { priority: 1, weight: srvWeight(inst), port: service.Port, target },
    });
    if (extra !== undefined) additionals.push(extra);
    if (isWireName(nodeName)) additionals.push(...nodeMetaTxt(node, nodeName, ctx.ttl));
  }
  return { answers, additionals };
}

/**
 * A node lookup (Consul's `handleNodeQuery`): the node's address as A/AAAA (a CNAME when it is a
 * hostname) unless the question is TXT; its metadata as TXT, in the answer for TXT/ANY questions
 * and in the additional section otherwise.
 */
export function nodeAnswers(node: NodeRow, ctx: RecordContext): { answers: Answer[]; additionals: Answer[] } {
  const answers: Answer[] = [];
  if (ctx.qtype !== 'TXT') {
    if (isIP(node.Address) !== 0) {
      const rr = addressRecord(ctx.qtype, node.Address, ctx.qname, ctx.ttl);
      if (rr) answers.push(rr);
    } else if (node.Address !== '' && isWireName(fqdn(node.Address))) {
      answers.push(cname(ctx.qname, node.Address, ctx.ttl));
    }
  }
  const txt = nodeMetaTxt(node, ctx.qname, ctx.ttl);
  if (ctx.qtype === 'TXT' || ctx.qtype === 'ANY') return { answers: [...answers, ...txt], additionals: [] };
  return { answers, additionals: txt };
}

/**
 * The `<hex>.addr` answer: the address itself, in the answer section when the question asks for
 * its family (or ANY), else in the additional section, as Consul does.
 */
export function addrAnswers(
  ip: string,
  family: 4 | 6,
  ctx: RecordContext,
): { answers: Answer[]; additionals: Answer[] } {
  const rr: Answer =
    family === 4
      ? { type: 'A', name: ctx.qname, ttl: ctx.ttl, class: 'IN', data: ip }
      : { type: 'AAAA', name: ctx.qname, ttl: ctx.ttl, class: 'IN', data: ip };
  const wanted = ctx.qtype === 'ANY' || ctx.qtype === (family === 4 ? 'A' : 'AAAA');
  return wanted ? { answers: [rr], additionals: [] } : { answers: [], additionals: [rr] };
}

/** Consul's SOA defaults (`dns_config.soa`); meshd has no option to change them yet. */
export const SOA_DEFAULTS = { refresh: 3600, retry: 600, expire: 86400, minttl: 0 } as const;

/** The zone's SOA: `ns.<domain>`, `hostmaster.<domain>`, the serial is the time in seconds. */
export function soaRecord(domain: string, nowMs: number): Answer {
  return {
    type: 'SOA',
    name: domain,
    ttl: SOA_DEFAULTS.minttl,
    class: 'IN',
    data: {
      mname: `ns.${domain}`,
      rname: `hostmaster.${domain}`,
      serial: Math.floor(nowMs / 1000) >>> 0,
      refresh: SOA_DEFAULTS.refresh,
      retry: SOA_DEFAULTS.retry,
      expire: SOA_DEFAULTS.expire,
      minimum: SOA_DEFAULTS.minttl,
    },
  };
}

/** Node names that may not appear in an NS record (Consul's `InvalidNameRe`). */
const INVALID_NS_NAME = /[^A-Za-z0-9-]/;

/**
 * The zone's name servers (Consul's `getNameserversAndNodeRecord`): up to three of the healthy
 * `consul` service instances (the servers), in the caller's (shuffled) order, each as an NS record
 * for the domain with its address as glue.
 */
export function nameserverRecords(
  servers: readonly ServiceInstance[],
  domain: string,
  datacenter: string,
  ttl: number,
): { ns: Answer[]; glue: Answer[] } {
  const ns: Answer[] = [];
  const glue: Answer[] = [];
  for (const s of servers) {
    if (INVALID_NS_NAME.test(s.node.Node)) continue;
    const name = nodeFqdn(s.node.Node, s.node.Datacenter || datacenter, domain).toLowerCase();
    if (!isWireName(name)) continue;
    ns.push({ type: 'NS', name: domain, ttl, class: 'IN', data: name });
    if (isIP(s.node.Address) !== 0) {
      const rr = addressRecord('ANY', s.node.Address, name, ttl);
      if (rr) glue.push(rr);
    }
    if (ns.length >= 3) break;
  }
  return { ns, glue };
}

// ---- trimming ----

/** RFC 1035's UDP payload without EDNS0. */
export const DEFAULT_UDP_SIZE = 512;
/** Consul's cap on `udp_answer_limit`: ~25 A records fit 512 bytes, fewer keeps answers fast. */
export const MAX_UDP_ANSWER_LIMIT = 8;
/** The largest UDP payload honoured whatever EDNS0 says (Consul: 65535 − 68). */
export const MAX_UDP_DATAGRAM = 65535 - 68;
/** A DNS message over TCP is at most 64 KiB; Consul keeps 12 bytes of slack. */
export const MAX_TCP_SIZE = 65523;

export interface TrimLimits {
  transport: 'udp' | 'tcp';
  /** The requester's EDNS0 UDP payload size, undefined without EDNS0. */
  ednsSize: number | undefined;
  udpAnswerLimit: number;
  qtype: string;
}

/** The UDP payload a response may use for a requester (512, or its EDNS0 size within bounds). */
export function udpPayloadLimit(ednsSize: number | undefined): number {
  const size = ednsSize !== undefined && ednsSize > DEFAULT_UDP_SIZE ? ednsSize : DEFAULT_UDP_SIZE;
  return Math.min(size, MAX_UDP_DATAGRAM);
}

/**
 * Cuts `p`'s answers to what the transport carries, keeping the additional section in step with
 * the SRV targets left (Consul's `trimUDPResponse` / `trimTCPResponse`). Over UDP without EDNS0
 * (or with a 512-byte buffer) at most min(udp_answer_limit, 8) answers go out; then answers are
 * dropped (authority first) until the message fits the payload size, but one answer always
 * stays. Returns whether answers were dropped.
 */
export function trimResponse(p: Packet, limits: TrimLimits): boolean {
  const answers = p.answers ?? [];
  const original = answers.length;
  const extras = p.additionals ?? [];
  const hasExtra = extras.some((a) => a.type !== 'OPT');
  // Built on the first cut only: most answers fit as they are.
  let index: Map<string, Answer[]> | undefined;
  const sync = (): void => {
    if (!hasExtra) return;
    index ??= indexByName(extras);
    p.additionals = [...syncExtra(p.answers ?? [], index), ...extras.filter((a) => a.type === 'OPT')];
  };
  let maxSize: number;
  if (limits.transport === 'udp') {
    maxSize = udpPayloadLimit(limits.ednsSize);
    const maxAnswers = Math.min(MAX_UDP_ANSWER_LIMIT, limits.udpAnswerLimit);
    if (maxSize === DEFAULT_UDP_SIZE && answers.length > maxAnswers) {
      p.answers = answers.slice(0, maxAnswers);
      sync();
    }
    // Consul keeps 8 bytes for the UDP header below the payload size.
    maxSize -= 8;
  } else {
    maxSize = MAX_TCP_SIZE;
    const cap = limits.qtype === 'SRV' ? 1024 : 4096;
    if (answers.length > cap) {
      p.answers = answers.slice(0, cap);
      sync();
    }
  }
  let size = messageLength(p);
  while ((p.answers ?? []).length > 1 && size > maxSize) {
    if ((p.authorities ?? []).length > 0) p.authorities = [];
    const current = p.answers ?? [];
    if (size - maxSize > 100) p.answers = current.slice(0, binaryTruncate(p, current, maxSize, sync));
    else p.answers = current.slice(0, current.length - 1);
    sync();
    size = messageLength(p);
  }
  return (p.answers ?? []).length < original;
}

/** The most answers (a prefix of `all`) whose message fits `maxSize`, found by bisection. */
function binaryTruncate(p: Packet, all: Answer[], maxSize: number, sync: () => void): number {
  let lo = 0;
  let hi = all.length + 1;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    p.answers = all.slice(0, mid);
    sync();
    const len = messageLength(p);
    if (len <= maxSize) {
      if (maxSize - len < 10) return mid;
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return Math.max(lo, 1);
}

function indexByName(rrs: readonly Answer[]): Map<string, Answer[]> {
  const index = new Map<string, Answer[]>();
  for (const rr of rrs) {
    if (rr.type === 'OPT') continue;
    const key = fqdn(rr.name).toLowerCase();
    const list = index.get(key);
    if (list) list.push(rr);
    else index.set(key, [rr]);
  }
  return index;
}

/** The additional records the remaining SRV answers need (their targets'), each once. */
function syncExtra(answers: readonly Answer[], index: Map<string, Answer[]>): Answer[] {
  const out: Answer[] = [];
  const done = new Set<string>();
  for (const rr of answers) {
    if (rr.type !== 'SRV') continue;
    const target = fqdn(rr.data.target).toLowerCase();
    if (done.has(target)) continue;
    done.add(target);
    out.push(...(index.get(target) ?? []));
  }
  return out;
}
