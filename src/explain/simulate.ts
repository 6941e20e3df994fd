/**
 * What Envoy (or a proxyless gRPC client) walks for one call, on decoded config — the same resources a proxy is sent
 * (app/offline-translate.ts): listener (virtualOutbound's original-destination hand-off, virtualInbound, a gateway
 * port, or a gRPC client's api_listener), filter chain (Envoy's match order), HCM → route config → virtual host →
 * route → cluster, or tcp_proxy → cluster. `walk` returns the objects it chose (for `mizzen explain`), `simulate` their
 * names (for istiod-style simulation tests). Pure: no I/O.
 */
import { re2FullMatch } from './rbac-eval.ts';

export type Json = Record<string, any>;

/** Decoded xDS resources of one proxy (proto3 JSON, as Envoy's config_dump shows them). */
export interface DecodedConfig {
  listeners: Json[];
  routes: Json[];
  clusters: Json[];
  endpoints: Json[];
}

export interface Call {
  /** Destination address the application dialled (a VIP, a pod IP, or an external IP). */
  address?: string;
  port: number;
  /** `outbound` (app → sidecar 15001), `inbound` (peer → sidecar 15006), `gateway` (client → gateway listener). */
  direction?: 'outbound' | 'inbound' | 'gateway';
  /** Use this listener by name (a proxyless gRPC client's `host:port`, a gRPC server's inbound listener). */
  listenerName?: string;
  protocol?: 'http' | 'tcp';
  tls?: boolean;
  sni?: string;
  alpn?: string[];
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
}

export interface Result {
  listener?: string;
  filterChain?: string;
  /** Index of the chosen chain, or 'default'. */
  chainIndex?: number | 'default';
  routeConfig?: string;
  virtualHost?: string;
  route?: string;
  cluster?: string;
  weightedClusters?: string[];
  directResponse?: number;
  redirect?: Record<string, unknown>;
  requireTls?: boolean;
  transportSocket?: boolean;
  error?: string;
}

/** The objects a call went through. */
export interface Walk {
  listener?: Json;
  chain?: Json;
  chainIndex?: number | 'default';
  /** The terminal network filter of the chain (HCM or tcp_proxy), or the api_listener's HCM. */
  filter?: Json;
  hcm?: Json;
  tcpProxy?: Json;
  routeConfig?: Json;
  virtualHost?: Json;
  /** The domain of the virtual host that matched. */
  domain?: string;
  route?: Json;
  requireTls?: boolean;
  error?: string;
}

export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';

function listenerFor(cfg: DecodedConfig, call: Call): Json | undefined {
  if (call.listenerName !== undefined) return cfg.listeners.find((l) => l.name === call.listenerName);
  const address = call.address ?? '0.0.0.0';
  if (call.direction === 'inbound') return cfg.listeners.find((l) => l.name === 'virtualInbound');
  if (call.direction === 'gateway') return cfg.listeners.find((l) => l.address?.socket_address?.port_value === call.port);
  const exact = cfg.listeners.find((l) => l.name === `${address}_${call.port}`);
  return exact ?? cfg.listeners.find((l) => l.name === `0.0.0.0_${call.port}`) ?? cfg.listeners.find((l) => l.name === 'virtualOutbound');
}

function detected(listener: Json, call: Call): { transport: string; alpn: string[] } {
  const filters = (listener.listener_filters ?? []).map((f: Json) => f.name as string);
  const tlsInspector = filters.includes('envoy.filters.listener.tls_inspector');
  const httpInspector = filters.includes('envoy.filters.listener.http_inspector');
  if (call.tls) return { transport: tlsInspector ? 'tls' : 'raw_buffer', alpn: tlsInspector ? (call.alpn ?? []) : [] };
  const http = (call.protocol ?? 'http') === 'http';
  return { transport: 'raw_buffer', alpn: httpInspector && http ? ['http/1.1'] : [] };
}

function serverNameMatches(pattern: string, sni: string): boolean {
  return pattern === sni || (pattern.startsWith('*.') && sni.endsWith(pattern.slice(1)));
}

