/**
 * koa's `body` setter tests every value it is given against `ReadableStream`, `Blob` and
 * `Response`, and reading Node's lazy `Response` global loads all of undici (~2 MiB of RSS per
 * agent) on the first JSON answer, for a class meshd never uses. This turns plain objects, arrays
 * and other JSON values into their JSON text, typed as JSON, before koa's setter sees them: the
 * bytes koa would have sent, through koa's string path.
 */

import type Koa from 'koa';

export function serializeJsonBodies(app: Koa): void {
  const accessor = findAccessor(app.response, 'body');
  Object.defineProperty(app.response, 'body', {
    configurable: true,
    enumerable: accessor.enumerable,
    get(this: Koa.Response) {
      return accessor.get?.call(this);
    },
    set(this: Koa.Response, value: unknown) {
      if (isJsonValue(value)) {
        // koa's own JSON rule: keep a type that already says json, else application/json.
        if (!this.type || !/\bjson\b/i.test(this.type)) this.type = 'json';
        accessor.set?.call(this, JSON.stringify(value));
        return;
      }
      accessor.set?.call(this, value);
    },
  });
}

function findAccessor(start: object, name: string): PropertyDescriptor {
  for (let o: object | null = start; o !== null; o = Object.getPrototypeOf(o)) {
    const d = Object.getOwnPropertyDescriptor(o, name);
    if (d?.get && d.set) return d;
  }
  throw new Error(`koa's response has no ${name} accessor`);
}

/** What koa itself would send as JSON: booleans, numbers, arrays and plain objects. */
function isJsonValue(v: unknown): boolean {
  if (typeof v === 'boolean' || typeof v === 'number') return true;
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
