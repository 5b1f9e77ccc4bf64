/** Reading DNS question names the way Consul's DNS server does (agent/dns.go `dispatch`). */

import test from 'ava';
import {
  canonicalName,
  type DomainConfig,
  ipFromArpa,
  ipToHex,
  isWireName,
  matchDomain,
  parseHexAddr,
  parseLocality,
  parseQueryName,
} from '../../src/api/dns/names.ts';

const cfg: DomainConfig = { domain: 'consul.', altDomain: 'example.internal.', datacenter: 'dc1' };
const parse = (name: string, qtype = 'A') => {
  const n = canonicalName(name);
  const domain = matchDomain(n, cfg);
  if (domain === undefined) throw new Error(`${name} is outside the domains`);
  return parseQueryName(n, qtype, domain, cfg);
};

test('canonicalName lowercases and ends with one dot', (t) => {
  t.is(canonicalName('Web.Service.CONSUL'), 'web.service.consul.');
  t.is(canonicalName('consul.'), 'consul.');
  t.is(canonicalName('.'), '.');
});

test('matchDomain: domain, alt domain, the apex, the longer of two that both match, nothing else', (t) => {
  t.is(matchDomain('web.service.consul.', cfg), 'consul.');
  t.is(matchDomain('consul.', cfg), 'consul.');
  t.is(matchDomain('web.service.example.internal.', cfg), 'example.internal.');
  t.is(matchDomain('notconsul.', cfg), undefined, 'a suffix that is not a label boundary is not ours');
  t.is(matchDomain('example.com.', cfg), undefined);
  const nested = { domain: 'consul.', altDomain: 'dc.consul.', datacenter: 'dc1' };
  t.is(matchDomain('web.service.dc.consul.', nested), 'dc.consul.');
});

test('service lookups: name, tag, dotted tag, datacenter in both forms, case-insensitive', (t) => {
  t.deepEqual(parse('web.service.consul'), {
    kind: 'service',
    service: 'web',
    tag: undefined,
    datacenter: 'dc1',
  });
  t.deepEqual(parse('WEB.Service.Consul'), {
    kind: 'service',
    service: 'web',
    tag: undefined,
    datacenter: 'dc1',
  });
  t.deepEqual(parse('v1.web.service.consul'), {
    kind: 'service',
    service: 'web',
    tag: 'v1',
    datacenter: 'dc1',
  });
  t.deepEqual(parse('a.b.web.service.consul'), {
    kind: 'service',
    service: 'web',
    tag: 'a.b',
    datacenter: 'dc1',
  });
  t.deepEqual(parse('web.service.dc2.consul'), {
    kind: 'service',
    service: 'web',
    tag: undefined,
    datacenter: 'dc2',
  });
  t.deepEqual(parse('web.service.dc2.dc.consul'), {
    kind: 'service',
    service: 'web',
    tag: undefined,
    datacenter: 'dc2',
  });
  t.deepEqual(parse('web.service.example.internal'), {
    kind: 'service',
    service: 'web',
    tag: undefined,
    datacenter: 'dc1',
  });
});

test('RFC 2782: _name._tag and _name._tcp (any tag), with or without the service label for SRV', (t) => {
  t.deepEqual(parse('_web._v1.service.consul', 'SRV'), {
    kind: 'service',
    service: 'web',
    tag: 'v1',
    datacenter: 'dc1',
  });
  t.deepEqual(parse('_web._tcp.service.consul', 'SRV'), {
    kind: 'service',
    service: 'web',
    tag: undefined,
    datacenter: 'dc1',
  });
  t.deepEqual(parse('_web._tcp.consul', 'SRV'), {
    kind: 'service',
    service: 'web',
    tag: undefined,
    datacenter: 'dc1',
  });
  t.deepEqual(parse('_web._tcp.consul', 'A'), { kind: 'invalid' }, 'only SRV may leave out the kind label');
});

test('node lookups keep dots in node names; addr lookups decode hex', (t) => {
  t.deepEqual(parse('foo.node.consul'), { kind: 'node', node: 'foo', datacenter: 'dc1' });
  t.deepEqual(parse('foo.bar.node.dc1.consul'), { kind: 'node', node: 'foo.bar', datacenter: 'dc1' });
  t.deepEqual(parse('7f000001.addr.consul'), { kind: 'addr', ip: '127.0.0.1', family: 4 });
  t.deepEqual(parse('7f000001.addr.dc1.consul'), { kind: 'addr', ip: '127.0.0.1', family: 4 });
  t.deepEqual(parse('20010db8000000000000000000000001.addr.consul'), {
    kind: 'addr',
    ip: '2001:db8::1',
    family: 6,
  });
});

test('names in the domain that ask for nothing we serve are invalid', (t) => {
  for (const name of [
    'consul',
    'service.consul',
    'node.consul',
    'foo.consul',
    'web.service.a.b.c.consul',
    'web.service.dc1.nope.consul',
    '7f00001.addr.consul',
    'zz000001.addr.consul',
    'a.7f000001.addr.consul',
    'web.connect.consul',
    'q.query.consul',
  ]) {
    t.deepEqual(parse(name), { kind: 'invalid' }, name);
  }
});

test('parseLocality: none, <dc>, <dc>.dc, default namespace/partition labels; others refused', (t) => {
  t.is(parseLocality([], 'dc1'), 'dc1');
  t.is(parseLocality(['dc9'], 'dc1'), 'dc9');
  t.is(parseLocality(['dc9', 'dc'], 'dc1'), 'dc9');
  t.is(parseLocality(['default', 'ns', 'dc9', 'dc'], 'dc1'), 'dc9');
  t.is(parseLocality(['x', 'peer'], 'dc1'), undefined);
  t.is(parseLocality(['a', 'b', 'c'], 'dc1'), undefined);
});

test('hex addresses and reverse names round-trip with ipToHex', (t) => {
  t.is(ipToHex('10.1.2.3'), '0a010203');
  t.is(ipToHex('2001:db8::1'), '20010db8000000000000000000000001');
  t.is(ipToHex('::ffff:1.2.3.4'), '00000000000000000000ffff01020304');
  t.deepEqual(parseHexAddr(ipToHex('fe80::1:2')), { kind: 'addr', ip: 'fe80::1:2', family: 6 });
  t.is(ipFromArpa('4.3.2.1.in-addr.arpa.'), '1.2.3.4');
  t.is(ipFromArpa('3.2.1.in-addr.arpa.'), undefined);
  t.is(
    ipFromArpa('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.'),
    '2001:db8::1',
  );
  t.is(ipFromArpa('999.3.2.1.in-addr.arpa.'), undefined);
});

test('isWireName: labels of 1..63 bytes, 253 in all', (t) => {
  t.true(isWireName('web.node.dc1.consul.'));
  t.false(isWireName(`${'a'.repeat(64)}.consul.`));
  t.false(isWireName('a..consul.'));
  t.false(isWireName(`${'abcdefghi.'.repeat(26)}consul.`));
});
