/**
 * What a chosen Envoy route says, read back from the generated RouteConfiguration: which VirtualService wrote it
 * (`metadata.filter_metadata.istio.config`, as istiod sets it), its match, and the per-request policy — timeout,
 * retries, fault (`typed_per_filter_config["envoy.filters.http.fault"]`), mirrors, rewrites, consistent-hash keys.
 */
import type { HTTPMatchRequest, VirtualServiceSpec } from '../config/kinds/virtual-service.ts';
import type { Json } from './simulate.ts';

export interface ConfigRef {
  kind: string;
  namespace: string;
  name: string;
}

const CONFIG_PATH = /^\/apis\/[^/]+\/[^/]+\/namespaces\/([^/]+)\/([^/]+)\/([^/]+)$/;
const KINDS: Record<string, string> = {
  'virtual-service': 'VirtualService',
  'destination-rule': 'DestinationRule',
  'envoy-filter': 'EnvoyFilter',
  sidecar: 'Sidecar',
  gateway: 'Gateway',
};

/** `/apis/networking.istio.io/v1/namespaces/<ns>/virtual-service/<name>` → VirtualService ns/name. */
export function parseConfigPath(path: unknown): ConfigRef | undefined {
  if (typeof path !== 'string') return undefined;
  const m = CONFIG_PATH.exec(path);
  if (!m) return undefined;
  return { kind: KINDS[m[2]!] ?? m[2]!, namespace: m[1]!, name: m[3]! };
}

export const istioMetadata = (o: Json | undefined): Json | undefined => o?.metadata?.filter_metadata?.istio;

