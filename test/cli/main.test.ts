import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { VERSION } from '../../src/version.ts';
import { startAgent, waitFor } from '../support/agent-process.ts';

const run = promisify(execFile);
const bin = new URL('../../bin/meshd.js', import.meta.url).pathname;

test('meshd version prints the version and a Node 24 runtime', async (t) => {
  const { stdout } = await run(process.execPath, [bin, 'version']);
  t.true(stdout.includes(`meshd v${VERSION}`));
  t.regex(stdout, /node v2[4-9]\./);
});

/** A `node` on PATH outside node_modules older than 22.18 (CI's system Node 20), if there is one. */
function olderSystemNode(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir.includes('node_modules')) continue;
    const node = join(dir, 'node');
    if (!existsSync(node)) continue;
    const v = spawnSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    const [major, minor] = v.split('.').map(Number);
    if (major < 22 || (major === 22 && minor < 18)) return node;
  }
  return undefined;
}

/** Looked up once for the file: each candidate costs a node start. */
const OLDER_NODE = olderSystemNode();

/** The older system node, or undefined after passing `t` with a note that there is none here. */
function olderNodeOrPass(t: ExecutionContext): string | undefined {
  if (!OLDER_NODE) {
    t.log('no node older than 22.18 on PATH here; CI runs this on its system Node 20');
    t.pass();
  }
  return OLDER_NODE;
}

test('started by an older system Node, bin/meshd.js re-runs itself under the pinned Node 24', async (t) => {
  const node = olderNodeOrPass(t);
  if (!node) return;
  const { stdout } = await run(node, [bin, 'version']);
  t.true(stdout.includes(`meshd v${VERSION}`));
  t.regex(stdout, /node v2[4-9]\./);
});

