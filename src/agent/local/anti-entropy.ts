/**
 * Anti-entropy's periodic full sync (Consul's `agent/ae` StateSyncer): the agent is the source of
 * truth for its own services and checks, so every so often it reads what the catalog holds for its
 * node and repairs the differences: entries missing or different there are pushed again (a server
 * that lost them gets them back), entries there that the agent does not know are deregistered.
 * Changes themselves are pushed at once by the local state's sync loop; this only catches what
 * went wrong behind its back (a catalog edit, a restored snapshot, a lost write).
 *
 * The period follows Consul: 1 minute up to 128 nodes, then one more minute for every doubling of
 * the cluster (`aeScale`), so the servers see a bounded rate of full syncs however large the
 * cluster grows; each wait is staggered by a random part of the period so agents do not line up.
 * A failed read is logged and retried at the next period.
 */

import type { Logger } from 'pino';
import type { CatalogBackend } from '../backend.ts';
import type { Clock, LocalState } from './state.ts';

/** Consul's full-sync period for clusters of up to {@link AE_SCALE_THRESHOLD} nodes. */
export const DEFAULT_AE_INTERVAL_MS = 60_000;
/** Consul's `scaleThreshold`. */
export const AE_SCALE_THRESHOLD = 128;

/** Consul's `aeScale`: the period for a cluster of `nodes`. */
export function scaledInterval(intervalMs: number, nodes: number): number {
  if (nodes <= AE_SCALE_THRESHOLD) return intervalMs;
  const multiplier = Math.ceil(Math.log2(nodes) - Math.log2(AE_SCALE_THRESHOLD)) + 1;
  return intervalMs * multiplier;
}

export interface AntiEntropyComponents {
  state: LocalState;
  catalog: Pick<CatalogBackend, 'read'>;
  nodeName: string;
  clock: Clock;
  logger: Logger;
  /** Alive members of the cluster (gossip), for the scaling; 1 without gossip. */
  clusterSize: () => number;
  random?: () => number;
}

export interface AntiEntropyInit {
  /** The period before scaling. @default 60_000 */
  intervalMs?: number;
}

export class AntiEntropy {
  readonly #c: AntiEntropyComponents;
  readonly #intervalMs: number;
  readonly #random: () => number;
  #timer: unknown;
  #running: Promise<void> | undefined;
  #stopped = false;
  #fullSyncs = 0;

  constructor(components: AntiEntropyComponents, init: AntiEntropyInit = {}) {
    this.#c = components;
    this.#intervalMs = init.intervalMs ?? DEFAULT_AE_INTERVAL_MS;
    this.#random = components.random ?? Math.random;
  }

  /** Completed full syncs (reads that were compared), for tests and metrics. */
  get fullSyncs(): number {
    return this.#fullSyncs;
  }

  /** The first full sync comes after a short random stagger (a few seconds at most), then periodic. */
  start(): void {
    this.#arm(Math.min(this.#intervalMs, 3_000) * this.#random());
  }

  /** One full sync now (or joins the one running). Never throws: a failure is logged. */
  syncNow(): Promise<void> {
    this.#running ??= this.#fullSync().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#c.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  #arm(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = this.#c.clock.setTimeout(() => {
      this.#timer = undefined;
      void this.syncNow().then(() => {
        const period = scaledInterval(this.#intervalMs, this.#c.clusterSize());
        // Consul waits the period plus a random stagger of up to the period itself.
        this.#arm(period + period * this.#random());
      });
    }, delayMs);
  }

  async #fullSync(): Promise<void> {
    const { catalog, nodeName, logger, state } = this.#c;
    const opts = { consistency: 'default' as const, minIndex: 0, waitMs: 0 };
    try {
      const [services, checks] = await Promise.all([
        catalog.read('catalog.node', { node: nodeName }, opts),
        catalog.read('health.node', { node: nodeName }, opts),
      ]);
      if (this.#stopped) return;
      state.reconcileWithCatalog(services.result?.services ?? [], checks.result);
      this.#fullSyncs++;
    } catch (err) {
      if (this.#stopped) return;
      logger.warn({ err: (err as Error).message }, 'anti-entropy: reading this node from the catalog failed');
    }
  }
}
