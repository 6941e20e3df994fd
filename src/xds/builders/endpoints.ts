/**
 * Endpoints → ClusterLoadAssignment (istio-xds.md §5, §4.6): one locality group per `region/zone/subzone`, weights
 * summed per locality (gRPC drops localities without a weight), and failover priorities by distance from the proxy
 * when the DestinationRule turns on outlier detection.
 */
import type { LocalityLoadBalancerSetting } from '../../config/kinds/destination-rule.ts';
import type { Endpoint } from '../../model/service.ts';
import type { Json } from './common.ts';

export interface LoadAssignmentOptions {
  /** Proxy locality `region/zone/subzone`; empty when unknown. */
  proxyLocality: string;
  /** Apply locality failover priorities (DR has outlier detection and locality LB is enabled). */
  failover: boolean;
  setting?: LocalityLoadBalancerSetting;
  /** Metadata per endpoint (Envoy sidecars: tlsMode, workload); none for proxyless gRPC. */
  metadata?: (e: Endpoint) => Json | undefined;
}

function splitLocality(l: string): { region: string; zone: string; sub_zone: string } {
  const [region = '', zone = '', sub_zone = ''] = l.split('/');
  return { region, zone, sub_zone };
}

/** Distance from the proxy: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere (istiod's LbPriority). */
function distance(proxy: string, ep: string): number {
  const p = splitLocality(proxy);
  const e = splitLocality(ep);
  if (p.region !== e.region) return 3;
  if (p.zone !== e.zone) return 2;
  if (p.sub_zone !== e.sub_zone) return 1;
  return 0;
}

function failoverPriority(proxyLocality: string, epLocality: string, setting: LocalityLoadBalancerSetting | undefined): number {
  let prio = distance(proxyLocality, epLocality);
  const proxyRegion = splitLocality(proxyLocality).region;
  const epRegion = splitLocality(epLocality).region;
  for (const f of setting?.failover ?? []) {
    if (f.from === proxyRegion && prio === 3 && epRegion !== f.to) prio = 4;
  }
  return prio;
}

/** Istio's locality pattern match: `region/zone/subzone` parts, each `*` or missing matches anything. */
export function localityMatches(locality: string, pattern: string): boolean {
  const l = locality.split('/');
  const p = pattern.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '*') continue;
    if ((l[i] ?? '') !== p[i]) return false;
  }
  return true;
}

/**
 * `distribute` (istiod applyLocalityWeights): for the first rule whose `from` matches the proxy, each `to` pattern's
 * weight is shared among the localities it matches, in proportion to their own weights (rounded up); localities no
 * pattern matches get no endpoints. Returns the new weight per locality, or undefined when no rule applies.
 */
function distributedWeights(proxyLocality: string, localities: ReadonlyMap<string, number>, setting: LocalityLoadBalancerSetting | undefined): Map<string, number> | undefined {
  const rule = setting?.distribute?.find((d) => d.from !== undefined && localityMatches(proxyLocality, d.from));
  if (!rule) return undefined;
  const out = new Map<string, number>();
  const unmatched = new Set(localities.keys());
  for (const [pattern, weight] of Object.entries(rule.to ?? {})) {
    const matched = [...unmatched].filter((l) => localityMatches(l, pattern));
    const total = matched.reduce((s, l) => s + (localities.get(l) ?? 1), 0);
    for (const l of matched) {
      unmatched.delete(l);
      const w = Math.ceil(((localities.get(l) ?? 1) * weight) / total);
      if (w > 0) out.set(l, w);
    }
  }
  return out;
}

export function buildLoadAssignment(clusterName: string, endpoints: readonly Endpoint[], o: LoadAssignmentOptions): Json {
  const groups = new Map<string, Endpoint[]>();
  const seen = new Set<string>();
  for (const e of endpoints) {
    if (!e.healthy) continue;
    const key = `${e.address}:${e.port}`;
    if (seen.has(key)) continue; // duplicate addresses make gRPC reject the whole assignment
    seen.add(key);
    groups.set(e.locality, [...(groups.get(e.locality) ?? []), e]);
  }
  let localities = [...groups.keys()].sort();
  const sums = new Map(localities.map((l) => [l, groups.get(l)!.reduce((sum, e) => sum + e.weight, 0)] as const));
  const distributed = o.proxyLocality !== '' && o.setting?.enabled !== false ? distributedWeights(o.proxyLocality, sums, o.setting) : undefined;
  if (distributed) localities = localities.filter((l) => distributed.has(l));
  const applyFailover = !distributed && o.failover && o.proxyLocality !== '' && o.setting?.enabled !== false;
  const raw = localities.map((l) => (applyFailover ? failoverPriority(o.proxyLocality, l, o.setting) : 0));
  // Priorities must be contiguous from 0 (gRPC validates this; Envoy expects it).
  const distinct = [...new Set(raw)].sort((a, b) => a - b);
  const out = localities.map((l, i) => {
    const eps = groups.get(l)!;
    const weight = distributed?.get(l) ?? eps.reduce((s, e) => s + e.weight, 0);
    const priority = distinct.indexOf(raw[i]!);
    const group: Json = {
      locality: splitLocality(l),
      load_balancing_weight: { value: Math.max(1, weight) },
      lb_endpoints: eps.map((e) => {
        const md = o.metadata?.(e);
        return {
          endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
          health_status: 'HEALTHY',
          load_balancing_weight: { value: Math.max(1, e.weight) },
          ...(md ? { metadata: md } : {}),
        };
      }),
    };
    if (priority > 0) group.priority = priority;
    return group;
  });
  return { cluster_name: clusterName, endpoints: out };
}
