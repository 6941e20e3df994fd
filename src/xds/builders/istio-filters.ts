/**
 * Istio's own proxy extensions, which the Istio proxy image (Envoy + istio/proxy filters) runs and istiod configures
 * on every sidecar and gateway: peer metadata exchange (HTTP and TCP), the upstream ALPN override, and the
 * `istio.stats` metrics filter. Their messages are not in Envoy's proto tree; mizzen's copies are in protos/ (see
 * protos/README.md for where each name and number comes from), so these are ordinary typed Anys that the proto root
 * encodes and the strict checker validates.
 *
 * Placement follows istiod (pilot/pkg/networking/core/listener_builder.go: buildHTTPConnectionManager,
 * appendMxFilter; networkfilter.go: buildCompleteNetworkFilters; listener_inbound.go; cluster_builder.go:
 * applyMetadataExchange); `istioHttpFiltersFor` / `istioNetworkFiltersFor` pick the filters per direction and chain
 * kind, `withIstioHttpFilters` / `withIstioNetworkFilters` put them at istiod's positions in an existing list.
 */
import { compact, duration, struct, type Json } from './common.ts';
import type { StatsFilterConfig } from './telemetry.ts';

/** pilot/pkg/xds/filters/filters.go: MxFilterName, AlpnFilterName; StatsFilterName. */
export const MX_FILTER_NAME = 'istio.metadata_exchange';
export const ALPN_FILTER_NAME = 'istio.alpn';
export const STATS_FILTER_NAME = 'istio.stats';
export const GRPC_STATS_FILTER_NAME = 'envoy.filters.http.grpc_stats';
/** The ALPN under which two Istio proxies exchange metadata on an mTLS TCP connection. */
export const ISTIO_PEER_EXCHANGE_ALPN = 'istio-peer-exchange';

const PEER_METADATA_TYPE = 'io.istio.http.peer_metadata.Config';
const TCP_MX_TYPE = 'envoy.tcp.metadataexchange.config.MetadataExchange';
const ALPN_TYPE = 'istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig';
const STATS_TYPE = 'stats.PluginConfig';
const GRPC_STATS_TYPE = 'envoy.extensions.filters.http.grpc_stats.v3.FilterConfig';

const typedConfig = (message: string, body: Json = {}): Json => ({ '@type': `type.googleapis.com/${message}`, ...body });

/** istiod's listener classes: sidecar outbound, sidecar inbound, gateway (router). */
export type IstioFilterDirection = 'outbound' | 'inbound' | 'gateway';

// ---------------------------------------------------------------------------------------------------------------
// Metadata exchange

export interface PeerMetadataOptions {
  /**
   * ProxyConfig.proxyHeaders.metadataExchangeHeaders.mode IN_MESH (istiod skipIstioMXHeaders): do not send the
   * exchange headers to clusters whose `istio` metadata marks them external. Client side only.
   */
  skipExternalClusters?: boolean;
}

/**
 * The HTTP peer-metadata filter, first in every sidecar and gateway HCM (filters.go: SidecarInboundMetadataFilter,
 * SidecarOutboundMetadataFilter[SkipHeaders]). Inbound learns the caller from Istio's headers, else by address from
 * workload discovery, and answers with its own metadata; outbound and gateways do the same towards the upstream.
 */
export function peerMetadataHttpFilter(direction: IstioFilterDirection, options: PeerMetadataOptions = {}): Json {
  const discovery = [{ istio_headers: {} }, { workload_discovery: {} }];
  const config =
    direction === 'inbound'
      ? { downstream_discovery: discovery, downstream_propagation: [{ istio_headers: {} }] }
      : { upstream_discovery: discovery, upstream_propagation: [{ istio_headers: options.skipExternalClusters ? { skip_external_clusters: true } : {} }] };
  return { name: MX_FILTER_NAME, typed_config: typedConfig(PEER_METADATA_TYPE, config) };
}

/** filters.go tcpMx: the same config serves the listener filter and the cluster (upstream) filter. */
const tcpMxConfig = () => typedConfig(TCP_MX_TYPE, { protocol: ISTIO_PEER_EXCHANGE_ALPN, enable_discovery: true });

/**
 * TCP metadata exchange as a listener network filter (filters.go TCPListenerMx): first on sidecar inbound chains, TCP
 * and HTTP alike (before RBAC, istio/istio#41066), and on gateway TCP servers terminating ISTIO_MUTUAL.
 */
export function metadataExchangeNetworkFilter(): Json {
  return { name: MX_FILTER_NAME, typed_config: tcpMxConfig() };
}

/**
 * TCP metadata exchange as an upstream network filter in `envoy.config.cluster.v3.Cluster.filters` (filters.go
 * TCPClusterMx): istiod's outbound side of the exchange, on every outbound service cluster and its subset clusters.
 */
export function metadataExchangeClusterFilter(): Json {
  return { name: MX_FILTER_NAME, typed_config: tcpMxConfig() };
}

