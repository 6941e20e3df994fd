/**
 * CDS for Envoy sidecars and gateways (istio-xds.md §4): outbound clusters per service port and DestinationRule
 * subset, with the full traffic policy; sidecars add BlackHoleCluster, PassthroughCluster, one `inbound|<port>||`
 * cluster per workload port and InboundPassthroughCluster; gateways add BlackHoleCluster only.
 */
import {
  BLACKHOLE_CLUSTER, inboundClusterName, INBOUND_PASSTHROUGH_CLUSTER, istioSni, parseClusterName, PASSTHROUGH_CLUSTER,
} from '../../../model/names.ts';
import { inboundPorts } from '../../../model/workload-services.ts';
import { TypeUrl } from '../../../proto/types.ts';
import { applyConnectionPool, applyLoadBalancer, applyOutlierDetection } from '../../builders/cluster.ts';
import { adsConfigSource, struct, type Json } from '../../builders/common.ts';
import { istioClusterMetadata, metadataExchangeClusterFilter } from '../../builders/istio-filters.ts';
import { autoMtlsSocketMatches, upstreamTlsSocket } from '../../builders/tls.ts';
import { effectivePolicy } from '../../builders/traffic-policy.ts';
import { applyUpstreamProtocol, HTTP_PROTOCOL_OPTIONS, isH2Protocol, upstreamIsH2 } from '../../builders/upstream-protocol.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { outboundClusterNames } from '../outbound-names.ts';
import { serviceIdentities } from '../service-identities.ts';
import { autoPassthroughClusterNames } from './gateway-listeners.ts';
import { hasIstioExtensions } from './istio-extensions.ts';

const MAX_UINT32 = 4294967295;
const DEFAULT_CIRCUIT_BREAKERS = {
  thresholds: [{ max_connections: { value: MAX_UINT32 }, max_pending_requests: { value: MAX_UINT32 }, max_requests: { value: MAX_UINT32 }, max_retries: { value: MAX_UINT32 }, track_remaining: true }],
};
/** Inbound and passthrough connections leave from 127.0.0.6 so iptables does not capture them again. */
const INBOUND_BIND = { source_address: { address: '127.0.0.6', port_value: 0 } };

