/**
 * AuthorizationPolicy → Envoy RBAC filters (istio-xds.md §7; istiod pilot/pkg/security/authz/builder/builder.go):
 * - HTTP chains: `envoy.filters.http.rbac` instances; TCP chains: `envoy.filters.network.rbac` with stat_prefix `tcp.`;
 * - one instance per action, in istiod's order: CUSTOM (before jwt_authn), then AUDIT (action LOG), DENY, ALLOW — so a
 *   request is checked CUSTOM → DENY → ALLOW; no ALLOW policy ⇒ no ALLOW filter ⇒ allowed;
 * - policy names `ns[<ns>]-policy[<name>]-rule[<i>]`; a policy without rules (`spec: {}`) is a never-matching policy
 *   (for ALLOW: allow-nothing); a rule `{}` matches everything;
 * - `istio.io/dry-run` policies go to `shadow_rules` (stat prefix `istio_dry_run_allow_` / `istio_dry_run_deny_`);
 * - CUSTOM (extauthz.go): per workload, an RBAC filter in shadow mode (`shadow_rules`, stat prefix `istio_ext_authz_`)
 *   holding the CUSTOM rules, named `istio-ext-authz-<provider>-ns[..]-policy[..]-rule[..]`, then the provider's
 *   ext_authz filter (ext-authz.ts), which runs only when that shadow RBAC matched (filter_enabled_metadata) — so the
 *   authorizer is asked exactly about the requests the CUSTOM rules select. A provider that cannot be used (not
 *   defined, invalid, its service not in the registry) or several providers on one workload (istiod's default without
 *   PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS): every enforced CUSTOM rule becomes a DENY rule named
 *   `…-deny-due-to-bad-CUSTOM-action` (fail closed). An HTTP provider is left off TCP chains. Dry-run CUSTOM rules
 *   are left out with a note (newer istiod puts them in the shadow filter's enforcing `rules`, which with action DENY
 *   would deny the requests they match).
 * Rule translation is in rbac-rule.ts; matchers in rbac-principal.ts, rbac-permission.ts and rbac-match.ts.
 */
import type { ApplicablePolicies, ApplicablePolicy } from '../../model/authorization.ts';
import { compact, type Json } from './common.ts';
import { EXT_AUTHZ_POLICY_PREFIX, EXT_AUTHZ_SHADOW_STAT_PREFIX, type ExtAuthzResolution } from './ext-authz.ts';
import { DEFAULT_HARDENING, type GenContext, type RbacHardening } from './rbac-match.ts';
import { MATCH_NEVER_POLICY, RuleError, translateRule, type RbacAction, type TrustDomainBundle } from './rbac-rule.ts';

export const HTTP_RBAC_FILTER = 'envoy.filters.http.rbac';
export const NETWORK_RBAC_FILTER = 'envoy.filters.network.rbac';
const HTTP_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const NETWORK_RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
export const TCP_STAT_PREFIX = 'tcp.';
const DRY_RUN_ALLOW_PREFIX = 'istio_dry_run_allow_';
const DRY_RUN_DENY_PREFIX = 'istio_dry_run_deny_';
const BAD_CUSTOM_SUFFIX = '-deny-due-to-bad-CUSTOM-action';

export interface RbacOptions {
  /** MeshConfig.trustDomain: principals written with `cluster.local` mean this trust domain. */
  trustDomain: string;
  /** MeshConfig.trustDomainAliases: principals of the mesh trust domain also match these. */
  trustDomainAliases?: readonly string[];
  /**
   * The ext_authz filters of a CUSTOM provider by name, or why it cannot be used (ext-authz.ts resolveExtAuthz). Unset:
   * no provider can be used, so CUSTOM policies fail closed.
   */
  extAuthz?: (provider: string) => ExtAuthzResolution;
  /** mizzen's widening-only matcher hardening (rbac-match.ts); DEFAULT_HARDENING when unset. */
  hardening?: Partial<RbacHardening>;
}

/** The HTTP RBAC filters of one chain, split where jwt_authn goes between them (istio-xds.md §2.5 rows 2-4). */
export interface RbacHttpFilters {
  /** CUSTOM action filters: before `envoy.filters.http.jwt_authn`. */
  custom: Json[];
  /** AUDIT, DENY, ALLOW filters: after `envoy.filters.http.jwt_authn`. */
  authz: Json[];
}

type Note = (message: string) => void;

const policyName = (p: ApplicablePolicy, i: number, provider?: string) =>
  `${provider === undefined ? '' : provider ? `${EXT_AUTHZ_POLICY_PREFIX}-${provider}-` : `${EXT_AUTHZ_POLICY_PREFIX}-`}ns[${p.namespace}]-policy[${p.name}]-rule[${i}]`;

interface Built {
  rules?: Json;
  shadow?: Json;
}

