/**
 * The web UI (Consul's `/ui/`): three static files next to this module, served from memory by one
 * koa middleware. Only the listed files exist, so no request path ever reaches the file system
 * (`/ui/../package.json`, `%2e%2e` and the like are plain 404s). `/` and `/ui` redirect to `/ui/`
 * as Consul does when its UI is on. The app itself talks to the agent's HTTP API, same origin.
 */

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Middleware } from 'koa';

/** Served file name → content type. Everything else under `/ui/` is 404. */
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'application/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** Nothing inline, nothing from elsewhere: the app is one module, one stylesheet and fetches to self. */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export interface ServeUiOptions {
  /** Where the assets are; defaults to this module's directory. */
  dir?: URL;
}

/** Reads every asset once, on first use; a failed read is retried on the next request. */
function assetLoader(dir: URL): () => Promise<Map<string, Asset>> {
  let loading: Promise<Map<string, Asset>> | undefined;
  return () => {
    loading ??= (async () => {
      const assets = new Map<string, Asset>();
      for (const [name, type] of Object.entries(ASSETS)) {
        const body = await readFile(new URL(name, dir));
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
        assets.set(name, { body, type, etag });
      }
      return assets;
    })().catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}

/** The UI middleware: answers `/`, `/ui` and `/ui/*`, passes everything else on. */
export function serveUi(opts: ServeUiOptions = {}): Middleware {
  const load = assetLoader(opts.dir ?? new URL('./', import.meta.url));
  return async (ctx, next) => {
    const path = ctx.path;
    if (path !== '/' && path !== '/ui' && !path.startsWith('/ui/')) return next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      // `/` with another method is not the UI's to answer.
      if (path === '/') return next();
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD');
      ctx.type = 'text/plain';
      ctx.body = 'Method Not Allowed';
      return;
    }
    if (path === '/' || path === '/ui') {
      ctx.status = 301;
      ctx.redirect(`/ui/${ctx.querystring ? `?${ctx.querystring}` : ''}`);
      return;
    }
    const name = path === '/ui/' ? 'index.html' : path.slice('/ui/'.length);
    const asset = Object.hasOwn(ASSETS, name) ? (await load()).get(name) : undefined;
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cache-Control', 'no-cache');
    if (!asset) {
      ctx.status = 404;
      ctx.type = 'text/plain';
      ctx.body = `404 page not found: ${ctx.method} ${path}`;
      return;
    }
    ctx.set('Content-Security-Policy', UI_CSP);
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.status = 200;
    ctx.type = asset.type;
    ctx.etag = asset.etag;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = asset.body;
  };
}
