/**
 * Envoy matchers for AuthorizationPolicy values (istiod pilot/pkg/security/authz/matcher): the `*` / `x*` / `*x` /
 * exact value forms as StringMatcher, HeaderMatcher, PathMatcher, CidrRange and MetadataMatcher JSON. Every user string
 * that lands in a regex is RE2-quoted (ISTIO-SECURITY-2020-009 and the 2026 follow-ups: `[0]` in a service account
 * name had become a character class).
 *
 * `widen` marks a matcher whose matching more requests can only make the policy deny more (a DENY/AUDIT/CUSTOM
 * matcher outside a `not`, or an ALLOW matcher inside one; see rbac-rule.ts). Only such matchers get mizzen's
 * hardening alternatives — they never turn a denied request into an allowed one.
 */
import type { Json } from './common.ts';

/** RE2 QuoteMeta: escapes every byte that is not [A-Za-z0-9_] (and not ≥ 0x80), as Go's regexp.QuoteMeta does for ASCII. */
export function quoteMeta(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, (c) => `\\${c}`);
}

export const regexMatcher = (regex: string): Json => ({ safe_regex: { regex } });
const exact = (v: string, ignoreCase = false): Json => (ignoreCase ? { exact: v, ignore_case: true } : { exact: v });
const prefix = (v: string, ignoreCase = false): Json => (ignoreCase ? { prefix: v, ignore_case: true } : { prefix: v });
const suffix = (v: string, ignoreCase = false): Json => (ignoreCase ? { suffix: v, ignore_case: true } : { suffix: v });

/**
 * StringMatcherWithPrefix: `*` → regex `.+` (the prefix ignored), `*x` → suffix (regex `<prefix>.*x` when a prefix is
 * added), `x*` → prefix, else exact; the prefix is prepended to the value.
 */
export function stringMatcher(v: string, addPrefix = '', ignoreCase = false): Json {
  if (v === '*') return regexMatcher('.+');
  if (v.startsWith('*')) return addPrefix ? regexMatcher(`${quoteMeta(addPrefix)}.*${quoteMeta(v.slice(1))}`) : suffix(v.slice(1), ignoreCase);
  if (v.endsWith('*')) return prefix(addPrefix + v.slice(0, -1), ignoreCase);
  return exact(addPrefix + v, ignoreCase);
}

/** HeaderMatcher (matcher/header.go HeaderMatcher): `*` → present, else a string match on the value form. */
export function headerMatcher(name: string, v: string, ignoreCase = false): Json {
  if (v === '*') return { name, present_match: true };
  return { name, string_match: stringMatcher(v, '', ignoreCase) };
}

/** The value form as an RE2 fragment (quoted), for the list-aware header regexes. */
function valueRegex(v: string): string {
  if (v.startsWith('*')) return `.*${quoteMeta(v.slice(1))}`;
  if (v.endsWith('*')) return `${quoteMeta(v.slice(0, -1))}.*`;
  return quoteMeta(v);
}

/**
 * istiod's HeaderMatcherWithRegex (`request.experimental.inline.headers`): the value as one element of a
 * comma-separated list, as Envoy presents a repeated header (values joined with `,`).
 */
export function inlineHeaderMatcher(name: string, v: string): Json {
  if (v === '*') return { name, present_match: true };
  const r = valueRegex(v);
  return { name, string_match: regexMatcher(`^${r}$|^${r},.*|.*,${r},.*|.*,${r}$`) };
}

/**
 * `request.headers[x]` (header.go HeaderMatcher), plus, when widening, the same value as any element of a
 * comma-separated list with optional whitespace: Envoy's RBAC header match sees every value of a repeated header
 * joined by `,`, so `x-role: user` + `x-role: admin` (or `x-role: user, admin`) reads `user,admin` and escapes an
 * exact DENY on `admin` (reliability-security.md §1.6 item 8, checklist C7).
 */
