/**
 * VirtualService delegation (istio/istio pilot/pkg/model/virtualservice.go: mergeHTTPRoutes, mergeHTTPRoute,
 * mergeHTTPMatchRequests, hasConflict, stringMatchConflict). A root route `{match, delegate: {name, namespace}}` is
 * replaced by the delegate's routes, each narrowed by the root's match (root ∧ delegate) and filled with the root's
 * settings where the delegate leaves them unset. A delegate route whose match cannot be a subset of any root match is
 * dropped. Pure: the caller finds the delegate (push-context `delegateVirtualService`) and qualifies short names first.
 */
import type { HTTPMatchRequest, HTTPRoute, StringMatch, VirtualServiceSpec } from '../config/kinds/virtual-service.ts';
import { resolveShortName } from './hosts.ts';
import { resolveGatewayName } from './names.ts';

export interface DelegateMerge {
  /** The merged routes, in the delegate's order. */
  routes: HTTPRoute[];
  /** Delegate routes left out, with the reason (`http[i]` indexes the delegate's list). */
  dropped: string[];
}


/**
 * A copy of the route with short names made absolute relative to the namespace of the VirtualService that wrote it
 * (destination, mirror and mirrors hosts; match gateways), as istiod does for every VirtualService before merging
 * delegates (push_context.go initVirtualServices → resolveVirtualServiceShortnames).
 */
export function qualifyHttpRoute(route: HTTPRoute, namespace: string, domainSuffix: string): HTTPRoute {
  const host = (h: string) => resolveShortName(h, namespace, domainSuffix);
  const out: HTTPRoute = { ...route };
  if (route.match) {
    out.match = route.match.map((m) => (m.gateways ? { ...m, gateways: m.gateways.map((g) => resolveGatewayName(g, namespace)) } : m));
  }
  if (route.route) out.route = route.route.map((d) => ({ ...d, destination: { ...d.destination, host: host(d.destination.host) } }));
  if (route.mirror) out.mirror = { ...route.mirror, host: host(route.mirror.host) };
  if (route.mirrors) out.mirrors = route.mirrors.map((m) => ({ ...m, destination: { ...m.destination, host: host(m.destination.host) } }));
  return out;
}

/** The root route merged with each route of the delegate VirtualService (mergeHTTPRoutes). */
export function mergeDelegate(root: HTTPRoute, delegate: VirtualServiceSpec): DelegateMerge {
  const routes: HTTPRoute[] = [];
  const dropped: string[] = [];
  for (const [i, sub] of (delegate.http ?? []).entries()) {
    if (sub.delegate) {
      // Only one level of delegation (validation refuses it; a delegate written before that rule is still ignored).
      dropped.push(`http[${i}]: a delegate VirtualService cannot delegate again`);
      continue;
    }
    const merged = mergeHttpRoute(root, sub);
    if (merged) routes.push(merged);
    else dropped.push(`http[${i}]${sub.name ? ` (${sub.name})` : ''}: its match conflicts with the root's match`);
  }
  return { routes, dropped };
}

/** mergeHTTPRoute: undefined when the delegate's match conflicts with every root match. */
export function mergeHttpRoute(root: HTTPRoute, delegate: HTTPRoute): HTTPRoute | undefined {
  const match = mergeMatches(root.match, delegate.match);
  if (match === 'conflict') return undefined;
  const out: HTTPRoute = { ...delegate };
  delete out.delegate;
  if (match) out.match = match;
  else delete out.match;
  const name = joinNames(root.name, delegate.name);
  if (name) out.name = name;
  // Root settings fill only what the delegate leaves unset (route/redirect are the delegate's own).
  const inherit = ['rewrite', 'directResponse', 'timeout', 'retries', 'fault', 'mirror', 'mirrorPercent', 'mirror_percent', 'mirrorPercentage', 'corsPolicy', 'mirrors', 'headers'] as const;
  for (const k of inherit) if (out[k] === undefined && root[k] !== undefined) (out as Record<string, unknown>)[k] = root[k];
  return out;
}

function joinNames(root: string | undefined, delegate: string | undefined): string | undefined {
  if (!delegate) return root || undefined;
  return root ? `${root}-${delegate}` : delegate;
}

/**
 * mergeHTTPMatchRequests: root empty → the delegate's matches; delegate empty → the root's; otherwise every delegate
 * match is merged with each root match it does not conflict with, and one that fits none makes the route conflict.
 */
