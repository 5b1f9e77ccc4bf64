/**
 * What a runner needs from a registered check, read from its `Definition` (Consul's field names,
 * durations as Go strings) with Consul's defaults applied:
 * - interval at least 1 s (`checks.MinInterval`; shorter ones are raised, with a warning);
 * - timeout 10 s when unset (30 s for scripts, as Consul's `CheckMonitor`); Consul does not tie
 *   it to the interval, and neither does meshd: a run that takes longer just delays the next;
 * - `OutputMaxSize` 4 KiB when unset.
 */

import { parseGoDuration } from '../../api/wire/duration.ts';
import { DEFAULT_OUTPUT_MAX_SIZE } from '../local/definitions.ts';
import type { LocalCheckView } from '../local/state.ts';
import type { Thresholds } from './status-handler.ts';

const MIN_INTERVAL_MS = 1_000;
export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_SCRIPT_TIMEOUT_MS = 30_000;

/** Types with a runner; `ttl` is the local state's own and maintenance checks have none. */
const RUNNABLE_TYPES: ReadonlySet<string> = new Set([
  'http',
  'tcp',
  'udp',
  'grpc',
  'h2ping',
  'script',
  'docker',
  'alias',
  'os_service',
]);

export interface RunSpec {
  checkId: string;
  serviceId: string;
  type: string;
  def: Readonly<Record<string, unknown>>;
  intervalMs: number;
  /** Whether the interval was raised to the minimum. */
  intervalRaised: boolean;
  timeoutMs: number;
  outputMaxSize: number;
  thresholds: Thresholds;
  /** Identity of what the runner does: a change restarts it. */
  key: string;
}

export const str = (def: Readonly<Record<string, unknown>>, k: string): string =>
  typeof def[k] === 'string' ? (def[k] as string) : '';
export const bool = (def: Readonly<Record<string, unknown>>, k: string): boolean => def[k] === true;
const num = (def: Readonly<Record<string, unknown>>, k: string): number =>
  typeof def[k] === 'number' ? (def[k] as number) : 0;

function duration(s: string): number {
  if (s === '') return 0;
  try {
    return parseGoDuration(s);
  } catch {
    return 0;
  }
}

/** `DeregisterCriticalServiceAfter` in ms (0 when unset). */
export function deregisterAfterMs(view: LocalCheckView): number {
  return duration(str(view.check.Definition, 'DeregisterCriticalServiceAfter'));
}

/** The runner's spec, or undefined for a check no runner handles. */
export function runSpec(view: LocalCheckView): RunSpec | undefined {
  const { check } = view;
  if (!RUNNABLE_TYPES.has(check.Type)) return undefined;
  const def = check.Definition;
  const interval = duration(view.Interval);
  const timeout = duration(view.Timeout);
  const maxSize = num(def, 'OutputMaxSize');
  return {
    checkId: check.CheckID,
    serviceId: check.ServiceID,
    type: check.Type,
    def,
    intervalMs: Math.max(interval, MIN_INTERVAL_MS),
    intervalRaised: check.Type !== 'alias' && interval < MIN_INTERVAL_MS,
    timeoutMs:
      timeout > 0 ? timeout : check.Type === 'script' ? DEFAULT_SCRIPT_TIMEOUT_MS : DEFAULT_TIMEOUT_MS,
    outputMaxSize: maxSize > 0 ? maxSize : DEFAULT_OUTPUT_MAX_SIZE,
    thresholds: {
      successBeforePassing: num(def, 'SuccessBeforePassing'),
      failuresBeforeWarning: num(def, 'FailuresBeforeWarning'),
      failuresBeforeCritical: num(def, 'FailuresBeforeCritical'),
    },
    key: JSON.stringify([check.Type, check.ServiceID, view.Interval, view.Timeout, def]),
  };
}
