import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { scriptProbe } from '../../src/agent/checks/script.ts';
import {
  parseCheckDefinition,
  parseServiceDefinition,
  toCheckDefinition,
} from '../../src/agent/local/definitions.ts';
import { waitFor } from '../support/agent-process.ts';
import { never } from './support.ts';

const sh = (script: string, over: { timeoutMs?: number; outputMaxSize?: number } = {}) =>
  scriptProbe({ args: ['/bin/sh', '-c', script], timeoutMs: 30_000, outputMaxSize: 4096, ...over });

test('exit 0 is passing, 1 warning, 2 critical; stdout and stderr are captured', async (t) => {
  t.deepEqual(await sh('echo all good')(never()), { status: 'passing', output: 'all good\n' });
  t.deepEqual(await sh('echo degraded >&2; exit 1')(never()), { status: 'warning', output: 'degraded\n' });
  t.deepEqual(await sh('echo down; exit 2')(never()), { status: 'critical', output: 'down\n' });
});

test('args run without a shell', async (t) => {
  const r = await scriptProbe({ args: ['/bin/echo', '$HOME', '*'], timeoutMs: 30_000, outputMaxSize: 4096 })(
    never(),
  );
  t.deepEqual(r, { status: 'passing', output: '$HOME *\n' });
});

test('output beyond OutputMaxSize keeps the tail and says how much was captured', async (t) => {
  const r = await sh('printf 0123456789abcdef', { outputMaxSize: 6 })(never());
  t.deepEqual(r, { status: 'passing', output: 'Captured 6 of 16 bytes\n...\nabcdef' });
});

test('a missing executable is critical', async (t) => {
  const r = await scriptProbe({ args: ['/nonexistent/check'], timeoutMs: 30_000, outputMaxSize: 4096 })(
    never(),
  );
  t.deepEqual(r, {
    status: 'critical',
    output: 'exec: "/nonexistent/check": executable file not found in $PATH',
  });
});

test('on timeout the whole process group is killed, children included', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-script-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pidFile = join(dir, 'child.pid');
  const deadline = new AbortController();
  // The script starts a long-lived child, records its PID, and waits on it.
  const run = sh(`echo started; sleep 300 & echo $! > ${pidFile}; wait`)(deadline.signal);
  const child = await waitFor('the child PID', () =>
    existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== ''
      ? Number(readFileSync(pidFile, 'utf8'))
      : undefined,
  );
  deadline.abort();
  t.deepEqual(await run, { status: 'critical', output: 'Timed out (30s) running check\n\nstarted\n' });
  const alive = (): boolean => {
    try {
      process.kill(child, 0);
      // A zombie still answers signal 0: it is dead once its state says so.
      const stat = readFileSync(`/proc/${child}/stat`, 'utf8');
      return !/^\d+ \(.*\) Z /.test(stat);
    } catch {
      return false;
    }
  };
  await waitFor('the grandchild to be gone', () => !alive());
  t.false(alive());
});

test("script checks are refused unless enabled for their source, with Consul's messages", (t) => {
  const check = { name: 'disk', args: ['/bin/true'], interval: '10s' };
  t.throws(() => parseCheckDefinition(check), {
    message:
      "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true",
  });
  t.throws(() => toCheckDefinition({ Name: 'disk', ScriptArgs: ['/bin/true'], Interval: 10_000 }), {
    message:
      "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
  });
  // enable_local_script_checks: config files only.
  const local = { enableLocalScriptChecks: true, enableScriptChecks: false };
  t.is(parseCheckDefinition(check, { source: 'config', ...local }).Type, 'script');
  t.throws(() => parseCheckDefinition(check, { source: 'api', ...local }), { message: /from remote calls/ });
  // enable_script_checks: any source.
  t.is(parseCheckDefinition(check, { source: 'api', enableScriptChecks: true }).Type, 'script');
  const svc = parseServiceDefinition({ name: 'web', check }, { source: 'config', enableScriptChecks: true });
  t.deepEqual(svc.checks[0].Definition.ScriptArgs, ['/bin/true']);
});
