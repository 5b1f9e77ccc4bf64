/**
 * What every check runner shares: a run's result, a probe (one run of an interval check), and a
 * runner (anything started and stopped by the reconciler: interval checks and alias watchers).
 */

import type { CheckStatus } from '../local/definitions.ts';

export interface CheckResult {
  status: CheckStatus;
  output: string;
}

/**
 * One run of an interval check. It resolves, never rejects: a failure is a `critical` result.
 * `signal` aborts when the run's timeout passes (or the runner stops); the probe then resolves
 * with what a timeout means for its type.
 */
export type Probe = (signal: AbortSignal) => Promise<CheckResult>;

/** A probe with resources kept between runs (a gRPC channel); `close` frees them. */
export interface ProbeHandle {
  run: Probe;
  close?: () => void;
}

export interface Runner {
  start(): void;
  /** Stops timers and aborts a run in flight; no result is reported after it. */
  stop(): void;
}

/** Where results go (through the threshold handler for interval checks). */
export type Report = (status: CheckStatus, output: string) => void;
