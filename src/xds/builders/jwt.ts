/**
 * RequestAuthentication → `envoy.filters.http.jwt_authn` (istio-xds.md §8, istiod convertToEnvoyJwtConfig): one
 * provider `origins-<i>` per rule; a missing token passes, an invalid one is rejected (`allow_missing`, not
 * `allow_missing_or_failed`); requiring a token is AuthorizationPolicy's job (requestPrincipals). Keys are always
 * inline: the control plane fetches `jwksUri` itself (istiod's default mode); until it has them — or if fetching fails
 * — the provider gets a key nobody holds, so tokens are rejected rather than trusted.
 */
import type { ApplicableJwtRule } from '../../model/request-authentication.ts';
import { compact, type Json } from './common.ts';

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
const JWT_AUTHN_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';

/** A valid JWKS whose private key was discarded when it was generated: no token ever verifies against it. */
export const UNAVAILABLE_JWKS = JSON.stringify({
  keys: [
    {
      kty: 'RSA',
      n: 'yOzUvJnVGBAxBg0ZoDc0wj-EDc70-PJa0PjfrveuNZZGREPkmIJUTY8kxOloiopFATwQOwvLNQEEWAnzJNdrsQ_EHBsoIcjDEsyAne7Ll2iz_qKz0PcbKdwUs6s6S_6zP_ljOK21NvQtmpiHu67e81czuAQTAwHhLW67igtmZV75y-r6s44KL7lo6SMWiUy2yF5abhRBS_HN1rS9o1ZpxkRhXTYCyT6Z69cPdksUPMStmxVAdfW_rsVYu_rSE8rdqJfnycvx1TbqC8uavkHf9uIRMhVu8N2X5-SGoqcXvSr1IMGVySTD_Sjf4Cr1U63vL5sGaE5KzgTtz2zCWLMc9Q',
      e: 'AQAB',
      kid: 'mizzen-jwks-unavailable',
      alg: 'RS256',
      use: 'sig',
    },
  ],
});

/** Claims Envoy splits on spaces before RBAC matches them: `permission`, `scope` and the rule's own. */
function spaceDelimitedClaims(extra: readonly string[] | undefined): string[] {
  return [...new Set(['permission', 'scope', ...(extra ?? [])])].sort();
}

export interface JwtOptions {
  /** Fetched JWKS by URI (the control plane's cache). */
  jwks: ReadonlyMap<string, string>;
  /** Gateways re-pick the route after authentication (claims can steer routing there). */
  clearRouteCache: boolean;
}

function provider(r: ApplicableJwtRule, o: JwtOptions): Json {
  const rule = r.rule;
  const uri = rule.jwksUri ?? rule.jwks_uri;
  const keys = rule.jwks ?? (uri ? o.jwks.get(uri) : undefined) ?? UNAVAILABLE_JWKS;
  return compact({
    issuer: rule.issuer,
    audiences: rule.audiences?.length ? rule.audiences : undefined,
    local_jwks: { inline_string: keys },
    forward: rule.forwardOriginalToken || undefined,
    forward_payload_header: rule.outputPayloadToHeader,
    from_headers: rule.fromHeaders?.length ? rule.fromHeaders.map((h) => compact({ name: h.name, value_prefix: h.prefix })) : undefined,
    from_params: rule.fromParams?.length ? rule.fromParams : undefined,
    from_cookies: rule.fromCookies?.length ? rule.fromCookies : undefined,
    payload_in_metadata: 'payload',
    normalize_payload_in_metadata: { space_delimited_claims: spaceDelimitedClaims(rule.spaceDelimitedClaims) },
    claim_to_headers: rule.outputClaimToHeaders?.length ? rule.outputClaimToHeaders.map((c) => ({ header_name: c.header, claim_name: c.claim })) : undefined,
    clear_route_cache: o.clearRouteCache || undefined,
  });
}

/** The jwt_authn filter for these rules, or undefined when none apply. */
export function jwtAuthnFilter(rules: readonly ApplicableJwtRule[], o: JwtOptions): Json | undefined {
  if (rules.length === 0) return undefined;
  const providers: Record<string, Json> = {};
  const each: Json[] = [];
  const names: Json[] = [];
  rules.forEach((r, i) => {
    const name = `origins-${i}`;
    providers[name] = provider(r, o);
    each.push({ requires_any: { requirements: [{ provider_name: name }, { allow_missing: {} }] } });
    names.push({ provider_name: name });
  });
  // One provider: {provider OR allow_missing}. Several: any provider alone (they may share a token location), or all
  // of {provider OR allow_missing} — a token that is present must be valid for its provider.
  const requires = each.length === 1 ? each[0]! : { requires_any: { requirements: [...names, { requires_all: { requirements: each } }] } };
  return {
    name: JWT_AUTHN_FILTER,
    typed_config: {
      '@type': JWT_AUTHN_TYPE,
      providers,
      rules: [{ match: { prefix: '/' }, requires }],
      bypass_cors_preflight: true,
    },
  };
}
