/**
 * `mizzen kube-inject -f FILE [-o OUT]`: offline sidecar injection, as `istioctl kube-inject` does. Every Pod, and
 * the pod template of every Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job and CronJob
 * (also inside a `kind: List`), goes through the same injectPod() the webhook uses; other documents are written
 * back byte for byte. As in istioctl, no namespace labels are consulted (there is no cluster), but the pod's own
 * opt-out (`sidecar.istio.io/inject: "false"`), hostNetwork and the ignored namespaces still skip injection.
 */
import fs from 'node:fs';
import { readInjectorDir } from './injector-files.ts';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { injectPod, resolveInjectorConfig, type InjectorConfig, type InjectorConfigInput, type ProxyConfigJson, type WorkloadOwner } from '../webhook/inject.ts';

/** Where each workload kind keeps its pod template. */
const POD_TEMPLATE_PATH: Record<string, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  DeploymentConfig: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface KubeInjectResult {
  output: string;
  /** Objects injected (or re-injected). */
  injected: number;
  /** `<Kind>/<name>: <reason>` for every workload left as it was. */
  skipped: string[];
  /** Parse errors and injection failures; the output is not usable when any is present. */
  errors: string[];
}

const describe = (obj: Record<string, unknown>): string => `${String(obj.kind)}/${isRecord(obj.metadata) && typeof obj.metadata.name === 'string' ? obj.metadata.name : '<unnamed>'}`;

/** Injects one object's pod template(s) in place; true when anything changed. */
function injectObject(obj: Record<string, unknown>, config: InjectorConfig, result: KubeInjectResult): boolean {
  if (obj.kind === 'List' && Array.isArray(obj.items)) {
    let changed = false;
    for (const item of obj.items) if (isRecord(item) && injectObject(item, config, result)) changed = true;
    return changed;
  }
  const path = typeof obj.kind === 'string' ? POD_TEMPLATE_PATH[obj.kind] : undefined;
  if (!path) return false;
  let template: unknown = obj;
  for (const key of path) template = isRecord(template) ? template[key] : undefined;
  if (!isRecord(template)) {
    result.errors.push(`${describe(obj)}: no pod template at ${path.join('.')}`);
    return false;
  }
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
  const owner: WorkloadOwner | undefined =
    obj.kind === 'Pod' ? undefined : { name: typeof meta.name === 'string' ? meta.name : '', kind: String(obj.kind), apiVersion: typeof obj.apiVersion === 'string' ? obj.apiVersion : 'v1' };
  const pod = obj.kind === 'Pod' ? obj : { metadata: template.metadata ?? {}, spec: template.spec };
  const outcome = injectPod({ pod, namespace, config, ...(owner ? { owner } : {}) });
  if (outcome.kind === 'skipped') {
    result.skipped.push(`${describe(obj)}: ${outcome.reason}`);
    return false;
  }
  if (outcome.kind === 'failed') {
    result.errors.push(`${describe(obj)}: ${outcome.message}`);
    return false;
  }
  result.injected++;
  template.metadata = outcome.pod.metadata;
  template.spec = outcome.pod.spec;
  return outcome.changed;
}

