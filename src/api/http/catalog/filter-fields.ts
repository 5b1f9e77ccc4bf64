/**
 * The fields `filter=` may select on each endpoint's rows, as Consul's (go-bexpr) field
 * configurations describe them: an unknown selector or a value of the wrong type is a 400 before
 * anything runs, as in Consul.
 */

import type { FieldSpec } from '../../filter/index.ts';

const stringMap = { map: 'string' } as const;
const stringList = { array: 'string' } as const;
const indexes = { CreateIndex: 'uint', ModifyIndex: 'uint' } as const;

const proxy: FieldSpec = {
  DestinationServiceName: 'string',
  DestinationServiceID: 'string',
  LocalServiceAddress: 'string',
  LocalServicePort: 'int',
  LocalServiceSocketPath: 'string',
  Mode: 'string',
  Upstreams: {
    array: {
      object: {
        DestinationType: 'string',
        DestinationNamespace: 'string',
        DestinationName: 'string',
        Datacenter: 'string',
        LocalBindAddress: 'string',
        LocalBindPort: 'int',
      },
    },
  },
};
const connect: FieldSpec = { Native: 'bool' };
const weights: FieldSpec = { Passing: 'int', Warning: 'int' };
const serviceAddresses = { map: { object: { Address: 'string', Port: 'int' } } } as const;

/** `/v1/catalog/nodes`, and the `Node` of `/v1/health/service`. */
export const NODE_FIELDS: FieldSpec = {
  ID: 'string',
  Node: 'string',
  Address: 'string',
  Datacenter: 'string',
  TaggedAddresses: stringMap,
  Meta: stringMap,
  ...indexes,
};

/** A service as `/v1/agent/services`, `/v1/catalog/node-services` and `/v1/health/service` show it. */
export const SERVICE_FIELDS: FieldSpec = {
  ID: 'string',
  Service: 'string',
  Tags: stringList,
  Address: 'string',
  TaggedAddresses: serviceAddresses,
  Meta: stringMap,
  Port: 'int',
  Weights: { object: weights },
  EnableTagOverride: 'bool',
  Kind: 'string',
  Proxy: { object: proxy },
  Connect: { object: connect },
  Datacenter: 'string',
  ...indexes,
};

/** `/v1/catalog/service/:name` (Consul's flattened ServiceNode). */
export const SERVICE_NODE_FIELDS: FieldSpec = {
  ID: 'string',
  Node: 'string',
  Address: 'string',
  Datacenter: 'string',
  TaggedAddresses: stringMap,
  NodeMeta: stringMap,
  ServiceKind: 'string',
  ServiceID: 'string',
  ServiceName: 'string',
  ServiceTags: stringList,
  ServiceAddress: 'string',
  ServiceTaggedAddresses: serviceAddresses,
  ServiceWeights: { object: weights },
  ServiceMeta: stringMap,
  ServicePort: 'int',
  ServiceEnableTagOverride: 'bool',
  ServiceProxy: { object: proxy },
  ServiceConnect: { object: connect },
  ...indexes,
};

/** A health check row (`/v1/health/node|checks|state`, `/v1/agent/checks`). */
export const CHECK_FIELDS: FieldSpec = {
  Node: 'string',
  CheckID: 'string',
  Name: 'string',
  Status: 'string',
  Notes: 'string',
  Output: 'string',
  ServiceID: 'string',
  ServiceName: 'string',
  ServiceTags: stringList,
  Type: 'string',
  Definition: {
    object: {
      Interval: 'string',
      Timeout: 'string',
      HTTP: 'string',
      TCP: 'string',
      UDP: 'string',
      GRPC: 'string',
      Method: 'string',
      TLSServerName: 'string',
      TLSSkipVerify: 'bool',
      DeregisterCriticalServiceAfter: 'string',
    },
  },
  ...indexes,
};

/** `/v1/health/service/:name` entries. */
export const SERVICE_ENTRY_FIELDS: FieldSpec = {
  Node: { object: NODE_FIELDS },
  Service: { object: SERVICE_FIELDS },
  Checks: { array: { object: CHECK_FIELDS } },
};
