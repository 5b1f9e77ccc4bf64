/**
 * Alias checks (Consul's `CheckAlias`): mirror the health of a service instance (`AliasService`,
 * an ID) or of a node. Critical if any relevant check is critical, else warning if any is
 * warning, else passing; node-level checks of the node count for a service alias too.
 *
 * - Without `AliasNode` the target is on this agent: the status follows the local state, re-read
 *   whenever it changes (`state:changed`, coalesced per tick) and at least once a minute.
 * - With `AliasNode`, the node's checks come from the catalog by blocking `health.node` reads
 *   (stale allowed, 1 minute wait); after failures it backs off as Consul (from the 4th attempt,
 *   2^n s up to 1 minute) and reports critical from the second failure.
 *
 * The alias check itself is left out of what it aggregates: a node-level alias check would
 * otherwise see its own (initially critical) status and never recover. A node alias of a node
 * without node-level checks is passing ("No checks found."), as Consul's. Of a node the catalog
 * does not know it is critical: Consul checks existence only for a service alias and reports such a
 * node passing, which would hide a mistyped or deregistered node.
 */

import type { Logger } from 'pino';
import type { CheckRow, HealthStatus } from '../../catalog/types.ts';
import type { CatalogBackend } from '../backend.ts';
import type { CheckStatus } from '../local/definitions.ts';
import type { Clock, LocalState } from '../local/state.ts';
import type { Report, Runner } from './types.ts';

export interface AliasTarget {
  checkId: string;
  /** '' for a node alias. */
  serviceId: string;
  /** '' for this agent's node (read from the local state). */
  node: string;
}

type AliasedCheck = Pick<CheckRow, 'CheckID' | 'Name' | 'Status' | 'Output' | 'ServiceID'>;

/** Consul's `processChecks`: the aliased status and its output. */
export function aggregate(
  target: AliasTarget,
  checks: readonly AliasedCheck[],
  serviceExists: () => boolean,
): { status: CheckStatus; output: string } {
  let status: CheckStatus = 'passing';
  let output = 'No checks found.';
  let serviceFound = false;
  for (const c of checks) {
    if (c.CheckID === target.checkId) continue;
    const match = c.ServiceID === target.serviceId;
    if (c.ServiceID !== '' && !match) continue;
    if (match) serviceFound = true;
    const s: HealthStatus = c.Status;
    if (s === 'critical' || s === 'warning' || s === 'maintenance') {
      status = s === 'warning' ? 'warning' : 'critical';
      output = `Aliased check ${JSON.stringify(c.Name)} failing: ${c.Output}`;
      if (status === 'critical') break;
    } else if (status === 'passing') {
      output = 'All checks passing.';
    }
  }
  if (!serviceFound && !serviceExists()) {
    return {
      status: 'critical',
      output:
        target.serviceId === ''
          ? `Node ${target.node} could not be found`
          : `Service ${target.serviceId} could not be found on node ${target.node}`,
    };
  }
  return { status, output };
}

/** Local alias: refreshed at least this often even without a change event (Consul's 1 minute). */
const LOCAL_REFRESH_MS = 60_000;
const REMOTE_WAIT_MS = 60_000;
const BACKOFF_MIN_ATTEMPTS = 3;
const BACKOFF_MAX_MS = 60_000;

export interface AliasComponents {
  state: LocalState;
  catalog: Pick<CatalogBackend, 'read'>;
  clock: Clock;
  logger: Logger;
  report: Report;
}

export class LocalAliasRunner implements Runner {
  readonly #c: AliasComponents;
  readonly #t: AliasTarget;
  #queued = false;
  #stopped = false;
  #timer: unknown;
  readonly #onChange = (): void => {
    if (this.#queued || this.#stopped) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      this.#refresh();
    });
  };

  constructor(c: AliasComponents, t: AliasTarget) {
    this.#c = c;
    this.#t = t;
  }

  start(): void {
    this.#c.state.addEventListener('state:changed', this.#onChange);
    this.#refresh();
  }

  stop(): void {
    this.#stopped = true;
    this.#c.state.removeEventListener('state:changed', this.#onChange);
    if (this.#timer !== undefined) this.#c.clock.clearTimeout(this.#timer);
  }

  #refresh(): void {
    if (this.#stopped) return;
    if (this.#timer !== undefined) this.#c.clock.clearTimeout(this.#timer);
    this.#timer = this.#c.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#refresh();
    }, LOCAL_REFRESH_MS);
    const { state } = this.#c;
    const checks = state.checks().map((v) => v.check);
    const r = aggregate(
      this.#t,
      checks,
      () => this.#t.serviceId === '' || state.service(this.#t.serviceId) !== undefined,
    );
    this.#c.report(r.status, r.output);
  }
}

export class RemoteAliasRunner implements Runner {
  readonly #c: AliasComponents;
  readonly #t: AliasTarget;
  readonly #abort = new AbortController();

  constructor(c: AliasComponents, t: AliasTarget) {
    this.#c = c;
    this.#t = t;
  }

  start(): void {
    this.#loop().catch((err) => {
      if (!this.#abort.signal.aborted)
        this.#c.logger.error({ err, checkId: this.#t.checkId }, 'alias check loop failed');
    });
  }

  stop(): void {
    this.#abort.abort();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.#abort.signal;
      const h = this.#c.clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        this.#c.clock.clearTimeout(h);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  async #serviceExists(): Promise<boolean> {
    try {
      const r = await this.#c.catalog.read(
        'catalog.node',
        { node: this.#t.node },
        { consistency: 'stale', minIndex: 0, waitMs: 0, signal: this.#abort.signal },
      );
      if (r.result === null) return false;
      return this.#t.serviceId === '' || r.result.services.some((s) => s.ID === this.#t.serviceId);
    } catch {
      return true; // Cannot tell: assume it exists, as Consul does.
    }
  }

  async #loop(): Promise<void> {
    const signal = this.#abort.signal;
    let index = 0;
    let attempt = 0;
    while (!signal.aborted) {
      if (attempt > BACKOFF_MIN_ATTEMPTS) {
        const shift = Math.min(attempt - BACKOFF_MIN_ATTEMPTS, 31);
        await this.#sleep(Math.min(2 ** shift * 1000, BACKOFF_MAX_MS));
        if (signal.aborted) return;
      }
      let checks: CheckRow[];
      try {
        const r = await this.#c.catalog.read(
          'health.node',
          { node: this.#t.node },
          { consistency: 'stale', minIndex: index, waitMs: REMOTE_WAIT_MS, signal },
        );
        checks = r.result;
        // Never 0: a 0 index would not block, and a hot loop must not happen.
        index = Math.max(1, r.index);
        attempt = 0;
      } catch (err) {
        if (signal.aborted) return;
        attempt++;
        if (attempt > 1) {
          this.#c.report('critical', `Failure checking aliased node or service: ${(err as Error).message}`);
        }
        continue;
      }
      const found = checks.some((c) => c.ServiceID === this.#t.serviceId);
      const exists = found || (await this.#serviceExists());
      if (signal.aborted) return;
      const r = aggregate(this.#t, checks, () => exists);
      this.#c.report(r.status, r.output);
    }
  }
}
