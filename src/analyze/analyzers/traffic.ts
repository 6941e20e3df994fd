/**
 * Traffic-management anti-patterns:
 * - MZA0003: a DestinationRule subset no VirtualService routes (or mirrors) to — "DestinationRule without
 *   VirtualService: subsets in DestinationRule are only meaningful with VirtualService";
 * - MZA0004: fault injection on a route that every request takes — "Fault injection in production without a kill
 *   switch": nothing but editing or deleting the VirtualService turns it off.
 */
import type { DestinationRuleSpec } from '../../config/kinds/destination-rule.ts';
import type { HTTPFaultInjection, HTTPMatchRequest, VirtualServiceSpec } from '../../config/kinds/virtual-service.ts';
import { resolveShortName } from '../../model/hosts.ts';
import type { Analyzer } from '../analyzer.ts';
import { T } from '../codes.ts';
import { visibleFrom } from '../context.ts';
import { destinationsOf } from './virtual-service.ts';

export const unusedSubsetAnalyzer: Analyzer = {
  name: 'mizzen.UnusedDestinationRuleSubsetAnalyzer',
  description: 'Checks that every DestinationRule subset is used by a VirtualService route or mirror',
  types: [T.UnusedDestinationRuleSubset],
  analyze(ctx) {
    const suffix = ctx.mesh.domainSuffix;
    const vss = ctx.objects<VirtualServiceSpec>('VirtualService');
    for (const dr of ctx.objects<DestinationRuleSpec>('DestinationRule')) {
      const subsets = dr.spec.subsets ?? [];
      if (subsets.length === 0) continue;
      const drNs = dr.metadata.namespace;
      const fqdn = resolveShortName(dr.spec.host, drNs, suffix);
      const used = new Set<string>();
      let routed = false;
      for (const vs of vss) {
        const vsNs = vs.metadata.namespace;
        if (!visibleFrom(dr.spec.exportTo, drNs, vsNs)) continue;
        for (const d of destinationsOf(vs)) {
          if (resolveShortName(d.destination.host, vsNs, suffix) !== fqdn) continue;
          routed = true;
          if (d.destination.subset) used.add(d.destination.subset);
        }
      }
      subsets.forEach((s, i) => {
        if (used.has(s.name)) return;
        const why = routed
          ? `no VirtualService route or mirror names subset ${JSON.stringify(s.name)} of ${dr.spec.host}`
          : `no VirtualService routes to ${dr.spec.host} at all`;
        ctx.report(
          T.UnusedDestinationRuleSubset,
          ctx.ref(dr, ['spec', 'subsets', i, 'name']),
          `Subset ${JSON.stringify(s.name)} is never used: ${why}. Subsets only take effect when a VirtualService route sends traffic to them; add the route, or remove the subset.`,
        );
      });
    }
  },
};

/** Conditions the caller controls: a request opts in to a route matched on these (a header, a query, its source). */
function gated(m: HTTPMatchRequest): boolean {
  const has = (o: object | undefined) => o !== undefined && Object.keys(o).length > 0;
  return has(m.headers) || has(m.queryParams) || has(m.withoutHeaders) || has(m.sourceLabels) || Boolean(m.sourceNamespace);
}

const pct = (p: { value: number } | undefined, legacy?: number) => `${p?.value ?? legacy ?? 100}%`;

function describeFault(f: HTTPFaultInjection): string {
  const parts: string[] = [];
  if (f.delay) parts.push(`delay ${f.delay.fixedDelay ?? f.delay.exponentialDelay ?? ''} on ${pct(f.delay.percentage, f.delay.percent)}`.replace('  ', ' '));
  if (f.abort) {
    const status = f.abort.httpStatus !== undefined ? `HTTP ${f.abort.httpStatus}` : f.abort.grpcStatus ? `gRPC ${f.abort.grpcStatus}` : f.abort.http2Error ? `HTTP/2 ${f.abort.http2Error}` : 'abort';
    parts.push(`abort with ${status} on ${pct(f.abort.percentage)}`);
  }
  return parts.join(' and ');
}

export const faultKillSwitchAnalyzer: Analyzer = {
  name: 'mizzen.FaultInjectionKillSwitchAnalyzer',
  description: 'Checks that fault injection only hits requests that opt in (a header, query or source match)',
  types: [T.FaultInjectionWithoutKillSwitch],
  analyze(ctx) {
    for (const vs of ctx.objects<VirtualServiceSpec>('VirtualService')) {
      const http = vs.spec.http ?? [];
      http.forEach((route, i) => {
        const f = route.fault;
        if (!f || (!f.delay && !f.abort)) return;
        const matches = route.match ?? [];
        // Match entries are ORed: one entry without a gate lets every request of that kind in.
        if (matches.length > 0 && matches.every(gated)) return;
        const others = http.filter((r) => !r.fault).length;
        const deletion =
          others > 0
            ? `deleting this VirtualService would also drop its ${others} other route${others === 1 ? '' : 's'}, so there is no clean kill switch`
            : 'only deleting this VirtualService turns it off';
        const hosts = (vs.spec.hosts ?? []).join(', ');
        ctx.report(
          T.FaultInjectionWithoutKillSwitch,
          ctx.ref(vs, ['spec', 'http', i, 'fault']),
          `Fault injection (${describeFault(f)}) applies to every request of http[${i}] for ${hosts}: ${deletion}. Gate it behind a request header match (e.g. x-chaos-test: "on") so only test traffic opts in, and keep it in its own VirtualService you can delete.`,
        );
      });
    }
  },
};
