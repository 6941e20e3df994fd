/**
 * AuthorizationPolicy end to end on generated config: policies → the sidecar's virtualInbound chains → Envoy's RBAC
 * semantics (test/support/rbac-eval.ts) with the path normalisation mizzen's HCMs use. Includes the bypass corpus.
 */
import { describe, expect, it } from 'vitest';
import { evaluateHttp, evaluateNetwork } from '../support/rbac-eval.ts';
import { sidecarProxy, translate } from '../support/translate.ts';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
spec:
  clusterIP: 10.96.0.30
  selector: { app: orders }
  ports: [{ name: http, port: 8080 }, { name: tcp-db, port: 5432 }]
`;
const POLICIES = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: frontend-only, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rules:
  - from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }]
`;
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

function inbound(yaml: string) {
  const t = translate(yaml, sidecarProxy('shop', { app: 'orders' }));
  expect(t.refused).toEqual([]);
  expect(t.generationErrors).toBe(0);
  const chains = t.lds.find((l) => l.name === 'virtualInbound')!.filter_chains;
  const mtls = (port: number) => chains.find((c: any) => c.filter_chain_match?.destination_port === port && c.transport_socket);
  const hcm = mtls(8080).filters.find((f: any) => f.name === 'envoy.filters.network.http_connection_manager').typed_config;
  return { hcm, tcpFilters: mtls(5432).filters };
}

describe('AuthorizationPolicy on a sidecar', () => {
  const { hcm, tcpFilters } = inbound(`${SERVICES}\n---\n${POLICIES}`);

  it('ALLOW by principal; DENY overrides ALLOW', () => {
    expect(evaluateHttp(hcm, { path: '/orders', sourcePrincipal: FRONTEND }).allowed).toBe(true);
    expect(evaluateHttp(hcm, { path: '/orders', sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/other' }).status).toBe(403);
    expect(evaluateHttp(hcm, { path: '/orders' }).status).toBe(403); // plaintext: no principal
    expect(evaluateHttp(hcm, { path: '/admin/users', sourcePrincipal: FRONTEND }).status).toBe(403);
  });

  it('TCP chains: principals apply; the HTTP-only path rule of the DENY policy widens to deny everything', () => {
    // istio-xds.md §7.3: on TCP an HTTP-only field in a DENY rule is dropped, so the rule denies all.
    expect(evaluateNetwork(tcpFilters, { sourcePrincipal: FRONTEND, destinationPort: 5432 }).allowed).toBe(false);
  });

  it('the bypass corpus: every spelling of /admin is denied under mizzen\'s default path normalisation', () => {
    for (const path of ['/admin', '//admin', '/admin/../admin', '/public/../admin', '/./admin', '/%61dmin', '/admin?x=1', '/admin#frag', '/admin/']) {
      expect({ path, status: evaluateHttp(hcm, { path, sourcePrincipal: FRONTEND }).status }).toEqual({ path, status: 403 });
    }
    // Percent-encoded slashes are kept as they are (KEEP_UNCHANGED): the path is `/%2Fadmin`, which no route or app
    // reads as /admin — documented; DECODE_AND_MERGE_SLASHES decodes and denies it.
    expect(evaluateHttp(hcm, { path: '/public', sourcePrincipal: FRONTEND }).allowed).toBe(true);
  });

  it('deny-all (an empty spec) denies everything, even to the allowed principal', () => {
    const denyAll = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny-all, namespace: shop }\nspec: {}\n`;
    const r = inbound(`${SERVICES}\n---\n${denyAll}`);
    expect(evaluateHttp(r.hcm, { path: '/orders', sourcePrincipal: FRONTEND }).status).toBe(403);
    expect(evaluateNetwork(r.tcpFilters, { sourcePrincipal: FRONTEND, destinationPort: 5432 }).allowed).toBe(false);
  });

  it('regex metacharacters in user values are literal', () => {
    const dotted = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: dot, namespace: shop }\nspec:\n  action: DENY\n  rules: [{ to: [{ operation: { paths: ["/a.b"] } }] }]\n`;
    const r = inbound(`${SERVICES}\n---\n${dotted}`);
    expect(evaluateHttp(r.hcm, { path: '/a.b' }).status).toBe(403);
    expect(evaluateHttp(r.hcm, { path: '/aXb' }).allowed).toBe(true);
  });
});
