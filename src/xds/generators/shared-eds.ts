/**
 * EDS, shared by every proxy type (istiod uses one endpoint generator for Envoy and proxyless gRPC): the endpoints of
 * a service port, narrowed to a subset's labels, grouped by locality.
 */
import { parseClusterName } from '../../model/names.ts';
import { labelsMatch, type Endpoint } from '../../model/service.ts';
import { TypeUrl } from '../../proto/types.ts';
import { buildLoadAssignment } from '../builders/endpoints.ts';
import { struct, type Json } from '../builders/common.ts';
import { effectivePolicy } from '../builders/traffic-policy.ts';
import type { GenContext, ResourceGenerator } from './generator.ts';
import { outboundClusterNames } from './outbound-names.ts';

/** Label a sidecar-injected pod carries; its endpoints take Istio mTLS under auto-mTLS (istio-xds.md §5). */
const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

/** Envoy reads `envoy.transport_socket_match` to pick the cluster's transport socket; `istio.workload` is for telemetry. */
function envoyEndpointMetadata(e: Endpoint): Json | undefined {
  const md: Json = {};
  if (e.labels[TLS_MODE_LABEL] === 'istio') md['envoy.transport_socket_match'] = struct({ tlsMode: 'istio' });
  if (e.workload) md.istio = struct({ workload: e.workload });
  return Object.keys(md).length > 0 ? { filter_metadata: md } : undefined;
}

export const endpointsGenerator: ResourceGenerator = {
  typeUrl: TypeUrl.ClusterLoadAssignment,
  names: outboundClusterNames,
  build(ctx: GenContext, name: string): Json | undefined {
    const key = parseClusterName(name);
    if (!key || key.direction !== 'outbound') return undefined;
    const service = ctx.push.serviceFor(ctx.view, key.host);
    const port = service?.ports.find((p) => p.port === key.port);
    if (!service || !port) return undefined;
    const dr = ctx.push.destinationRuleFor(ctx.view, service);
    let selector: Readonly<Record<string, string>> | undefined;
    if (key.subset) {
      const subset = dr?.object.spec.subsets?.find((s) => s.name === key.subset);
      if (!subset) return { cluster_name: name, endpoints: [] };
      selector = subset.labels ?? {};
    }
    const eps = ctx.push.endpoints(service).filter((e) => e.servicePortName === port.name && labelsMatch(selector, e.labels));
    const policy = effectivePolicy(dr?.object.spec, key.port, key.subset);
    const failover = ctx.push.mesh.localityLbEnabled && policy?.outlierDetection !== undefined;
    const distribute = ctx.push.mesh.localityLbEnabled && (policy?.loadBalancer?.localityLbSetting?.distribute?.length ?? 0) > 0;
    return buildLoadAssignment(name, eps, {
      // The proxy's locality is read only when it matters, so other proxies keep sharing the assignment.
      proxyLocality: failover || distribute ? ctx.view.locality() : '',
      ...(ctx.view.proxyless() ? {} : { metadata: envoyEndpointMetadata }),
      failover,
      ...(policy?.loadBalancer?.localityLbSetting ? { setting: policy.loadBalancer.localityLbSetting } : {}),
    });
  },
};
