/**
 * The injection templates as TypeScript builders, and the post-processing istiod runs after them
 * (shared/reference/injection-and-proxyless.md A2; Istio's manifests/charts/istio-control/istio-discovery/files/
 * injection-template.yaml and grpc-agent.yaml, pkg/kube/inject/webhook.go postProcessPod, app_probe.go).
 *
 * A template returns a partial pod (labels, annotations, containers, volumes) that is laid over the pod the way a
 * strategic merge patch is: containers and volumes by name, and inside a container env by name, volumeMounts by
 * mountPath, ports by containerPort. Where the user already has a container the template defines (their own
 * `istio-proxy` tweaks, or the app containers grpc-agent extends), the user's fields win and their version is kept in
 * `proxy.istio.io/overrides`, as istiod's reapplyOverwrittenContainers does.
 *
 * Differences from Istio, because the proxy image is mizzen's (proxy.Dockerfile, ENTRYPOINT `mizzen`):
 * - istio-proxy runs `agent sidecar ...` (Istio: `proxy sidecar ...`) with the same flags and env, and workingDir `/`
 *   (the agent resolves Istio's relative paths, ./var/run/secrets/..., against its working directory);
 * - istio-init runs `istio-iptables ...` exactly as Istio renders it (mizzen's CLI has the alias);
 * - `pilot-agent wait` (holdApplicationUntilProxyStarts, grpc-agent) is a small `node -e` poll of the readiness URL;
 *   the native-mode preStop drain hook is left out: the agent drains on SIGTERM, which the kubelet sends to native
 *   sidecars only after the app containers have stopped;
 * - no GOMEMLIMIT (a Go runtime knob) and no istio-ca-crl volume (mizzen publishes no CRL ConfigMap).
 */
import { istioInitArgs } from '../iptables/options.ts';
import type { InjectorConfig, ProxyConfigJson } from './injector-config.ts';
import type { WorkloadOwner } from './inject.ts';
import type { Container, ContainerPort, EnvVar, Pod, StringMap, Volume } from './kube-types.ts';

export const PROXY = 'istio-proxy';
export const INIT = 'istio-init';
const GRPC_BOOTSTRAP = '/etc/istio/proxy/grpc-bootstrap.json';

export interface TemplateContext {
  namespace: string;
  config: InjectorConfig;
  /** Mesh defaultConfig with the pod's `proxy.istio.io/config` over it. */
  proxyConfig: ProxyConfigJson;
  native: boolean;
  /** holdApplicationUntilProxyStarts (never in native mode). */
  hold: boolean;
  statusPort: number;
  interceptionMode: string;
  owner: WorkloadOwner;
  /** What the previous injection recorded, when re-injecting. */
  previous: { prometheusAnnotations: string | undefined; appProbers: string | undefined; volumes: string[]; imagePullSecrets: string[] } | undefined;
}

export interface RenderedTemplate {
  labels: StringMap;
  annotations: StringMap;
  initContainers: Container[];
  containers: Container[];
  volumes: Volume[];
  imagePullSecrets: Array<{ name: string }>;
}

export type Template = (pod: Pod, ctx: TemplateContext) => RenderedTemplate;

export const isRecord = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): StringMap => (isRecord(v) ? Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) : {});
export const podLabels = (pod: Pod): StringMap => strings(pod.metadata.labels);
export const podAnnotations = (pod: Pod): StringMap => strings(pod.metadata.annotations);
export const parseBool = (v: string): boolean => /^(1|t|true)$/i.test(v.trim());
const appNames = (pod: Pod): string[] => pod.spec.containers.map((c) => c.name).filter((n) => typeof n === 'string' && n !== PROXY);

export function statusPortOf(annotations: Readonly<StringMap>, pc: ProxyConfigJson): number {
  const a = annotations['status.sidecar.istio.io/port'];
  return a !== undefined ? Number(a) : typeof pc.statusPort === 'number' ? pc.statusPort : 15020;
}

/** The injected proxy container, wherever it sits (containers, or initContainers in native mode). */
export function proxyContainer(pod: Pod): Container | undefined {
  return pod.spec.containers.find((c) => c.name === PROXY) ?? pod.spec.initContainers?.find((c) => c.name === PROXY);
}

