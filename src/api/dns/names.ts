/**
 * What a DNS question asks, read from its name the way Consul's DNS server reads it
 * (agent/dns.go `dispatch`): the domain (or alt domain) is cut off, then the labels are scanned
 * from the right for the query kind (`service`, `node`, `addr`, ...); what is left of it names the
 * thing, what is right of it is the locality (`<dc>` or `<dc>.dc`). Matching is case-insensitive.
 */

/** Where a lookup is aimed: Consul's locality after the kind label. */
export interface Locality {
  datacenter: string;
}

export type DnsQuery =
  /** `[tag.]name.service[.dc]`, `_name._tag.service[.dc]` (RFC 2782), `_name._tcp[.service]`. */
  | { kind: 'service'; service: string; tag: string | undefined; datacenter: string }
  /** `name.node[.dc]`: node names may contain dots. */
  | { kind: 'node'; node: string; datacenter: string }
  /** `<hex>.addr[.dc]`: an IP spelled in hex, 8 digits (IPv4) or 32 (IPv6). */
  | { kind: 'addr'; ip: string; family: 4 | 6 }
  /** A name in our domain that names nothing we answer: NXDOMAIN. */
  | { kind: 'invalid' };

export interface DomainConfig {
  /** Lowercase with a trailing dot, e.g. `consul.`. */
  domain: string;
  altDomain?: string | undefined;
  datacenter: string;
}

/**
 * Which of our domains `name` (lowercase, trailing dot) is in, the longer one when both match
 * (an alt domain may be a subdomain of the domain, or the reverse); undefined when neither.
 */
export function matchDomain(name: string, cfg: DomainConfig): string | undefined {
  const { domain, altDomain } = cfg;
  const [longer, shorter] =
    altDomain !== undefined && altDomain.length > domain.length ? [altDomain, domain] : [domain, altDomain];
  for (const d of [longer, shorter]) {
    if (
      d !== undefined &&
      name.endsWith(d) &&
      (name.length === d.length || name[name.length - d.length - 1] === '.')
    )
      return d;
  }
  return undefined;
}

/** A name as dns-packet decodes it (`a.b`, `.` for the root) → lowercase with a trailing dot. */
export function canonicalName(name: string): string {
  const n = name.toLowerCase().replace(/\.+$/, '');
  return `${n}.`;
}

const KINDS = new Set(['service', 'connect', 'virtual', 'ingress', 'node', 'query', 'addr']);

/**
 * Reads the question `name` (already in `domain`, lowercase, trailing dot). `qtype` matters
 * because Consul lets SRV questions leave out the `service` label (`_web._tcp.consul`).
 */
export function parseQueryName(name: string, qtype: string, domain: string, cfg: DomainConfig): DnsQuery {
  const rest = name === domain ? '' : name.slice(0, name.length - domain.length - 1);
  const labels = rest === '' ? [] : rest.split('.');
  let kind = '';
  let parts: string[] = [];
  let suffixes: string[] = [];
  for (let i = labels.length - 1; i >= 0; i--) {
    if (KINDS.has(labels[i])) {
      kind = labels[i];
      parts = labels.slice(0, i);
      suffixes = labels.slice(i + 1);
      break;
    }
    if (qtype === 'SRV' && labels[i].startsWith('_')) {
      kind = 'service';
      parts = labels.slice(0, i + 1);
      suffixes = labels.slice(i + 1);
      break;
    }
  }
  if (parts.length === 0 || parts.some((p) => p === '')) return { kind: 'invalid' };
  const datacenter = parseLocality(suffixes, cfg.datacenter);
  switch (kind) {
    case 'service': {
      if (datacenter === undefined) return { kind: 'invalid' };
      const n = parts.length;
      if (n === 2 && parts[0].startsWith('_') && parts[1].startsWith('_')) {
        // RFC 2782: `_name._proto`; `_tcp` asks for every instance, any other `_x` is a tag.
        const tag = parts[1].slice(1);
        return {
          kind: 'service',
          service: parts[0].slice(1),
          tag: tag === 'tcp' ? undefined : tag,
          datacenter,
        };
      }
      // Consul ≤ 0.3's form: everything before the service name is one tag, dots included.
      const tag = n >= 2 ? parts.slice(0, n - 1).join('.') : undefined;
      return { kind: 'service', service: parts[n - 1], tag, datacenter };
    }
    case 'node':
      if (datacenter === undefined) return { kind: 'invalid' };
      return { kind: 'node', node: parts.join('.'), datacenter };
    case 'addr':
      return parts.length === 1 ? parseHexAddr(parts[0]) : { kind: 'invalid' };
    default:
      // `connect`, `ingress`, `virtual` and prepared `query` lookups are not served (yet).
      return { kind: 'invalid' };
  }
}

