/**
 * The upstream HTTP protocol of a cluster and the DestinationRule HTTP settings that live beside it in Envoy's
 * `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` (istio-xds.md §4.1, §4.4): HTTP/2 for HTTP2/gRPC ports or
 * when the DR (or mesh) upgrades, the client's protocol for auto-detected ports on sidecars, HTTP/1.1 otherwise.
 */
import type { Protocol } from '../../model/service.ts';
import { compact, duration, type Json } from './common.ts';
import type { EffectivePolicy } from './traffic-policy.ts';

export const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export function isH2Protocol(p: Protocol): boolean {
  return p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-WEB';
}

export interface UpstreamProtocolInput {
  protocol: Protocol;
  policy: EffectivePolicy | undefined;
  /** Sidecars pass auto-detected traffic through in the client's own protocol; gateways do not. */
  sidecar: boolean;
  /** Mesh h2UpgradePolicy UPGRADE. */
  meshUpgrade: boolean;
}

/** Whether the cluster talks HTTP/2 upstream. */
export function upstreamIsH2(o: UpstreamProtocolInput): boolean {
  const http = o.policy?.connectionPool?.http;
  if (http?.useClientProtocol) return false;
  if (isH2Protocol(o.protocol)) return true;
  if (o.protocol !== 'HTTP') return false; // only plain HTTP/1.1 ports are upgraded
  if (http?.h2UpgradePolicy === 'UPGRADE') return true;
  if (http?.h2UpgradePolicy === 'DO_NOT_UPGRADE') return false;
  return o.meshUpgrade;
}

/** Sets `typed_extension_protocol_options` when the cluster needs any upstream HTTP option. */
export function applyUpstreamProtocol(cluster: Json, o: UpstreamProtocolInput): void {
  const http = o.policy?.connectionPool?.http;
  const tcp = o.policy?.connectionPool?.tcp;
  const h2 = upstreamIsH2(o);
  const useDownstream = http?.useClientProtocol === true || (o.sidecar && o.protocol === 'UNKNOWN');
  const idle = http?.idleTimeout ?? tcp?.idleTimeout;
  const common = compact({
    idle_timeout: duration(idle),
    max_connection_duration: duration(tcp?.maxConnectionDuration),
    max_requests_per_connection: http?.maxRequestsPerConnection ? { value: http.maxRequestsPerConnection } : undefined,
  });
  const h2Options = compact({ max_concurrent_streams: http?.maxConcurrentStreams ? { value: http.maxConcurrentStreams } : undefined });
  let upstream: Json | undefined;
  if (useDownstream) upstream = { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: h2Options } };
  else if (h2) upstream = { explicit_http_config: { http2_protocol_options: h2Options } };
  else if (Object.keys(common).length > 0) upstream = { explicit_http_config: { http_protocol_options: {} } };
  if (!upstream) return;
  cluster.typed_extension_protocol_options = {
    [HTTP_PROTOCOL_OPTIONS]: {
      '@type': `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`,
      ...(Object.keys(common).length > 0 ? { common_http_protocol_options: common } : {}),
      ...upstream,
    },
  };
}