export function requestHeaderMatchers(name: string, v: string, widen: boolean): Json[] {
  const base = headerMatcher(name, v);
  if (!widen || v === '*') return [base];
  const element = v.startsWith('*') ? `.*${quoteMeta(v.slice(1))}[ \\t]*` : v.endsWith('*') ? `[ \\t]*${quoteMeta(v.slice(0, -1))}[^,]*` : `[ \\t]*${quoteMeta(v)}[ \\t]*`;
  return [base, { name, string_match: regexMatcher(`(.*,)?${element}(,.*)?`) }];
}

/**
 * `hosts` (header.go HostMatcher): `:authority`, case-insensitive (CVE-2021-39155), `*` → present. When widening,
 * also the same host with a port and/or a trailing dot (`Example.com:8080`, `example.com.`): istiod compares the
 * whole authority, so a DENY on `example.com` misses `example.com:80` unless the user also writes `example.com:*`
 * (reliability-security.md §1.6 item 3).
 */
export function hostMatchers(v: string, widen: boolean): Json[] {
  const name = ':authority';
  if (v === '*') return [{ name, present_match: true }];
  const base = { name, string_match: stringMatcher(v, '', true) };
  if (!widen || v.endsWith('*')) return [base]; // a prefix match already covers any port
  const host = v.startsWith('*') ? `.*${quoteMeta(v.slice(1))}` : quoteMeta(v);
  return [base, { name, string_match: regexMatcher(`(?i)${host}\\.?(:[0-9]*)?`) }];
}

/**
 * `paths`: PathMatcher on the path without query (exact / `x*` prefix / `*x` suffix / `*` → `.+`). Case-sensitive as in
 * Istio, unless `ignoreCase` (mizzen's opt-in for widening matchers: see RbacHardening.pathCase).
 */
export function pathMatcher(v: string, ignoreCase: boolean): Json {
  return { path: stringMatcher(v, '', ignoreCase) };
}

export const URI_TEMPLATE_EXTENSION = 'envoy.path.match.uri_template.uri_template_matcher';
const URI_TEMPLATE_TYPE = 'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig';

/** `{*}` / `{**}` path templates (security.ContainsPathTemplate) → Envoy's uri_template `*` / `**` (matcher/template.go). */
export const isPathTemplate = (v: string): boolean => v.includes('{*}') || v.includes('{**}');

export function uriTemplate(v: string): Json {
  return { name: URI_TEMPLATE_EXTENSION, typed_config: { '@type': URI_TEMPLATE_TYPE, path_template: v.replaceAll('{**}', '**').replaceAll('{*}', '*') } };
}

/** util.AddrStrToCidrRange: an address is a /32 (/128); a CIDR keeps its length. Validation guarantees the syntax. */
export function cidrRange(v: string): Json | { error: string } {
  const slash = v.indexOf('/');
  const address = slash >= 0 ? v.slice(0, slash) : v;
  const v6 = address.includes(':');
  const len = slash >= 0 ? Number(v.slice(slash + 1)) : v6 ? 128 : 32;
  if (!Number.isInteger(len) || len < 0 || len > (v6 ? 128 : 32) || address === '') return { error: `invalid IP or CIDR "${v}"` };
  return { address_prefix: address, prefix_len: { value: len } };
}

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
/** jwt_authn `payload_in_metadata` as mizzen's jwt builder sets it (istio-xds.md §8). */
export const JWT_PAYLOAD_KEY = 'payload';

export function metadataMatcher(filter: string, keys: readonly string[], value: Json): Json {
  return { filter, path: keys.map((key) => ({ key })), value };
}

/** StringOrMatcher: one ValueMatcher for a list of values (or_match when more than one). */
export function stringOrValue(values: readonly string[]): Json {
  const ms = values.map((v) => ({ string_match: stringMatcher(v) }));
  return ms.length === 1 ? (ms[0] as Json) : { or_match: { value_matchers: ms } };
}

/**
 * A JWT claim (request.auth.claims/audiences/presenter): the value matched against the claim whether it is a list
 * (any element) or a scalar — istiod's "extended JWT" MetadataListValueMatcher with `or_match [list_match, value]`.
 */
