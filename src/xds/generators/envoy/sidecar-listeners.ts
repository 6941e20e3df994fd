/**
 * LDS for sidecars (istio-xds.md §2): per-port outbound listeners (not bound: iptables sends everything to
 * `virtualOutbound`, which hands each connection to the listener for its original destination), `virtualOutbound`
 * with its catch-all, and `virtualInbound`. The Prometheus (15090) and health (15021) listeners live in the bootstrap.
 */
import { BLACKHOLE_CLUSTER, VIRTUAL_INBOUND_LISTENER, VIRTUAL_OUTBOUND_LISTENER, WILDCARD_ADDRESS } from '../../../model/names.ts';
import type { Json } from '../../builders/common.ts';
import { ALPN, httpConnectionManager, LISTENER_FILTERS, tcpProxy } from '../../builders/http-connection-manager.ts';
import type { GenContext } from '../generator.ts';
import { virtualInboundListener } from './inbound.ts';
import { autoRouteName, outboundPlan, outboundTrafficCluster, type OutboundListenerPlan } from './outbound-plan.ts';
import { tcpChainsFor } from './tcp-routes.ts';

export const OUTBOUND_LISTEN_PORT = 15001;

/** Where a connection no chain matches goes: the ALLOW_ANY / REGISTRY_ONLY cluster (PassthroughFilterChain). */
function passthroughChain(ctx: GenContext): Json {
  const { cluster } = outboundTrafficCluster(ctx);
  return { name: 'PassthroughFilterChain', filters: [tcpProxy({ statPrefix: cluster, cluster })] };
}

function httpChain(ctx: GenContext, plan: OutboundListenerPlan, rds: string): Json {
  return {
    // ALPN only: Envoy does not backtrack between match levels, so a transport_protocol here would make a plain TCP
    // connection pick this branch and then fail on ALPN instead of reaching the TCP chain.
    filter_chain_match: { application_protocols: ALPN.plaintextHttp },
    filters: [
      httpConnectionManager({
        direction: 'outbound',
        statPrefix: `outbound_${plan.name};`,
        rds,
        grpcWeb: plan.services.some((s) => s.port.protocol === 'GRPC-WEB'),
        pathNormalization: ctx.push.mesh.pathNormalization,
      }),
    ],
  };
}

function outboundListener(ctx: GenContext, plan: OutboundListenerPlan): Json {
  const listener: Json = {
    name: plan.name,
    address: { socket_address: { address: plan.bind, port_value: plan.port } },
    traffic_direction: 'OUTBOUND',
    bind_to_port: { value: false },
    continue_on_listener_filters_timeout: true,
  };
  const chains: Json[] = [];
  let tlsInspector = false;
  let httpInspector = false;
  if (plan.kind === 'http') {
    chains.push(httpChain(ctx, plan, String(plan.port)));
    httpInspector = true;
    listener.default_filter_chain = passthroughChain(ctx);
  } else {
    const { service, port } = plan.services[0]!;
    const tcp = tcpChainsFor(ctx, service, port.port);
    if (tcp.tls.length > 0) tlsInspector = true;
    chains.push(...tcp.tls);
    if (plan.kind === 'auto') {
      chains.push(httpChain(ctx, plan, autoRouteName(service, port.port)));
      httpInspector = true;
    }
    // The match-all chain is the listener's default, as istiod places it.
    listener.default_filter_chain = { filters: tcp.defaultFilters };
  }
  const filters = [];
  if (tlsInspector) filters.push(LISTENER_FILTERS.tlsInspector);
  if (httpInspector) filters.push(LISTENER_FILTERS.httpInspector);
  if (filters.length > 0) listener.listener_filters = filters;
  listener.filter_chains = chains;
  return listener;
}

function virtualOutboundListener(ctx: GenContext): Json {
  const { cluster } = outboundTrafficCluster(ctx);
  return {
    name: VIRTUAL_OUTBOUND_LISTENER,
    address: { socket_address: { address: WILDCARD_ADDRESS, port_value: OUTBOUND_LISTEN_PORT } },
    use_original_dst: { value: true },
    traffic_direction: 'OUTBOUND',
    filter_chains: [
      // A connection addressed to 15001 itself would loop forever.
      { name: 'virtualOutbound-blackhole', filter_chain_match: { destination_port: { value: OUTBOUND_LISTEN_PORT } }, filters: [tcpProxy({ statPrefix: BLACKHOLE_CLUSTER, cluster: BLACKHOLE_CLUSTER })] },
      { name: 'virtualOutbound-catchall-tcp', filters: [tcpProxy({ statPrefix: cluster, cluster })] },
    ],
  };
}

export function sidecarListenerNames(ctx: GenContext): string[] {
  return [...outboundPlan(ctx).keys(), VIRTUAL_OUTBOUND_LISTENER, VIRTUAL_INBOUND_LISTENER];
}

export function sidecarListener(ctx: GenContext, name: string): Json | undefined {
  if (name === VIRTUAL_OUTBOUND_LISTENER) return virtualOutboundListener(ctx);
  if (name === VIRTUAL_INBOUND_LISTENER) return virtualInboundListener(ctx);
  const plan = outboundPlan(ctx).get(name);
  return plan ? outboundListener(ctx, plan) : undefined;
}
