/** `serve --mesh-config`: istiod's mesh config YAML (or the istio ConfigMap) → the settings mizzen reads, or field errors. */
import { describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../../src/config/mesh-config.ts';
import { BUILTIN_EXTENSION_PROVIDERS } from '../../src/model/mesh.ts';

describe('parseMeshConfig', () => {
  it('reads the fields mizzen uses and lists the rest as unused', () => {
    const r = parseMeshConfig(`
outboundTrafficPolicy: { mode: REGISTRY_ONLY }
trustDomain: example.org
connectTimeout: 2.5s
enableAutoMtls: false
localityLbSetting: { enabled: false }
accessLogFile: /dev/stdout
accessLogEncoding: JSON
pathNormalization: { normalization: BASE }
defaultProviders: { tracing: [otel] }
extensionProviders:
  - name: otel
    opentelemetry: { service: otel.observability.svc.cluster.local, port: 4317 }
  - name: envoy
    envoyFileAccessLog: { path: /dev/stderr }
defaultConfig: { tracing: { sampling: 5 } }
discoverySelectors: []
enablePrometheusMerge: true
`);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.mesh).toMatchObject({
      outboundTrafficPolicy: 'REGISTRY_ONLY',
      trustDomain: 'example.org',
      connectTimeoutMs: 2500,
      enableAutoMtls: false,
      localityLbEnabled: false,
      accessLogFile: '/dev/stdout',
      accessLogEncoding: 'JSON',
      pathNormalization: 'BASE',
      defaultProviders: { tracing: ['otel'] },
      defaultConfig: { tracing: { sampling: 5 } },
    });
    // User providers replace built-ins of the same name (envoy) and the other built-ins stay.
    const names = r.value.mesh.extensionProviders!.map((p) => p.name);
    expect(names.sort()).toEqual(['envoy', 'otel', 'prometheus', 'stackdriver']);
    expect(r.value.mesh.extensionProviders!.find((p) => p.name === 'envoy')?.envoyFileAccessLog?.path).toBe('/dev/stderr');
    expect(BUILTIN_EXTENSION_PROVIDERS.find((p) => p.name === 'envoy')?.envoyFileAccessLog?.path).toBe('/dev/stdout');
    expect(r.value.unused).toEqual(['discoverySelectors', 'enablePrometheusMerge']);
  });

  it('accepts the istio ConfigMap itself, and an empty file', () => {
    const cm = parseMeshConfig(`apiVersion: v1
kind: ConfigMap
metadata: { name: istio, namespace: istio-system }
data:
  mesh: |
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
`);
    expect(cm.ok && cm.value.mesh.outboundTrafficPolicy).toBe('REGISTRY_ONLY');
    const empty = parseMeshConfig('');
    expect(empty.ok && empty.value.mesh).toEqual({});
  });

  it('refuses wrong values with their field paths', () => {
    const r = parseMeshConfig(`
outboundTrafficPolicy: { mode: DENY_ALL }
connectTimeout: soon
enableAutoMtls: "yes please"
defaultServiceExportTo: .
extensionProviders:
  - { name: a, zipkin: {}, opentelemetry: {} }
  - { zipkin: {} }
  - { name: a, zipkin: {} }
`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.path)).toEqual([
      'enableAutoMtls',
      'defaultServiceExportTo',
      'outboundTrafficPolicy.mode',
      'connectTimeout',
      'extensionProviders[0]',
      'extensionProviders[1].name',
      'extensionProviders[2].name',
    ]);
    expect(r.errors[2]!.message).toBe('must be one of ALLOW_ANY, REGISTRY_ONLY, got "DENY_ALL"');
    expect(parseMeshConfig('[1, 2]').ok).toBe(false);
    expect(parseMeshConfig('a: [').ok).toBe(false);
  });
});
