/**
 * VirtualService HTTP routes → Envoy routes (istio-xds.md §3.3, §3.4; istiod route/route.go translateRoute,
 * applyHTTPRouteDestination). Shared by all proxy types; `proxyless` leaves out what gRPC clients cannot take
 * (injection-and-proxyless.md B6) and says so in a note instead of sending something that makes the client reject the
 * whole RouteConfiguration. Delegating routes are replaced by their delegate's routes before translation.
 */
import type { Destination, HTTPMatchRequest, HTTPRoute, HTTPRouteDestination } from '../../config/kinds/virtual-service.ts';
import { resolveShortName } from '../../model/hosts.ts';
import { clusterName } from '../../model/names.ts';
import type { IndexedVirtualService } from '../../model/push-context.ts';
import { mergeDelegate, qualifyHttpRoute } from '../../model/virtual-service-delegate.ts';
import { compact, duration, struct, ZERO_DURATION, type Json } from './common.ts';
import { hashPolicyFor } from './hash-policy.ts';
import {
  CORS_FILTER,
  corsPolicy,
  directResponse,
  FAULT_FILTER,
  faultConfig,
  headerActions,
  mergeHeaderActions,
  mirrorPolicies,
  redirectAction,
  routeOperation,
  type HeaderActions,
} from './route-actions.ts';
import type { RouteContext } from './route-context.ts';
import { isCatchAllMatch, matchApplies, matchesEverything, translateMatch } from './route-match.ts';
import { defaultRetryPolicy, retryPolicy } from './route-retry.ts';

export type { RouteContext };
export { CORS_FILTER, defaultRetryPolicy, FAULT_FILTER, retryPolicy };

export interface TranslatedRoutes {
  routes: Json[];
  /** A route matched everything: later HTTP routes of the VirtualService can never apply (istiod stops there). */
  catchAll: boolean;
}

/** Cluster name for a destination: port from the destination, else the only service port, else the route's port. */
export function destinationCluster(d: Destination, vsNamespace: string, ctx: RouteContext): string {
  const host = resolveShortName(d.host, vsNamespace, ctx.push.mesh.domainSuffix);
  let port = d.port?.number;
  if (port === undefined) {
    const target = ctx.push.serviceFor(ctx.view, host);
    port = target && target.ports.length === 1 ? target.ports[0]!.port : ctx.port;
  }
  return clusterName('outbound', port, d.subset ?? '', host);
}

/** One VirtualService HTTP route → zero or more Envoy routes (one per match). */
export function translateHttpRoute(route: HTTPRoute, index: number, vs: IndexedVirtualService, ctx: RouteContext): TranslatedRoutes {
  const vsNs = vs.object.metadata.namespace;
  const where = `VirtualService ${vsNs}/${vs.object.metadata.name} http[${index}]`;
  const local: RouteContext = { ...ctx, note: (m: string) => ctx.note(`${where}: ${m}`) };
  return route.delegate ? translateDelegating(route, vs, local) : translateRoute(route, vs, local);
}

/**
 * A root route with `delegate`: the delegate VirtualService (no hosts, exported to the root's namespace) is looked up,
 * its routes merged with the root route (model/virtual-service-delegate.ts), and each merged route translated as if
 * the root VirtualService had written it (metadata, decorator and short names of the root; the delegate's own short
 * names were made absolute in its namespace first).
 */
function translateDelegating(route: HTTPRoute, vs: IndexedVirtualService, ctx: RouteContext): TranslatedRoutes {
  const rootNs = vs.object.metadata.namespace;
  const ns = route.delegate!.namespace || rootNs;
  const name = route.delegate!.name ?? '';
  const delegate = ctx.push.delegateVirtualService(name, ns, rootNs);
  if (!delegate) {
    ctx.note(`delegate VirtualService ${ns}/${name} not found (or it has hosts, or is not exported to namespace ${rootNs}): route left out`);
    return { routes: [], catchAll: false };
  }
  const suffix = ctx.push.mesh.domainSuffix;
  const merged = mergeDelegate(
    qualifyHttpRoute(route, rootNs, suffix),
    { ...delegate.spec, http: (delegate.spec.http ?? []).map((r) => qualifyHttpRoute(r, ns, suffix)) },
  );
  for (const d of merged.dropped) ctx.note(`delegate VirtualService ${ns}/${name} ${d}: left out`);
  const routes: Json[] = [];
  for (const [j, r] of merged.routes.entries()) {
    const out = translateRoute(r, vs, { ...ctx, note: (m: string) => ctx.note(`delegate ${ns}/${name} route ${j}: ${m}`) });
    routes.push(...out.routes);
    if (out.catchAll) return { routes, catchAll: true };
  }
  return { routes, catchAll: false };
}

