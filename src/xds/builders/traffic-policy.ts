/**
 * The effective DestinationRule traffic policy for one cluster (istio-xds.md §4.7): a matching portLevelSettings entry
 * replaces the top-level policy's parts wholesale, then each part the subset sets (or all of them, when the subset has
 * a matching port-level entry) replaces the DestinationRule's.
 */
import type { DestinationRuleSpec, PortTrafficPolicy, TrafficPolicy } from '../../config/kinds/destination-rule.ts';

export type EffectivePolicy = Omit<TrafficPolicy, 'portLevelSettings'>;

function portLevel(policy: TrafficPolicy | undefined, port: number): PortTrafficPolicy | undefined {
  return policy?.portLevelSettings?.find((p) => p.port?.number === port);
}

function resolvePort(policy: TrafficPolicy | undefined, port: number): EffectivePolicy | undefined {
  if (!policy) return undefined;
  const { portLevelSettings: _ignored, ...top } = policy;
  const pl = portLevel(policy, port);
  if (!pl) return top;
  const { port: _p, ...plParts } = pl;
  return { ...top, connectionPool: plParts.connectionPool, loadBalancer: plParts.loadBalancer, outlierDetection: plParts.outlierDetection, tls: plParts.tls };
}

export function effectivePolicy(dr: DestinationRuleSpec | undefined, port: number, subsetName: string): EffectivePolicy | undefined {
  if (!dr) return undefined;
  const base = resolvePort(dr.trafficPolicy, port);
  if (!subsetName) return base;
  const subset = dr.subsets?.find((s) => s.name === subsetName);
  const sp = subset?.trafficPolicy;
  if (!sp) return base;
  const subsetPort = portLevel(sp, port);
  const resolved = resolvePort(sp, port) ?? {};
  const merged: EffectivePolicy = { ...(base ?? {}) };
  const parts = ['connectionPool', 'outlierDetection', 'loadBalancer', 'tls'] as const;
  for (const part of parts) {
    if (subsetPort || resolved[part] !== undefined) (merged as Record<string, unknown>)[part] = resolved[part];
  }
  for (const extra of ['tunnel', 'proxyProtocol', 'retryBudget'] as const) {
    const v = (resolved as Record<string, unknown>)[extra];
    if (v !== undefined) (merged as Record<string, unknown>)[extra] = v;
  }
  return merged;
}
