/**
 * An evaluator of generated Envoy RBAC config: `mizzen explain`'s authorization decision, and behavioural tests ("is
 * this request allowed?") that survive refactors of the JSON. It implements Envoy's semantics for what mizzen (and
 * istiod) generate:
 * - the HCM's path handling before any HTTP filter sees `:path` (ConnectionManagerUtility::maybeNormalizePath):
 *   non-relative paths refused (404), `path_with_escaped_slashes_action` (%2F/%5C), `normalize_path` (Chromium's
 *   path canonicalisation: `\` → `/`, percent-decoding of unreserved characters only, dot segments incl. `%2e`,
 *   `%00` refused with 400), then `merge_slashes`;
 * - the RBAC filters in chain order (`envoy.filters.http.rbac`, `envoy.filters.network.rbac`): `rules` enforce
 *   (ALLOW: some policy must match; DENY: none may; LOG: never blocks), `shadow_rules` only recorded; a policy matches
 *   when some permission and some principal match;
 * - the matchers: and/or/not, any, header (Envoy joins a repeated header's values with `,`; a missing header never
 *   matches except `present_match: false`), url_path (query and fragment stripped), uri_template, destination ip/port,
 *   requested_server_name, metadata (jwt_authn payload), authenticated (peer certificate URI SAN; plaintext never
 *   matches), direct_remote_ip / remote_ip, StringMatcher with ignore_case and RE2 full-match regexes (re2-wasm).
 * Anything else (ext_authz, CEL conditions, custom matchers) throws, so a test never passes by ignoring config;
 * `explain` may instead skip filters it does not know (EvaluateOptions.onUnknownFilter) and say so.
 */
import { BlockList, isIP } from 'node:net';
import { createRequire } from 'node:module';

type Json = Record<string, any>;

export interface RbacRequest {
  /** `:path` exactly as sent on the wire (HTTP only). */
  path?: string;
  method?: string;
  /** `:authority` (Host). */
  host?: string;
  /** Other request headers; names case-insensitive; an array is a repeated header. */
  headers?: Record<string, string | string[]>;
  /** The peer certificate's SPIFFE URI SAN; undefined = plaintext (no peer certificate). */
  sourcePrincipal?: string;
  /** The downstream connection's peer address (direct_remote_ip). */
  sourceIp?: string;
  /** The original client address (remote_ip: XFF / PROXY protocol); defaults to sourceIp. */
  remoteIp?: string;
  destinationIp?: string;
  destinationPort?: number;
  /** TLS SNI. */
  sni?: string;
  /** The verified JWT payload jwt_authn put in dynamic metadata (`envoy.filters.http.jwt_authn` / `payload`). */
  jwtPayload?: Record<string, unknown>;
  /** Other dynamic metadata, by filter name. */
  metadata?: Record<string, Record<string, unknown>>;
}

export interface Decision {
  allowed: boolean;
  /** 200 allowed; 403 RBAC; 400/404 refused by the HCM before any filter; 307 UNESCAPE_AND_REDIRECT. */
  status: 200 | 403 | 400 | 404 | 307;
  /** Why: `<filter index>:<action>:<policy>` for RBAC, or the HCM's reason. */
  reason?: string;
  /** The path after the HCM's normalisation (what filters, routes and the backend see). */
  path?: string;
  /** Shadow (dry-run) results per filter index: matched policy or undefined. */
  shadow: Array<{ filter: number; action: string; matched?: string }>;
  /** AUDIT (LOG) policies that matched. */
  logged: string[];
  /** Every enforcing RBAC filter evaluated, in chain order, with the policy that matched (if any). */
  enforced: Array<{ filter: number; action: string; matched?: string }>;
}

export interface EvaluateOptions {
  /** Called for a filter that is neither RBAC nor known to be passive; without it such a filter throws. */
  onUnknownFilter?: (name: string) => void;
}

export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

/** The HCM fields that decide path handling, as mizzen's HCM builder emits them. */
export interface HcmPathOptions {
  normalize_path?: { value: boolean } | boolean;
  merge_slashes?: boolean;
  path_with_escaped_slashes_action?: string;
}