function connectTimeout(ctx: GenContext): Json {
  const ms = ctx.push.mesh.connectTimeoutMs;
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function base(ctx: GenContext, name: string): Json {
  return { name, alt_stat_name: `${name};`, connect_timeout: connectTimeout(ctx) };
}

function isSidecar(ctx: GenContext): boolean {
  return ctx.view.type() === 'sidecar';
}

function outboundCluster(ctx: GenContext, name: string, port: number, subset: string, host: string): Json | undefined {
  const service = ctx.push.serviceFor(ctx.view, host);
  const sp = service?.ports.find((p) => p.port === port);
  if (!service || !sp) return undefined;
  const dr = ctx.push.destinationRuleFor(ctx.view, service);
  if (subset && !dr?.object.spec.subsets?.some((s) => s.name === subset)) return undefined;
  const drName = dr ? `${dr.object.metadata.namespace}/${dr.object.metadata.name}` : '';
  const note = (m: string) => ctx.note(dr ? `DestinationRule ${drName} (${name}): ${m}` : `cluster ${name}: ${m}`);
  const cluster = base(ctx, name);
  switch (service.resolution) {
    case 'DNS':
    case 'DNS_ROUND_ROBIN': {
      cluster.type = service.resolution === 'DNS' ? 'STRICT_DNS' : 'LOGICAL_DNS';
      cluster.dns_lookup_family = 'V4_ONLY';
      const eps = ctx.push.endpoints(service).filter((e) => e.servicePortName === sp.name);
      const hosts = service.resolution === 'DNS_ROUND_ROBIN' ? eps.slice(0, 1) : eps;
      cluster.load_assignment = {
        cluster_name: name,
        endpoints: hosts.length === 0 ? [] : [{ locality: {}, lb_endpoints: hosts.map((e) => ({ endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } }, load_balancing_weight: { value: Math.max(1, e.weight) } })) }],
      };
      break;
    }
    case 'NONE':
      // Gateways balance over a headless service's endpoints (EDS); sidecars go where the client dialled.
      if (!isSidecar(ctx) && service.kubernetes) {
        cluster.type = 'EDS';
        cluster.eds_cluster_config = { service_name: name, eds_config: adsConfigSource() };
        break;
      }
      cluster.type = 'ORIGINAL_DST';
      cluster.lb_policy = 'CLUSTER_PROVIDED';
      break;
    default:
      cluster.type = 'EDS';
      cluster.eds_cluster_config = { service_name: name, eds_config: adsConfigSource() };
  }
  const policy = effectivePolicy(dr?.object.spec, port, subset);
  const o = { proxyless: false, note };
  if (cluster.type !== 'ORIGINAL_DST') applyLoadBalancer(cluster, policy, o);
  if (cluster.type === 'ORIGINAL_DST') {
    // DR loadBalancer PASSTHROUGH: Envoy connects to the address the client asked for; no endpoints to discover.
    delete cluster.eds_cluster_config;
    delete cluster.load_assignment;
  }
  applyConnectionPool(cluster, policy, o);
  if (!cluster.circuit_breakers) cluster.circuit_breakers = DEFAULT_CIRCUIT_BREAKERS;
  applyOutlierDetection(cluster, policy, o);
  if (!cluster.common_lb_config) cluster.common_lb_config = {};
  // Locality weights from `distribute` reach Envoy through EDS; it honours them only with locality-weighted LB on.
  if (policy?.loadBalancer?.localityLbSetting?.distribute?.length && ctx.push.mesh.localityLbEnabled) {
    (cluster.common_lb_config as Json).locality_weighted_lb_config = {};
  }
  const protocolInput = { protocol: sp.protocol, policy, sidecar: isSidecar(ctx), meshUpgrade: false };
  applyUpstreamProtocol(cluster, protocolInput);
  const h2 = upstreamIsH2(protocolInput);

  const sni = istioSni(port, subset, service.hostname);
  const tls = policy?.tls;
  if (tls && tls.mode !== 'DISABLE') {
    const socket = upstreamTlsSocket({
      tls,
      istioSni: sni,
      serviceIdentities: serviceIdentities(ctx, service),
      h2,
      allowCredentialName: ctx.view.type() === 'router' || dr?.object.spec.workloadSelector !== undefined,
      note,
    });
    if (socket) cluster.transport_socket = socket;
  } else if (!tls && ctx.push.mesh.enableAutoMtls && service.location === 'MESH_INTERNAL' && cluster.type !== 'ORIGINAL_DST') {
    const socket = upstreamTlsSocket({ tls: { mode: 'ISTIO_MUTUAL' }, istioSni: sni, serviceIdentities: serviceIdentities(ctx, service), h2, allowCredentialName: false, note });
    if (socket) cluster.transport_socket_matches = autoMtlsSocketMatches(socket);
  }
  // Upstream metadata exchange for TCP telemetry rides on the cluster (istiod's TCPClusterMx), on sidecars and gateways.
  if (hasIstioExtensions(ctx)) cluster.filters = [metadataExchangeClusterFilter()];
  const metadata = istioClusterMetadata({
    services: [{ host: service.hostname, name: service.origin.name, namespace: service.origin.namespace }],
    defaultOriginalPort: port,
    ...(subset ? { subset } : {}),
    ...(dr ? { config: `/apis/networking.istio.io/v1/namespaces/${dr.object.metadata.namespace}/destination-rule/${dr.object.metadata.name}` } : {}),
    external: service.location === 'MESH_EXTERNAL',
    disableAlpnOverride: tls?.mode === 'SIMPLE' || tls?.mode === 'MUTUAL',
  });
  if (metadata) cluster.metadata = metadata;
  return cluster;
}

function blackHole(ctx: GenContext): Json {
  return { ...base(ctx, BLACKHOLE_CLUSTER), type: 'STATIC' };
}

const USE_DOWNSTREAM_PROTOCOL = {
  [HTTP_PROTOCOL_OPTIONS]: {
    '@type': `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`,
    use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
  },
};

function passthrough(ctx: GenContext, name: string, inbound: boolean): Json {
  return {
    ...base(ctx, name),
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    circuit_breakers: DEFAULT_CIRCUIT_BREAKERS,
    typed_extension_protocol_options: USE_DOWNSTREAM_PROTOCOL,
    ...(inbound ? { upstream_bind_config: INBOUND_BIND } : {}),
  };
}