// ---------------------------------------------------------------------------------------------------------------
// ALPN override

/**
 * filters.go mtlsHTTP10ALPN…: the istio-* ALPN lands plaintext HTTP over mTLS on the server's HTTP chain of an
 * auto-detected port (istio-xds.md §6.2); plain `istio` keeps old servers working and the standard ALPN keeps
 * traffic leaving the mesh valid (the filter does not know yet whether the upstream is in the mesh).
 */
const ALPN_OVERRIDES: Array<[string, string[]]> = [
  ['HTTP10', ['istio-http/1.0', 'istio', 'http/1.0']],
  ['HTTP11', ['istio-http/1.1', 'istio', 'http/1.1']],
  ['HTTP2', ['istio-h2', 'istio', 'h2']],
];

/** `istio.alpn` (filters.go Alpn): on sidecar outbound and gateway HCMs, never inbound. */
export function alpnHttpFilter(): Json {
  return {
    name: ALPN_FILTER_NAME,
    typed_config: typedConfig(ALPN_TYPE, { alpn_override: ALPN_OVERRIDES.map(([p, alpn]) => ({ upstream_protocol: p, alpn_override: alpn })) }),
  };
}

/** Envoy's gRPC stats filter as istiod configures it (filters.go GrpcStats); istio.stats reads its filter state. */
export function grpcStatsHttpFilter(): Json {
  return { name: GRPC_STATS_FILTER_NAME, typed_config: typedConfig(GRPC_STATS_TYPE, { emit_filter_state: true, stats_for_all_methods: { value: false } }) };
}

// ---------------------------------------------------------------------------------------------------------------
// istio.stats

/**
 * One computed stats config (telemetry.ts metricsOverrides, which follows istiod's generateStatsConfig) as a
 * `stats.PluginConfig` Any. The Telemetry reportingInterval arrives as a duration string and becomes a Duration.
 */
export function statsPluginConfig(s: StatsFilterConfig): Json {
  const c = s.config;
  const interval = typeof c.tcp_reporting_duration === 'string' ? duration(c.tcp_reporting_duration) : (c.tcp_reporting_duration as Json | undefined);
  return typedConfig(STATS_TYPE, compact({ ...c, tcp_reporting_duration: interval }));
}

/**
 * `istio.stats` filters, one per Prometheus provider in effect (telemetry.go buildHTTPTelemetryFilter /
 * buildTCPTelemetryFilter): the same JSON serves as an HTTP filter and as a network filter.
 */
export function istioStatsFilters(configs: readonly StatsFilterConfig[]): Json[] {
  return configs.map((s) => ({ name: STATS_FILTER_NAME, typed_config: statsPluginConfig(s) }));
}

// ---------------------------------------------------------------------------------------------------------------
// Cluster metadata the Istio filters read

export interface IstioClusterMetadata {
  /** The service(s) behind the cluster: istio.stats takes destination_service / _name from the first. */
  services?: Array<{ host: string; name: string; namespace: string }>;
  defaultOriginalPort?: number;
  subset?: string;
  /** `/apis/networking.istio.io/v1/namespaces/<ns>/destination-rule/<name>` of the DestinationRule applied. */
  config?: string;
  /** A MESH_EXTERNAL service: peer metadata with skip_external_clusters sends no exchange headers there. */
  external?: boolean;
  /** DestinationRule TLS SIMPLE/MUTUAL: `alpn_override: "false"` stops istio.alpn from replacing the user's ALPN. */
  disableAlpnOverride?: boolean;
}

/**
 * The `istio` filter metadata istiod puts on clusters (cluster_builder.go buildCluster / applyDestinationRule,
 * util.AddConfigInfoMetadata, AddSubsetToMetadata, AddALPNOverrideToMetadata), as an
 * `envoy.config.core.v3.Metadata`. Undefined when nothing applies.
 */
