/**
 * The agent's metrics for `GET /v1/agent/metrics`: one prom-client {@link Registry} per agent (never
 * prom-client's global one), gauges read from their sources at scrape time (no timers), rendered
 * either as Prometheus text (`?format=prometheus`) or in Consul's JSON shape
 * (`{Timestamp, Gauges, Points, Counters, Samples}`).
 *
 * Names follow Consul's where Consul has the metric (`consul.raft.applied_index`,
 * `consul.server.isLeader`, `consul.state.kv_entries`, `consul.rpc.queries_blocking`); the JSON
 * output uses the dotted name, Prometheus the same name with `_` for `.`.
 */

import type { Context, Next } from 'koa';
import { Counter, Gauge, Registry } from 'prom-client';

export interface RaftGaugeSource {
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  isLeader: boolean;
}

/** Where gauge values come from; a missing source means the gauge is not exported at all. */
export interface MetricsSources {
  /** A server's Raft node (undefined while it is starting: the gauges read 0). */
  raft?: () => RaftGaugeSource | undefined;
  kvEntries?: () => number;
  /** Blocking queries parked on this server's watch registry. */
  blockingQueries?: () => number;
  localServices: () => number;
  localChecks: () => number;
  /** Consecutive failed pushes of the local state to the catalog. */
  localSyncFailures?: () => number;
  /** Local services and checks the catalog does not have as the agent has them yet. */
  localOutOfSync?: () => number;
  /** The gossip membership's counters and gauges (`Membership.stats`), one series per key. */
  gossip?: () => Record<string, number>;
}

export interface AgentMetricsInit {
  /** Wall clock for the JSON `Timestamp`. @default Date.now */
  now?: () => number;
}

interface ConsulSample {
  Name: string;
  Count: number;
  Rate: number;
  Sum: number;
  Min: number;
  Max: number;
  Mean: number;
  Stddev: number;
  Labels: Record<string, string>;
}

/** Consul's `/v1/agent/metrics` JSON (go-metrics `MetricsSummary`). */
export interface ConsulMetricsJson {
  Timestamp: string;
  Gauges: { Name: string; Value: number; Labels: Record<string, string> }[];
  Points: { Name: string; Points: number[] }[];
  Counters: ConsulSample[];
  Samples: ConsulSample[];
}

const promName = (dotted: string): string => dotted.replaceAll('.', '_');

