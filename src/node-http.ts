/**
 * `node:http`, loaded through `require` rather than an ESM import. Node 24's ESM facade of a
 * builtin reads every export, and node:http's lazy `WebSocket`/`CloseEvent`/`MessageEvent`
 * getters then load the whole undici bundle (3.7 MB of source) for classes meshd never uses:
 * ~2 MiB more RSS in every settled agent, more during start-up. Import values from here; types
 * may still come from 'node:http' with `import type`.
 */

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const http: typeof import('node:http') = require('node:http');

export default http;
