/**
 * Script checks (Consul's `CheckMonitor` with `args`): runs the command without a shell; exit 0 is
 * passing, 1 warning, anything else (or a signal, or failing to start) critical. Standard output
 * and error are captured together, the last `OutputMaxSize` bytes kept (Consul prefixes
 * `Captured <kept> of <total> bytes\n...\n` when it cut).
 *
 * The command runs in its own process group (spawned detached) so that on timeout the whole
 * group is killed, children included (Consul's `KillCommandSubtree`); the result says
 * `Timed out (<timeout>) running check`, followed by the output so far. The run ends only once
 * the group's pipes close, so two runs of one check never overlap.
 */

import { spawn } from 'node:child_process';
import { formatGoDuration } from '../../api/wire/duration.ts';
import { TailBuffer } from './output.ts';
import type { CheckResult, Probe } from './types.ts';

export interface ScriptCheckConfig {
  args: string[];
  timeoutMs: number;
  outputMaxSize: number;
}

function captured(buf: TailBuffer): string {
  const text = buf.text();
  return buf.truncated ? `Captured ${buf.kept} of ${buf.total} bytes\n...\n${text}` : text;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

export function scriptProbe(cfg: ScriptCheckConfig): Probe {
  return (signal) =>
    new Promise<CheckResult>((resolve) => {
      const [cmd, ...rest] = cfg.args;
      const child = spawn(cmd, rest, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      const out = new TailBuffer(cfg.outputMaxSize);
      child.stdout?.on('data', (c: Buffer) => out.write(c));
      child.stderr?.on('data', (c: Buffer) => out.write(c));
      let timedOut = false;
      let settled = false;
      const settle = (r: CheckResult): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      };
      const onAbort = (): void => {
        timedOut = true;
        killGroup(child.pid);
      };
      child.once('error', (err) => {
        const e = err as NodeJS.ErrnoException;
        const why = e.code === 'ENOENT' ? 'executable file not found in $PATH' : e.message;
        settle({ status: 'critical', output: `exec: ${JSON.stringify(cmd)}: ${why}` });
      });
      child.once('close', (code) => {
        if (timedOut) {
          const text = captured(out);
          const msg = `Timed out (${formatGoDuration(cfg.timeoutMs)}) running check`;
          settle({ status: 'critical', output: text === '' ? msg : `${msg}\n\n${text}` });
          return;
        }
        const status = code === 0 ? 'passing' : code === 1 ? 'warning' : 'critical';
        settle({ status, output: captured(out) });
      });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
}
