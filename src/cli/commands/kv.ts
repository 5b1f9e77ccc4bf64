/** `meshd kv get|put|delete|export|import`: the key-value store through /v1/kv, as `consul kv` does it. */
import { readFile } from 'node:fs/promises';
import { type CliCommand, type Context, group, leaf } from '../command.ts';
import type { FlagDef } from '../flags.ts';
import { type ApiClient, escapePath, type Query } from '../http-client.ts';
import { tabwrite } from '../table.ts';

/** A KV entry as /v1/kv answers it; integers beyond 2^53 stay exact as bigint. */
export interface KVPair {
  Key: string;
  Value: string | null;
  Flags?: number | bigint;
  CreateIndex?: number | bigint;
  ModifyIndex?: number | bigint;
  LockIndex?: number | bigint;
  Session?: string;
}

/** JSON.parse that keeps integers beyond Number.MAX_SAFE_INTEGER exact (as bigint), e.g. uint64 flags. */
export function parseJsonExact(text: string): unknown {
  return JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) => {
    if (
      typeof value === 'number' &&
      !Number.isSafeInteger(value) &&
      context?.source &&
      /^-?\d+$/.test(context.source)
    ) {
      return BigInt(context.source);
    }
    return value;
  });
}

/** Go's base64.StdEncoding.DecodeString: strict alphabet and padding, newlines ignored. */
export function decodeBase64Strict(input: string): Buffer {
  const text = input.replace(/[\r\n]/g, '');
  const firstPad = text.indexOf('=');
  const data = firstPad === -1 ? text : text.slice(0, firstPad);
  const bad = data.search(/[^A-Za-z0-9+/]/);
  if (bad !== -1) throw new Error(`illegal base64 data at input byte ${bad}`);
  if (firstPad !== -1) {
    const pad = text.slice(firstPad);
    const padOk = /^={1,2}$/.test(pad) && text.length % 4 === 0 && (data.length % 4) + pad.length === 4;
    if (!padOk) throw new Error(`illegal base64 data at input byte ${firstPad}`);
  } else if (text.length % 4 !== 0) {
    // Go reports the offset where the incomplete quantum starts being read short.
    const rem = text.length % 4;
    throw new Error(`illegal base64 data at input byte ${rem === 1 ? text.length - 1 : text.length}`);
  }
  return Buffer.from(text, 'base64');
}

function valueBytes(pair: KVPair): Buffer {
  return pair.Value ? Buffer.from(pair.Value, 'base64') : Buffer.alloc(0);
}

function num(v: number | bigint | undefined): string {
  return v === undefined ? '0' : String(v);
}

function byKey(a: { Key: string }, b: { Key: string }): number {
  return Buffer.compare(Buffer.from(a.Key), Buffer.from(b.Key));
}

/** `kv get -detailed`: one field per line, aligned as Go's tabwriter with padding 6. No final newline. */
export function prettyKV(pair: KVPair, base64: boolean): Buffer {
  const rows = [
    ['CreateIndex', num(pair.CreateIndex)],
    ['Flags', num(pair.Flags)],
    ['Key', pair.Key],
    ['LockIndex', num(pair.LockIndex)],
    ['ModifyIndex', num(pair.ModifyIndex)],
    ['Session', pair.Session || '-'],
    ['Value', ''],
  ];
  const text = tabwrite(rows).slice(0, -1);
  const value = base64 ? Buffer.from(valueBytes(pair).toString('base64')) : valueBytes(pair);
  return Buffer.concat([Buffer.from(text), value]);
}

function kvPath(key: string): string {
  return `/v1/kv/${escapePath(key.replace(/^\//, ''))}`;
}

async function readKVList(client: ApiClient, path: string, query: Query): Promise<unknown> {
  const res = await client.request('GET', path, { query, stale: true, accept: [404] });
  if (res.status === 404) return null;
  const text = res.body.toString('utf8');
  if (text.trim() === '') return null;
  try {
    return parseJsonExact(text);
  } catch (e) {
    throw new Error(`invalid JSON in response: ${(e as Error).message}`);
  }
}

async function listPairs(client: ApiClient, prefix: string): Promise<KVPair[]> {
  const list = (await readKVList(client, kvPath(prefix), [['recurse', '']])) as KVPair[] | null;
  return [...(list ?? [])].sort(byKey);
}

function writeLine(ctx: Context, bytes: Buffer): void {
  ctx.io.stdout(Buffer.concat([bytes, Buffer.from('\n')]));
}

