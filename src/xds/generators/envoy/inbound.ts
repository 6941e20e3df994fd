/**
 * The sidecar's `virtualInbound` listener (istio-xds.md §2.4, §6.2): iptables sends every inbound connection to
 * 15006; `original_dst` restores the port it was for, and the filter chains pick the handling by destination port,
 * transport (`tls` / `raw_buffer`) and ALPN, following the workload's PeerAuthentication mode. Ports no service
 * declares are passed through to the application by the same mode rules.
 */
import { inboundClusterName, INBOUND_PASSTHROUGH_CLUSTER, BLACKHOLE_CLUSTER, VIRTUAL_INBOUND_LISTENER, WILDCARD_ADDRESS } from '../../../model/names.ts';
import { portMtlsMode, workloadMtls, type MtlsMode } from '../../../model/peer-authentication-mode.ts';
import { isHttpProtocol, type Protocol } from '../../../model/service.ts';
import { inboundPorts, type InboundPort } from '../../../model/workload-services.ts';
import { compact, ZERO_DURATION, type Json } from '../../builders/common.ts';
import { ALPN, httpConnectionManager, LISTENER_FILTERS, tcpProxy } from '../../builders/http-connection-manager.ts';
import { inboundMtlsSocket } from '../../builders/tls.ts';
import type { MeshConfig } from '../../../model/mesh.ts';
import type { GenContext } from '../generator.ts';
import { securityHttpFilters } from './security-filters.ts';

export const INBOUND_LISTEN_PORT = 15006;

type Handling = 'http' | 'tcp';

interface ChainSpec {
  transport: 'tls' | 'raw_buffer';
  alpn?: string[];
  handling: Handling;
  /** Terminate Istio mTLS on this chain. */
  mtls: boolean;
}

/** The chain matrix of istio-xds.md §6.2 for one port's protocol and mTLS mode. */
function chainSpecs(protocol: Protocol, mode: MtlsMode): ChainSpec[] {
  const kind: 'http' | 'tcp' | 'auto' = protocol === 'UNKNOWN' ? 'auto' : isHttpProtocol(protocol) ? 'http' : 'tcp';
  const c = (transport: ChainSpec['transport'], handling: Handling, mtls: boolean, alpn?: string[]): ChainSpec => ({ transport, handling, mtls, ...(alpn ? { alpn } : {}) });
  switch (mode) {
    case 'STRICT':
      if (kind === 'auto') return [c('tls', 'http', true, ALPN.mtlsHttp), c('tls', 'tcp', true)];
      return [c('tls', kind, true)];
    case 'DISABLE':
      if (kind === 'auto') return [c('raw_buffer', 'http', false, ALPN.plaintextHttp), c('raw_buffer', 'tcp', false)];
      return [c('raw_buffer', kind, false)];
    default:
      if (kind === 'auto') {
        return [
          c('tls', 'http', true, ALPN.mtlsHttp),
          c('raw_buffer', 'http', false, ALPN.plaintextHttp),
          c('tls', 'tcp', true, ALPN.mtlsTcpWithMx),
          c('raw_buffer', 'tcp', false),
          c('tls', 'tcp', false),
        ];
      }
      if (kind === 'http') return [c('tls', 'http', true, ALPN.allIstioMtls), c('raw_buffer', 'http', false)];
      return [c('tls', 'tcp', true, ALPN.allIstioMtls), c('tls', 'tcp', false), c('raw_buffer', 'tcp', false)];
  }
}

/** The inline route config of an inbound HTTP chain: everything to the workload (BuildDefaultHTTPInboundRoute). */
function inboundRouteConfig(cluster: string, port: number, operation: string, grpc: boolean): Json {
  const route: Json = {
    cluster,
    timeout: ZERO_DURATION,
    max_stream_duration: { max_stream_duration: ZERO_DURATION, grpc_timeout_header_max: ZERO_DURATION },
  };
  if (!grpc) route.retry_policy = { retry_on: 'reset-before-request', num_retries: { value: 2 } };
  return {
    name: cluster,
    validate_clusters: { value: false },
    virtual_hosts: [
      {
        name: `inbound|http|${port}`,
        domains: ['*'],
        routes: [{ name: 'default', match: { prefix: '/' }, route, decorator: { operation } }],
      },
    ],
  };
}

