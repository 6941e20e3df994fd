/**
 * Sidecar injection as a pure function (shared/reference/injection-and-proxyless.md A1–A3): a Pod (as an admission
 * request carries it, or a workload's pod template), its namespace and the injector configuration → the injected Pod,
 * or "not injected: <reason>", or a failure. No I/O and no clock: the webhook (server.ts) and `mizzen kube-inject`
 * (src/app/kube-inject.ts) both call it, and the webhook's JSON patch is the diff of input and output.
 *
 * The input is hostile (anything a client can POST): nothing here assumes a field exists or has the right type, and
 * every exception becomes a `failed` outcome.
 *
 * Re-injection (A3): a pod that carries `sidecar.istio.io/status` is first stripped of what that status says was
 * injected (containers, init containers; volumes are merged in place by name), the user's own versions of template
 * containers are put back from `proxy.istio.io/overrides`, and the merged Prometheus annotations and rewritten probes
 * are recognised, so that injecting an injected pod gives back the same pod (`changed: false`).
 */
import { parse as parseYaml } from 'yaml';
import { clonePlain } from './clone.ts';
import { finishPod } from './finish-pod.ts';
import { isRecord, podAnnotations, podLabels, proxyContainer, statusPortOf, TEMPLATES, type TemplateContext } from './templates.ts';

import { A, IGNORED_NAMESPACES, type InjectorConfig, type ProxyConfigJson } from './injector-config.ts';
import type { Container, LabelSelector, Pod, StringMap } from './kube-types.ts';

export * from './kube-types.ts';
export * from './injector-config.ts';

export type Decision = { inject: true } | { inject: false; reason: string };

/** Kubernetes label selector semantics; an empty selector matches nothing here (Istio skips `selector.Empty()`). */
export function selectorMatches(selector: LabelSelector, labels: Readonly<StringMap>): boolean {
  const matchLabels = isRecord(selector.matchLabels) ? Object.entries(selector.matchLabels) : [];
  const exprs = Array.isArray(selector.matchExpressions) ? selector.matchExpressions : [];
  if (matchLabels.length === 0 && exprs.length === 0) return false;
  for (const [k, v] of matchLabels) if (labels[k] !== v) return false;
  for (const e of exprs) {
    const has = Object.hasOwn(labels, e.key);
    const values = Array.isArray(e.values) ? e.values : [];
    const ok =
      e.operator === 'In' ? has && values.includes(labels[e.key]!)
      : e.operator === 'NotIn' ? !has || !values.includes(labels[e.key]!)
      : e.operator === 'Exists' ? has
      : e.operator === 'DoesNotExist' ? !has
      : false;
    if (!ok) return false;
  }
  return true;
}

/**
 * Whether one of this revision's MutatingWebhookConfiguration entries would send the pod here at all (A1's selector
 * table): the API server applies these selectors before calling the webhook. Only labels count, never annotations.
 */
function webhookSelects(pod: Pod, namespace: string, nsLabels: Readonly<StringMap>, config: InjectorConfig): Decision {
  const revs = [config.revision, ...config.revisionTags];
  const isDefault = revs.includes('default');
  const labels = podLabels(pod);
  const podSwitch = labels[A.inject];
  const notFalse = podSwitch !== 'false';
  const legacy = nsLabels[A.injectionLabel];
  const nsRev = nsLabels[A.rev];
  const podRev = labels[A.rev];
  // The legacy label wins over a revision label on the same namespace.
  if (legacy !== undefined) {
    if (legacy !== 'enabled') return { inject: false, reason: `namespace ${namespace} is labelled ${A.injectionLabel}=${legacy}` };
    if (!isDefault) return { inject: false, reason: `namespace ${namespace} is labelled ${A.injectionLabel}=enabled, which selects the default revision, not ${config.revision}` };
    return notFalse ? { inject: true } : { inject: false, reason: `label ${A.inject}=false` };
  }
  if (nsRev !== undefined) {
    if (!revs.includes(nsRev)) return { inject: false, reason: `namespace ${namespace} is labelled ${A.rev}=${nsRev}, a revision this injector (${config.revision}) does not serve` };
    return notFalse ? { inject: true } : { inject: false, reason: `label ${A.inject}=false` };
  }
  if (podRev !== undefined) {
    if (!revs.includes(podRev)) return { inject: false, reason: `pod is labelled ${A.rev}=${podRev}, a revision this injector (${config.revision}) does not serve` };
    return notFalse ? { inject: true } : { inject: false, reason: `label ${A.inject}=false` };
  }
  if (isDefault && podSwitch === 'true') return { inject: true };
  if (isDefault && config.enableNamespacesByDefault && podSwitch === undefined && !IGNORED_NAMESPACES.includes(namespace)) return { inject: true };
  return {
    inject: false,
    reason: `neither namespace ${namespace} (label ${A.injectionLabel}=enabled or ${A.rev}) nor the pod (label ${A.inject}=true or ${A.rev}) opts in`,
  };
}

