/**
 * Every failure to load the agent configuration: a bad flag, an unreadable or malformed file, a
 * value of the wrong type, or a combination Consul refuses. The message is one line, meant to be
 * printed as is before the agent exits.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The config file or directory the problem comes from, when it comes from one. */
  readonly source: string | undefined;
  /** The offending key path (`ports.http`) or flag (`-http-port`), when there is one. */
  readonly key: string | undefined;
  constructor(message: string, init: { source?: string; key?: string } = {}) {
    super(message);
    this.source = init.source;
    this.key = init.key;
  }
}
