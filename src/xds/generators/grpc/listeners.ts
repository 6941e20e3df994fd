/**
 * LDS for proxyless gRPC (istiod grpcgen lds.go, gRFC A27/A36): client listeners named `host:port` carrying an
 * api_listener HCM with RDS, and the server listener a gRPC XdsServer asks for by its
 * `xds.istio.io/grpc/lds/inbound/<ip>:<port>` name.
 */
import { GRPC_INBOUND_LISTENER_PREFIX, clusterName, joinHostPort, splitHostPort } from '../../../model/names.ts';
import { TypeUrl } from '../../../proto/types.ts';
import { adsConfigSource, type Json } from '../../builders/common.ts';
import { grpcDownstreamMtlsSocket } from '../../builders/tls.ts';
import { grpcRbacHttpFilters } from '../../builders/grpc-rbac.ts';
import { authorizationPoliciesFor } from '../../../model/authorization.ts';
import { portMtlsMode, workloadMtls } from '../../../model/peer-authentication-mode.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { resolveService } from './resolve.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
const FAULT = { name: 'envoy.filters.http.fault', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } };

function clientListener(name: string, address: string, port: number, routeConfigName: string): Json {
  return {
    name,
    address: { socket_address: { address, port_value: port } },
    api_listener: {
      api_listener: {
        '@type': HCM,
        stat_prefix: `outbound_${joinHostPort(address, port)}`,
        rds: { config_source: adsConfigSource(), route_config_name: routeConfigName },
        // The router must be last (gRPC validates it); the fault filter serves VirtualService fault injection.
        http_filters: [FAULT, ROUTER],
      },
    },
  };
}

function serverListener(ctx: GenContext, name: string): Json | undefined {
  const { host, port } = splitHostPort(name.slice(GRPC_INBOUND_LISTENER_PREFIX.length));
  if (!port) return undefined;
  // Unlike istiod, the listener does not wait for a service to select the workload: a server that is not registered
  // yet still serves (no service policies) instead of staying NOT_SERVING with no explanation. Nothing here reads
  // endpoints, so endpoint-only pushes cannot leave it stale.
  // mTLS by PeerAuthentication: STRICT requires it; PERMISSIVE cannot be honoured (gRPC cannot tell TLS from
  // plaintext on one port), so like istiod it means plaintext — unless the pod is labelled tlsMode=istio.
  const mode = portMtlsMode(workloadMtls(ctx.push, ctx.view), port);
  const mtls = mode === 'STRICT' || (mode === 'PERMISSIVE' && ctx.view.selectedBy({ 'security.istio.io/tlsMode': 'istio' }));
  const rbac = grpcRbacHttpFilters(authorizationPoliciesFor(ctx.push, ctx.view, ctx.note), { trustDomain: ctx.push.mesh.trustDomain }, ctx.note);
  return {
    name,
    // gRPC's XdsServer serves only when this equals the address it bound, exactly.
    address: { socket_address: { address: host, port_value: port } },
    traffic_direction: 'INBOUND',
    filter_chains: [
      {
        name: mtls ? 'inbound-mtls' : 'inbound-plaintext',
        ...(mtls ? { transport_socket: grpcDownstreamMtlsSocket() } : {}),
        filters: [
          {
            name: 'inbound-hcm',
            typed_config: {
              '@type': HCM,
              // The mTLS chain's stat_prefix differs on purpose. grpc-js-xds (1.14 server-listener.ts,
              // filterChainsEquivalent) skips a Listener update it deems equivalent, comparing each chain's HCM bytes
              // and then transport_socket with an inverted null check: an update that only removes TLS (STRICT →
              // PERMISSIVE) is ignored, so the server stays TLS, and one that only adds it (→ STRICT) throws an
              // uncaught TypeError and the server stays plaintext (test/e2e/grpc-mtls.test.ts). Different HCM bytes
              // whenever the TLS mode differs make grpc-js apply the change; gRPC ignores stat_prefix otherwise.
              stat_prefix: mtls ? `inbound_mtls_${port}` : `inbound_${port}`,
              route_config: {
                name: 'inbound',
                virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [{ match: { prefix: '/' }, non_forwarding_action: {} }] }],
              },
              http_filters: [...rbac, ROUTER],
            },
          },
        ],
      },
    ],
  };
}

export const grpcListeners: ResourceGenerator = {
  typeUrl: TypeUrl.Listener,
  names(ctx) {
    return ctx.push.visibleServices(ctx.view).flatMap((s) => s.ports.map((p) => joinHostPort(s.hostname, p.port)));
  },
  build(ctx, name) {
    if (name.startsWith(GRPC_INBOUND_LISTENER_PREFIX)) return serverListener(ctx, name);
    const target = resolveService(ctx, name);
    if (!target) return undefined;
    const { service, port } = target;
    const address = service.addresses[0] ?? '0.0.0.0';
    return clientListener(name, address, port.port, clusterName('outbound', port.port, '', service.hostname));
  },
};
