/**
 * AuthorizationPolicy `action: CUSTOM` with MeshConfig ext_authz providers (istio-xds.md §7.1; istiod
 * pilot/pkg/security/authz/builder/{builder,extauthz}.go): the mesh config checks, the shadow RBAC + ext_authz pair in
 * front of the enforcing RBAC filters (HTTP and TCP), the exact ext_authz config for HTTP and gRPC providers, and
 * failing closed when the provider cannot be used. Every listener goes through the strict Envoy schema checker
 * (translateOffline verify) and the encoder.
 */
import { describe, expect, it } from 'vitest';
import { explain } from '../../src/app/explain.ts';
import { translateOffline } from '../../src/app/offline-translate.ts';
import { allKinds } from '../../src/config/kinds/all.ts';
import { parseMeshConfig } from '../../src/config/mesh-config.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { DEFAULT_MESH, type MeshConfig } from '../../src/model/mesh.ts';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { resolveExtAuthz } from '../../src/xds/builders/ext-authz.ts';
import { evaluateHttp, evaluateNetwork } from '../support/rbac-eval.ts';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
spec: { clusterIP: 10.96.0.30, selector: { app: orders }, ports: [{ name: http, port: 8080 }, { name: tcp-db, port: 5432 }] }
---
apiVersion: v1
kind: Service
metadata: { name: authz, namespace: security }
spec: { clusterIP: 10.96.0.40, ports: [{ name: http, port: 8000 }, { name: grpc, port: 9000 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: orders-0, namespace: shop, labels: { app: orders, security.istio.io/tlsMode: istio } }
spec: { serviceAccountName: orders }
status: { podIP: 10.20.0.5, phase: Running }
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, labels: { app: web, security.istio.io/tlsMode: istio } }
spec: { serviceAccountName: web }
status: { podIP: 10.20.0.6, phase: Running }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: orders-1, namespace: shop, labels: { kubernetes.io/service-name: orders } }
addressType: IPv4
ports: [{ name: http, port: 8080 }, { name: tcp-db, port: 5432 }]
endpoints:
  - { addresses: [10.20.0.5], conditions: { ready: true }, targetRef: { kind: Pod, name: orders-0, namespace: shop } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-debug, namespace: shop }
spec: { selector: { matchLabels: { app: orders } }, action: DENY, rules: [{ to: [{ operation: { paths: ["/debug*"] } }] }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-all, namespace: shop }
spec: { selector: { matchLabels: { app: orders } }, rules: [{}] }
`;

const custom = (provider: string, name = 'ext', rules = '[{ to: [{ operation: { paths: ["/admin*"] } }] }]') => `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: shop }
spec: { selector: { matchLabels: { app: orders } }, action: CUSTOM, provider: { name: ${provider} }, rules: ${rules} }
`;

const MESH_YAML = `
extensionProviders:
- name: ext-http
  envoyExtAuthzHttp:
    service: authz.security.svc.cluster.local
    port: 8000
    timeout: 0.5s
    pathPrefix: /check
    failOpen: true
    statusOnError: "503"
    includeRequestHeadersInCheck: [authorization, "x-ext-*"]
    includeAdditionalHeadersInCheck: { x-mesh: mizzen }
    headersToUpstreamOnAllow: [x-user, "*-id"]
    headersToDownstreamOnDeny: [www-authenticate]
    headersToDownstreamOnAllow: [set-cookie]
    includeRequestBodyInCheck: { maxRequestBytes: 4096, allowPartialMessage: true }
- name: ext-grpc
  envoyExtAuthzGrpc:
    service: security/authz.security.svc.cluster.local
    port: "9000"
    timeout: 2s
    statusOnError: "500"
    includeRequestBodyInCheck: { maxRequestBytes: 1024, packAsBytes: true }
- name: ext-gone
  envoyExtAuthzGrpc: { service: gone.security.svc.cluster.local, port: 9000 }
- name: ext-http-gone
  envoyExtAuthzHttp: { service: gone.security.svc.cluster.local, port: 8000 }
- name: tracer
  zipkin: { service: authz.security.svc.cluster.local, port: 9411 }