export function istioClusterMetadata(m: IstioClusterMetadata): Json | undefined {
  const fields = compact({
    services: m.services?.map((s) => ({ host: s.host, name: s.name, namespace: s.namespace })),
    default_original_port: m.defaultOriginalPort,
    subset: m.subset,
    config: m.config,
    external: m.external || undefined,
    alpn_override: m.disableAlpnOverride ? 'false' : undefined,
  });
  return Object.keys(fields).length > 0 ? { filter_metadata: { istio: struct(fields) } } : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Which filters go where, and their positions

/** The Istio filters of one HTTP connection manager; absent ones are left out. */
export interface IstioHttpFilters {
  metadataExchange?: Json;
  grpcStats?: Json;
  alpn?: Json;
  stats?: Json[];
}

export interface IstioHttpFiltersOptions extends PeerMetadataOptions {
  /** From telemetry.ts metricsOverrides for the same direction. */
  stats?: readonly StatsFilterConfig[];
  /** PILOT_ENABLE_METADATA_EXCHANGE (default true); also off for HBONE chains. */
  metadataExchange?: boolean;
  /** PILOT_ENABLE_ALPN_FILTER (default true). */
  alpn?: boolean;
  /** istiod adds grpc_stats to every HCM (default true). */
  grpcStats?: boolean;
}

/** istiod's choice for one HCM: MX (inbound vs client variant), grpc_stats, ALPN unless inbound, stats. */
export function istioHttpFiltersFor(direction: IstioFilterDirection, o: IstioHttpFiltersOptions = {}): IstioHttpFilters {
  const out: IstioHttpFilters = {};
  if (o.metadataExchange !== false) out.metadataExchange = peerMetadataHttpFilter(direction, o);
  if (o.grpcStats !== false) out.grpcStats = grpcStatsHttpFilter();
  if (o.alpn !== false && direction !== 'inbound') out.alpn = alpnHttpFilter();
  if (o.stats && o.stats.length > 0) out.stats = istioStatsFilters(o.stats);
  return out;
}

const FAULT = 'envoy.filters.http.fault';
const CORS = 'envoy.filters.http.cors';
const ROUTER = 'envoy.filters.http.router';
const STATEFUL_SESSION = 'envoy.filters.http.stateful_session';

const indexOfName = (list: Json[], name: string) => list.findIndex((f) => f.name === name);

/**
 * Inserts the Istio filters into an HCM's http_filters at istiod's positions (istio-xds.md §2.5): metadata exchange
 * first (before CUSTOM authz, jwt_authn, RBAC); grpc_stats and then istio.alpn just before fault (so after
 * grpc_web); istio.stats after cors, before stateful session and the router.
 */
export function withIstioHttpFilters(httpFilters: readonly Json[], f: IstioHttpFilters): Json[] {
  const out = [...httpFilters];
  const beforeFault = [f.grpcStats, f.alpn].filter((x): x is Json => x !== undefined);
  if (beforeFault.length > 0) {
    const at = [FAULT, CORS, STATEFUL_SESSION, ROUTER].map((n) => indexOfName(out, n)).find((i) => i >= 0) ?? out.length;
    out.splice(at, 0, ...beforeFault);
  }
  if (f.stats && f.stats.length > 0) {
    const cors = indexOfName(out, CORS);
    const at = cors >= 0 ? cors + 1 : ([STATEFUL_SESSION, ROUTER].map((n) => indexOfName(out, n)).find((i) => i >= 0) ?? out.length);
    out.splice(at, 0, ...f.stats);
  }
  if (f.metadataExchange) out.unshift(f.metadataExchange);
  return out;
}

/** The Istio network filters of one filter chain. */
export interface IstioNetworkFilters {
  metadataExchange?: Json;
  stats?: Json[];
}

export interface IstioNetworkFiltersOptions {
  stats?: readonly StatsFilterConfig[];
  /** PILOT_ENABLE_METADATA_EXCHANGE (default true). */
  metadataExchange?: boolean;
  /** Gateway TCP/TLS server terminating ISTIO_MUTUAL: istiod adds the listener MX filter there too. */
  istioMutualGateway?: boolean;
}

/**
 * istiod's choice for one filter chain. `tcp` chains (tcp_proxy): inbound gets MX and stats, sidecar outbound only
 * stats (its MX is the cluster filter), gateways stats (and MX for ISTIO_MUTUAL servers). `http` chains get network
 * filters only on the inbound side: MX before the HCM (HTTP metrics come from the HCM's own istio.stats).
 */
export function istioNetworkFiltersFor(direction: IstioFilterDirection, chain: 'tcp' | 'http', o: IstioNetworkFiltersOptions = {}): IstioNetworkFilters {
  const out: IstioNetworkFilters = {};
  const mx = o.metadataExchange !== false && (direction === 'inbound' || (direction === 'gateway' && chain === 'tcp' && o.istioMutualGateway === true));
  if (mx) out.metadataExchange = metadataExchangeNetworkFilter();
  if (chain === 'tcp' && o.stats && o.stats.length > 0) out.stats = istioStatsFilters(o.stats);
  return out;
}

/** Filters that stay ahead of istio.stats in a TCP chain (buildCompleteNetworkFilters: MX, CUSTOM authz, RBAC). */
const AHEAD_OF_STATS = new Set([MX_FILTER_NAME, 'envoy.filters.network.ext_authz', 'envoy.filters.network.rbac']);

/**
 * Inserts the Istio filters into a filter chain's network filters at istiod's positions: metadata exchange first,
 * istio.stats after the authorization filters and before the terminal filter (tcp_proxy or the HCM).
 */
export function withIstioNetworkFilters(filters: readonly Json[], f: IstioNetworkFilters): Json[] {
  const out = [...filters];
  if (f.stats && f.stats.length > 0) {
    const at = out.findIndex((x) => !AHEAD_OF_STATS.has(x.name as string));
    out.splice(at < 0 ? out.length : at, 0, ...f.stats);
  }
  if (f.metadataExchange) out.unshift(f.metadataExchange);
  return out;
}
