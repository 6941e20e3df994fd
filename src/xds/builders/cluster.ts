/**
 * DestinationRule traffic policy → Envoy Cluster fields (istio-xds.md §4.2–4.5, injection-and-proxyless.md B4).
 * For proxyless gRPC only what grpc-js accepts is emitted: ROUND_ROBIN (the default) or RING_HASH, and circuit
 * breaking by max_requests; LEAST_REQUEST, RANDOM and MAGLEV would make the client NACK the cluster, so they fall
 * back to round robin with a note.
 */
import { parseDurationMs } from '../../config/kinds/common.ts';
import { compact, duration, type Json } from './common.ts';
import type { EffectivePolicy } from './traffic-policy.ts';

const MAX_UINT32 = 4294967295;

export interface ClusterOptions {
  proxyless: boolean;
  note: (message: string) => void;
}

export function applyLoadBalancer(cluster: Json, policy: EffectivePolicy | undefined, o: ClusterOptions): void {
  const lb = policy?.loadBalancer;
  const ch = lb?.consistentHash;
  if (ch) {
    if (ch.maglev && !o.proxyless) {
      cluster.lb_policy = 'MAGLEV';
      if (ch.maglev.tableSize) cluster.maglev_lb_config = { table_size: { value: ch.maglev.tableSize } };
      return;
    }
    if (ch.maglev) o.note('consistentHash.maglev is not supported by proxyless gRPC: ring hash used instead');
    cluster.lb_policy = 'RING_HASH';
    const min = ch.ringHash?.minimumRingSize ?? ch.minimumRingSize ?? 1024;
    cluster.ring_hash_lb_config = { minimum_ring_size: { value: Math.min(min, 8_388_608) } };
    return;
  }
  const simple = lb?.simple;
  if (o.proxyless) {
    if (simple && simple !== 'ROUND_ROBIN' && simple !== 'UNSPECIFIED') {
      o.note(`loadBalancer.simple ${simple} is not supported by proxyless gRPC: round robin used`);
    }
    return; // gRPC's default is round robin inside wrr_locality
  }
  switch (simple) {
    case 'ROUND_ROBIN':
      cluster.lb_policy = 'ROUND_ROBIN';
      break;
    case 'RANDOM':
      cluster.lb_policy = 'RANDOM';
      break;
    case 'PASSTHROUGH':
      cluster.type = 'ORIGINAL_DST';
      cluster.lb_policy = 'CLUSTER_PROVIDED';
      break;
    default:
      cluster.lb_policy = 'LEAST_REQUEST'; // Istio's default, and LEAST_REQUEST/LEAST_CONN
  }
  if (lb?.warmupDurationSecs) {
    const cfg = { slow_start_config: { slow_start_window: duration(lb.warmupDurationSecs) } };
    if (cluster.lb_policy === 'ROUND_ROBIN') cluster.round_robin_lb_config = cfg;
    else if (cluster.lb_policy === 'LEAST_REQUEST') cluster.least_request_lb_config = cfg;
  }
}

export function applyConnectionPool(cluster: Json, policy: EffectivePolicy | undefined, o: ClusterOptions): void {
  const cp = policy?.connectionPool;
  if (o.proxyless) {
    // gRFC A32: gRPC honours only max_requests.
    const max = cp?.http?.http2MaxRequests;
    if (max !== undefined && max > 0) cluster.circuit_breakers = { thresholds: [{ max_requests: { value: max } }] };
    return;
  }
  const threshold: Json = {
    max_connections: { value: cp?.tcp?.maxConnections || MAX_UINT32 },
    max_pending_requests: { value: cp?.http?.http1MaxPendingRequests || MAX_UINT32 },
    max_requests: { value: cp?.http?.http2MaxRequests || MAX_UINT32 },
    max_retries: { value: cp?.http?.maxRetries || MAX_UINT32 },
    track_remaining: true,
  };
  cluster.circuit_breakers = { thresholds: [threshold] };
  if (cp?.tcp?.connectTimeout) cluster.connect_timeout = duration(cp.tcp.connectTimeout);
  const ka = cp?.tcp?.tcpKeepalive;
  if (ka) {
    const secs = (d: string | undefined) => (d ? { value: Math.round((parseDurationMs(d) ?? 0) / 1000) } : undefined);
    cluster.upstream_connection_options = {
      tcp_keepalive: compact({ keepalive_probes: ka.probes ? { value: ka.probes } : undefined, keepalive_time: secs(ka.time), keepalive_interval: secs(ka.interval) }),
    };
  }
}

/**
 * outlierDetection (istio-xds.md §4.5). gRPC (gRFC A50) only implements success-rate and failure-percentage ejection,
 * so for proxyless clients Istio's "N consecutive errors" is expressed as failure-percentage ejection: a host that
 * served at least N requests in the interval and failed (nearly) all of them is ejected. gRPC ejects when the failure
 * percentage is strictly greater than the threshold, hence 99. Envoy gets Istio's own mapping.
 */
export function applyOutlierDetection(cluster: Json, policy: EffectivePolicy | undefined, o: ClusterOptions): void {
  const od = policy?.outlierDetection;
  if (!od) return;
  const consecutive = od.consecutive5xxErrors ?? od.consecutiveErrors;
  const out: Json = { enforcing_success_rate: { value: 0 } };
  if (consecutive !== undefined) {
    out.consecutive_5xx = { value: consecutive };
    out.enforcing_consecutive_5xx = { value: consecutive > 0 ? 100 : 0 };
  }
  if (od.consecutiveGatewayErrors !== undefined) {
    out.consecutive_gateway_failure = { value: od.consecutiveGatewayErrors };
    out.enforcing_consecutive_gateway_failure = { value: od.consecutiveGatewayErrors > 0 ? 100 : 0 };
  }
  if (od.interval) out.interval = duration(od.interval);
  if (od.baseEjectionTime) out.base_ejection_time = duration(od.baseEjectionTime);
  if (od.maxEjectionPercent !== undefined && od.maxEjectionPercent > 0) out.max_ejection_percent = { value: od.maxEjectionPercent };
  if (od.splitExternalLocalOriginErrors) {
    out.split_external_local_origin_errors = true;
    if (od.consecutiveLocalOriginFailures !== undefined) {
      out.consecutive_local_origin_failure = { value: od.consecutiveLocalOriginFailures };
      out.enforcing_consecutive_local_origin_failure = { value: 100 };
    }
    out.enforcing_local_origin_success_rate = { value: 0 };
  }
  if (o.proxyless && consecutive !== undefined && consecutive > 0) {
    out.failure_percentage_threshold = { value: 99 };
    out.enforcing_failure_percentage = { value: 100 };
    out.failure_percentage_request_volume = { value: consecutive };
    out.failure_percentage_minimum_hosts = { value: 1 };
  }
  cluster.outlier_detection = out;
  if (!o.proxyless) cluster.common_lb_config = { healthy_panic_threshold: { value: od.minHealthPercent ?? 0 } };
}
