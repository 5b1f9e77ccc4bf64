/**
 * `/v1/catalog/*` (Consul's catalog endpoint): register/deregister, datacenters, nodes, services,
 * service/:name, node/:node, node-services/:node, with `tag`, `node-meta`, `filter` and blocking.
 */

import Router from '@koa/router';
import type { CheckInput, ServiceInput } from '../../../catalog/types.ts';
import { jsonBody } from '../body.ts';
import { type ApiContext, writeValue } from '../context.ts';
import { badRequest } from '../errors.ts';
import {
  blockingRead,
  checkDatacenter,
  filtered,
  filterParam,
  nodeMetaParam,
  params,
  readOptions,
  setReadHeaders,
} from '../read.ts';
import { NODE_FIELDS, SERVICE_FIELDS, SERVICE_NODE_FIELDS } from './filter-fields.ts';
import { presentNode, presentService, presentServiceNode } from './present.ts';
import { CatalogDeregister, CatalogRegister } from './schema.ts';

export function catalogRoutes(): Router {
  const router = new Router();

  router.put('/v1/catalog/register', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const b = await jsonBody(ctx, CatalogRegister);
    if (b.Datacenter && b.Datacenter !== agent.datacenter)
      throw badRequest(`No path to datacenter "${b.Datacenter}"`);
    let service: ServiceInput | undefined;
    if (b.Service) {
      const { Tags, Meta, ...rest } = b.Service;
      service = { ...rest, Tags: Tags ?? [], Meta: Meta ?? {} };
    }
    const checks: CheckInput[] = [];
    for (const c of [...(b.Check ? [b.Check] : []), ...(b.Checks ?? [])]) {
      const CheckID = c.CheckID || c.Name;
      if (!CheckID) throw badRequest('Missing check ID');
      if (c.Node && c.Node !== b.Node)
        throw badRequest(`Check node "${c.Node}" does not match the node "${b.Node}"`);
      const { Node: _node, ...rest } = c;
      checks.push({ ...rest, CheckID, Name: c.Name ?? CheckID });
    }
    const reply = await agent.catalog.write({
      type: 'register',
      node: {
        ...(b.ID !== undefined ? { ID: b.ID } : {}),
        Node: b.Node,
        Address: b.Address,
        Datacenter: agent.datacenter,
        TaggedAddresses: b.TaggedAddresses ?? {},
        Meta: b.NodeMeta ?? {},
      },
      ...(b.SkipNodeUpdate ? { skipNodeUpdate: true } : {}),
      ...(service ? { service } : {}),
      ...(checks.length ? { checks } : {}),
    });
    ctx.body = writeValue(reply) === true;
  });

  router.put('/v1/catalog/deregister', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const b = await jsonBody(ctx, CatalogDeregister);
    const reply = await agent.catalog.write({
      type: 'deregister',
      node: b.Node,
      ...(b.ServiceID ? { serviceId: b.ServiceID } : {}),
      ...(b.CheckID ? { checkId: b.CheckID } : {}),
    });
    ctx.body = writeValue(reply) === true;
  });

  router.get('/v1/catalog/datacenters', async (ctx: ApiContext) => {
    ctx.body = [ctx.state.agent.datacenter];
  });

  router.get('/v1/catalog/nodes', async (ctx: ApiContext) => {
    const filter = filterParam(ctx, NODE_FIELDS);
    const nodes = await blockingRead(ctx, 'catalog.nodes', { nodeMeta: nodeMetaParam(ctx) });
    ctx.body = filtered(nodes.map(presentNode), filter);
  });

  router.get('/v1/catalog/services', async (ctx: ApiContext) => {
    const { agent } = ctx.state;
    checkDatacenter(ctx, agent.datacenter);
    const filter = filterParam(ctx, SERVICE_NODE_FIELDS);
    const opts = readOptions(ctx);
    if (filter) {
      // Consul filters this endpoint on ServiceNode fields; run the filter per instance.
      const reply = await agent.catalog.read('catalog.services', { nodeMeta: nodeMetaParam(ctx) }, opts);
      setReadHeaders(ctx, reply, opts.consistency);
      const out: Record<string, string[]> = {};
      for (const name of Object.keys(reply.result)) {
        const inst = await agent.catalog.read('catalog.service', { service: name }, { ...opts, minIndex: 0 });
        const rows = filtered(
          inst.result.map((r) => presentServiceNode(r.node, r.service)),
          filter,
        );
        if (rows.length) out[name] = [...new Set(rows.flatMap((r) => r.ServiceTags))].sort();
      }
      ctx.body = out;
      return;
    }
    ctx.body = await blockingRead(ctx, 'catalog.services', { nodeMeta: nodeMetaParam(ctx) });
  });

  router.get('/v1/catalog/service/:service', async (ctx: ApiContext) => {
    const filter = filterParam(ctx, SERVICE_NODE_FIELDS);
    const tags = params(ctx, 'tag');
    const instances = await blockingRead(ctx, 'catalog.service', {
      service: ctx.params.service,
      ...(tags.length ? { tags } : {}),
      nodeMeta: nodeMetaParam(ctx),
    });
    ctx.body = filtered(
      instances.map((r) => presentServiceNode(r.node, r.service)),
      filter,
    );
  });

  router.get('/v1/connect/catalog/service/:service', async (ctx: ApiContext) => {
    const filter = filterParam(ctx, SERVICE_NODE_FIELDS);
    const instances = await blockingRead(ctx, 'catalog.service', {
      service: ctx.params.service,
      connect: true,
    });
    ctx.body = filtered(
      instances.map((r) => presentServiceNode(r.node, r.service)),
      filter,
    );
  });

  const nodeRoute = (shape: 'map' | 'list') => async (ctx: ApiContext) => {
    const filter = filterParam(ctx, SERVICE_FIELDS);
    const r = await blockingRead(ctx, 'catalog.node', { node: ctx.params.node });
    if (r === null) {
      if (shape === 'list') ctx.status = 404;
      ctx.body = shape === 'map' ? 'null' : '';
      ctx.type = 'application/json';
      return;
    }
    const services = filtered(r.services.map(presentService), filter);
    ctx.body =
      shape === 'map'
        ? { Node: presentNode(r.node), Services: Object.fromEntries(services.map((s) => [s.ID, s])) }
        : { Node: presentNode(r.node), Services: services };
  };
  router.get('/v1/catalog/node/:node', nodeRoute('map'));
  router.get('/v1/catalog/node-services/:node', nodeRoute('list'));

  return router;
}
