/**
 * Builds native/udp-batch.c, the DNS server's batched UDP I/O (see src/api/dns/udp-batch.ts), into
 * `node_modules/.cache/meshd-native/udp-batch.node` with the system's C compiler (`$CC`, else `cc`).
 * Run by `npm ci` / `npm install` (the `prepare` script).
 *
 * It uses only Node-API, whose ABI is stable across Node versions, and Node's own headers: those the
 * pinned `node` package ships, or the system's. No node-gyp and nothing downloaded.
 *
 * Without a compiler, or on a system other than Linux (recvmmsg/sendmmsg are Linux's), the DNS server
 * uses node:dgram and this prints one line saying so. Under CI (`CI` set) a failed build fails, so
 * that the tests and benchmarks there always cover the batched path.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NATIVE_UDP_BATCH_PATH } from '../src/api/dns/udp-batch.ts';
import { PROJECT_ROOT } from '../src/cli/vendor.ts';

/** Where Node's headers may be, best first. */
function headerDirs(root: string): string[] {
  return [
    join(dirname(process.execPath), '..', 'include', 'node'),
    join(
      root,
      'node_modules',
      'node',
      'node_modules',
      `node-${process.platform}-${process.arch}`,
      'include',
      'node',
    ),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
}

/** Compiles the addon; returns undefined, or why it was not built. */
export function buildNative(root: string): string | undefined {
  if (process.platform !== 'linux') return `${process.platform} has no recvmmsg/sendmmsg`;
  const include = headerDirs(root).find((dir) => existsSync(join(dir, 'node_api.h')));
  if (include === undefined) return "Node's headers (node_api.h) were not found";
  const out = join(root, NATIVE_UDP_BATCH_PATH);
  const staging = `${out}.${process.pid}.tmp`;
  mkdirSync(dirname(out), { recursive: true });
  const cc = process.env.CC || 'cc';
  const args = ['-O2', '-std=gnu11', '-shared', '-fPIC', '-Wall', '-Wextra', '-I', include];
  const result = spawnSync(cc, [...args, join(root, 'native', 'udp-batch.c'), '-o', staging], {
    encoding: 'utf8',
  });
  if (result.error !== undefined || result.status !== 0) {
    rmSync(staging, { force: true });
    const detail = result.error?.message ?? result.stderr.trim().split('\n').slice(0, 5).join('\n');
    return `${cc} failed: ${detail}`;
  }
  renameSync(staging, out);
  return undefined;
}

if (import.meta.main) {
  const why = buildNative(PROJECT_ROOT);
  if (why === undefined) {
    console.error(`meshd native: ${NATIVE_UDP_BATCH_PATH} built`);
  } else if (!['', '0', 'false'].includes(process.env.CI ?? '')) {
    console.error(`meshd native: not built (${why}); CI requires it`);
    process.exit(1);
  } else {
    rmSync(join(PROJECT_ROOT, NATIVE_UDP_BATCH_PATH), { force: true });
    console.error(`meshd native: not built (${why}); DNS uses node:dgram for UDP`);
  }
}
