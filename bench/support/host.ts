/**
 * What every multi-process bench shares: the machine line, the disk's raw fsync rate, CPU and RSS of
 * a process read from /proc, a markdown table, appending to bench/RESULTS.md, and cleanup of the
 * processes and directories a bench started — by PID, on normal exit, on failure and on SIGINT.
 */

import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_MD = fileURLToPath(new URL('../RESULTS.md', import.meta.url));

/**
 * Installs a Debian package with apt-get (refreshing the package lists once if the first try
 * fails). Needs root and package access; returns why it failed, or undefined on success.
 */
export function aptInstall(pkg: string): string | undefined {
  console.log(`installing Debian ${pkg} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'inherit', env });
  if (r.error === undefined && r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'inherit', env });
  }
  if (r.error) return r.error.message;
  return r.status === 0 ? undefined : `apt-get install -y ${pkg} exited ${r.status}`;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: only what this process started, by PID.

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;

function alive(c: ChildProcess): boolean {
  return c.pid !== undefined && c.exitCode === null && c.signalCode === null;
}

/** Kills every tracked child with SIGKILL (by PID) and removes every tracked directory, synchronously. */
function cleanupSync(): void {
  for (const c of children) {
    if (alive(c) && c.pid !== undefined) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/** Installs the exit, SIGINT and SIGTERM handlers once. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: stopping the processes this bench started and removing its tmp dirs`);
      cleanupSync();
      process.exit(130);
    });
  }
}

export function trackChild(c: ChildProcess): void {
  children.add(c);
  c.once('exit', () => children.delete(c));
}

export function trackDir(d: string): void {
  dirs.add(d);
}

/** Stops every tracked child (SIGTERM, then SIGKILL after `graceMs`) and removes tracked dirs. */
export async function cleanup(graceMs = 3000): Promise<void> {
  const waits = [...children].filter(alive).map(
    (c) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          if (alive(c) && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
        }, graceMs);
        c.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        if (c.pid !== undefined) process.kill(c.pid, 'SIGTERM');
      }),
  );
  await Promise.all(waits);
  cleanupSync();
}

// ---------------------------------------------------------------------------------------------
// The machine

export function machineLine(): string {
  const c = cpus();
  return (
    `${c.length} x ${c[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`
  );
}

/** 4 KiB write + fsync in a loop for `ms`: the disk's one-at-a-time durable write rate. */
export function rawFsyncRate(dir: string, ms: number): number {
  const path = join(dir, 'fsync-probe');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4096, 7);
  let n = 0;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    writeSync(fd, block, 0, block.length, (n % 256) * 4096);
    fsyncSync(fd);
    n++;
  }
  closeSync(fd);
  rmSync(path);
  return n / (ms / 1000);
}

// ---------------------------------------------------------------------------------------------
// /proc

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** CPU seconds (user + system) `pid` has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Resident set size of `pid` in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

// ---------------------------------------------------------------------------------------------
// Output

/**
 * A markdown table with right-aligned cells, as bench/RESULTS.md has them; the first `leftColumns`
 * columns (labels) are left-aligned.
 */
export function markdownTable(head: string[], rows: string[][], leftColumns = 0): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const pad = (c: string, i: number) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]));
  const line = (cells: string[]) => `| ${cells.map(pad).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/** Wraps a prose line at `width` columns; tables, headings and short lines are left alone. */
export function wrapProse(line: string, width = 104): string {
  if (line.length <= width || line.startsWith('|') || line.startsWith('#')) return line;
  const out: string[] = [];
  let cur = '';
  for (const word of line.split(' ')) {
    const inCode = (cur.split('`').length - 1) % 2 === 1;
    if (cur !== '' && !inCode && cur.length + 1 + word.length > width) {
      out.push(cur);
      cur = word;
    } else {
      cur = cur === '' ? word : `${cur} ${word}`;
    }
  }
  if (cur !== '') out.push(cur);
  return out.join('\n');
}

/** Appends `section` (markdown, starting with a `## ` heading) to bench/RESULTS.md. */
export function appendResults(section: string): void {
  const current = readFileSync(RESULTS_MD, 'utf8');
  const sep = current.endsWith('\n\n') ? '' : current.endsWith('\n') ? '\n' : '\n\n';
  const text = section
    .trimEnd()
    .split('\n')
    .map((l) => wrapProse(l))
    .join('\n');
  appendFileSync(RESULTS_MD, `${sep}${text}\n`);
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
