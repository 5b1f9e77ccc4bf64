/** Every endpoint group beyond KV, in the order they are matched. */

import type Router from '@koa/router';
import { catalogRoutes } from '../catalog/routes.ts';
import { eventRoutes } from '../event/routes.ts';
import { healthRoutes } from '../health/routes.ts';
import { operatorRoutes } from '../operator/routes.ts';
import { sessionRoutes } from '../session/routes.ts';
import { statusRoutes } from '../status/routes.ts';
import { txnRoutes } from '../txn/routes.ts';
import { agentLocalRoutes } from './local-routes.ts';

export function agentHttpRoutes(): Router[] {
  return [
    catalogRoutes(),
    healthRoutes(),
    sessionRoutes(),
    txnRoutes(),
    statusRoutes(),
    operatorRoutes(),
    agentLocalRoutes(),
    eventRoutes(),
  ];
}
