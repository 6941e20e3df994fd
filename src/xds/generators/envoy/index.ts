/** The generators for Envoy proxies: sidecars (`sidecar`) and gateways (`router`) share CDS/EDS and differ in LDS/RDS. */
import { TypeUrl } from '../../../proto/types.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { gatewayListenerFor, gatewayListenerNames } from './gateway-listeners.ts';
import { gatewayRoute, gatewayRouteNames } from './gateway-routes.ts';
import { sidecarListener, sidecarListenerNames } from './sidecar-listeners.ts';
import { sidecarRoute, sidecarRouteNames } from './sidecar-routes.ts';

const isGateway = (ctx: GenContext) => ctx.view.type() === 'router';

export const envoyListeners: ResourceGenerator = {
  typeUrl: TypeUrl.Listener,
  names: (ctx) => (isGateway(ctx) ? gatewayListenerNames(ctx) : sidecarListenerNames(ctx)),
  build: (ctx, name) => (isGateway(ctx) ? gatewayListenerFor(ctx, name) : sidecarListener(ctx, name)),
};

export const envoyRoutes: ResourceGenerator = {
  typeUrl: TypeUrl.RouteConfiguration,
  names: (ctx) => (isGateway(ctx) ? gatewayRouteNames(ctx) : sidecarRouteNames(ctx)),
  build: (ctx, name) => (isGateway(ctx) ? gatewayRoute(ctx, name) : sidecarRoute(ctx, name)),
};

export { gatewaySecrets as envoySecrets } from './secrets.ts';

export { envoyClusters } from './clusters.ts';
