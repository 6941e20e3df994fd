/**
 * What a chosen Envoy cluster says, read back from the generated Cluster and ClusterLoadAssignment: discovery type,
 * load balancing, circuit breakers, outlier detection, upstream HTTP options, the DestinationRule that shaped it
 * (`metadata.filter_metadata.istio.config`), its endpoints, and the transport socket one endpoint gets (auto-mTLS:
 * `transport_socket_matches` against the endpoint's `envoy.transport_socket_match` metadata).
 */
import { formatDuration, istioMetadata, parseConfigPath, type ConfigRef } from './describe-route.ts';
import type { DecodedConfig, Json } from './simulate.ts';

const UNLIMITED = 4_294_967_295;
const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export interface ClusterInfo {
  name: string;
  found: boolean;
  /** EDS, STATIC, STRICT_DNS, ORIGINAL_DST, … */
  discovery: string;
  lb: string;
  destinationRule?: ConfigRef;
  subset?: string;
  connectTimeout?: string;
  /** Envoy's default-priority thresholds; absent fields are Envoy's defaults. */
  circuitBreakers?: { maxConnections?: number | 'unlimited'; maxPendingRequests?: number | 'unlimited'; maxRequests?: number | 'unlimited'; maxRetries?: number | 'unlimited' };
  outlierDetection?: { consecutive5xx?: number; consecutiveGatewayErrors?: number; interval: string; baseEjectionTime: string; maxEjectionPercent: number; enforcing5xx?: number };
  panicThreshold?: number;
  http?: string[];
  /** The cluster's TLS setting in words (auto-mTLS, ISTIO_MUTUAL, origination, plaintext). */
  tls: string;
  /** Read by a proxyless gRPC client, which honours fewer fields (gRFC A32: only max_requests of the circuit breakers). */
  proxyless?: boolean;
}

export interface EndpointInfo {
  address: string;
  port: number;
  health: string;
  locality?: string;
  weight?: number;
  /** `istio.workload` endpoint metadata: `Pod ns/name`, `WorkloadEntry ns/name`. */
  workload?: string;
  tlsMode?: string;
}

export interface UpstreamTls {
  /** ISTIO_MUTUAL (the mesh's certificates over SDS or gRPC's certificate provider), TLS (origination), or plaintext. */
  mode: 'ISTIO_MUTUAL' | 'TLS' | 'plaintext';
  /** auto-mTLS (transport_socket_matches) or the cluster's transport_socket (DestinationRule or default). */
  via: 'auto-mTLS' | 'cluster';
  sni?: string;
  alpn?: string[];
  sans?: string[];
}

const limit = (v: unknown): number | 'unlimited' | undefined => (v === undefined ? undefined : Number(v) >= UNLIMITED ? 'unlimited' : Number(v));

export function clusterInfo(cfg: DecodedConfig, name: string, proxyless = false): ClusterInfo {
  const c = cfg.clusters.find((x) => x.name === name);
  if (!c) return { name, found: false, discovery: 'missing', lb: '', tls: '' };
  const meta = istioMetadata(c);
  const out: ClusterInfo = { name, found: true, discovery: c.type ?? (c.cluster_type ? String(c.cluster_type.name) : 'EDS'), lb: lbText(c), tls: tlsText(cfg, name), ...(proxyless ? { proxyless } : {}) };
  const dr = parseConfigPath(meta?.config);
  if (dr) out.destinationRule = dr;
  if (meta?.subset) out.subset = String(meta.subset);
  if (c.connect_timeout) out.connectTimeout = formatDuration(c.connect_timeout)!;
  const t = (c.circuit_breakers?.thresholds ?? []).find((x: Json) => (x.priority ?? 'DEFAULT') === 'DEFAULT') as Json | undefined;
  if (t) {
    out.circuitBreakers = {};
    const cb = out.circuitBreakers;
    const set = <K extends keyof NonNullable<ClusterInfo['circuitBreakers']>>(k: K, v: unknown) => {
      const l = limit(v);
      if (l !== undefined) cb[k] = l;
    };
    set('maxConnections', t.max_connections);
    set('maxPendingRequests', t.max_pending_requests);
    set('maxRequests', t.max_requests);
    set('maxRetries', t.max_retries);
  }
  const od = c.outlier_detection as Json | undefined;
  if (od) {
    out.outlierDetection = {
      interval: formatDuration(od.interval ?? '10s')!,
      baseEjectionTime: formatDuration(od.base_ejection_time ?? '30s')!,
      maxEjectionPercent: od.max_ejection_percent ?? 10,
      ...(od.enforcing_consecutive_5xx === 0 ? {} : { consecutive5xx: od.consecutive_5xx ?? 5 }),
      ...(od.consecutive_gateway_failure !== undefined && od.enforcing_consecutive_gateway_failure !== 0 ? { consecutiveGatewayErrors: od.consecutive_gateway_failure } : {}),
    };
  }
  const panic = c.common_lb_config?.healthy_panic_threshold;
  if (panic !== undefined) out.panicThreshold = Number(typeof panic === 'object' ? (panic.value ?? 0) : panic);
  const http: string[] = [];
  const po = c.typed_extension_protocol_options?.[HTTP_OPTIONS] as Json | undefined;
  if (po?.explicit_http_config?.http2_protocol_options) http.push('HTTP/2 upstream');
  if (po?.use_downstream_protocol_config) http.push("downstream's HTTP version upstream");
  const common = po?.common_http_protocol_options as Json | undefined;
  if (common?.max_requests_per_connection) http.push(`${common.max_requests_per_connection} requests per connection`);
  if (common?.idle_timeout) http.push(`idle timeout ${formatDuration(common.idle_timeout)}`);
  const ka = c.upstream_connection_options?.tcp_keepalive as Json | undefined;
  if (ka) http.push(`TCP keepalive${ka.keepalive_time ? ` after ${ka.keepalive_time}s` : ''}${ka.keepalive_interval ? ` every ${ka.keepalive_interval}s` : ''}`);
  if (http.length > 0) out.http = http;
  return out;
}

