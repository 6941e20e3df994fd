/**
 * The destination's `envoy.filters.http.jwt_authn` filter, read back: its providers (one per RequestAuthentication
 * jwtRule: issuer, audiences, where the token is read from, claims copied to headers) and the requirement its first
 * matching rule sets — mizzen, like istiod, requires `provider OR allow_missing`: a request without a token passes and
 * requiring one is an AuthorizationPolicy's job (requestPrincipals); a token that is present must verify.
 * Offline, signatures cannot be checked (the keys are the control plane's fetched JWKS), so a token's claims are
 * decoded and taken as verified — and the output says so.
 */
import { routeMatches, type Json } from './simulate.ts';

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
/** The kid of the builder's UNAVAILABLE_JWKS (xds/builders/jwt.ts): keys not fetched, every token is rejected. */
const UNAVAILABLE_KID = 'mizzen-jwks-unavailable';

export interface JwtProvider {
  name: string;
  issuer?: string;
  audiences?: string[];
  /** Where the token is looked for. */
  from: string[];
  /** `jwksUri fetched by the control plane` or `inline JWKS (n keys)`. */
  keys: string;
  forward: boolean;
  claimToHeaders?: string[];
}

export interface JwtDecision {
  providers: JwtProvider[];
  /** The requirement of the rule matching the request path, in words. */
  requirement: string;
  /** Token found in the request (decoded, signature not checked), and from where. */
  token?: { from: string; claims: Record<string, unknown> };
  /** Passes (or rejected with 401) and why. */
  allowed: boolean;
  reason: string;
  /** The payload jwt_authn would put in metadata for RBAC (requestPrincipals, request.auth.claims). */
  payload?: Record<string, unknown>;
}

function keysText(p: Json): string {
  const inline = p.local_jwks?.inline_string as string | undefined;
  if (p.remote_jwks) return `remote JWKS ${p.remote_jwks.http_uri?.uri ?? ''} fetched by the proxy`;
  if (!inline) return 'no keys';
  try {
    const keys = (JSON.parse(inline) as { keys?: Array<{ kid?: string }> }).keys ?? [];
    if (keys.some((k) => k.kid === UNAVAILABLE_KID)) return "jwksUri not fetched (offline translation; `serve` fetches it): tokens would be rejected until it is";
    return `inline JWKS (${keys.length} key${keys.length === 1 ? '' : 's'})`;
  } catch {
    return 'inline JWKS (unparsable)';
  }
}

function provider(name: string, p: Json): JwtProvider {
  const from = [
    ...((p.from_headers ?? []) as Json[]).map((h) => `header ${h.name}${h.value_prefix ? ` "${h.value_prefix}…"` : ''}`),
    ...((p.from_params ?? []) as string[]).map((q) => `query ${q}`),
    ...((p.from_cookies ?? []) as string[]).map((c) => `cookie ${c}`),
  ];
  return {
    name,
    ...(p.issuer ? { issuer: String(p.issuer) } : {}),
    ...(p.audiences?.length ? { audiences: p.audiences as string[] } : {}),
    from: from.length > 0 ? from : ['header Authorization "Bearer …"', 'query access_token'],
    keys: keysText(p),
    forward: p.forward === true,
    ...(p.claim_to_headers?.length ? { claimToHeaders: (p.claim_to_headers as Json[]).map((c) => `${c.claim_name} → ${c.header_name}`) } : {}),
  };
}

function requirementText(r: Json | undefined): { text: string; providers: string[]; allowMissing: boolean; allowFailed: boolean } {
  if (!r) return { text: 'no requirement', providers: [], allowMissing: true, allowFailed: true };
  if (r.provider_name) return { text: `a valid token from ${r.provider_name}`, providers: [r.provider_name], allowMissing: false, allowFailed: false };
  if (r.allow_missing) return { text: 'nothing (allow_missing)', providers: [], allowMissing: true, allowFailed: false };
  if (r.allow_missing_or_failed) return { text: 'nothing (allow_missing_or_failed)', providers: [], allowMissing: true, allowFailed: true };
  const any = (r.requires_any?.requirements ?? r.requires_all?.requirements ?? []) as Json[];
  const parts = any.map((x) => requirementText(x));
  const providers = parts.flatMap((p) => p.providers);
  const allowMissing = r.requires_any ? parts.some((p) => p.allowMissing) : parts.every((p) => p.allowMissing);
  const allowFailed = parts.some((p) => p.allowFailed);
  const text = allowMissing && !allowFailed
    ? `a token, if present, must verify against ${providers.join(' or ')}; a request without one passes (allow_missing)`
    : r.requires_any ? `any of: ${parts.map((p) => p.text).join('; ')}` : `all of: ${parts.map((p) => p.text).join('; ')}`;
  return { text, providers, allowMissing, allowFailed };
}