`;

function mesh(yaml = MESH_YAML): MeshConfig {
  const m = parseMeshConfig(yaml);
  if (!m.ok) throw new Error(JSON.stringify(m.errors));
  return { ...DEFAULT_MESH, ...m.value.mesh };
}

const SHADOW_KEY = 'istio_ext_authz_shadow_effective_policy_id';
const HTTP_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const NET_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz';

interface NodeSpec {
  namespace?: string;
  labels?: Record<string, string>;
  generator?: string;
  type?: string;
  listeners?: string[];
}

function translate(yaml: string, m: MeshConfig = mesh(), node: NodeSpec = {}) {
  const loaded = loadYamlText(yaml, 'x.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  expect(loaded.errors).toEqual([]);
  const ns = node.namespace ?? 'shop';
  const t = translateOffline(
    loaded.objects,
    {
      id: `${node.type ?? 'sidecar'}~10.20.0.5~orders-0.${ns}~${ns}.svc.cluster.local`,
      cluster: '',
      metadata: { NAMESPACE: ns, LABELS: node.labels ?? { app: 'orders' }, INTERCEPTION_MODE: 'REDIRECT', ...(node.generator ? { GENERATOR: node.generator } : {}) },
    },
    { mesh: m, verify: true, trustClaims: true, ...(node.listeners ? { listeners: node.listeners } : {}) },
  );
  // verify: every resource was checked against Envoy's protos + PGV rules, and encoded; a violation is an error here.
  expect(t.generationErrors).toBe(0);
  return t;
}

function inbound(yaml: string, m?: MeshConfig) {
  const t = translate(yaml, m);
  const chains = t.listeners.find((l) => l.name === 'virtualInbound')!.filter_chains as any[];
  const mtls = (port: number) => chains.find((c) => c.filter_chain_match?.destination_port === port && c.transport_socket);
  const hcm = mtls(8080).filters.find((f: any) => f.name === 'envoy.filters.network.http_connection_manager').typed_config;
  return { hcm, httpNames: (hcm.http_filters as any[]).map((f) => f.name as string), tcp: mtls(5432).filters as any[], notes: t.notes };
}

const names = (filters: any[]) => filters.map((f) => f.name as string);
const FRONT = { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/web' };

/** ext_authz runs when the shadow RBAC put an `istio-ext-authz…` policy id in its metadata (filter_enabled_metadata). */
function extAuthzRuns(hcm: any, path: string): boolean {
  const d = evaluateHttp(hcm, { path, ...FRONT }, { onUnknownFilter: () => {} });
  return d.shadow.some((s) => s.matched?.startsWith('istio-ext-authz'));
}

describe('MeshConfig ext_authz providers', () => {
  it('reads both kinds, port as a number (proto JSON also takes its text)', () => {
    const m = mesh();
    expect(m.extensionProviders.find((p) => p.name === 'ext-grpc')!.envoyExtAuthzGrpc).toEqual({
      service: 'security/authz.security.svc.cluster.local',
      port: 9000,
      timeout: '2s',
      statusOnError: '500',
      includeRequestBodyInCheck: { maxRequestBytes: 1024, packAsBytes: true },
    });
    expect(m.extensionProviders.find((p) => p.name === 'ext-http')!.envoyExtAuthzHttp?.headersToDownstreamOnAllow).toEqual(['set-cookie']);
  });

  it('refuses missing service/port, bad timeout and the other fields istiod refuses, with field paths', () => {
    const r = parseMeshConfig(`
extensionProviders:
- name: a
  envoyExtAuthzHttp: { timeout: soon, pathPrefix: check, statusOnError: teapot, headersToUpstreamOnAllow: ["*"], includeRequestBodyInCheck: { allowPartialMessage: true } }
- name: b
  envoyExtAuthzGrpc: { service: x.svc, port: 70000, pathPrefix: /p, failOpen: "yes" }
- name: c
  envoyExtAuthzGrpc: { service: x.svc, port: 9000, timeout: 1s }