function chain(name: string, spec: ChainSpec, port: number | undefined, filters: Json[]): Json {
  return compact({
    name,
    filter_chain_match: compact({
      destination_port: port !== undefined ? { value: port } : undefined,
      transport_protocol: spec.transport,
      application_protocols: spec.alpn,
    }),
    filters,
    transport_socket: spec.mtls ? inboundMtlsSocket(spec.handling === 'http' ? ['h2', 'http/1.1'] : ['istio-peer-exchange', 'h2', 'http/1.1']) : undefined,
  });
}

function portChains(p: InboundPort, mode: MtlsMode, security: Json[], paths: MeshConfig['pathNormalization']): Json[] {
  const cluster = inboundClusterName(p.port);
  const first = p.services[0];
  // A Sidecar ingress port may serve no Service: the decorator then names the port only.
  const operation = first ? `${first.service.hostname}:${first.servicePort}/*` : `inbound:${p.port}/*`;
  const grpc = p.protocol === 'GRPC' || p.protocol === 'GRPC-WEB';
  return chainSpecs(p.protocol, mode).map((spec) => {
    const filters =
      spec.handling === 'http'
        ? [httpConnectionManager({
            direction: 'inbound',
            statPrefix: `inbound_${WILDCARD_ADDRESS}_${p.port};`,
            routeConfig: inboundRouteConfig(cluster, p.port, operation, grpc),
            filters: security,
            pathNormalization: paths,
            http2: p.protocol === 'HTTP2' || grpc,
            grpcWeb: p.protocol === 'GRPC-WEB',
          })]
        : [tcpProxy({ statPrefix: cluster, cluster })];
    return chain(`${WILDCARD_ADDRESS}_${p.port}`, spec, p.port, filters);
  });
}

/** Chains for ports no service declares: to InboundPassthroughCluster, by the workload-wide mode. */
function passthroughChains(mode: MtlsMode, security: Json[], paths: MeshConfig['pathNormalization']): Json[] {
  const specs = chainSpecs('UNKNOWN', mode);
  return specs.map((spec) => {
    const filters =
      spec.handling === 'http'
        ? [httpConnectionManager({
            direction: 'inbound',
            statPrefix: `${INBOUND_PASSTHROUGH_CLUSTER};`,
            routeConfig: inboundRouteConfig(INBOUND_PASSTHROUGH_CLUSTER, 0, 'InboundPassthroughCluster', false),
            filters: security,
            pathNormalization: paths,
          })]
        : [tcpProxy({ statPrefix: INBOUND_PASSTHROUGH_CLUSTER, cluster: INBOUND_PASSTHROUGH_CLUSTER })];
    return chain(spec.handling === 'http' ? 'virtualInbound-catchall-http' : 'virtualInbound', spec, undefined, filters);
  });
}

export function virtualInboundListener(ctx: GenContext): Json {
  const mtls = workloadMtls(ctx.push, ctx.view);
  const chains: Json[] = [
    { name: 'virtualInbound-blackhole', filter_chain_match: { destination_port: { value: INBOUND_LISTEN_PORT } }, filters: [tcpProxy({ statPrefix: BLACKHOLE_CLUSTER, cluster: BLACKHOLE_CLUSTER })] },
  ];
  const security = securityHttpFilters(ctx, false);
  const paths = ctx.push.mesh.pathNormalization;
  for (const p of inboundPorts(ctx.push, ctx.view)) chains.push(...portChains(p, portMtlsMode(mtls, p.port), security, paths));
  chains.push(...passthroughChains(mtls.mode, security, paths));
  return {
    name: VIRTUAL_INBOUND_LISTENER,
    address: { socket_address: { address: WILDCARD_ADDRESS, port_value: INBOUND_LISTEN_PORT } },
    traffic_direction: 'INBOUND',
    listener_filters: [LISTENER_FILTERS.originalDst, LISTENER_FILTERS.tlsInspector, LISTENER_FILTERS.httpInspector],
    listener_filters_timeout: ZERO_DURATION,
    continue_on_listener_filters_timeout: true,
    filter_chains: chains,
  };
}
