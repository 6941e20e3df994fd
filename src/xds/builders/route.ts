/**
 * VirtualService HTTP routes → Envoy routes (istio-xds.md §3.3, §3.4). Shared by all proxy types; `proxyless`
 * leaves out what gRPC clients cannot take (injection-and-proxyless.md B6) and says so in a note instead of
 * sending something that makes the client reject the whole RouteConfiguration.
 */
import type { Destination, HTTPMatchRequest, HTTPRoute, HTTPRetry } from '../../config/kinds/virtual-service.ts';
import { resolveShortName } from '../../model/hosts.ts';
import { clusterName, MESH_GATEWAY } from '../../model/names.ts';
import type { IndexedVirtualService } from '../../model/push-context.ts';
import { GRPC_STATUS_CODES } from '../../config/kinds/virtual-service.ts';
import { compact, duration, fractionalPercent, hundredPercent, struct, ZERO_DURATION, type Json } from './common.ts';
import { hashPolicyFor } from './hash-policy.ts';
import type { RouteContext } from './route-context.ts';

export type { RouteContext };

export const FAULT_FILTER = 'envoy.filters.http.fault';

/** Istio's default retry policy for routes whose VirtualService sets none (retry.go; 503 not retried since 1.24). */
export function defaultRetryPolicy(consistentHash: boolean): Json {
  return compact({
    num_retries: { value: 2 },
    retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
    retry_host_predicate: consistentHash
      ? undefined
      : [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
    host_selection_retry_max_attempts: 5,
  });
}

export function retryPolicy(retries: HTTPRetry | undefined, consistentHash: boolean): Json | undefined {
  if (!retries) return defaultRetryPolicy(consistentHash);
  if ((retries.attempts ?? 0) <= 0) return undefined;
  const policy = defaultRetryPolicy(consistentHash);
  policy.num_retries = { value: retries.attempts };
  if (retries.retryOn) {
    const codes: number[] = [];
    const on: string[] = [];
    for (const token of retries.retryOn.split(',').map((t) => t.trim()).filter(Boolean)) {
      const n = Number(token);
      if (Number.isInteger(n) && n >= 100 && n <= 599) codes.push(n);
      else on.push(token);
    }
    if (codes.length > 0) {
      policy.retriable_status_codes = codes;
      if (!on.includes('retriable-status-codes')) on.push('retriable-status-codes');
    }
    policy.retry_on = on.join(',');
  }
  if (retries.perTryTimeout) policy.per_try_timeout = duration(retries.perTryTimeout);
  if (retries.retryRemoteLocalities) {
    policy.retry_priority = {
      name: 'envoy.retry_priorities.previous_priorities',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 2 },
    };
  }
  if (retries.retryIgnorePreviousHosts === false) delete policy.retry_host_predicate;
  if (retries.backoff) policy.retry_back_off = { base_interval: duration(retries.backoff) };
  return policy;
}

function stringMatcher(m: { exact?: string; prefix?: string; regex?: string }): Json | undefined {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { safe_regex: { regex: m.regex } };
  return undefined;
}

function headerMatcher(name: string, m: { exact?: string; prefix?: string; regex?: string }, invert: boolean): Json {
  const sm = stringMatcher(m);
  // An empty match (or regex "*") means "header present" in Istio.
  const present = !sm || m.regex === '*';
  return compact({
    name,
    ...(present ? { present_match: true } : { string_match: sm }),
    invert_match: invert || undefined,
    treat_missing_header_as_empty: invert && !present ? true : undefined,
  });
}

/** Whether a match can apply to this proxy at all (sourceLabels, sourceNamespace, gateways, port: generation-time). */
function matchApplies(m: HTTPMatchRequest, ctx: RouteContext): boolean {
  if (m.port !== undefined && m.port !== ctx.port) return false;
  if (m.gateways && m.gateways.length > 0) return m.gateways.includes(MESH_GATEWAY);
  if (m.sourceNamespace && m.sourceNamespace !== ctx.view.namespace()) return false;
  if (m.sourceLabels && !ctx.view.selectedBy(m.sourceLabels)) return false;
  return true;
}