/**
 * A1's decision. `namespaceLabels` undefined means the API server's selectors already chose (the webhook, as
 * istiod) or there are none to apply (kube-inject, as istioctl); given, they are applied first, as the API server
 * would. Then injectRequired(): hostNetwork, ignored namespaces, the pod's switch (label over annotation), the
 * never/always selectors, and the policy.
 */
export function injectionDecision(pod: Pod, namespace: string, namespaceLabels: Readonly<StringMap> | undefined, config: InjectorConfig, warn: (msg: string) => void = () => {}): Decision {
  if (namespaceLabels) {
    const selected = webhookSelects(pod, namespace, namespaceLabels, config);
    if (!selected.inject) return selected;
  }
  if (pod.spec.hostNetwork === true) return { inject: false, reason: 'hostNetwork pod: iptables rules would change the node\'s networking' };
  if (IGNORED_NAMESPACES.includes(namespace)) return { inject: false, reason: `namespace ${namespace} is never injected` };

  const labels = podLabels(pod);
  const labelValue = labels[A.inject];
  const source = labelValue !== undefined ? 'label' : 'annotation';
  const value = (labelValue ?? podAnnotations(pod)[A.inject] ?? '').trim().toLowerCase();
  let useDefault = false;
  let inject = false;
  if (value === 'true') inject = true;
  else if (value === 'false') return { inject: false, reason: `${source} ${A.inject}=false` };
  else {
    if (value !== '') warn(`${source} ${A.inject}=${JSON.stringify(value)} is neither true nor false: using the default`);
    useDefault = true;
  }
  if (useDefault) {
    const never = config.neverInjectSelector.findIndex((s) => selectorMatches(s, labels));
    if (never >= 0) return { inject: false, reason: `pod labels match neverInjectSelector[${never}]` };
    if (config.alwaysInjectSelector.some((s) => selectorMatches(s, labels))) {
      useDefault = false;
      inject = true;
    }
  }
  switch (config.policy) {
    case 'enabled':
      return { inject: true };
    case 'disabled':
      return !useDefault && inject ? { inject: true } : { inject: false, reason: `injection policy is disabled and the pod does not opt in (${A.inject}=true)` };
    default:
      return { inject: false, reason: `injection policy ${JSON.stringify(config.policy)} is neither enabled nor disabled: injection is off` };
  }
}

/** Who owns the pod (GetDeployMetaFromPod): names ISTIO_META_WORKLOAD_NAME, ISTIO_META_OWNER and the canonical name. */
export interface WorkloadOwner {
  name: string;
  kind: string;
  apiVersion: string;
}

export function deploymentMeta(pod: Pod): WorkloadOwner {
  const m = pod.metadata;
  const out: WorkloadOwner = { name: typeof m.name === 'string' ? m.name : '', kind: 'Pod', apiVersion: 'v1' };
  if (typeof m.generateName !== 'string' || m.generateName === '' || !Array.isArray(m.ownerReferences)) return out;
  const ref = m.ownerReferences.find((r) => isRecord(r) && r.controller === true);
  if (!ref || typeof ref.name !== 'string') return out;
  out.name = ref.name;
  out.kind = typeof ref.kind === 'string' ? ref.kind : 'Pod';
  out.apiVersion = typeof ref.apiVersion === 'string' ? ref.apiVersion : 'v1';
  const hash = podLabels(pod)['pod-template-hash'];
  if (out.kind === 'ReplicaSet' && hash && ref.name.endsWith(`-${hash}`)) {
    return { name: ref.name.slice(0, -hash.length - 1), kind: 'Deployment', apiVersion: 'apps/v1' };
  }
  // The CronJob controller names its Jobs <cronjob>-<scheduled time in minutes>.
  const cron = out.kind === 'Job' ? /^(.+)-\d{8,}$/.exec(ref.name) : null;
  if (cron) return { name: cron[1]!, kind: 'CronJob', apiVersion: 'batch/v1' };
  return out;
}

