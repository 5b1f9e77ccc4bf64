/**
 * The `meshd` entry point, as bin/meshd.js runs it (which first sets up V8, Node's compile cache
 * and the dependency bundle by the agent's role). Started directly (`node src/cli/main.ts`), it
 * runs with none of that: unbundled, stripped by Node, no compile cache.
 */

import { main } from './commands-table.ts';

process.exitCode = await main(process.argv.slice(2));
