/**
 * Workloads as analyzers need them: Pods and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets,
 * Jobs, CronJobs and ReplicationControllers, read from the raw YAML documents (the config loader keeps only the kinds
 * mizzen serves, so workload controllers arrive as "ignored" documents). Also: whether a workload gets a sidecar,
 * decided the way Istio's default injector decides it, from what the analysed files say.
 */
import type { ConfigObject } from '../config/object.ts';
import type { IndexedDoc } from './source-index.ts';

type StringMap = Readonly<Record<string, string>>;

export interface Workload {
  kind: string;
  namespace: string;
  name: string;
  file: string;
  /** Document start line. */
  line: number;
  /** The workload object's own metadata. */
  labels: StringMap;
  annotations: StringMap;
  /** The pod's (template's) metadata, and where it is in the document. */
  podLabels: StringMap;
  podAnnotations: StringMap;
  podPath: Array<string | number>;
  hostNetwork: boolean;
  containers: Array<{ name: string; image?: string }>;
}

const TEMPLATE_PATHS: Record<string, Array<string | number>> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
  Pod: [],
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function strings(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(v)) return out;
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
  return out;
}

function at(v: unknown, path: ReadonlyArray<string | number>): unknown {
  let cur = v;
  for (const p of path) {
    if (typeof p === 'number') cur = Array.isArray(cur) ? cur[p] : undefined;
    else cur = isRecord(cur) ? cur[p] : undefined;
  }
  return cur;
}

/** Workloads in the analysed documents; objects without a namespace are in `defaultNamespace`, as the loader does. */
export function collectWorkloads(docs: readonly IndexedDoc[], defaultNamespace: string): Workload[] {
  const out: Workload[] = [];
  for (const d of docs) {
    const v = d.value;
    if (!isRecord(v) || typeof v.kind !== 'string' || typeof v.apiVersion !== 'string') continue;
    const tpl = TEMPLATE_PATHS[v.kind];
    if (!tpl) continue;
    // Pod is core v1; the controllers are apps/v1 or batch/v1 (and v1 for ReplicationController).
    if (v.kind === 'Pod' && v.apiVersion !== 'v1') continue;
    if (v.kind !== 'Pod' && v.kind !== 'ReplicationController' && !/^(apps|batch)\//.test(v.apiVersion)) continue;
    const meta = isRecord(v.metadata) ? v.metadata : {};
    if (typeof meta.name !== 'string') continue;
    const pod = at(v, tpl);
    const podMeta = at(pod, ['metadata']);
    const podSpec = at(pod, ['spec']);
    const containers = at(podSpec, ['containers']);
    out.push({
      kind: v.kind,
      namespace: typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : defaultNamespace,
      name: meta.name,
      file: d.file,
      line: d.line,
      labels: strings(meta.labels),
      annotations: strings(meta.annotations),
      podLabels: strings(at(podMeta, ['labels'])),
      podAnnotations: strings(at(podMeta, ['annotations'])),
      podPath: tpl,
      hostNetwork: at(podSpec, ['hostNetwork']) === true,
      containers: Array.isArray(containers)
        ? containers.filter(isRecord).map((c) => ({ name: String(c.name ?? ''), ...(typeof c.image === 'string' ? { image: c.image } : {}) }))
        : [],
    });
  }
  return out;
}

/** Namespaces the injector never touches (pkg/kube/inject IgnoredNamespaces). */
export const IGNORED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage'];

export const INJECT = 'sidecar.istio.io/inject';
const REV = 'istio.io/rev';
const NS_INJECTION = 'istio-injection';
const DATAPLANE_MODE = 'istio.io/dataplane-mode';

/**
 * - `sidecar`: the injector adds istio-proxy;
 * - `ambient`: in the mesh through ztunnel, no sidecar;
 * - `none`: known to run without a proxy (why: `reason`);
 * - `unknown`: the files do not say (no Namespace document for its namespace, no pod-level switch).
 */
export type MeshMembership = { kind: 'sidecar' | 'ambient' | 'unknown' } | { kind: 'none'; reason: string };

/**
 * Istio's default injector (istio-sidecar-injector webhooks + injectRequired): the pod's `sidecar.istio.io/inject`
 * label (over the deprecated annotation) opts out or in; otherwise the namespace's `istio-injection` / `istio.io/rev`
 * label decides. A pod with an existing istio-proxy container is in the mesh whatever the labels say.
 */
export function meshMembership(w: Workload, namespaces: ReadonlyMap<string, ConfigObject>): MeshMembership {
  if (w.containers.some((c) => c.name === 'istio-proxy')) return { kind: 'sidecar' };
  if (w.hostNetwork) return { kind: 'none', reason: 'hostNetwork: true' };
  if (IGNORED_NAMESPACES.includes(w.namespace)) return { kind: 'none', reason: `namespace ${w.namespace} is never injected` };
  const podSwitch = (w.podLabels[INJECT] ?? w.podAnnotations[INJECT] ?? '').trim().toLowerCase();
  const switchSource = w.podLabels[INJECT] !== undefined ? 'label' : 'annotation';
  if (podSwitch === 'false') return { kind: 'none', reason: `pod ${switchSource} ${INJECT}: "false"` };
  const ns = namespaces.get(w.namespace);
  const nsLabels = ns?.metadata.labels ?? {};
  if (nsLabels[NS_INJECTION] === 'disabled') return { kind: 'none', reason: `namespace ${w.namespace} is labelled ${NS_INJECTION}=disabled` };
  if (podSwitch === 'true' || w.podLabels[REV] !== undefined) return { kind: 'sidecar' };
  if (nsLabels[NS_INJECTION] === 'enabled' || nsLabels[REV] !== undefined) return { kind: 'sidecar' };
  if (nsLabels[DATAPLANE_MODE] === 'ambient' || w.podLabels[DATAPLANE_MODE] === 'ambient') return { kind: 'ambient' };
  if (!ns) return { kind: 'unknown' };
  return { kind: 'none', reason: `namespace ${w.namespace} has no ${NS_INJECTION}=enabled or ${REV} label` };
}