/** Envoy durations decode as `"2s"`, `"0.500s"`: printed as 2s, 500ms, 1.5s. */
export function formatDuration(d: unknown): string | undefined {
  if (d === undefined || d === null) return undefined;
  const text = typeof d === 'string' ? d : typeof d === 'object' ? `${(d as Json).seconds ?? 0}.${String((d as Json).nanos ?? 0).padStart(9, '0')}s` : String(d);
  const sec = Number(text.replace(/s$/, ''));
  if (!Number.isFinite(sec)) return text;
  if (sec !== 0 && sec < 1) return `${Math.round(sec * 1000)}ms`;
  if (sec >= 3600 && sec % 3600 === 0) return `${sec / 3600}h`;
  if (sec >= 60 && sec % 60 === 0) return `${sec / 60}m`;
  return `${Number(sec.toFixed(3))}s`;
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** FractionalPercent → percent. */
export function fractionalPercent(p: Json | undefined): number {
  if (!p) return 100;
  const d = DENOMINATORS[p.denominator ?? 'HUNDRED'] ?? 100;
  return Number((((p.numerator ?? 0) / d) * 100).toFixed(4));
}

function stringMatchText(sm: Json | undefined): string {
  if (!sm) return '';
  const ic = sm.ignore_case ? ' (any case)' : '';
  if (sm.exact !== undefined) return `=${sm.exact}${ic}`;
  if (sm.prefix !== undefined) return ` prefix ${sm.prefix}${ic}`;
  if (sm.suffix !== undefined) return ` suffix ${sm.suffix}${ic}`;
  if (sm.contains !== undefined) return ` contains ${sm.contains}${ic}`;
  if (sm.safe_regex) return ` ~ /${sm.safe_regex.regex}/`;
  return JSON.stringify(sm);
}

/** An Envoy RouteMatch in words: `headers end-user=jason`, `prefix /api`, `any path`. */
export function describeMatch(match: Json | undefined): string {
  const m = match ?? {};
  const parts: string[] = [];
  const headers: string[] = [];
  for (const h of (m.headers ?? []) as Json[]) {
    const neg = h.invert_match ? 'not ' : '';
    let text: string;
    if (h.present_match !== undefined) text = `${h.name} ${h.present_match === false ? 'absent' : 'present'}`;
    else text = `${h.name}${stringMatchText(h.string_match)}`;
    if (h.name === ':method') parts.push(`${neg}method${stringMatchText(h.string_match).replace(/^=/, ' ')}`);
    else if (h.name === ':authority') parts.push(`${neg}authority${stringMatchText(h.string_match)}`);
    else headers.push(`${neg}${text}`);
  }
  if (headers.length > 0) parts.unshift(`headers ${headers.join(', ')}`);
  if (m.path !== undefined) parts.push(`path ${m.path}`);
  else if (m.safe_regex) parts.push(`path ~ /${m.safe_regex.regex}/`);
  else if (m.path_separated_prefix !== undefined) parts.push(`prefix ${m.path_separated_prefix}/`);
  else if (m.prefix !== undefined && m.prefix !== '/') parts.push(`prefix ${m.prefix}`);
  for (const q of (m.query_parameters ?? []) as Json[]) parts.push(`query ${q.name}${q.present_match ? ' present' : stringMatchText(q.string_match)}`);
  if (m.case_sensitive === false || m.case_sensitive?.value === false) parts.push('path case-insensitive');
  return parts.length > 0 ? parts.join(', ') : 'any request';
}

/* ------------------------------------------------------------- VirtualService rule */

function envoySignature(match: Json): string {
  const uri = match.path !== undefined ? `path:${match.path}` : match.safe_regex ? `regex:${match.safe_regex.regex}` : `prefix:${match.path_separated_prefix !== undefined ? `${match.path_separated_prefix}/` : (match.prefix ?? '/')}`;
  const headers = ((match.headers ?? []) as Json[]).map((h) => `${h.invert_match ? '!' : ''}${h.name}`).sort();
  const query = ((match.query_parameters ?? []) as Json[]).map((q) => q.name as string).sort();
  return `${uri}|${headers.join(',')}|${query.join(',')}`;
}

function istioSignature(m: HTTPMatchRequest | undefined): string {
  const uri = m?.uri?.exact !== undefined ? `path:${m.uri.exact}` : m?.uri?.regex !== undefined ? `regex:${m.uri.regex}` : `prefix:${m?.uri?.prefix ?? '/'}`;
  const headers = [
    ...Object.keys(m?.headers ?? {}).map((h) => h.toLowerCase()),
    ...Object.keys(m?.withoutHeaders ?? {}).map((h) => `!${h.toLowerCase()}`),
    ...(m?.method ? [':method'] : []),
    ...(m?.authority ? [':authority'] : []),
    ...(m?.scheme ? [':scheme'] : []),
  ].sort();
  return `${uri}|${headers.join(',')}|${Object.keys(m?.queryParams ?? {}).sort().join(',')}`;
}

/**
 * Which `http[i]` of the VirtualService wrote `route`. The generated route carries only the VirtualService's name, so
 * the routes that VirtualService put in the virtual host (in order, up to the chosen one) are aligned with its HTTP
 * rules' matches by shape (uri kind and value, header names, query names); a match left out for this proxy (another
 * gateway, other source labels) is skipped over. Undefined when they cannot be aligned (e.g. delegated routes).
 */
export function virtualServiceRule(vs: VirtualServiceSpec, vhostRoutes: readonly Json[], route: Json): { index: number; name?: string } | undefined {
  const config = istioMetadata(route)?.config;
  const mine = vhostRoutes.filter((r) => istioMetadata(r)?.config === config);
  const upTo = mine.indexOf(route);
  if (upTo < 0) return undefined;
  const slots: Array<{ index: number; sig: string; name?: string }> = [];
  (vs.http ?? []).forEach((rule, index) => {
    const matches = rule.match && rule.match.length > 0 ? rule.match : [undefined];
    for (const m of matches) slots.push({ index, sig: istioSignature(m), ...(rule.name ? { name: rule.name } : {}) });
  });
  let at = 0;
  let found: (typeof slots)[number] | undefined;
  for (const r of mine.slice(0, upTo + 1)) {
    const sig = envoySignature(r.match ?? {});
    while (at < slots.length && slots[at]!.sig !== sig) at++;
    if (at >= slots.length) return undefined;
    found = slots[at++];
  }
  return found ? { index: found.index, ...(found.name ? { name: found.name } : {}) } : undefined;
}

/* ------------------------------------------------------------- per-request policy */

export interface FaultInfo {
  abort?: { httpStatus?: number; grpcStatus?: number; percent: number };
  delay?: { fixed: string; percent: number };
}

export interface RoutePolicy {
  /** undefined = Envoy's default (15s); 'none' = disabled (0s). */
  timeout?: string;
  retries?: { attempts: number; on: string; perTryTimeout?: string; statusCodes?: number[] };
  fault?: FaultInfo;
  mirrors?: Array<{ cluster: string; percent: number }>;
  rewrite?: string[];
  hashOn?: string[];
  headerChanges?: string[];
}

/** The route's own per-request policy. `proxyless`: gRPC reads the timeout from max_stream_duration (gRFC A31). */
export function routePolicy(route: Json, proxyless: boolean): RoutePolicy {
  const action = (route.route ?? {}) as Json;
  const out: RoutePolicy = {};
  const timeout = proxyless ? action.max_stream_duration?.max_stream_duration : action.timeout;
  if (timeout !== undefined) out.timeout = formatDuration(timeout) === '0s' ? 'none' : formatDuration(timeout)!;
  else if (proxyless) out.timeout = 'none';
  const rp = action.retry_policy as Json | undefined;
  if (rp) {
    out.retries = {
      attempts: rp.num_retries ?? 1,
      on: rp.retry_on ?? '',
      ...(rp.per_try_timeout ? { perTryTimeout: formatDuration(rp.per_try_timeout)! } : {}),
      ...(rp.retriable_status_codes?.length ? { statusCodes: rp.retriable_status_codes } : {}),
    };
  }
  const fault = route.typed_per_filter_config?.['envoy.filters.http.fault'] as Json | undefined;
  if (fault && (fault.abort || fault.delay)) {
    const f: FaultInfo = {};
    if (fault.abort) {
      f.abort = { percent: fractionalPercent(fault.abort.percentage) };
      if (fault.abort.http_status !== undefined) f.abort.httpStatus = fault.abort.http_status;
      if (fault.abort.grpc_status !== undefined) f.abort.grpcStatus = fault.abort.grpc_status;
    }
    if (fault.delay) f.delay = { fixed: formatDuration(fault.delay.fixed_delay) ?? 'header-controlled', percent: fractionalPercent(fault.delay.percentage) };
    out.fault = f;
  }
  const mirrors = (action.request_mirror_policies ?? []) as Json[];
  if (mirrors.length > 0) out.mirrors = mirrors.map((m) => ({ cluster: m.cluster, percent: m.runtime_fraction ? fractionalPercent(m.runtime_fraction.default_value) : 100 }));
  const rewrite: string[] = [];
  if (action.prefix_rewrite !== undefined) rewrite.push(`path prefix → ${action.prefix_rewrite}`);
  if (action.regex_rewrite) rewrite.push(`path /${action.regex_rewrite.pattern?.regex}/ → ${action.regex_rewrite.substitution}`);
  if (action.host_rewrite_literal) rewrite.push(`authority → ${action.host_rewrite_literal}`);
  if (rewrite.length > 0) out.rewrite = rewrite;
  const hash = ((action.hash_policy ?? []) as Json[]).map((h) =>
    h.header ? `header ${h.header.header_name}` : h.cookie ? `cookie ${h.cookie.name}` : h.connection_properties?.source_ip ? 'source IP' : h.query_parameter ? `query ${h.query_parameter.name}` : h.filter_state ? `filter state ${h.filter_state.key}` : JSON.stringify(h),
  );
  if (hash.length > 0) out.hashOn = [...new Set(hash)];
  const changes = [
    ...((route.request_headers_to_add ?? []) as Json[]).map((h) => `request +${h.header?.key}: ${h.header?.value}`),
    ...((route.request_headers_to_remove ?? []) as string[]).map((h) => `request -${h}`),
    ...((route.response_headers_to_add ?? []) as Json[]).map((h) => `response +${h.header?.key}: ${h.header?.value}`),
  ];
  if (changes.length > 0) out.headerChanges = changes;
  return out;
}

/** gRPC status names for fault aborts (grpc/status codes). */
const GRPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

export function faultText(f: FaultInfo): string {
  const parts: string[] = [];
  if (f.delay) parts.push(`delay ${f.delay.fixed} on ${f.delay.percent}%`);
  if (f.abort) {
    const what = f.abort.grpcStatus !== undefined ? `gRPC ${GRPC_CODES[f.abort.grpcStatus] ?? f.abort.grpcStatus}` : `HTTP ${f.abort.httpStatus ?? '(from header)'}`;
    parts.push(`abort ${f.abort.percent}% ${what}`);
  }
  return parts.join(', ');
}

export function routePolicyText(p: RoutePolicy): string {
  const parts: string[] = [];
  parts.push(p.timeout === undefined ? 'timeout 15s (Envoy default)' : p.timeout === 'none' ? 'no timeout' : `timeout ${p.timeout}`);
  if (p.retries) {
    const codes = p.retries.statusCodes ? ` (status ${p.retries.statusCodes.join(', ')})` : '';
    parts.push(`retries ${p.retries.attempts}× on ${p.retries.on || 'nothing'}${codes}${p.retries.perTryTimeout ? `, ${p.retries.perTryTimeout} per try` : ''}`);
  } else {
    parts.push('no retries');
  }
  parts.push(p.fault ? `fault: ${faultText(p.fault)}` : 'no fault');
  if (p.mirrors) parts.push(`mirror ${p.mirrors.map((m) => `${m.percent}% to ${m.cluster}`).join(', ')}`);
  if (p.rewrite) parts.push(`rewrite ${p.rewrite.join(', ')}`);
  if (p.hashOn) parts.push(`consistent hash on ${p.hashOn.join(', ')}`);
  if (p.headerChanges) parts.push(`headers ${p.headerChanges.join('; ')}`);
  return parts.join(', ');
}