const fieldEnv = (name: string, fieldPath: string): EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });
export const env = (name: string, value: string): EnvVar => ({ name, value });
const sortedMetadata = (pc: ProxyConfigJson): EnvVar[] =>
  Object.entries(pc.proxyMetadata ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => env(k, v));

/** `pilot-agent wait`: poll a readiness URL until it answers 2xx (60 s, every 500 ms). */
const waitFor = (url: string): string[] => [
  'node',
  '-e',
  `const end=Date.now()+60000;const t=async()=>{try{if((await fetch(${JSON.stringify(url)})).ok)process.exit(0)}catch{}if(Date.now()>end)process.exit(1);setTimeout(t,500)};t()`,
];

function imageFor(ann: StringMap, fallback: string): string {
  const custom = ann['sidecar.istio.io/proxyImage'];
  return custom !== undefined && custom.includes('/') ? custom : fallback;
}

/** Only the annotated values when any proxyCPU/Memory(Limit) annotation is present, else the defaults. */
function resources(ann: StringMap, config: InjectorConfig): Record<string, unknown> {
  const [cpu, memory, cpuLimit, memoryLimit] = ['proxyCPU', 'proxyMemory', 'proxyCPULimit', 'proxyMemoryLimit'].map((n) => ann[`sidecar.istio.io/${n}`]);
  if (cpu === undefined && memory === undefined && cpuLimit === undefined && memoryLimit === undefined) return structuredClone(config.values.resources);
  const pick = (c?: string, m?: string) => ({ ...(c !== undefined ? { cpu: c } : {}), ...(m !== undefined ? { memory: m } : {}) });
  return {
    ...(cpu !== undefined || memory !== undefined ? { requests: pick(cpu, memory) } : {}),
    ...(cpuLimit !== undefined || memoryLimit !== undefined ? { limits: pick(cpuLimit, memoryLimit) } : {}),
  };
}

function canonicalLabels(labels: StringMap, owner: WorkloadOwner): StringMap {
  const name = (labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app ?? owner.name).slice(0, 63).replace(/-+$/, '');
  const revision = labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels.version ?? 'latest';
  return { 'service.istio.io/canonical-name': name, 'service.istio.io/canonical-revision': revision };
}

function defaultContainerAnnotations(ann: StringMap, apps: string[]): StringMap {
  const out: StringMap = {};
  if (apps.length === 0) return out;
  if (ann['kubectl.kubernetes.io/default-logs-container'] === undefined) out['kubectl.kubernetes.io/default-logs-container'] = apps[0]!;
  if (ann['kubectl.kubernetes.io/default-container'] === undefined) out['kubectl.kubernetes.io/default-container'] = apps[0]!;
  return out;
}

const istiodHost = (ctx: TemplateContext) => `istiod${ctx.config.revision === 'default' ? '' : `-${ctx.config.revision}`}.${ctx.config.values.istioNamespace}.svc`;

/** The agent's environment shared by both templates (template order). */
function agentEnv(pod: Pod, ctx: TemplateContext, withNodeName: boolean): EnvVar[] {
  const v = ctx.config.values;
  const labels = podLabels(pod);
  const ports: ContainerPort[] = pod.spec.containers.flatMap((c) => (Array.isArray(c.ports) ? c.ports.filter(isRecord) : []));
  const owner = ctx.owner;
  const workload = labels['service.istio.io/workload-name'] ?? owner.name;
  return [
    env('PILOT_CERT_PROVIDER', v.pilotCertProvider),
    env('CA_ADDR', v.caAddress ?? `${istiodHost(ctx)}:15012`),
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('INSTANCE_IP', 'status.podIP'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldEnv('HOST_IP', 'status.hostIP'),
    { name: 'ISTIO_CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu', divisor: '1' } } },
    env('PROXY_CONFIG', JSON.stringify(ctx.proxyConfig)),
    env('ISTIO_META_POD_PORTS', JSON.stringify(ports.map(goPortOrder))),
    env('ISTIO_META_APP_CONTAINERS', appNames(pod).join(',')),
    env('ISTIO_META_CLUSTER_ID', v.clusterId || 'Kubernetes'),
    ...(withNodeName ? [fieldEnv('ISTIO_META_NODE_NAME', 'spec.nodeName')] : []),
    env('ISTIO_META_INTERCEPTION_MODE', ctx.interceptionMode),
    ...(v.network ? [env('ISTIO_META_NETWORK', v.network)] : []),
    ...(workload ? [env('ISTIO_META_WORKLOAD_NAME', workload)] : []),
    ...(owner.name ? [env('ISTIO_META_OWNER', `kubernetes://apis/${owner.apiVersion}/namespaces/${ctx.namespace}/${owner.kind.toLowerCase()}s/${owner.name}`)] : []),
    env('ISTIO_META_MESH_ID', ctx.config.mesh.meshId || ctx.config.mesh.trustDomain || 'cluster.local'),
    env('TRUST_DOMAIN', ctx.config.mesh.trustDomain || 'cluster.local'),
  ];
}