/** Envoy's filter chain selection: each criterion narrows to the most specific candidates, in Envoy's order. */
function chooseChain(listener: Json, call: Call): { chain?: Json; index?: number | 'default' } {
  const { transport, alpn } = detected(listener, call);
  let cands: Array<{ c: Json; i: number }> = (listener.filter_chains ?? []).map((c: Json, i: number) => ({ c, i }));
  const m = (x: { c: Json }) => x.c.filter_chain_match ?? {};
  const narrow = (score: (x: { c: Json; i: number }) => number) => {
    const scored = cands.map((x) => ({ x, s: score(x) })).filter((y) => y.s >= 0);
    const best = Math.max(...scored.map((y) => y.s));
    cands = scored.filter((y) => y.s === best).map((y) => y.x);
  };
  narrow((x) => (m(x).destination_port === undefined ? 0 : m(x).destination_port === call.port ? 1 : -1));
  narrow((x) => {
    const names: string[] = m(x).server_names ?? [];
    if (names.length === 0) return 0;
    if (!call.sni) return -1;
    if (names.includes(call.sni)) return 2;
    return names.some((n) => serverNameMatches(n, call.sni!)) ? 1 : -1;
  });
  narrow((x) => (m(x).transport_protocol === undefined ? 0 : m(x).transport_protocol === transport ? 1 : -1));
  narrow((x) => {
    const ap: string[] = m(x).application_protocols ?? [];
    if (ap.length === 0) return 0;
    return ap.some((p) => alpn.includes(p)) ? 1 : -1;
  });
  if (cands.length > 1) return { index: -1 };
  if (cands.length === 1) return { chain: cands[0]!.c, index: cands[0]!.i };
  return listener.default_filter_chain ? { chain: listener.default_filter_chain, index: 'default' } : {};
}

function domainScore(domain: string, host: string): number {
  if (domain === host) return 4_000;
  if (domain === '*') return 1;
  if (domain.startsWith('*') && host.endsWith(domain.slice(1))) return 2_000 + domain.length;
  if (domain.endsWith('*') && host.startsWith(domain.slice(0, -1))) return 1_000 + domain.length;
  return -1;
}

function stringMatch(sm: Json, value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = sm.ignore_case ? value.toLowerCase() : value;
  const cmp = (s: string) => (sm.ignore_case ? s.toLowerCase() : s);
  if (sm.exact !== undefined) return v === cmp(sm.exact);
  if (sm.prefix !== undefined) return v.startsWith(cmp(sm.prefix));
  if (sm.suffix !== undefined) return v.endsWith(cmp(sm.suffix));
  if (sm.contains !== undefined) return v.includes(cmp(sm.contains));
  if (sm.safe_regex) return re2FullMatch(sm.safe_regex.regex, value);
  return false;
}

/** Envoy RouteMatch: path (prefix, exact, RE2 regex, path-separated prefix), headers, query parameters. */
export function routeMatches(match: Json, call: Call): boolean {
  const fullPath = call.path ?? '/';
  const path = fullPath.split('?')[0]!;
  const ci = match.case_sensitive === false || match.case_sensitive?.value === false;
  const p = ci ? path.toLowerCase() : path;
  const lc = (s: string) => (ci ? s.toLowerCase() : s);
  if (match.prefix !== undefined && !p.startsWith(lc(match.prefix))) return false;
  if (match.path !== undefined && p !== lc(match.path)) return false;
  if (match.path_separated_prefix !== undefined) {
    const pre = lc(match.path_separated_prefix);
    if (!(p === pre || p.startsWith(`${pre}/`))) return false;
  }
  if (match.safe_regex && !re2FullMatch(ci ? `(?i)${match.safe_regex.regex}` : match.safe_regex.regex, path)) return false;
  const headers: Record<string, string> = { ':method': call.method ?? 'GET', ':authority': call.host ?? '', ':scheme': call.tls ? 'https' : 'http', ':path': fullPath };
  for (const [k, v] of Object.entries(call.headers ?? {})) headers[k.toLowerCase()] = v;
  for (const h of match.headers ?? []) {
    const value = headers[h.name];
    let ok: boolean;
    if (h.present_match !== undefined) ok = (value !== undefined) === (h.present_match !== false);
    else if (h.string_match) ok = stringMatch(h.string_match, value ?? (h.treat_missing_header_as_empty ? '' : undefined));
    else ok = value !== undefined;
    if (h.invert_match) ok = !ok;
    if (!ok) return false;
  }
  const query = new URLSearchParams(fullPath.includes('?') ? fullPath.slice(fullPath.indexOf('?') + 1) : '');
  for (const q of match.query_parameters ?? []) {
    const value = query.get(q.name) ?? undefined;
    if (q.present_match ? value === undefined : !stringMatch(q.string_match, value)) return false;
  }
  return true;
}

function routeHttp(cfg: DecodedConfig, hcm: Json, call: Call, out: Walk): Walk {
  out.hcm = hcm;
  const rc = hcm.route_config ?? cfg.routes.find((r) => r.name === hcm.rds?.route_config_name);
  if (!rc) return { ...out, error: 'route config not found' };
  out.routeConfig = rc;
  const host = (call.host ?? '').replace(/:\d+$/, '').toLowerCase();
  let best: { vh: Json; s: number; d: string } | undefined;
  for (const vh of rc.virtual_hosts ?? []) {
    for (const d of vh.domains ?? []) {
      // A domain with a port matches the authority as sent (gRPC's `host:port` targets); others the host alone.
      const s = /:\d+$/.test(d) ? domainScore(d.toLowerCase(), (call.host ?? '').toLowerCase()) : domainScore(d.toLowerCase(), host);
      if (s >= 0 && (!best || s > best.s)) best = { vh, s, d };
    }
  }
  if (!best) return { ...out, error: 'no virtual host (404)' };
  out.virtualHost = best.vh;
  out.domain = best.d;
  if (best.vh.require_tls === 'ALL' && !call.tls) return { ...out, requireTls: true };
  const route = (best.vh.routes ?? []).find((r: Json) => routeMatches(r.match ?? {}, call));
  if (!route) return { ...out, error: 'no route (404)' };
  out.route = route;
  return out;
}

