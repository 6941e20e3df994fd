/**
 * CDS for proxyless gRPC (istiod grpcgen cds.go): EDS clusters `outbound|<port>|<subset>|<host>`, one per service port
 * and DestinationRule subset, with the traffic policy parts gRPC implements.
 */
import { parseClusterName } from '../../../model/names.ts';
import { TypeUrl } from '../../../proto/types.ts';
import { applyConnectionPool, applyLoadBalancer, applyOutlierDetection } from '../../builders/cluster.ts';
import { adsConfigSource, struct, type Json } from '../../builders/common.ts';
import { grpcUpstreamMtlsSocket } from '../../builders/tls.ts';
import { effectivePolicy } from '../../builders/traffic-policy.ts';
import { serviceIdentities } from '../service-identities.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { outboundClusterNames } from '../outbound-names.ts';

export const grpcClusters: ResourceGenerator = {
  typeUrl: TypeUrl.Cluster,
  names: outboundClusterNames,
  build(ctx: GenContext, name: string): Json | undefined {
    const key = parseClusterName(name);
    if (!key || key.direction !== 'outbound') return undefined;
    const service = ctx.push.serviceFor(ctx.view, key.host);
    if (!service || !service.ports.some((p) => p.port === key.port)) return undefined;
    const dr = ctx.push.destinationRuleFor(ctx.view, service);
    if (key.subset && !dr?.object.spec.subsets?.some((s) => s.name === key.subset)) return undefined;
    const where = dr ? `DestinationRule ${dr.object.metadata.namespace}/${dr.object.metadata.name} (${name})` : `cluster ${name}`;
    const note = (m: string) => ctx.note(`${where}: ${m}`);
    const cluster: Json = { name, type: 'EDS', eds_cluster_config: { service_name: name, eds_config: adsConfigSource() } };
    if (service.resolution === 'DNS' || service.resolution === 'DNS_ROUND_ROBIN') {
      const port = service.ports.find((p) => p.port === key.port)!;
      const eps = ctx.push.endpoints(service).filter((e) => e.servicePortName === port.name);
      if (eps.length !== 1) {
        ctx.note(`cluster ${name}: DNS service with ${eps.length} endpoints; proxyless gRPC takes exactly one DNS name (LOGICAL_DNS)`);
        if (eps.length === 0) return undefined;
      }
      const ep = eps[0]!;
      delete cluster.eds_cluster_config;
      cluster.type = 'LOGICAL_DNS';
      cluster.load_assignment = {
        cluster_name: name,
        endpoints: [{ locality: {}, lb_endpoints: [{ endpoint: { address: { socket_address: { address: ep.address, port_value: ep.port } } } }] }],
      };
    }
    const policy = effectivePolicy(dr?.object.spec, key.port, key.subset);
    const o = { proxyless: true, note };
    applyLoadBalancer(cluster, policy, o);
    applyConnectionPool(cluster, policy, o);
    applyOutlierDetection(cluster, policy, o);
    // Istio gives gRPC clients mTLS only when a DestinationRule asks for ISTIO_MUTUAL: gRPC cannot pick TLS per
    // endpoint, so auto-mTLS is impossible (injection-and-proxyless.md B4).
    if (policy?.tls?.mode === 'ISTIO_MUTUAL') {
      cluster.transport_socket = grpcUpstreamMtlsSocket(policy.tls.subjectAltNames?.length ? policy.tls.subjectAltNames : serviceIdentities(ctx, service));
    } else if (policy?.tls && policy.tls.mode !== 'DISABLE') {
      note(`tls.mode ${policy.tls.mode} is not supported by proxyless gRPC (only ISTIO_MUTUAL): plaintext`);
    }
    if (dr) cluster.metadata = { filter_metadata: { istio: struct({ config: `/apis/networking.istio.io/v1/namespaces/${dr.object.metadata.namespace}/destination-rule/${dr.object.metadata.name}` }) } };
    return cluster;
  },
};
