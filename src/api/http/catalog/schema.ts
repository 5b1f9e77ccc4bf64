/** Request bodies of `/v1/catalog/register` and `/v1/catalog/deregister`, Consul's field names, any key case. */

import { z } from 'zod';
import { consulObject } from '../../wire/consul-json.ts';

const strMap = z.record(z.string(), z.string());
const status = z.enum(['passing', 'warning', 'critical', 'maintenance']);

const CatalogCheck = z.object({
  Node: z.string().optional(),
  CheckID: z.string().optional(),
  Name: z.string().optional(),
  Status: status.optional(),
  Notes: z.string().optional(),
  Output: z.string().optional(),
  ServiceID: z.string().optional(),
  Definition: z.record(z.string(), z.unknown()).optional(),
  Type: z.string().optional(),
});

export const CatalogRegister = consulObject({
  ID: z.string().optional(),
  Node: z.string({ error: 'Must provide node' }).min(1, { error: 'Must provide node' }),
  Address: z.string({ error: 'Must provide address' }).min(1, { error: 'Must provide address' }),
  Datacenter: z.string().optional(),
  TaggedAddresses: strMap.optional(),
  NodeMeta: strMap.nullable().optional(),
  SkipNodeUpdate: z.boolean().optional(),
  Service: z
    .object({
      ID: z.string().optional(),
      Service: z.string().min(1, { error: 'Must provide service name' }),
      Tags: z.array(z.string()).nullable().optional(),
      Address: z.string().optional(),
      TaggedAddresses: z
        .record(z.string(), z.object({ Address: z.string(), Port: z.number().int() }))
        .optional(),
      Meta: strMap.nullable().optional(),
      Port: z.number().int().min(0).max(65535).optional(),
      Weights: z.object({ Passing: z.number().int().min(1), Warning: z.number().int().min(0) }).optional(),
      EnableTagOverride: z.boolean().optional(),
      Kind: z.string().optional(),
      Proxy: z.record(z.string(), z.unknown()).optional(),
      Connect: z.record(z.string(), z.unknown()).optional(),
    })
    .nullable()
    .optional(),
  Check: CatalogCheck.nullable().optional(),
  Checks: z.array(CatalogCheck).nullable().optional(),
});

export const CatalogDeregister = consulObject({
  Node: z.string({ error: 'Must provide node' }).min(1, { error: 'Must provide node' }),
  ServiceID: z.string().optional(),
  CheckID: z.string().optional(),
  Datacenter: z.string().optional(),
});