/** go-metrics' timestamp format: `2006-01-02 15:04:05 +0000 UTC`. */
function goTimestamp(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

const byName = (a: { Name: string }, b: { Name: string }): number =>
  a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0;

export class AgentMetrics {
  readonly registry = new Registry();
  readonly #now: () => number;
  /** Prometheus name → dotted Consul name. */
  readonly #dotted = new Map<string, string>();
  readonly #http: Counter<'method' | 'code'>;

  constructor(sources: MetricsSources, init: AgentMetricsInit = {}) {
    this.#now = init.now ?? Date.now;
    const gauge = (name: string, help: string, read: () => number | undefined): void => {
      this.#dotted.set(promName(name), name);
      new Gauge({
        name: promName(name),
        help,
        registers: [this.registry],
        collect() {
          this.set(read() ?? 0);
        },
      });
    };
    const { raft } = sources;
    if (raft) {
      gauge('consul.raft.term', 'Current Raft term of this server.', () => raft()?.term);
      gauge('consul.raft.commit_index', 'Highest Raft index known committed.', () => raft()?.commitIndex);
      gauge(
        'consul.raft.applied_index',
        'Highest Raft index applied to the catalog.',
        () => raft()?.appliedIndex,
      );
      gauge('consul.raft.last_index', 'Last index in the Raft log.', () => raft()?.lastIndex);
      gauge('consul.server.isLeader', '1 if this server is the Raft leader, else 0.', () =>
        raft()?.isLeader ? 1 : 0,
      );
    }
    if (sources.kvEntries) gauge('consul.state.kv_entries', 'Entries in the KV store.', sources.kvEntries);
    if (sources.blockingQueries) {
      gauge(
        'consul.rpc.queries_blocking',
        'Blocking queries parked on this server.',
        sources.blockingQueries,
      );
    }
    gauge('consul.agent.local.services', 'Services registered with this agent.', sources.localServices);
    gauge('consul.agent.local.checks', 'Checks registered with this agent.', sources.localChecks);
    if (sources.localSyncFailures) {
      gauge(
        'consul.agent.local.sync_failures',
        'Consecutive failed pushes of local services and checks to the catalog.',
        sources.localSyncFailures,
      );
    }
    if (sources.localOutOfSync) {
      gauge(
        'meshd.agent.local.out_of_sync',
        'Local services and checks (or their removals) not yet pushed to the catalog.',
        sources.localOutOfSync,
      );
    }
    const { gossip } = sources;
    if (gossip) {
      this.#statGauge(
        'meshd.gossip',
        'Gossip membership counters since start (probes, acks, suspects, dropped.<cause>, ...) and gauges (members, connections, ...), by stat.',
        gossip,
      );
    }
    this.#dotted.set(promName('consul.api.http.requests'), 'consul.api.http.requests');
    this.#http = new Counter({
      name: promName('consul.api.http.requests'),
      help: 'HTTP API requests answered, by method and status code.',
      labelNames: ['method', 'code'],
      registers: [this.registry],
    });
  }

  /**
   * The DNS server's counters since start (`meshd.dns`, by stat: queries, malformed, formerr,
   * notimp, dropped, agent-cache hits and misses, answers from the response cache). Added once the
   * DNS server listens, which is after the agent starts.
   */
  addDnsStats(read: () => Record<string, number>): void {
    if (this.#dotted.has(promName('meshd.dns'))) return;
    this.#statGauge('meshd.dns', 'DNS server counters since start, by stat.', read);
  }

  /** One gauge with a `stat` label, one series per key of what `read` returns at scrape time. */
  #statGauge(name: string, help: string, read: () => Record<string, number>): void {
    this.#dotted.set(promName(name), name);
    new Gauge({
      name: promName(name),
      help,
      labelNames: ['stat'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [stat, v] of Object.entries(read())) this.set({ stat }, v);
      },
    });
  }

  recordHttpRequest(method: string, status: number): void {
    this.#http.inc({ method, code: String(status) });
  }

  /**
   * A koa middleware counting every answered request; it must run outermost (before the error
   * responder) to see final status codes. Not wired by default: the HTTP server owner adds it.
   */
  httpMiddleware() {
    return async (ctx: Context, next: Next): Promise<void> => {
      try {
        await next();
      } finally {
        this.recordHttpRequest(ctx.method, ctx.status);
      }
    };
  }

  /** Prometheus text exposition format. */
  async prometheus(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /**
   * Consul's JSON shape. Counters are cumulative since the agent started (Consul's are per 10 s
   * interval), each reported as Count = Sum = the total.
   */
  async consulJson(): Promise<ConsulMetricsJson> {
    const out: ConsulMetricsJson = {
      Timestamp: goTimestamp(this.#now()),
      Gauges: [],
      Points: [],
      Counters: [],
      Samples: [],
    };
    for (const m of await this.registry.getMetricsAsJSON()) {
      const Name = this.#dotted.get(m.name) ?? m.name;
      for (const v of m.values) {
        const Labels: Record<string, string> = {};
        for (const [k, val] of Object.entries(v.labels)) Labels[k] = String(val);
        if (String(m.type) === 'gauge') out.Gauges.push({ Name, Value: v.value, Labels });
        else if (String(m.type) === 'counter') {
          out.Counters.push({
            Name,
            Count: v.value,
            Rate: v.value / 10,
            Sum: v.value,
            Min: 1,
            Max: 1,
            Mean: 1,
            Stddev: 0,
            Labels,
          });
        }
      }
    }
    out.Gauges.sort(byName);
    out.Counters.sort(
      (a, b) => byName(a, b) || (JSON.stringify(a.Labels) < JSON.stringify(b.Labels) ? -1 : 1),
    );
    return out;
  }
}