/** ContainerPort as Go's encoding/json writes it (the template's structToJSON). */
function goPortOrder(p: ContainerPort): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['name', 'hostPort', 'containerPort', 'protocol', 'hostIP']) if (p[k] !== undefined && p[k] !== '' && p[k] !== 0) out[k] = p[k];
  return out;
}

const proxyArgs = (ann: StringMap, ctx: TemplateContext): string[] => {
  const v = ctx.config.values;
  return [
    'agent',
    'sidecar',
    '--domain',
    `$(POD_NAMESPACE).svc.${v.clusterDomain}`,
    `--proxyLogLevel=${ann['sidecar.istio.io/logLevel'] ?? v.logLevel}`,
    `--proxyComponentLogLevel=${ann['sidecar.istio.io/componentLogLevel'] ?? v.componentLogLevel}`,
    `--log_output_level=${ann['sidecar.istio.io/agentLogLevel'] ?? v.agentLogLevel}`,
  ];
};

const readiness = (ann: StringMap, ctx: TemplateContext, port: number) => {
  const r = ctx.config.values.readiness;
  const n = (name: string, def: number) => (ann[`readiness.status.sidecar.istio.io/${name}`] !== undefined ? Number(ann[`readiness.status.sidecar.istio.io/${name}`]) : def);
  return {
    httpGet: { path: '/healthz/ready', port },
    initialDelaySeconds: n('initialDelaySeconds', r.initialDelaySeconds),
    periodSeconds: n('periodSeconds', r.periodSeconds),
    timeoutSeconds: 3,
    failureThreshold: n('failureThreshold', r.failureThreshold),
  };
};

const mount = (name: string, mountPath: string) => ({ name, mountPath });
const emptyDir = (name: string, medium?: string): Volume => ({ name, emptyDir: medium ? { medium } : {} });

function sharedVolumes(ctx: TemplateContext): Volume[] {
  const v = ctx.config.values;
  return [
    emptyDir('istio-data'),
    {
      name: 'istio-podinfo',
      downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }, { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } }] },
    },
    { name: 'istio-token', projected: { sources: [{ serviceAccountToken: { audience: v.tokenAudience, expirationSeconds: 43200, path: 'istio-token' } }] } },
    { name: 'istiod-ca-cert', configMap: { name: v.trustBundleName } },
  ];
}

function proxySecurityContext(ann: StringMap, ctx: TemplateContext): Record<string, unknown> {
  const v = ctx.config.values;
  if (ctx.proxyConfig.proxyMetadata?.IPTABLES_TRACE_LOGGING === 'true') {
    return { allowPrivilegeEscalation: true, capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] }, privileged: true, readOnlyRootFilesystem: true, runAsGroup: 1337, runAsNonRoot: false, runAsUser: 0 };
  }
  const tproxy = ctx.interceptionMode === 'TPROXY';
  const bind = (ann['sidecar.istio.io/capNetBindService'] ?? String(v.capNetBindService)) === 'true';
  const add = [...(tproxy ? ['NET_ADMIN'] : []), ...(bind ? ['NET_BIND_SERVICE'] : [])];
  return {
    allowPrivilegeEscalation: v.privileged,
    capabilities: { ...(add.length > 0 ? { add } : {}), drop: ['ALL'] },
    privileged: v.privileged,
    readOnlyRootFilesystem: true,
    runAsGroup: 1337,
    runAsNonRoot: add.length === 0,
    runAsUser: add.length === 0 ? 1337 : 0,
  };
}