/**
 * The datacenter a lookup names after its kind label: none (ours), `<dc>`, or the labelled
 * form `<dc>.dc`; `default.ns` / `default.ap` (Consul's OSS namespace and partition) are accepted
 * and ignored. Undefined when the suffix is not one of those.
 */
export function parseLocality(suffixes: string[], ourDatacenter: string): string | undefined {
  if (suffixes.length === 0) return ourDatacenter;
  if (suffixes.length === 1) return suffixes[0];
  if (suffixes.length % 2 !== 0) return undefined;
  let dc = ourDatacenter;
  for (let i = 0; i < suffixes.length; i += 2) {
    const [value, label] = [suffixes[i], suffixes[i + 1]];
    if (label === 'dc') dc = value;
    else if ((label === 'ns' || label === 'ap') && value === 'default') continue;
    else return undefined;
  }
  return dc;
}

/** `7f000001` → 127.0.0.1; 32 hex digits → an IPv6 address; anything else is invalid. */
export function parseHexAddr(hex: string): DnsQuery {
  if (!/^[0-9a-f]+$/.test(hex)) return { kind: 'invalid' };
  if (hex.length === 8) {
    const bytes = Buffer.from(hex, 'hex');
    return { kind: 'addr', ip: [...bytes].join('.'), family: 4 };
  }
  if (hex.length === 32) {
    const groups = hex.match(/.{4}/g) as string[];
    return { kind: 'addr', ip: compressIpv6(groups.map((g) => g.replace(/^0+(?=.)/, ''))), family: 6 };
  }
  return { kind: 'invalid' };
}

/** The canonical (RFC 5952) text of eight hex groups: the longest run of ≥ 2 zero groups → `::`. */
function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** An IP address → the hex label `<hex>.addr.<dc>.<domain>` uses (Consul's `encodeIPAsFqdn`). */
export function ipToHex(ip: string): string {
  if (ip.includes(':')) return ipv6Bytes(ip).toString('hex');
  return Buffer.from(ip.split('.').map(Number)).toString('hex');
}

/** The 16 bytes of an IPv6 address (already validated by `net.isIP`). */
function ipv6Bytes(ip: string): Buffer {
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = `${text.slice(0, v4.index)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

/**
 * A reverse-lookup name (`4.3.2.1.in-addr.arpa.`, nibbles under `ip6.arpa.`) → the IP it asks
 * about, or undefined when it is not a complete address.
 */
export function ipFromArpa(name: string): string | undefined {
  const v4 = /^((?:\d{1,3}\.){4})in-addr\.arpa\.$/.exec(name);
  if (v4) {
    const octets = v4[1].slice(0, -1).split('.').reverse().map(Number);
    return octets.every((o) => o <= 255) ? octets.join('.') : undefined;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa\.$/.exec(name);
  if (v6) {
    const hex = v6[1]
      .split('.')
      .filter((x) => x !== '')
      .reverse()
      .join('');
    const parsed = parseHexAddr(hex);
    return parsed.kind === 'addr' ? parsed.ip : undefined;
  }
  return undefined;
}

/**
 * Whether `name` can go on the wire as a name: labels of 1–63 bytes, 253 bytes in all. Node and
 * service names come from the catalog, which does not promise either.
 */
export function isWireName(name: string): boolean {
  const n = name.replace(/\.$/, '');
  if (n === '') return true;
  if (Buffer.byteLength(n) > 253) return false;
  return n.split('.').every((l) => l.length > 0 && Buffer.byteLength(l) <= 63);
}
