/**
 * Anti-entropy's periodic full sync (Consul's `agent/ae` StateSyncer): the agent is the source of
 * truth for its own services and checks, so every so often it reads what the catalog holds for its
 * node and repairs the differences: entries missing or different there are pushed again (a server
 * that lost them gets them back), entries there that the agent does not know are deregistered.
 * Changes themselves are pushed at once by the local state's sync loop; this only catches what
 * went wrong behind its back (a catalog edit, a restored snapshot, a lost write).
 *
 * When, as Consul's state machine has it:
 * - every period: 1 minute plus a random stagger of up to 1 minute times the scale factor
 *   (`aeScale`: 1 up to 128 nodes, one more for every doubling beyond), so the servers see a
 *   bounded rate of full syncs however large the cluster grows;
 * - after a failed one: again in 15 s plus a scaled stagger of up to 15 s (`retryFailIntv`);
 * - when a server comes up (joins, or is alive again): within a scaled stagger of up to 3 s
 *   (`serverUpIntv`), since a server that was away, or new, may have lost or never had this node;
 * - at start: within 3 s.
 * Every full sync, however it came, starts the next period afresh.
 */

import type { Logger } from 'pino';
import type { CatalogBackend } from '../backend.ts';
import type { Clock, LocalState } from './state.ts';

/** Consul's full-sync period for clusters of up to {@link AE_SCALE_THRESHOLD} nodes. */
export const DEFAULT_AE_INTERVAL_MS = 60_000;
/** Consul's `scaleThreshold`. */
export const AE_SCALE_THRESHOLD = 128;
/** Consul's `retryFailIntv`: the wait after a failed full sync, before its stagger. */
export const AE_RETRY_MS = 15_000;
/** Consul's `serverUpIntv`: the most a full sync waits after a server comes up, before scaling. */
export const AE_SERVER_UP_MS = 3_000;

/** Consul's `scaleFactor`: 1 up to 128 nodes, one more for every doubling beyond. */
export function scaleFactor(nodes: number): number {
  if (nodes <= AE_SCALE_THRESHOLD) return 1;
  return Math.ceil(Math.log2(nodes) - Math.log2(AE_SCALE_THRESHOLD)) + 1;
}

/** The longest wait before the next periodic full sync in a cluster of `nodes`. */
export function scaledInterval(intervalMs: number, nodes: number): number {
  return intervalMs * scaleFactor(nodes);
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
  /** When the armed timer fires (clock ms), so that a sooner reason can replace it. */
  #timerAt = Number.POSITIVE_INFINITY;
  #running: Promise<boolean> | undefined;
  #started = false;
  #stopped = false;
  #fullSyncs = 0;
  #failures = 0;

  constructor(components: AntiEntropyComponents, init: AntiEntropyInit = {}) {
    this.#c = components;
    this.#intervalMs = init.intervalMs ?? DEFAULT_AE_INTERVAL_MS;
    this.#random = components.random ?? Math.random;
  }

  /** Completed full syncs (reads that were compared), for tests and metrics. */
  get fullSyncs(): number {
    return this.#fullSyncs;
  }

  /** Full syncs whose read failed (each retried after {@link AE_RETRY_MS} and a stagger). */
  get failures(): number {
    return this.#failures;
  }

  /** The first full sync comes after a short random stagger (a few seconds at most), then periodic. */
  start(): void {
    this.#started = true;
    this.#arm(Math.min(this.#intervalMs, AE_SERVER_UP_MS) * this.#random());
  }

  /**
   * A server came up (gossip saw one join, or come back): a full sync within a scaled stagger of
   * up to 3 s, unless one is due sooner.
   */
  serverUp(): void {
    if (!this.#started) return;
    this.#arm(this.#stagger(AE_SERVER_UP_MS));
  }

  /** One full sync now (or joins the one running). Never throws: a failure is logged. */
  async syncNow(): Promise<void> {
    await this.#sync();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#disarm();
    await this.#running;
  }

  /** A random wait of up to `ms` times the scale factor (Consul's `stagger`). */
  #stagger(ms: number): number {
    return ms * scaleFactor(this.#c.clusterSize()) * this.#random();
  }

  /** Sets the timer to fire in `delayMs`, unless it already fires sooner. */
  #arm(delayMs: number): void {
    if (this.#stopped) return;
    const at = this.#c.clock.now() + delayMs;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#disarm();
    this.#timerAt = at;
    this.#timer = this.#c.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      void this.#sync();
    }, delayMs);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#c.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  /** A full sync (or the one running), then the timer for the next: a period, or the retry. */
  #sync(): Promise<boolean> {
    this.#running ??= this.#fullSync().then((ok) => {
      this.#running = undefined;
      if (this.#started && !this.#stopped) {
        this.#disarm();
        this.#arm(
          ok ? this.#intervalMs + this.#stagger(this.#intervalMs) : AE_RETRY_MS + this.#stagger(AE_RETRY_MS),
        );
      }
      return ok;
    });
    return this.#running;
  }

  async #fullSync(): Promise<boolean> {
    const { catalog, nodeName, logger, state } = this.#c;
    const opts = { consistency: 'default' as const, minIndex: 0, waitMs: 0 };
    try {
      const [services, checks] = await Promise.all([
        catalog.read('catalog.node', { node: nodeName }, opts),
        catalog.read('health.node', { node: nodeName }, opts),
      ]);
      if (this.#stopped) return true;
      state.reconcileWithCatalog(services.result?.services ?? [], checks.result);
      this.#fullSyncs++;
      return true;
    } catch (err) {
      if (this.#stopped) return true;
      this.#failures++;
      logger.warn({ err: (err as Error).message }, 'anti-entropy: reading this node from the catalog failed');
      return false;
    }
  }
}
