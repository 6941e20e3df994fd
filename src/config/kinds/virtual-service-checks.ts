/**
 * VirtualService semantic rules, beyond the schema (istio/istio pkg/config/validation: ValidateVirtualService,
 * virtualservice.go). The schema and types live in virtual-service.ts.
 */
import type { FieldError } from '../../shared/errors.ts';
import {
  checkDestination, checkDuration, checkExportTo, checkGatewayNames, checkLabels, checkPort, collector, headerNameError,
  hostsOverlap, ipSubnetError, isDns1123Label, isIPAddress, keyPath, wildcardDomainError, type Report,
} from './checks.ts';
import type {
  Headers, HTTPFaultInjection, HTTPMatchRequest, HTTPRetry, HTTPRoute, L4MatchAttributes, RouteDestination, StringMatch,
  TLSMatchAttributes, VirtualServiceSpec,
} from './virtual-service.ts';

/** The `x-envoy-retry-on` / `x-envoy-retry-grpc-on` policies Istio accepts (supportedRetryOnPolicies). */
const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'retriable-4xx', 'refused-stream',
  'retriable-status-codes', 'retriable-headers', 'envoy-ratelimited', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);
/** HTTP status codes with a Go `http.StatusText`; Istio accepts these as retryOn entries. */
const HTTP_STATUS_CODES = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
  ...Array.from({ length: 19 }, (_, i) => 400 + i), 421, 422, 423, 424, 425, 426, 428, 429, 431, 451,
  500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);
/** grpc.SupportedGRPCStatus: the code names Istio accepts for fault.abort.grpcStatus (numbers are not), → codes. */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE']);
const JWT_CLAIM_PREFIX = '@request.auth.claims.';
const MESH = 'mesh';

/** validateHTTPRouteDestinations / validateRouteDestinations: weights >= 0; several destinations need a total > 0. */
function checkDestinations(report: Report, path: string, routes: ReadonlyArray<RouteDestination & { headers?: Headers }>): void {
  let total = 0;
  routes.forEach((r, i) => {
    checkDestination(report, `${path}[${i}].destination`, r.destination);
    if (r.headers) checkHeaderOps(report, `${path}[${i}].headers`, r.headers);
    if ((r.weight ?? 0) < 0) report(`${path}[${i}].weight`, `weight must be non-negative, got ${r.weight}`);
    total += r.weight ?? 0;
  });
  if (routes.length > 1 && total === 0) report(path, 'total destination weight is 0; give at least one destination a weight');
}

function checkHeaderOps(report: Report, path: string, h: Headers): void {
  for (const side of ['request', 'response'] as const) {
    const ops = h[side];
    if (!ops) continue;
    const p = `${path}.${side}`;
    for (const op of ['set', 'add'] as const) {
      for (const [name, value] of Object.entries(ops[op] ?? {})) {
        const lower = name.toLowerCase();
        // The request :authority/host may be set (validateAuthorityRewrite); other pseudo-headers never.
        if (name === '') report(`${p}.${op}`, 'header name cannot be empty');
        else if (side === 'response' && lower === 'host') report(`${p}.${op}`, `cannot set the "${name}" header`);
        else if (name.startsWith(':') && !(side === 'request' && lower === ':authority')) report(`${p}.${op}`, `invalid header "${name}": header cannot have ":" prefix`);
        if (/[\x00-\x08\x0A-\x1F\x7F]/.test(value)) report(`${p}.${op}`, `header value for "${name}" has control characters`);
      }
    }
    (ops.remove ?? []).forEach((name, i) => {
      if (name === '' || name.startsWith(':') || name.toLowerCase() === 'host') report(`${p}.remove[${i}]`, `cannot remove header "${name}"`);
    });
  }
}

function checkStringMatch(report: Report, path: string, m: StringMatch | undefined, forDelegation: boolean): void {
  if (m?.regex === undefined) return;
  if (m.regex === '') report(`${path}.regex`, 'regex string match should not be empty');
  else if (m.regex.length > 1024) report(`${path}.regex`, 'regex is too large, max length allowed is 1024');
  if (forDelegation) report(`${path}.regex`, 'regex match is not supported in delegating or delegate routes');
}