/** DetectNativeSidecar (`auto`): the pod's node, or if none is assigned yet every node, runs kubelet ≥ 1.33. */
export function nativeSidecarsSupported(nodes: ReadonlyArray<{ name: string; kubeletVersion: string }>, nodeName?: string): boolean {
  const minor = (v: string) => Number(/^v?1\.(\d+)/.exec(v)?.[1] ?? -1);
  const node = nodeName ? nodes.find((n) => n.name === nodeName) : undefined;
  if (node) return minor(node.kubeletVersion) >= 33;
  return nodes.length > 0 && nodes.every((n) => minor(n.kubeletVersion) >= 33);
}

const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$/;
const PORT_LIST = /^\s*(\d{1,5}(:\d{1,5})?\s*(,\s*\d{1,5}(:\d{1,5})?\s*)*)?$/;
const CIDR_LIST = /^\s*([0-9a-fA-F:.]+\/\d{1,3}\s*(,\s*[0-9a-fA-F:.]+\/\d{1,3}\s*)*)?$/;
const BOOL = /^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$/;

/** The annotations INJ/validate.go checks before rendering; each problem names its annotation. */
export function validateAnnotations(annotations: Readonly<StringMap>): string[] {
  const errors: string[] = [];
  const check = (name: string, ok: (v: string) => boolean, what: string) => {
    const v = annotations[name];
    if (v !== undefined && !ok(v)) errors.push(`annotation ${name}=${JSON.stringify(v)}: ${what}`);
  };
  const uint = (max: number) => (v: string) => /^\d+$/.test(v.trim()) && Number(v) <= max;
  check('sidecar.istio.io/interceptionMode', (v) => ['REDIRECT', 'TPROXY', 'NONE'].includes(v), 'must be REDIRECT, TPROXY or NONE');
  check('status.sidecar.istio.io/port', uint(65535), 'must be a port (0-65535)');
  for (const n of ['initialDelaySeconds', 'periodSeconds', 'failureThreshold']) check(`readiness.status.sidecar.istio.io/${n}`, uint(2 ** 31 - 1), 'must be a non-negative integer');
  check('traffic.sidecar.istio.io/includeOutboundIPRanges', (v) => v.trim() === '*' || CIDR_LIST.test(v), 'must be "*" or a comma-separated list of CIDRs');
  check('traffic.sidecar.istio.io/excludeOutboundIPRanges', (v) => CIDR_LIST.test(v), 'must be a comma-separated list of CIDRs');
  check('traffic.sidecar.istio.io/includeInboundPorts', (v) => v.trim() === '*' || PORT_LIST.test(v), 'must be "*" or a comma-separated list of ports');
  for (const n of ['excludeInboundPorts', 'includeOutboundPorts', 'excludeOutboundPorts']) check(`traffic.sidecar.istio.io/${n}`, (v) => PORT_LIST.test(v), 'must be a comma-separated list of ports');
  for (const n of ['traffic.sidecar.istio.io/excludeInterfaces', 'traffic.sidecar.istio.io/kubevirtInterfaces', 'istio.io/reroute-virtual-interfaces']) {
    check(n, (v) => /^\s*([^\s,/]{1,15}\s*(,\s*[^\s,/]{1,15}\s*)*)?$/.test(v), 'must be a comma-separated list of interface names');
  }
  for (const n of ['prometheus.istio.io/merge-metrics', 'sidecar.istio.io/rewriteAppHTTPProbers', 'sidecar.istio.io/nativeSidecar']) check(n, (v) => BOOL.test(v), 'must be true or false');
  for (const n of ['proxyCPU', 'proxyMemory', 'proxyCPULimit', 'proxyMemoryLimit']) check(`sidecar.istio.io/${n}`, (v) => QUANTITY.test(v.trim()), 'must be a resource quantity (e.g. 100m, 128Mi)');
  const pc = annotations[A.proxyConfig] !== undefined ? parseProxyConfigAnnotation(annotations[A.proxyConfig]!) : undefined;
  if (typeof pc === 'string') errors.push(`annotation ${A.proxyConfig}: ${pc}`);
  return errors;
}