`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.path)).toEqual([
      'extensionProviders[0].envoyExtAuthzHttp.service',
      'extensionProviders[0].envoyExtAuthzHttp.port',
      'extensionProviders[0].envoyExtAuthzHttp.timeout',
      'extensionProviders[0].envoyExtAuthzHttp.statusOnError',
      'extensionProviders[0].envoyExtAuthzHttp.includeRequestBodyInCheck.maxRequestBytes',
      'extensionProviders[0].envoyExtAuthzHttp.pathPrefix',
      'extensionProviders[0].envoyExtAuthzHttp.headersToUpstreamOnAllow',
      'extensionProviders[1].envoyExtAuthzGrpc.pathPrefix',
      'extensionProviders[1].envoyExtAuthzGrpc.port',
      'extensionProviders[1].envoyExtAuthzGrpc.failOpen',
    ]);
    expect(r.errors[1]!.message).toContain('required');
    expect(r.errors[8]!.message).toBe('must be in the range [1, 65535], got 70000');
    expect(r.errors[7]!.message).toBe('unknown field for envoyExtAuthzGrpc (HTTP providers only)');
  });
});

describe('CUSTOM with an HTTP ext_authz provider', () => {
  const { hcm, httpNames, tcp, notes } = inbound(SERVICES + custom('ext-http'));

  it('shadow RBAC, then ext_authz, then the enforcing DENY and ALLOW RBAC filters', () => {
    const i = httpNames.indexOf('envoy.filters.http.ext_authz');
    expect(httpNames.slice(i - 1, i + 3)).toEqual(['envoy.filters.http.rbac', 'envoy.filters.http.ext_authz', 'envoy.filters.http.rbac', 'envoy.filters.http.rbac']);
    const [shadow, , deny, allow] = hcm.http_filters.slice(i - 1, i + 3);
    expect(shadow.typed_config.rules).toBeUndefined();
    expect(shadow.typed_config.shadow_rules_stat_prefix).toBe('istio_ext_authz_');
    expect(Object.keys(shadow.typed_config.shadow_rules.policies)).toEqual(['istio-ext-authz-ext-http-ns[shop]-policy[ext]-rule[0]']);
    expect([deny.typed_config.rules.action, allow.typed_config.rules.action]).toEqual(['DENY', 'ALLOW']);
  });

  it('the ext_authz config: istiod generateHTTPConfig', () => {
    const f = hcm.http_filters.find((x: any) => x.name === 'envoy.filters.http.ext_authz');
    expect(f.typed_config).toEqual({
      '@type': HTTP_TYPE,
      status_on_error: { code: 'ServiceUnavailable' },
      failure_mode_allow: true,
      transport_api_version: 'V3',
      http_service: {
        server_uri: { uri: 'http://authz.security.svc.cluster.local', cluster: 'outbound|8000||authz.security.svc.cluster.local', timeout: '0.500s' },
        path_prefix: '/check',
        authorization_request: {
          allowed_headers: { patterns: [{ exact: 'authorization', ignore_case: true }, { prefix: 'x-ext-', ignore_case: true }] },
          headers_to_add: [{ key: 'x-mesh', value: 'mizzen' }],
        },
        authorization_response: {
          allowed_upstream_headers: { patterns: [{ exact: 'x-user', ignore_case: true }, { suffix: '-id', ignore_case: true }] },
          allowed_client_headers: { patterns: [{ exact: 'www-authenticate', ignore_case: true }] },
          allowed_client_headers_on_success: { patterns: [{ exact: 'set-cookie', ignore_case: true }] },
        },
      },
      filter_enabled_metadata: { filter: 'envoy.filters.http.rbac', path: [{ key: SHADOW_KEY }], value: { string_match: { prefix: 'istio-ext-authz' } } },
      with_request_body: { max_request_bytes: 4096, allow_partial_message: true },
    });
  });

  it('ext_authz runs only for the requests the CUSTOM rule selects; the enforcing filters still apply', () => {
    expect(extAuthzRuns(hcm, '/admin/users')).toBe(true);
    expect(extAuthzRuns(hcm, '/public')).toBe(false);
    // The shadow filter never denies: /admin is up to the authorizer, /debug is still denied by the DENY policy.
    expect(evaluateHttp(hcm, { path: '/admin/users', ...FRONT }, { onUnknownFilter: () => {} }).allowed).toBe(true);
    expect(evaluateHttp(hcm, { path: '/debug', ...FRONT }, { onUnknownFilter: () => {} }).status).toBe(403);
  });

  it('an HTTP provider is left off TCP chains (as istiod), the other policies stay', () => {
    expect(names(tcp).filter((n) => n.includes('ext_authz'))).toEqual([]);
    expect(tcp.filter((f) => f.name === 'envoy.filters.network.rbac').map((f) => f.typed_config.rules.action)).toEqual(['DENY', 'ALLOW']);
    expect(notes).toContain('CUSTOM AuthorizationPolicy shop/ext: provider "ext-http" is an HTTP ext_authz provider; not applied to TCP chains (as istiod)');
  });
});

describe('CUSTOM with a gRPC ext_authz provider', () => {
  const { hcm, httpNames, tcp } = inbound(SERVICES + custom('ext-grpc'));
  const grpcService = {
    envoy_grpc: { cluster_name: 'outbound|9000||authz.security.svc.cluster.local', authority: 'outbound_.9000_._.authz.security.svc.cluster.local' },
    timeout: '2s',
  };

  it('HTTP chains: envoy_grpc on the provider cluster, authority without `|`', () => {
    expect(httpNames.filter((n) => n.startsWith('envoy.filters.http.'))).toEqual(
      expect.arrayContaining(['envoy.filters.http.rbac', 'envoy.filters.http.ext_authz']),
    );
    const f = hcm.http_filters.find((x: any) => x.name === 'envoy.filters.http.ext_authz');
    expect(f.typed_config).toEqual({
      '@type': HTTP_TYPE,
      status_on_error: { code: 'InternalServerError' },
      transport_api_version: 'V3',
      grpc_service: grpcService,
      filter_enabled_metadata: { filter: 'envoy.filters.http.rbac', path: [{ key: SHADOW_KEY }], value: { string_match: { prefix: 'istio-ext-authz' } } },
      with_request_body: { max_request_bytes: 1024, pack_as_bytes: true },
    });
    expect(extAuthzRuns(hcm, '/admin')).toBe(true);
    expect(extAuthzRuns(hcm, '/')).toBe(false);
  });

  it('TCP chains: network shadow RBAC, network ext_authz, then the enforcing RBAC filters and tcp_proxy', () => {
    const order = names(tcp).filter((n) => n !== 'istio.metadata_exchange' && n !== 'istio.stats');
    expect(order).toEqual(['envoy.filters.network.rbac', 'envoy.filters.network.ext_authz', 'envoy.filters.network.rbac', 'envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
    const shadow = tcp.find((f) => f.name === 'envoy.filters.network.rbac');
    expect(shadow.typed_config).toMatchObject({ stat_prefix: 'tcp.', shadow_rules_stat_prefix: 'istio_ext_authz_' });
    expect(shadow.typed_config.rules).toBeUndefined();
    expect(tcp.find((f) => f.name === 'envoy.filters.network.ext_authz').typed_config).toEqual({
      '@type': NET_TYPE,
      stat_prefix: 'tcp.',
      transport_api_version: 'V3',
      grpc_service: grpcService,
      filter_enabled_metadata: { filter: 'envoy.filters.network.rbac', path: [{ key: SHADOW_KEY }], value: { string_match: { prefix: 'istio-ext-authz' } } },
    });
    // On TCP the HTTP-only path condition is dropped (wider), so every connection is checked; the shadow never denies
    // (the connection is refused by the DENY policy, widened the same way, not by the CUSTOM filter).
    const d = evaluateNetwork(tcp, { ...FRONT, destinationPort: 5432 }, { onUnknownFilter: () => {} });
    expect(d.shadow.map((s) => s.matched)).toEqual(['istio-ext-authz-ext-grpc-ns[shop]-policy[ext]-rule[0]']);
    expect(d.enforced.map((e) => [e.action, e.matched])).toEqual([['DENY', 'ns[shop]-policy[no-debug]-rule[0]']]);
  });
});

describe('fail closed', () => {
  const denied = (hcm: any, path: string) => evaluateHttp(hcm, { path, ...FRONT }, { onUnknownFilter: () => {} });

  for (const [provider, why] of [
    ['ext-nope', 'no such extension provider in the mesh config; ext_authz providers: ext-http, ext-grpc, ext-gone, ext-http-gone'],
    ['ext-gone', 'found errors in provider ext-gone: could not find service gone.security.svc.cluster.local in the service registry'],
    ['tracer', 'it is not an envoyExtAuthzHttp or envoyExtAuthzGrpc provider'],
  ] as const) {
    it(`provider ${provider}: the CUSTOM rule becomes a DENY rule naming the policy, no ext_authz`, () => {
      const { hcm, httpNames, tcp, notes } = inbound(SERVICES + custom(provider));
      expect(httpNames).not.toContain('envoy.filters.http.ext_authz');
      const first = hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.rbac');
      expect(first.typed_config.rules.action).toBe('DENY');
      expect(Object.keys(first.typed_config.rules.policies)).toEqual([`istio-ext-authz-${provider}-ns[shop]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action`]);
      expect(denied(hcm, '/admin').status).toBe(403);
      expect(denied(hcm, '/public').allowed).toBe(true);
      // TCP: the path condition is dropped, so every connection is refused.
      expect(evaluateNetwork(tcp, { ...FRONT, destinationPort: 5432 }).allowed).toBe(false);
      expect(notes.some((n) => n.includes(`provider "${provider}" cannot be used (`) && n.includes(why))).toBe(true);
    });
  }

  it('an HTTP provider whose service is missing also denies TCP (the provider is in error, not just HTTP-only)', () => {
    const { httpNames, tcp } = inbound(SERVICES + custom('ext-http-gone'));
    expect(httpNames).not.toContain('envoy.filters.http.ext_authz');
    expect(evaluateNetwork(tcp, { ...FRONT, destinationPort: 5432 }).allowed).toBe(false);
  });

  it('two providers on one workload: both deny (istiod without PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS)', () => {
    const { hcm, httpNames, notes } = inbound(SERVICES + custom('ext-http') + custom('ext-grpc', 'ext2', '[{ to: [{ operation: { paths: ["/ops*"] } }] }]'));
    expect(httpNames).not.toContain('envoy.filters.http.ext_authz');
    expect(denied(hcm, '/admin').status).toBe(403);
    expect(denied(hcm, '/ops').status).toBe(403);
    expect(denied(hcm, '/public').allowed).toBe(true);
    expect(notes.filter((n) => n.includes('one workload can use only one CUSTOM provider'))).toHaveLength(2);
  });

  it('resolveExtAuthz refuses what istiod refuses at build time (unvalidated mesh objects)', () => {
    const lookup = () => ({ hostname: 'a.b', name: 'outbound|1||a.b' });
    const bad = resolveExtAuthz([{ name: 'x', envoyExtAuthzHttp: { service: 'a.b', port: 0, statusOnError: '299', pathPrefix: 'p', includeRequestHeadersInCheck: ['*'] } }], 'x', lookup);
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.reason).toContain('port must be in the range [1, 65535], found: 0');
    expect(bad.reason).toContain('unsupported statusOnError 299');
    expect(bad.reason).toContain('pathPrefix must begin with `/`');
    expect(bad.reason).toContain('a single wildcard ("*") is not supported');
    const ok = resolveExtAuthz([{ name: 'x', envoyExtAuthzGrpc: { service: 'a.b', port: 1 } }], 'x', lookup);
    expect(ok.ok).toBe(true);
    if (!ok.ok) return;
    expect(checkEnvoyResource('envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter', ok.http)).toEqual([]);
    expect(checkEnvoyResource('envoy.config.listener.v3.Filter', ok.tcp)).toEqual([]);
    // Defaults: 600s timeout, no failure_mode_allow (fail closed), no status_on_error (Envoy's 403).
    expect(ok.http.typed_config).toMatchObject({ grpc_service: { timeout: { seconds: 600, nanos: 0 } } });
    expect(ok.http.typed_config).not.toHaveProperty('failure_mode_allow');
  });
});

describe('other proxies', () => {
  it('a gateway gets the CUSTOM pair before its RBAC filters too', () => {
    const gw = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec: { selector: { istio: ingressgateway }, servers: [{ port: { number: 8080, name: http, protocol: HTTP }, hosts: ["*"] }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: edge, namespace: istio-system }
spec: { selector: { matchLabels: { istio: ingressgateway } }, action: CUSTOM, provider: { name: ext-grpc }, rules: [{}] }
`;
    const t = translate(SERVICES + '---\n' + gw, mesh(), { namespace: 'istio-system', labels: { istio: 'ingressgateway' }, type: 'router' });
    const hcm = t.listeners[0]!.filter_chains[0].filters[0].typed_config;
    const n = names(hcm.http_filters);
    expect(n.indexOf('envoy.filters.http.ext_authz')).toBe(n.indexOf('envoy.filters.http.rbac') + 1);
  });

  it('proxyless gRPC has no ext_authz: CUSTOM is enforced as a DENY (fail closed), with a note', () => {
    const t = translate(SERVICES + custom('ext-grpc'), mesh(), { generator: 'grpc', listeners: ['xds.istio.io/grpc/lds/inbound/0.0.0.0:8080'] });
    expect(t.listeners).toHaveLength(1);
    expect(JSON.stringify(t.listeners)).not.toContain('ext_authz');
    expect(JSON.stringify(t.listeners)).toContain('"action":"DENY"');
    expect(t.notes).toContain('proxyless gRPC servers have no external authorization: CUSTOM AuthorizationPolicies are enforced as DENY (requests they select are refused)');
  });

  it('mizzen explain still decides, skipping the ext_authz filter it cannot evaluate', () => {
    const loaded = loadYamlText(SERVICES + custom('ext-grpc'), 'x.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
    const e = explain(loaded.objects, { from: 'web-0.shop', to: 'orders.shop.svc.cluster.local:8080', path: '/admin' }, { mesh: mesh() });
    const text = JSON.stringify(e);
    expect(text).toContain('envoy.filters.http.ext_authz');
    expect(text).toContain('istio-ext-authz-ext-grpc-ns[shop]-policy[ext]-rule[0]');
  });
});
