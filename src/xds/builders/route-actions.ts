/**
 * The parts of an Envoy route built from one VirtualService HTTPRoute besides its match (istio-xds.md §3.3; istiod
 * route/route.go): header operations, mirror policies, redirect, direct response, CORS and fault per-filter config,
 * and the tracing decorator.
 */
import { parseDurationMs } from '../../config/kinds/common.ts';
import type { CorsPolicy, Destination, Headers, HeaderOperations, HTTPRedirect, HTTPRoute } from '../../config/kinds/virtual-service.ts';
import { GRPC_STATUS_CODES } from '../../config/kinds/virtual-service.ts';
import { parseClusterName } from '../../model/names.ts';
import { compact, duration, fractionalPercent, hundredPercent, type Json } from './common.ts';
import type { RouteContext } from './route-context.ts';
import { stringMatcher } from './route-match.ts';

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const CORS_FILTER = 'envoy.filters.http.cors';

// ---------------------------------------------------------------------------------------------------------------
// Headers (TranslateHeadersOperations)

export interface HeaderActions {
  request_headers_to_add?: Json[];
  request_headers_to_remove?: string[];
  response_headers_to_add?: Json[];
  response_headers_to_remove?: string[];
  /** `:authority` / `host` in request set (or add): becomes host_rewrite_literal on a route action. */
  authority?: string;
}

const isAuthority = (k: string) => k.toLowerCase() === ':authority' || k.toLowerCase() === 'host';
/** Pseudo-headers and `host` cannot be set or removed by Envoy's header operations. */
const isInternal = (k: string) => k.startsWith(':') || k.toLowerCase() === 'host';

