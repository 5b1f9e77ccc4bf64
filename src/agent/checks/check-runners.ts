/**
 * Keeps one runner per runnable check of the local state (Consul's per-type check maps in
 * `agent.addCheck`/`cancelCheckMonitors`): a check that appears gets a runner, a check whose
 * definition changed gets a new one (with fresh threshold counters, as Consul's re-registration),
 * a removed check's runner stops, and all stop with the agent. Results go to
 * {@link LocalState.updateCheck}; interval checks pass through the thresholds first.
 *
 * The local state has no per-check events, so a reconciliation walks its checks. It runs after
 * any change not made by the runners themselves (their own results change no definition), at most
 * once per `minGapMs`, so a burst of registrations or TTL updates costs one walk.
 */

import type { Logger } from 'pino';
import type { HealthStatus } from '../../catalog/types.ts';
import type { CatalogBackend } from '../backend.ts';
import type { CheckStatus } from '../local/definitions.ts';
import { UnknownCheckError } from '../local/errors.ts';
import type { Clock, LocalState } from '../local/state.ts';
import { type AliasComponents, LocalAliasRunner, RemoteAliasRunner } from './alias.ts';
import { grpcProbe } from './grpc.ts';
import { h2pingProbe } from './h2ping.ts';
import { HttpAgents, httpProbe } from './http.ts';
import { IntervalRunner } from './interval-runner.ts';
import { Reaper } from './reaper.ts';
import { scriptProbe } from './script.ts';
import { bool, deregisterAfterMs, type RunSpec, runSpec, str } from './spec.ts';
import { StatusHandler } from './status-handler.ts';
import { tcpProbe } from './tcp.ts';
import type { ProbeHandle, Report, Runner } from './types.ts';
import { udpProbe } from './udp.ts';
import { unsupportedProbe } from './unsupported.ts';

export interface CheckRunnersInit {
  /** Picks each runner's first-run delay in [0, interval). @default Math.random */
  rng?: () => number;
  /** Shortest time between two reconciliations. @default 100 */
  minGapMs?: number;
  /** How often the reaper looks. @default 5_000 */
  reapIntervalMs?: number;
  /** Shortest DeregisterCriticalServiceAfter honoured. @default 60_000 */
  deregisterMinMs?: number;
}

export interface CheckRunnersComponents {
  state: LocalState;
  /** For alias checks of other nodes. */
  catalog: Pick<CatalogBackend, 'read'>;
  clock: Clock;
  logger: Logger;
}

interface Entry {
  key: string;
  runner: Runner;
}

export class CheckRunners {
  readonly #c: CheckRunnersComponents;
  readonly #rng: () => number;
  readonly #minGapMs: number;
  readonly #reaper: Reaper;
  readonly #agents = new HttpAgents();
  readonly #entries = new Map<string, Entry>();
  #started = false;
  #stopped = false;
  /** Set while a runner's result is being applied: that change needs no reconciliation. */
  #reporting = false;
  #timer: unknown;
  #lastRunAt = Number.NEGATIVE_INFINITY;
  readonly #onChange = (): void => {
    if (!this.#reporting) this.#schedule();
  };

