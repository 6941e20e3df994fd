/** The subset of Istio's MeshConfig that mizzen reads, with Istio's defaults (pkg/config/mesh DefaultMeshConfig). */
export interface MeshConfig {
  rootNamespace: string;
  trustDomain: string;
  /** Kubernetes cluster domain: services are `<name>.<ns>.svc.<domainSuffix>`. */
  domainSuffix: string;
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  connectTimeoutMs: number;
  enableAutoMtls: boolean;
  localityLbEnabled: boolean;
  defaultServiceExportTo: string[];
  defaultVirtualServiceExportTo: string[];
  defaultDestinationRuleExportTo: string[];
}

export const DEFAULT_MESH: MeshConfig = {
  rootNamespace: 'istio-system',
  trustDomain: 'cluster.local',
  domainSuffix: 'cluster.local',
  outboundTrafficPolicy: 'ALLOW_ANY',
  connectTimeoutMs: 10_000,
  enableAutoMtls: true,
  localityLbEnabled: true,
  defaultServiceExportTo: ['*'],
  defaultVirtualServiceExportTo: ['*'],
  defaultDestinationRuleExportTo: ['*'],
};
