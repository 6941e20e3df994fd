/**
 * mTLS and authorization analyzers:
 * - IST0113 (Istio's retired MTLSPolicyConflict, revived for PeerAuthentication): a DestinationRule makes clients
 *   send plaintext (DISABLE, or SIMPLE TLS without a client certificate) to workloads whose PeerAuthentication is
 *   STRICT, or ISTIO_MUTUAL to workloads whose PeerAuthentication is DISABLE: every such request fails;
 * - MZA0001: STRICT mTLS while workloads known to run without a sidecar remain — their plaintext requests are refused
 *   ("Enabling STRICT mTLS before all services are in the mesh — breaks plaintext services immediately");
 * - MZA0002: an ALLOW policy that selects some workloads while no deny-all baseline covers the rest of the namespace
 *   ("No deny-all baseline before adding allow policies — implicit allow is not zero-trust").
 */
import type { AuthorizationPolicySpec } from '../../config/kinds/authorization-policy.ts';
import type { DestinationRuleSpec, TrafficPolicy } from '../../config/kinds/destination-rule.ts';
import type { PeerAuthenticationSpec } from '../../config/kinds/peer-authentication.ts';
import type { ConfigObject } from '../../config/object.ts';
import { resolveShortName } from '../../model/hosts.ts';
import { labelsMatch } from '../../model/service.ts';
import type { Analyzer } from '../analyzer.ts';
import { T, Text } from '../codes.ts';
import type { AnalysisContext } from '../context.ts';
import { meshMembership, type Workload } from '../workloads.ts';

type PA = ConfigObject<PeerAuthenticationSpec>;
type Mode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

const modeOf = (p: PA | undefined): Mode | undefined => {
  const m = p?.spec.mtls?.mode;
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined;
};
const hasSelector = (p: PA) => Object.keys(p.spec.selector?.matchLabels ?? {}).length > 0;
/** Oldest first, then by name: Istio's precedence among duplicates (objects here are already sorted by name). */
const oldest = (list: PA[]): PA | undefined =>
  [...list].sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp))[0];

/**
 * The PeerAuthentication mode of workloads with `labels` in `ns`, and the policy that decides it: workload policy
 * over namespace policy over the mesh policy (root namespace); UNSET inherits; no policy at all is PERMISSIVE.
 */
export function effectiveMtls(ctx: AnalysisContext, ns: string, labels: Readonly<Record<string, string>> | undefined): { mode: Mode; policy?: PA } {
  const all = ctx.objects<PeerAuthenticationSpec>('PeerAuthentication') as PA[];
  const root = ctx.mesh.rootNamespace;
  const mesh = oldest(all.filter((p) => p.metadata.namespace === root && !hasSelector(p)));
  const nsPolicy = ns === root ? undefined : oldest(all.filter((p) => p.metadata.namespace === ns && !hasSelector(p)));
  const workload =
    ns === root || !labels ? undefined : oldest(all.filter((p) => p.metadata.namespace === ns && hasSelector(p) && labelsMatch(p.spec.selector?.matchLabels, labels)));
  for (const p of [workload, nsPolicy, mesh]) {
    const m = modeOf(p);
    if (m && p) return { mode: m, policy: p };
  }
  return { mode: 'PERMISSIVE' };
}

const K8S_HOST = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc\./;

export const mtlsConflictAnalyzer: Analyzer = {
  name: 'mizzen.MTLSPolicyConflictAnalyzer',
  description: 'Checks DestinationRule TLS modes against the PeerAuthentication of the workloads they send to',
  types: [T.MTLSPolicyConflict],
  analyze(ctx) {
    for (const dr of ctx.objects<DestinationRuleSpec>('DestinationRule')) {
      if (dr.spec.workloadSelector) continue;
      const fqdn = resolveShortName(dr.spec.host, dr.metadata.namespace, ctx.mesh.domainSuffix);
      const m = K8S_HOST.exec(fqdn);
      if (!m || !fqdn.endsWith(`.svc.${ctx.mesh.domainSuffix}`)) continue;
      const svcNs = m[3] as string;
      const svc = ctx.registry.byHost.get(fqdn)?.[0];
      const target = effectiveMtls(ctx, svcNs, svc?.selector);
      if (!target.policy) continue;
      const policies: Array<{ tp: TrafficPolicy | undefined; path: Array<string | number> }> = [
        { tp: dr.spec.trafficPolicy, path: ['spec', 'trafficPolicy'] },
        ...(dr.spec.subsets ?? []).map((s, i) => ({ tp: s.trafficPolicy, path: ['spec', 'subsets', i, 'trafficPolicy'] })),
      ];
      for (const { tp, path } of policies) {
        const tls = tp?.tls?.mode;
        if (!tls) continue;
        const drMtls = tls === 'ISTIO_MUTUAL';
        const conflict = (drMtls && target.mode === 'DISABLE') || ((tls === 'DISABLE' || tls === 'SIMPLE') && target.mode === 'STRICT');
        if (!conflict) continue;
        const p = target.policy;
        ctx.report(
          T.MTLSPolicyConflict,
          ctx.ref(dr, [...path, 'tls', 'mode']),
          Text.mtlsPolicyConflict(fqdn, `${dr.metadata.namespace}/${dr.metadata.name}`, drMtls, `${p.metadata.namespace}/${p.metadata.name}`, target.mode),
        );
      }
    }
  },
};