/** The `sidecar` template: istio-init (iptables) and istio-proxy (the agent and Envoy). */
export const sidecarTemplate: Template = (pod, ctx) => {
  const v = ctx.config.values;
  const pc = ctx.proxyConfig;
  const ann = podAnnotations(pod);
  const labels = podLabels(pod);
  const res = resources(ann, ctx.config);
  const pullPolicy = v.imagePullPolicy ? { imagePullPolicy: v.imagePullPolicy } : {};
  const init: Container[] = [];
  if (ctx.interceptionMode !== 'NONE') {
    const args = istioInitArgs(ann, {
      interceptionMode: typeof pc.interceptionMode === 'string' ? pc.interceptionMode : 'REDIRECT',
      includeIPRanges: v.includeIPRanges,
      excludeIPRanges: v.excludeIPRanges,
      excludeInboundPorts: v.excludeInboundPorts,
      statusPort: String(ctx.statusPort),
    });
    // `-d 15090,15021` without a trailing comma when nothing else is excluded (status port 0).
    const d = args.indexOf('-d');
    if (d >= 0) args[d + 1] = args[d + 1]!.replace(/,$/, '');
    const metadata = sortedMetadata(pc);
    init.push({
      name: INIT,
      image: imageFor(ann, v.proxyInitImage),
      args: ['istio-iptables', ...args, `--log_output_level=${ann['sidecar.istio.io/agentLogLevel'] ?? v.agentLogLevel}`],
      ...pullPolicy,
      ...(metadata.length > 0 ? { env: metadata } : {}),
      resources: structuredClone(res),
      securityContext: {
        allowPrivilegeEscalation: v.privileged,
        privileged: v.privileged,
        capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
        readOnlyRootFilesystem: false,
        runAsGroup: 0,
        runAsNonRoot: false,
        runAsUser: 0,
      },
    });
  }
  const probes =
    ctx.statusPort === 0 ? {}
    : {
        ...(v.startupProbe.enabled ? { startupProbe: { httpGet: { path: '/healthz/ready', port: 15021 }, initialDelaySeconds: 0, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: v.startupProbe.failureThreshold } } : {}),
        readinessProbe: readiness(ann, ctx, 15021),
      };
  const proxy: Container = {
    name: PROXY,
    image: imageFor(ann, v.proxyImage),
    ports: [{ containerPort: 15090, protocol: 'TCP', name: 'http-envoy-prom' }],
    args: proxyArgs(ann, ctx),
    ...(ctx.hold ? { lifecycle: { postStart: { exec: { command: waitFor('http://localhost:15021/healthz/ready') } } } } : {}),
    env: [...agentEnv(pod, ctx, true), ...sortedMetadata(pc)],
    ...pullPolicy,
    ...probes,
    resources: res,
    securityContext: proxySecurityContext(ann, ctx),
    ...(ctx.native ? { restartPolicy: 'Always' } : {}),
    workingDir: '/',
    volumeMounts: [
      mount('workload-socket', '/var/run/secrets/workload-spiffe-uds'),
      mount('credential-socket', '/var/run/secrets/credential-uds'),
      mount('workload-certs', '/var/run/secrets/workload-spiffe-credentials'),
      mount('istiod-ca-cert', '/var/run/secrets/istio'),
      mount('istio-data', '/var/lib/istio/data'),
      mount('istio-envoy', '/etc/istio/proxy'),
      mount('istio-token', '/var/run/secrets/tokens'),
      mount('istio-podinfo', '/etc/istio/pod'),
    ],
  };
  return {
    labels: {
      'security.istio.io/tlsMode': labels['security.istio.io/tlsMode'] ?? 'istio',
      ...(pc.proxyMetadata?.ISTIO_META_ENABLE_HBONE === 'true' ? { 'networking.istio.io/tunnel': labels['networking.istio.io/tunnel'] ?? 'http' } : {}),
      ...canonicalLabels(labels, ctx.owner),
    },
    annotations: { 'istio.io/rev': ctx.config.revision, ...defaultContainerAnnotations(ann, appNames(pod)) },
    initContainers: ctx.native ? [...init, proxy] : init,
    containers: ctx.native ? [] : [proxy],
    volumes: [emptyDir('workload-socket'), emptyDir('credential-socket'), emptyDir('workload-certs'), emptyDir('istio-envoy', 'Memory'), ...sharedVolumes(ctx)],
    imagePullSecrets: v.imagePullSecrets.map((name) => ({ name })),
  };
};