function appendHeaders(map: Record<string, string> | undefined, append: boolean): { entries: Json[]; authority?: string } {
  let authority: string | undefined;
  const entries: Json[] = [];
  for (const key of Object.keys(map ?? {}).sort()) {
    const value = map![key]!;
    if (isAuthority(key)) authority = value;
    if (isInternal(key)) continue;
    entries.push({ header: { key, value }, append_action: append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  return authority === undefined ? { entries } : { entries, authority };
}

function operations(ops: HeaderOperations | undefined): { add: Json[]; remove: string[]; authority?: string } {
  const set = appendHeaders(ops?.set, false);
  const add = appendHeaders(ops?.add, true);
  const remove = (ops?.remove ?? []).filter((k) => !isInternal(k));
  const authority = set.authority ?? add.authority;
  return { add: [...set.entries, ...add.entries], remove, ...(authority !== undefined ? { authority } : {}) };
}

/** `headers.request/response` → Envoy header fields (empty lists left out); set entries sort before add entries. */
export function headerActions(h: Headers | undefined): HeaderActions {
  if (!h) return {};
  const req = operations(h.request);
  const resp = operations(h.response);
  const nonEmpty = <T>(a: T[]) => (a.length > 0 ? a : undefined);
  return compact({
    request_headers_to_add: nonEmpty(req.add),
    request_headers_to_remove: nonEmpty(req.remove),
    response_headers_to_add: nonEmpty(resp.add),
    response_headers_to_remove: nonEmpty(resp.remove),
    authority: req.authority,
  }) as HeaderActions;
}

/** Appends a destination's header operations to the route's (single destination: merged into the route). */
export function mergeHeaderActions(into: Json, more: HeaderActions): void {
  for (const k of ['request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove'] as const) {
    const extra = more[k];
    if (extra && extra.length > 0) into[k] = [...((into[k] as unknown[] | undefined) ?? []), ...extra];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mirrors (MirrorPercent, MirrorPercentByPolicy, TranslateRequestMirrorPolicy)

type Fraction = { numerator: number; denominator: string };

/** `mirrorPercentage` (double, MILLION), legacy `mirrorPercent` (HUNDRED), absent → 100%; an explicit 0 → no mirror. */
function mirrorFraction(route: HTTPRoute): Fraction | undefined {
  if (route.mirrorPercentage !== undefined) return route.mirrorPercentage.value > 0 ? fractionalPercent(route.mirrorPercentage.value) : undefined;
  const legacy = route.mirrorPercent ?? route.mirror_percent;
  if (legacy !== undefined) return legacy > 0 ? hundredPercent(legacy) : undefined;
  return hundredPercent(100);
}

export function mirrorPolicies(route: HTTPRoute, cluster: (d: Destination) => string): Json[] {
  const out: Json[] = [];
  const policy = (d: Destination, f: Fraction) => ({ cluster: cluster(d), runtime_fraction: { default_value: f }, trace_sampled: { value: false } });
  if (route.mirror) {
    const f = mirrorFraction(route);
    if (f) out.push(policy(route.mirror, f));
  }
  for (const m of route.mirrors ?? []) {
    const f = m.percentage === undefined ? hundredPercent(100) : m.percentage.value > 0 ? fractionalPercent(m.percentage.value) : undefined;
    if (f) out.push(policy(m.destination, f));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Redirect and direct response (ApplyRedirect, ApplyDirectResponse)

const REDIRECT_CODES: Record<number, string> = { 0: 'MOVED_PERMANENTLY', 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };

/**
 * `redirect` → RedirectAction; undefined for a code Envoy has no name for (istiod leaves such a route without an
 * action, which Envoy refuses). `redirect.uri` replaces the whole path (path_redirect; only Gateway-API routes get
 * prefix semantics). FROM_REQUEST_PORT is the listener port, as routes are built per port; an explicit :80 on http
 * or :443 on https is dropped.
 */
export function redirectAction(r: HTTPRedirect, listenerPort: number, tls: boolean): Json | undefined {
  const responseCode = REDIRECT_CODES[r.redirectCode ?? 0];
  if (!responseCode) return undefined;
  let port: number | undefined;
  if (r.port !== undefined || r.derivePort !== undefined) {
    if (r.port !== undefined) port = r.port;
    else if (r.derivePort === 'FROM_REQUEST_PORT') port = listenerPort;
    const scheme = r.scheme || (tls ? 'https' : 'http');
    if ((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https')) port = undefined;
  }
  return compact({
    host_redirect: r.authority || undefined,
    path_redirect: r.uri || undefined,
    scheme_redirect: r.scheme || undefined,
    port_redirect: port || undefined,
    response_code: responseCode,
  });
}

export function directResponse(route: HTTPRoute): Json {
  const d = route.directResponse!;
  const body = d.body?.string !== undefined ? { inline_string: d.body.string } : d.body?.bytes !== undefined ? { inline_bytes: d.body.bytes } : undefined;
  return compact({ status: d.status, body });
}

// ---------------------------------------------------------------------------------------------------------------
// Per-filter config: CORS (TranslateCORSPolicy) and fault (TranslateFault)

/** `corsPolicy` → envoy.extensions.filters.http.cors.v3.CorsPolicy for typed_per_filter_config. */
export function corsPolicy(c: CorsPolicy): Json {
  const origins = c.allowOrigins
    ? c.allowOrigins.map(stringMatcher).filter((m): m is Json => m !== undefined)
    : c.allowOrigin
      ? c.allowOrigin.map((exact) => ({ exact }))
      : [];
  const joined = (l: string[] | undefined) => (l && l.length > 0 ? l.join(',') : undefined);
  const maxAgeMs = c.maxAge !== undefined ? parseDurationMs(c.maxAge) : undefined;
  return compact({
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
    allow_origin_string_match: origins.length > 0 ? origins : undefined,
    allow_methods: joined(c.allowMethods),
    allow_headers: joined(c.allowHeaders),
    expose_headers: joined(c.exposeHeaders),
    max_age: maxAgeMs !== undefined ? String(Math.floor(maxAgeMs / 1000)) : undefined,
    allow_credentials: c.allowCredentials !== undefined ? { value: c.allowCredentials } : undefined,
    filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
    // Envoy ≥ 1.30 stops forwarding unmatched preflights by default; Istio keeps forwarding unless told IGNORE.
    forward_not_matching_preflights: { value: c.unmatchedPreflights !== 'IGNORE' },
  });
}

export function faultConfig(route: HTTPRoute, ctx: RouteContext): Json | undefined {
  const f = route.fault;
  if (!f) return undefined;
  const out: Json = { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' };
  const pct = (p: { value?: number } | undefined, legacy: number | undefined) =>
    p?.value !== undefined ? fractionalPercent(p.value) : legacy !== undefined ? hundredPercent(legacy) : fractionalPercent(0);
  if (f.delay?.fixedDelay) {
    out.delay = { fixed_delay: duration(f.delay.fixedDelay), percentage: pct(f.delay.percentage, f.delay.percent) };
  } else if (f.delay) {
    ctx.note('fault.delay has no fixedDelay: delay left out');
  }
  if (f.abort) {
    const abort: Json = { percentage: pct(f.abort.percentage, undefined) };
    if (f.abort.httpStatus !== undefined) abort.http_status = f.abort.httpStatus;
    else if (f.abort.grpcStatus !== undefined) {
      // Validation admits only code names, so the lookup always succeeds.
      abort.grpc_status = GRPC_STATUS_CODES[f.abort.grpcStatus];
    } else {
      ctx.note(f.abort.http2Error !== undefined ? 'fault.abort.http2Error is not supported: abort left out' : 'fault.abort has no error type: abort left out');
      return out.delay ? out : undefined;
    }
    out.abort = abort;
  }
  return out.delay || out.abort ? out : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Decorator (GetRouteOperation)

/**
 * The tracing operation: `<host>:<port><path>` when the route goes to one cluster, else `<vs name>:<listener
 * port><path>`; path is the prefix + `*`, the exact path, or the regex.
 */
export function routeOperation(match: Json, action: Json | undefined, vsName: string, listenerPort: number): string {
  let path = '/*';
  if (typeof match.prefix === 'string') path = `${match.prefix}*`;
  else if (typeof match.path === 'string') path = match.path;
  else if (match.safe_regex) path = (match.safe_regex as { regex: string }).regex;
  const key = typeof action?.cluster === 'string' ? parseClusterName(action.cluster) : undefined;
  return key ? `${key.host}:${key.port}${path}` : `${vsName}:${listenerPort}${path}`;
}