/** `proxy.istio.io/config` (YAML or JSON ProxyConfig) → object, or the reason it is not one. */
function parseProxyConfigAnnotation(text: string): ProxyConfigJson | string {
  let v: unknown;
  try {
    v = parseYaml(text, { maxAliasCount: 10, logLevel: 'error' });
  } catch (err) {
    return `not YAML: ${(err as Error).message.split('\n')[0]}`;
  }
  if (v === null || v === undefined) return {};
  if (!isRecord(v)) return 'must be a ProxyConfig mapping';
  if (v.proxyMetadata !== undefined && (!isRecord(v.proxyMetadata) || Object.values(v.proxyMetadata).some((x) => typeof x !== 'string'))) return 'proxyMetadata must map names to strings';
  if (v.statusPort !== undefined && (!Number.isInteger(v.statusPort) || (v.statusPort as number) < 0 || (v.statusPort as number) > 65535)) return 'statusPort must be a port';
  return v as ProxyConfigJson;
}

/** `inject.istio.io/templates`, aliases expanded, else defaultTemplates. */
export function selectTemplates(pod: Pod, config: InjectorConfig): string[] {
  const requested = podAnnotations(pod)[A.templates];
  const names = requested !== undefined ? requested.split(',').map((s) => s.trim()).filter(Boolean) : config.defaultTemplates;
  return names.flatMap((n) => config.aliases[n] ?? [n]);
}

export interface InjectRequest {
  /** The pod as received (never modified). */
  pod: unknown;
  /** The pod's namespace (the admission request's, else metadata.namespace, else `default`). */
  namespace?: string;
  /** See injectionDecision. */
  namespaceLabels?: Readonly<StringMap>;
  config: InjectorConfig;
  /** The enclosing workload (kube-inject); otherwise derived from the pod's controller reference. */
  owner?: WorkloadOwner;
  /** For `nativeSidecars: auto` (see nativeSidecarsSupported). */
  nativeSidecarsSupported?: boolean;
  /** Template names, instead of the pod's annotation or defaultTemplates. */
  templates?: string[];
  warn?: (msg: string) => void;
}

export type InjectOutcome =
  | { kind: 'injected'; pod: Pod; templates: string[]; alreadyInjected: boolean; changed: boolean }
  | { kind: 'skipped'; reason: string }
  | { kind: 'failed'; message: string };

interface InjectionStatus {
  initContainers: string[];
  containers: string[];
  volumes: string[];
  imagePullSecrets: string[];
}

const names = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function readStatus(pod: Pod): InjectionStatus | undefined {
  const text = podAnnotations(pod)[A.status];
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(v)) return undefined;
  return { initContainers: names(v.initContainers), containers: names(v.containers), volumes: names(v.volumes), imagePullSecrets: names(v.imagePullSecrets) };
}

/** The pod as given, cloned, with `metadata` and `spec.containers` present; a reason when it is no pod at all. */
export function normalizePod(value: unknown): Pod | string {
  if (!isRecord(value)) return 'the object is not a Pod';
  const pod = clonePlain(value);
  if (pod.metadata === undefined || pod.metadata === null) pod.metadata = {};
  if (!isRecord(pod.metadata)) return 'metadata is not an object';
  if (!isRecord(pod.spec)) return 'spec is missing or not an object';
  const spec = pod.spec;
  if (spec.containers === undefined || spec.containers === null) spec.containers = [];
  for (const f of ['containers', 'initContainers', 'volumes', 'imagePullSecrets']) {
    const list = spec[f];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list) || list.some((c) => !isRecord(c))) return `spec.${f} is not a list of objects`;
  }
  // managedFields are large and never ours to change (istiod clears them before diffing).
  delete pod.metadata.managedFields;
  return pod as unknown as Pod;
}

/** Removes what a previous injection added (stripPod + reinsertOverrides). */
function strip(pod: Pod, prev: InjectionStatus): void {
  const spec = pod.spec;
  spec.containers = spec.containers.filter((c) => !prev.containers.includes(c.name));
  if (spec.initContainers) spec.initContainers = spec.initContainers.filter((c) => !prev.initContainers.includes(c.name));
  const annotations = pod.metadata.annotations ?? {};
  const overridesText = annotations[A.overrides];
  if (overridesText !== undefined) {
    try {
      const o = JSON.parse(overridesText) as unknown;
      if (isRecord(o)) {
        for (const [field, list] of [['containers', o.containers], ['initContainers', o.initContainers]] as const) {
          if (!Array.isArray(list)) continue;
          const target = (spec[field] ??= []);
          for (const c of list) if (isRecord(c) && typeof c.name === 'string' && !target.some((t) => t.name === c.name)) target.push(c as Container);
        }
      }
    } catch {
      // An unreadable overrides annotation: the user's versions are gone; inject from the template alone.
    }
    delete annotations[A.overrides];
  }
  delete annotations[A.status];
}

