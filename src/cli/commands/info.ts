/** `meshd info`: debugging information about the local agent (GET /v1/agent/self), in `consul info`'s layout. */
import { type CliCommand, leaf } from '../command.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function text(v: Json | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The sections to print: the agent's `Stats` as they are, with `build` and `consul.server` filled in from
 * `Config` when the agent does not report them.
 */
export function infoSections(self: Json): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  const root = isObject(self) ? self : {};
  const stats = isObject(root.Stats) ? root.Stats : {};
  for (const [name, values] of Object.entries(stats)) {
    const section = new Map<string, string>();
    if (isObject(values)) for (const [k, v] of Object.entries(values)) section.set(k, text(v));
    else section.set('value', text(values));
    sections.set(name, section);
  }
  const config = isObject(root.Config) ? root.Config : {};
  const fill = (name: string, key: string, value: Json | undefined) => {
    if (value === undefined) return;
    const section = sections.get(name) ?? new Map<string, string>();
    if (!section.has(key)) section.set(key, text(value));
    sections.set(name, section);
  };
  if (!sections.has('build') && config.Version !== undefined) {
    fill('build', 'prerelease', config.VersionPrerelease ?? '');
    fill('build', 'revision', config.Revision ?? '');
    fill('build', 'version', config.Version);
  }
  if (config.Server !== undefined) fill('consul', 'server', config.Server);
  return sections;
}

export function formatInfo(sections: Map<string, Map<string, string>>): string {
  const lines: string[] = [];
  for (const name of [...sections.keys()].sort()) {
    lines.push(`${name}:`);
    const section = sections.get(name)!;
    for (const key of [...section.keys()].sort()) lines.push(`\t${key} = ${section.get(key)}`);
  }
  return lines.join('\n');
}

export const info: CliCommand = leaf({
  name: 'info',
  synopsis: 'Provides debugging information for operators',
  usage: '[options]',
  help: `
Provides debugging information for operators: the statistics the local agent reports,
grouped by subsystem (agent, build, consul, raft, runtime, serf_lan, ...).`,
  http: 'client',
  output: true,
  async run(ctx) {
    if (ctx.args.length > 0) {
      ctx.err(`Too many arguments (expected 0, got ${ctx.args.length})`);
      return 1;
    }
    let self: Json;
    try {
      self = (await ctx.client().json<Json>('GET', '/v1/agent/self')).value;
    } catch (e) {
      ctx.err(`Error querying agent: ${(e as Error).message}`);
      return 1;
    }
    if (ctx.format === 'json') {
      ctx.json(self);
      return 0;
    }
    const sections = infoSections(self);
    if (sections.size > 0) ctx.out(formatInfo(sections));
    return 0;
  },
});