export function hcmPathOptions(mode: PathNormalization): HcmPathOptions {
  switch (mode) {
    case 'NONE':
      return { normalize_path: { value: false }, path_with_escaped_slashes_action: 'KEEP_UNCHANGED' };
    case 'BASE':
      return { normalize_path: { value: true }, path_with_escaped_slashes_action: 'KEEP_UNCHANGED' };
    case 'MERGE_SLASHES':
      return { normalize_path: { value: true }, merge_slashes: true, path_with_escaped_slashes_action: 'KEEP_UNCHANGED' };
    case 'DECODE_AND_MERGE_SLASHES':
      return { normalize_path: { value: true }, merge_slashes: true, path_with_escaped_slashes_action: 'UNESCAPE_AND_FORWARD' };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HCM path normalisation

export type NormalizedPath = { ok: true; path: string } | { ok: false; status: 400 | 404 | 307; reason: string; path?: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;

/** Chromium's CanonicalizePath as Envoy's normalize_path applies it to the path part (query untouched). */
function canonicalize(path: string): string | undefined {
  let out = '';
  const bytes = Buffer.from(path, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    const c = String.fromCharCode(b);
    if (c === '%' && i + 2 < bytes.length && HEX2.test(String.fromCharCode(bytes[i + 1] as number, bytes[i + 2] as number))) {
      const hex = String.fromCharCode(bytes[i + 1] as number, bytes[i + 2] as number);
      const v = parseInt(hex, 16);
      if (v === 0) return undefined; // %00: an invalid escape, the request is refused
      out += UNRESERVED.test(String.fromCharCode(v)) ? String.fromCharCode(v) : `%${hex}`; // other escapes kept as written
      i += 2;
    } else if (c === '%') {
      out += '%25';
    } else if (c === '\\') {
      out += '/';
    } else if (b <= 0x20 || b >= 0x7f || '"<>`{}'.includes(c)) {
      out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    } else {
      out += c;
    }
  }
  return removeDotSegments(out);
}

/** RFC 3986 §5.2.4 on an absolute path (Chromium keeps a trailing slash after `.`/`..`). */
function removeDotSegments(path: string): string {
  const segments = path.split('/').slice(1);
  const out: string[] = [];
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..' && out.length > 0) out.pop();
      if (last) out.push('');
    } else {
      out.push(s);
    }
  });
  return `/${out.join('/')}`;
}