function decodePayload(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function findToken(p: Json, headers: Record<string, string>, path: string): { from: string; token: string } | undefined {
  const get = (n: string) => Object.entries(headers).find(([k]) => k.toLowerCase() === n.toLowerCase())?.[1];
  const fromHeaders = (p.from_headers ?? []) as Json[];
  const params = (p.from_params ?? []) as string[];
  const defaults = fromHeaders.length === 0 && params.length === 0 && !(p.from_cookies ?? []).length;
  for (const h of defaults ? [{ name: 'Authorization', value_prefix: 'Bearer ' }] : fromHeaders) {
    const v = get(h.name);
    if (v !== undefined) return { from: `header ${h.name}`, token: h.value_prefix && v.startsWith(h.value_prefix) ? v.slice(h.value_prefix.length).trim() : v.trim() };
  }
  const query = new URLSearchParams(path.includes('?') ? path.slice(path.indexOf('?') + 1) : '');
  for (const q of defaults ? ['access_token'] : params) {
    const v = query.get(q);
    if (v) return { from: `query ${q}`, token: v };
  }
  return undefined;
}

/** The jwt_authn decision for a request, or undefined when the chain has no jwt_authn filter. */
export function jwtDecision(httpFilters: readonly Json[], req: { path: string; method: string; host: string; headers: Record<string, string> }, nowSec: number): JwtDecision | undefined {
  const f = httpFilters.find((x) => x.name === JWT_AUTHN_FILTER)?.typed_config as Json | undefined;
  if (!f) return undefined;
  const providers = Object.entries((f.providers ?? {}) as Record<string, Json>).map(([n, p]) => provider(n, p));
  const rule = ((f.rules ?? []) as Json[]).find((r) => routeMatches(r.match ?? {}, { port: 0, path: req.path, method: req.method, host: req.host, headers: req.headers }));
  const reqText = requirementText(rule?.requires);
  const base = { providers, requirement: rule ? reqText.text : 'no rule matches this path: nothing required' };
  if (!rule) return { ...base, allowed: true, reason: 'not checked' };
  let found: { from: string; token: string; provider: JwtProvider } | undefined;
  for (const name of reqText.providers) {
    const raw = (f.providers ?? {})[name] as Json | undefined;
    const t = raw ? findToken(raw, req.headers, req.path) : undefined;
    const p = providers.find((x) => x.name === name);
    if (t && p) {
      found = { ...t, provider: p };
      break;
    }
  }
  if (!found) return reqText.allowMissing ? { ...base, allowed: true, reason: 'no token in the request: passes (allow_missing); an AuthorizationPolicy with requestPrincipals decides whether one is needed' } : { ...base, allowed: false, reason: '401: Jwt is missing' };
  const claims = decodePayload(found.token);
  if (!claims) return { ...base, allowed: reqText.allowFailed, reason: reqText.allowFailed ? 'token is not a JWT: passes (allow_missing_or_failed)' : '401: Jwt is not in the form of Header.Payload.Signature' };
  const token = { from: found.from, claims };
  const fail = (why: string) => ({ ...base, token, allowed: reqText.allowFailed, reason: reqText.allowFailed ? `${why}: passes anyway (allow_missing_or_failed)` : `401: ${why}` });
  const issuerMatch = providers.find((p) => reqText.providers.includes(p.name) && p.issuer === claims.iss);
  if (!issuerMatch) return fail(`Jwt issuer ${JSON.stringify(claims.iss)} is not configured`);
  if (issuerMatch.audiences) {
    const aud = Array.isArray(claims.aud) ? claims.aud : claims.aud !== undefined ? [claims.aud] : [];
    if (!aud.some((a) => issuerMatch.audiences!.includes(String(a)))) return fail('Audiences in Jwt are not allowed');
  }
  if (typeof claims.exp === 'number' && claims.exp < nowSec) return fail('Jwt is expired');
  if (typeof claims.nbf === 'number' && claims.nbf > nowSec) return fail('Jwt not yet valid');
  return {
    ...base,
    token,
    allowed: true,
    reason: `token from ${found.from}, issuer ${String(claims.iss)} (provider ${issuerMatch.name}); signature not checked offline — assumed valid, so its claims reach authorization${issuerMatch.claimToHeaders ? `; claims copied to headers: ${issuerMatch.claimToHeaders.join(', ')}` : ''}`,
    payload: claims,
  };
}