function checkMatch(report: Report, path: string, m: HTTPMatchRequest, forDelegation: boolean, gatewayBound: boolean): void {
  for (const f of ['uri', 'scheme', 'method', 'authority'] as const) checkStringMatch(report, `${path}.${f}`, m[f], forDelegation);
  for (const f of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    for (const [name, sm] of Object.entries(m[f] ?? {})) {
      const p = keyPath(`${path}.${f}`, name);
      checkStringMatch(report, p, sm, forDelegation);
      if (f === 'queryParams') continue;
      if (name.startsWith(JWT_CLAIM_PREFIX)) {
        if (!gatewayBound) report(p, 'JWT claim based routing is only supported for virtual services bound to a gateway');
      } else {
        const err = headerNameError(name);
        if (err) report(p, err);
      }
    }
  }
  if (m.port) checkPort(report, `${path}.port`, m.port);
  checkLabels(report, `${path}.sourceLabels`, m.sourceLabels);
  checkGatewayNames(report, `${path}.gateways`, m.gateways);
  if (m.sourceNamespace && !isDns1123Label(m.sourceNamespace)) report(`${path}.sourceNamespace`, `invalid namespace "${m.sourceNamespace}"`);
}

function checkPercentage(report: Report, path: string, value: number | undefined): void {
  // validatePercentage: 0, or within [0.0001, 100] (Envoy's fractional percent resolution).
  if (value !== undefined && value > 0 && value < 0.0001) report(path, `must be 0 or between 0.0001 and 100, got ${value}`);
}

function checkFault(report: Report, path: string, f: HTTPFaultInjection): void {
  if (!f.abort && !f.delay) report(path, 'fault injection needs an abort and/or a delay');
  if (f.abort) {
    const a = f.abort;
    const p = `${path}.abort`;
    checkPercentage(report, `${p}.percentage.value`, a.percentage?.value);
    const types = (['httpStatus', 'grpcStatus', 'http2Error'] as const).filter((k) => a[k] !== undefined);
    // No error type is accepted, as Istio does (it only warns); translation then leaves the abort out with a note.
    if (types.length > 1) report(p, `only one of httpStatus, grpcStatus, http2Error may be set, got ${types.join(' and ')}`);
    if (a.httpStatus !== undefined && (a.httpStatus < 200 || a.httpStatus > 600)) report(`${p}.httpStatus`, `HTTP status must be between 200 and 600, got ${a.httpStatus}`);
    if (a.grpcStatus !== undefined && !Object.hasOwn(GRPC_STATUS_CODES, a.grpcStatus)) {
      report(`${p}.grpcStatus`, `unsupported gRPC status "${a.grpcStatus}"; use a code name such as UNAVAILABLE or NOT_FOUND`);
    }
    if (a.http2Error !== undefined) report(`${p}.http2Error`, 'HTTP/2 abort fault injection is not supported');
  }
  if (f.delay) {
    const d = f.delay;
    const p = `${path}.delay`;
    checkPercentage(report, `${p}.percentage.value`, d.percentage?.value);
    if (d.percent !== undefined && (d.percent < 0 || d.percent > 100)) report(`${p}.percent`, `must be between 0 and 100, got ${d.percent}`);
    if (d.fixedDelay !== undefined && d.exponentialDelay !== undefined) report(p, 'only one of fixedDelay, exponentialDelay may be set');
    if (d.exponentialDelay !== undefined) report(`${p}.exponentialDelay`, 'exponentialDelay is not supported');
    // No delay type is accepted, as Istio does; translation leaves such a delay out with a note.
    checkDuration(report, `${p}.fixedDelay`, d.fixedDelay);
  }
}

function checkRetries(report: Report, path: string, r: HTTPRetry): void {
  const attempts = r.attempts ?? 0;
  if (attempts < 0) report(`${path}.attempts`, `attempts cannot be negative, got ${attempts}`);
  if (attempts === 0 && (r.perTryTimeout !== undefined || r.retryOn !== undefined || r.retryRemoteLocalities !== undefined)) {
    report(`${path}.attempts`, 'retry policy is configured but attempts is 0 (retries disabled)');
  }
  checkDuration(report, `${path}.perTryTimeout`, r.perTryTimeout);
  checkDuration(report, `${path}.backoff`, r.backoff);
  if (r.retryOn) {
    for (const policy of r.retryOn.split(',')) {
      const asCode = /^\d+$/.test(policy) ? Number(policy) : NaN;
      if (!RETRY_ON.has(policy) && !HTTP_STATUS_CODES.has(asCode)) report(`${path}.retryOn`, `"${policy}" is not a valid retryOn policy`);
    }
  }
}

