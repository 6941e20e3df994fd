/**
 * Istio's VirtualService analyzers (pkg/config/analysis/analyzers/virtualservice):
 * - DestinationHostAnalyzer — IST0101 "Referenced host not found" / "mirror host": a route or mirror names a host no
 *   Service or ServiceEntry visible from the VirtualService's namespace provides;
 * - DestinationRuleAnalyzer — IST0101 "host+subset in destinationrule": a route names a subset no DestinationRule for
 *   that host defines;
 * - GatewayAnalyzer — IST0101 "gateway" for a Gateway that does not exist, IST0132 when none of the VirtualService's
 *   hosts is served by a Gateway it binds to;
 * - ConflictingMeshGatewayHostsAnalyzer — IST0109: two VirtualServices bound to the mesh gateway claim the same host
 *   (Istio merges them in an undefined order).
 */
import type { DestinationRuleSpec } from '../../config/kinds/destination-rule.ts';
import type { GatewaySpec } from '../../config/kinds/gateway.ts';
import type { Destination, VirtualServiceSpec } from '../../config/kinds/virtual-service.ts';
import type { ConfigObject } from '../../config/object.ts';
import { hostMatches, hostsOverlap, resolveShortName } from '../../model/hosts.ts';
import type { Service } from '../../model/service.ts';
import type { Analyzer } from '../analyzer.ts';
import { T, Text } from '../codes.ts';
import { visibleFrom, type AnalysisContext } from '../context.ts';

type VS = ConfigObject<VirtualServiceSpec>;

export interface RouteDestination {
  destination: Destination;
  /** Path of the `destination` object in the VirtualService. */
  path: Array<string | number>;
  mirror: boolean;
}

/** Every destination of a VirtualService: http/tcp/tls routes, then mirrors. */
export function destinationsOf(vs: VS): RouteDestination[] {
  const out: RouteDestination[] = [];
  const s = vs.spec;
  (s.http ?? []).forEach((h, i) => {
    (h.route ?? []).forEach((r, j) => out.push({ destination: r.destination, path: ['spec', 'http', i, 'route', j, 'destination'], mirror: false }));
  });
  for (const proto of ['tcp', 'tls'] as const) {
    (s[proto] ?? []).forEach((t, i) => {
      (t.route ?? []).forEach((r, j) => out.push({ destination: r.destination, path: ['spec', proto, i, 'route', j, 'destination'], mirror: false }));
    });
  }
  (s.http ?? []).forEach((h, i) => {
    if (h.mirror) out.push({ destination: h.mirror, path: ['spec', 'http', i, 'mirror'], mirror: true });
    (h.mirrors ?? []).forEach((m, k) => out.push({ destination: m.destination, path: ['spec', 'http', i, 'mirrors', k, 'destination'], mirror: true }));
  });
  return out;
}

const wildcardServices = new WeakMap<AnalysisContext, readonly Service[]>();

/**
 * Does a Service or ServiceEntry visible from `ns` provide `host` (a short name resolves in `ns`)? Exact hostnames
 * come from the registry's index; ServiceEntry wildcards (`*.example.com`) and wildcard destinations are matched.
 */
export function hostExists(ctx: AnalysisContext, host: string, ns: string): boolean {
  const fqdn = resolveShortName(host, ns, ctx.mesh.domainSuffix);
  const visible = (s: Service) => visibleFrom(s.exportTo, s.namespace, ns);
  if ((ctx.registry.byHost.get(fqdn) ?? []).some(visible)) return true;
  if (fqdn.startsWith('*')) return ctx.registry.services.some((s) => hostMatches(fqdn, s.hostname) && visible(s));
  let wild = wildcardServices.get(ctx);
  if (!wild) {
    wild = ctx.registry.services.filter((s) => s.hostname.startsWith('*'));
    wildcardServices.set(ctx, wild);
  }
  return wild.some((s) => hostMatches(s.hostname, fqdn) && visible(s));
}

/** Subsets defined for a host (resolved in `ns`) by DestinationRules visible from `ns`. */
export function subsetsFor(ctx: AnalysisContext, host: string, ns: string): Set<string> {
  const fqdn = resolveShortName(host, ns, ctx.mesh.domainSuffix);
  const out = new Set<string>();
  for (const dr of ctx.objects<DestinationRuleSpec>('DestinationRule')) {
    if (resolveShortName(dr.spec.host, dr.metadata.namespace, ctx.mesh.domainSuffix) !== fqdn) continue;
    if (!visibleFrom(dr.spec.exportTo, dr.metadata.namespace, ns)) continue;
    for (const s of dr.spec.subsets ?? []) out.add(s.name);
  }
  return out;
}

export const destinationHostAnalyzer: Analyzer = {
  name: 'virtualservice.DestinationHostAnalyzer',
  description: 'Checks the destination hosts associated with each virtual service',
  types: [T.ReferencedResourceNotFound],
  analyze(ctx) {
    for (const vs of ctx.objects<VirtualServiceSpec>('VirtualService')) {
      const ns = vs.metadata.namespace;
      for (const d of destinationsOf(vs)) {
        if (hostExists(ctx, d.destination.host, ns)) continue;
        ctx.report(T.ReferencedResourceNotFound, ctx.ref(vs, [...d.path, 'host']), Text.referencedResourceNotFound(d.mirror ? 'mirror host' : 'host', d.destination.host));
      }
    }
  },
};

