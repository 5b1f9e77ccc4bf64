/**
 * meshd's DNS interface (Consul's, on port 8600): `startDnsServer` wires the agent's catalog
 * through the agent-side cache into the responder, and the responder into UDP and TCP listeners
 * on every client address.
 */

import type { Logger } from 'pino';
import type { CatalogBackend } from '../../agent/backend.ts';
import type { ResolvedConfig } from '../../agent/config/load.ts';
import { CatalogCache } from './cache.ts';
import { parseRecursor } from './recursor.ts';
import { type DnsData, DnsResponder, type DnsResponderConfig } from './responder.ts';
import { type DnsStats, listenDns } from './server.ts';

export type { DnsStats } from './server.ts';

export type DnsConfig = Pick<
  ResolvedConfig,
  'domain' | 'altDomain' | 'recursors' | 'dns' | 'datacenter' | 'clientAddrs'
> & { ports: Pick<ResolvedConfig['ports'], 'dns'> };

export interface StartDnsServerOptions {
  catalog: Pick<CatalogBackend, 'read'>;
  config: DnsConfig;
  logger: Logger;
  /** Overrides `config.ports.dns` (0 picks a free port, for tests). */
  port?: number;
  /** @default Math.random */
  rng?: () => number;
}

export interface DnsServer {
  addresses: string[];
  /** cacheHits/cacheMisses: the agent cache's; cachedAnswers: UDP answers copied from the response cache. */
  stats: DnsStats & { cacheHits: number; cacheMisses: number; cachedAnswers: number };
  /**
   * Applies a reloaded configuration's `dns_config` and `recursors` (Consul reloads these too).
   * The addresses, port, `domain`, `alt_domain` and datacenter need a restart.
   */
  reconfigure(config: DnsConfig): void;
  close(): Promise<void>;
}

/** What the responder reads, answered from the cache. */
export function cachedData(cache: CatalogCache): DnsData {
  return {
    // The key is built by hand (JSON.stringify per query cost more than the lookup); the service's
    // length keeps it unambiguous whatever bytes the names hold.
    serviceInstances: (service, tag) => {
      const key = `dns-service ${service.length}:${service}`;
      return tag === undefined
        ? cache.get('health.service', { service }, key)
        : cache.get('health.service', { service, tags: [tag] }, `${key} ${tag}`);
    },
    node: (node) => cache.get('catalog.node', { node }),
    nodes: () => cache.get('catalog.nodes', {}),
  };
}

export async function startDnsServer(opts: StartDnsServerOptions): Promise<DnsServer> {
  const { config } = opts;
  const logger = opts.logger.child({ component: 'dns' });
  const cache = new CatalogCache(opts.catalog, logger, {
    allowStale: config.dns.allowStale,
    maxStaleMs: config.dns.maxStaleMs,
  });
  const responderConfig = (c: DnsConfig): DnsResponderConfig => ({
    // The domains and the datacenter are the ones the server started with (Consul's too).
    domain: config.domain,
    altDomain: config.altDomain,
    datacenter: config.datacenter,
    recursors: c.recursors.map(parseRecursor),
    nodeTtlMs: c.dns.nodeTtlMs,
    serviceTtlMs: c.dns.serviceTtlMs,
    onlyPassing: c.dns.onlyPassing,
    udpAnswerLimit: c.dns.udpAnswerLimit,
    enableTruncate: c.dns.enableTruncate,
  });
  const responder = new DnsResponder(responderConfig(config), {
    data: cachedData(cache),
    rng: opts.rng,
    version: () => cache.version,
  });
  let listeners: Awaited<ReturnType<typeof listenDns>>;
  try {
    listeners = await listenDns({
      hosts: config.clientAddrs,
      port: opts.port ?? config.ports.dns,
      respond: (req, raw, transport) => responder.respond(req, raw, transport),
      cached: (raw) => responder.cached(raw),
      logger,
    });
  } catch (err) {
    cache.close();
    throw err;
  }
  logger.info({ addresses: listeners.addresses, udp: listeners.udpIo }, 'DNS server listening');
  const stats = listeners.stats as DnsServer['stats'];
  Object.defineProperties(stats, {
    cacheHits: { get: () => cache.stats.hits, enumerable: true },
    cacheMisses: { get: () => cache.stats.misses, enumerable: true },
    cachedAnswers: { get: () => responder.cachedAnswers, enumerable: true },
  });
  return {
    addresses: listeners.addresses,
    stats,
    reconfigure(next) {
      cache.setStale(next.dns.allowStale, next.dns.maxStaleMs);
      responder.reconfigure(responderConfig(next));
    },
    async close() {
      cache.close();
      await listeners.close();
    },
  };
}
