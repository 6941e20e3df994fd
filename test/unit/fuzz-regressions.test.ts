/**
 * Regressions found by the fuzzing campaign (test/fuzz, `npm run bench:fuzz`), one case per fix, so each stays fixed
 * without the fuzzer.
 */
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import { formatConfigError } from '../../src/config/object.ts';
import { validateDocument } from '../../src/config/validate.ts';
import { resolveInjectorConfig } from '../../src/webhook/inject.ts';
import { reviewAdmission } from '../../src/webhook/server.ts';
import { reviewValidation } from '../../src/webhook/validate.ts';
import { sidecarProxy, translate } from '../support/translate.ts';

const opts = { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' };

describe('fuzz regressions', () => {
  // config.fuzz "several conflicting objects", seed 1 path 230: `kind: ""` in a known group was refused as kind "",
  // so the message named no kind (` default/a: apiVersion: unknown kind ""`).
  it('an empty kind is refused as a missing kind, naming the document', () => {
    const vs = { apiVersion: 'networking.istio.io/v1', kind: '', metadata: { name: 'a', namespace: 'default' }, spec: { hosts: ['reviews'] } };
    const r = validateDocument(vs, allKinds, opts);
    expect(r?.ok).toBe(false);
    if (r && !r.ok) {
      expect(r.errors).toMatchObject({ kind: 'document', namespace: 'default', name: 'a', errors: [{ path: 'kind', message: 'required field is missing' }] });
      expect(formatConfigError(r.errors)).toEqual(['document default/a: kind: required field is missing']);
    }
  });

  // webhook.fuzz "reviewValidation": the same empty kind in an AdmissionReview was denied as ` default/a: apiVersion: …`.
  it('the validating webhook denies an empty kind naming the object and the kind field', () => {
    const object = { apiVersion: 'networking.istio.io/v1', kind: '', metadata: { name: 'a', namespace: 'default' }, spec: {} };
    const out = reviewValidation({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', operation: 'CREATE', kind: { group: 'networking.istio.io', version: 'v1', kind: '' }, object } });
    expect(out.ok).toBe(true);
    if (out.ok) {
      expect(out.review.response.allowed).toBe(false);
      expect(out.review.response.status?.message).toMatch(/^object default\/a: kind: unknown kind "" in networking\.istio\.io/);
    }
  });

  // config.fuzz "validate + translate", seed 20261122 path 7830: seed 039's EnvoyFilter with the HTTP filter's `name`
  // deleted was accepted, and the unnamed filter made the sidecar's virtualInbound violate Envoy's schema (generation
  // error; without --verify-xds the proxy would NACK the listener).
  it('an EnvoyFilter that inserts an unnamed filter is refused at patch.value.name', () => {
    const ef = (value: Record<string, unknown>) => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: { name: filter-ratelimit, namespace: istio-system }
spec:
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        listener: { filterChain: { filter: { name: envoy.filters.network.http_connection_manager } } }
      patch:
        operation: INSERT_BEFORE
        value: ${JSON.stringify(value)}
`;
    const typed = { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit', domain: 'productpage-ratelimit', rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: 'rate_limit_cluster' } }, transport_api_version: 'V3' } } };
    const unnamed = translate(ef(typed), sidecarProxy('istio-system'));
    expect(unnamed.refused.flatMap(formatConfigError)).toEqual(['EnvoyFilter istio-system/filter-ratelimit: spec.configPatches[0].patch.value.name: a filter added with INSERT_BEFORE needs a name']);
    expect(unnamed.generationErrors).toBe(0);
    const named = translate(ef({ name: 'envoy.filters.http.ratelimit', ...typed }), sidecarProxy('istio-system'));
    expect(named.refused).toEqual([]);
    expect(named.generationErrors).toBe(0);
  });

  // webhook.fuzz "reviewAdmission + injectPod", seed 20261122 path 188: a container name nested ~1,000 objects deep
  // was copied and diffed into a patch (the copy and the diff recurse; deeper still, they would exhaust the stack).
  it('the injector refuses a pod nested deeper than any real pod, saying so', () => {
    let deep: Record<string, unknown> = { a: 'x' };
    for (let i = 0; i < 5000; i++) deep = { a: deep };
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'default' }, spec: { containers: [{ name: deep, image: 'app' }] } };
    const out = reviewAdmission({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'default', object: pod } }, { config: resolveInjectorConfig({}) });
    expect(out.ok && out.review.response).toMatchObject({ uid: 'u', allowed: false, status: { message: 'Pod injection failed: the pod nests deeper than 100 levels' } });
  });

  // bench:fuzz "damaged YAML" and "reviewAdmission": a YAML directive such as `%2F%00` in a pod's proxy.istio.io/config
  // annotation made the yaml library print a warning to stderr for every such pod (log spam from any pod author).
  it('YAML warnings from user text never reach stderr', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'default', labels: { 'sidecar.istio.io/inject': 'true' }, annotations: { 'proxy.istio.io/config': '%2F%00\nconcurrency: 2' } }, spec: { containers: [{ name: 'app', image: 'app' }] } };
      const out = reviewAdmission({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'default', object: pod } }, { config: resolveInjectorConfig({}) });
      expect(out.ok).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });
});

