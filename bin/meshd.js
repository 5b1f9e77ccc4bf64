#!/usr/bin/env node
// The `meshd` command. The sources are TypeScript run through Node's type stripping (Node >= 22.18);
// when the node running this shim cannot do that, re-run under the Node 24 that the project pins.
//
// This file is JavaScript on purpose: it turns on Node's compile cache before the first TypeScript
// module loads, so that a warm start takes every stripped module from the cache and never loads the
// TypeScript parser (~120 ms). Then it points package imports at the dependency bundle that `npm ci`
// built (src/cli/vendor.ts), when there is one that matches node_modules.
import { spawnSync } from 'node:child_process';
import { createRequire, enableCompileCache } from 'node:module';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number);
if (major > 22 || (major === 22 && minor >= 18)) {
  enableCompileCache();
  const { installVendorHook } = await import('../src/cli/vendor.ts');
  installVendorHook();
  await import(main);
} else {
  let pinned;
  try {
    pinned = createRequire(import.meta.url).resolve('node/bin/node');
  } catch {
    console.error(
      `meshd: needs Node >= 22.18 (this is ${process.version}); run \`npm ci\` to get the pinned Node 24`,
    );
    process.exit(1);
  }
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
