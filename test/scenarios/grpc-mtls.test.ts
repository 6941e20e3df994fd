/**
 * Proxyless gRPC mTLS as istiod generates it (injection-and-proxyless.md B4, gRFC A29): certificate-provider TLS on
 * clients only with DestinationRule ISTIO_MUTUAL, on servers with PeerAuthentication STRICT (PERMISSIVE is plaintext
 * unless the pod is labelled tlsMode=istio). Every resource is also checked against Envoy's schema by translate().
 */
import { describe, expect, it } from 'vitest';
import { grpcProxy, translate } from '../support/translate.ts';

const SERVICE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: shop }
spec:
  hosts: [echo.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 7070, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 10.1.0.1, serviceAccount: echo }]
`;
const DR = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: echo, namespace: shop }
spec:
  host: echo.shop.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`;
const STRICT = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec: { mtls: { mode: STRICT } }
`;
const SERVER_LISTENER = 'xds.istio.io/grpc/lds/inbound/0.0.0.0:7070';

describe('proxyless gRPC mTLS', () => {
  it('clients use certificate-provider mTLS only under DestinationRule ISTIO_MUTUAL, verifying the service identity', () => {
    const plain = translate(SERVICE, grpcProxy('shop', {}, ['echo.shop.svc.cluster.local:7070']));
    expect(plain.cds[0]!.transport_socket).toBeUndefined();
    const t = translate(`${SERVICE}\n---\n${DR}`, grpcProxy('shop', {}, ['echo.shop.svc.cluster.local:7070']));
    expect(t.generationErrors).toBe(0);
    const tls = t.cds.find((c) => c.name === 'outbound|7070||echo.shop.svc.cluster.local')!.transport_socket.typed_config;
    expect(tls.common_tls_context.tls_certificate_provider_instance).toEqual({ instance_name: 'default', certificate_name: 'default' });
    expect(tls.common_tls_context.validation_context).toEqual({
      ca_certificate_provider_instance: { instance_name: 'default', certificate_name: 'ROOTCA' },
      match_subject_alt_names: [{ exact: 'spiffe://cluster.local/ns/shop/sa/echo' }],
    });
  });

  it('servers require client certificates under STRICT; PERMISSIVE is plaintext unless the pod is tlsMode=istio', () => {
    const strict = translate(`${SERVICE}\n---\n${STRICT}`, grpcProxy('shop', {}, [SERVER_LISTENER]));
    expect(strict.generationErrors).toBe(0);
    const chain = strict.lds[0]!.filter_chains[0];
    expect(chain.name).toBe('inbound-mtls');
    expect(chain.transport_socket.typed_config.require_client_certificate).toBe(true);
    // Differs from the plaintext chain's on purpose: grpc-js applies a TLS-mode switch only if the HCM bytes change.
    expect(chain.filters[0].typed_config.stat_prefix).toBe('inbound_mtls_7070');
    expect(translate(SERVICE, grpcProxy('shop', {}, [SERVER_LISTENER])).lds[0]!.filter_chains[0].transport_socket).toBeUndefined();
    const labelled = translate(SERVICE, grpcProxy('shop', { 'security.istio.io/tlsMode': 'istio' }, [SERVER_LISTENER]));
    expect(labelled.lds[0]!.filter_chains[0].name).toBe('inbound-mtls');
  });
});

describe('proxyless gRPC authorization (gRFC A41)', () => {
  const POLICY = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: callers, namespace: shop }
spec:
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: templated, namespace: shop }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin/{*}/delete"] } }] }]
`;
  it('DENY then ALLOW filters with unique names before the router; unsupported matchers fail closed', () => {
    const t = translate(`${SERVICE}\n---\n${STRICT}\n---\n${POLICY}`, grpcProxy('shop', {}, [SERVER_LISTENER]));
    expect(t.generationErrors).toBe(0);
    const filters = t.lds[0]!.filter_chains[0].filters[0].typed_config.http_filters;
    expect(filters.map((f: any) => f.name)).toEqual(['envoy.filters.http.rbac.DENY', 'envoy.filters.http.rbac', 'envoy.filters.http.router']);
    // The uri_template path gRPC cannot evaluate: the DENY rule widens to match everything.
    const deny = Object.values(filters[0].typed_config.rules.policies as Record<string, any>)[0];
    expect(JSON.stringify(deny.permissions)).not.toContain('uri_template');
    expect(JSON.stringify(deny.permissions)).toContain('"any":true');
    const allow = Object.values(filters[1].typed_config.rules.policies as Record<string, any>)[0];
    expect(JSON.stringify(allow.principals)).toContain('spiffe://cluster.local/ns/shop/sa/frontend');
    expect(t.notes.join('\n')).toMatch(/uri_template matchers are not implemented by gRPC/);
  });

  it('CUSTOM has no ext_authz in gRPC: it is enforced as a DENY of the requests it selects, never left out', () => {
    const custom = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ext, namespace: shop }
spec:
  action: CUSTOM
  provider: { name: opa }
  rules: [{ to: [{ operation: { paths: ["/admin/*"] } }] }]
`;
    const t = translate(`${SERVICE}\n---\n${STRICT}\n---\n${custom}`, grpcProxy('shop', {}, [SERVER_LISTENER]));
    const filters = t.lds[0]!.filter_chains[0].filters[0].typed_config.http_filters;
    expect(filters.map((f: any) => f.name)).toEqual(['envoy.filters.http.rbac.DENY', 'envoy.filters.http.router']);
    expect(filters[0].typed_config.rules.action).toBe('DENY');
    const deny = Object.values(filters[0].typed_config.rules.policies as Record<string, any>)[0];
    expect(JSON.stringify(deny.permissions)).toContain('/admin/');
    expect(t.notes.join('\n')).toMatch(/CUSTOM AuthorizationPolicies are enforced as DENY/);
  });
});
