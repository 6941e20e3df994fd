/**
 * Does a patch's `match` select this generated object? Mirrors istiod's listenerMatch / filterChainMatch /
 * networkFilterMatch / httpFilterMatch (listener_patch.go), routeConfigurationMatch / virtualHostMatch / routeMatch
 * (rc_patch.go) and clusterMatch (cluster_patch.go), on builder JSON.
 */
import type { PatchContext } from '../../config/kinds/envoy-filter.ts';
import { parseClusterName, VIRTUAL_INBOUND_LISTENER, VIRTUAL_OUTBOUND_LISTENER } from '../../model/names.ts';
import type { CompiledPatch } from './select.ts';
import type { Json } from './value.ts';

export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';

/**
 * Filter names from before Envoy's v3 renames, which EnvoyFilters still use (istio pkg/config/xds/filter_types.go);
 * istiod generates the canonical names and matches either spelling.
 */
export const DEPRECATED_FILTER_NAMES: Readonly<Record<string, string>> = {
  'envoy.filters.http.buffer': 'envoy.buffer',
  'envoy.filters.http.cors': 'envoy.cors',
  'envoy.filters.http.csrf': 'envoy.csrf',
  'envoy.filters.http.dynamo': 'envoy.http_dynamo_filter',
  'envoy.filters.http.ext_authz': 'envoy.ext_authz',
  'envoy.filters.http.fault': 'envoy.fault',
  'envoy.filters.http.grpc_http1_bridge': 'envoy.grpc_http1_bridge',
  'envoy.filters.http.grpc_json_transcoder': 'envoy.grpc_json_transcoder',
  'envoy.filters.http.grpc_web': 'envoy.grpc_web',
  'envoy.filters.http.gzip': 'envoy.gzip',
  'envoy.filters.http.health_check': 'envoy.health_check',
  'envoy.filters.http.ip_tagging': 'envoy.ip_tagging',
  'envoy.filters.http.lua': 'envoy.lua',
  'envoy.filters.http.ratelimit': 'envoy.rate_limit',
  'envoy.filters.http.router': 'envoy.router',
  'envoy.filters.http.squash': 'envoy.squash',
  'envoy.filters.listener.http_inspector': 'envoy.listener.http_inspector',
  'envoy.filters.listener.original_dst': 'envoy.listener.original_dst',
  'envoy.filters.listener.original_src': 'envoy.listener.original_src',
  'envoy.filters.listener.proxy_protocol': 'envoy.listener.proxy_protocol',
  'envoy.filters.listener.tls_inspector': 'envoy.listener.tls_inspector',
  'envoy.filters.network.client_ssl_auth': 'envoy.client_ssl_auth',
  'envoy.filters.network.ext_authz': 'envoy.ext_authz',
  'envoy.filters.network.http_connection_manager': 'envoy.http_connection_manager',
  'envoy.filters.network.mongo_proxy': 'envoy.mongo_proxy',
  'envoy.filters.network.ratelimit': 'envoy.ratelimit',
  'envoy.filters.network.redis_proxy': 'envoy.redis_proxy',
  'envoy.filters.network.tcp_proxy': 'envoy.tcp_proxy',
};

/**
 * A match name against an actual filter name, either spelling on either side (istiod's nameMatches covers a deprecated
 * match name against a canonical filter; the reverse covers filters users inserted under old names). `envoy.ext_authz`
 * is the old name of both ext_authz filters, so it is never turned into a canonical name, only compared against one.
 */
export function nameMatches(matchName: string, filterName: unknown): boolean {
  if (typeof filterName !== 'string') return false;
  return matchName === filterName || DEPRECATED_FILTER_NAMES[filterName] === matchName || DEPRECATED_FILTER_NAMES[matchName] === filterName;
}

export const isHcm = (filter: Json) => nameMatches(HCM_FILTER, filter.name);

const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);

/** A UInt32Value in builder JSON (`{value: n}`), tolerating a bare number. */
function u32(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  const value = obj(v)?.value;
  return typeof value === 'number' ? value : undefined;
}

export function contextMatches(ctx: PatchContext, p: CompiledPatch): boolean {
  return p.context === 'ANY' || p.context === ctx;
}

/** An ADD is added once per matching context; a context-ANY ADD only to SIDECAR_OUTBOUND and GATEWAY (istiod). */
export function addsFor(p: CompiledPatch, adds: readonly PatchContext[]): boolean {
  return adds.some((ctx) => (p.context !== 'ANY' || ctx === 'SIDECAR_OUTBOUND' || ctx === 'GATEWAY') && contextMatches(ctx, p));
}

const isVirtual = (l: Json) => l.name === VIRTUAL_INBOUND_LISTENER || l.name === VIRTUAL_OUTBOUND_LISTENER;

export function listenerMatches(l: Json, p: CompiledPatch): boolean {
  const m = p.match.listener;
  if (!m) return true;
  if (m.name && m.name !== l.name) return false;
  // The virtual listeners carry every port in their filter chains; portNumber is checked there (filterChainMatches).
  if (p.applyTo !== 'LISTENER' && isVirtual(l)) return true;
  if (m.portNumber) {
    const port = obj(obj(l.address)?.socket_address)?.port_value;
    if (port !== m.portNumber) return false;
  }
  return true;
}

