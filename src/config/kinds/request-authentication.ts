/**
 * RequestAuthentication (security.istio.io): which JWTs a workload accepts (issuer, keys, where the token is).
 * Fields follow istio/api security/v1beta1/request_authentication.proto and jwt.proto; rules follow istio/istio
 * ValidateRequestAuthentication / validateJwtRule and the CRD's CEL rules.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkDuration, checkPolicySelection, collector, headerNameError, type Report } from './checks.ts';
import { Duration, MatchLabelsSelector, Obj, Opt, PolicyTargetReference } from './common.ts';
import { defineKind } from './kind.ts';

export const JWTHeaderSchema = Obj({ name: Type.String(), prefix: Opt(Type.String()) });
export const ClaimToHeaderSchema = Obj({ header: Type.String(), claim: Type.String() });
export type JWTHeader = Static<typeof JWTHeaderSchema>;
export type ClaimToHeader = Static<typeof ClaimToHeaderSchema>;

export const JWTRuleSchema = Obj({
  issuer: Opt(Type.String()),
  audiences: Opt(Type.Array(Type.String())),
  jwksUri: Opt(Type.String({ maxLength: 2048 })),
  jwks_uri: Opt(Type.String({ maxLength: 2048 })), // proto field name, accepted by the CRD
  jwks: Opt(Type.String()),
  fromHeaders: Opt(Type.Array(JWTHeaderSchema)),
  fromParams: Opt(Type.Array(Type.String())),
  fromCookies: Opt(Type.Array(Type.String())),
  outputPayloadToHeader: Opt(Type.String()),
  forwardOriginalToken: Opt(Type.Boolean()),
  outputClaimToHeaders: Opt(Type.Array(ClaimToHeaderSchema)),
  timeout: Opt(Duration()),
  spaceDelimitedClaims: Opt(Type.Array(Type.String(), { maxItems: 64 })),
});
export type JWTRule = Static<typeof JWTRuleSchema>;

export const RequestAuthenticationSpecSchema = Obj({
  selector: Opt(MatchLabelsSelector()),
  targetRef: Opt(PolicyTargetReference()),
  targetRefs: Opt(Type.Array(PolicyTargetReference(), { maxItems: 16 })),
  jwtRules: Opt(Type.Array(JWTRuleSchema, { maxItems: 4096 })),
});
export type RequestAuthenticationSpec = Static<typeof RequestAuthenticationSpecSchema>;

/** security.ParseJwksURI: an absolute http(s) URL with a host. */
function jwksUriError(uri: string): string | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return `jwksUri "${uri}" is not a valid URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `jwksUri scheme must be http or https, got "${u.protocol.replace(/:$/, '')}"`;
  if (!u.hostname) return `jwksUri "${uri}" has no host`;
  return undefined;
}

/** validateJwtRule parses inline jwks as a JWK Set (or a single JWK); we check it is a JSON object with keys. */
function jwksError(jwks: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(jwks);
  } catch (e) {
    return `jwks is not valid JSON: ${(e as Error).message}`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'jwks must be a JSON object (a JWK Set)';
  const o = parsed as Record<string, unknown>;
  if (!Array.isArray(o.keys) && typeof o.kty !== 'string') return 'jwks must be a JWK Set ({"keys": [...]}) or a single JWK';
  return undefined;
}

function checkRule(report: Report, p: string, r: JWTRule): void {
  if (!r.issuer) report(`${p}.issuer`, 'issuer must be set');
  r.audiences?.forEach((a, i) => {
    if (!a) report(`${p}.audiences[${i}]`, 'audience must be a non-empty string');
  });
  const keySources = (['jwksUri', 'jwks_uri', 'jwks'] as const).filter((k) => r[k] !== undefined);
  if (keySources.length > 1) report(p, `only one of jwks, jwksUri may be set, got ${keySources.join(' and ')}`);
  for (const k of ['jwksUri', 'jwks_uri'] as const) {
    const uri = r[k];
    if (uri === undefined) continue;
    const err = uri === '' ? 'jwksUri must not be empty' : jwksUriError(uri);
    if (err) report(`${p}.${k}`, err);
  }
  if (r.jwks) {
    const err = jwksError(r.jwks);
    if (err) report(`${p}.jwks`, err);
  }
  r.fromHeaders?.forEach((h, i) => {
    if (!h.name) report(`${p}.fromHeaders[${i}].name`, 'header name must be a non-empty string');
  });
  r.fromParams?.forEach((q, i) => {
    if (!q) report(`${p}.fromParams[${i}]`, 'query parameter name must be a non-empty string');
  });
  r.fromCookies?.forEach((c, i) => {
    if (!c) report(`${p}.fromCookies[${i}]`, 'cookie name must be a non-empty string');
  });
  r.outputClaimToHeaders?.forEach((c, i) => {
    const cp = `${p}.outputClaimToHeaders[${i}]`;
    if (!c.claim || !c.header) return report(cp, 'header and claim must be non-empty strings');
    const err = headerNameError(c.header);
    if (err) report(`${cp}.header`, err);
  });
  checkDuration(report, `${p}.timeout`, r.timeout);
}

function check(spec: RequestAuthenticationSpec): FieldError[] {
  const { errors, report } = collector();
  checkPolicySelection(report, spec);
  spec.jwtRules?.forEach((r, i) => checkRule(report, `spec.jwtRules[${i}]`, r));
  return errors;
}

export const requestAuthentication = defineKind<RequestAuthenticationSpec>({
  group: 'security.istio.io',
  kind: 'RequestAuthentication',
  plural: 'requestauthentications',
  versions: ['v1', 'v1beta1'],
  namespaced: true,
  spec: RequestAuthenticationSpecSchema,
  check,
});
