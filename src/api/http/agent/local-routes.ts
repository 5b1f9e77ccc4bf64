/**
 * `/v1/agent/*` (Consul's agent endpoint, agent/agent_endpoint.go): the agent's own services and
 * checks, TTL updates, maintenance, members, self, join/leave/force-leave, reload and metrics.
 *
 * Membership comes from gossip: `members` is this agent's view of the pool (Consul's shape, Serf's
 * status numbers), `join/:address` joins through a gossip address (default port: this agent's
 * gossip port) and answers Consul's 500 with the error list when it fails, and
 * `force-leave/:node` turns a failed member `left` (`?prune`: forgotten at once), after which the
 * leader deregisters it. An unknown member is a 404, the local agent a 400 (use `leave`).
 */

import { createHash } from 'node:crypto';
import Router from '@koa/router';
import type { Next } from 'koa';
import { z } from 'zod';
import { ConfigError } from '../../../agent/config/errors.ts';
import { JoinError, splitAddr } from '../../../agent/gossip/membership.ts';
import { agentTags, serfStatusCode } from '../../../agent/gossip/tags.ts';
import {
  CheckDefinitionBody,
  type CheckStatus,
  isCheckStatus,
  ServiceDefinitionBody,
  scriptChecksPolicy,
  toCheckDefinition,
  toServiceDefinition,
} from '../../../agent/local/definitions.ts';
import {
  DefinitionError,
  NotTtlCheckError,
  UnknownCheckError,
  UnknownServiceError,
} from '../../../agent/local/errors.ts';
import type { LocalCheckView, LocalServiceView } from '../../../agent/local/state.ts';
import { VERSION } from '../../../version.ts';
import { applyFilter } from '../../filter/index.ts';
import { consulObject } from '../../wire/consul-json.ts';
import { jsonBody } from '../body.ts';
import { CHECK_FIELDS, SERVICE_FIELDS } from '../catalog/filter-fields.ts';
import { presentCheck } from '../catalog/present.ts';
import type { AgentApi, ApiContext, GossipApi, LocalAgentApi } from '../context.ts';
import { badRequest, HttpError, notFound } from '../errors.ts';
import { clientGone, filtered, filterParam, flag, param, readOptions } from '../read.ts';

// ---- presenters (Consul's AgentService, HealthCheck, AgentMember) ----

function presentService(v: LocalServiceView, datacenter: string) {
  const s = v.service;
  return {
    ...(s.Kind ? { Kind: s.Kind } : {}),
    ID: s.ID,
    Service: s.Service,
    Tags: s.Tags,
    Meta: s.Meta,
    Port: s.Port,
    Address: s.Address,
    ...(Object.keys(s.TaggedAddresses).length ? { TaggedAddresses: s.TaggedAddresses } : {}),
    Weights: s.Weights,
    EnableTagOverride: s.EnableTagOverride,
    ...(Object.keys(s.Proxy).length ? { Proxy: s.Proxy } : {}),
    ...(Object.keys(s.Connect).length ? { Connect: s.Connect } : {}),
    Datacenter: datacenter,
  };
}

/** A check as `/v1/agent/checks` shows it: the catalog's shape plus the agent's own fields. */
function presentLocalCheck(v: LocalCheckView, node: string) {
  return {
    ...presentCheck({ ...v.check, Node: node, CreateIndex: 0, ModifyIndex: 0 }),
    Interval: v.Interval,
    Timeout: v.Timeout,
    ExposedPort: 0,
  };
}

/** Consul's hashstructure-based content hash, here 16 hex digits of SHA-256 of the wire shape. */
function contentHash(service: unknown): string {
  return createHash('sha256').update(JSON.stringify(service)).digest('hex').slice(0, 16);
}

interface Member {
  Name: string;
  Addr: string;
  Port: number;
  Tags: Record<string, string>;
  Status: number;
  ProtocolMin: number;
  ProtocolMax: number;
  ProtocolCur: number;
  DelegateMin: number;
  DelegateMax: number;
  DelegateCur: number;
}

/** Serf's protocol numbers as Consul reports them; Status 1 is `alive`. */
function member(name: string, addr: string, port: number, tags: Record<string, string>): Member {
  return {
    Name: name,
    Addr: addr,
    Port: port,
    Tags: tags,
    Status: 1,
    ProtocolMin: 1,
    ProtocolMax: 5,
    ProtocolCur: 2,
    DelegateMin: 2,
    DelegateMax: 5,
    DelegateCur: 4,
  };
}

