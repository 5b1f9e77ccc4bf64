/**
 * `DeregisterCriticalServiceAfter` (Consul's `reapServices`): a service with a check that has been
 * critical for longer than that check's setting is removed from the local state (and so from the
 * catalog), with all its checks. The setting is raised to at least one minute (Consul's
 * `check_deregister_interval_min`).
 *
 * The reaper is told which checks carry the setting and when each check's status changes
 * ({@link Reaper.observe}); it keeps the time each became critical (Consul's `CriticalTime`) and
 * looks every `intervalMs` (default 5 s: Consul looks every 30 s, which lets a service outlive its
 * setting by up to that much; a pass here costs one map walk over the few tracked checks).
 */

import type { Logger } from 'pino';
import type { HealthStatus } from '../../catalog/types.ts';
import { UnknownServiceError } from '../local/errors.ts';
import type { Clock, LocalState } from '../local/state.ts';

export interface ReaperInit {
  /** @default 5_000 */
  intervalMs?: number;
  /** @default 60_000 */
  minimumMs?: number;
}

export interface ReaperComponents {
  state: Pick<LocalState, 'removeService'>;
  clock: Clock;
  logger: Logger;
}

interface Tracked {
  serviceId: string;
  afterMs: number;
  /** Clock ms when it became critical; undefined while not critical. */
  criticalSince: number | undefined;
}

export class Reaper {
  readonly #c: ReaperComponents;
  readonly #intervalMs: number;
  readonly #minimumMs: number;
  readonly #tracked = new Map<string, Tracked>();
  #timer: unknown;
  #stopped = false;

  constructor(c: ReaperComponents, init: ReaperInit = {}) {
    this.#c = c;
    this.#intervalMs = init.intervalMs ?? 5_000;
    this.#minimumMs = init.minimumMs ?? 60_000;
  }

  /** A check's current status and setting (0: not reaped). Call on every status change. */
  observe(checkId: string, serviceId: string, afterMs: number, status: HealthStatus): void {
    if (afterMs <= 0 || serviceId === '') {
      this.forget(checkId);
      return;
    }
    const critical = status === 'critical';
    const t = this.#tracked.get(checkId);
    const limit = Math.max(afterMs, this.#minimumMs);
    if (t === undefined) {
      if (afterMs < this.#minimumMs) {
        this.#c.logger.warn(
          { checkId, minimum: this.#minimumMs },
          'check has deregister interval below minimum',
        );
      }
      this.#tracked.set(checkId, {
        serviceId,
        afterMs: limit,
        criticalSince: critical ? this.#c.clock.now() : undefined,
      });
      this.#arm();
      return;
    }
    t.serviceId = serviceId;
    t.afterMs = limit;
    if (!critical) t.criticalSince = undefined;
    else t.criticalSince ??= this.#c.clock.now();
  }

  /** Only for tracked checks: a status change reported by a runner. */
  status(checkId: string, status: HealthStatus): void {
    const t = this.#tracked.get(checkId);
    if (t === undefined) return;
    if (status !== 'critical') t.criticalSince = undefined;
    else t.criticalSince ??= this.#c.clock.now();
  }

  forget(checkId: string): void {
    this.#tracked.delete(checkId);
  }

  /** Forgets every check not in `ids` (they were removed). */
  retainOnly(ids: ReadonlySet<string>): void {
    for (const id of [...this.#tracked.keys()]) if (!ids.has(id)) this.#tracked.delete(id);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#c.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One pass (Consul's `reapServicesInternal`). */
  reap(): void {
    const now = this.#c.clock.now();
    const reaped = new Set<string>();
    for (const [checkId, t] of [...this.#tracked].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (t.criticalSince === undefined || reaped.has(t.serviceId)) continue;
      if (now - t.criticalSince <= t.afterMs) continue;
      reaped.add(t.serviceId);
      try {
        this.#c.state.removeService(t.serviceId);
        this.#c.logger.info(
          { checkId, serviceId: t.serviceId },
          'check has been critical for too long; deregistered service',
        );
      } catch (err) {
        if (!(err instanceof UnknownServiceError)) throw err;
      }
      this.#tracked.delete(checkId);
    }
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = this.#c.clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#stopped) return;
      this.reap();
      if (this.#tracked.size > 0) this.#arm();
    }, this.#intervalMs);
  }
}
