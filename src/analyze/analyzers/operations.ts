/**
 * Operational anti-patterns:
 * - MZA0005: sidecars that would run without CPU/memory requests or limits — "Not setting resource requests on
 *   sidecar: Envoy sidecars need CPU/memory limits too". Injection gives istio-proxy the install's
 *   values.global.proxy.resources (Istio's defaults: requests 100m/128Mi, limits 2000m/1024Mi) unless the pod carries
 *   any sidecar.istio.io/proxyCPU|proxyMemory|proxyCPULimit|proxyMemoryLimit annotation — then only the annotated
 *   values, and the rest is unset. So a partial set of annotations, or an IstioOperator whose global proxy resources
 *   lack a value, leaves the sidecar without it;
 * - MZA0006: Istio resources on an older API version (v1 is served since Istio 1.22) and IstioOperator resources,
 *   which no in-cluster operator reconciles since Istio 1.24 — "Ignoring upgrade compatibility: Istio CRD versions
 *   change; test upgrades in staging".
 */
import { allKinds } from '../../config/kinds/all.ts';
import type { Analyzer } from '../analyzer.ts';
import { T } from '../codes.ts';
import type { ResourceRef } from '../message.ts';
import { meshMembership } from '../workloads.ts';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const RESOURCE_ANNOTATIONS: Array<[string, string]> = [
  ['sidecar.istio.io/proxyCPU', 'CPU request'],
  ['sidecar.istio.io/proxyMemory', 'memory request'],
  ['sidecar.istio.io/proxyCPULimit', 'CPU limit'],
  ['sidecar.istio.io/proxyMemoryLimit', 'memory limit'],
];

export const sidecarResourcesAnalyzer: Analyzer = {
  name: 'mizzen.SidecarResourcesAnalyzer',
  description: 'Checks that injected sidecars get CPU/memory requests and limits',
  types: [T.SidecarResourcesMissing],
  analyze(ctx) {
    // Workloads: a partial set of resource annotations replaces the defaults with only what is annotated.
    for (const w of ctx.workloads) {
      const set = RESOURCE_ANNOTATIONS.filter(([a]) => w.podAnnotations[a] !== undefined);
      if (set.length === 0 || set.length === RESOURCE_ANNOTATIONS.length) continue;
      const m = meshMembership(w, ctx.namespaces);
      if (m.kind === 'none' || m.kind === 'ambient') continue;
      const missing = RESOURCE_ANNOTATIONS.filter(([a]) => w.podAnnotations[a] === undefined);
      ctx.report(
        T.SidecarResourcesMissing,
        ctx.workloadRef(w, [...w.podPath, 'metadata', 'annotations', set[0]?.[0] ?? '']),
        `The istio-proxy sidecar gets no ${missing.map(([, what]) => what).join(', ')}: once any sidecar.istio.io/proxy* resource annotation is set, injection uses only the annotated values. Add ${missing.map(([a]) => a).join(', ')}.`,
      );
    }
    // The install: IstioOperator values.global.proxy.resources replaces Istio's defaults for every sidecar.
    for (const d of ctx.docs) {
      const v = d.value;
      if (!isRecord(v) || v.kind !== 'IstioOperator' || typeof v.apiVersion !== 'string' || !v.apiVersion.startsWith('install.istio.io/')) continue;
      const proxy = isRecord(v.spec) && isRecord(v.spec.values) && isRecord(v.spec.values.global) ? v.spec.values.global.proxy : undefined;
      if (!isRecord(proxy) || !('resources' in proxy)) continue;
      const res = isRecord(proxy.resources) ? proxy.resources : {};
      const requests = isRecord(res.requests) ? res.requests : {};
      const limits = isRecord(res.limits) ? res.limits : {};
      const missing = [
        requests.cpu === undefined ? 'CPU request' : '',
        requests.memory === undefined ? 'memory request' : '',
        limits.cpu === undefined ? 'CPU limit' : '',
        limits.memory === undefined ? 'memory limit' : '',
      ].filter(Boolean);
      if (missing.length === 0) continue;
      const meta = isRecord(v.metadata) ? v.metadata : {};
      const ref: ResourceRef = {
        kind: 'IstioOperator',
        namespace: typeof meta.namespace === 'string' ? meta.namespace : '',
        name: typeof meta.name === 'string' ? meta.name : '<unnamed>',
        file: d.file,
        line: ctx.index.lineOf(d.file, d.line, ['spec', 'values', 'global', 'proxy', 'resources']),
      };
      ctx.report(
        T.SidecarResourcesMissing,
        ref,
        `values.global.proxy.resources replaces Istio's sidecar defaults but sets no ${missing.join(', ')}: every injected istio-proxy runs without it. Set requests and limits for cpu and memory.`,
      );
    }
  },
};

export const apiVersionAnalyzer: Analyzer = {
  name: 'mizzen.ApiVersionAnalyzer',
  description: 'Checks for Istio resources on older API versions and for IstioOperator resources',
  types: [T.OlderIstioApiVersion],
  analyze(ctx) {
    for (const d of ctx.docs) {
      const v = d.value;
      if (!isRecord(v) || typeof v.apiVersion !== 'string' || typeof v.kind !== 'string') continue;
      const slash = v.apiVersion.indexOf('/');
      const group = slash < 0 ? '' : v.apiVersion.slice(0, slash);
      if (!group.endsWith('istio.io')) continue;
      const meta = isRecord(v.metadata) ? v.metadata : {};
      const ref: ResourceRef = {
        kind: v.kind,
        namespace: typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : v.kind === 'IstioOperator' ? '' : ctx.defaultNamespace,
        name: typeof meta.name === 'string' ? meta.name : '<unnamed>',
        file: d.file,
        line: ctx.index.lineOf(d.file, d.line, ['apiVersion']),
      };
      if (group === 'install.istio.io' && v.kind === 'IstioOperator') {
        ctx.report(
          T.OlderIstioApiVersion,
          ref,
          'IstioOperator is only an istioctl install input: the in-cluster operator that reconciled it was removed in Istio 1.24. Install with istioctl or Helm, and test the upgrade in staging.',
        );
        continue;
      }
      const found = allKinds.find(v.apiVersion, v.kind);
      if (!found || 'error' in found) continue;
      const newest = found.def.versions[0];
      const version = v.apiVersion.slice(slash + 1);
      if (!newest || version === newest) continue;
      ctx.report(
        T.OlderIstioApiVersion,
        ref,
        `${v.apiVersion} is an older API version of ${v.kind}: use ${group}/${newest} (served since Istio 1.22; older versions may be removed later) and test the upgrade in staging.`,
      );
    }
  },
};
