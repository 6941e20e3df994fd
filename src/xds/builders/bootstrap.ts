/**
 * The Envoy bootstrap an injected sidecar (or gateway) starts with (istio-xds.md §1, §2.1, §12): node id and metadata
 * as the agent sets them, admin on localhost:15000, the static Prometheus (15090) and health (15021) listeners, and
 * ADS to the control plane. By default ADS goes straight to mizzen's TLS port, the client certificate and root coming
 * over SDS from the agent's socket; `viaAgent` uses the agent's local xDS proxy socket instead, as istio-proxy does.
 */
import { compact, struct, ZERO_DURATION, type Json } from './common.ts';
import { agentSds, ROOT_CA, WORKLOAD_CERT } from './tls.ts';

export interface BootstrapOptions {
  proxyType: 'sidecar' | 'router';
  podName: string;
  namespace: string;
  ip: string;
  domainSuffix: string;
  labels: Record<string, string>;
  serviceAccount: string;
  clusterId: string;
  /** Control plane `host:port` (TLS). */
  xdsAddress: string;
  /** SAN the control plane's serving certificate must carry. */
  xdsSan: string;
  delta: boolean;
  viaAgent: boolean;
  istioVersion: string;
  /** `envoy`: plain Envoy without Istio's proxy extensions (mizzen's proxy image); the control plane leaves them out. */
  proxyExtensions?: 'istio' | 'envoy';
  locality?: { region?: string; zone?: string; sub_zone?: string };
}

const AGENT_XDS_SOCKET = './etc/istio/proxy/XDS';
const AGENT_SDS_SOCKET = './var/run/secrets/workload-spiffe-uds/socket';

export function nodeId(o: Pick<BootstrapOptions, 'proxyType' | 'ip' | 'podName' | 'namespace' | 'domainSuffix'>): string {
  return `${o.proxyType}~${o.ip}~${o.podName}.${o.namespace}~${o.namespace}.svc.${o.domainSuffix}`;
}

function pipeCluster(name: string, path: string): Json {
  return {
    name,
    type: 'STATIC',
    connect_timeout: { seconds: 1, nanos: 0 },
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path } } } }] }] },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
}

function localCluster(name: string, port: number): Json {
  return {
    name,
    type: 'STATIC',
    connect_timeout: { seconds: 0, nanos: 250_000_000 },
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  };
}

function staticHttpListener(name: string, port: number, prefix: string, cluster: string): Json {
  return {
    name,
    address: { socket_address: { address: '0.0.0.0', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              codec_type: 'AUTO',
              stat_prefix: name,
              route_config: { virtual_hosts: [{ name: 'backend', domains: ['*'], routes: [{ match: { prefix }, route: { cluster } }] }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

function directXdsCluster(o: BootstrapOptions): Json {
  const { host, port } = splitHostPort(o.xdsAddress);
  return {
    name: 'xds-grpc',
    type: 'STRICT_DNS',
    connect_timeout: { seconds: 1, nanos: 0 },
    dns_lookup_family: 'V4_ONLY',
    load_assignment: { cluster_name: 'xds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }] },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
        sni: host,
        common_tls_context: {
          alpn_protocols: ['h2'],
          tls_certificate_sds_secret_configs: [agentSds(WORKLOAD_CERT)],
          combined_validation_context: {
            default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: o.xdsSan } }] },
            validation_context_sds_secret_config: agentSds(ROOT_CA),
          },
        },
      },
    },
  };
}

export function buildBootstrap(o: BootstrapOptions): Json {
  const metadata: Record<string, unknown> = {
    NAMESPACE: o.namespace,
    NAME: o.podName,
    SERVICE_ACCOUNT: o.serviceAccount,
    LABELS: o.labels,
    CLUSTER_ID: o.clusterId,
    INSTANCE_IPS: o.ip,
    ISTIO_VERSION: o.istioVersion,
    INTERCEPTION_MODE: 'REDIRECT',
    ENVOY_STATUS_PORT: 15021,
    ENVOY_PROMETHEUS_PORT: 15090,
    PILOT_SAN: [o.xdsSan],
    ...(o.proxyExtensions === 'envoy' ? { PROXY_EXTENSIONS: 'envoy' } : {}),
  };
  const adsSource = { ads: {}, initial_fetch_timeout: ZERO_DURATION, resource_api_version: 'V3' };
  return {
    node: compact({
      id: nodeId(o),
      cluster: o.labels.app ? `${o.labels.app}.${o.namespace}` : 'istio-proxy',
      locality: o.locality,
      metadata: struct(metadata),
    }),
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 15000 } } },
    static_resources: {
      listeners: [
        staticHttpListener('0.0.0.0_15090', 15090, '/stats/prometheus', 'prometheus_stats'),
        staticHttpListener('0.0.0.0_15021', 15021, '/healthz/ready', 'agent'),
      ],
      clusters: [
        localCluster('prometheus_stats', 15000),
        localCluster('agent', 15020),
        o.viaAgent ? pipeCluster('xds-grpc', AGENT_XDS_SOCKET) : directXdsCluster(o),
        pipeCluster('sds-grpc', AGENT_SDS_SOCKET),
      ],
    },
    dynamic_resources: {
      ads_config: {
        api_type: o.delta ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        set_node_on_first_message_only: true,
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }],
      },
      lds_config: adsSource,
      cds_config: adsSource,
    },
  };
}