/** Multi-document YAML in, the same documents out with their pod templates injected. */
export function kubeInjectText(text: string, config: InjectorConfig): KubeInjectResult {
  const result: KubeInjectResult = { output: '', injected: 0, skipped: [], errors: [] };
  // YAML 1.1, as Kubernetes tooling reads it (src/config/yaml-docs.ts).
  const docs = parseAllDocuments(text, { version: '1.1', uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const pieces: string[] = [];
  list.forEach((doc, i) => {
    const start = i === 0 ? 0 : (doc.range?.[0] ?? 0);
    const end = i + 1 < list.length ? (list[i + 1]!.range?.[0] ?? text.length) : text.length;
    const source = text.slice(start, end);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) result.errors.push(`document ${i + 1}: ${e.message.split('\n')[0]}`);
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      result.errors.push(`document ${i + 1}: ${(err as Error).message}`);
      return;
    }
    if (!isRecord(value) || !injectObject(value, config, result)) {
      pieces.push(source);
      return;
    }
    // The document's leading `---` and comment lines survive; the rest is written anew.
    let lead = /^(?:(?:---[^\n]*|[ \t]*#[^\n]*|[ \t]*)\n)*/.exec(source)?.[0] ?? '';
    if (i > 0 && !lead.startsWith('---')) lead = `---\n${lead}`;
    pieces.push(lead + stringify(value, { version: '1.1', lineWidth: 0 }));
  });
  result.output = pieces.join('');
  return result;
}

/** A MeshConfig YAML file, or the `istio` ConfigMap that holds one under data.mesh → injector settings. */
export function meshConfigInput(text: string): InjectorConfigInput['mesh'] {
  let value: unknown = parseYaml(text, { version: '1.1', logLevel: 'error' });
  if (isRecord(value) && value.kind === 'ConfigMap' && isRecord(value.data) && typeof value.data.mesh === 'string') value = parseYaml(value.data.mesh, { version: '1.1', logLevel: 'error' });
  if (value === null || value === undefined) return {};
  if (!isRecord(value)) throw new Error('the mesh config is not a YAML mapping');
  return {
    ...(typeof value.trustDomain === 'string' ? { trustDomain: value.trustDomain } : {}),
    ...(typeof value.meshId === 'string' ? { meshId: value.meshId } : {}),
    ...(typeof value.enablePrometheusMerge === 'boolean' ? { enablePrometheusMerge: value.enablePrometheusMerge } : {}),
    ...(isRecord(value.defaultConfig) ? { defaultConfig: value.defaultConfig as ProxyConfigJson } : {}),
  };
}

export interface KubeInjectOptions {
  /** Input file, `-` for stdin. */
  filename: string;
  /** Output file (default stdout). */
  output?: string;
  meshConfigFile?: string;
  /** The istio-sidecar-injector ConfigMap as files (`values`, `config`), as `serve --inject-dir` reads it. */
  injectDir?: string;
  revision?: string;
  proxyImage?: string;
  nativeSidecars?: boolean;
}

export function runKubeInject(o: KubeInjectOptions): { stdout: string; stderr: string; code: number } {
  let config: InjectorConfig;
  let text: string;
  try {
    const mesh = o.meshConfigFile ? meshConfigInput(fs.readFileSync(o.meshConfigFile, 'utf8')) : undefined;
    const installed = o.injectDir ? readInjectorDir(o.injectDir, mesh?.defaultConfig) : {};
    config = resolveInjectorConfig({
      ...installed,
      ...(o.revision ? { revision: o.revision } : {}),
      ...(mesh ? { mesh } : {}),
      values: { nativeSidecars: o.nativeSidecars ? 'true' : 'false', ...installed.values, ...(o.proxyImage ? { proxyImage: o.proxyImage, proxyInitImage: o.proxyImage } : {}) },
    });
    text = fs.readFileSync(o.filename === '-' ? 0 : o.filename, 'utf8');
  } catch (err) {
    return { stdout: '', stderr: `error: ${(err as Error).message}\n`, code: 1 };
  }
  const r = kubeInjectText(text, config);
  const notes = r.skipped.map((s) => `not injected: ${s}\n`).join('');
  if (r.errors.length > 0) return { stdout: '', stderr: notes + r.errors.map((e) => `error: ${e}\n`).join(''), code: 1 };
  if (o.output) {
    try {
      fs.writeFileSync(o.output, r.output);
    } catch (err) {
      return { stdout: '', stderr: `error: ${(err as Error).message}\n`, code: 1 };
    }
    return { stdout: '', stderr: notes, code: 0 };
  }
  return { stdout: r.output, stderr: notes, code: 0 };
}