/** `grpc-agent`: the agent alone (no Envoy, no iptables) writes the gRPC bootstrap and certificates for the app. */
export const grpcAgentTemplate: Template = (pod, ctx) => {
  const v = ctx.config.values;
  const ann = podAnnotations(pod);
  const port = ctx.statusPort || 15020;
  const proxy: Container = {
    name: PROXY,
    image: imageFor(ann, v.proxyImage),
    ports: [{ containerPort: port, protocol: 'TCP', name: 'mesh-metrics' }],
    args: proxyArgs(ann, ctx),
    lifecycle: { postStart: { exec: { command: waitFor(`http://localhost:${port}/healthz/ready`) } } },
    env: [
      env('ISTIO_META_GENERATOR', 'grpc'),
      env('OUTPUT_CERTS', '/var/lib/istio/data'),
      env('GRPC_XDS_BOOTSTRAP', GRPC_BOOTSTRAP),
      env('XDS_ADDR', v.xdsAddress ?? `${istiodHost(ctx)}:15010`),
      ...agentEnv(pod, ctx, false),
      env('ISTIO_META_DNS_CAPTURE', 'false'),
      env('DISABLE_ENVOY', 'true'),
      ...sortedMetadata(ctx.proxyConfig),
    ],
    ...(v.imagePullPolicy ? { imagePullPolicy: v.imagePullPolicy } : {}),
    readinessProbe: readiness(ann, ctx, port),
    resources: resources(ann, ctx.config),
    securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, privileged: false, readOnlyRootFilesystem: true, runAsGroup: 1337, runAsNonRoot: true, runAsUser: 1337 },
    workingDir: '/',
    volumeMounts: [
      mount('workload-socket', '/var/run/secrets/workload-spiffe-uds'),
      mount('workload-certs', '/var/run/secrets/workload-spiffe-credentials'),
      mount('istiod-ca-cert', '/var/run/secrets/istio'),
      mount('istio-data', '/var/lib/istio/data'),
      mount('istio-xds', '/etc/istio/proxy'),
      mount('istio-token', '/var/run/secrets/tokens'),
      mount('istio-podinfo', '/etc/istio/pod'),
    ],
  };
  const apps: Container[] = appNames(pod).map((name) => ({
    name,
    env: [env('GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT', 'true'), env('GRPC_XDS_BOOTSTRAP', GRPC_BOOTSTRAP)],
    volumeMounts: [mount('istio-data', '/var/lib/istio/data'), mount('istio-xds', '/etc/istio/proxy'), mount('workload-certs', '/var/run/secrets/workload-spiffe-credentials')],
  }));
  return {
    // No security.istio.io/tlsMode: the app decides whether it speaks mTLS (Istio's template comment).
    labels: canonicalLabels(podLabels(pod), ctx.owner),
    annotations: { ...defaultContainerAnnotations(ann, appNames(pod)), 'sidecar.istio.io/rewriteAppHTTPProbers': 'false' },
    initContainers: [],
    containers: [proxy, ...apps],
    volumes: [emptyDir('workload-socket'), emptyDir('workload-certs'), emptyDir('istio-xds', 'Memory'), ...sharedVolumes(ctx)],
    imagePullSecrets: v.imagePullSecrets.map((name) => ({ name })),
  };
};

export const TEMPLATES: Readonly<Record<string, Template>> = { sidecar: sidecarTemplate, 'grpc-agent': grpcAgentTemplate };