/** "host:port", "[v6]:port", "host", "v6" → host and port (undefined without one); null if malformed. */
export function splitHostPort(addr: string): { host: string; port: number | undefined } | null {
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if ((addr.match(/:/g) ?? []).length > 1) {
    host = addr; // a bare IPv6 address
  } else {
    const at = addr.lastIndexOf(':');
    host = at < 0 ? addr : addr.slice(0, at);
    portText = at < 0 ? undefined : addr.slice(at + 1);
    if (portText !== undefined && !/^\d+$/.test(portText)) return null;
  }
  if (host === '' || /[\s/]/.test(host)) return null;
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && (port < 1 || port > 65535)) return null;
  return { host: host.toLowerCase(), port };
}

function selfMember(agent: AgentApi, local: LocalAgentApi): Member {
  const c = local.config;
  const own = agent.gossip?.members().find((m) => m.name.toLowerCase() === c.nodeName.toLowerCase());
  if (own && agent.gossip) {
    const { ip, port } = splitAddr(own.addr);
    return { ...member(own.name, ip, port, own.meta), Status: serfStatusCode(own.status, agent.gossip.left) };
  }
  const tags = agentTags({
    nodeId: agent.nodeId,
    datacenter: c.datacenter,
    server: c.server,
    bootstrap: c.bootstrap,
    bootstrapExpect: c.bootstrapExpect,
    serverPort: c.ports.server,
  });
  return member(c.nodeName, c.advertiseAddr, c.ports.serfLan, tags);
}

// ---- helpers ----

function gossipOf(ctx: ApiContext): GossipApi {
  const g = ctx.state.agent.gossip;
  if (!g) throw notFound(`404 page not found: ${ctx.method} ${ctx.path}`);
  return g;
}

/**
 * 200 once the change is in the data dir: Consul persists a registration before answering, so
 * what was acknowledged survives a crash.
 */
async function okPersisted(ctx: ApiContext, local: LocalAgentApi): Promise<void> {
  await local.persisted();
  ok(ctx);
}

function localOf(ctx: ApiContext): LocalAgentApi {
  const local = ctx.state.agent.local;
  if (!local) throw notFound(`404 page not found: ${ctx.method} ${ctx.path}`);
  return local;
}

/** The rest of the path after `prefix`, percent-decoded once; '' is refused with `missing`. */
function tail(ctx: ApiContext, prefix: string, missing: string): string {
  const raw = ctx.path.slice(prefix.length);
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw badRequest(`Invalid path encoding: ${JSON.stringify(raw)}`);
  }
  if (value === '') throw badRequest(missing);
  return value;
}

function ok(ctx: ApiContext): void {
  ctx.status = 200;
  ctx.body = '';
}

/** Go's `strconv.ParseBool`. */
function parseBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

function enableParam(ctx: ApiContext): boolean {
  const v = param(ctx, 'enable');
  if (v === undefined || v === '') throw badRequest('Missing value for enable');
  const b = parseBool(v);
  if (b === undefined) throw badRequest(`Invalid value for enable: ${JSON.stringify(v)}`);
  return b;
}

function refuseWan(ctx: ApiContext): void {
  if (flag(ctx, 'wan')) throw badRequest('WAN gossip is not supported: meshd serves one datacenter');
}

/** The local state's refusals as Consul's status codes. */
async function mapLocalErrors(_ctx: ApiContext, next: Next): Promise<void> {
  try {
    await next();
  } catch (err) {
    if (
      err instanceof UnknownServiceError ||
      err instanceof UnknownCheckError ||
      err instanceof NotTtlCheckError
    ) {
      throw notFound(err.message);
    }
    if (err instanceof DefinitionError || err instanceof ConfigError) throw badRequest(err.message);
    throw err;
  }
}

const CheckUpdateBody = consulObject({ Status: z.string().optional(), Output: z.string().optional() });

// ---- routes ----

