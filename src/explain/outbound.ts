/**
 * The source proxy's decisions for one request, from the config it is sent: listener and filter chain, route config
 * and virtual host, the route (and the VirtualService rule that wrote it), its per-request policy, and for each
 * destination cluster the cluster's settings, endpoints and the transport socket the chosen endpoint gets.
 */
import type { VirtualServiceSpec } from '../config/kinds/virtual-service.ts';
import { clusterEndpoints, clusterInfo, upstreamTls, usable, type ClusterInfo, type EndpointInfo, type UpstreamTls } from './describe-cluster.ts';
import { describeMatch, istioMetadata, parseConfigPath, routePolicy, virtualServiceRule, type ConfigRef, type RoutePolicy } from './describe-route.ts';
import { routeTargets, walk, type Call, type DecodedConfig, type Json } from './simulate.ts';

export interface ExplainRequest {
  /** The host as the application names it (Host / :authority without the port). */
  host: string;
  port: number;
  /** The address the application dials (a Service VIP), when the name resolves to one. */
  address?: string;
  method: string;
  /** Path with query. */
  path: string;
  headers: Record<string, string>;
  /** The application itself speaks TLS (SNI = host): the proxy sees TLS and routes by SNI, not by HTTP. */
  tls: boolean;
}

export interface OutboundListener {
  name: string;
  /** HTTP (HCM), TCP (tcp_proxy), or gRPC (a proxyless client's api_listener). */
  protocol: 'HTTP' | 'TCP' | 'gRPC';
  chain?: string;
  /** How the connection got there. */
  via: string;
}

export interface RouteDecision {
  name?: string;
  virtualService?: ConfigRef & { rule?: number; ruleName?: string };
  /** `default` (a service without VirtualService), `allow_any`, `block_all`, … when no VirtualService wrote it. */
  builtIn?: string;
  match: string;
  /** What the route does: route to clusters, redirect, or answer directly. */
  action: 'route' | 'redirect' | 'direct_response';
  status?: number;
  redirect?: Record<string, unknown>;
  policy?: RoutePolicy;
}

export interface DestinationDecision {
  cluster: string;
  weight: number;
  percent: number;
  info: ClusterInfo;
  endpoints: EndpointInfo[];
  /** The endpoint that stands for the cluster in the inbound explanation (the first healthy one). */
  endpoint?: EndpointInfo;
  tls: UpstreamTls;
}

export interface OutboundDecision {
  listener?: OutboundListener;
  routeConfig?: { name: string; virtualHost: string; domain?: string };
  route?: RouteDecision;
  destinations: DestinationDecision[];
  /** The request ends at the source proxy (no listener, no route, direct response, redirect, TLS required). */
  stopped?: { status: number | 'reset'; reason: string };
}

export interface OutboundOptions {
  /** A proxyless gRPC client: its listener is the `host:port` api_listener it asked for. */
  proxyless?: boolean;
  listenerName?: string;
  /** VirtualService specs by `ns/name`, to name the `http[i]` rule a route came from. */
  virtualServices?: (namespace: string, name: string) => VirtualServiceSpec | undefined;
}

const BUILT_IN: Record<string, string> = {
  default: 'no VirtualService: the default route of the service',
  allow_any: 'no service with this host and port: passed through to the original destination (outboundTrafficPolicy ALLOW_ANY)',
  block_all: 'no service with this host and port: blocked (outboundTrafficPolicy REGISTRY_ONLY)',
};

/** Envoy's RedirectAction.RedirectResponseCode. */
const REDIRECT_CODES: Record<string, number> = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 };

function listenerVia(l: Json, req: ExplainRequest, proxyless: boolean): string {
  if (proxyless) return `the client's xds:/// target ${l.name}`;
  const dst = req.address ? `${req.address}:${req.port}` : `port ${req.port} (the address ${req.host} resolves to is not known offline)`;
  if (l.name === 'virtualOutbound') return `no listener for ${dst}: virtualOutbound's own chains`;
  return `virtualOutbound hands the connection over by its original destination ${dst}`;
}

