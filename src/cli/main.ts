/**
 * The `meshd` entry point, as bin/meshd.js runs it (which also turns on the compile cache and the
 * dependency bundle first). Started directly (`node src/cli/main.ts`), it turns on the compile
 * cache itself before loading anything else, but runs unbundled.
 */

import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('./commands-table.ts');
process.exitCode = await main(process.argv.slice(2));
