/**
 * The `meshd` entry point. It only turns on Node's compile cache (V8 code and stripped TypeScript,
 * kept in the OS temp dir) before loading anything else: with it every later start skips the
 * TypeScript transform and most compilation, which is most of the start-up time.
 */

import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('./commands-table.ts');
process.exitCode = await main(process.argv.slice(2));