/** ConnectionManagerUtility::maybeNormalizePath, in Envoy's order: escaped slashes, normalize_path, merge_slashes. */
export function normalizePath(raw: string, hcm: HcmPathOptions): NormalizedPath {
  if (!raw.startsWith('/')) return { ok: false, status: 404, reason: 'non-relative path refused by the HCM' };
  const q = raw.search(/[?#]/);
  let path = q >= 0 ? raw.slice(0, q) : raw;
  const rest = q >= 0 ? raw.slice(q) : '';
  const action = hcm.path_with_escaped_slashes_action ?? 'KEEP_UNCHANGED';
  if (action !== 'KEEP_UNCHANGED' && action !== 'IMPLEMENTATION_SPECIFIC_DEFAULT' && /%2f|%5c/i.test(path)) {
    const unescaped = path.replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
    if (action === 'REJECT_REQUEST') return { ok: false, status: 400, reason: 'escaped slash refused' };
    if (action === 'UNESCAPE_AND_REDIRECT') return { ok: false, status: 307, reason: 'redirect to the unescaped path', path: unescaped + rest };
    path = unescaped;
  }
  const normalize = typeof hcm.normalize_path === 'object' ? hcm.normalize_path.value : (hcm.normalize_path ?? false);
  if (normalize) {
    const c = canonicalize(path);
    if (c === undefined) return { ok: false, status: 400, reason: 'path refused by normalize_path' };
    path = c;
  }
  if (hcm.merge_slashes) path = path.replace(/\/{2,}/g, '/');
  return { ok: true, path: path + rest };
}

// ---------------------------------------------------------------------------------------------------------------
// Matchers

type Re2 = { test(s: string): boolean };
const re2Cache = new Map<string, Re2>();
const RE2 = (createRequire(import.meta.url)('re2-wasm') as { RE2: new (p: string, f: string) => Re2 }).RE2;

/** Envoy's safe_regex: RE2, full match. */
export function re2FullMatch(regex: string, value: string): boolean {
  let re = re2Cache.get(regex);
  if (!re) {
    re = new RE2(`^(?:${regex})$`, 'u');
    re2Cache.set(regex, re);
  }
  return re.test(value);
}

export function matchString(m: Json, value: string): boolean {
  const ic = m.ignore_case === true;
  const v = ic ? value.toLowerCase() : value;
  const cmp = (s: string) => (ic ? s.toLowerCase() : s);
  if ('exact' in m) return v === cmp(m.exact);
  if ('prefix' in m) return v.startsWith(cmp(m.prefix));
  if ('suffix' in m) return v.endsWith(cmp(m.suffix));
  if ('contains' in m) return v.includes(cmp(m.contains));
  if ('safe_regex' in m) return re2FullMatch(m.safe_regex.regex, value);
  throw new Error(`unsupported StringMatcher ${JSON.stringify(m)}`);
}

export interface Ctx {
  req: RbacRequest;
  /** The normalised :path (HTTP) or undefined (TCP). */
  path?: string;
  http: boolean;
}

function headerValue(ctx: Ctx, name: string): string | undefined {
  const n = name.toLowerCase();
  if (n === ':authority' || n === 'host') return ctx.req.host;
  if (n === ':method') return ctx.req.method;
  if (n === ':path') return ctx.path;
  if (n === ':scheme') return 'http';
  for (const [k, v] of Object.entries(ctx.req.headers ?? {})) if (k.toLowerCase() === n) return Array.isArray(v) ? v.join(',') : v;
  return undefined;
}

function matchHeader(h: Json, ctx: Ctx): boolean {
  if (!ctx.http) throw new Error(`header matcher ${h.name} on a network filter`);
  let value = headerValue(ctx, h.name);
  if ('present_match' in h) return (value !== undefined) === h.present_match !== (h.invert_match === true);
  if (value === undefined) {
    if (!h.treat_missing_header_as_empty) return false;
    value = '';
  }
  let m: boolean;
  if (h.string_match) m = matchString(h.string_match, value);
  else if ('exact_match' in h) m = value === h.exact_match;
  else if ('prefix_match' in h) m = value.startsWith(h.prefix_match);
  else if ('suffix_match' in h) m = value.endsWith(h.suffix_match);
  else if ('contains_match' in h) m = value.includes(h.contains_match);
  else if (h.safe_regex_match) m = re2FullMatch(h.safe_regex_match.regex, value);
  else throw new Error(`unsupported HeaderMatcher ${JSON.stringify(h)}`);
  return m !== (h.invert_match === true);
}

function matchCidr(c: Json, ip: string | undefined): boolean {
  if (!ip) return false;
  const family = isIP(ip);
  const prefixFamily = isIP(c.address_prefix);
  if (family === 0 || family !== prefixFamily) return false;
  const list = new BlockList();
  list.addSubnet(c.address_prefix, c.prefix_len?.value ?? (family === 4 ? 32 : 128), family === 4 ? 'ipv4' : 'ipv6');
  return list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

const stripQuery = (p: string) => p.split(/[?#]/)[0] as string;

function matchUrlPath(m: Json, ctx: Ctx): boolean {
  if (!ctx.http) throw new Error('url_path matcher on a network filter');
  if (ctx.path === undefined) return false;
  return matchString(m.path, stripQuery(ctx.path));
}

/** Envoy's uri_template: `*` one path segment, `**` any number of segments; literals as written. */
function matchUriTemplate(ext: Json, ctx: Ctx): boolean {
  if (!ctx.http) throw new Error('uri_template matcher on a network filter');
  const t: string = ext.typed_config?.path_template;
  if (!t || /[{}]/.test(t)) throw new Error(`unsupported uri template ${t}`);
  const lit = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=]";
  const regex = t
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? `${lit.slice(0, -1)}/]*` : part === '*' ? `${lit}+` : part.replace(/[\\.+*?()|[\]{}^$]/g, (c) => `\\${c}`)))
    .join('');
  return ctx.path !== undefined && re2FullMatch(regex, stripQuery(ctx.path));
}

function metadataOf(ctx: Ctx, filter: string): unknown {
  if (filter === 'envoy.filters.http.jwt_authn' && ctx.req.jwtPayload) return { payload: ctx.req.jwtPayload, ...(ctx.req.metadata?.[filter] ?? {}) };
  return ctx.req.metadata?.[filter];
}

function matchValue(m: Json, v: unknown): boolean {
  if ('present_match' in m) return (v !== undefined) === m.present_match;
  if (v === undefined) return false;
  if ('null_match' in m) return v === null;
  if ('string_match' in m) return typeof v === 'string' && matchString(m.string_match, v);
  if ('bool_match' in m) return v === m.bool_match;
  if ('double_match' in m) return typeof v === 'number' && ('exact' in m.double_match ? v === m.double_match.exact : v >= m.double_match.range.start && v < m.double_match.range.end);
  if ('list_match' in m) return Array.isArray(v) && v.some((e) => matchValue(m.list_match.one_of, e));
  if ('or_match' in m) return (m.or_match.value_matchers as Json[]).some((x) => matchValue(x, v));
  throw new Error(`unsupported ValueMatcher ${JSON.stringify(m)}`);
}

function matchMetadata(m: Json, ctx: Ctx): boolean {
  let v: unknown = metadataOf(ctx, m.filter);
  for (const seg of m.path as Json[]) v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json)[seg.key] : undefined;
  return matchValue(m.value, v) !== (m.invert === true);
}

export function matchPermission(p: Json, ctx: Ctx): boolean {
  if (p.any === true) return true;
  if (p.and_rules) return (p.and_rules.rules as Json[]).every((r) => matchPermission(r, ctx));
  if (p.or_rules) return (p.or_rules.rules as Json[]).some((r) => matchPermission(r, ctx));
  if (p.not_rule) return !matchPermission(p.not_rule, ctx);
  if (p.header) return matchHeader(p.header, ctx);
  if (p.url_path) return matchUrlPath(p.url_path, ctx);
  if (p.uri_template) return matchUriTemplate(p.uri_template, ctx);
  if (p.destination_ip) return matchCidr(p.destination_ip, ctx.req.destinationIp);
  if ('destination_port' in p) return ctx.req.destinationPort === p.destination_port;
  if (p.destination_port_range) return (ctx.req.destinationPort ?? -1) >= p.destination_port_range.start && (ctx.req.destinationPort ?? -1) < p.destination_port_range.end;
  if (p.requested_server_name) return matchString(p.requested_server_name, ctx.req.sni ?? '');
  if (p.metadata) return matchMetadata(p.metadata, ctx);
  throw new Error(`unsupported Permission ${JSON.stringify(p)}`);
}

export function matchPrincipal(p: Json, ctx: Ctx): boolean {
  if (p.any === true) return true;
  if (p.and_ids) return (p.and_ids.ids as Json[]).every((r) => matchPrincipal(r, ctx));
  if (p.or_ids) return (p.or_ids.ids as Json[]).some((r) => matchPrincipal(r, ctx));
  if (p.not_id) return !matchPrincipal(p.not_id, ctx);
  if (p.authenticated) {
    if (ctx.req.sourcePrincipal === undefined) return false; // no peer certificate
    return !p.authenticated.principal_name || matchString(p.authenticated.principal_name, ctx.req.sourcePrincipal);
  }
  if (p.direct_remote_ip) return matchCidr(p.direct_remote_ip, ctx.req.sourceIp);
  if (p.source_ip) return matchCidr(p.source_ip, ctx.req.sourceIp);
  if (p.remote_ip) return matchCidr(p.remote_ip, ctx.req.remoteIp ?? ctx.req.sourceIp);
  if (p.header) return matchHeader(p.header, ctx);
  if (p.url_path) return matchUrlPath(p.url_path, ctx);
  if (p.metadata) return matchMetadata(p.metadata, ctx);
  throw new Error(`unsupported Principal ${JSON.stringify(p)}`);
}

/** One `config.rbac.v3.RBAC`: the first matching policy in name order (Envoy keeps policies in a sorted map). */
export function matchingPolicy(rbac: Json, ctx: Ctx): string | undefined {
  for (const name of Object.keys(rbac.policies ?? {}).sort()) {
    const policy = rbac.policies[name] as Json;
    if (policy.condition || policy.checked_condition) throw new Error(`CEL conditions are not evaluated (${name})`);
    if ((policy.permissions as Json[]).some((x) => matchPermission(x, ctx)) && (policy.principals as Json[]).some((x) => matchPrincipal(x, ctx))) return name;
  }
  return undefined;
}

const RBAC_FILTERS = new Set(['envoy.filters.http.rbac', 'envoy.filters.network.rbac']);
const PASSIVE_FILTERS = new Set([
  'envoy.filters.http.jwt_authn', // its outcome is the request's jwtPayload
  'envoy.filters.http.router',
  'envoy.filters.http.fault',
  'envoy.filters.http.cors',
  'envoy.filters.http.grpc_web',
  'envoy.filters.http.grpc_stats',
  'istio.metadata_exchange',
  'istio.alpn',
  'istio.stats',
  'envoy.filters.network.tcp_proxy',
  'envoy.filters.network.http_connection_manager',
]);

function runFilters(filters: readonly Json[], ctx: Ctx, path: string | undefined, o: EvaluateOptions): Decision {
  const shadow: Decision['shadow'] = [];
  const logged: string[] = [];
  const enforced: Decision['enforced'] = [];
  for (const [i, f] of filters.entries()) {
    if (!RBAC_FILTERS.has(f.name)) {
      if (PASSIVE_FILTERS.has(f.name)) continue;
      if (o.onUnknownFilter) {
        o.onUnknownFilter(f.name);
        continue;
      }
      throw new Error(`filter ${f.name} is not evaluated`);
    }
    const cfg = f.typed_config as Json;
    if (cfg.matcher || cfg.shadow_matcher) throw new Error('RBAC matcher trees are not evaluated');
    if (cfg.shadow_rules) shadow.push({ filter: i, action: cfg.shadow_rules.action ?? 'ALLOW', matched: matchingPolicy(cfg.shadow_rules, ctx) });
    if (!cfg.rules) continue;
    const action = cfg.rules.action ?? 'ALLOW';
    const matched = matchingPolicy(cfg.rules, ctx);
    if (action === 'LOG') {
      if (matched) logged.push(matched);
      continue;
    }
    enforced.push({ filter: i, action, ...(matched ? { matched } : {}) });
    if (action === 'ALLOW' ? !matched : matched) {
      return { allowed: false, status: 403, reason: `${i}:${action}:${matched ?? 'no ALLOW policy matched'}`, path, shadow, logged, enforced };
    }
  }
  return { allowed: true, status: 200, path, shadow, logged, enforced };
}

/**
 * An HTTP request through an HCM: `hcm` is the HttpConnectionManager typed_config (its http_filters and path options),
 * or `{http_filters, ...hcmPathOptions(mode)}`.
 */
export function evaluateHttp(hcm: HcmPathOptions & { http_filters: readonly Json[] }, req: RbacRequest, o: EvaluateOptions = {}): Decision {
  const n = normalizePath(req.path ?? '/', hcm);
  if (!n.ok) return { allowed: false, status: n.status, reason: n.reason, ...(n.path ? { path: n.path } : {}), shadow: [], logged: [], enforced: [] };
  return runFilters(hcm.http_filters, { req, path: n.path, http: true }, n.path, o);
}

/** A TCP connection through a filter chain's network filters (RBAC before tcp_proxy). */
export function evaluateNetwork(filters: readonly Json[], req: RbacRequest, o: EvaluateOptions = {}): Decision {
  return runFilters(filters, { req, http: false }, undefined, o);
}
