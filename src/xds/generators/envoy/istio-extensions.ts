/**
 * Istio's proxy-extension filters on an Envoy listener (istio-filters.ts), where istiod puts them: peer metadata
 * exchange, grpc_stats, istio.alpn and istio.stats in every HTTP connection manager by direction; metadata exchange in
 * front of inbound chains; istio.stats before every tcp_proxy. Users run Istio's proxy image, so an Envoy that only
 * ever talked to istiod keeps its standard metrics and peer metadata talking to mizzen.
 */
import type { Json } from '../../builders/common.ts';
import { HCM_FILTER, TCP_PROXY_FILTER } from '../../builders/http-connection-manager.ts';
import { istioHttpFiltersFor, istioNetworkFiltersFor, withIstioHttpFilters, withIstioNetworkFilters, type IstioFilterDirection } from '../../builders/istio-filters.ts';
import { statsConfigs } from '../../builders/telemetry.ts';
import type { GenContext } from '../generator.ts';

export function listenerDirection(ctx: GenContext, listener: Json): IstioFilterDirection {
  if (ctx.view.type() === 'router') return 'gateway';
  return listener.traffic_direction === 'INBOUND' ? 'inbound' : 'outbound';
}

/**
 * Whether the proxy runs Istio's proxy build (the default: Envoy that ever talked to istiod does). mizzen's own proxy
 * image runs plain Envoy and says so with node metadata PROXY_EXTENSIONS=envoy; Envoy would reject the Istio filters.
 */
export function hasIstioExtensions(ctx: GenContext): boolean {
  return ctx.view.metadata('PROXY_EXTENSIONS') !== 'envoy';
}

export function withIstioExtensions(ctx: GenContext, listener: Json): Json {
  if (!hasIstioExtensions(ctx)) return listener;
  const direction = listenerDirection(ctx, listener);
  const stats = ctx.memo(`istio-stats:${direction}`, (c) => statsConfigs(c.push, c.view, direction, c.note));
  const http = istioHttpFiltersFor(direction, { stats });
  const httpChain = istioNetworkFiltersFor(direction, 'http', { stats });
  const tcpChain = istioNetworkFiltersFor(direction, 'tcp', { stats });
  const chain = (c: Json): Json => {
    const filters = (c.filters as Json[] | undefined) ?? [];
    const last = filters.at(-1);
    if (last?.name === HCM_FILTER) {
      const tc = last.typed_config as Json;
      const hcm = { ...last, typed_config: { ...tc, http_filters: withIstioHttpFilters(tc.http_filters as Json[], http) } };
      return { ...c, filters: withIstioNetworkFilters([...filters.slice(0, -1), hcm], httpChain) };
    }
    if (last?.name === TCP_PROXY_FILTER) return { ...c, filters: withIstioNetworkFilters(filters, tcpChain) };
    return c;
  };
  const out: Json = { ...listener };
  if (Array.isArray(listener.filter_chains)) out.filter_chains = (listener.filter_chains as Json[]).map(chain);
  if (listener.default_filter_chain) out.default_filter_chain = chain(listener.default_filter_chain as Json);
  return out;
}