function lbText(c: Json): string {
  // Proxyless gRPC reads load_balancing_policy when it is set (gRFC A52); lb_policy otherwise.
  const policies = (c.load_balancing_policy?.policies ?? []) as Json[];
  if (policies.length > 0) return policies.map((p) => String(p.typed_extension_config?.name ?? p.typed_extension_config?.typed_config?.['@type'] ?? '?').replace(/^.*\./, '')).join(' / ');
  const lb = String(c.lb_policy ?? 'ROUND_ROBIN');
  const locality = c.common_lb_config?.locality_weighted_lb_config ? ', locality-weighted' : '';
  if (lb === 'RING_HASH') return `RING_HASH (minimum ring ${c.ring_hash_lb_config?.minimum_ring_size ?? 1024})${locality}`;
  if (lb === 'LEAST_REQUEST' && c.least_request_lb_config?.choice_count) return `LEAST_REQUEST (${c.least_request_lb_config.choice_count} choices)${locality}`;
  if (lb === 'CLUSTER_PROVIDED') return 'original destination (the address the app dialled)';
  return `${lb}${locality}`;
}

export function clusterText(c: ClusterInfo): string {
  if (!c.found) return 'not in CDS (Envoy answers 503, no cluster found)';
  const parts = [`${c.discovery}`, c.lb];
  if (c.destinationRule) parts.push(`DestinationRule ${c.destinationRule.namespace}/${c.destinationRule.name}${c.subset ? ` subset ${c.subset}` : ''}`);
  if (c.connectTimeout) parts.push(`connect timeout ${c.connectTimeout}`);
  const cb = c.circuitBreakers;
  if (c.proxyless) {
    parts.push(cb?.maxRequests !== undefined ? `at most ${cb.maxRequests} concurrent requests (gRPC reads only max_requests)` : 'at most 1024 concurrent requests (gRPC default)');
  } else if (cb) {
    const f = (v: number | 'unlimited' | undefined, what: string) => (v === undefined ? undefined : `${v === 'unlimited' ? 'unlimited' : v} ${what}`);
    const items = [f(cb.maxConnections, 'connections'), f(cb.maxPendingRequests, 'pending'), f(cb.maxRequests, 'requests'), f(cb.maxRetries, 'retries')].filter(Boolean);
    parts.push(`circuit breakers ${items.join(', ')}`);
  } else {
    parts.push('circuit breakers Envoy defaults (1024 connections, 1024 pending, 1024 requests, 3 retries)');
  }
  const od = c.outlierDetection;
  if (od) {
    const on = [od.consecutive5xx !== undefined ? `${od.consecutive5xx} consecutive 5xx` : undefined, od.consecutiveGatewayErrors !== undefined ? `${od.consecutiveGatewayErrors} consecutive gateway errors` : undefined].filter(Boolean).join(' or ');
    parts.push(`outlier detection: eject after ${on || '(nothing enforced)'}, checked every ${od.interval}, for ${od.baseEjectionTime}, at most ${od.maxEjectionPercent}% of hosts`);
  } else {
    parts.push('no outlier detection');
  }
  if (c.panicThreshold !== undefined) parts.push(c.panicThreshold === 0 ? 'panic mode off' : `panic threshold ${c.panicThreshold}%`);
  if (c.http) parts.push(...c.http);
  return parts.join(', ');
}