function checkHTTPRoute(report: Report, p: string, h: HTTPRoute, isDelegateVS: boolean, gatewayBound: boolean): void {
  const kind = isDelegateVS ? 'delegate' : h.delegate ? 'root' : 'independent';
  // validateHTTPRouteConflict: exactly one action — route, redirect, directResponse, or (root routes) delegate.
  if (kind === 'root') {
    for (const f of ['route', 'redirect', 'directResponse'] as const) if (h[f]) report(`${p}.${f}`, `a route with delegate must not specify ${f}`);
    if (!h.delegate?.name) report(`${p}.delegate.name`, 'delegate name is required');
  } else {
    if (kind === 'delegate' && h.delegate) report(`${p}.delegate`, 'a delegate virtual service cannot delegate again');
    const actions = (['route', 'redirect', 'directResponse'] as const).filter((f) => h[f] !== undefined && !(f === 'route' && h.route?.length === 0));
    if (actions.length === 0) report(p, 'HTTP route needs one of route, redirect, directResponse or delegate');
    if (actions.length > 1) report(p, `HTTP route cannot contain both ${actions.join(' and ')}`);
    if ((h.redirect || h.directResponse) && h.fault) report(`${p}.fault`, 'fault cannot be combined with redirect or directResponse');
    if ((h.redirect || h.directResponse) && h.rewrite) report(`${p}.rewrite`, 'rewrite cannot be combined with redirect or directResponse');
  }
  h.match?.forEach((m, i) => checkMatch(report, `${p}.match[${i}]`, m, kind !== 'independent', gatewayBound));
  if (h.route) checkDestinations(report, `${p}.route`, h.route);
  if (h.headers) checkHeaderOps(report, `${p}.headers`, h.headers);
  if (h.rewrite?.authority !== undefined && Object.keys(h.headers?.request?.set ?? {}).some((k) => [':authority', 'host'].includes(k.toLowerCase()))) {
    report(`${p}.rewrite.authority`, 'authority is rewritten twice (rewrite.authority and a request header)');
  }
  if (h.corsPolicy) {
    const c = h.corsPolicy;
    c.allowOrigins?.forEach((o, i) => {
      if (!o.exact && !o.prefix && !o.regex) report(`${p}.corsPolicy.allowOrigins[${i}]`, 'allowOrigins entry needs a non-empty exact, prefix or regex');
    });
    c.allowMethods?.forEach((m, i) => {
      if (!HTTP_METHODS.has(m)) report(`${p}.corsPolicy.allowMethods[${i}]`, `"${m}" is not a supported HTTP method`);
    });
    for (const f of ['allowHeaders', 'exposeHeaders'] as const) {
      c[f]?.forEach((n, i) => {
        const err = n === '*' ? undefined : headerNameError(n);
        if (err) report(`${p}.corsPolicy.${f}[${i}]`, err);
      });
    }
    checkDuration(report, `${p}.corsPolicy.maxAge`, c.maxAge);
  }
  if (h.fault) checkFault(report, `${p}.fault`, h.fault);
  for (const f of ['mirrorPercent', 'mirror_percent'] as const) {
    const v = h[f];
    if (v !== undefined && v > 100) report(`${p}.${f}`, `must be between 0 and 100, got ${v}`);
  }
  checkDestination(report, `${p}.mirror`, h.mirror);
  h.mirrors?.forEach((m, i) => checkDestination(report, `${p}.mirrors[${i}].destination`, m.destination));
  if (h.redirect) {
    const r = h.redirect;
    if (!r.uri && !r.authority && r.port === undefined && !r.derivePort && !r.scheme) report(`${p}.redirect`, 'redirect must specify uri, authority, scheme, port or derivePort');
    if (r.port !== undefined && r.derivePort !== undefined) report(`${p}.redirect`, 'only one of port, derivePort may be set');
    if (r.redirectCode !== undefined && r.redirectCode !== 0 && (r.redirectCode < 300 || r.redirectCode > 399)) report(`${p}.redirect.redirectCode`, `redirect code must be 3xx, got ${r.redirectCode}`);
    if (r.scheme && r.scheme !== 'http' && r.scheme !== 'https') report(`${p}.redirect.scheme`, `scheme must be "http" or "https", got "${r.scheme}"`);
    if (r.port) checkPort(report, `${p}.redirect.port`, r.port);
  }
  if (h.directResponse) {
    const d = h.directResponse;
    if (d.status < 200 || d.status > 600) report(`${p}.directResponse.status`, `HTTP status must be between 200 and 600, got ${d.status}`);
    const size = d.body?.string?.length ?? Math.floor(((d.body?.bytes?.length ?? 0) * 3) / 4);
    if (size > 1024 * 1024) report(`${p}.directResponse.body`, 'direct response body must be less than 1MB');
  }
  if (h.retries) checkRetries(report, `${p}.retries`, h.retries);
  if (h.rewrite) {
    const w = h.rewrite;
    if (w.uri !== undefined && w.uriRegexRewrite) report(`${p}.rewrite`, 'only one of uri, uriRegexRewrite may be set');
    if (!w.uri && !w.uriRegexRewrite && !w.authority) report(`${p}.rewrite`, 'rewrite must specify uri, uriRegexRewrite or authority');
    if (w.uriRegexRewrite && (!w.uriRegexRewrite.match || !w.uriRegexRewrite.rewrite)) report(`${p}.rewrite.uriRegexRewrite`, 'uriRegexRewrite needs both match and rewrite');
  }
  checkDuration(report, `${p}.timeout`, h.timeout);
}

