/**
 * The effective PeerAuthentication mTLS mode for a workload port (istio-xds.md §6.1): the mesh-wide policy (root
 * namespace, no selector), overridden by the namespace policy, overridden by a workload policy whose selector matches;
 * UNSET inherits from the level above; for duplicates the oldest wins. Port-level modes come only from the workload
 * policy and are keyed by workload (target) port. No policy at all means PERMISSIVE.
 */
import type { PeerAuthenticationSpec } from '../config/kinds/peer-authentication.ts';
import type { ConfigObject } from '../config/object.ts';
import type { PushContext } from './push-context.ts';
import type { ProxyView } from './proxy-view.ts';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

function oldest<T extends ConfigObject<unknown>>(list: T[]): T | undefined {
  return [...list].sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp) || a.metadata.name.localeCompare(b.metadata.name))[0];
}

function modeOf(p: ConfigObject<PeerAuthenticationSpec> | undefined): MtlsMode | undefined {
  const m = p?.spec.mtls?.mode;
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined;
}

export interface WorkloadMtls {
  mode: MtlsMode;
  /** Per workload port overrides. */
  ports: ReadonlyMap<number, MtlsMode>;
}

export function workloadMtls(push: PushContext, view: ProxyView): WorkloadMtls {
  const all = push.config.ofKind<PeerAuthenticationSpec>('PeerAuthentication');
  const root = push.mesh.rootNamespace;
  const ns = view.namespace();
  const noSelector = (p: ConfigObject<PeerAuthenticationSpec>) => Object.keys(p.spec.selector?.matchLabels ?? {}).length === 0;
  const meshPolicy = oldest(all.filter((p) => p.metadata.namespace === root && noSelector(p)));
  const nsPolicy = ns === root ? undefined : oldest(all.filter((p) => p.metadata.namespace === ns && noSelector(p)));
  // A policy with a selector in the root namespace is not a workload policy and is ignored (ComposePeerAuthentication).
  const workloadPolicy = ns === root ? undefined : oldest(all.filter((p) => p.metadata.namespace === ns && !noSelector(p) && view.selectedBy(p.spec.selector?.matchLabels)));
  const inherited = modeOf(nsPolicy) ?? modeOf(meshPolicy) ?? 'PERMISSIVE';
  const mode = modeOf(workloadPolicy) ?? inherited;
  const ports = new Map<number, MtlsMode>();
  for (const [port, m] of Object.entries(workloadPolicy?.spec.portLevelMtls ?? {})) {
    const pm = m.mode === 'STRICT' || m.mode === 'PERMISSIVE' || m.mode === 'DISABLE' ? m.mode : mode;
    ports.set(Number(port), pm);
  }
  return { mode, ports };
}

export function portMtlsMode(m: WorkloadMtls, port: number): MtlsMode {
  return m.ports.get(port) ?? m.mode;
}
