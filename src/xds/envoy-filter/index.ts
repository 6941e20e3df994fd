/**
 * Istio EnvoyFilter patches applied to the Envoy resources mizzen generates (istiod pilot/pkg/networking/core/
 * envoyfilter). Pure: builder JSON in, builder JSON out; inputs are never modified (they may be cached); a patch that
 * cannot be applied is reported through `note` and skipped, never thrown.
 *
 * How a generator uses it, per proxy (after building a resource, before encoding it):
 *
 *   const patches = envoyFiltersFor(push.envoyFilters, { view, istioVersion, metadata }, mesh.rootNamespace, note);
 *
 *   // LDS. Contexts: sidecar virtualInbound (and any INBOUND listener) SIDECAR_INBOUND, every other sidecar listener
 *   // SIDECAR_OUTBOUND (sidecarListenerContext), every gateway listener GATEWAY.
 *   listeners = applyListenerPatches(listeners, router ? 'GATEWAY' : SIDECAR_LISTENERS, patches, note);
 *   // … or, building one listener by name: patchListener(l, sidecarListenerContext(l), patches, note) (undefined =
 *   // removed), and addedListeners(patches, SIDECAR_LISTENERS.adds | ['GATEWAY'], note, takenNames) for the
 *   // LISTENER ADDs, whose names wildcard LDS must list too.
 *   // The inline route_config of every HTTP connection manager (sidecar inbound) gets the route patches here, in the
 *   // listener's context (istiod patches it while building the inbound HCM): do not patch it again.
 *
 *   // RDS, per route configuration (SIDECAR_OUTBOUND for a sidecar's RDS routes):
 *   rc = applyRouteConfigPatches(rc, router ? { context: 'GATEWAY', portMap } : 'SIDECAR_OUTBOUND', patches, note);
 *
 *   // CDS (EDS is not patched). Contexts: `inbound|…` and InboundPassthroughCluster SIDECAR_INBOUND, other sidecar
 *   // clusters SIDECAR_OUTBOUND (sidecarClusterContext), gateway clusters GATEWAY.
 *   clusters = applyClusterPatches(clusters, router ? 'GATEWAY' : { ...SIDECAR_CLUSTERS, hostsOf }, patches, note);
 *   // … or patchCluster(c, context, patches, note, hosts) + addedClusters(patches, adds, note, takenNames).
 *
 * Results share nothing with the inputs for touched resources (copies) and are the very input objects for untouched
 * ones: treat both as immutable. `hasPatches(patches, ...)` tells whether anything can apply at all.
 *
 * Not covered: applyTo EXTENSION_CONFIG and BOOTSTRAP, context WAYPOINT, operation MERGE_AND_REPLACE_LIST (not in our
 * API version), patch.filterClass; each is noted when used.
 */
export {
  compileEnvoyFilter,
  describePatch,
  envoyFiltersFor,
  hasPatches,
  NO_PATCHES,
  SUPPORTED_OPERATIONS,
  type CompiledPatch,
  type EnvoyFilterProxy,
  type Note,
  type SelectedPatches,
} from './select.ts';
export {
  addedListeners,
  applyListenerPatches,
  GATEWAY_LISTENERS,
  LISTENER_APPLY_TO,
  patchListener,
  SIDECAR_LISTENERS,
  sidecarListenerContext,
  type ListenerContexts,
} from './listener-patch.ts';
export { applyRouteConfigPatches, ROUTE_APPLY_TO } from './route-patch.ts';
export { addedClusters, applyClusterPatches, GATEWAY_CLUSTERS, patchCluster, SIDECAR_CLUSTERS, sidecarClusterContext, type ClusterContexts } from './cluster-patch.ts';
export { DEPRECATED_FILTER_NAMES, nameMatches, type RouteMatchContext } from './match.ts';
export { APPLY_TO_MESSAGE, convertMessage, convertPatchValue, type Converted, type Json } from './value.ts';
