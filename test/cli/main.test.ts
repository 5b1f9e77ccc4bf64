import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { VERSION } from '../../src/version.ts';

const run = promisify(execFile);
const bin = new URL('../../bin/meshd.js', import.meta.url).pathname;

test('meshd version prints the version and a Node 24 runtime', async (t) => {
  const { stdout } = await run(process.execPath, [bin, 'version']);
  t.true(stdout.includes(`meshd v${VERSION}`));
  t.regex(stdout, /node v2[4-9]\./);
});

test('meshd --help lists the commands', async (t) => {
  const { stdout } = await run(process.execPath, [bin, '--help']);
  t.regex(stdout, /Usage: meshd/);
  t.regex(stdout, /version/);
});

test('an unknown command is a one-line error and exit 1', async (t) => {
  const err = await t.throwsAsync(run(process.execPath, [bin, 'frobnicate']));
  t.is((err as { code?: number }).code, 1);
  t.regex((err as { stderr?: string }).stderr ?? '', /unknown command "frobnicate"/);
});

test('npm scripts run on the pinned Node 24', (t) => {
  t.regex(process.version, /^v24\./);
});
