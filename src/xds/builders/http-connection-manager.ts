/**
 * The HttpConnectionManager istiod builds for every Envoy HTTP filter chain (istio-xds.md §2.5), and the network
 * filters beside it. One builder for sidecar outbound, sidecar inbound and gateway chains; the differences (remote
 * address, client-cert headers, inline vs RDS routes) are parameters.
 */
import { adsConfigSource, compact, ZERO_DURATION, type Json } from './common.ts';
import { withIstioHttpFilters, type IstioHttpFilters } from './istio-filters.ts';

export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

export const ROUTER_FILTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
export const FAULT_HTTP_FILTER = { name: 'envoy.filters.http.fault', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } };
export const CORS_HTTP_FILTER = { name: 'envoy.filters.http.cors', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' } };
export const GRPC_WEB_HTTP_FILTER = { name: 'envoy.filters.http.grpc_web', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb' } };

export type HcmDirection = 'outbound' | 'inbound' | 'gateway';

export interface HcmOptions {
  direction: HcmDirection;
  statPrefix: string;
  /** RDS route config name (outbound, gateways) … */
  rds?: string;
  /** … or an inline route config (inbound). */
  routeConfig?: Json;
  /** HTTP filters placed before fault/cors/router (authn, authz, EnvoyFilter-free extensions). */
  filters?: Json[];
  /**
   * Istio's proxy-extension filters (istio-filters.ts istioHttpFiltersFor), placed where istiod puts them: metadata
   * exchange before `filters`, grpc_stats and istio.alpn before fault, istio.stats after cors.
   */
  istio?: IstioHttpFilters;
  grpcWeb?: boolean;
  /** HTTP/2 settings on the downstream side (HTTP2/gRPC inbound ports). */
  http2?: boolean;
  accessLog?: Json[];
  tracing?: Json;
  /** Gateways: mesh gatewayTopology.numTrustedProxies. */
  xffNumTrustedHops?: number;
  pathNormalization?: 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';
}

/** Mesh pathNormalization (default BASE): RFC 3986 normalisation, escaped slashes kept unless decoding is asked for. */
function normalization(mode: HcmOptions['pathNormalization']): Json {
  switch (mode) {
    case 'NONE':
      return { normalize_path: { value: false }, path_with_escaped_slashes_action: 'KEEP_UNCHANGED' };
    case 'MERGE_SLASHES':
      return { normalize_path: { value: true }, merge_slashes: true, path_with_escaped_slashes_action: 'KEEP_UNCHANGED' };
    case 'DECODE_AND_MERGE_SLASHES':
      return { normalize_path: { value: true }, merge_slashes: true, path_with_escaped_slashes_action: 'UNESCAPE_AND_FORWARD' };
    default:
      return { normalize_path: { value: true }, path_with_escaped_slashes_action: 'KEEP_UNCHANGED' };
  }
}

export function httpConnectionManager(o: HcmOptions): Json {
  const httpFilters = [...(o.filters ?? [])];
  if (o.grpcWeb) httpFilters.push(GRPC_WEB_HTTP_FILTER);
  httpFilters.push(FAULT_HTTP_FILTER, CORS_HTTP_FILTER, ROUTER_FILTER);
  const allFilters = o.istio ? withIstioHttpFilters(httpFilters, o.istio) : httpFilters;
  const inbound = o.direction === 'inbound';
  const gateway = o.direction === 'gateway';
  return {
    name: HCM_FILTER,
    typed_config: compact({
      '@type': HCM_TYPE,
      stat_prefix: o.statPrefix,
      codec_type: 'AUTO',
      ...(o.rds !== undefined ? { rds: { config_source: adsConfigSource(), route_config_name: o.rds } } : { route_config: o.routeConfig }),
      http_filters: allFilters,
      ...normalization(o.pathNormalization),
      use_remote_address: { value: gateway },
      xff_num_trusted_hops: gateway && o.xffNumTrustedHops ? o.xffNumTrustedHops : undefined,
      forward_client_cert_details: inbound ? 'APPEND_FORWARD' : gateway ? 'SANITIZE_SET' : undefined,
      set_current_client_cert_details: inbound || gateway ? { subject: { value: true }, dns: true, uri: true } : undefined,
      upgrade_configs: [{ upgrade_type: 'websocket' }],
      stream_idle_timeout: ZERO_DURATION,
      http2_protocol_options: o.http2 ? { max_concurrent_streams: { value: 1073741824 } } : undefined,
      request_id_extension: { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig' } },
      proxy_100_continue: true,
      access_log: o.accessLog && o.accessLog.length > 0 ? o.accessLog : undefined,
      tracing: o.tracing,
    }),
  };
}

export interface TcpProxyOptions {
  statPrefix: string;
  cluster?: string;
  weighted?: Array<{ name: string; weight: number }>;
  accessLog?: Json[];
}

export function tcpProxy(o: TcpProxyOptions): Json {
  return {
    name: TCP_PROXY_FILTER,
    typed_config: compact({
      '@type': TCP_PROXY_TYPE,
      stat_prefix: o.statPrefix,
      cluster: o.weighted ? undefined : o.cluster,
      weighted_clusters: o.weighted ? { clusters: o.weighted.map((c) => ({ name: c.name, weight: c.weight })) } : undefined,
      access_log: o.accessLog && o.accessLog.length > 0 ? o.accessLog : undefined,
    }),
  };
}

export const LISTENER_FILTERS = {
  originalDst: { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst' } },
  tlsInspector: { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } },
  httpInspector: { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector' } },
};

/** ALPN sets from istiod (istio-xds.md §6.2). */
export const ALPN = {
  plaintextHttp: ['http/1.1', 'h2c'],
  mtlsHttp: ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'],
  mtlsTcpWithMx: ['istio-peer-exchange', 'istio'],
  allIstioMtls: ['istio', 'istio-peer-exchange', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2'],
};