  constructor(components: CheckRunnersComponents, init: CheckRunnersInit = {}) {
    this.#c = components;
    this.#rng = init.rng ?? Math.random;
    this.#minGapMs = init.minGapMs ?? 100;
    this.#reaper = new Reaper(
      { state: components.state, clock: components.clock, logger: components.logger },
      { intervalMs: init.reapIntervalMs, minimumMs: init.deregisterMinMs },
    );
  }

  /** Check IDs with a running runner, sorted. */
  get running(): string[] {
    return [...this.#entries.keys()].sort();
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#c.state.addEventListener('state:changed', this.#onChange);
    this.reconcile();
  }

  /** Stops every runner, the reaper and the shared connections. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#c.state.removeEventListener('state:changed', this.#onChange);
    if (this.#timer !== undefined) this.#c.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const e of this.#entries.values()) e.runner.stop();
    this.#entries.clear();
    this.#reaper.stop();
    this.#agents.destroy();
  }

  /** Brings the runners in line with the local state now. */
  reconcile(): void {
    if (this.#stopped) return;
    this.#lastRunAt = this.#c.clock.now();
    const seen = new Set<string>();
    for (const view of this.#c.state.checks()) {
      const id = view.check.CheckID;
      seen.add(id);
      this.#reaper.observe(id, view.check.ServiceID, deregisterAfterMs(view), view.check.Status);
      const spec = runSpec(view);
      const current = this.#entries.get(id);
      if (spec !== undefined && current?.key === spec.key) continue;
      current?.runner.stop();
      this.#entries.delete(id);
      if (spec === undefined) continue;
      if (spec.intervalRaised) {
        this.#c.logger.warn({ checkId: id, minimumMs: spec.intervalMs }, 'check has interval below minimum');
      }
      const runner = this.#create(spec);
      this.#entries.set(id, { key: spec.key, runner });
      runner.start();
    }
    for (const [id, e] of this.#entries) {
      if (seen.has(id)) continue;
      e.runner.stop();
      this.#entries.delete(id);
    }
    this.#reaper.retainOnly(seen);
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#stopped || !this.#started) return;
    const wait = Math.max(0, this.#lastRunAt + this.#minGapMs - this.#c.clock.now());
    this.#timer = this.#c.clock.setTimeout(() => {
      this.#timer = undefined;
      this.reconcile();
    }, wait);
  }

  /** Applies a result for `checkId` unless its runner was replaced or stopped meanwhile. */
  #reporter(checkId: string, runner: () => Runner | undefined): Report {
    return (status: CheckStatus, output: string) => {
      const mine = runner();
      if (mine === undefined || this.#entries.get(checkId)?.runner !== mine) return;
      this.#reaper.status(checkId, status as HealthStatus);
      this.#reporting = true;
      try {
        this.#c.state.updateCheck(checkId, status, output);
      } catch (err) {
        // Removed between the run and now: the next reconciliation stops the runner.
        if (!(err instanceof UnknownCheckError)) throw err;
      } finally {
        this.#reporting = false;
      }
    };
  }

  #create(spec: RunSpec): Runner {
    let runner: Runner | undefined;
    const report = this.#reporter(spec.checkId, () => runner);
    if (spec.type === 'alias') {
      const c: AliasComponents = { ...this.#c, report };
      const target = {
        checkId: spec.checkId,
        serviceId: str(spec.def, 'AliasService'),
        node: str(spec.def, 'AliasNode'),
      };
      runner = target.node === '' ? new LocalAliasRunner(c, target) : new RemoteAliasRunner(c, target);
      return runner;
    }
    const handler = new StatusHandler(spec.thresholds, report);
    runner = new IntervalRunner(
      {
        probe: this.#probe(spec),
        onResult: (status, output) => handler.update(status, output),
        clock: this.#c.clock,
        rng: this.#rng,
        logger: this.#c.logger,
      },
      { checkId: spec.checkId, intervalMs: spec.intervalMs, timeoutMs: spec.timeoutMs },
    );
    return runner;
  }

  #probe(spec: RunSpec): ProbeHandle {
    const d = spec.def;
    const tls = { tlsServerName: str(d, 'TLSServerName'), tlsSkipVerify: bool(d, 'TLSSkipVerify') };
    switch (spec.type) {
      case 'http':
        return {
          run: httpProbe(
            {
              url: str(d, 'HTTP'),
              method: str(d, 'Method'),
              header: (d.Header as Record<string, string[]> | undefined) ?? {},
              body: str(d, 'Body'),
              disableRedirects: bool(d, 'DisableRedirects'),
              outputMaxSize: spec.outputMaxSize,
              ...tls,
            },
            this.#agents,
          ),
        };
      case 'tcp':
        return { run: tcpProbe({ address: str(d, 'TCP'), useTls: bool(d, 'TCPUseTLS'), ...tls }) };
      case 'udp':
        return { run: udpProbe(str(d, 'UDP')) };
      case 'grpc':
        return grpcProbe({
          target: str(d, 'GRPC'),
          useTls: bool(d, 'GRPCUseTLS'),
          timeoutMs: spec.timeoutMs,
          ...tls,
        });
      case 'h2ping':
        return { run: h2pingProbe({ address: str(d, 'H2PING'), useTls: bool(d, 'H2PingUseTLS'), ...tls }) };
      case 'script':
        return {
          run: scriptProbe({
            args: (d.ScriptArgs as string[] | undefined) ?? [],
            timeoutMs: spec.timeoutMs,
            outputMaxSize: spec.outputMaxSize,
          }),
        };
      default:
        return { run: unsupportedProbe(spec.type) };
    }
  }
}