interface BuildContext {
  forTCP: boolean;
  bundle: TrustDomainBundle;
  hardening: RbacHardening;
  note: Note;
}

/** builder.go build(): the enforced and dry-run rule sets of one action. */
function build(policies: readonly ApplicablePolicy[], action: RbacAction, b: BuildContext, provider?: string): Built | undefined {
  if (policies.length === 0) return undefined;
  const enforce: Record<string, Json> = {};
  const shadow: Record<string, Json> = {};
  let hasEnforce = false;
  let hasShadow = false;
  const chain = b.forTCP ? 'TCP' : 'HTTP';
  for (const p of policies) {
    const target = p.dryRun ? shadow : enforce;
    if (p.dryRun) hasShadow = true;
    else hasEnforce = true;
    const ctx: GenContext = { forTCP: b.forTCP, namespace: p.namespace, hardening: b.hardening };
    const rules = p.spec.rules ?? [];
    rules.forEach((rule, i) => {
      const name = policyName(p, i, provider);
      try {
        const t = translateRule(rule, action, ctx, b.bundle);
        target[name] = t.policy;
        for (const w of t.warnings) b.note(`AuthorizationPolicy ${p.namespace}/${p.name} rule ${i}: ${w}`);
        if (t.dropped.length) b.note(`AuthorizationPolicy ${p.namespace}/${p.name} rule ${i} (${p.action}) on a ${chain} chain ignores: ${t.dropped.join('; ')} (the rule matches more requests, as istiod does)`);
      } catch (e) {
        if (!(e instanceof RuleError)) throw e;
        b.note(`AuthorizationPolicy ${p.namespace}/${p.name} rule ${i} (ALLOW) skipped on a ${chain} chain: ${e.message} (fewer requests are allowed, as istiod does)`);
      }
    });
    if (rules.length === 0) target[policyName(p, 0, provider)] = MATCH_NEVER_POLICY;
  }
  return {
    ...(hasEnforce ? { rules: { action, policies: enforce } } : {}),
    ...(hasShadow ? { shadow: { action, policies: shadow } } : {}),
  };
}

/**
 * istiod sets shadow_rules_stat_prefix from the shadow rules' action, which reads ALLOW when there are none — so every
 * ALLOW/DENY/AUDIT filter carries `istio_dry_run_allow_` unless it has DENY (or LOG) shadow rules. Kept for parity.
 */
function shadowPrefix(shadow: Json | undefined): string | undefined {
  const action = shadow?.action ?? 'ALLOW';
  return action === 'ALLOW' ? DRY_RUN_ALLOW_PREFIX : action === 'DENY' ? DRY_RUN_DENY_PREFIX : undefined;
}

function httpFilter(built: Built): Json {
  return {
    name: HTTP_RBAC_FILTER,
    typed_config: compact({ '@type': HTTP_RBAC_TYPE, rules: built.rules, shadow_rules: built.shadow, shadow_rules_stat_prefix: shadowPrefix(built.shadow) }),
  };
}

function networkFilter(built: Built): Json {
  return {
    name: NETWORK_RBAC_FILTER,
    typed_config: compact({
      '@type': NETWORK_RBAC_TYPE,
      rules: built.rules,
      stat_prefix: TCP_STAT_PREFIX,
      shadow_rules: built.shadow,
      shadow_rules_stat_prefix: shadowPrefix(built.shadow),
    }),
  };
}

function context(opts: RbacOptions, forTCP: boolean, note: Note): BuildContext {
  return {
    forTCP,
    bundle: { trustDomains: [opts.trustDomain, ...(opts.trustDomainAliases ?? []).filter((a) => a !== opts.trustDomain)] },
    hardening: { ...DEFAULT_HARDENING, ...opts.hardening },
    note,
  };
}

/** One CUSTOM provider's filters for a chain: an enforcing bad-CUSTOM DENY rule set, or shadow rules + ext_authz. */
type CustomFilters = { deny: Json } | { shadow: Json; extAuthz: Json };

/** getBadCustomDenyRules: the enforced CUSTOM rules, renamed `…-deny-due-to-bad-CUSTOM-action`, as a DENY rule set. */
function badCustomDeny(built: Built | undefined): Json | undefined {
  const policiesOut: Record<string, Json> = {};
  for (const [name, policy] of Object.entries((built?.rules?.policies as Record<string, Json> | undefined) ?? {})) policiesOut[name + BAD_CUSTOM_SUFFIX] = policy;
  return Object.keys(policiesOut).length > 0 ? { action: 'DENY', policies: policiesOut } : undefined;
}

/**
 * CUSTOM policies, per provider (sorted), as builder.go buildHTTP/buildTCP for the CUSTOM builder: a usable provider
 * gets its rules as shadow rules plus its ext_authz filter; an unusable one (or more than one provider on the
 * workload) gets its enforced rules as a bad-CUSTOM DENY rule set. Dry-run CUSTOM rules are left out (noted).
 */