function mergeMatches(root: HTTPMatchRequest[] | undefined, delegate: HTTPMatchRequest[] | undefined): HTTPMatchRequest[] | undefined | 'conflict' {
  if (!root || root.length === 0) return delegate;
  if (!delegate || delegate.length === 0) return root;
  const out: HTTPMatchRequest[] = [];
  for (const sub of delegate) {
    let found = false;
    for (const r of root) {
      if (hasConflict(r, sub)) continue;
      out.push(mergeMatch(r, sub));
      found = true;
    }
    if (!found) return 'conflict';
  }
  return out.length > 0 ? out : 'conflict';
}

const mergeMaps = <V>(a: Record<string, V> | undefined, b: Record<string, V> | undefined): Record<string, V> | undefined =>
  a || b ? { ...a, ...b } : undefined;

/** mergeHTTPMatchRequest: the delegate's condition, with the root's filling what it leaves unset; maps are unioned. */
function mergeMatch(root: HTTPMatchRequest, delegate: HTTPMatchRequest): HTTPMatchRequest {
  const out: HTTPMatchRequest = { ...delegate };
  const set = <K extends keyof HTTPMatchRequest>(k: K, v: HTTPMatchRequest[K] | undefined) => {
    if (v === undefined) delete out[k];
    else out[k] = v;
  };
  set('name', joinNames(root.name, delegate.name));
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const) if (out[k] === undefined) set(k, root[k]);
  set('headers', mergeMaps(root.headers, delegate.headers));
  set('withoutHeaders', mergeMaps(root.withoutHeaders, delegate.withoutHeaders));
  set('queryParams', mergeMaps(root.queryParams, delegate.queryParams));
  if (!out.port) set('port', root.port);
  set('sourceLabels', mergeMaps(root.sourceLabels, delegate.sourceLabels));
  if (!out.sourceNamespace) set('sourceNamespace', root.sourceNamespace);
  if (!out.gateways || out.gateways.length === 0) set('gateways', root.gateways);
  if (!out.statPrefix) set('statPrefix', root.statPrefix);
  return out;
}

/** hasConflict: can `leaf` not be a narrowing of `root`? */
function hasConflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest): boolean {
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const) if (stringMatchConflict(root[k], leaf[k])) return true;
  for (const [k, v] of Object.entries(leaf.headers ?? {})) if (stringMatchConflict(root.headers?.[k], v)) return true;
  for (const [k, v] of Object.entries(leaf.withoutHeaders ?? {})) if (stringMatchConflict(root.withoutHeaders?.[k], v)) return true;
  for (const [k, v] of Object.entries(leaf.queryParams ?? {})) if (stringMatchConflict(root.queryParams?.[k], v)) return true;
  if ((root.ignoreUriCase ?? false) !== (leaf.ignoreUriCase ?? false)) return true;
  if (root.port && leaf.port && root.port !== leaf.port) return true;
  if (root.sourceNamespace && leaf.sourceNamespace !== root.sourceNamespace) return true;
  for (const [k, v] of Object.entries(leaf.sourceLabels ?? {})) {
    const r = root.sourceLabels?.[k];
    if (r !== undefined && r !== v) return true;
  }
  // The root's gateways must be a superset of the leaf's.
  if (root.gateways?.length && leaf.gateways?.length) {
    if (root.gateways.length < leaf.gateways.length) return true;
    if (leaf.gateways.some((g) => !root.gateways!.includes(g))) return true;
  }
  return false;
}

/**
 * stringMatchConflict (Go zero values: an empty string counts as unset). Regex on either side conflicts with any
 * match on the other; an exact root admits only the same exact; a prefix root admits prefixes and exacts it prefixes.
 */
function stringMatchConflict(root: StringMatch | undefined, leaf: StringMatch | undefined): boolean {
  if (!root || !leaf) return false;
  if (root.regex && (leaf.regex || leaf.prefix || leaf.exact)) return true;
  if (leaf.regex && (root.regex || root.prefix || root.exact)) return true;
  if (root.exact) {
    if (leaf.prefix) return true;
    return leaf.exact !== root.exact;
  }
  if (root.prefix) {
    if (leaf.prefix) return !leaf.prefix.startsWith(root.prefix);
    if (leaf.exact) return !leaf.exact.startsWith(root.prefix);
  }
  return true;
}