test('under an older system Node, signals to the shim reach the agent: SIGHUP reloads, SIGTERM stops it', async (t) => {
  const node = olderNodeOrPass(t);
  if (!node) return;
  const dir = mkdtempSync(join(tmpdir(), 'meshd-shim-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ip = '127.0.0.231';
  const shim = spawn(node, [
    bin,
    'agent',
    '-dev',
    `-bind=${ip}`,
    `-client=${ip}`,
    '-dns-port=-1',
    `-data-dir=${dir}`,
  ]);
  let out = '';
  for (const stream of [shim.stdout, shim.stderr]) {
    stream.on('data', (b: Buffer) => {
      out += b.toString();
    });
  }
  const exited = new Promise<number | null>((resolve) => shim.once('exit', resolve));
  t.teardown(() => {
    if (shim.exitCode === null) shim.kill('SIGTERM'); // forwarded: a SIGKILL would orphan the agent
  });
  await waitFor(
    'the agent behind the shim to answer',
    async () => (await fetch(`http://${ip}:8500/v1/agent/self`)).ok,
  );
  shim.kill('SIGHUP');
  await waitFor('the agent to log a reload', () => /reload/i.test(out));
  t.is(shim.exitCode, null, 'SIGHUP does not stop the shim');
  shim.kill('SIGTERM');
  t.is(await exited, 0);
  await t.throwsAsync(fetch(`http://${ip}:8500/v1/agent/self`), undefined, 'the agent stopped too');
});

test('meshd --help lists the commands with their synopses', async (t) => {
  const { stdout } = await run(process.execPath, [bin, '--help']);
  t.regex(stdout, /Usage: meshd/);
  t.regex(stdout, /version/);
  // Client commands load only when run or listed: their synopses come from their modules.
  t.regex(stdout, /\n {4}kv +Interact with the key-value store\n/);
  t.regex(stdout, /\n {4}watch +Watch for changes in the cluster\n/);
});

test('an unknown command is a one-line error and exit 1', async (t) => {
  const err = await t.throwsAsync(run(process.execPath, [bin, 'frobnicate']));
  t.is((err as { code?: number }).code, 1);
  t.regex((err as { stderr?: string }).stderr ?? '', /unknown command "frobnicate"/);
});

test('a command named like an Object property is unknown, not a crash', async (t) => {
  for (const name of ['constructor', 'toString', '__proto__']) {
    const err = await t.throwsAsync(run(process.execPath, [bin, name]));
    t.is((err as { code?: number }).code, 1, name);
    t.regex((err as { stderr?: string }).stderr ?? '', new RegExp(`unknown command "${name}"`), name);
  }
});

test('npm scripts run on the pinned Node 24', (t) => {
  t.regex(process.version, /^v24\./);
});

/**
 * Whether bin/meshd.js re-executes an agent here (Linux, MALLOC_ARENA_MAX not set by the caller):
 * only then does the agent get the environment and V8 flags the tests below look for.
 */
function reexecutes(t: ExecutionContext): boolean {
  if (process.platform === 'linux' && process.env.MALLOC_ARENA_MAX === undefined) return true;
  t.log('not Linux, or MALLOC_ARENA_MAX already set here (no re-execution; the agent keeps the given value)');
  t.pass();
  return false;
}

test('an agent runs with MALLOC_ARENA_MAX=2 and its V8 heap settings in its own process; the checks it starts do not inherit them', async (t) => {
  if (!reexecutes(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'meshd-arena-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const envFile = join(dir, 'check-env.txt');
  writeFileSync(
    join(dir, 'checks.json'),
    JSON.stringify({
      enable_local_script_checks: true,
      check: { id: 'env', name: 'env', args: ['sh', '-c', `env > ${envFile}`], interval: '1s' },
    }),
  );
  const agent = await startAgent(['-dev', `-config-file=${join(dir, 'checks.json')}`]);
  t.teardown(() => agent.stop());
  await waitFor('the agent to answer', async () => (await fetch(`${agent.http}/v1/agent/self`)).ok);
  // execve kept the PID that was spawned; the environment it started with has the setting.
  const environ = readFileSync(`/proc/${agent.child.pid}/environ`, 'utf8').split('\0');
  t.true(environ.includes('MALLOC_ARENA_MAX=2'), 'the agent process itself runs with it');
  // ... and with the V8 settings that only apply from the heap's creation (bin/meshd.js); a
  // server (-dev is one) keeps V8's memory reducer.
  const argv = readFileSync(`/proc/${agent.child.pid}/cmdline`, 'utf8').split('\0');
  t.true(argv.includes('--max-semi-space-size=4'), argv.join(' '));
  t.false(argv.includes('--no-memory-reducer'), argv.join(' '));
  await waitFor(
    'the script check to run',
    () => existsSync(envFile) && readFileSync(envFile, 'utf8').includes('PATH='),
  );
  t.false(/^MALLOC_ARENA_MAX=/m.test(readFileSync(envFile, 'utf8')), 'a check does not inherit it');
  t.false(/^MESHD_SET_MALLOC_ARENA_MAX=/m.test(readFileSync(envFile, 'utf8')));
});

test("a client agent runs without the V8 memory reducer and Node's compile cache; a server by its flags keeps both", async (t) => {
  if (!reexecutes(t)) return;
  /** The agent's command line, and whether it wrote a compile cache (under its TMPDIR, at exit). */
  const started = async (args: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-v8-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const temp = join(dir, 'tmp');
    mkdirSync(temp);
    const agent = await startAgent([`-data-dir=${join(dir, 'data')}`, ...args], {
      host: '127.0.0.93',
      env: { TMPDIR: temp },
    });
    t.teardown(() => agent.stop());
    await waitFor('the agent to answer', async () => (await fetch(`${agent.http}/v1/agent/self`)).ok);
    const argv = readFileSync(`/proc/${agent.child.pid}/cmdline`, 'utf8').split('\0');
    await agent.stop();
    const cache = join(temp, 'node-compile-cache');
    const cached = existsSync(cache) ? readdirSync(cache, { recursive: true }).length : 0;
    return { argv, cached };
  };
  const client = await started(['-node=v8-client']);
  t.true(client.argv.includes('--no-memory-reducer'), client.argv.join(' '));
  t.is(client.cached, 0, 'a client keeps no compile cache');
  const server = await started(['-node=v8-server', '-server=true', '-bootstrap-expect=1']);
  t.false(server.argv.includes('--no-memory-reducer'), server.argv.join(' '));
  t.true(server.cached > 0, 'a server writes its compile cache');
});