function inboundCluster(ctx: GenContext, name: string, port: number): Json | undefined {
  const target = inboundPorts(ctx.push, ctx.view).find((p) => p.port === port);
  if (!target) return undefined;
  const cluster: Json = {
    ...base(ctx, name),
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    circuit_breakers: DEFAULT_CIRCUIT_BREAKERS,
    cleanup_interval: { seconds: 60, nanos: 0 },
    upstream_bind_config: INBOUND_BIND,
    metadata: {
      filter_metadata: {
        istio: struct({ services: target.services.map((s) => ({ host: s.service.hostname, name: s.service.origin.name, namespace: s.service.origin.namespace })) }),
      },
    },
  };
  if (target.defaultEndpoint) {
    const address = defaultEndpointAddress(ctx, target.defaultEndpoint);
    if (!address) {
      ctx.note(`Sidecar ingress port ${port}: defaultEndpoint ${target.defaultEndpoint} is not usable; port left out`);
      return undefined;
    }
    cluster.type = 'STATIC';
    delete cluster.lb_policy;
    delete cluster.cleanup_interval;
    delete cluster.upstream_bind_config;
    cluster.load_assignment = { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] };
  }
  if (isH2Protocol(target.protocol)) applyUpstreamProtocol(cluster, { protocol: target.protocol, policy: undefined, sidecar: true, meshUpgrade: false });
  else if (target.protocol === 'UNKNOWN') cluster.typed_extension_protocol_options = USE_DOWNSTREAM_PROTOCOL;
  return cluster;
}

const SNI_DNAT_PREFIX = 'outbound_.';

/**
 * AUTO_PASSTHROUGH gateways forward mTLS by SNI to a cluster named like the SNI; it is the service's outbound cluster
 * under that name, without TLS of its own (the client's mTLS passes through), fed by the service's EDS.
 */
function sniDnatCluster(ctx: GenContext, name: string): Json | undefined {
  if (isSidecar(ctx)) return undefined;
  const entry = autoPassthroughClusterNames(ctx).find((c) => c.name === name);
  const key = entry && parseClusterName(entry.eds);
  if (!entry || !key) return undefined;
  const cluster = outboundCluster(ctx, entry.eds, key.port, key.subset, key.host);
  if (!cluster) return undefined;
  cluster.name = name;
  cluster.alt_stat_name = `${name};`;
  delete cluster.transport_socket;
  delete cluster.transport_socket_matches;
  return cluster;
}

/** `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080` (the pod's own IP), `:8080`, `unix:///path` → an Envoy address. */
function defaultEndpointAddress(ctx: GenContext, endpoint: string): Json | undefined {
  if (endpoint.startsWith('unix://')) return { pipe: { path: endpoint.slice('unix://'.length) } };
  const m = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(endpoint);
  if (!m) return undefined;
  let host = m[1]!.replace(/^\[|\]$/g, '');
  if (host === '' || host === '0.0.0.0' || host === '::') host = ctx.view.ipAddresses()[0] ?? '127.0.0.1';
  return { socket_address: { address: host, port_value: Number(m[2]) } };
}

export const envoyClusters: ResourceGenerator = {
  typeUrl: TypeUrl.Cluster,
  names(ctx) {
    const out = outboundClusterNames(ctx);
    out.push(BLACKHOLE_CLUSTER);
    if (isSidecar(ctx)) {
      out.push(PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER);
      for (const p of inboundPorts(ctx.push, ctx.view)) out.push(inboundClusterName(p.port));
    } else {
      for (const c of autoPassthroughClusterNames(ctx)) out.push(c.name);
    }
    return out;
  },
  build(ctx, name) {
    if (name === BLACKHOLE_CLUSTER) return blackHole(ctx);
    if (name === PASSTHROUGH_CLUSTER) return isSidecar(ctx) ? passthrough(ctx, name, false) : undefined;
    if (name === INBOUND_PASSTHROUGH_CLUSTER) return isSidecar(ctx) ? passthrough(ctx, name, true) : undefined;
    if (name.startsWith(SNI_DNAT_PREFIX)) return sniDnatCluster(ctx, name);
    const key = parseClusterName(name);
    if (!key) return undefined;
    if (key.direction === 'inbound') return isSidecar(ctx) && !key.subset && !key.host ? inboundCluster(ctx, name, key.port) : undefined;
    return outboundCluster(ctx, name, key.port, key.subset, key.host);
  },
};
