/**
 * The generators for Envoy proxies: sidecars (`sidecar`) and gateways (`router`) share CDS/EDS and differ in LDS/RDS.
 * EnvoyFilter patches apply last, to each listener, route configuration and cluster as it is built (istiod patches
 * while building too), and EnvoyFilter ADDs contribute listeners and clusters of their own.
 */
import type { EnvoyFilterSpec } from '../../../config/kinds/envoy-filter.ts';
import { TypeUrl } from '../../../proto/types.ts';
import type { Json } from '../../builders/common.ts';
import {
  addedClusters, addedListeners, applyRouteConfigPatches, envoyFiltersFor, GATEWAY_CLUSTERS, GATEWAY_LISTENERS, hasPatches, patchCluster,
  patchListener, SIDECAR_CLUSTERS, SIDECAR_LISTENERS, type SelectedPatches,
} from '../../envoy-filter/index.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { envoyClusters as baseClusters } from './clusters.ts';
import { gatewayListenerFor, gatewayListenerNames } from './gateway-listeners.ts';
import { gatewayRoute, gatewayRouteNames } from './gateway-routes.ts';
import { sidecarListener, sidecarListenerNames } from './sidecar-listeners.ts';
import { sidecarRoute, sidecarRouteNames } from './sidecar-routes.ts';
import { withIstioExtensions } from './istio-extensions.ts';
import { withNetworkAuthorization } from './security-filters.ts';
import { withTelemetry } from './telemetry.ts';

const isGateway = (ctx: GenContext) => ctx.view.type() === 'router';

/** The EnvoyFilter patches for this proxy, selected once per distinct view. */
function patchesFor(ctx: GenContext): SelectedPatches {
  return ctx.memo('envoy-filters', (c) =>
    envoyFiltersFor(
      c.push.config.ofKind<EnvoyFilterSpec>('EnvoyFilter'),
      { view: c.view, istioVersion: () => c.view.metadata('ISTIO_VERSION') as string | undefined, metadata: (k) => c.view.metadata(k) },
      c.push.mesh.rootNamespace,
      c.note,
    ),
  );
}

function listenersAdded(ctx: GenContext, patches: SelectedPatches, taken: ReadonlySet<unknown>): Json[] {
  if (!hasPatches(patches, 'LISTENER')) return [];
  return addedListeners(patches, isGateway(ctx) ? GATEWAY_LISTENERS.adds : SIDECAR_LISTENERS.adds, ctx.note, taken);
}

function clustersAdded(ctx: GenContext, patches: SelectedPatches, taken: ReadonlySet<unknown>): Json[] {
  if (!hasPatches(patches, 'CLUSTER')) return [];
  return addedClusters(patches, isGateway(ctx) ? GATEWAY_CLUSTERS.adds : SIDECAR_CLUSTERS.adds, ctx.note, taken);
}

function listenerNames(ctx: GenContext): string[] {
  return isGateway(ctx) ? gatewayListenerNames(ctx) : sidecarListenerNames(ctx);
}

export const envoyListeners: ResourceGenerator = {
  typeUrl: TypeUrl.Listener,
  names(ctx) {
    const names = listenerNames(ctx);
    const added = listenersAdded(ctx, patchesFor(ctx), new Set(names));
    return [...names, ...added.map((l) => l.name as string)];
  },
  build(ctx, name) {
    const patches = patchesFor(ctx);
    const plain = isGateway(ctx) ? gatewayListenerFor(ctx, name) : sidecarListener(ctx, name);
    const built = plain && withIstioExtensions(ctx, withTelemetry(ctx, withNetworkAuthorization(ctx, plain)));
    if (!built) return listenersAdded(ctx, patches, new Set(listenerNames(ctx))).find((l) => l.name === name);
    const context = isGateway(ctx) ? GATEWAY_LISTENERS.of(built) : SIDECAR_LISTENERS.of(built);
    return patches.size > 0 ? patchListener(built, context, patches, ctx.note) : built;
  },
};

export const envoyRoutes: ResourceGenerator = {
  typeUrl: TypeUrl.RouteConfiguration,
  names: (ctx) => (isGateway(ctx) ? gatewayRouteNames(ctx) : sidecarRouteNames(ctx)),
  build(ctx, name) {
    const rc = isGateway(ctx) ? gatewayRoute(ctx, name) : sidecarRoute(ctx, name);
    const patches = patchesFor(ctx);
    if (!rc || !hasPatches(patches, 'ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE')) return rc;
    return applyRouteConfigPatches(rc, isGateway(ctx) ? 'GATEWAY' : 'SIDECAR_OUTBOUND', patches, ctx.note);
  },
};

export const envoyClusters: ResourceGenerator = {
  typeUrl: TypeUrl.Cluster,
  names(ctx) {
    const names = baseClusters.names(ctx);
    const added = clustersAdded(ctx, patchesFor(ctx), new Set(names));
    return [...names, ...added.map((c) => c.name as string)];
  },
  build(ctx, name) {
    const patches = patchesFor(ctx);
    const built = baseClusters.build(ctx, name);
    if (!built) return clustersAdded(ctx, patches, new Set(baseClusters.names(ctx))).find((c) => c.name === name);
    if (!hasPatches(patches, 'CLUSTER')) return built;
    const context = isGateway(ctx) ? GATEWAY_CLUSTERS.of(built) : SIDECAR_CLUSTERS.of(built);
    return patchCluster(built, context, patches, ctx.note);
  },
};

export { gatewaySecrets as envoySecrets } from './secrets.ts';
