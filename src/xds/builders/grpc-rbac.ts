/**
 * AuthorizationPolicy for proxyless gRPC servers (gRFC A41, istiod grpcgen): only DENY then ALLOW filters (gRPC
 * refuses AUDIT/LOG, and has no ext_authz for CUSTOM), with names unique in the HCM, as gRPC requires. A CUSTOM
 * policy is enforced as a DENY: istiod leaves it out, which lets through every request the external authorizer was
 * there to check; here the requests it selects are refused instead (fail closed), and the analyzer note says so. gRPC
 * implements fewer RBAC matchers than Envoy and quietly treats an unknown one as "never matches", which would let a
 * DENY rule fail open; every matcher it does not know is rewritten to fail closed instead: the enclosing DENY rule
 * matches (wider deny), the ALLOW rule does not (narrower allow) — istiod's own rule for untranslatable conditions.
 */
import type { ApplicablePolicies } from '../../model/authorization.ts';
import type { Json } from './common.ts';
import { ISTIO_EXACT } from './rbac-match.ts';
import { rbacHttpFilters, type RbacOptions } from './rbac.ts';

const PERMISSION_KINDS = new Set(['and_rules', 'or_rules', 'not_rule', 'any', 'destination_ip', 'destination_port', 'header', 'metadata', 'requested_server_name', 'url_path']);
const PRINCIPAL_KINDS = new Set(['and_ids', 'or_ids', 'not_id', 'any', 'authenticated', 'direct_remote_ip', 'remote_ip', 'source_ip', 'header', 'metadata', 'url_path']);
const NESTED: Record<string, string> = { and_rules: 'rules', or_rules: 'rules', and_ids: 'ids', or_ids: 'ids' };

interface Tree {
  kinds: Set<string>;
  /** `not_rule` (permissions) or `not_id` (principals). */
  not: string;
}
const PERMISSIONS: Tree = { kinds: PERMISSION_KINDS, not: 'not_rule' };
const PRINCIPALS: Tree = { kinds: PRINCIPAL_KINDS, not: 'not_id' };

/** Rewrites matchers gRPC does not implement; `wantMatch` is what an unknown matcher must evaluate to here. */
function sanitize(m: Json, tree: Tree, wantMatch: boolean, unsupported: Set<string>): Json {
  const kind = Object.keys(m)[0]!;
  if (!tree.kinds.has(kind)) {
    unsupported.add(kind);
    return wantMatch ? { any: true } : { [tree.not]: { any: true } };
  }
  const inner = m[kind] as Json;
  if (kind === tree.not) return { [kind]: sanitize(inner, tree, !wantMatch, unsupported) };
  const listKey = NESTED[kind];
  if (listKey) return { [kind]: { [listKey]: (inner[listKey] as Json[]).map((x) => sanitize(x, tree, wantMatch, unsupported)) } };
  return m;
}

export function grpcRbacHttpFilters(policies: ApplicablePolicies, opts: RbacOptions, note: (m: string) => void): Json[] {
  if (policies.custom.length > 0) {
    note('proxyless gRPC servers have no external authorization: CUSTOM AuthorizationPolicies are enforced as DENY (requests they select are refused)');
  }
  if (policies.audit.length > 0) note('proxyless gRPC servers do not support AUDIT AuthorizationPolicies: left out');
  // Istio's exact matchers: mizzen's host/header hardening uses RE2 flags gRPC's regex engine does not take.
  const deny = [...policies.deny, ...policies.custom];
  const { authz } = rbacHttpFilters({ custom: [], audit: [], deny, allow: policies.allow }, { ...opts, hardening: ISTIO_EXACT }, note);
  const unsupported = new Set<string>();
  const out = authz.map((f) => {
    const tc = f.typed_config as Json;
    const rules = tc.rules as Json | undefined;
    const deny = rules?.action === 'DENY';
    if (!rules) return f;
    const policiesOut: Record<string, Json> = {};
    for (const [name, p] of Object.entries((rules.policies ?? {}) as Record<string, Json>)) {
      policiesOut[name] = {
        permissions: (p.permissions as Json[]).map((x) => sanitize(x, PERMISSIONS, deny, unsupported)),
        principals: (p.principals as Json[]).map((x) => sanitize(x, PRINCIPALS, deny, unsupported)),
      };
    }
    return { name: deny ? `${f.name}.DENY` : f.name, typed_config: { '@type': tc['@type'], rules: { action: rules.action, policies: policiesOut } } };
  });
  if (unsupported.size > 0) note(`proxyless gRPC RBAC: ${[...unsupported].sort().join(', ')} matchers are not implemented by gRPC; rules using them fail closed`);
  return out;
}