function translateRoute(route: HTTPRoute, vs: IndexedVirtualService, ctx: RouteContext): TranslatedRoutes {
  const { note } = ctx;
  if (ctx.proxyless) {
    if (route.redirect || route.directResponse) {
      note(`${route.redirect ? 'redirect' : 'directResponse'} cannot be served by proxyless gRPC clients: route left out`);
      return { routes: [], catchAll: false };
    }
    if (route.mirror || route.mirrors) note('mirror is not supported by proxyless gRPC clients: left out');
    if (route.rewrite) note('rewrite is not supported by proxyless gRPC clients: left out');
    if (route.corsPolicy) note('corsPolicy is not supported by proxyless gRPC clients: left out');
  }
  const vsNs = vs.object.metadata.namespace;
  const matches: Array<HTTPMatchRequest | undefined> = route.match && route.match.length > 0 ? route.match : [undefined];
  const parts = ctx.proxyless ? proxylessParts(route, vsNs, ctx) : envoyParts(route, vsNs, ctx);
  const metadata = { filter_metadata: { istio: struct({ config: `/apis/networking.istio.io/v1/namespaces/${vsNs}/virtual-service/${vs.object.metadata.name}` }) } };

  const routes: Json[] = [];
  let catchAll = false;
  for (const m of matches) {
    if (m && !matchApplies(m, vsNs, ctx)) continue;
    const match = translateMatch(m, ctx);
    if (!match) continue;
    if (!parts.action && !parts.redirect && !parts.direct_response) continue;
    const action = parts.action ? { ...parts.action } : undefined;
    const r: Json = compact({
      name: [route.name, m?.name].filter(Boolean).join('.') || undefined,
      match,
      route: action,
      redirect: parts.redirect,
      direct_response: parts.direct_response,
      metadata,
      decorator: ctx.proxyless ? undefined : { operation: routeOperation(match, action, vs.object.metadata.name, ctx.port) },
      stat_prefix: !ctx.proxyless && m?.statPrefix ? m.statPrefix : undefined,
      ...parts.headers,
      typed_per_filter_config: parts.perFilter,
    });
    routes.push(r);
    if (ctx.proxyless ? matchesEverything(m) : isCatchAllMatch(match)) {
      catchAll = true;
      break;
    }
  }
  // istiod: an HTTP route without match conditions ends the list whether or not it produced a route.
  if (!ctx.proxyless && matches[0] === undefined) catchAll = true;
  return { routes, catchAll };
}

interface RouteParts {
  action?: Json;
  redirect?: Json;
  direct_response?: Json;
  headers: Omit<HeaderActions, 'authority'>;
  perFilter?: Json;
}

/** What proxyless gRPC gets: destination, timeout (as max_stream_duration too), retries, hash policy, fault. */
function proxylessParts(route: HTTPRoute, vsNs: string, ctx: RouteContext): RouteParts {
  const destinations = (route.route ?? []).filter((d) => (d.weight ?? 1) > 0 || (route.route ?? []).length === 1);
  const hashPolicies = destinations.flatMap((d) => hashPolicyFor(d.destination, vsNs, ctx));
  const fault = faultConfig(route, ctx);
  const parts: RouteParts = { headers: {}, ...(fault ? { perFilter: { [FAULT_FILTER]: fault } } : {}) };
  if (destinations.length === 0) return parts;
  const action: Json = {};
  if (destinations.length === 1) action.cluster = destinationCluster(destinations[0]!.destination, vsNs, ctx);
  else action.weighted_clusters = { clusters: destinations.map((d) => ({ name: destinationCluster(d.destination, vsNs, ctx), weight: { value: d.weight ?? 0 } })) };
  action.timeout = route.timeout ? duration(route.timeout) : ZERO_DURATION;
  if (route.timeout) action.max_stream_duration = { max_stream_duration: duration(route.timeout) };
  const retry = retryPolicy(route.retries, hashPolicies.length > 0);
  if (retry) action.retry_policy = retry;
  if (hashPolicies.length > 0) action.hash_policy = hashPolicies;
  parts.action = action;
  return parts;
}

/**
 * What an Envoy proxy gets (istiod translateRoute): redirect, else direct response, else a route action; route-level
 * header operations; fault and CORS per-filter config.
 */
