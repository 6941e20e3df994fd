/**
 * Decides what a config change means for proxies: a full push, or — when only endpoints moved — an EDS push of the
 * changed clusters, to the proxies watching them (architecture performance rule 2). Derived by comparing the
 * registries, not from a hand-kept list of "endpoint-ish" kinds.
 */
import type { ConfigChange } from '../model/config-store.ts';
import { hostMatches } from '../model/hosts.ts';
import { clusterName } from '../model/names.ts';
import type { PushContext } from '../model/push-context.ts';
import type { Registry } from '../model/service-registry.ts';
import { serviceKey } from '../model/service.ts';

/** Kinds that only feed the service registry; a change to anything else can change any resource. */
const REGISTRY_KINDS = new Set(['ServiceEntry', 'WorkloadEntry', 'Service', 'EndpointSlice', 'Pod', 'Node']);

export type PushPlan = { full: true; reason: string } | { full: false; edsClusters: Set<string>; reason: string } | { none: true };

export function planPush(prev: PushContext, next: Registry, change: ConfigChange): PushPlan {
  for (const k of change.kinds) if (!REGISTRY_KINDS.has(k)) return { full: true, reason: `${k} changed` };
  const prevServices = prev.registry.services;
  if (prevServices.length !== next.services.length) return { full: true, reason: 'services added or removed' };
  const prevByKey = new Map(prevServices.map((s) => [serviceKey(s), s]));
  const changedServices = [];
  for (const s of next.services) {
    const key = serviceKey(s);
    const before = prevByKey.get(key);
    if (!before || JSON.stringify({ ...before, origin: undefined }) !== JSON.stringify({ ...s, origin: undefined })) {
      return { full: true, reason: `service ${s.hostname} changed` };
    }
    const a = prev.registry.endpoints.get(key) ?? [];
    const b = next.endpoints.get(key) ?? [];
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      // DNS clusters carry their endpoints in CDS, so they need a full push.
      if (s.resolution === 'DNS' || s.resolution === 'DNS_ROUND_ROBIN') return { full: true, reason: `DNS service ${s.hostname} endpoints changed` };
      // Headless services get a sidecar listener per endpoint address.
      if (s.resolution === 'NONE' && s.addresses.length === 0) return { full: true, reason: `headless service ${s.hostname} endpoints changed` };
      // Clusters verify the server's identity against the service's accounts (istiod: changed accounts = full push).
      const accounts = (eps: readonly { serviceAccount?: string }[]) => [...new Set(eps.map((e) => e.serviceAccount ?? ''))].sort().join(',');
      if (accounts(a) !== accounts(b)) return { full: true, reason: `service accounts of ${s.hostname} changed` };
      changedServices.push(s);
    }
  }
  if (changedServices.length === 0) return { none: true };
  const edsClusters = new Set<string>();
  for (const s of changedServices) {
    const subsets = new Set<string>(['']);
    for (const dr of prev.destinationRules) {
      if (hostMatches(dr.host, s.hostname)) for (const sub of dr.object.spec.subsets ?? []) subsets.add(sub.name);
    }
    for (const p of s.ports) for (const sub of subsets) edsClusters.add(clusterName('outbound', p.port, sub, s.hostname));
  }
  return { full: false, edsClusters, reason: `endpoints of ${changedServices.length} service(s) changed` };
}
