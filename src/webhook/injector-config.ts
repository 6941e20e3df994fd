/** The injector's configuration: mesh and values as Istio's injector ConfigMap carries them, with Istio's defaults. */
import type { StringMap, LabelSelector } from './kube-types.ts';

/** The ProxyConfig (istio/api mesh/v1alpha1/proxy.proto) as JSON; only the fields injection reads are typed. */
export interface ProxyConfigJson {
  statusPort?: number;
  interceptionMode?: string;
  holdApplicationUntilProxyStarts?: boolean;
  proxyMetadata?: StringMap;
  discoveryAddress?: string;
  [key: string]: unknown;
}

/** What Istio spreads over the `istio-sidecar-injector` ConfigMap (config + values) and the MeshConfig. */
export interface InjectorConfig {
  /** The revision this injector serves (`default`, or e.g. `canary`). */
  revision: string;
  /** Revision tags that point at this revision (`istio.io/rev: <tag>` selects it too). */
  revisionTags: string[];
  /** `config.policy`: `enabled` (inject unless the pod says false) or `disabled` (only when the pod says true). */
  policy: string;
  /** The `auto.` webhook: every unlabelled namespace (but kube-system & co.) is injected. */
  enableNamespacesByDefault: boolean;
  neverInjectSelector: LabelSelector[];
  alwaysInjectSelector: LabelSelector[];
  defaultTemplates: string[];
  /** `inject.istio.io/templates` aliases: name → templates. */
  aliases: Record<string, string[]>;
  /** Added to every injected pod (`injectedAnnotations`). */
  injectedAnnotations: StringMap;
  mesh: InjectMeshConfig;
  values: InjectorValues;
}

export interface InjectMeshConfig {
  trustDomain: string;
  meshId?: string;
  enablePrometheusMerge: boolean;
  /** MeshConfig.defaultConfig; a pod's `proxy.istio.io/config` is merged over it. */
  defaultConfig: ProxyConfigJson;
}

/** The chart's values.yaml settings the templates read (global.proxy.*, global.*, sidecarInjectorWebhook.*). */
export interface InjectorValues {
  proxyImage: string;
  proxyInitImage: string;
  imagePullPolicy?: string;
  imagePullSecrets: string[];
  clusterDomain: string;
  clusterId: string;
  network?: string;
  istioNamespace: string;
  /** Default: `istiod[-<rev>].<istioNamespace>.svc:15012`. */
  caAddress?: string;
  /** Plaintext xDS for proxyless gRPC (mizzen agent's XDS_ADDR); default `istiod[-<rev>].<istioNamespace>.svc:15010`. */
  xdsAddress?: string;
  pilotCertProvider: string;
  logLevel: string;
  componentLogLevel: string;
  agentLogLevel: string;
  includeIPRanges: string;
  excludeIPRanges: string;
  excludeInboundPorts: string;
  privileged: boolean;
  capNetBindService: boolean;
  holdApplicationUntilProxyStarts: boolean;
  /** ENABLE_NATIVE_SIDECARS: `auto` asks the cluster (nativeSidecarsSupported on the request). */
  nativeSidecars: 'true' | 'false' | 'auto';
  rewriteAppHTTPProbe: boolean;
  resources: { requests?: StringMap; limits?: StringMap };
  readiness: { initialDelaySeconds: number; periodSeconds: number; failureThreshold: number };
  startupProbe: { enabled: boolean; failureThreshold: number };
  tokenAudience: string;
  trustBundleName: string;
}

export type InjectorConfigInput = Partial<Omit<InjectorConfig, 'mesh' | 'values'>> & {
  mesh?: Partial<InjectMeshConfig>;
  values?: Partial<InjectorValues>;
};

export const DEFAULT_PROXY_IMAGE = 'mizzen/proxy:latest';

/** Istio's DefaultProxyConfig fields the agent reads (pkg/config/mesh/mesh.go). */
export const DEFAULT_PROXY_CONFIG: ProxyConfigJson = {
  configPath: './etc/istio/proxy',
  binaryPath: '/usr/local/bin/envoy',
  serviceCluster: 'istio-proxy',
  drainDuration: '45s',
  terminationDrainDuration: '5s',
  discoveryAddress: 'istiod.istio-system.svc:15012',
  proxyAdminPort: 15000,
  controlPlaneAuthPolicy: 'MUTUAL_TLS',
  statusPort: 15020,
};

export function resolveInjectorConfig(input: InjectorConfigInput = {}): InjectorConfig {
  const revision = input.revision ?? 'default';
  return {
    revision,
    revisionTags: input.revisionTags ?? [],
    policy: input.policy ?? 'enabled',
    enableNamespacesByDefault: input.enableNamespacesByDefault ?? false,
    neverInjectSelector: input.neverInjectSelector ?? [],
    alwaysInjectSelector: input.alwaysInjectSelector ?? [],
    defaultTemplates: input.defaultTemplates ?? ['sidecar'],
    aliases: input.aliases ?? {},
    injectedAnnotations: input.injectedAnnotations ?? {},
    mesh: {
      trustDomain: 'cluster.local',
      enablePrometheusMerge: true,
      ...input.mesh,
      defaultConfig: { ...DEFAULT_PROXY_CONFIG, ...input.mesh?.defaultConfig },
    },
    values: {
      proxyImage: DEFAULT_PROXY_IMAGE,
      proxyInitImage: input.values?.proxyImage ?? DEFAULT_PROXY_IMAGE,
      imagePullSecrets: [],
      clusterDomain: 'cluster.local',
      clusterId: 'Kubernetes',
      istioNamespace: 'istio-system',
      pilotCertProvider: 'istiod',
      logLevel: 'warning',
      componentLogLevel: 'misc:error',
      agentLogLevel: 'default:info',
      includeIPRanges: '*',
      excludeIPRanges: '',
      excludeInboundPorts: '',
      privileged: false,
      capNetBindService: false,
      holdApplicationUntilProxyStarts: false,
      nativeSidecars: 'auto',
      rewriteAppHTTPProbe: true,
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } },
      readiness: { initialDelaySeconds: 0, periodSeconds: 15, failureThreshold: 4 },
      startupProbe: { enabled: true, failureThreshold: 600 },
      tokenAudience: 'istio-ca',
      trustBundleName: 'istio-ca-root-cert',
      ...input.values,
    },
  };
}

export const A = {
  inject: 'sidecar.istio.io/inject',
  status: 'sidecar.istio.io/status',
  overrides: 'proxy.istio.io/overrides',
  templates: 'inject.istio.io/templates',
  proxyConfig: 'proxy.istio.io/config',
  rev: 'istio.io/rev',
  injectionLabel: 'istio-injection',
} as const;

/** IgnoredNamespaces (pkg/kube/inject/initializer.go): never injected; istio-system is not among them. */
export const IGNORED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage'];