/** host.Name.SubsetOf: every name `a` matches is also matched by `b`. */
function hostSubsetOf(a: string, b: string): boolean {
  if (b === '*' || a === b) return true;
  if (!b.startsWith('*')) return false;
  return a.endsWith(b.slice(1)) && (!a.startsWith('*') || a.length >= b.length);
}

function checkL4Match(report: Report, p: string, m: L4MatchAttributes | TLSMatchAttributes): void {
  m.destinationSubnets?.forEach((s, i) => {
    const err = ipSubnetError(s);
    if (err) report(`${p}.destinationSubnets[${i}]`, err);
  });
  if (m.port) checkPort(report, `${p}.port`, m.port);
  checkLabels(report, `${p}.sourceLabels`, m.sourceLabels);
  checkGatewayNames(report, `${p}.gateways`, m.gateways);
}

export function checkVirtualService(spec: VirtualServiceSpec, meta: { name: string; namespace: string }): FieldError[] {
  const { errors, report } = collector();
  const hosts = spec.hosts ?? [];
  const isDelegateVS = hosts.length === 0; // a VS without hosts can only be used as a delegate
  if (isDelegateVS) {
    if (spec.gateways?.length) report('spec.gateways', 'a delegate virtual service (no hosts) must not name gateways');
    if (spec.tls?.length) report('spec.tls', 'a delegate virtual service (no hosts) cannot have tls routes');
    if (spec.tcp?.length) report('spec.tcp', 'a delegate virtual service (no hosts) cannot have tcp routes');
  }
  checkGatewayNames(report, 'spec.gateways', spec.gateways);
  // Bound to gateways only when gateways are listed and `mesh` is not among them.
  const gatewayBound = !!spec.gateways?.length && !spec.gateways.includes(MESH);
  let hostsValid = true;
  hosts.forEach((h, i) => {
    const err = wildcardDomainError(h);
    if (err && !isIPAddress(h)) {
      report(`spec.hosts[${i}]`, err);
      hostsValid = false;
    } else if (!gatewayBound && h === '*') {
      report(`spec.hosts[${i}]`, 'wildcard host * is not allowed for virtual services bound to the mesh');
      hostsValid = false;
    }
  });
  if (hostsValid) {
    for (let i = 0; i < hosts.length; i++) {
      for (let j = i + 1; j < hosts.length; j++) {
        if (hostsOverlap(hosts[i] as string, hosts[j] as string)) report(`spec.hosts[${j}]`, `duplicate hosts in virtual service: ${hosts[i]} & ${hosts[j]}`);
      }
    }
  }
  if (!spec.http?.length && !spec.tcp?.length && !spec.tls?.length) report('spec', 'http, tcp or tls must be provided in virtual service');
  spec.http?.forEach((h, i) => checkHTTPRoute(report, `spec.http[${i}]`, h, isDelegateVS, gatewayBound));
  spec.tls?.forEach((t, i) => {
    const p = `spec.tls[${i}]`;
    if (t.match.length === 0) report(`${p}.match`, 'TLS route must have at least one match condition');
    t.match.forEach((m, j) => {
      if (m.sniHosts.length === 0) report(`${p}.match[${j}].sniHosts`, 'TLS match must have at least one SNI host');
      m.sniHosts.forEach((sni, k) => {
        const err = wildcardDomainError(sni);
        if (err) {
          if (!isIPAddress(sni)) report(`${p}.match[${j}].sniHosts[${k}]`, err);
        } else if (!hosts.some((h) => hostSubsetOf(sni, h))) {
          report(`${p}.match[${j}].sniHosts[${k}]`, `SNI host "${sni}" is not a compatible subset of any of the virtual service hosts`);
        }
      });
      checkL4Match(report, `${p}.match[${j}]`, m);
    });
    if (!t.route?.length) report(`${p}.route`, 'TLS route is required');
    else checkDestinations(report, `${p}.route`, t.route);
  });
  spec.tcp?.forEach((t, i) => {
    const p = `spec.tcp[${i}]`;
    t.match?.forEach((m, j) => checkL4Match(report, `${p}.match[${j}]`, m));
    if (!t.route?.length) report(`${p}.route`, 'TCP route is required');
    else checkDestinations(report, `${p}.route`, t.route);
  });
  checkExportTo(report, 'spec.exportTo', meta.namespace, spec.exportTo, false);
  return errors;
}
