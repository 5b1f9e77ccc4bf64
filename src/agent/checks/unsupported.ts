/**
 * Check types meshd accepts but cannot run here: `os_service` (Consul implements it on Windows
 * only; on other systems its client is "not implemented") and `docker` (needs a Docker daemon
 * client). They stay registered and report critical with a reason, so the service's health does
 * not look better than anyone can know.
 */

import type { CheckResult, Probe } from './types.ts';

export function unsupportedProbe(type: string): Probe {
  const result: CheckResult = {
    status: 'critical',
    output:
      type === 'os_service'
        ? `OSService checks are not supported on ${process.platform}: meshd cannot query the OS service manager`
        : `${type} checks are not supported by meshd`,
  };
  return () => Promise.resolve(result);
}