export function agentLocalRoutes(): Router {
  const router = new Router();
  router.use(mapLocalErrors);

  router.get('/v1/agent/self', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    const local = localOf(ctx);
    const c = local.config;
    ctx.body = {
      Config: {
        Datacenter: c.datacenter,
        PrimaryDatacenter: c.datacenter,
        NodeName: c.nodeName,
        NodeID: agent.nodeId,
        Partition: '',
        Revision: '',
        Server: c.server,
        Version: VERSION,
        VersionPrerelease: '',
        VersionMetadata: '',
        BuildDate: '',
      },
      Coord: null,
      Member: selfMember(agent, local),
      Stats: await local.stats(),
      Meta: { 'consul-network-segment': '', ...c.nodeMeta },
    };
  });

  router.get('/v1/agent/members', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    const local = localOf(ctx);
    const c = local.config;
    const wan = flag(ctx, 'wan');
    const gossip = agent.gossip;
    let members: Member[];
    if (!gossip) {
      members = [selfMember(agent, local)];
    } else {
      const selfName = c.nodeName.toLowerCase();
      members = gossip.members().map((m) => {
        const { ip, port } = splitAddr(m.addr);
        const isSelf = m.name.toLowerCase() === selfName;
        return {
          ...member(m.name, ip, port, m.meta),
          Status: serfStatusCode(m.status, isSelf && gossip.left),
        };
      });
    }
    if (wan) {
      // No WAN pool yet: a server sees the servers of its own datacenter, named `node.dc` as in
      // Consul's WAN pool; a client sees none.
      members = c.server
        ? members
            .filter((m) => m.Tags.role === 'consul')
            .map((m) => ({ ...m, Name: `${m.Name}.${c.datacenter}` }))
        : [];
    }
    members.sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
    ctx.body = applyFilter(members, param(ctx, 'filter'));
  });

  router.get('/v1/agent/services', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    const local = localOf(ctx);
    const rows = filtered(
      local.state.services().map((v) => presentService(v, agent.datacenter)),
      filterParam(ctx, SERVICE_FIELDS),
    );
    ctx.body = Object.fromEntries(rows.map((s) => [s.ID, s]));
  });

  router.get(/^\/v1\/agent\/service\/(.+)$/, async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    const local = localOf(ctx);
    const id = tail(ctx, '/v1/agent/service/', 'Missing service ID');
    const present = () => {
      const v = local.state.service(id);
      if (v === undefined) throw notFound(`unknown service ID: ${id}`);
      const body = presentService(v, agent.datacenter);
      return { ...body, ContentHash: contentHash(body) };
    };
    let body = present();
    // Consul's hash-based blocking: `?hash=<ContentHash>` waits until the service changes.
    const hash = param(ctx, 'hash');
    if (hash !== undefined && hash !== '' && hash === body.ContentHash) {
      const { waitMs } = readOptions(ctx);
      const signal = AbortSignal.any([clientGone(ctx), AbortSignal.timeout(waitMs)]);
      try {
        while (body.ContentHash === hash) {
          await local.state.waitForChange(local.state.version, signal);
          body = present();
        }
      } catch (err) {
        if (!signal.aborted) throw err;
        // Timeout (or the client left): answer with what is current.
        body = present();
      }
    }
    ctx.set('X-Consul-ContentHash', body.ContentHash);
    ctx.body = body;
  });

  router.get('/v1/agent/checks', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    const local = localOf(ctx);
    const rows = filtered(
      local.state.checks().map((v) => presentLocalCheck(v, agent.nodeName)),
      filterParam(ctx, CHECK_FIELDS),
    );
    ctx.body = Object.fromEntries(rows.map((c) => [c.CheckID, c]));
  });

  router.put('/v1/agent/service/register', async (ctx: ApiContext) => {
    const local = localOf(ctx);
    const def = toServiceDefinition(
      await jsonBody(ctx, ServiceDefinitionBody),
      scriptChecksPolicy(local.config, 'api'),
    );
    for (const w of def.warnings) local.logger.warn(w);
    local.state.addService(def, { replaceExistingChecks: flag(ctx, 'replace-existing-checks') });
    await okPersisted(ctx, local);
  });

  router.put(/^\/v1\/agent\/service\/deregister\/(.*)$/, async (ctx: ApiContext) => {
    const local = localOf(ctx);
    local.state.removeService(tail(ctx, '/v1/agent/service/deregister/', 'Missing service ID'));
    await okPersisted(ctx, local);
  });

  router.put(/^\/v1\/agent\/service\/maintenance\/(.*)$/, async (ctx: ApiContext) => {
    const local = localOf(ctx);
    const id = tail(ctx, '/v1/agent/service/maintenance/', 'Missing service ID');
    const enable = enableParam(ctx);
    if (enable) local.state.enableServiceMaintenance(id, param(ctx, 'reason') ?? '');
    else local.state.disableServiceMaintenance(id);
    await okPersisted(ctx, local);
  });

  router.put('/v1/agent/check/register', async (ctx: ApiContext) => {
    const local = localOf(ctx);
    local.state.addCheck(
      toCheckDefinition(await jsonBody(ctx, CheckDefinitionBody), scriptChecksPolicy(local.config, 'api')),
    );
    await okPersisted(ctx, local);
  });

  router.put(/^\/v1\/agent\/check\/deregister\/(.*)$/, async (ctx: ApiContext) => {
    const local = localOf(ctx);
    local.state.removeCheck(tail(ctx, '/v1/agent/check/deregister/', 'Missing check ID'));
    await okPersisted(ctx, local);
  });

  const ttlRoute = (verb: 'pass' | 'warn' | 'fail', status: CheckStatus) => async (ctx: ApiContext) => {
    const local = localOf(ctx);
    const id = tail(ctx, `/v1/agent/check/${verb}/`, 'Missing check ID');
    local.state.updateTtl(id, status, param(ctx, 'note') ?? '');
    await okPersisted(ctx, local);
  };
  router.put(/^\/v1\/agent\/check\/pass\/(.*)$/, ttlRoute('pass', 'passing'));
  router.put(/^\/v1\/agent\/check\/warn\/(.*)$/, ttlRoute('warn', 'warning'));
  router.put(/^\/v1\/agent\/check\/fail\/(.*)$/, ttlRoute('fail', 'critical'));

  router.put(/^\/v1\/agent\/check\/update\/(.*)$/, async (ctx: ApiContext) => {
    const local = localOf(ctx);
    const id = tail(ctx, '/v1/agent/check/update/', 'Missing check ID');
    const body = await jsonBody(ctx, CheckUpdateBody);
    const status = body.Status ?? '';
    if (!isCheckStatus(status)) throw badRequest(`Invalid check status: ${JSON.stringify(status)}`);
    local.state.updateTtl(id, status, body.Output ?? '');
    await okPersisted(ctx, local);
  });

  router.put('/v1/agent/maintenance', async (ctx: ApiContext) => {
    const local = localOf(ctx);
    if (enableParam(ctx)) local.state.enableNodeMaintenance(param(ctx, 'reason') ?? '');
    else local.state.disableNodeMaintenance();
    await okPersisted(ctx, local);
  });

  router.put(/^\/v1\/agent\/join\/(.*)$/, async (ctx: ApiContext) => {
    const gossip = gossipOf(ctx);
    refuseWan(ctx);
    const address = tail(ctx, '/v1/agent/join/', 'Missing address');
    if (splitHostPort(address) === null) throw badRequest(`Invalid address ${JSON.stringify(address)}`);
    try {
      await gossip.join([address]);
    } catch (err) {
      // Consul answers a failed join with a 500 carrying the joiner's error list.
      if (err instanceof JoinError) throw new HttpError(500, err.message);
      throw err;
    }
    ok(ctx);
  });

  router.put('/v1/agent/leave', async (ctx: ApiContext) => {
    const local = localOf(ctx);
    // The agent stops (closing this server) only once this answer is out.
    const answered = new Promise<void>((resolve) => {
      ctx.res.once('finish', resolve);
      ctx.res.once('close', resolve);
    });
    await local.leave({ beforeStop: answered });
    ok(ctx);
  });

  router.put(/^\/v1\/agent\/force-leave\/(.*)$/, async (ctx: ApiContext) => {
    const gossip = gossipOf(ctx);
    const local = localOf(ctx);
    refuseWan(ctx);
    const node = tail(ctx, '/v1/agent/force-leave/', 'Missing node name');
    if (node.toLowerCase() === local.config.nodeName.toLowerCase()) {
      throw badRequest('Cannot force-leave the local agent: use /v1/agent/leave');
    }
    const known = gossip.members().some((m) => m.name.toLowerCase() === node.toLowerCase());
    if (!known) throw notFound(`agent: No node found with name '${node}'`);
    // An alive member is left alone (it would refute); a failed one turns left and the leader
    // deregisters it; `?prune` also forgets it at once.
    gossip.forceLeave(node, flag(ctx, 'prune'));
    ok(ctx);
  });

  router.put('/v1/agent/reload', async (ctx: ApiContext) => {
    await localOf(ctx).reload();
    ok(ctx);
  });

  router.get('/v1/agent/metrics', async (ctx: ApiContext) => {
    const local = localOf(ctx);
    if (param(ctx, 'format') === 'prometheus') {
      const { contentType, body } = await local.metrics.prometheus();
      ctx.type = contentType;
      ctx.body = body;
      return;
    }
    ctx.body = await local.metrics.consulJson();
  });

  return router;
}
