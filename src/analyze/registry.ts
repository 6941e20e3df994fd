/** Every analyzer `mizzen analyze` runs, in the order `-L` lists them. */
import type { Analyzer } from './analyzer.ts';
import { annotationsAnalyzer, injectionAnalyzer, portNameAnalyzer } from './analyzers/kubernetes.ts';
import { apiVersionAnalyzer, sidecarResourcesAnalyzer } from './analyzers/operations.ts';
import { schemaAnalyzer } from './analyzers/schema.ts';
import { authzBaselineAnalyzer, mtlsConflictAnalyzer, strictMtlsAnalyzer } from './analyzers/security.ts';
import { faultKillSwitchAnalyzer, unusedSubsetAnalyzer } from './analyzers/traffic.ts';
import {
  conflictingMeshGatewayHostsAnalyzer,
  destinationHostAnalyzer,
  destinationRuleAnalyzer,
  gatewayAnalyzer,
} from './analyzers/virtual-service.ts';
import type { MessageType } from './message.ts';

export const ANALYZERS: readonly Analyzer[] = [
  // Istio's analyzers (istioctl analyze), by Istio's names.
  annotationsAnalyzer,
  injectionAnalyzer,
  schemaAnalyzer,
  portNameAnalyzer,
  conflictingMeshGatewayHostsAnalyzer,
  destinationHostAnalyzer,
  destinationRuleAnalyzer,
  gatewayAnalyzer,
  mtlsConflictAnalyzer,
  // mizzen's anti-pattern analyzers (MZA codes, docs/analyzers.md).
  strictMtlsAnalyzer,
  authzBaselineAnalyzer,
  unusedSubsetAnalyzer,
  faultKillSwitchAnalyzer,
  sidecarResourcesAnalyzer,
  apiVersionAnalyzer,
];

/** Every message type the analyzers can emit, by code. */
export function messageTypes(analyzers: readonly Analyzer[] = ANALYZERS): MessageType[] {
  const byCode = new Map<string, MessageType>();
  for (const a of analyzers) for (const t of a.types) byCode.set(t.code, t);
  return [...byCode.values()].sort((a, b) => a.code.localeCompare(b.code));
}
