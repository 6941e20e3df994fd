/**
 * Behavioural checks on generated Envoy config, in the style of istiod's simulation tests: for a call (destination
 * address/port, TLS or not, SNI, ALPN, host, path, headers) walk what Envoy would walk — listener (via virtualOutbound's
 * original-destination hand-off or virtualInbound), filter chain (Envoy's match order), HCM → route config → virtual
 * host → route → cluster, or tcp_proxy → cluster — and report each step. Works on decoded config (translate()).
 */
import type { Translation } from './translate.ts';

export interface Call {
  /** Destination address the application dialled (a VIP, a pod IP, or an external IP). */
  address?: string;
  port: number;
  /** `outbound` (app → sidecar 15001), `inbound` (peer → sidecar 15006), `gateway` (client → gateway listener). */
  direction?: 'outbound' | 'inbound' | 'gateway';
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

type J = Record<string, any>;

function listenerFor(t: Translation, call: Call): J | undefined {
  const address = call.address ?? '0.0.0.0';
  if (call.direction === 'inbound') return t.lds.find((l) => l.name === 'virtualInbound');
  if (call.direction === 'gateway') return t.lds.find((l) => l.address?.socket_address?.port_value === call.port);
  const exact = t.lds.find((l) => l.name === `${address}_${call.port}`);
  return exact ?? t.lds.find((l) => l.name === `0.0.0.0_${call.port}`) ?? t.lds.find((l) => l.name === 'virtualOutbound');
}

function detected(listener: J, call: Call): { transport: string; alpn: string[] } {
  const filters = (listener.listener_filters ?? []).map((f: J) => f.name as string);
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
function chooseChain(listener: J, call: Call): { chain?: J; index?: number | 'default' } {
  const { transport, alpn } = detected(listener, call);
  let cands: Array<{ c: J; i: number }> = (listener.filter_chains ?? []).map((c: J, i: number) => ({ c, i }));
  const m = (x: { c: J }) => x.c.filter_chain_match ?? {};
  const narrow = (score: (x: { c: J; i: number }) => number) => {
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

function stringMatch(sm: J, value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = sm.ignore_case ? value.toLowerCase() : value;
  const cmp = (s: string) => (sm.ignore_case ? s.toLowerCase() : s);
  if (sm.exact !== undefined) return v === cmp(sm.exact);
  if (sm.prefix !== undefined) return v.startsWith(cmp(sm.prefix));
  if (sm.suffix !== undefined) return v.endsWith(cmp(sm.suffix));
  if (sm.contains !== undefined) return v.includes(cmp(sm.contains));
  if (sm.safe_regex) return new RegExp(`^(?:${sm.safe_regex.regex})$`).test(value);
  return false;
}

function routeMatches(match: J, call: Call): boolean {
  const fullPath = call.path ?? '/';
  const path = fullPath.split('?')[0]!;
  const ci = match.case_sensitive === false;
  const p = ci ? path.toLowerCase() : path;
  const lc = (s: string) => (ci ? s.toLowerCase() : s);
  if (match.prefix !== undefined && !p.startsWith(lc(match.prefix))) return false;
  if (match.path !== undefined && p !== lc(match.path)) return false;
  if (match.safe_regex && !new RegExp(`^(?:${match.safe_regex.regex})$`, ci ? 'i' : '').test(path)) return false;
  const headers: Record<string, string> = { ':method': call.method ?? 'GET', ':authority': call.host ?? '', ':scheme': call.tls ? 'https' : 'http', ':path': fullPath };
  for (const [k, v] of Object.entries(call.headers ?? {})) headers[k.toLowerCase()] = v;
  for (const h of match.headers ?? []) {
    const value = headers[h.name];
    let ok: boolean;
    if (h.present_match) ok = value !== undefined;
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

function routeHttp(t: Translation, rc: J | undefined, call: Call, out: Result): Result {
  if (!rc) return { ...out, error: 'route config not found' };
  out.routeConfig = rc.name;
  const host = (call.host ?? '').replace(/:\d+$/, '').toLowerCase();
  let best: { vh: J; s: number } | undefined;
  for (const vh of rc.virtual_hosts ?? []) {
    for (const d of vh.domains ?? []) {
      const s = domainScore(d.toLowerCase(), host);
      if (s >= 0 && (!best || s > best.s)) best = { vh, s };
    }
  }
  if (!best) return { ...out, error: 'no virtual host (404)' };
  out.virtualHost = best.vh.name;
  if (best.vh.require_tls === 'ALL' && !call.tls) return { ...out, requireTls: true };
  const route = (best.vh.routes ?? []).find((r: J) => routeMatches(r.match ?? {}, call));
  if (!route) return { ...out, error: 'no route (404)' };
  out.route = route.name;
  if (route.direct_response) return { ...out, directResponse: route.direct_response.status };
  if (route.redirect) return { ...out, redirect: route.redirect };
  const action = route.route ?? {};
  if (action.cluster) out.cluster = action.cluster;
  if (action.weighted_clusters) out.weightedClusters = action.weighted_clusters.clusters.map((c: J) => c.name);
  return out;
}

/** Walks `call` through the translated config. */
export function simulate(t: Translation, call: Call): Result {
  const listener = listenerFor(t, call);
  if (!listener) return { error: 'no listener' };
  const out: Result = { listener: listener.name };
  const { chain, index } = chooseChain(listener, call);
  if (index === -1) return { ...out, error: 'ambiguous filter chain match' };
  if (!chain) return { ...out, error: 'no filter chain (connection closed)' };
  out.chainIndex = index;
  if (chain.name) out.filterChain = chain.name;
  out.transportSocket = chain.transport_socket !== undefined;
  const filter = (chain.filters ?? []).at(-1) as J | undefined;
  const tc = filter?.typed_config ?? {};
  if (filter?.name === 'envoy.filters.network.tcp_proxy') {
    if (tc.cluster) out.cluster = tc.cluster;
    if (tc.weighted_clusters) out.weightedClusters = tc.weighted_clusters.clusters.map((c: J) => c.name);
    return out;
  }
  if (filter?.name === 'envoy.filters.network.http_connection_manager') {
    const rc = tc.route_config ?? t.rds.find((r) => r.name === tc.rds?.route_config_name);
    return routeHttp(t, rc, call, out);
  }
  return { ...out, error: `unhandled filter ${filter?.name}` };
}

/** Every cluster a translation's listeners and routes name must exist in its CDS (Envoy would 503 otherwise). */
export function danglingClusters(t: Translation): string[] {
  const known = new Set(t.cds.map((c) => c.name as string));
  const named = new Set<string>();
  const visit = (v: unknown, key?: string) => {
    if (Array.isArray(v)) v.forEach((x) => visit(x, key));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) visit(x, k);
    else if (typeof v === 'string' && (key === 'cluster' || key === 'cluster_name')) named.add(v);
  };
  visit(t.lds);
  visit(t.rds.map((r) => r.virtual_hosts));
  for (const l of t.lds) for (const c of l.filter_chains ?? []) for (const f of c.filters ?? []) if (f.typed_config?.weighted_clusters) for (const w of f.typed_config.weighted_clusters.clusters) named.add(w.name);
  for (const r of t.rds) for (const vh of r.virtual_hosts ?? []) for (const rt of vh.routes ?? []) for (const w of rt.route?.weighted_clusters?.clusters ?? []) named.add(w.name);
  named.delete('sds-grpc');
  return [...named].filter((n) => !known.has(n)).sort();
}
