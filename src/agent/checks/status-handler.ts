/**
 * Consul's `StatusHandler` (agent/checks/check.go): results of interval checks pass through it so
 * a flapping target does not flap the catalog.
 *
 * - A passing or warning result counts as a success; it is reported once `successBeforePassing`
 *   successes in a row were seen (and resets the failure count).
 * - A critical result counts as a failure: reported critical from `failuresBeforeCritical`
 *   failures in a row, reported as warning from `failuresBeforeWarning` (which defaults to
 *   `failuresBeforeCritical`), otherwise held back (and resets the success count).
 * - Both counters start at their thresholds, so the first result after (re)registration is
 *   reported at once, whatever the thresholds.
 */

import type { CheckStatus } from '../local/definitions.ts';
import type { Report } from './types.ts';

export interface Thresholds {
  successBeforePassing: number;
  failuresBeforeWarning: number;
  failuresBeforeCritical: number;
}

export class StatusHandler {
  readonly #t: Thresholds;
  readonly #report: Report;
  #successes: number;
  #failures: number;

  constructor(thresholds: Thresholds, report: Report) {
    const failuresBeforeWarning = thresholds.failuresBeforeWarning || thresholds.failuresBeforeCritical;
    this.#t = { ...thresholds, failuresBeforeWarning };
    this.#report = report;
    this.#successes = thresholds.successBeforePassing;
    this.#failures = thresholds.failuresBeforeCritical;
  }

  /** Takes one raw result; forwards it (possibly as warning) when a threshold is reached. */
  update(status: CheckStatus, output: string): void {
    if (status !== 'critical') {
      this.#successes++;
      this.#failures = 0;
      if (this.#successes >= this.#t.successBeforePassing) this.#report(status, output);
      return;
    }
    this.#failures++;
    this.#successes = 0;
    if (this.#failures >= this.#t.failuresBeforeCritical) this.#report('critical', output);
    else if (this.#failures >= this.#t.failuresBeforeWarning) this.#report('warning', output);
  }
}
