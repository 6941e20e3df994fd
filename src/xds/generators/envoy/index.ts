/** The generators for Envoy proxies: sidecars (`sidecar`) and gateways (`router`) share CDS/EDS and differ in LDS/RDS. */
import { TypeUrl } from '../../../proto/types.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { sidecarListener, sidecarListenerNames } from './sidecar-listeners.ts';
import { sidecarRoute, sidecarRouteNames } from './sidecar-routes.ts';

const isGateway = (ctx: GenContext) => ctx.view.type() === 'router';

export const envoyListeners: ResourceGenerator = {
  typeUrl: TypeUrl.Listener,
  names: (ctx) => (isGateway(ctx) ? [] : sidecarListenerNames(ctx)),
  build: (ctx, name) => (isGateway(ctx) ? undefined : sidecarListener(ctx, name)),
};

export const envoyRoutes: ResourceGenerator = {
  typeUrl: TypeUrl.RouteConfiguration,
  names: (ctx) => (isGateway(ctx) ? [] : sidecarRouteNames(ctx)),
  build: (ctx, name) => (isGateway(ctx) ? undefined : sidecarRoute(ctx, name)),
};

export { envoyClusters } from './clusters.ts';
