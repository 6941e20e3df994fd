/**
 * Istio's resource annotations (istio/api annotation/annotations.yaml) with the kinds they attach to and whether they
 * are deprecated — what Istio's annotations analyzer checks against. `Any` attaches everywhere.
 */
export interface AnnotationDef {
  resources: readonly string[];
  deprecated?: boolean;
}

const pod = (deprecated = false): AnnotationDef => ({ resources: ['Pod'], ...(deprecated ? { deprecated } : {}) });
const any: AnnotationDef = { resources: ['Any'] };

export const ISTIO_ANNOTATIONS: Readonly<Record<string, AnnotationDef>> = {
  'alpha.istio.io/kubernetes-serviceaccounts': { resources: ['Service'], deprecated: true },
  'alpha.istio.io/canonical-serviceaccounts': { resources: ['Service'], deprecated: true },
  'alpha.istio.io/identity': pod(true),
  'networking.istio.io/exportTo': { resources: ['Service'] },
  'networking.istio.io/traffic-distribution': { resources: ['Service'] },
  'prometheus.istio.io/merge-metrics': pod(),
  'sidecar.istio.io/inject': pod(true),
  'sidecar.istio.io/status': pod(),
  'sidecar.istio.io/rewriteAppHTTPProbers': pod(),
  'sidecar.istio.io/controlPlaneAuthPolicy': pod(true),
  'sidecar.istio.io/discoveryAddress': pod(true),
  'sidecar.istio.io/proxyImage': pod(),
  'sidecar.istio.io/proxyImageType': pod(),
  'sidecar.istio.io/proxyCPU': pod(),
  'sidecar.istio.io/proxyCPULimit': pod(),
  'sidecar.istio.io/proxyMemory': pod(),
  'sidecar.istio.io/proxyMemoryLimit': pod(),
  'sidecar.istio.io/interceptionMode': pod(),
  'sidecar.istio.io/bootstrapOverride': pod(),
  'sidecar.istio.io/statsInclusionPrefixes': pod(true),
  'sidecar.istio.io/statsInclusionSuffixes': pod(true),
  'sidecar.istio.io/statsInclusionRegexps': pod(true),
  'sidecar.istio.io/statsHistogramBuckets': pod(),
  'sidecar.istio.io/statsFlushInterval': pod(),
  'sidecar.istio.io/statsCompression': pod(),
  'sidecar.istio.io/userVolume': pod(),
  'sidecar.istio.io/userVolumeMount': pod(),
  'sidecar.istio.io/enableCoreDump': pod(),
  'sidecar.istio.io/logLevel': pod(),
  'sidecar.istio.io/componentLogLevel': pod(),
  'sidecar.istio.io/agentLogLevel': pod(),
  'sidecar.istio.io/extraStatTags': pod(),
  'sidecar.istio.io/nativeSidecar': pod(),
  'sidecar.istio.io/capNetBindService': pod(),
  'status.sidecar.istio.io/port': pod(),
  'readiness.status.sidecar.istio.io/initialDelaySeconds': pod(),
  'readiness.status.sidecar.istio.io/periodSeconds': pod(),
  'readiness.status.sidecar.istio.io/failureThreshold': pod(),
  'readiness.status.sidecar.istio.io/applicationPorts': pod(),
  'traffic.sidecar.istio.io/includeOutboundIPRanges': pod(),
  'traffic.sidecar.istio.io/excludeOutboundIPRanges': pod(),
  'traffic.sidecar.istio.io/includeInboundPorts': pod(),
  'traffic.sidecar.istio.io/excludeInboundPorts': pod(),
  'traffic.sidecar.istio.io/includeOutboundPorts': pod(),
  'traffic.sidecar.istio.io/excludeOutboundPorts': pod(),
  'traffic.sidecar.istio.io/kubevirtInterfaces': pod(),
  'traffic.sidecar.istio.io/excludeInterfaces': pod(),
  'proxy.istio.io/config': pod(),
  'proxy.istio.io/overrides': pod(),
  'inject.istio.io/templates': pod(),
  'istio.io/rev': pod(),
  'ambient.istio.io/redirection': pod(),
  'ambient.istio.io/bypass-inbound-capture': pod(),
  'security.istio.io/autoMTLS': pod(),
  'istio.io/dry-run': { resources: ['AuthorizationPolicy'] },
  'kubernetes.io/ingress.class': { resources: ['Ingress'] },
  'install.operator.istio.io/chart-owner': any,
  'install.operator.istio.io/owner-generation': any,
  'install.operator.istio.io/version': any,
  'galley.istio.io/analyze-suppress': any,
  'topology.istio.io/controlPlaneClusters': any,
};

/** Istio's scope: keys whose prefix domain ends in istio.io, plus the Ingress class annotation Istio documents. */
export function isIstioAnnotation(key: string): boolean {
  if (key === 'kubernetes.io/ingress.class') return true;
  const slash = key.indexOf('/');
  return slash > 0 && key.slice(0, slash).endsWith('istio.io');
}
