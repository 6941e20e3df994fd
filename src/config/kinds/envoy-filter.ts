/**
 * EnvoyFilter (networking.istio.io, v1alpha3 only): patches applied to the generated Envoy configuration. Fields follow
 * istio/api networking/v1alpha3/envoy_filter.proto; rules follow istio/istio pkg/config/validation/envoyfilter.
 * `patch.value` is free-form Envoy config (a protobuf Struct): any field names, including snake_case and `@type`.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkPort, checkSelectorLabels, checkTargetRef, collector } from './checks.ts';
import { Enum, Int32, Obj, Opt, PolicyTargetReference, Regex, StringMap, UInt32, WorkloadSelector } from './common.ts';
import { defineKind } from './kind.ts';

export const ENVOY_FILTER_APPLY_TO = [
  'INVALID', 'LISTENER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER', 'ROUTE_CONFIGURATION', 'VIRTUAL_HOST',
  'HTTP_ROUTE', 'CLUSTER', 'EXTENSION_CONFIG', 'BOOTSTRAP', 'LISTENER_FILTER',
] as const;
export type EnvoyFilterApplyTo = (typeof ENVOY_FILTER_APPLY_TO)[number];
export const ENVOY_FILTER_CONTEXTS = ['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY', 'WAYPOINT'] as const;
export type PatchContext = (typeof ENVOY_FILTER_CONTEXTS)[number];
export const ENVOY_FILTER_OPERATIONS = ['INVALID', 'MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'] as const;
export type PatchOperation = (typeof ENVOY_FILTER_OPERATIONS)[number];

const FilterMatch = Obj({ name: Opt(Type.String()), subFilter: Opt(Obj({ name: Opt(Type.String()) })) });

export const ListenerMatchSchema = Obj({
  portNumber: Opt(UInt32()),
  portName: Opt(Type.String()), // deprecated
  filterChain: Opt(Obj({
    name: Opt(Type.String()),
    sni: Opt(Type.String()),
    transportProtocol: Opt(Type.String()),
    applicationProtocols: Opt(Type.String()),
    filter: Opt(FilterMatch),
    destinationPort: Opt(UInt32()),
  })),
  listenerFilter: Opt(Type.String()),
  name: Opt(Type.String()),
});
export type ListenerMatch = Static<typeof ListenerMatchSchema>;

export const RouteConfigurationMatchSchema = Obj({
  portNumber: Opt(UInt32()),
  portName: Opt(Type.String()),
  gateway: Opt(Type.String()),
  vhost: Opt(Obj({
    name: Opt(Type.String()),
    domainName: Opt(Type.String()),
    route: Opt(Obj({ name: Opt(Type.String()), action: Opt(Enum(['ANY', 'ROUTE', 'REDIRECT', 'DIRECT_RESPONSE'] as const)) })),
  })),
  name: Opt(Type.String()),
});
export type RouteConfigurationMatch = Static<typeof RouteConfigurationMatchSchema>;

export const ClusterMatchSchema = Obj({
  portNumber: Opt(UInt32()),
  service: Opt(Type.String()),
  subset: Opt(Type.String()),
  name: Opt(Type.String()),
});
export type ClusterMatch = Static<typeof ClusterMatchSchema>;

export const WaypointMatchSchema = Obj({
  filter: Opt(FilterMatch),
  route: Opt(Obj({ name: Opt(Type.String()) })),
  portNumber: Opt(UInt32()),
});

export type WaypointMatch = Static<typeof WaypointMatchSchema>;

export const EnvoyConfigObjectMatchSchema = Obj({
  context: Opt(Enum(ENVOY_FILTER_CONTEXTS)),
  proxy: Opt(Obj({ proxyVersion: Opt(Regex()), metadata: Opt(StringMap()) })),
  listener: Opt(ListenerMatchSchema),
  routeConfiguration: Opt(RouteConfigurationMatchSchema),
  cluster: Opt(ClusterMatchSchema),
  waypoint: Opt(WaypointMatchSchema),
});
export type EnvoyConfigObjectMatch = Static<typeof EnvoyConfigObjectMatchSchema>;

export const PatchSchema = Obj({
  operation: Opt(Enum(ENVOY_FILTER_OPERATIONS)),
  value: Opt(Type.Record(Type.String(), Type.Unknown())),
  filterClass: Opt(Enum(['UNSPECIFIED', 'AUTHN', 'AUTHZ', 'STATS'] as const)),
});
export type Patch = Static<typeof PatchSchema>;

export const EnvoyConfigObjectPatchSchema = Obj({
  applyTo: Opt(Enum(ENVOY_FILTER_APPLY_TO)),
  match: Opt(EnvoyConfigObjectMatchSchema),
  patch: Opt(PatchSchema),
});
export type EnvoyConfigObjectPatch = Static<typeof EnvoyConfigObjectPatchSchema>;

export const EnvoyFilterSpecSchema = Obj({
  workloadSelector: Opt(WorkloadSelector()),
  targetRefs: Opt(Type.Array(PolicyTargetReference(), { maxItems: 16 })),
  configPatches: Opt(Type.Array(EnvoyConfigObjectPatchSchema)),
  priority: Opt(Int32()),
});
export type EnvoyFilterSpec = Static<typeof EnvoyFilterSpecSchema>;

const HCM = ['envoy.filters.network.http_connection_manager', 'envoy.http_connection_manager'];
const LISTENER_CLASS: readonly EnvoyFilterApplyTo[] = ['LISTENER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER'];
const ROUTE_CLASS: readonly EnvoyFilterApplyTo[] = ['ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE'];
const FILTER_LISTS: readonly EnvoyFilterApplyTo[] = ['LISTENER_FILTER', 'NETWORK_FILTER', 'HTTP_FILTER'];
const INSERTING: readonly string[] = ['ADD', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'];

function check(spec: EnvoyFilterSpec): FieldError[] {
  const { errors, report } = collector();
  checkSelectorLabels(report, 'spec.workloadSelector.labels', spec.workloadSelector?.labels);
  if (spec.workloadSelector && spec.targetRefs?.length) report('spec', 'only one of workloadSelector, targetRefs may be set');
  spec.targetRefs?.forEach((r, i) => checkTargetRef(report, `spec.targetRefs[${i}]`, r));

  spec.configPatches?.forEach((cp, i) => {
    const p = `spec.configPatches[${i}]`;
    if (!cp.applyTo || cp.applyTo === 'INVALID') return report(`${p}.applyTo`, 'applyTo is required');
    if (!cp.patch) return report(`${p}.patch`, 'patch is required');
    if (!cp.patch.operation || cp.patch.operation === 'INVALID') return report(`${p}.patch.operation`, 'patch operation is required');
    if (cp.patch.operation !== 'REMOVE' && cp.patch.value === undefined) {
      report(`${p}.patch.value`, `patch value is required for operation ${cp.patch.operation}`);
    }
    // Envoy requires every listener, network and HTTP filter to have a name (validate.rules min_len 1): an unnamed
    // inserted filter would get every listener it lands in refused by the proxy.
    const value = cp.patch.value;
    if (FILTER_LISTS.includes(cp.applyTo) && INSERTING.includes(cp.patch.operation) && value !== undefined && (typeof value.name !== 'string' || value.name === '')) {
      report(`${p}.patch.value.name`, `a filter added with ${cp.patch.operation} needs a name`);
    }
    const m = cp.match;
    if (!m) return;
    // The object match is a oneOf: listener | routeConfiguration | cluster | waypoint.
    const objects = (['listener', 'routeConfiguration', 'cluster', 'waypoint'] as const).filter((k) => m[k] !== undefined);
    if (objects.length > 1) report(`${p}.match`, `only one of listener, routeConfiguration, cluster, waypoint may be set, got ${objects.join(' and ')}`);
    // CRD rule: context WAYPOINT goes with a waypoint match, and a waypoint match only with context WAYPOINT.
    if (m.waypoint !== undefined && m.context !== 'WAYPOINT') report(`${p}.match.waypoint`, 'waypoint match is only allowed with context WAYPOINT');
    if (m.waypoint === undefined && m.context === 'WAYPOINT') report(`${p}.match.waypoint`, 'context WAYPOINT needs a waypoint match');
    if (m.waypoint?.portNumber !== undefined) checkPort(report, `${p}.match.waypoint.portNumber`, m.waypoint.portNumber);
    if (objects.length === 0) return;
    if (LISTENER_CLASS.includes(cp.applyTo)) {
      if (!m.listener) return report(`${p}.match`, `applyTo ${cp.applyTo} needs a listener match`);
      const filter = m.listener.filterChain?.filter;
      if (!filter) return;
      if (!filter.name) report(`${p}.match.listener.filterChain.filter.name`, 'filter match needs a name to match on');
      if (filter.subFilter) {
        const sp = `${p}.match.listener.filterChain.filter.subFilter`;
        if (cp.applyTo !== 'HTTP_FILTER') report(sp, 'subFilter match can only be used with applyTo HTTP_FILTER');
        else if (filter.name && !HCM.includes(filter.name)) report(sp, `subFilter match requires the filter match to be ${HCM[0]}`);
        if (!filter.subFilter.name) report(`${sp}.name`, 'subFilter match needs a name to match on');
      }
    } else if (ROUTE_CLASS.includes(cp.applyTo)) {
      if (!m.routeConfiguration) report(`${p}.match`, `applyTo ${cp.applyTo} needs a routeConfiguration match`);
    } else if (cp.applyTo === 'CLUSTER') {
      if (!m.cluster) report(`${p}.match`, 'applyTo CLUSTER needs a cluster match');
    }
  });
  return errors;
}

export const envoyFilter = defineKind<EnvoyFilterSpec>({
  group: 'networking.istio.io',
  kind: 'EnvoyFilter',
  plural: 'envoyfilters',
  versions: ['v1alpha3'],
  namespaced: true,
  spec: EnvoyFilterSpecSchema,
  check,
});