function describeWorkload(w: Workload): string {
  return `${w.kind} ${w.namespace}/${w.name}`;
}

export const strictMtlsAnalyzer: Analyzer = {
  name: 'mizzen.StrictMtlsBeforeMeshCompleteAnalyzer',
  description: 'Checks STRICT PeerAuthentications against workloads that run without a sidecar',
  types: [T.StrictMtlsBeforeMeshComplete],
  analyze(ctx) {
    const outside = ctx.workloads
      .map((w) => ({ w, m: meshMembership(w, ctx.namespaces) }))
      .filter((x): x is { w: Workload; m: { kind: 'none'; reason: string } } => x.m.kind === 'none');
    if (outside.length === 0) return;
    const root = ctx.mesh.rootNamespace;
    for (const pa of ctx.objects<PeerAuthenticationSpec>('PeerAuthentication') as PA[]) {
      if (modeOf(pa) !== 'STRICT') continue;
      const ns = pa.metadata.namespace;
      const meshWide = ns === root && !hasSelector(pa);
      // A selector in the root namespace is not a workload policy: Istio ignores it.
      if (ns === root && !meshWide) continue;
      // Mesh-wide STRICT refuses plaintext from any of them; a namespace or workload policy, from the ones beside it.
      const affected = outside.filter((x) => meshWide || x.w.namespace === ns);
      if (affected.length === 0) continue;
      const scope = meshWide ? 'mesh-wide' : hasSelector(pa) ? `for the workloads it selects in ${ns}` : `in namespace ${ns}`;
      const named = affected.slice(0, 3).map((x) => `${describeWorkload(x.w)} (${x.m.reason})`);
      const more = affected.length > 3 ? ` and ${affected.length - 3} more` : '';
      const subject = affected.length === 1 ? `${named[0]} runs` : `${named.join(', ')}${more} run`;
      ctx.report(
        T.StrictMtlsBeforeMeshComplete,
        ctx.ref(pa, ['spec', 'mtls', 'mode']),
        `STRICT mTLS is enforced ${scope} while ${subject} without a sidecar: their plaintext requests to workloads under this policy are refused. Keep PERMISSIVE until every client is in the mesh (or inject them first).`,
      );
    }
  },
};

type AP = ConfigObject<AuthorizationPolicySpec>;
const targetsAll = (p: AP) =>
  Object.keys(p.spec.selector?.matchLabels ?? {}).length === 0 && !p.spec.targetRef && (p.spec.targetRefs ?? []).length === 0;
const action = (p: AP) => p.spec.action ?? 'ALLOW';
/** A rule without from/to/when matches every request. */
const matchesAll = (p: AP) => (p.spec.rules ?? []).some((r) => !r.from?.length && !r.to?.length && !r.when?.length);

/**
 * A namespace-wide baseline: any selector-less ALLOW policy (the allow-nothing `spec: {}` included) makes every
 * workload of the namespace deny what it does not allow; a selector-less DENY policy with a match-all rule denies
 * everything outright.
 */
function isBaseline(p: AP): boolean {
  if (!targetsAll(p) || p.spec.provider) return false;
  return action(p) === 'ALLOW' || (action(p) === 'DENY' && matchesAll(p));
}

export const authzBaselineAnalyzer: Analyzer = {
  name: 'mizzen.AuthorizationBaselineAnalyzer',
  description: 'Checks that ALLOW policies for some workloads sit on a deny-all baseline',
  types: [T.AllowPolicyWithoutDenyAllBaseline],
  analyze(ctx) {
    const all = ctx.objects<AuthorizationPolicySpec>('AuthorizationPolicy') as AP[];
    const root = ctx.mesh.rootNamespace;
    const baselineIn = (ns: string) => all.some((p) => isBaseline(p) && (p.metadata.namespace === ns || p.metadata.namespace === root));
    for (const p of all) {
      if (action(p) !== 'ALLOW' || targetsAll(p) || (p.spec.rules ?? []).length === 0) continue;
      const ns = p.metadata.namespace;
      if (baselineIn(ns)) continue;
      const where = p.spec.selector ? ['spec', 'selector'] : ['spec', p.spec.targetRef ? 'targetRef' : 'targetRefs'];
      const scope = ns === root ? 'the mesh' : `namespace ${ns}`;
      ctx.report(
        T.AllowPolicyWithoutDenyAllBaseline,
        ctx.ref(p, where),
        `ALLOW policy without a deny-all baseline: workloads in ${scope} that no ALLOW policy selects still accept every request (implicit allow). Add an allow-nothing policy (spec: {}) in ${ns === root ? root : `${ns} or ${root}`}.`,
      );
    }
  },
};
