/**
 * Makes this test process trust the test CA (test/fixtures/tls/ca.pem) the way NODE_EXTRA_CA_CERTS
 * would: checks verify against Node's default store (meshd has no CA file for checks, as Consul
 * without `enable_agent_tls_for_checks`). Import it first, for its side effects only: grpc-js reads
 * GRPC_DEFAULT_SSL_ROOTS_FILE_PATH when it loads and would then trust that file instead of Node's
 * store, so the variable is cleared before grpc-js is loaded.
 */

import { readFileSync } from 'node:fs';
import tls from 'node:tls';

delete process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH;
const ca = readFileSync(new URL('../fixtures/tls/ca.pem', import.meta.url), 'utf8');
tls.setDefaultCACertificates([...tls.getCACertificates('default'), ca]);
