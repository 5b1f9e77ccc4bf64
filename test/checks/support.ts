/**
 * Shared pieces of the check-runner tests: the simulated clock (test/support/fake-clock.ts), a
 * local state over a recording catalog, and small helpers to await real servers.
 */

import type { CommandInput, WriteReply } from '../../src/agent/backend.ts';
import type { HttpCheckConfig } from '../../src/agent/checks/http.ts';
import type { Clock, LocalState } from '../../src/agent/local/state.ts';
import { silentLogger } from '../../src/agent/logger.ts';
import type { NodeInput } from '../../src/catalog/types.ts';
import { FakeClock } from '../support/fake-clock.ts';

export { FakeClock };

export const NODE: NodeInput = {
  ID: '11111111-2222-3333-4444-555555555555',
  Node: 'n1',
  Address: '127.0.0.1',
  Datacenter: 'dc1',
};

/** A local state whose catalog accepts every write (loaded on demand: probe tests do not need it). */
export async function localState(clock: Clock = new FakeClock()): Promise<LocalState> {
  const { LocalState } = await import('../../src/agent/local/state.ts');
  const catalog = {
    write: async (_cmd: CommandInput): Promise<WriteReply> => ({
      index: 1,
      result: { ok: true, value: true },
    }),
  };
  return new LocalState({ node: NODE, catalog, clock, logger: silentLogger() });
}

/** Lets pending promise callbacks and I/O callbacks run (not a timed wait). */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A signal that never aborts. */
export const never = (): AbortSignal => new AbortController().signal;

/** A signal aborted right away (a run whose deadline has passed). */
export function aborted(): AbortSignal {
  const c = new AbortController();
  c.abort();
  return c.signal;
}

/** An HTTP check's configuration for `url`: Consul's defaults, then `over`. */
export const httpConfig = (url: string, over: Partial<HttpCheckConfig> = {}): HttpCheckConfig => ({
  url,
  method: '',
  header: {},
  body: '',
  disableRedirects: false,
  tlsServerName: '',
  tlsSkipVerify: false,
  outputMaxSize: 4096,
  ...over,
});