function translateMatch(m: HTTPMatchRequest | undefined, ctx: RouteContext): Json | undefined {
  const out: Json = {};
  const uri = m?.uri;
  if (uri?.exact !== undefined) out.path = uri.exact;
  else if (uri?.prefix !== undefined) out.prefix = uri.prefix;
  else if (uri?.regex !== undefined) out.safe_regex = { regex: uri.regex };
  else out.prefix = '/';
  out.case_sensitive = { value: !(m?.ignoreUriCase ?? false) };
  const headers: Json[] = [];
  for (const name of Object.keys(m?.headers ?? {}).sort()) headers.push(headerMatcher(name.toLowerCase(), m!.headers![name]!, false));
  for (const name of Object.keys(m?.withoutHeaders ?? {}).sort()) headers.push(headerMatcher(name.toLowerCase(), m!.withoutHeaders![name]!, true));
  if (m?.method) headers.push(headerMatcher(':method', m.method, false));
  if (m?.authority) headers.push(headerMatcher(':authority', m.authority, false));
  if (m?.scheme) headers.push(headerMatcher(':scheme', m.scheme, false));
  if (headers.length > 0) out.headers = headers;
  const qp = Object.keys(m?.queryParams ?? {}).sort();
  if (qp.length > 0) {
    if (ctx.proxyless) {
      // gRFC A28: clients must ignore routes that match on query parameters; gRPC requests have none.
      ctx.note('route matches on queryParams, which gRPC requests cannot carry: route left out for proxyless gRPC');
      return undefined;
    }
    out.query_parameters = qp.map((name) => {
      const sm = stringMatcher(m!.queryParams![name]!);
      return sm ? { name, string_match: sm } : { name, present_match: true };
    });
  }
  return out;
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

function faultConfig(route: HTTPRoute, ctx: RouteContext): Json | undefined {
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

/** A match with no condition but its name, or only `uri.prefix: /`: nothing after it can match (istiod stops there). */
function matchesEverything(m: HTTPMatchRequest | undefined): boolean {
  if (!m) return true;
  const conditions = Object.keys(m).filter((k) => k !== 'name');
  return conditions.length === 0 || (conditions.length === 1 && m.uri?.prefix === '/');
}

/** One VirtualService HTTP route → zero or more Envoy routes (one per match); `catchAll` once one matches everything. */
export function translateHttpRoute(route: HTTPRoute, index: number, vs: IndexedVirtualService, ctx: RouteContext): { routes: Json[]; catchAll: boolean } {
  const vsNs = vs.object.metadata.namespace;
  const where = `VirtualService ${vsNs}/${vs.object.metadata.name} http[${index}]`;
  const note = (m: string) => ctx.note(`${where}: ${m}`);
  const local: RouteContext = { ...ctx, note };

  if (ctx.proxyless) {
    if (route.redirect || route.directResponse) {
      note(`${route.redirect ? 'redirect' : 'directResponse'} cannot be served by proxyless gRPC clients: route left out`);
      return { routes: [], catchAll: false };
    }
    if (route.mirror || route.mirrors) note('mirror is not supported by proxyless gRPC clients: left out');
    if (route.rewrite) note('rewrite is not supported by proxyless gRPC clients: left out');
    if (route.corsPolicy) note('corsPolicy is not supported by proxyless gRPC clients: left out');
  }
  if (route.delegate) {
    note('delegate VirtualServices are not supported yet: route left out');
    return { routes: [], catchAll: false };
  }
  const matches: Array<HTTPMatchRequest | undefined> = route.match && route.match.length > 0 ? route.match : [undefined];
  const routes: Json[] = [];
  let catchAll = false;
  const destinations = (route.route ?? []).filter((d) => (d.weight ?? 1) > 0 || (route.route ?? []).length === 1);
  const hashPolicies = destinations.flatMap((d) => hashPolicyFor(d.destination, vsNs, local));

  const action: Json = {};
  if (destinations.length === 1) action.cluster = destinationCluster(destinations[0]!.destination, vsNs, local);
  else if (destinations.length > 1) {
    action.weighted_clusters = {
      clusters: destinations.map((d) => ({ name: destinationCluster(d.destination, vsNs, local), weight: { value: d.weight ?? 0 } })),
    };
  }
  action.timeout = route.timeout ? duration(route.timeout) : ZERO_DURATION;
  if (ctx.proxyless && route.timeout) action.max_stream_duration = { max_stream_duration: duration(route.timeout) };
  const retry = retryPolicy(route.retries, hashPolicies.length > 0);
  if (retry) action.retry_policy = retry;
  if (hashPolicies.length > 0) action.hash_policy = hashPolicies;
  const fault = faultConfig(route, local);

  for (const m of matches) {
    if (m && !matchApplies(m, local)) continue;
    const match = translateMatch(m, local);
    if (!match) continue;
    const name = [route.name, m?.name].filter(Boolean).join('.') || undefined;
    const r: Json = compact({
      name,
      match,
      route: destinations.length > 0 ? action : undefined,
      redirect: !ctx.proxyless && route.redirect ? redirectAction(route) : undefined,
      direct_response: !ctx.proxyless && route.directResponse ? directResponse(route) : undefined,
      metadata: { filter_metadata: { istio: struct({ config: `/apis/networking.istio.io/v1/namespaces/${vsNs}/virtual-service/${vs.object.metadata.name}` }) } },
      typed_per_filter_config: fault ? { [FAULT_FILTER]: fault } : undefined,
    });
    if (!r.route && !r.redirect && !r.direct_response) continue;
    routes.push(r);
    if (matchesEverything(m)) {
      catchAll = true;
      break;
    }
  }
  return { routes, catchAll };
}

function redirectAction(route: HTTPRoute): Json {
  const r = route.redirect!;
  const codes: Record<number, string> = { 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };
  return compact({
    host_redirect: r.authority,
    path_redirect: r.uri,
    scheme_redirect: r.scheme,
    port_redirect: r.port,
    response_code: codes[r.redirectCode ?? 301] ?? 'MOVED_PERMANENTLY',
  });
}

function directResponse(route: HTTPRoute): Json {
  const d = route.directResponse!;
  const body = d.body?.string !== undefined ? { inline_string: d.body.string } : d.body?.bytes !== undefined ? { inline_bytes: d.body.bytes } : undefined;
  return compact({ status: d.status, body });
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
      retry_policy: defaultRetryPolicy(hash.length > 0),
      hash_policy: hash.length > 0 ? hash : undefined,
    }),
  });
}
