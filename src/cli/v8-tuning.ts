/**
 * V8 settings for an agent process by its role, set through `v8.setFlagsFromString` (V8 flags are
 * not allowed in NODE_OPTIONS, and the agent's role is known only once its configuration is read).
 *
 * A client agent runs on every host and serves little traffic, so it trades peak speed for memory:
 * - its young generation stays at its initial 1 MiB semi-spaces (V8's default grows to 16 MiB):
 *   ~20 MiB less RSS per host for a few more cheap scavenges;
 * - V8's optimize-for-size mode: another ~26 MiB (141 → 115 MiB for a client in a cluster, no
 *   idle CPU difference measurable);
 * - no optimizing compilers (Maglev, TurboFan), only the interpreter and Sparkplug's baseline
 *   code. Compiling anything hot pulls several MiB of the compilers' own machine code and data from
 *   the node binary into memory: 7.5 MiB of a client's RSS (97 → 90 MiB in a cluster; bench:gossip's
 *   limit is 100 MB = 95.4 MiB). A client's CPU goes to system calls and code run once, not to hot
 *   loops: its idle CPU and the CPU of a join did not change. The cost is peak throughput: a client
 *   answers DNS at ~17k instead of ~24k queries/s (75 instead of 59 µs of CPU per query at 10k/s).
 *   Start-up already runs hot enough to compile with them, so they are off from the process's
 *   first line (bin/meshd.js) until the configuration says the agent is a server.
 * - no memory reducer (V8's compacting GCs when allocation slows): set in bin/meshd.js, as it must
 *   precede the heap, for every agent whose command line does not make it a server. Its GCs after
 *   start-up and after a join doubled the time of a 50-agent join on 2 vCPUs.
 *
 * Servers keep V8's defaults but one, given in bin/meshd.js because it must precede the heap: their
 * young generation stops at 4 MiB semi-spaces instead of 16 (a server's RSS in a 10-agent cluster:
 * 108–110 instead of 122 MiB; bench:kv's writes unchanged). Held at 1 MiB, a server's write p99
 * under 16 concurrent KV writers fell (15.4–18.4 → 11.8–14.1 ms in paired runs), but bench:kv's
 * writes at 64 connections fell by a quarter (in-flight requests outlive the small nursery and are
 * promoted); without the optimizing compilers a server's DNS costs 65 instead of 41 µs per query.
 */

import { setFlagsFromString } from 'node:v8';

/** Before any agent code runs: the optimizing compilers off until the role is known. */
export function deferOptimizingCompilers(): void {
  setFlagsFromString('--no-maglev');
  setFlagsFromString('--no-turbofan');
}

/** Once the configuration is read, before the agent's modules load. */
export function tuneV8ForRole(role: 'server' | 'client'): void {
  if (role === 'server') {
    setFlagsFromString('--maglev');
    setFlagsFromString('--turbofan');
    return;
  }
  // A growth factor of 1 is what holds the young generation: V8 reads it whenever it would grow,
  // while --max-semi-space-size is read only when the heap is set up (setting it here does nothing).
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--optimize-for-size');
  // Already off when bin/meshd.js started the agent; not when src/cli/main.ts was run directly.
  deferOptimizingCompilers();
}