export function filterChainMatches(l: Json, fc: Json, p: CompiledPatch): boolean {
  const m = p.match.listener;
  if (!m) return true;
  const fcm = obj(fc.filter_chain_match);
  if (isVirtual(l) && m.portNumber && u32(fcm?.destination_port) !== m.portNumber) return false;
  const c = m.filterChain;
  if (!c) return true;
  if (c.name && c.name !== fc.name) return false;
  if (c.sni) {
    const names = fcm?.server_names;
    if (!Array.isArray(names) || !names.includes(c.sni)) return false;
  }
  if (c.transportProtocol && fcm?.transport_protocol !== c.transportProtocol) return false;
  if (c.applicationProtocols) {
    const have = fcm?.application_protocols;
    if (!Array.isArray(have)) return false;
    for (const proto of c.applicationProtocols.split(',')) if (!have.includes(proto)) return false;
  }
  if (c.destinationPort && u32(fcm?.destination_port) !== c.destinationPort) return false;
  return true;
}

/** The network filter name a patch names, if any. */
export const networkFilterName = (p: CompiledPatch) => p.match.listener?.filterChain?.filter?.name;

export function hasNetworkFilterMatch(p: CompiledPatch): boolean {
  return p.match.listener?.filterChain?.filter !== undefined;
}

export function networkFilterMatches(filter: Json, p: CompiledPatch): boolean {
  if (!hasNetworkFilterMatch(p)) return true;
  const name = networkFilterName(p);
  return name !== undefined && nameMatches(name, filter.name);
}

export const httpFilterName = (p: CompiledPatch) => p.match.listener?.filterChain?.filter?.subFilter?.name;

export function httpFilterMatches(filter: Json, p: CompiledPatch): boolean {
  const name = httpFilterName(p);
  return name === undefined || nameMatches(name, filter.name);
}

export function listenerFilterMatches(filter: Json, p: CompiledPatch): boolean {
  const name = p.match.listener?.listenerFilter;
  return !name || nameMatches(name, filter.name);
}

/** The per-route-configuration facts a route match needs beyond the object itself. */
export interface RouteMatchContext {
  context: PatchContext;
  /** Gateway only: gateway server port → the service ports that map to it (istiod MergedGateway.PortMap). */
  portMap?: ReadonlyMap<number, readonly number[]>;
}

/** istiod getListenerPortFromName: `inbound|8080||` → 8080, `9080` → 9080, anything else (e.g. `host:port`) → 0. */
function routePortFromName(name: string): number {
  if (name.startsWith('inbound')) return parseClusterName(name)?.port ?? 0;
  return /^\d+$/.test(name) ? Number(name) : 0;
}

/** istiod ParseGatewayRDSRouteName: `http.8080` → (8080), `https.443.portName.gw.ns` → (443, portName, ns/gw). */
export function parseGatewayRouteName(name: string): { port: number; portName: string; gateway: string } {
  const parts = name.split('.');
  if (name.startsWith('http.') && parts.length >= 2) return { port: Number(parts[1]) || 0, portName: '', gateway: '' };
  if (name.startsWith('https.') && parts.length >= 5) {
    return { port: Number(parts[1]) || 0, portName: parts[2] as string, gateway: `${parts[4]}/${parts[3]}` };
  }
  return { port: 0, portName: '', gateway: '' };
}

export function routeConfigurationMatches(rc: Json, p: CompiledPatch, ctx: RouteMatchContext): boolean {
  const m = p.match.routeConfiguration;
  if (!m) return true;
  const name = typeof rc.name === 'string' ? rc.name : '';
  if (m.name && m.name !== name) return false;
  if (ctx.context !== 'GATEWAY') return !m.portNumber || m.portNumber === routePortFromName(name);
  const g = parseGatewayRouteName(name);
  if (m.portName && m.portName !== g.portName) return false;
  if (m.gateway && m.gateway !== g.gateway) return false;
  if (m.portNumber) {
    const servicePorts = ctx.portMap?.get(g.port);
    if (servicePorts ? !servicePorts.includes(m.portNumber) : g.port !== m.portNumber) return false;
  }
  return true;
}

export function virtualHostMatches(vh: Json, p: CompiledPatch): boolean {
  const m = p.match.routeConfiguration?.vhost;
  if (!m) return true;
  if (m.name && m.name !== vh.name) return false;
  if (m.domainName && !(Array.isArray(vh.domains) && vh.domains.includes(m.domainName))) return false;
  return true;
}

export const hasRouteMatch = (p: CompiledPatch) => p.match.routeConfiguration?.vhost?.route !== undefined;

export function routeMatches(route: Json, p: CompiledPatch): boolean {
  const m = p.match.routeConfiguration?.vhost?.route;
  if (!m) return true;
  if (m.name && m.name !== route.name) return false;
  switch (m.action ?? 'ANY') {
    case 'ANY':
      return true;
    case 'ROUTE':
      return route.route !== undefined || !hasKnownAction(route);
    case 'REDIRECT':
      return route.redirect !== undefined || !hasKnownAction(route);
    case 'DIRECT_RESPONSE':
      return route.direct_response !== undefined || !hasKnownAction(route);
  }
}

/** istiod's type switch falls through to "match" for actions it does not list (filter_action, non_forwarding_action). */
const hasKnownAction = (r: Json) => r.route !== undefined || r.redirect !== undefined || r.direct_response !== undefined;

/** Cluster match (istiod clusterMatch): name wins; otherwise subset, service host and port from the cluster name. */
export function clusterMatches(c: Json, p: CompiledPatch, hosts: readonly string[] = []): boolean {
  const m = p.match.cluster;
  if (!m) return true;
  const name = typeof c.name === 'string' ? c.name : '';
  if (m.name) return m.name === name;
  const key = parseClusterName(name);
  const subset = key?.subset ?? '';
  const port = key?.port ?? 0;
  // An inbound cluster name has no host; istiod matches the service names the generator passes in.
  const matchHosts = key?.direction === 'inbound' && hosts.length > 0 ? hosts : [key?.host ?? ''];
  if (m.subset && m.subset !== subset) return false;
  if (m.service && !matchHosts.includes(m.service)) return false;
  if (m.portNumber && m.portNumber !== port) return false;
  return true;
}
