import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerInit {
  /** @default 'info' */
  level?: LevelWithSilent;
  /** Human-readable lines instead of JSON. @default false */
  pretty?: boolean;
  /** Written to every line, e.g. the node name. */
  base?: Record<string, unknown>;
}

/** The one place a root logger is made; components get children of it. */
export function createLogger(init: LoggerInit = {}): Logger {
  const options = { level: init.level ?? 'info', base: init.base ?? null };
  if (init.pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { destination: 2 } } });
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything, for tests and simulations. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