export const destinationRuleAnalyzer: Analyzer = {
  name: 'virtualservice.DestinationRuleAnalyzer',
  description: 'Checks the destination rules associated with each virtual service',
  types: [T.ReferencedResourceNotFound],
  analyze(ctx) {
    for (const vs of ctx.objects<VirtualServiceSpec>('VirtualService')) {
      const ns = vs.metadata.namespace;
      for (const d of destinationsOf(vs)) {
        const subset = d.destination.subset;
        if (!subset || subsetsFor(ctx, d.destination.host, ns).has(subset)) continue;
        ctx.report(
          T.ReferencedResourceNotFound,
          ctx.ref(vs, [...d.path, 'subset']),
          Text.referencedResourceNotFound(d.mirror ? 'mirror+subset in destinationrule' : 'host+subset in destinationrule', `${d.destination.host}+${subset}`),
        );
      }
    }
  },
};

/** `ns/name` or `name` (in the VirtualService's namespace) → the Gateway's key. */
function gatewayKey(ref: string, vsNamespace: string): { namespace: string; name: string } {
  const slash = ref.indexOf('/');
  return slash < 0 ? { namespace: vsNamespace, name: ref } : { namespace: ref.slice(0, slash), name: ref.slice(slash + 1) };
}

/**
 * The hosts a Gateway offers to VirtualServices of `vsNamespace`: server hosts are `[ns/]host`, where `./` is the
 * Gateway's namespace and `*` / no prefix any namespace (Istio's host.NamesForNamespace).
 */
function gatewayHostsFor(gw: ConfigObject<GatewaySpec>, vsNamespace: string): string[] {
  const out: string[] = [];
  for (const server of gw.spec.servers ?? []) {
    for (const h of server.hosts ?? []) {
      const slash = h.indexOf('/');
      if (slash < 0) {
        out.push(h);
        continue;
      }
      const ns = h.slice(0, slash);
      const host = h.slice(slash + 1);
      if (ns === '*' || ns === vsNamespace || (ns === '.' && gw.metadata.namespace === vsNamespace)) out.push(host);
    }
  }
  return out;
}

export const gatewayAnalyzer: Analyzer = {
  name: 'virtualservice.GatewayAnalyzer',
  description: 'Checks the gateways associated with each virtual service',
  types: [T.ReferencedResourceNotFound, T.VirtualServiceHostNotFoundInGateway],
  analyze(ctx) {
    const gateways = new Map(ctx.objects<GatewaySpec>('Gateway').map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g]));
    for (const vs of ctx.objects<VirtualServiceSpec>('VirtualService')) {
      const ns = vs.metadata.namespace;
      (vs.spec.gateways ?? []).forEach((ref, i) => {
        if (ref === 'mesh') return;
        const key = gatewayKey(ref, ns);
        const gw = gateways.get(`${key.namespace}/${key.name}`);
        const at = ctx.ref(vs, ['spec', 'gateways', i]);
        if (!gw) {
          ctx.report(T.ReferencedResourceNotFound, at, Text.referencedResourceNotFound('gateway', ref));
          // Istio would also report IST0132 here (a missing Gateway serves no host); one message says it all.
          return;
        }
        const vsHosts = vs.spec.hosts ?? [];
        const offered = gatewayHostsFor(gw, ns);
        if (vsHosts.some((h) => offered.some((g) => hostsOverlap(g, h)))) return;
        ctx.report(T.VirtualServiceHostNotFoundInGateway, at, Text.vsHostNotFoundInGateway(vsHosts, `${ns}/${vs.metadata.name}`, `${key.namespace}/${key.name}`));
      });
    }
  },
};

export const conflictingMeshGatewayHostsAnalyzer: Analyzer = {
  name: 'virtualservice.ConflictingMeshGatewayHostsAnalyzer',
  description: 'Checks if multiple virtual services associated with the mesh gateway have conflicting hosts',
  types: [T.ConflictingMeshGatewayVirtualServiceHosts],
  analyze(ctx) {
    const byScopedHost = new Map<string, VS[]>();
    for (const vs of ctx.objects<VirtualServiceSpec>('VirtualService')) {
      const gws = vs.spec.gateways ?? [];
      // No gateways means the mesh gateway.
      if (gws.length > 0 && !gws.includes('mesh')) continue;
      const ns = vs.metadata.namespace;
      const exportTo = vs.spec.exportTo ?? [];
      const scopes = exportTo.length === 0 || exportTo.includes('*') ? ['*'] : [...new Set(exportTo.map((e) => (e === '.' ? ns : e)))];
      for (const scope of scopes) {
        for (const h of new Set(vs.spec.hosts ?? [])) {
          const key = `${scope}/${resolveShortName(h, ns, ctx.mesh.domainSuffix)}`;
          byScopedHost.set(key, [...(byScopedHost.get(key) ?? []), vs]);
        }
      }
    }
    for (const [scopedHost, list] of byScopedHost) {
      if (list.length < 2) continue;
      const names = list.map((v) => `${v.metadata.namespace}/${v.metadata.name}`).join(',');
      for (const vs of list) ctx.report(T.ConflictingMeshGatewayVirtualServiceHosts, ctx.ref(vs, ['metadata', 'name']), Text.conflictingMeshGatewayHosts(names, scopedHost));
    }
  },
};
