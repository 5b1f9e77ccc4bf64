#!/usr/bin/env node
// The `meshd` command. The sources are TypeScript run through Node's type stripping (Node >= 22.18);
// when the node running this shim cannot do that, re-run under the Node 24 that the project pins.
//
// This file is JavaScript on purpose: before the first TypeScript module loads, it turns on Node's
// compile cache (not in client agents, see below) and has our modules served already stripped
// (source-cache.js), so that Node's TypeScript stripper (amaro: ~0.3 s and ~17-30 MiB held for the
// process's life) never loads. Then it points package imports at the dependency bundle that
// `npm ci` built (src/cli/vendor.ts), when there is one that matches node_modules.
import { spawn } from 'node:child_process';
// `node:module` as a namespace: a named import of `enableCompileCache` (Node >= 22.1) would fail to
// link on the older Node this shim must still start on, before any of its code could re-run it.
import * as nodeModule from 'node:module';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number);
if (major > 22 || (major === 22 && minor >= 18)) {
  const isAgent = process.argv[2] === 'agent';
  const isServer = isAgent && serverByFlags(process.argv.slice(3));
  // glibc's malloc gives every thread that allocates an arena of its own, up to 8 per core, and an
  // agent's threads (V8's workers, libuv's pool) leave theirs mostly empty but resident:
  // MALLOC_ARENA_MAX=2 takes ~1.6 MiB off a client agent's RSS. glibc reads it only when a process
  // starts, so an agent re-executes itself with it, once, before loading anything (execve keeps the
  // PID, so supervisors and signals are unaffected). A value the user set is left alone; ours is
  // taken out of the environment again so that checks and proxies the agent starts do not inherit it.
  //
  // The re-execution also caps V8's young generation at 4 MiB semi-spaces (V8 grows them to 16),
  // which can only be set before the heap exists. A client holds its at 1 MiB anyway
  // (src/cli/v8-tuning.ts); a server's grew to the cap during a join and stayed: 108-110 instead
  // of 122 MiB of RSS in a 10-agent cluster, which is what decides bench:gossip's mean there.
  //
  // And it turns off V8's memory reducer, which also exists only from the heap's creation. After
  // start-up, and again after a join, it ran one or two compacting GCs per agent (a client's old
  // generation is ~21 MiB; each GC took 40-390 ms on a loaded machine). 50 agents joining at once
  // on 2 vCPUs, 3 interleaved trials each: a quarter of the machine's CPU had gone to their
  // concurrent marking, the clients used 3.1-3.3 s of CPU in all instead of 6.5-8.4 s, and every
  // agent listed all 50 alive after 1.9-2.0 s instead of 3.7-4.7 s. Idle clients use 0.87x the
  // CPU. Their heap stays small without it (optimize-for-size grows a client's old generation by
  // ~2 MiB between GCs, src/cli/v8-tuning.ts): their RSS is unchanged. A server's heap has no
  // such limit, so a server keeps the reducer when its command line says it is one (-server,
  // -dev; the configuration is not read yet, so one made a server only by a configuration file
  // runs without it): after 8,000 KV writes a -dev server's RSS went back from 124 to 115 MiB
  // within 2 minutes with it, and stayed at 130 without.
  // What the user gave (in NODE_OPTIONS or on node's command line) is left alone.
  if (
    isAgent &&
    process.platform === 'linux' &&
    process.env.MALLOC_ARENA_MAX === undefined &&
    typeof process.execve === 'function'
  ) {
    const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''];
    const v8Args = [
      ...(given.some((a) => a.includes('semi-space-size')) ? [] : ['--max-semi-space-size=4']),
      ...(given.some((a) => a.includes('memory-reducer')) || isServer ? [] : ['--no-memory-reducer']),
    ];
    process.execve(
      process.execPath,
      [process.execPath, ...v8Args, ...process.execArgv, ...process.argv.slice(1)],
      { ...process.env, MALLOC_ARENA_MAX: '2', MESHD_SET_MALLOC_ARENA_MAX: '1' },
    );
  }
  if (process.env.MESHD_SET_MALLOC_ARENA_MAX === '1') {
    delete process.env.MALLOC_ARENA_MAX;
    delete process.env.MESHD_SET_MALLOC_ARENA_MAX;
  }
  // Node's compile cache keeps every module's code cache it read in memory for the life of the
  // process (to write back at exit whatever changed): ~2 MiB of a client agent's RSS in a cluster.
  // A client gains nothing for it: with its modules bundled and stripped, and no optimizing
  // compilers, it answered its first request after 0.62-0.64 s of 0.69 s CPU either way (6 starts
  // each). A server (-dev: 0.59 against 0.65 s to its first KV write) and the short-lived commands
  // keep it.
  if (!isAgent || isServer) nodeModule.enableCompileCache();
  // Before the first TypeScript module: ours then load stripped at install time (source-cache.js).
  const { installSourceCache } = await import('./source-cache.js');
  installSourceCache(fileURLToPath(new URL('..', import.meta.url)));
  if (isAgent) {
    // Before the agent's start-up code gets hot enough to be optimized (src/cli/v8-tuning.ts).
    const { deferOptimizingCompilers } = await import('../src/cli/v8-tuning.ts');
    deferOptimizingCompilers();
  }
  const { installVendorHook } = await import('../src/cli/vendor.ts');
  installVendorHook();
  await import(main);
} else {
  let pinned;
  try {
    pinned = nodeModule.createRequire(import.meta.url).resolve('node/bin/node');
  } catch {
    console.error(
      `meshd: needs Node >= 22.18 (this is ${process.version}); run \`npm ci\` to get the pinned Node 24`,
    );
    process.exit(1);
  }
  // In its own process group, so that a terminal's Ctrl-C reaches it once, forwarded below, and
  // not also directly (the agent takes a second SIGINT as "exit now, skip the graceful leave").
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    detached: true,
  });
  // Whoever signals this process's PID (a supervisor, `kill -HUP` for a reload) means the agent.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}

/**
 * Whether agent flags make this agent a server (`-server`, `-dev`, as `-x`, `--x` or `-x=true`,
 * with the true values of src/agent/config/flags.ts's parseBool). That parser is TypeScript, which
 * this shim must not load before the source cache is installed, hence this narrow copy.
 */
function serverByFlags(args) {
  return args.some((a) => /^--?(server|dev)(=(true|1|t|T|TRUE|True))?$/.test(a));
}
