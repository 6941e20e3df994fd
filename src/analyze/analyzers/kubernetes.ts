/**
 * Istio's analyzers of Kubernetes objects:
 * - injection.Analyzer — IST0102: a Namespace without `istio-injection` / `istio.io/rev` (and not ambient);
 * - annotations.K8sAnalyzer — IST0108 unknown, IST0107 misplaced, IST0135 deprecated Istio annotations on Namespaces,
 *   Services, Pods and workloads (mizzen also checks workload pod templates, where pod annotations belong);
 * - service.PortNameAnalyzer — IST0118 (IST0150 for ExternalName): Service ports whose protocol Istio cannot tell
 *   from the name or appProtocol, so it falls back to protocol sniffing.
 */
import type { K8sService } from '../../config/kinds/kubernetes.ts';
import type { Analyzer } from '../analyzer.ts';
import { T, Text } from '../codes.ts';
import type { AnalysisContext } from '../context.ts';
import type { ResourceRef } from '../message.ts';
import { ISTIO_ANNOTATIONS, isIstioAnnotation } from '../istio-annotations.ts';
import { IGNORED_NAMESPACES } from '../workloads.ts';

const DATAPLANE_MODE = 'istio.io/dataplane-mode';

export const injectionAnalyzer: Analyzer = {
  name: 'injection.Analyzer',
  description: 'Checks conditions related to Istio sidecar injection',
  types: [T.NamespaceNotInjected],
  analyze(ctx) {
    for (const ns of ctx.objects('Namespace')) {
      const name = ns.metadata.name;
      if (name === ctx.mesh.rootNamespace || IGNORED_NAMESPACES.includes(name)) continue;
      const labels = ns.metadata.labels;
      if (labels['istio-injection'] !== undefined || labels['istio.io/rev'] !== undefined) continue;
      if (labels[DATAPLANE_MODE] === 'ambient') continue;
      ctx.report(T.NamespaceNotInjected, ctx.ref(ns, ['metadata', 'name']), Text.namespaceNotInjected(name));
    }
  },
};

const DEPRECATION_EXTRA: Record<string, string> = { 'sidecar.istio.io/inject': ' in favor of the "sidecar.istio.io/inject" label' };

function checkAnnotations(
  ctx: AnalysisContext,
  annotations: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
  kind: string,
  at: (key: string) => ResourceRef,
): void {
  for (const key of Object.keys(annotations).sort()) {
    if (!isIstioAnnotation(key)) continue;
    const def = ISTIO_ANNOTATIONS[key];
    if (!def) {
      ctx.report(T.UnknownAnnotation, at(key), Text.unknownAnnotation(key));
      continue;
    }
    // Having both the label and the deprecated annotation is deliberate compatibility, not worth a message (as Istio).
    if (def.deprecated && !(key === 'sidecar.istio.io/inject' && labels[key] !== undefined)) {
      ctx.report(T.DeprecatedAnnotation, at(key), Text.deprecatedAnnotation(key, DEPRECATION_EXTRA[key] ?? ''));
    }
    if (def.resources.includes('Any') || def.resources.includes(kind)) continue;
    ctx.report(T.MisplacedAnnotation, at(key), Text.misplacedAnnotation(key, def.resources.join(', ')));
  }
}

export const annotationsAnalyzer: Analyzer = {
  name: 'annotations.K8sAnalyzer',
  description: 'Checks for misplaced and invalid Istio annotations in Kubernetes resources',
  types: [T.UnknownAnnotation, T.MisplacedAnnotation, T.DeprecatedAnnotation],
  analyze(ctx) {
    for (const kind of ['Namespace', 'Service']) {
      for (const o of ctx.objects(kind)) {
        checkAnnotations(ctx, o.metadata.annotations, o.metadata.labels, kind, (k) => ctx.ref(o, ['metadata', 'annotations', k]));
      }
    }
    for (const w of ctx.workloads) {
      if (w.kind !== 'Pod') {
        checkAnnotations(ctx, w.annotations, w.labels, w.kind, (k) => ctx.workloadRef(w, ['metadata', 'annotations', k]));
      }
      checkAnnotations(ctx, w.podAnnotations, w.podLabels, 'Pod', (k) => ctx.workloadRef(w, [...w.podPath, 'metadata', 'annotations', k]));
    }
  },
};

/** Istio's protocol.Parse names (case-insensitive), the prefix of `<protocol>[-<suffix>]`. */
const PROTOCOLS = new Set(['tcp', 'udp', 'grpc', 'grpc-web', 'http', 'http_proxy', 'http2', 'https', 'tls', 'mongo', 'redis', 'mysql']);
const APP_PROTOCOLS = new Set(['kubernetes.io/h2c', 'kubernetes.io/ws', 'kubernetes.io/wss']);
/** Ports Istio treats as TCP whatever their name, since sniffing would break them (SMTP, DNS, MySQL, MongoDB). */
const WELL_KNOWN_PORTS = new Set([25, 53, 3306, 27017]);

/** Would Istio know this port's protocol without sniffing (pkg/config/kube ConvertProtocol)? */
export function portProtocolKnown(p: { name?: string; port: number; protocol?: string; appProtocol?: string }): boolean {
  if ((p.protocol ?? '').toUpperCase() === 'UDP') return true;
  const name = p.appProtocol ?? p.name ?? '';
  if (p.appProtocol && APP_PROTOCOLS.has(p.appProtocol)) return true;
  if (name.toLowerCase().startsWith('grpc-web')) return true;
  const prefix = name.split('-')[0]?.toLowerCase() ?? '';
  if (PROTOCOLS.has(prefix)) return true;
  return WELL_KNOWN_PORTS.has(p.port);
}

export const portNameAnalyzer: Analyzer = {
  name: 'service.PortNameAnalyzer',
  description: 'Checks the port names associated with each service',
  types: [T.PortNameIsNotUnderNamingConvention, T.ExternalNameServiceTypeInvalidPortName],
  analyze(ctx) {
    for (const svc of ctx.objects<K8sService>('Service')) {
      const ns = svc.metadata.namespace;
      if (IGNORED_NAMESPACES.includes(ns)) continue;
      // The control plane's own services are Istio's business (util.IsIstioControlPlane).
      const l = svc.metadata.labels;
      if (ns === ctx.mesh.rootNamespace && (l.app === 'istiod' || l.istio === 'pilot' || l.istio === 'istiod')) continue;
      const spec = svc.spec.spec ?? {};
      const externalName = spec.type === 'ExternalName';
      (spec.ports ?? []).forEach((p, i) => {
        const known = portProtocolKnown(p);
        if (known && !(externalName && p.name === 'tcp')) return;
        const at = ctx.ref(svc, ['spec', 'ports', i, 'port']);
        if (externalName) ctx.report(T.ExternalNameServiceTypeInvalidPortName, at, Text.externalNameInvalidPortName());
        else ctx.report(T.PortNameIsNotUnderNamingConvention, at, Text.portNameNotUnderConvention(p.name ?? '', p.port, p.targetPort === undefined ? '0' : String(p.targetPort)));
      });
    }
  },
};