/** The cluster's endpoints: its EDS assignment, or the load_assignment inline in the cluster (STATIC, DNS). */
export function clusterEndpoints(cfg: DecodedConfig, name: string): EndpointInfo[] {
  const c = cfg.clusters.find((x) => x.name === name);
  const cla = cfg.endpoints.find((e) => e.cluster_name === (c?.eds_cluster_config?.service_name ?? name)) ?? c?.load_assignment;
  const out: EndpointInfo[] = [];
  for (const group of (cla?.endpoints ?? []) as Json[]) {
    const loc = group.locality ? [group.locality.region, group.locality.zone, group.locality.sub_zone].filter(Boolean).join('/') : '';
    for (const e of (group.lb_endpoints ?? []) as Json[]) {
      const sa = e.endpoint?.address?.socket_address ?? {};
      const md = e.metadata?.filter_metadata ?? {};
      out.push({
        address: String(sa.address ?? ''),
        port: Number(sa.port_value ?? 0),
        health: String(e.health_status ?? 'UNKNOWN'),
        ...(loc ? { locality: loc } : {}),
        ...(e.load_balancing_weight !== undefined ? { weight: Number(typeof e.load_balancing_weight === 'object' ? e.load_balancing_weight.value : e.load_balancing_weight) } : {}),
        ...(md.istio?.workload ? { workload: String(md.istio.workload) } : {}),
        ...(md['envoy.transport_socket_match']?.tlsMode ? { tlsMode: String(md['envoy.transport_socket_match'].tlsMode) } : {}),
      });
    }
  }
  return out;
}

/** Envoy routes to HEALTHY and UNKNOWN (no health checking) endpoints; the first such one stands for the cluster. */
export const usable = (e: EndpointInfo) => e.health === 'HEALTHY' || e.health === 'UNKNOWN';

function tlsOf(socket: Json | undefined, via: UpstreamTls['via']): UpstreamTls {
  const tc = socket?.typed_config as Json | undefined;
  if (!socket || !String(tc?.['@type'] ?? '').endsWith('UpstreamTlsContext')) return { mode: 'plaintext', via };
  const common = (tc!.common_tls_context ?? {}) as Json;
  const sds = ((common.tls_certificate_sds_secret_configs ?? []) as Json[]).some((s) => s.name === 'default');
  const provider = common.tls_certificate_provider_instance !== undefined || common.tls_certificate_certificate_provider_instance !== undefined;
  const validation = common.combined_validation_context?.default_validation_context ?? common.validation_context ?? {};
  const sans = ((validation.match_typed_subject_alt_names ?? validation.match_subject_alt_names ?? []) as Json[]).map((m) => String(m.matcher?.exact ?? m.exact ?? m.matcher?.prefix ?? JSON.stringify(m)));
  return {
    mode: sds || provider ? 'ISTIO_MUTUAL' : 'TLS',
    via,
    ...(tc!.sni ? { sni: String(tc!.sni) } : {}),
    ...(common.alpn_protocols?.length ? { alpn: common.alpn_protocols as string[] } : {}),
    ...(sans.length > 0 ? { sans } : {}),
  };
}

/** The transport socket Envoy picks for this endpoint: the first transport_socket_matches entry its metadata satisfies. */
export function upstreamTls(cfg: DecodedConfig, clusterName: string, endpoint: EndpointInfo | undefined): UpstreamTls {
  const c = cfg.clusters.find((x) => x.name === clusterName);
  const matches = (c?.transport_socket_matches ?? []) as Json[];
  if (matches.length > 0) {
    const md: Record<string, string> = endpoint?.tlsMode ? { tlsMode: endpoint.tlsMode } : {};
    const hit = matches.find((m) => Object.entries((m.match ?? {}) as Record<string, unknown>).every(([k, v]) => md[k] === v));
    return tlsOf(hit?.transport_socket ?? c?.transport_socket, 'auto-mTLS');
  }
  return tlsOf(c?.transport_socket, 'cluster');
}

export function tlsText(cfg: DecodedConfig, clusterName: string): string {
  const c = cfg.clusters.find((x) => x.name === clusterName);
  const matches = (c?.transport_socket_matches ?? []) as Json[];
  if (matches.some((m) => m.match?.tlsMode === 'istio')) return 'TLS: auto-mTLS (ISTIO_MUTUAL to workloads labelled tlsMode=istio, plaintext to others)';
  const t = tlsOf(c?.transport_socket, 'cluster');
  if (t.mode === 'ISTIO_MUTUAL') return `TLS: ISTIO_MUTUAL${t.sni ? ` (SNI ${t.sni})` : ''}`;
  if (t.mode === 'TLS') return `TLS: originated by the proxy${t.sni ? ` (SNI ${t.sni})` : ''}`;
  return 'TLS: plaintext';
}