function customFilters(policies: readonly ApplicablePolicy[], opts: RbacOptions, b: BuildContext): CustomFilters[] {
  const byProvider = new Map<string, ApplicablePolicy[]>();
  for (const p of policies) {
    const provider = p.spec.provider?.name ?? '';
    byProvider.set(provider, [...(byProvider.get(provider) ?? []), p]);
  }
  const providers = [...byProvider.keys()].sort();
  const out: CustomFilters[] = [];
  for (const provider of providers) {
    const ps = byProvider.get(provider) ?? [];
    const who = ps.map((p) => `${p.namespace}/${p.name}`).join(', ');
    const resolved: ExtAuthzResolution =
      providers.length > 1
        ? { ok: false, reason: `one workload can use only one CUSTOM provider, found ${providers.map((x) => `"${x}"`).join(', ')}` }
        : (opts.extAuthz?.(provider) ?? { ok: false, reason: 'no such extension provider in the mesh config' });
    // istiod leaves a CUSTOM policy with a usable HTTP-only provider off TCP chains (ext_authz HTTP cannot check TCP).
    if (resolved.ok && b.forTCP && !resolved.tcp) {
      b.note(`CUSTOM AuthorizationPolicy ${who}: provider "${provider}" is an HTTP ext_authz provider; not applied to TCP chains (as istiod)`);
      continue;
    }
    if (!resolved.ok) b.note(`CUSTOM AuthorizationPolicy ${who}: provider "${provider}" cannot be used (${resolved.reason}); requests the policy would send to it are denied, as istiod does for a bad provider`);
    const built = build(ps, 'DENY', b, provider);
    if (built?.shadow) b.note(`CUSTOM AuthorizationPolicy ${who}: dry-run rules for provider "${provider}" are not evaluated`);
    if (!resolved.ok) {
      const deny = badCustomDeny(built);
      if (deny) out.push({ deny });
    } else if (built?.rules) {
      out.push({ shadow: built.rules, extAuthz: b.forTCP ? resolved.tcp! : resolved.http });
    }
  }
  return out;
}

/**
 * The HTTP RBAC filters for a workload's inbound HTTP chains or a gateway's HCMs. `custom` (shadow RBAC + ext_authz
 * pairs, or bad-CUSTOM DENY filters) goes before jwt_authn,
 * `authz` (AUDIT, DENY, ALLOW) after it; both empty when no policy applies.
 */
export function rbacHttpFilters(policies: ApplicablePolicies, opts: RbacOptions, note: Note = () => {}): RbacHttpFilters {
  const b = context(opts, false, note);
  const custom = customFilters(policies.custom, opts, b).flatMap((c) =>
    'deny' in c
      ? [{ name: HTTP_RBAC_FILTER, typed_config: { '@type': HTTP_RBAC_TYPE, rules: c.deny } }]
      : [{ name: HTTP_RBAC_FILTER, typed_config: { '@type': HTTP_RBAC_TYPE, shadow_rules: c.shadow, shadow_rules_stat_prefix: EXT_AUTHZ_SHADOW_STAT_PREFIX } }, c.extAuthz],
  );
  const authz: Json[] = [];
  for (const [list, action] of [[policies.audit, 'LOG'], [policies.deny, 'DENY'], [policies.allow, 'ALLOW']] as const) {
    const built = build(list, action, b);
    if (built) authz.push(httpFilter(built));
  }
  return { custom, authz };
}

/** The network RBAC filters for a workload's inbound TCP chains (or a gateway's TCP servers), before tcp_proxy. */
export function rbacNetworkFilters(policies: ApplicablePolicies, opts: RbacOptions, note: Note = () => {}): Json[] {
  const b = context(opts, true, note);
  const out: Json[] = customFilters(policies.custom, opts, b).flatMap((c) =>
    'deny' in c
      ? [{ name: NETWORK_RBAC_FILTER, typed_config: { '@type': NETWORK_RBAC_TYPE, rules: c.deny, stat_prefix: TCP_STAT_PREFIX } }]
      : [
          { name: NETWORK_RBAC_FILTER, typed_config: { '@type': NETWORK_RBAC_TYPE, stat_prefix: TCP_STAT_PREFIX, shadow_rules: c.shadow, shadow_rules_stat_prefix: EXT_AUTHZ_SHADOW_STAT_PREFIX } },
          c.extAuthz,
        ],
  );
  for (const [list, action] of [[policies.audit, 'LOG'], [policies.deny, 'DENY'], [policies.allow, 'ALLOW']] as const) {
    const built = build(list, action, b);
    if (built) out.push(networkFilter(built));
  }
  return out;
}
