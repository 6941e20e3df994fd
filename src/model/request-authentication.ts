/**
 * Which RequestAuthentications apply to a workload (istiod policy_applier): every one in the mesh root namespace and
 * in the workload's namespace without a selector, plus those whose selector matches the workload's labels. Their
 * jwtRules are combined in a stable order (by issuer, as istiod sorts them).
 */
import type { JWTRule, RequestAuthenticationSpec } from '../config/kinds/request-authentication.ts';
import type { PushContext } from './push-context.ts';
import type { ProxyView } from './proxy-view.ts';

export interface ApplicableJwtRule {
  rule: JWTRule;
  /** `RequestAuthentication ns/name jwtRules[i]`, for notes. */
  where: string;
}

export function jwtRulesFor(push: PushContext, view: ProxyView): ApplicableJwtRule[] {
  const ns = view.namespace();
  const root = push.mesh.rootNamespace;
  const out: ApplicableJwtRule[] = [];
  for (const ra of push.config.ofKind<RequestAuthenticationSpec>('RequestAuthentication')) {
    const raNs = ra.metadata.namespace;
    if (raNs !== root && raNs !== ns) continue;
    const selector = ra.spec.selector?.matchLabels;
    if (selector && Object.keys(selector).length > 0 && !view.selectedBy(selector)) continue;
    if (ra.spec.targetRef || ra.spec.targetRefs?.length) continue; // Gateway-API / waypoint attachment only
    for (const [i, rule] of (ra.spec.jwtRules ?? []).entries()) out.push({ rule, where: `RequestAuthentication ${raNs}/${ra.metadata.name} jwtRules[${i}]` });
  }
  return out.sort((a, b) => (a.rule.issuer ?? '').localeCompare(b.rule.issuer ?? ''));
}

/** Every remote JWKS URI named by any RequestAuthentication (what the control plane must fetch). */
export function jwksUris(push: PushContext): string[] {
  const uris = new Set<string>();
  for (const ra of push.config.ofKind<RequestAuthenticationSpec>('RequestAuthentication')) {
    for (const r of ra.spec.jwtRules ?? []) {
      const uri = r.jwksUri ?? r.jwks_uri;
      if (uri && !r.jwks) uris.add(uri);
    }
  }
  return [...uris].sort();
}