/** Walks `call` through the decoded config and returns what it went through. */
export function walk(cfg: DecodedConfig, call: Call): Walk {
  const listener = listenerFor(cfg, call);
  if (!listener) return { error: 'no listener' };
  const out: Walk = { listener };
  const api = listener.api_listener?.api_listener as Json | undefined;
  if (api) return routeHttp(cfg, api, call, { ...out, filter: api });
  const { chain, index } = chooseChain(listener, call);
  if (index === -1) return { ...out, error: 'ambiguous filter chain match' };
  if (!chain) return { ...out, error: 'no filter chain (connection closed)' };
  out.chain = chain;
  out.chainIndex = index;
  const filter = (chain.filters ?? []).at(-1) as Json | undefined;
  out.filter = filter;
  const tc = filter?.typed_config ?? {};
  if (filter?.name === TCP_PROXY_FILTER) return { ...out, tcpProxy: tc };
  // gRPC server listeners name their HCM freely; the type says what it is.
  if (filter?.name === HCM_FILTER || String(tc['@type'] ?? '').endsWith('.HttpConnectionManager')) return routeHttp(cfg, tc, call, out);
  return { ...out, error: `unhandled filter ${filter?.name}` };
}

/** The clusters a route or tcp_proxy sends to, with their weights (a single cluster has weight 1). */
export function routeTargets(action: Json | undefined): Array<{ name: string; weight: number }> {
  if (!action) return [];
  if (action.cluster) return [{ name: action.cluster, weight: 1 }];
  const clusters = (action.weighted_clusters?.clusters ?? []) as Json[];
  return clusters.map((c) => ({ name: c.name, weight: Number(typeof c.weight === 'object' ? c.weight?.value : (c.weight ?? 0)) }));
}

/** Walks `call` and reports the names of what it chose (istiod-style simulation results). */
export function simulate(cfg: DecodedConfig, call: Call): Result {
  const w = walk(cfg, call);
  const out: Result = {};
  if (w.listener) out.listener = w.listener.name;
  if (w.chain) {
    out.chainIndex = w.chainIndex!;
    if (w.chain.name) out.filterChain = w.chain.name;
    out.transportSocket = w.chain.transport_socket !== undefined;
  }
  if (w.tcpProxy) {
    if (w.tcpProxy.cluster) out.cluster = w.tcpProxy.cluster;
    if (w.tcpProxy.weighted_clusters) out.weightedClusters = routeTargets(w.tcpProxy).map((c) => c.name);
  }
  if (w.routeConfig) out.routeConfig = w.routeConfig.name;
  if (w.virtualHost) out.virtualHost = w.virtualHost.name;
  if (w.requireTls) out.requireTls = true;
  if (w.route) {
    out.route = w.route.name;
    if (w.route.direct_response) out.directResponse = w.route.direct_response.status;
    else if (w.route.redirect) out.redirect = w.route.redirect;
    else {
      const action = w.route.route ?? {};
      if (action.cluster) out.cluster = action.cluster;
      if (action.weighted_clusters) out.weightedClusters = routeTargets(action).map((c) => c.name);
    }
  }
  if (w.error) out.error = w.error;
  return out;
}

/** Every cluster a config's listeners and routes name must exist in its CDS (Envoy would 503 otherwise). */
export function danglingClusters(cfg: DecodedConfig): string[] {
  const known = new Set(cfg.clusters.map((c) => c.name as string));
  const named = new Set<string>();
  const visit = (v: unknown, key?: string) => {
    if (Array.isArray(v)) v.forEach((x) => visit(x, key));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) visit(x, k);
    else if (typeof v === 'string' && (key === 'cluster' || key === 'cluster_name')) named.add(v);
  };
  visit(cfg.listeners);
  visit(cfg.routes.map((r) => r.virtual_hosts));
  for (const l of cfg.listeners) for (const c of l.filter_chains ?? []) for (const f of c.filters ?? []) if (f.typed_config?.weighted_clusters) for (const w of f.typed_config.weighted_clusters.clusters) named.add(w.name);
  for (const r of cfg.routes) for (const vh of r.virtual_hosts ?? []) for (const rt of vh.routes ?? []) for (const w of rt.route?.weighted_clusters?.clusters ?? []) named.add(w.name);
  named.delete('sds-grpc');
  return [...named].filter((n) => !known.has(n)).sort();
}