export function jwtClaimMatcher(claimPath: readonly string[], values: readonly string[]): Json {
  const value = stringOrValue(values);
  return metadataMatcher(JWT_AUTHN_FILTER, [JWT_PAYLOAD_KEY, ...claimPath], { or_match: { value_matchers: [{ list_match: { one_of: value } }, value] } });
}

/** A single JWT payload string claim (`iss`, `sub`) for requestPrincipals. */
export function jwtStringClaim(claim: string, m: Json): Json {
  return metadataMatcher(JWT_AUTHN_FILTER, [JWT_PAYLOAD_KEY, claim], { string_match: m });
}

// ---------------------------------------------------------------------------------------------------------------
// Generator plumbing shared by rbac-principal.ts, rbac-permission.ts and rbac-rule.ts.

/**
 * mizzen's additions to istiod's matchers, applied only to widening matchers (see the file comment), so each can
 * only turn an allowed request into a denied one.
 */
export interface RbacHardening {
  /** `hosts`: also match the host with `:port` and/or a trailing dot. Default on. */
  hostPorts: boolean;
  /** `request.headers[x]`: also match the value as one element of a comma-separated (repeated) header. Default on. */
  headerLists: boolean;
  /**
   * `paths`: match case-insensitively. Default off: HTTP paths are case-sensitive (RFC 3986 §6.2.2.1) and Istio
   * documents `paths` as case-sensitive; turn on for meshes whose backends treat paths case-insensitively.
   */
  pathCase: boolean;
}

export const DEFAULT_HARDENING: RbacHardening = Object.freeze({ hostPorts: true, headerLists: true, pathCase: false });
/** istiod's exact output (no mizzen hardening), for comparison with istiod goldens. */
export const ISTIO_EXACT: RbacHardening = Object.freeze({ hostPorts: false, headerLists: false, pathCase: false });

export interface GenContext {
  /** Building for a TCP filter chain: HTTP-only attributes are errors. */
  forTCP: boolean;
  /** The policy's namespace (a serviceAccount without `ns/` is in it). */
  namespace: string;
  hardening: RbacHardening;
}

export type GenError = { error: string };
export const isError = (x: unknown): x is GenError => typeof x === 'object' && x !== null && 'error' in x && Object.keys(x).length === 1;

/**
 * How one attribute becomes Envoy matchers: either per value (`one`: the alternatives for that value, OR-ed with the
 * other values' — istiod's generator) or for all values at once (`all`: istiod's extendedGenerator, one matcher).
 */
export interface AttributeGenerator {
  one?: (key: string, value: string, widen: boolean, ctx: GenContext) => Json[] | GenError;
  all?: (key: string, values: readonly string[], ctx: GenContext) => Json | GenError;
}

/** How an attribute key reads in notes: operation fields by their AuthorizationPolicy name. */
const FIELD_NAMES: Record<string, string> = { ':authority': 'hosts', ':method': 'methods', 'path-matcher': 'paths' };

export const httpOnly = (key: string): GenError => ({ error: `${FIELD_NAMES[key] ?? key} is HTTP only` });

/** `a[b]` → `b` (util.go extractNameInBrackets). */
export function nameInBrackets(s: string): string | GenError {
  if (!s.startsWith('[') || !s.endsWith(']') || s.length < 3) return { error: `expecting format [<NAME>], but found ${s}` };
  return s.slice(1, -1);
}

/** `[a][b]` → `[a, b]`; a single `[a.b]` stays one name (util.go extractNameInNestedBrackets). */
export function namesInNestedBrackets(s: string): string[] | GenError {
  const names: string[] = [];
  let i = 0;
  while (i < s.length) {
    const end = s[i] === '[' ? s.indexOf(']', i + 1) : -1;
    if (end < 0 || s.slice(i + 1, end).includes('[')) {
      const one = nameInBrackets(s);
      return isError(one) ? one : [one];
    }
    names.push(s.slice(i + 1, end));
    i = end + 1;
  }
  return names.length ? names : { error: `expecting format [<NAME>], but found ${s}` };
}
