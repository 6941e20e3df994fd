/**
 * One AuthorizationPolicy rule → one Envoy RBAC `Policy{permissions, principals}` (istiod
 * pilot/pkg/security/authz/model/model.go): each `from` becomes one principal and each `to` one permission (OR-ed by
 * Envoy), the `when` conditions are appended to every one of them, fields inside a source/operation are AND-ed, the
 * values of one field OR-ed, and `not*` values wrapped in a `not`. Field order follows istiod (principals,
 * requestPrincipals, serviceAccounts, namespaces, remoteIpBlocks, ipBlocks, then `when`; hosts, methods, paths, ports,
 * then `when`), so the output reads like istiod's.
 *
 * Fail-closed asymmetry (model.go checkError, istio-xds.md §7.3): a value that cannot be translated here (an HTTP-only
 * attribute on a TCP chain) drops the whole rule of an ALLOW policy (narrower allow) but only that value of a
 * DENY/AUDIT/CUSTOM policy (wider deny).
 */
import type { Condition, Operation, Rule, Source } from '../../config/kinds/authorization-policy.ts';
import type { Json } from './common.ts';
import { isError, type AttributeGenerator, type GenContext, type GenError } from './rbac-match.ts';
import { HOST_KEY, METHOD_KEY, PATH_KEY, PORT_KEY, permissionGenerator } from './rbac-permission.ts';
import { principalGenerator } from './rbac-principal.ts';

/** Envoy RBAC action of the filter a rule goes into (CUSTOM rules are DENY-shaped: they pick requests to check). */
export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

interface Item {
  key: string;
  values: readonly string[];
  notValues: readonly string[];
  gen: AttributeGenerator;
}

/** Trust domains: the mesh's, then its aliases (trustdomain.NewBundle). */
export interface TrustDomainBundle {
  trustDomains: readonly string[];
}

const LOCAL_TRUST_DOMAIN = 'cluster.local';
const tdMatches = (pattern: string, td: string) => pattern === td || (pattern.startsWith('*') && td.endsWith(pattern.slice(1)));

/**
 * ReplaceTrustDomainAliases: a principal `<td>/ns/<ns>/sa/<sa>` whose trust domain is the mesh's, one of its aliases, or
 * `cluster.local` (which stands for the local trust domain) is expanded to one principal per trust domain of the bundle;
 * other principals, and those whose trust domain is `*` or that are not of that shape, stay as written.
 */
export function migrateTrustDomain(principals: readonly string[], bundle: TrustDomainBundle): string[] {
  const out: string[] = [];
  for (const p of principals) {
    const parts = p.split('/');
    const td = parts[0] ?? '';
    if (parts.length !== 5 || td === '*' || !(bundle.trustDomains.some((t) => tdMatches(td, t)) || td === LOCAL_TRUST_DOMAIN)) {
      out.push(p);
      continue;
    }
    const expanded: string[] = [];
    for (const t of bundle.trustDomains) {
      const next = tdMatches(td, t) && td.startsWith('*') ? p : [t, ...parts.slice(1)].join('/');
      if (!expanded.includes(next)) expanded.push(next);
    }
    out.push(...expanded);
  }
  return out;
}

/** An ALLOW rule that this chain cannot represent: the builder drops the rule and notes why. */
export class RuleError extends Error {}

function item(key: string, values: readonly string[] | undefined, notValues: readonly string[] | undefined, gen: AttributeGenerator | undefined): Item | undefined {
  if (!values?.length && !notValues?.length) return undefined;
  if (!gen) throw new RuleError(`unknown attribute ${key}`);
  return { key, values: values ?? [], notValues: notValues ?? [], gen };
}

const present = (xs: Array<Item | undefined>): Item[] => xs.filter((x): x is Item => x !== undefined);

/**
 * The `when` items of one side. Unknown keys cannot pass validation; should one arrive, an ALLOW rule is dropped
 * (RuleError) and any other rule ignores the condition (wider).
 */
function whenItems(when: readonly Condition[] | undefined, side: 'principal' | 'permission', action: RbacAction, bundle: TrustDomainBundle, dropped: string[]): Item[] {
  const out: Item[] = [];
  for (const c of when ?? []) {
    const p = principalGenerator(c.key);
    const q = permissionGenerator(c.key);
    if (!p && !q) {
      if (action === 'ALLOW') throw new RuleError(`unknown attribute ${c.key}`);
      if (side === 'principal') dropped.push(`unknown attribute ${c.key}`);
      continue;
    }
    const gen = side === 'principal' ? p : q;
    // MigrateTrustDomain rewrites source.principal wherever it comes from.
    const migrate = (vs: readonly string[] | undefined) => (c.key === 'source.principal' && vs?.length ? migrateTrustDomain(vs, bundle) : vs);
    if (gen) out.push(...present([item(c.key, migrate(c.values), migrate(c.notValues), gen)]));
  }
  return out;
}

function sourceItems(s: Source, bundle: TrustDomainBundle): Item[] {
  const principals = s.principals?.length ? migrateTrustDomain(s.principals, bundle) : undefined;
  const notPrincipals = s.notPrincipals?.length ? migrateTrustDomain(s.notPrincipals, bundle) : undefined;
  return present([
    item('source.principal', principals, notPrincipals, principalGenerator('source.principal')),
    item('request.auth.principal', s.requestPrincipals, s.notRequestPrincipals, principalGenerator('request.auth.principal')),
    item('source.serviceAccount', s.serviceAccounts, s.notServiceAccounts, principalGenerator('source.serviceAccount')),
    item('source.namespace', s.namespaces, s.notNamespaces, principalGenerator('source.namespace')),
    item('remote.ip', s.remoteIpBlocks, s.notRemoteIpBlocks, principalGenerator('remote.ip')),
    item('source.ip', s.ipBlocks, s.notIpBlocks, principalGenerator('source.ip')),
  ]);
}

