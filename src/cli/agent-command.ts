/**
 * `meshd agent`: loads the configuration, starts the agent and its HTTP API, and stops gracefully
 * on SIGINT/SIGTERM (a second signal forces the exit). Errors before the agent runs are one line
 * on stderr and exit code 1.
 */

import type { Agent } from '../agent/agent.ts';
import { ConfigError } from '../agent/config/errors.ts';
import { agentFlagsUsage, parseAgentFlags } from '../agent/config/flags.ts';
import { loadConfig } from '../agent/config/load.ts';
import { DataDirLockedError } from '../agent/data-dir.ts';
import { createLogger } from '../agent/logger.ts';
import { VERSION } from '../version.ts';
import { tuneV8ForRole } from './v8-tuning.ts';

export async function runAgent(argv: string[]): Promise<number> {
  let help = false;
  try {
    help = parseAgentFlags(argv).help;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`meshd agent: ${err.message}`);
      return 1;
    }
    throw err;
  }
  if (help) {
    console.log(`Usage: meshd agent [options]\n\n${agentFlagsUsage()}`);
    return 0;
  }

  let loaded: Awaited<ReturnType<typeof loadConfig>>;
  try {
    loaded = await loadConfig({ argv });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`meshd agent: ${err.message}`);
      return 1;
    }
    throw err;
  }
  const { config, warnings } = loaded;
  const logger = createLogger({
    level: config.logLevel === 'error' ? 'error' : config.logLevel,
    pretty: !config.logJson && process.stderr.isTTY === true,
    base: { node: config.nodeName },
  });
  for (const w of warnings) logger.warn(w);

  tuneV8ForRole(config.server ? 'server' : 'client');
  const [{ Agent }, { agentHttpRoutes }, { startHttpApi }] = await Promise.all([
    import('../agent/agent.ts'),
    import('../api/http/agent/routes.ts'),
    import('../api/http/server.ts'),
  ]);

  let agent: Agent;
  try {
    agent = await Agent.start({ config, logger, reloadConfig: () => loadConfig({ argv }) });
  } catch (err) {
    if (err instanceof DataDirLockedError || err instanceof ConfigError) {
      console.error(`meshd agent: ${err.message}`);
      return 1;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      console.error(`meshd agent: cannot listen: ${(err as Error).message}`);
      return 1;
    }
    logger.fatal({ err }, 'agent failed to start');
    return 1;
  }

  if (config.ports.http >= 0) {
    try {
      const http = await startHttpApi({
        agent,
        logger,
        hosts: config.clientAddrs,
        port: config.ports.http,
        routers: agentHttpRoutes(),
        ui: config.ui.enabled,
      });
      agent.onStop(() => http.close());
    } catch (err) {
      console.error(`meshd agent: cannot listen for HTTP: ${(err as Error).message}`);
      await agent.stop();
      return 1;
    }
  }
  let dnsAddresses: string[] = [];
  if (config.ports.dns >= 0) {
    try {
      const { startDnsServer } = await import('../api/dns/index.ts');
      const dns = await startDnsServer({ catalog: agent.catalog, config, logger });
      dnsAddresses = dns.addresses;
      const stopReloads = agent.local.onReload((next) => dns.reconfigure(next));
      agent.local.metrics.addDnsStats(() => ({ ...dns.stats }));
      agent.onStop(() => {
        stopReloads();
        return dns.close();
      });
    } catch (err) {
      console.error(`meshd agent: cannot listen for DNS: ${(err as Error).message}`);
      await agent.stop();
      return 1;
    }
  }
  logger.info(
    {
      version: VERSION,
      nodeId: agent.nodeId,
      datacenter: config.datacenter,
      server: config.server,
      dev: config.devMode,
      http: config.ports.http >= 0 ? config.clientAddrs.map((h) => `${h}:${config.ports.http}`) : [],
      dns: dnsAddresses,
    },
    'meshd agent running',
  );

  const { promise: done, resolve } = Promise.withResolvers<number>();
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    // Consul's defaults: a client leaves on either signal, a server on neither (a server that
    // leaves shrinks the Raft quorum, so that must be asked for).
    const leave = signal === 'SIGINT' ? !config.skipLeaveOnInterrupt : config.leaveOnTerminate;
    logger.info({ signal, leave }, 'shutting down');
    agent.stop({ leave }).then(
      () => resolve(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        resolve(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGHUP reloads the configuration, as `/v1/agent/reload` does; a bad config is logged and ignored.
  const onHup = (): void => {
    agent.local.reload().then(
      () => logger.info('reloaded on SIGHUP'),
      (err: unknown) =>
        logger.error({ err: (err as Error).message }, 'reload on SIGHUP failed; configuration unchanged'),
    );
  };
  process.on('SIGHUP', onHup);
  agent.onLeave(() => onSignal('SIGTERM'));
  const code = await done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onHup);
  logger.info('agent stopped');
  // Everything of ours is closed now, but a library timer may still be pending (libp2p's address
  // manager debounces with a 1 s timer that its stop does not clear), which would hold the exit
  // for that long. An unref'd grace timer lets anything quicker finish, then ends the process.
  setTimeout(() => process.exit(code), 100).unref();
  return code;
}