function destination(cfg: DecodedConfig, req: ExplainRequest, name: string, weight: number, total: number, proxyless: boolean): DestinationDecision {
  const info = clusterInfo(cfg, name, proxyless);
  // An original-destination cluster (PassthroughCluster) connects to the address the application dialled.
  const endpoints = info.discovery === 'ORIGINAL_DST' ? [{ address: req.address ?? req.host, port: req.port, health: 'UNKNOWN' }] : clusterEndpoints(cfg, name);
  const endpoint = endpoints.find(usable);
  return {
    cluster: name,
    weight,
    percent: total > 0 ? Number(((weight / total) * 100).toFixed(2)) : 100,
    info,
    endpoints,
    ...(endpoint ? { endpoint } : {}),
    tls: upstreamTls(cfg, name, endpoint),
  };
}

function destinations(cfg: DecodedConfig, req: ExplainRequest, action: Json | undefined, proxyless = false): DestinationDecision[] {
  const targets = routeTargets(action);
  const total = action?.weighted_clusters?.total_weight !== undefined ? Number(action.weighted_clusters.total_weight?.value ?? action.weighted_clusters.total_weight) : targets.reduce((s, t) => s + t.weight, 0);
  return targets.map((t) => destination(cfg, req, t.name, t.weight, total, proxyless));
}

export function explainOutbound(cfg: DecodedConfig, req: ExplainRequest, o: OutboundOptions = {}): OutboundDecision {
  const proxyless = o.proxyless === true;
  const call: Call = {
    port: req.port,
    direction: 'outbound',
    ...(req.address ? { address: req.address } : {}),
    ...(o.listenerName ? { listenerName: o.listenerName } : {}),
    protocol: req.tls ? 'tcp' : 'http',
    tls: req.tls,
    ...(req.tls ? { sni: req.host } : {}),
    host: proxyless ? `${req.host}:${req.port}` : req.host,
    path: req.path,
    method: req.method,
    headers: req.headers,
  };
  const w = walk(cfg, call);
  const out: OutboundDecision = { destinations: [] };
  if (!w.listener) return { ...out, stopped: { status: 'reset', reason: proxyless ? `no listener ${o.listenerName}: the gRPC channel fails (UNAVAILABLE)` : `no listener for port ${req.port}` } };
  out.listener = {
    name: w.listener.name,
    protocol: w.listener.api_listener ? 'gRPC' : w.tcpProxy ? 'TCP' : 'HTTP',
    ...(w.chain ? { chain: w.chain.name ?? (w.chainIndex === 'default' ? 'default filter chain' : `filter chain ${w.chainIndex}`) } : {}),
    via: listenerVia(w.listener, req, proxyless),
  };
  if (w.tcpProxy) {
    out.destinations = destinations(cfg, req, w.tcpProxy);
    return out;
  }
  if (w.routeConfig) out.routeConfig = { name: w.routeConfig.name, virtualHost: w.virtualHost?.name ?? '', ...(w.domain ? { domain: w.domain } : {}) };
  if (w.requireTls) return { ...out, stopped: { status: 301, reason: 'the virtual host requires TLS: redirected to https' } };
  if (w.error) return { ...out, stopped: { status: w.error.includes('404') ? 404 : 'reset', reason: w.error } };
  const route = w.route!;
  const ref = parseConfigPath(istioMetadata(route)?.config);
  const decision: RouteDecision = { match: describeMatch(route.match), action: route.direct_response ? 'direct_response' : route.redirect ? 'redirect' : 'route', ...(route.name ? { name: route.name } : {}) };
  if (ref) {
    const spec = o.virtualServices?.(ref.namespace, ref.name);
    const rule = spec ? virtualServiceRule(spec, w.virtualHost?.routes ?? [], route) : undefined;
    decision.virtualService = { ...ref, ...(rule ? { rule: rule.index, ...(rule.name ? { ruleName: rule.name } : {}) } : {}) };
  } else {
    decision.builtIn = BUILT_IN[route.name ?? ''] ?? `route ${route.name ?? '(unnamed)'} (no VirtualService metadata)`;
  }
  out.route = decision;
  if (route.direct_response) {
    decision.status = route.direct_response.status;
    return { ...out, stopped: { status: route.direct_response.status, reason: `direct response ${route.direct_response.status}` } };
  }
  if (route.redirect) {
    decision.redirect = route.redirect;
    return { ...out, stopped: { status: REDIRECT_CODES[route.redirect.response_code ?? 'MOVED_PERMANENTLY'] ?? 301, reason: `redirect ${JSON.stringify(route.redirect)}` } };
  }
  decision.policy = routePolicy(route, proxyless);
  out.destinations = destinations(cfg, req, route.route, proxyless);
  return out;
}