function operationItems(o: Operation): Item[] {
  return present([
    item(HOST_KEY, o.hosts, o.notHosts, permissionGenerator(HOST_KEY)),
    item(METHOD_KEY, o.methods, o.notMethods, permissionGenerator(METHOD_KEY)),
    item(PATH_KEY, o.paths, o.notPaths, permissionGenerator(PATH_KEY)),
    item(PORT_KEY, o.ports, o.notPorts, permissionGenerator(PORT_KEY)),
  ]);
}

interface Shape {
  and: string;
  andList: string;
  or: string;
  orList: string;
  not: string;
  any: Json;
}
const PERMISSION: Shape = { and: 'and_rules', andList: 'rules', or: 'or_rules', orList: 'rules', not: 'not_rule', any: { any: true } };
const PRINCIPAL: Shape = { and: 'and_ids', andList: 'ids', or: 'or_ids', orList: 'ids', not: 'not_id', any: { any: true } };

/** The matchers of one item (values OR-ed; notValues OR-ed under a not), honouring checkError's asymmetry. */
function itemMatchers(it: Item, shape: Shape, action: RbacAction, ctx: GenContext, dropped: string[]): Json[] {
  const out: Json[] = [];
  const fail = (e: GenError) => {
    if (action === 'ALLOW') throw new RuleError(e.error);
    dropped.push(e.error);
  };
  for (const negated of [false, true]) {
    const values = negated ? it.notValues : it.values;
    if (values.length === 0) continue;
    // A matcher widens the policy's effect when matching more requests can only deny more (see rbac-match.ts).
    const widen = (action !== 'ALLOW') !== negated;
    let m: Json | undefined;
    if (it.gen.all) {
      const r = it.gen.all(it.key, values, ctx);
      if (isError(r)) fail(r);
      else m = r;
    } else if (it.gen.one) {
      const alternatives: Json[] = [];
      for (const v of values) {
        const r = it.gen.one(it.key, v, widen, ctx);
        if (isError(r)) fail(r);
        else alternatives.push(...r);
      }
      if (alternatives.length) m = { [shape.or]: { [shape.orList]: alternatives } };
    }
    if (m) out.push(negated ? { [shape.not]: m } : m);
  }
  return out;
}

function conjunction(items: readonly Item[], shape: Shape, action: RbacAction, ctx: GenContext, dropped: string[]): Json {
  const all = items.flatMap((it) => itemMatchers(it, shape, action, ctx, dropped));
  return { [shape.and]: { [shape.andList]: all.length ? all : [shape.any] } };
}

export interface TranslatedRule {
  /** The Envoy RBAC Policy. */
  policy: Json;
  /** Conditions left out of a DENY/AUDIT/CUSTOM rule on this chain (it matches more than written). */
  dropped: string[];
  /** Values that translate as Istio defines them but are almost certainly not what the author meant. */
  warnings: string[];
}

/** Common authoring mistakes that istiod translates silently (and that then never, or always literally, match). */
function lint(rule: Rule): string[] {
  const out: string[] = [];
  const principals = [...(rule.from ?? []).flatMap((f) => [...(f.source?.principals ?? []), ...(f.source?.notPrincipals ?? [])]), ...(rule.when ?? []).filter((c) => c.key === 'source.principal').flatMap((c) => [...(c.values ?? []), ...(c.notValues ?? [])])];
  for (const p of principals) if (p.startsWith('spiffe://')) out.push(`principal "${p}" never matches: Istio adds "spiffe://" itself; write "${p.slice('spiffe://'.length)}"`);
  for (const t of rule.to ?? []) {
    for (const path of [...(t.operation?.paths ?? []), ...(t.operation?.notPaths ?? [])]) {
      if (path.slice(1, -1).includes('*') && !path.includes('{')) out.push(`path "${path}" has a "*" inside, which Istio matches literally; use "{*}" (one segment) or "{**}" for a wildcard`);
    }
  }
  return out;
}

/**
 * One rule → one Envoy Policy, or a RuleError when the rule cannot be represented (ALLOW with an HTTP-only attribute
 * on a TCP chain; an unknown attribute in an ALLOW rule). `rule` `{}` matches every request.
 */
export function translateRule(rule: Rule, action: RbacAction, ctx: GenContext, bundle: TrustDomainBundle): TranslatedRule {
  const dropped: string[] = [];
  const basePrincipal = whenItems(rule.when, 'principal', action, bundle, dropped);
  const basePermission = whenItems(rule.when, 'permission', action, bundle, dropped);
  const principalLists = rule.from?.length ? rule.from.map((f) => [...(f.source ? sourceItems(f.source, bundle) : []), ...basePrincipal]) : [basePrincipal];
  const permissionLists = rule.to?.length ? rule.to.map((t) => [...(t.operation ? operationItems(t.operation) : []), ...basePermission]) : [basePermission];
  const permissions = permissionLists.map((l) => conjunction(l, PERMISSION, action, ctx, dropped));
  const principals = principalLists.map((l) => conjunction(l, PRINCIPAL, action, ctx, dropped));
  return { policy: { permissions, principals }, dropped: [...new Set(dropped)], warnings: lint(rule) };
}

/** Matches nothing: `spec: {}` and other rule-less policies (builder.go rbacPolicyMatchNever). */
export const MATCH_NEVER_POLICY: Json = Object.freeze({
  permissions: [{ not_rule: { any: true } }],
  principals: [{ not_id: { any: true } }],
});
