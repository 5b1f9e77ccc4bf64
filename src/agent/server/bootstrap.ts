/**
 * How servers without Raft state find each other and form (or join) a cluster, through the server
 * RPC port until gossip takes this over (Consul's `maybeBootstrap`, fed by serf there).
 *
 * Every retry interval a waiting server asks each address it knows (`-retry-join` plus every
 * server learned from replies, so knowledge spreads transitively) for its {@link DiscoveredServer}
 * description, introducing itself in the same call. Then:
 * - if any server knows a leader, or already runs Raft, a cluster exists: start Raft empty and ask
 *   the leader to add us (as a non-voter, promoted once caught up);
 * - else with `-bootstrap-expect=N`, once N servers of our datacenter with the same expectation are
 *   known, bootstrap with exactly those N (sorted by ID). Every one of them computes the same set and
 *   writes the same first configuration entry, which is what makes the simultaneous bootstrap safe
 *   (Consul relies on the same property). A server that sees a different expectation refuses to
 *   bootstrap and says so, as Consul does.
 */

import type { Logger } from 'pino';
import type { Configuration } from '../../raft/types.ts';
import type { RpcClient } from '../rpc/client.ts';

export interface DiscoveredServer {
  id: string;
  name: string;
  /** Server RPC address. */
  address: string;
  datacenter: string;
  bootstrapExpect: number;
  /** Runs Raft already (bootstrapped, joined, or resumed from disk). */
  hasState: boolean;
  /** Its leader's address, '' if none known. */
  leaderAddress: string;
  /** Servers it knows (one level deep; their own `known` lists are empty). */
  known: DiscoveredServer[];
}

export interface DiscoverOptions {
  self(): DiscoveredServer;
  learn(s: DiscoveredServer): void;
  /** Addresses to ask, read each round (the servers gossip knows). */
  join: () => string[];
  bootstrapExpect: number;
  retryIntervalMs: number;
  rpc: RpcClient;
  logger: Logger;
  signal: AbortSignal;
  startRaft(bootstrap: Configuration | undefined): Promise<void>;
  /** Asks the server at `address` (forwarded to its leader) to add this one. */
  requestJoin(address: string): Promise<void>;
}

const INFO_TIMEOUT_MS = 2_000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs until this server runs Raft (bootstrapped or joined) or `signal` aborts. */
export async function discoverCluster(opts: DiscoverOptions): Promise<void> {
  const { logger: log, signal } = opts;
  const known = new Map<string, DiscoveredServer>();
  let warnedMismatch = false;
  // A short first interval: servers started together find each other in well under a second.
  let interval = Math.min(250, opts.retryIntervalMs);
  for (;;) {
    signal.throwIfAborted();
    const me = opts.self();
    const addresses = new Set<string>([...opts.join(), ...[...known.values()].map((s) => s.address)]);
    addresses.delete(me.address);
    const replies = await Promise.all(
      [...addresses].map((address) =>
        opts.rpc
          .call<DiscoveredServer>(address, 'Info', { from: { ...me, known: [] } }, INFO_TIMEOUT_MS, signal)
          .catch(() => undefined),
      ),
    );
    for (const r of replies) {
      if (!r || r.id === me.id) continue;
      for (const s of [r, ...r.known]) {
        if (s.id === me.id) continue;
        const { known: _k, ...flat } = s;
        known.set(s.id, { ...flat, known: [] });
        opts.learn({ ...flat, known: [] });
      }
    }

    const existing = [...replies].find((r) => r && (r.leaderAddress !== '' || r.hasState));
    if (existing) {
      log.info(
        { via: existing.address, leader: existing.leaderAddress },
        'found an existing cluster; joining it',
      );
      await opts.startRaft(undefined);
      for (;;) {
        signal.throwIfAborted();
        const target = existing.leaderAddress || existing.address;
        try {
          await opts.requestJoin(target);
          log.info({ leader: target }, 'joined the cluster');
          return;
        } catch (err) {
          log.debug({ err, target }, 'join request failed; retrying');
          await sleep(opts.retryIntervalMs, signal);
        }
      }
    }

    if (opts.bootstrapExpect > 0) {
      const peers = [...known.values()].filter(
        (s) => s.datacenter === me.datacenter && s.bootstrapExpect > 0,
      );
      const mismatch = peers.find((s) => s.bootstrapExpect !== opts.bootstrapExpect);
      if (mismatch) {
        if (!warnedMismatch) {
          log.error(
            { server: mismatch.name, theirs: mismatch.bootstrapExpect, ours: opts.bootstrapExpect },
            'servers disagree on bootstrap_expect; not bootstrapping',
          );
          warnedMismatch = true;
        }
      } else if (peers.length + 1 >= opts.bootstrapExpect) {
        const members = [me, ...peers]
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          .slice(0, Math.max(opts.bootstrapExpect, peers.length + 1));
        const config: Configuration = {
          servers: members.map((s) => ({ id: s.id, address: s.address, suffrage: 'voter' as const })),
        };
        log.info({ servers: members.map((s) => s.name) }, 'bootstrapping the cluster');
        await opts.startRaft(config);
        return;
      }
    }
    await sleep(interval, signal);
    // Servers that wait for each other poll every second at most (`retry_interval` is meant for
    // the seldom retries of a join, 30 s by default): a peer may bootstrap a configuration that
    // includes us at any moment, and we must start Raft soon after to take part in it.
    interval = Math.min(opts.retryIntervalMs, 1_000);
  }
}