function envoyParts(route: HTTPRoute, vsNs: string, ctx: RouteContext): RouteParts {
  const { authority: headerAuthority, ...headers } = headerActions(route.headers);
  const parts: RouteParts = { headers };
  if (route.redirect) {
    const redirect = redirectAction(route.redirect, ctx.port, ctx.tls ?? false);
    if (redirect) parts.redirect = redirect;
    else ctx.note(`redirect code ${route.redirect.redirectCode} has no Envoy equivalent (301, 302, 303, 307, 308): route left out`);
  } else if (route.directResponse) {
    parts.direct_response = directResponse(route);
  } else {
    const action = envoyAction(route, vsNs, headerAuthority, parts.headers, ctx);
    if (action) parts.action = action;
    else ctx.note('no destination with a weight above 0: route left out');
  }
  const perFilter: Json = {};
  const fault = faultConfig(route, ctx);
  if (fault) perFilter[FAULT_FILTER] = fault;
  if (route.corsPolicy) perFilter[CORS_FILTER] = corsPolicy(route.corsPolicy);
  if (Object.keys(perFilter).length > 0) parts.perFilter = perFilter;
  return parts;
}

/** applyHTTPRouteDestination: rewrite, host rewrite, mirrors, cluster(s) with their headers, timeout, retries, hash. */
function envoyAction(route: HTTPRoute, vsNs: string, headerAuthority: string | undefined, routeHeaders: Json, ctx: RouteContext): Json | undefined {
  const all = route.route ?? [];
  // One destination → `cluster` (whatever its weight); several → weighted_clusters without the weight-0 entries.
  const destinations: HTTPRouteDestination[] = all.length === 1 ? all : all.filter((d) => (d.weight ?? 0) > 0);
  if (destinations.length === 0) return undefined;
  const cluster = (d: Destination) => destinationCluster(d, vsNs, ctx);
  const action: Json = {};
  let authority = headerAuthority;
  const rw = route.rewrite;
  if (rw) {
    // A regex rewrite wins over a prefix rewrite; rewrite.authority over a `:authority`/`host` header set.
    if (rw.uriRegexRewrite) action.regex_rewrite = { pattern: { regex: rw.uriRegexRewrite.match ?? '' }, substitution: rw.uriRegexRewrite.rewrite ?? '' };
    else if (rw.uri) action.prefix_rewrite = rw.uri;
    if (rw.authority) authority = rw.authority;
  }
  if (authority) action.host_rewrite_literal = authority;
  const mirrors = mirrorPolicies(route, cluster);
  if (mirrors.length > 0) action.request_mirror_policies = mirrors;

  const hashPolicies: Json[] = [];
  if (all.length === 1) {
    const d = all[0]!;
    action.cluster = cluster(d.destination);
    const { authority: destAuthority, ...destHeaders } = headerActions(d.headers);
    mergeHeaderActions(routeHeaders, destHeaders);
    // The route-level rewrite wins over the destination's, as for weighted destinations.
    if (destAuthority && action.host_rewrite_literal === undefined) action.host_rewrite_literal = destAuthority;
    hashPolicies.push(...hashPolicyFor(d.destination, vsNs, ctx));
  } else {
    const clusters = destinations.map((d) => {
      const { authority: destAuthority, ...destHeaders } = headerActions(d.headers);
      hashPolicies.push(...hashPolicyFor(d.destination, vsNs, ctx));
      return compact({ name: cluster(d.destination), weight: { value: d.weight ?? 0 }, ...destHeaders, host_rewrite_literal: destAuthority });
    });
    action.weighted_clusters = { clusters };
  }
  const timeout = route.timeout ? (duration(route.timeout) ?? ZERO_DURATION) : ZERO_DURATION;
  action.timeout = timeout;
  // Envoy reads grpc-timeout only with max_grpc_timeout set; istiod sets it to the route timeout (0s = unbounded).
  action.max_grpc_timeout = timeout;
  // istiod drops the previous-hosts predicate only for a single consistent-hash destination.
  const retry = retryPolicy(route.retries, all.length === 1 && hashPolicies.length > 0);
  if (retry) action.retry_policy = retry;
  if (hashPolicies.length > 0) action.hash_policy = hashPolicies;
  return action;
}

/** Routes for a service with no VirtualService: one default route to `outbound|port||host` (BuildDefaultHTTPOutboundRoute). */
export function defaultRoute(ctx: RouteContext): Json {
  const cluster = clusterName('outbound', ctx.port, '', ctx.service.hostname);
  const hash = hashPolicyFor({ host: ctx.service.hostname, port: { number: ctx.port } }, ctx.service.namespace, ctx);
  return compact({
    name: 'default',
    match: { prefix: '/', case_sensitive: { value: true } },
    route: compact({
      cluster,
      timeout: ZERO_DURATION,
      max_grpc_timeout: ctx.proxyless ? undefined : ZERO_DURATION,
      // istiod keeps the previous-hosts predicate on the default route even with consistent hashing.
      retry_policy: defaultRetryPolicy(ctx.proxyless && hash.length > 0),
      hash_policy: hash.length > 0 ? hash : undefined,
    }),
    decorator: ctx.proxyless ? undefined : { operation: `${ctx.service.hostname}:${ctx.port}/*` },
  });
}