/** `true`/`false` answer of a CAS, lock or delete write. */
function answeredTrue(body: Buffer): boolean {
  return body.toString('utf8').includes('true');
}

function oneKeyArg(ctx: Context): string | undefined {
  if (ctx.args.length > 1) {
    ctx.err(`Too many arguments (expected 1, got ${ctx.args.length})`);
    return undefined;
  }
  return (ctx.args[0] ?? '').replace(/^\//, '');
}

const get = leaf({
  name: 'kv get',
  synopsis: 'Retrieves or lists data from the KV store',
  usage: '[options] [KEY_OR_PREFIX]',
  help: `
Retrieves the value from the key-value store at the given key name. If no
key exists with that name, an error is returned. If a key exists with that
name but has no data, nothing is returned.

    $ meshd kv get foo

To view detailed information, including the modify index and flags, use -detailed.
To list the keys under a prefix, use -keys (with -separator); to read every key
and value under a prefix, use -recurse.`,
  http: 'server',
  flags: [
    { name: 'base64', kind: 'bool', usage: 'Base64 encode the value. The default value is false.' },
    {
      name: 'detailed',
      kind: 'bool',
      usage:
        'Provide additional metadata about the key such as the ModifyIndex and flags. The default is false.',
    },
    {
      name: 'keys',
      kind: 'bool',
      usage: 'List keys which start with the given prefix, but not their values. The default value is false.',
    },
    {
      name: 'recurse',
      kind: 'bool',
      usage: 'Recursively look at all keys prefixed with the given path. The default value is false.',
    },
    {
      name: 'separator',
      kind: 'string',
      placeholder: 'string',
      usage: 'String to use as a separator between keys, only with -keys. The default value is "/".',
    },
  ],
  async run(ctx) {
    const key = oneKeyArg(ctx);
    if (key === undefined) return 1;
    const { flags } = ctx;
    const base64 = flags.bool('base64');
    const detailed = flags.bool('detailed');
    if (key === '' && !(flags.bool('recurse') || flags.bool('keys'))) {
      ctx.err('Error! Missing KEY argument');
      return 1;
    }
    const client = ctx.client();
    try {
      if (flags.bool('keys')) {
        const separator = flags.has('separator') ? (flags.string('separator') ?? '') : '/';
        const query: Query = [['keys', '']];
        if (separator) query.push(['separator', separator]);
        const keys = ((await readKVList(client, kvPath(key), query)) as string[] | null) ?? [];
        for (const k of [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) ctx.out(k);
        return 0;
      }
      if (flags.bool('recurse')) {
        const pairs = await listPairs(client, key);
        pairs.forEach((pair, i) => {
          if (detailed) {
            writeLine(ctx, prettyKV(pair, base64));
            if (i < pairs.length - 1) ctx.out('');
          } else {
            const value = base64 ? Buffer.from(valueBytes(pair).toString('base64')) : valueBytes(pair);
            writeLine(ctx, Buffer.concat([Buffer.from(`${pair.Key}:`), value]));
          }
        });
        return 0;
      }
      const list = (await readKVList(client, kvPath(key), [])) as KVPair[] | null;
      const pair = list?.[0];
      if (!pair) {
        ctx.err(`Error! No key exists at: ${key}`);
        return 1;
      }
      if (detailed) writeLine(ctx, prettyKV(pair, base64));
      else writeLine(ctx, base64 ? Buffer.from(valueBytes(pair).toString('base64')) : valueBytes(pair));
      return 0;
    } catch (e) {
      ctx.err(`Error querying agent: ${(e as Error).message}`);
      return 1;
    }
  },
});

/** DATA as `kv put` and `kv import` take it: literal, `@file`, or `-` for stdin. */
async function readData(ctx: Context, data: string): Promise<Buffer> {
  if (data.startsWith('@')) {
    try {
      return await readFile(data.slice(1));
    } catch (e) {
      throw new Error(`Failed to read file: ${(e as Error).message}`);
    }
  }
  if (data === '-') {
    try {
      return await ctx.io.readStdin();
    } catch (e) {
      throw new Error(`Failed to read stdin: ${(e as Error).message}`);
    }
  }
  return Buffer.from(data);
}

const modifyIndexFlag: FlagDef = {
  name: 'modify-index',
  kind: 'uint',
  usage:
    'Unsigned integer representing the ModifyIndex of the key. This is used in combination with the -cas flag.',
};

const put = leaf({
  name: 'kv put',
  synopsis: 'Sets or updates data in the KV store',
  usage: '[options] KEY [DATA]',
  help: `
Writes the data to the given path in the key-value store. The data can be of
any type.

    $ meshd kv put config/redis/maxconns 5

The data can also be read from a file by prefixing its name with "@", or from
stdin with "-":

    $ meshd kv put config/program/license @license.lic
    $ echo "abcd1234" | meshd kv put config/program/license -

Without DATA, an empty value is written. With -base64, the data is base 64
decoded before it is written. For a Check-And-Set, give -cas and the
-modify-index the key must still have:

    $ meshd kv put -cas -modify-index=844 config/redis/maxconns 5`,
  http: 'server',
  flags: [
    {
      name: 'acquire',
      kind: 'bool',
      usage:
        'Obtain a lock on the key. If the key does not exist, this operation will create the key and obtain the ' +
        'lock. The session must already exist and be specified via the -session flag. The default value is false.',
    },
    { name: 'base64', kind: 'bool', usage: 'Treat the data as base 64 encoded. The default value is false.' },
    {
      name: 'cas',
      kind: 'bool',
      usage:
        'Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set ' +
        '(-modify-index=0 writes only if the key does not exist). The default value is false.',
    },
    {
      name: 'flags',
      kind: 'uint',
      usage:
        'Unsigned integer value to assign to this key-value pair, opaque to the server. The default is 0.',
    },
    modifyIndexFlag,
    {
      name: 'release',
      kind: 'bool',
      usage:
        'Forfeit the lock on the key at the given path. This requires the -session flag to be set. The key must be ' +
        'held by the session in order to be unlocked. The default value is false.',
    },
    {
      name: 'session',
      kind: 'string',
      usage:
        'Session ID used with the -acquire and -release operations. The default value is empty (no session).',
    },
  ],
  async run(ctx) {
    const { flags, args } = ctx;
    if (args.length === 0) {
      ctx.err('Error! Missing KEY argument');
      return 1;
    }
    if (args.length > 2) {
      ctx.err(`Error! Too many arguments (expected 1 or 2, got ${args.length})`);
      return 1;
    }
    const key = args[0].replace(/^\//, '');
    let data: Buffer;
    try {
      data = await readData(ctx, args[1] ?? '');
    } catch (e) {
      ctx.err(`Error! ${(e as Error).message}`);
      return 1;
    }
    if (flags.bool('base64')) {
      try {
        data = decodeBase64Strict(data.toString('utf8'));
      } catch (e) {
        ctx.err(`Error! Cannot base 64 decode data: ${(e as Error).message}`);
        return 1;
      }
    }
    const session = flags.string('session') ?? '';
    const acquire = flags.bool('acquire');
    const release = flags.bool('release');
    const cas = flags.bool('cas');
    if ((acquire || release) && !session) {
      ctx.err('Error! Missing -session (required with -acquire and -release)');
      return 1;
    }
    if (cas && !flags.has('modify-index')) {
      ctx.err('Must specify -modify-index with -cas!');
      return 1;
    }
    const query: Query = [];
    const kvFlags = flags.uint('flags') ?? 0n;
    if (kvFlags !== 0n) query.push(['flags', String(kvFlags)]);
    if (cas) query.push(['cas', String(flags.uint('modify-index') ?? 0n)]);
    else if (acquire) query.push(['acquire', session]);
    else if (release) query.push(['release', session]);
    let ok: boolean;
    try {
      const res = await ctx.client().request('PUT', kvPath(key), { query, body: data });
      ok = answeredTrue(res.body);
    } catch (e) {
      const reason = (e as Error).message;
      if (cas) ctx.err(`Error! Did not write to ${key}: ${reason}`);
      else ctx.err(`Error! Failed writing data: ${reason}`);
      return 1;
    }
    if (cas) {
      if (!ok) {
        ctx.err(`Error! Did not write to ${key}: CAS failed`);
        return 1;
      }
    } else if (acquire) {
      if (!ok) {
        ctx.err('Error! Did not acquire lock');
        return 1;
      }
      ctx.out(`Success! Lock acquired on: ${key}`);
      return 0;
    } else if (release) {
      if (!ok) {
        ctx.err('Error! Did not release lock');
        return 1;
      }
      ctx.out(`Success! Lock released on: ${key}`);
      return 0;
    }
    ctx.out(`Success! Data written to: ${key}`);
    return 0;
  },
});

const del = leaf({
  name: 'kv delete',
  synopsis: 'Removes data from the KV store',
  usage: '[options] KEY_OR_PREFIX',
  help: `
Removes the value from the key-value store at the given path. If no key exists
at the path, no action is taken.

    $ meshd kv delete foo

To delete all keys which start with "foo", specify the -recurse option:

    $ meshd kv delete -recurse foo

This deletes the keys named "foo", "food", and "foo/bar/zip" if they existed.`,
  http: 'server',
  flags: [
    {
      name: 'cas',
      kind: 'bool',
      usage:
        'Perform a Check-And-Set operation. Specifying this value also requires the -modify-index flag to be set. ' +
        'The default value is false.',
    },
    modifyIndexFlag,
    {
      name: 'recurse',
      kind: 'bool',
      usage: 'Recursively delete all keys with the path. The default value is false.',
    },
  ],
  async run(ctx) {
    const key = oneKeyArg(ctx);
    if (key === undefined) return 1;
    const { flags } = ctx;
    const recurse = flags.bool('recurse');
    const cas = flags.bool('cas');
    const modifyIndex = flags.uint('modify-index') ?? 0n;
    if (key === '' && !recurse) {
      ctx.err('Error! Missing KEY argument');
      return 1;
    }
    if (cas && modifyIndex === 0n) {
      ctx.err('Must specify -modify-index with -cas!');
      return 1;
    }
    if (modifyIndex !== 0n && !cas) {
      ctx.err('Cannot specify -modify-index without -cas!');
      return 1;
    }
    if (recurse && cas) {
      ctx.err('Cannot specify both -cas and -recurse!');
      return 1;
    }
    const client = ctx.client();
    try {
      if (recurse) {
        await client.request('DELETE', kvPath(key), { query: [['recurse', '']] });
        ctx.out(`Success! Deleted keys with prefix: ${key}`);
        return 0;
      }
      if (cas) {
        const res = await client.request('DELETE', kvPath(key), { query: [['cas', String(modifyIndex)]] });
        if (!answeredTrue(res.body)) {
          ctx.err(`Error! Did not delete key ${key}: CAS failed`);
          return 1;
        }
      } else {
        await client.request('DELETE', kvPath(key));
      }
    } catch (e) {
      const reason = (e as Error).message;
      if (recurse) ctx.err(`Error! Did not delete prefix ${key}: ${reason}`);
      else if (cas) ctx.err(`Error! Did not delete key ${key}: ${reason}`);
      else ctx.err(`Error deleting key ${key}: ${reason}`);
      return 1;
    }
    ctx.out(`Success! Deleted key: ${key}`);
    return 0;
  },
});

/** A JSON string as Go's encoding/json writes it (`<`, `>`, `&`, U+2028 and U+2029 escaped). */
export function goJsonString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export interface ExportEntry {
  key: string;
  flags: bigint;
  value: string;
}

/** `kv export` output: Go's json.MarshalIndent(entries, "", "\t"). */
export function formatExport(entries: ExportEntry[]): string {
  if (entries.length === 0) return '[]';
  const items = entries.map(
    (e) =>
      `\t{\n\t\t"key": ${goJsonString(e.key)},\n\t\t"flags": ${e.flags},\n\t\t"value": ${goJsonString(e.value)}\n\t}`,
  );
  return `[\n${items.join(',\n')}\n]`;
}

const exp = leaf({
  name: 'kv export',
  synopsis: 'Exports a tree from the KV store as JSON',
  usage: '[options] [PREFIX]',
  help: `
Retrieves key-value pairs for the given prefix from the key-value store, and
writes a JSON representation to stdout. This can be used with the command
"meshd kv import" to move entire trees between clusters.

    $ meshd kv export vault`,
  http: 'server',
  async run(ctx) {
    const prefix = oneKeyArg(ctx);
    if (prefix === undefined) return 1;
    let pairs: KVPair[];
    try {
      pairs = await listPairs(ctx.client(), prefix);
    } catch (e) {
      ctx.err(`Error querying agent: ${(e as Error).message}`);
      return 1;
    }
    ctx.out(
      formatExport(
        pairs.map((p) => ({
          key: p.Key,
          flags: BigInt(p.Flags ?? 0),
          value: valueBytes(p).toString('base64'),
        })),
      ),
    );
    return 0;
  },
});

const MAX_UINT64 = (1n << 64n) - 1n;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'bigint') return 'number';
  return typeof v;
}

/** Parses `kv export` output; field names match case-insensitively, as Go's decoder does. */
export function parseExport(text: string): ExportEntry[] {
  let data: unknown;
  try {
    data = parseJsonExact(text);
  } catch (e) {
    throw new Error((e as Error).message);
  }
  if (data === null) return [];
  if (!Array.isArray(data)) throw new Error(`cannot unmarshal ${typeName(data)} into a list of entries`);
  return data.map((item, i) => {
    if (item === null) throw new Error(`entry ${i} is null`);
    if (typeof item !== 'object' || Array.isArray(item)) {
      throw new Error(`cannot unmarshal ${typeName(item)} into an entry (index ${i})`);
    }
    const fields = new Map(Object.entries(item).map(([k, v]) => [k.toLowerCase(), v]));
    const key = fields.get('key') ?? '';
    const flags = fields.get('flags') ?? 0;
    const value = fields.get('value') ?? '';
    if (typeof key !== 'string')
      throw new Error(`cannot unmarshal ${typeName(key)} into field key of type string`);
    if (typeof value !== 'string')
      throw new Error(`cannot unmarshal ${typeName(value)} into field value of type string`);
    const isUint = (typeof flags === 'number' && Number.isInteger(flags)) || typeof flags === 'bigint';
    const f = isUint ? BigInt(flags as number | bigint) : -1n;
    if (f < 0n || f > MAX_UINT64) {
      throw new Error(`cannot unmarshal ${typeName(flags)} ${String(flags)} into field flags of type uint64`);
    }
    return { key, flags: f, value };
  });
}

/** `-prefix` joined to an imported key with exactly one `/` between them. */
export function joinPrefix(prefix: string, key: string): string {
  if (!prefix) return key;
  return `${prefix.replace(/\/+$/, '')}/${key.replace(/^\/+/, '')}`;
}

const imp = leaf({
  name: 'kv import',
  synopsis: 'Imports a tree stored as JSON to the KV store',
  usage: '[options] [DATA]',
  help: `
Imports key-value pairs to the key-value store from the JSON representation
generated by the "meshd kv export" command.

The data can be read from a file by prefixing the filename with "@", or from
stdin with "-":

    $ meshd kv import @filename.json
    $ cat filename.json | meshd kv import -

It can also be given as the argument itself (mind the shell quoting).`,
  http: 'server',
  flags: [
    {
      name: 'prefix',
      kind: 'string',
      usage: 'Key prefix for imported data. The default value is empty meaning root.',
    },
  ],
  async run(ctx) {
    const { args } = ctx;
    if (args.length === 0) {
      ctx.err('Error! Missing DATA argument');
      return 1;
    }
    if (args.length > 1) {
      ctx.err(`Error! Too many arguments (expected 1, got ${args.length})`);
      return 1;
    }
    if (args[0] === '') {
      ctx.err('Error! Empty DATA argument');
      return 1;
    }
    let entries: ExportEntry[];
    try {
      const data = await readData(ctx, args[0]);
      try {
        entries = parseExport(data.toString('utf8'));
      } catch (e) {
        ctx.err(`Cannot unmarshal data: ${(e as Error).message}`);
        return 1;
      }
    } catch (e) {
      ctx.err(`Error! ${(e as Error).message}`);
      return 1;
    }
    const prefix = ctx.flags.string('prefix') ?? '';
    const client = ctx.client();
    for (const entry of entries) {
      let value: Buffer;
      try {
        value = decodeBase64Strict(entry.value);
      } catch (e) {
        ctx.err(`Error base 64 decoding value for key ${entry.key}: ${(e as Error).message}`);
        return 1;
      }
      const key = joinPrefix(prefix, entry.key);
      const query: Query = entry.flags !== 0n ? [['flags', String(entry.flags)]] : [];
      try {
        await client.request('PUT', kvPath(key), { query, body: value });
      } catch (e) {
        ctx.err(`Error! Failed writing data for key ${key}: ${(e as Error).message}`);
        return 1;
      }
      ctx.out(`Imported: ${key}`);
    }
    return 0;
  },
});

export const kv: CliCommand = group({
  name: 'kv',
  synopsis: 'Interact with the key-value store',
  help: `
Interact with the key-value store: insert, update, read and delete keys, and
export or import whole trees.

    $ meshd kv put redis/config/connections 5
    $ meshd kv get redis/config/connections
    $ meshd kv get -detailed redis/config/connections
    $ meshd kv delete redis/config/connections`,
  subcommands: { delete: del, export: exp, get, import: imp, put },
});