/** Pure sidecar injection; see the module comment. */
export function injectPod(req: InjectRequest): InjectOutcome {
  try {
    return injectUnsafe(req);
  } catch (err) {
    return { kind: 'failed', message: `Pod injection failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function injectUnsafe(req: InjectRequest): InjectOutcome {
  const pod = normalizePod(req.pod);
  if (typeof pod === 'string') return { kind: 'failed', message: `Pod injection failed: ${pod}` };
  const config = req.config;
  const namespace = req.namespace || (typeof pod.metadata.namespace === 'string' && pod.metadata.namespace) || 'default';
  const decision = injectionDecision(pod, namespace, req.namespaceLabels, config, req.warn);
  if (!decision.inject) return { kind: 'skipped', reason: decision.reason };

  const annotations = podAnnotations(pod);
  const invalid = validateAnnotations(annotations);
  if (invalid.length > 0) return { kind: 'failed', message: `Pod injection failed: ${invalid.join('; ')}` };
  const templates = req.templates ?? selectTemplates(pod, config);
  if (templates.length === 0) return { kind: 'failed', message: `Pod injection failed: no template selected (annotation ${A.templates} is empty)` };
  const missing = templates.filter((t) => !Object.hasOwn(TEMPLATES, t));
  if (missing.length > 0) {
    return { kind: 'failed', message: `Pod injection failed: requested template ${JSON.stringify(missing[0])} not found; have ${Object.keys(TEMPLATES).join(', ')}` };
  }

  const before = clonePlain(pod);
  const prev = readStatus(pod);
  // What the previous injection saved in its proxy: the user's scrape settings and original probes.
  const oldProxy = prev ? proxyContainer(pod) : undefined;
  const oldEnv = (name: string) => oldProxy?.env?.find((e) => isRecord(e) && e.name === name)?.value;
  if (prev) strip(pod, prev);

  const proxyConfigAnnotation = annotations[A.proxyConfig] !== undefined ? (parseProxyConfigAnnotation(annotations[A.proxyConfig]!) as ProxyConfigJson) : {};
  const proxyConfig: ProxyConfigJson = {
    ...config.mesh.defaultConfig,
    ...proxyConfigAnnotation,
    proxyMetadata: { ...config.mesh.defaultConfig.proxyMetadata, ...proxyConfigAnnotation.proxyMetadata },
  };
  if (Object.keys(proxyConfig.proxyMetadata!).length === 0) delete proxyConfig.proxyMetadata;
  const nativeAnnotation = annotations['sidecar.istio.io/nativeSidecar'];
  const native =
    nativeAnnotation !== undefined ? /^(1|t|true)$/i.test(nativeAnnotation)
    : config.values.nativeSidecars === 'auto' ? req.nativeSidecarsSupported === true
    : config.values.nativeSidecars === 'true';
  const ctx: TemplateContext = {
    namespace,
    config,
    proxyConfig,
    native,
    hold: !native && (proxyConfig.holdApplicationUntilProxyStarts === true || config.values.holdApplicationUntilProxyStarts),
    statusPort: statusPortOf(annotations, proxyConfig),
    interceptionMode: annotations['sidecar.istio.io/interceptionMode'] ?? (typeof proxyConfig.interceptionMode === 'string' ? proxyConfig.interceptionMode : 'REDIRECT'),
    owner: req.owner ?? deploymentMeta(pod),
    previous: prev ? { prometheusAnnotations: oldEnv('ISTIO_PROMETHEUS_ANNOTATIONS'), appProbers: oldEnv('ISTIO_KUBE_APP_PROBERS'), volumes: prev.volumes, imagePullSecrets: prev.imagePullSecrets } : undefined,
  };
  finishPod(pod, templates, ctx);
  return { kind: 'injected', pod, templates, alreadyInjected: prev !== undefined, changed: !jsonEqual(pod, before) };
}

/** Deep equality of JSON values; object key order does not matter (as in a JSON patch). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (!isRecord(a) || !isRecord(b)) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
}
