/**
 * The agent's API-registered services and checks (and maintenance modes) in its data dir, so a
 * restarted agent has them again (Consul's `services/` and `checks/` dirs; here one file).
 *
 * `<data-dir>/local-state.json` holds `{ "version": 1, services, checks, maintenance }`. It is
 * rewritten whole (temp file, fsync, rename, fsync of the dir) whenever that content changes: a
 * crash leaves the old file or the new one, never half of one. An API call that changes it is
 * answered after the write (see {@link LocalStateFile.flush}): what was acknowledged survives a
 * crash. Check output churn does not cause writes: only TTL checks' status and output are kept
 * (Consul restores TTL check state only), and an unchanged content is not written again.
 *
 * At start a file that is not valid JSON of this shape is moved aside (`local-state.json.bad-<ms>`)
 * with a warning and the agent starts without it; a file of a newer format version stops the start
 * (an older meshd must not overwrite what it cannot read).
 */

import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ConfigError } from '../config/errors.ts';
import { writeFileDurably } from '../durable-file.ts';
import type { PersistableLocalState } from './state.ts';

export const LOCAL_STATE_FILE = 'local-state.json';
export const LOCAL_STATE_FORMAT_VERSION = 1;

const record = z.record(z.string(), z.unknown());
const FileSchema = z.object({
  version: z.number().int(),
  services: z.array(record.and(z.object({ ID: z.string(), Service: z.string() }))),
  checks: z.array(
    z.object({
      def: record.and(z.object({ CheckID: z.string(), Type: z.string() })),
      status: z.enum(['passing', 'warning', 'critical']),
      output: z.string(),
    }),
  ),
  maintenance: z.array(z.object({ serviceId: z.string(), reason: z.string() })),
});

/** What persists of a state: TTL checks keep status and output, other checks only their definition. */
export function persistedContent(state: PersistableLocalState): PersistableLocalState {
  return {
    services: state.services,
    checks: state.checks.map((c) =>
      c.def.ttlMs !== undefined ? c : { def: c.def, status: c.def.Status, output: '' },
    ),
    maintenance: state.maintenance,
  };
}

/**
 * What of a persisted state may be registered again: script checks were registered over the API,
 * so they come back only while `enable_script_checks` is on (the operator may have turned it off
 * since). Returns the state to restore and one warning per entry left out.
 */
export function restorable(
  saved: PersistableLocalState,
  opts: { enableScriptChecks: boolean },
): { state: PersistableLocalState; warnings: string[] } {
  const warnings: string[] = [];
  const checks = saved.checks.filter((c) => {
    if (c.def.Type !== 'script' || opts.enableScriptChecks) return true;
    warnings.push(
      `persisted script check ${JSON.stringify(c.def.CheckID)} not restored: enable_script_checks is off`,
    );
    return false;
  });
  return { state: { ...saved, checks }, warnings };
}

export class LocalStateFile {
  readonly path: string;
  readonly #read: () => PersistableLocalState;
  readonly #log: Logger;
  #lastWritten: string | undefined;
  #dirty = false;
  #running: Promise<void> | undefined;
  #failure: Error | undefined;

  /** `read` gives the state to write when a save runs (the newest, not the one that asked). */
  constructor(dataDir: string, read: () => PersistableLocalState, logger: Logger) {
    this.path = join(dataDir, LOCAL_STATE_FILE);
    this.#read = read;
    this.#log = logger;
  }

  /**
   * The persisted state, or undefined when there is none (first start) or it was unreadable (moved
   * aside, logged). @throws ConfigError for a file of a newer format.
   */
  load(): PersistableLocalState | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let parsed: z.infer<typeof FileSchema>;
    try {
      parsed = FileSchema.parse(JSON.parse(text));
    } catch (err) {
      const aside = `${this.path}.bad-${Date.now()}`;
      renameSync(this.path, aside);
      this.#log.warn(
        { file: aside, err: err instanceof z.ZodError ? err.issues[0]?.message : (err as Error).message },
        'persisted services and checks are unreadable; moved aside, starting without them',
      );
      return undefined;
    }
    if (parsed.version > LOCAL_STATE_FORMAT_VERSION) {
      throw new ConfigError(
        `${this.path} has format version ${parsed.version}, newer than this meshd's ${LOCAL_STATE_FORMAT_VERSION}`,
      );
    }
    this.#lastWritten = text;
    return {
      services: parsed.services as unknown as PersistableLocalState['services'],
      checks: parsed.checks as unknown as PersistableLocalState['checks'],
      maintenance: parsed.maintenance,
    };
  }

  /** Notes that the state changed: a save runs soon (coalesced with others). */
  changed(): void {
    this.#dirty = true;
    this.#running ??= this.#saveLoop().finally(() => {
      this.#running = undefined;
    });
  }

  /**
   * Resolves once the state as it is now is on disk. @throws the write's error (e.g. disk full):
   * the change is then in memory only, and the caller must not say it was saved.
   */
  async flush(): Promise<void> {
    this.changed();
    while (this.#running) await this.#running;
    if (this.#failure) throw this.#failure;
  }

  async #saveLoop(): Promise<void> {
    while (this.#dirty) {
      this.#dirty = false;
      const text = `${JSON.stringify({ version: LOCAL_STATE_FORMAT_VERSION, ...persistedContent(this.#read()) })}\n`;
      if (text === this.#lastWritten) {
        this.#failure = undefined;
        continue;
      }
      try {
        await this.#write(text);
        this.#lastWritten = text;
        this.#failure = undefined;
      } catch (err) {
        this.#failure = new Error(`saving ${this.path}: ${(err as Error).message}`);
        this.#log.error({ err: this.#failure.message }, 'persisting services and checks failed');
      }
    }
  }

  #write(text: string): Promise<void> {
    return writeFileDurably(this.path, text);
  }
}
