/**
 * Behavioural checks on what Envoy sidecars and gateways get: calls walked through the generated listeners, chains,
 * routes and clusters (test/support/simulate.ts), as istiod's simulation tests do.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { danglingClusters, simulate } from '../support/simulate.ts';
import { routerProxy, sidecarProxy, translate, type Translation } from '../support/translate.ts';

const BOOKINFO = fs
  .readdirSync('examples/bookinfo')
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => fs.readFileSync(path.join('examples/bookinfo', f), 'utf8'))
  .join('\n---\n');

/** A Kubernetes Service + the pod it selects, as YAML (namespace shop). */
function k8sService(name: string, port: number, portName: string, ip: string, targetPort = port): string {
  return `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop }
spec:
  clusterIP: ${ip}
  selector: { app: ${name} }
  ports: [{ name: ${portName}, port: ${port}, targetPort: ${targetPort} }]
`;
}

function clean(t: Translation): Translation {
  expect(t.refused).toEqual([]);
  expect(t.generationErrors).toBe(0);
  expect(danglingClusters(t)).toEqual([]);
  return t;
}

describe('sidecar outbound', () => {
  const t = clean(translate(BOOKINFO, sidecarProxy('bookinfo', { app: 'productpage', version: 'v1' })));

  it('routes HTTP by VirtualService on the shared port listener', () => {
    const base = { address: '240.240.0.1', port: 9080, host: 'reviews.bookinfo.svc.cluster.local', path: '/reviews/1' };
    expect(simulate(t, { ...base, headers: { 'end-user': 'jason' } })).toMatchObject({
      listener: '0.0.0.0_9080',
      routeConfig: '9080',
      virtualHost: 'reviews.bookinfo.svc.cluster.local:9080',
      cluster: 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local',
    });
    expect(simulate(t, base)).toMatchObject({ weightedClusters: ['outbound|9080|v1|reviews.bookinfo.svc.cluster.local', 'outbound|9080|v3|reviews.bookinfo.svc.cluster.local'] });
    expect(simulate(t, { ...base, host: 'details.bookinfo.svc.cluster.local.' })).toMatchObject({ cluster: 'outbound|9080||details.bookinfo.svc.cluster.local', route: 'default' });
  });

  it('sends unknown hosts and ports to PassthroughCluster under ALLOW_ANY', () => {
    expect(simulate(t, { port: 9080, host: 'example.com' })).toMatchObject({ virtualHost: 'allow_any', cluster: 'PassthroughCluster' });
    expect(simulate(t, { address: '1.2.3.4', port: 443, tls: true, protocol: 'tcp' })).toMatchObject({ listener: 'virtualOutbound', filterChain: 'virtualOutbound-catchall-tcp', cluster: 'PassthroughCluster' });
    expect(simulate(t, { port: 9080, protocol: 'tcp' })).toMatchObject({ chainIndex: 'default', cluster: 'PassthroughCluster' });
  });

  it('blocks unknown destinations under REGISTRY_ONLY (Sidecar outboundTrafficPolicy)', () => {
    const sidecar = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: bookinfo }
spec:
  outboundTrafficPolicy: { mode: REGISTRY_ONLY }
`;
    const r = clean(translate(`${BOOKINFO}\n---\n${sidecar}`, sidecarProxy('bookinfo', { app: 'productpage' })));
    expect(simulate(r, { port: 9080, host: 'example.com' })).toMatchObject({ virtualHost: 'block_all', directResponse: 502 });
    expect(simulate(r, { address: '1.2.3.4', port: 443, tls: true, protocol: 'tcp' })).toMatchObject({ cluster: 'BlackHoleCluster' });
    expect(simulate(r, { port: 15001, protocol: 'tcp' })).toMatchObject({ filterChain: 'virtualOutbound-blackhole', cluster: 'BlackHoleCluster' });
  });

  it('gives TCP and auto-detected services their own VIP listeners', () => {
    const yaml = [k8sService('db', 5432, 'tcp-postgres', '10.96.0.20'), k8sService('web', 8000, 'web', '10.96.0.21')].join('\n---\n');
    const r = clean(translate(yaml, sidecarProxy('shop', { app: 'client' })));
    expect(r.lds.map((l) => l.name)).toEqual(expect.arrayContaining(['10.96.0.20_5432', '10.96.0.21_8000', 'virtualOutbound', 'virtualInbound']));
    expect(simulate(r, { address: '10.96.0.20', port: 5432, protocol: 'tcp' })).toMatchObject({ listener: '10.96.0.20_5432', cluster: 'outbound|5432||db.shop.svc.cluster.local' });
    // An unnamed (auto) port sniffs: HTTP goes through routes `<host>:<port>`, anything else is proxied as TCP.
    expect(simulate(r, { address: '10.96.0.21', port: 8000, host: 'web' })).toMatchObject({ routeConfig: 'web.shop.svc.cluster.local:8000', cluster: 'outbound|8000||web.shop.svc.cluster.local' });
    expect(simulate(r, { address: '10.96.0.21', port: 8000, protocol: 'tcp' })).toMatchObject({ chainIndex: 'default', cluster: 'outbound|8000||web.shop.svc.cluster.local' });
    const vhost = r.rds.find((x) => x.name === 'web.shop.svc.cluster.local:8000')!.virtual_hosts[0];
    expect(vhost.domains).toEqual(['web.shop.svc.cluster.local', 'web.shop.svc.cluster.local.', 'web', 'web.shop.svc', 'web.shop', '10.96.0.21']);
  });

  it('routes TCP by weight and TLS by SNI', () => {
    const yaml = `
${k8sService('db', 5432, 'tcp-postgres', '10.96.0.20')}
---
${k8sService('db-next', 5432, 'tcp-postgres', '10.96.0.22')}
---
${k8sService('api', 443, 'tls', '10.96.0.23')}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: shop }
spec:
  hosts: [db]
  tcp:
  - route:
    - { destination: { host: db }, weight: 90 }
    - { destination: { host: db-next }, weight: 10 }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api, namespace: shop }
spec:
  hosts: [api.shop.svc.cluster.local]
  tls:
  - match: [{ sniHosts: [api.shop.svc.cluster.local] }]
    route: [{ destination: { host: db-next, port: { number: 5432 } } }]
`;
    const r = clean(translate(yaml, sidecarProxy('shop', { app: 'client' })));
    expect(simulate(r, { address: '10.96.0.20', port: 5432, protocol: 'tcp' }).weightedClusters).toEqual(['outbound|5432||db.shop.svc.cluster.local', 'outbound|5432||db-next.shop.svc.cluster.local']);
    expect(simulate(r, { address: '10.96.0.23', port: 443, protocol: 'tcp', tls: true, sni: 'api.shop.svc.cluster.local' })).toMatchObject({ cluster: 'outbound|5432||db-next.shop.svc.cluster.local' });
    expect(simulate(r, { address: '10.96.0.23', port: 443, protocol: 'tcp', tls: true, sni: 'other.example.com' })).toMatchObject({ cluster: 'outbound|443||api.shop.svc.cluster.local' });
  });

  it('applies auto-mTLS to in-mesh clusters and marks injected endpoints', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: pay, namespace: shop }
spec:
  hosts: [pay.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
  - { address: 10.1.0.1, labels: { security.istio.io/tlsMode: istio }, serviceAccount: pay }
  - { address: 10.1.0.2 }
`;
    const r = clean(translate(yaml, sidecarProxy('shop')));
    const cluster = r.cds.find((c) => c.name === 'outbound|80||pay.shop.svc.cluster.local')!;
    expect(cluster.transport_socket_matches.map((m: any) => m.name)).toEqual(['tlsMode-istio', 'tlsMode-disabled']);
    const tls = cluster.transport_socket_matches[0].transport_socket.typed_config;
    expect(tls.sni).toBe('outbound_.80_._.pay.shop.svc.cluster.local');
    expect(tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names).toEqual([{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/shop/sa/pay' } }]);
    const eps = r.eds.find((e) => e.cluster_name === cluster.name)!.endpoints[0].lb_endpoints;
    expect(eps[0].metadata.filter_metadata['envoy.transport_socket_match']).toEqual({ tlsMode: 'istio' });
    expect(eps[1].metadata?.filter_metadata?.['envoy.transport_socket_match']).toBeUndefined();
  });
});

describe('DestinationRules for one host', () => {
  it('merge as istiod merges them: the oldest policy, subsets from both', () => {
    const yaml = `
${k8sService('pay', 80, 'http', '10.96.0.40')}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pay-a, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z" }
spec:
  host: pay
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
  subsets: [{ name: v1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pay-b, namespace: shop, creationTimestamp: "2026-02-01T00:00:00Z" }
spec:
  host: pay
  trafficPolicy: { loadBalancer: { simple: RANDOM } }
  subsets: [{ name: v2, labels: { version: v2 } }, { name: v1, labels: { version: other } }]
`;
    const r = clean(translate(yaml, sidecarProxy('shop')));
    const names = r.cds.map((c) => c.name).filter((n) => n.includes('pay.shop'));
    expect(names.sort()).toEqual(['outbound|80|v1|pay.shop.svc.cluster.local', 'outbound|80|v2|pay.shop.svc.cluster.local', 'outbound|80||pay.shop.svc.cluster.local']);
    expect(r.cds.find((c) => c.name === 'outbound|80|v2|pay.shop.svc.cluster.local')!.lb_policy).toBe('ROUND_ROBIN');
  });
});

describe('locality load balancing', () => {
  it('distribute rewrites locality weights for proxies in the from locality and drops the rest', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api, namespace: shop }
spec:
  hosts: [api.shop.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
  - { address: 10.1.0.1, locality: us-west/zone1 }
  - { address: 10.1.0.2, locality: us-west/zone2 }
  - { address: 10.1.0.3, locality: us-west/zone2 }
  - { address: 10.1.0.4, locality: us-east/zone1 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: shop }
spec:
  host: api.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-west/zone1/*
          to: { "us-west/zone1/*": 80, "us-west/zone2/*": 20 }
`;
    const west = clean(translate(yaml, { ...sidecarProxy('shop'), locality: { region: 'us-west', zone: 'zone1' } }));
    const cla = west.eds.find((e) => e.cluster_name === 'outbound|80||api.shop.svc.cluster.local')!;
    expect(cla.endpoints.map((g: any) => [g.locality.zone, g.load_balancing_weight])).toEqual([['zone1', 80], ['zone2', 20]]);
    expect(west.cds.find((c) => c.name === 'outbound|80||api.shop.svc.cluster.local')!.common_lb_config.locality_weighted_lb_config).toEqual({});
    const east = clean(translate(yaml, { ...sidecarProxy('shop'), locality: { region: 'us-east', zone: 'zone1' } }));
    expect(east.eds.find((e) => e.cluster_name === 'outbound|80||api.shop.svc.cluster.local')!.endpoints).toHaveLength(3);
  });
});

describe('sidecar inbound', () => {
  const svc = k8sService('orders', 8080, 'http', '10.96.0.30', 9090);
  const proxy = sidecarProxy('shop', { app: 'orders' });

  it('terminates mTLS or plaintext by PeerAuthentication mode (default PERMISSIVE)', () => {
    const r = clean(translate(svc, proxy));
    expect(r.cds.map((c) => c.name)).toContain('inbound|9090||');
    expect(simulate(r, { direction: 'inbound', port: 9090, host: 'orders' })).toMatchObject({ filterChain: '0.0.0.0_9090', transportSocket: false, routeConfig: 'inbound|9090||', cluster: 'inbound|9090||' });
    expect(simulate(r, { direction: 'inbound', port: 9090, tls: true, alpn: ['istio-http/1.1'], host: 'orders' })).toMatchObject({ transportSocket: true, cluster: 'inbound|9090||' });
    // A port no Service names is passed through to the app.
    expect(simulate(r, { direction: 'inbound', port: 7777, protocol: 'tcp' })).toMatchObject({ filterChain: 'virtualInbound', cluster: 'InboundPassthroughCluster' });
  });

  it('refuses plaintext under STRICT, except on a PERMISSIVE port', () => {
    const pa = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: orders, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  portLevelMtls: { "9091": { mode: PERMISSIVE } }
`;
    const r = clean(translate(`${svc}\n---\n${pa}\n---\n${k8sService('orders-admin', 8081, 'http-admin', '10.96.0.31', 9091).replace('app: orders-admin', 'app: orders')}`, proxy));
    expect(simulate(r, { direction: 'inbound', port: 9090, host: 'orders' }).error).toMatch(/no filter chain/);
    expect(simulate(r, { direction: 'inbound', port: 9090, tls: true, alpn: ['istio'], host: 'orders' })).toMatchObject({ transportSocket: true, cluster: 'inbound|9090||' });
    expect(simulate(r, { direction: 'inbound', port: 9091, host: 'orders' })).toMatchObject({ transportSocket: false, cluster: 'inbound|9091||' });
  });
});

describe('gateway', () => {
  const yaml = `
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: { name: myapp-gateway, namespace: production }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 80, name: http, protocol: HTTP }
    hosts: [myapp.example.com]
    tls: { httpsRedirect: true }
  - port: { number: 443, name: https, protocol: HTTPS }
    tls: { mode: SIMPLE, credentialName: myapp-tls-secret }
    hosts: [myapp.example.com]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: myapp, namespace: production }
spec:
  hosts: [myapp.example.com]
  gateways: [myapp-gateway]
  http:
  - route: [{ destination: { host: myapp, port: { number: 8080 } } }]
---
apiVersion: v1
kind: Service
metadata: { name: myapp, namespace: production }
spec:
  clusterIP: 10.96.1.1
  selector: { app: myapp }
  ports: [{ name: http, port: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: istio-ingressgateway, namespace: istio-system }
spec:
  clusterIP: 10.96.1.2
  selector: { istio: ingressgateway }
  ports: [{ name: http2, port: 80, targetPort: 8080 }, { name: https, port: 443, targetPort: 8443 }]
---
apiVersion: v1
kind: Secret
metadata: { name: myapp-tls-secret, namespace: istio-system }
type: kubernetes.io/tls
data: { tls.crt: Y2VydA==, tls.key: a2V5 }
`;
  const t = clean(translate(yaml, routerProxy()));

  it('listens on the gateway Service target ports with istiod route names', () => {
    expect(t.lds.map((l) => l.name).sort()).toEqual(['0.0.0.0_8080', '0.0.0.0_8443']);
    expect(t.rds.map((r) => r.name).sort()).toEqual(['http.8080', 'https.443.https.myapp-gateway.production']);
  });

  it('terminates HTTPS by SNI with the credentialName secret and routes by host', () => {
    const r = simulate(t, { direction: 'gateway', port: 8443, tls: true, sni: 'myapp.example.com', host: 'myapp.example.com' });
    expect(r).toMatchObject({ transportSocket: true, virtualHost: 'myapp.example.com:443', cluster: 'outbound|8080||myapp.production.svc.cluster.local' });
    expect(t.sds.map((s) => s.name)).toEqual(['kubernetes://myapp-tls-secret']);
    expect(t.sds[0]!.tls_certificate.certificate_chain.inline_bytes).toBe('Y2VydA==');
    expect(simulate(t, { direction: 'gateway', port: 8443, tls: true, sni: 'other.example.com' }).error).toMatch(/no filter chain/);
  });

  it('redirects plain HTTP to HTTPS and 404s unknown hosts', () => {
    expect(simulate(t, { direction: 'gateway', port: 8080, host: 'myapp.example.com' })).toMatchObject({ requireTls: true });
    expect(simulate(t, { direction: 'gateway', port: 8080, host: 'nope.example.com' }).error).toMatch(/404/);
  });

  it('never serves another namespace`s secrets, nor secrets to sidecars', () => {
    const other = clean(translate(yaml, routerProxy('production', { istio: 'ingressgateway' })));
    expect(other.sds).toEqual([]);
    const sidecar = clean(translate(yaml, sidecarProxy('istio-system', { istio: 'ingressgateway' })));
    expect(sidecar.sds).toEqual([]);
    // On the plaintext port nothing proves the gateway's namespace: no credentials.
    const plaintext = clean(translate(yaml, { ...routerProxy(), unverified: true }));
    expect(plaintext.sds).toEqual([]);
  });
});

describe('EnvoyFilter (the user\'s seeds, end to end)', () => {
  const seed = (prefix: string) => {
    const dir = '../shared/fixtures/seeds';
    return fs.readFileSync(path.join(dir, fs.readdirSync(dir).find((f) => f.startsWith(prefix))!), 'utf8');
  };
  const httpFilters = (l: any, port?: number) =>
    l.filter_chains
      .filter((c: any) => port === undefined || c.filter_chain_match?.destination_port === port)
      .flatMap((c: any) => c.filters)
      .filter((f: any) => f.name === 'envoy.filters.network.http_connection_manager')
      .map((f: any) => f.typed_config.http_filters.map((h: any) => h.name));

  it('039 puts the rate-limit filter first on sidecar inbound HTTP chains only', () => {
    // The seed names rate_limit_cluster without defining it; as in Istio's docs, a CLUSTER ADD patch supplies it.
    const cluster = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: { name: rate-limit-cluster, namespace: istio-system }
spec:
  configPatches:
  - applyTo: CLUSTER
    patch:
      operation: ADD
      value:
        name: rate_limit_cluster
        type: STRICT_DNS
        connect_timeout: 1s
        typed_extension_protocol_options:
          envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
            "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
            explicit_http_config: { http2_protocol_options: {} }
        load_assignment:
          cluster_name: rate_limit_cluster
          endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: ratelimit.istio-system, port_value: 8081 } } } }] }]
`;
    const r = clean(translate(`${k8sService('orders', 8080, 'http', '10.96.0.30')}\n---\n${seed('039')}\n---\n${cluster}`, sidecarProxy('shop', { app: 'orders' })));
    expect(r.cds.map((c) => c.name)).toContain('rate_limit_cluster');
    const inbound = httpFilters(r.lds.find((l) => l.name === 'virtualInbound'), 8080);
    expect(inbound.length).toBeGreaterThan(0);
    for (const chain of inbound) expect(chain[0]).toBe('envoy.filters.http.ratelimit');
    for (const chain of httpFilters(r.lds.find((l) => l.name === '0.0.0.0_8080'))) expect(chain).not.toContain('envoy.filters.http.ratelimit');
  });

  it('050 inserts local_ratelimit before the router on the ingress gateway only', () => {
    const gw = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 8080, name: http, protocol: HTTP }, hosts: ["*"] }]
`;
    const r = clean(translate(`${gw}\n---\n${seed('050')}`, routerProxy()));
    const chains = httpFilters(r.lds.find((l) => l.name === '0.0.0.0_8080'));
    expect(chains[0].slice(-2)).toEqual(['envoy.filters.http.local_ratelimit', 'envoy.filters.http.router']);
    const side = clean(translate(`${k8sService('orders', 8080, 'http', '10.96.0.30')}\n---\n${seed('050')}`, sidecarProxy('istio-system', { istio: 'ingressgateway' })));
    for (const l of side.lds) for (const chain of l.filter_chains ?? []) for (const f of chain.filters) expect(JSON.stringify(f)).not.toContain('local_ratelimit');
  });

  it('merges into and adds clusters', () => {
    const ef = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: { name: tune, namespace: shop }
spec:
  configPatches:
  - applyTo: CLUSTER
    match: { context: SIDECAR_OUTBOUND, cluster: { service: db.shop.svc.cluster.local } }
    patch: { operation: MERGE, value: { connect_timeout: 3s } }
  - applyTo: CLUSTER
    patch:
      operation: ADD
      value:
        name: rate_limit_cluster
        type: STRICT_DNS
        connect_timeout: 1s
        load_assignment:
          cluster_name: rate_limit_cluster
          endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: ratelimit.shop, port_value: 8081 } } } }] }]
`;
    const r = clean(translate(`${k8sService('db', 5432, 'tcp', '10.96.0.20')}\n---\n${ef}`, sidecarProxy('shop')));
    expect(r.cds.find((c) => c.name === 'outbound|5432||db.shop.svc.cluster.local')!.connect_timeout).toBe('3s');
    expect(r.cds.find((c) => c.name === 'rate_limit_cluster')).toMatchObject({ type: 'STRICT_DNS', connect_timeout: '1s' });
  });
});

describe('Sidecar scope', () => {
  it('ingress listeners with a defaultEndpoint replace the service ports', () => {
    const sidecar = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: orders, namespace: shop }
spec:
  workloadSelector: { labels: { app: orders } }
  ingress:
  - port: { number: 9080, protocol: HTTP, name: http }
    defaultEndpoint: 127.0.0.1:8080
`;
    const r = clean(translate(`${k8sService('orders', 8080, 'http', '10.96.0.30')}\n---\n${sidecar}`, sidecarProxy('shop', { app: 'orders' })));
    expect(simulate(r, { direction: 'inbound', port: 9080, host: 'orders' })).toMatchObject({ cluster: 'inbound|9080||' });
    expect(r.cds.find((c) => c.name === 'inbound|8080||')).toBeUndefined();
    const c = r.cds.find((x) => x.name === 'inbound|9080||')!;
    expect(c.type).toBe('STATIC');
    expect(c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 8080 });
  });

  it('egress hosts narrow what a sidecar sees', () => {
    const yaml = `
${k8sService('db', 5432, 'tcp', '10.96.0.20')}
---
${k8sService('web', 80, 'http', '10.96.0.21')}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: shop }
spec:
  egress: [{ hosts: ["./web.shop.svc.cluster.local", "istio-system/*"] }]
`;
    const r = clean(translate(yaml, sidecarProxy('shop')));
    expect(r.cds.map((c) => c.name).filter((n) => n.startsWith('outbound'))).toEqual(['outbound|80||web.shop.svc.cluster.local']);
    expect(r.lds.map((l) => l.name)).not.toContain('10.96.0.20_5432');
  });
});

describe('gateway TLS passthrough and TCP', () => {
  const yaml = `
${k8sService('db', 5432, 'tcp', '10.96.0.20')}
---
${k8sService('web', 443, 'https', '10.96.0.21')}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 443, name: tls, protocol: TLS }
    tls: { mode: PASSTHROUGH }
    hosts: ["*.example.com"]
  - port: { number: 15443, name: tls-mesh, protocol: TLS }
    tls: { mode: AUTO_PASSTHROUGH }
    hosts: ["*.shop.svc.cluster.local"]
  - port: { number: 5432, name: tcp-db, protocol: TCP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: edge, namespace: istio-system }
spec:
  hosts: ["web.example.com", "db.example.com"]
  gateways: [edge]
  tls:
  - match: [{ sniHosts: [web.example.com] }]
    route: [{ destination: { host: web.shop.svc.cluster.local, port: { number: 443 } } }]
  tcp:
  - match: [{ port: 5432 }]
    route: [{ destination: { host: db.shop.svc.cluster.local, port: { number: 5432 } } }]
`;
  const t = clean(translate(yaml, routerProxy()));

  it('forwards TLS by SNI without terminating it', () => {
    expect(simulate(t, { direction: 'gateway', port: 443, tls: true, sni: 'web.example.com', protocol: 'tcp' })).toMatchObject({ transportSocket: false, cluster: 'outbound|443||web.shop.svc.cluster.local' });
    expect(simulate(t, { direction: 'gateway', port: 443, tls: true, sni: 'other.example.com', protocol: 'tcp' }).error).toMatch(/no filter chain/);
  });

  it('AUTO_PASSTHROUGH routes Istio mTLS by its SNI to SNI-DNAT clusters', () => {
    const sni = 'outbound_.5432_._.db.shop.svc.cluster.local';
    expect(simulate(t, { direction: 'gateway', port: 15443, tls: true, sni, alpn: ['istio'], protocol: 'tcp' })).toMatchObject({ cluster: sni });
    const c = t.cds.find((x) => x.name === sni)!;
    expect(c).toMatchObject({ type: 'EDS', eds_cluster_config: { service_name: 'outbound|5432||db.shop.svc.cluster.local' } });
    expect(c.transport_socket_matches).toBeUndefined();
  });

  it('TCP servers follow VirtualService tcp routes', () => {
    expect(simulate(t, { direction: 'gateway', port: 5432, protocol: 'tcp' })).toMatchObject({ cluster: 'outbound|5432||db.shop.svc.cluster.local' });
  });
});

describe('Telemetry API on Envoy listeners', () => {
  const telemetry = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: logs, namespace: shop }
spec:
  accessLogging:
  - providers: [{ name: envoy }]
    match: { mode: CLIENT }
`;
  const yaml = `${k8sService('orders', 8080, 'http', '10.96.0.30')}\n---\n${k8sService('db', 5432, 'tcp', '10.96.0.20')}\n---\n${telemetry}`;
  const filters = (l: any) => [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])].flatMap((c: any) => c.filters);

  it('client-side access logs on outbound HCMs and tcp_proxies, none inbound', () => {
    const r = clean(translate(yaml, sidecarProxy('shop', { app: 'orders' })));
    const hcm = filters(r.lds.find((l) => l.name === '0.0.0.0_8080')).find((f: any) => f.name === 'envoy.filters.network.http_connection_manager');
    expect(hcm.typed_config.access_log[0].typed_config).toMatchObject({ '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/dev/stdout' });
    const tcp = filters(r.lds.find((l) => l.name === '10.96.0.20_5432')).find((f: any) => f.name === 'envoy.filters.network.tcp_proxy');
    expect(tcp.typed_config.access_log).toHaveLength(1);
    for (const f of filters(r.lds.find((l) => l.name === 'virtualInbound'))) expect(f.typed_config.access_log).toBeUndefined();
  });

  it('other namespaces are unaffected, and keep the mesh default tracing (enableTracing, 1% sampling)', () => {
    const r = clean(translate(yaml, sidecarProxy('default')));
    for (const l of r.lds) for (const f of filters(l)) expect(f.typed_config.access_log).toBeUndefined();
    const hcm = filters(r.lds.find((l) => l.name === '0.0.0.0_8080')).find((f: any) => f.name === 'envoy.filters.network.http_connection_manager');
    expect(hcm.typed_config.tracing.random_sampling.value).toBe(1);
  });
});

describe('VirtualService hosts that are not services', () => {
  it('get a port-80 virtual host on sidecars, as istiod builds them', () => {
    const yaml = `
${k8sService('web', 80, 'http', '10.96.0.21')}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: alias, namespace: shop }
spec:
  hosts: [www.example.com]
  http: [{ route: [{ destination: { host: web.shop.svc.cluster.local } }] }]
`;
    const r = clean(translate(yaml, sidecarProxy('shop')));
    expect(simulate(r, { port: 80, host: 'www.example.com' })).toMatchObject({ virtualHost: 'www.example.com:80', cluster: 'outbound|80||web.shop.svc.cluster.local' });
    expect(simulate(r, { port: 80, host: 'other.example.com' })).toMatchObject({ virtualHost: 'allow_any' });
  });
});

describe('headless services', () => {
  const yaml = `
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec:
  clusterIP: None
  selector: { app: db }
  ports: [{ name: tcp-pg, port: 5432 }, { name: http-admin, port: 8080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: db-1, namespace: shop, labels: { kubernetes.io/service-name: db } }
addressType: IPv4
ports: [{ name: tcp-pg, port: 5432 }, { name: http-admin, port: 8080 }]
endpoints:
  - { addresses: [10.2.0.1], conditions: { ready: true } }
  - { addresses: [10.2.0.2], conditions: { ready: true } }
`;

  it('sidecars get a listener per pod for TCP, original-destination clusters, and pod-name domains for HTTP', () => {
    const r = clean(translate(yaml, sidecarProxy('shop')));
    expect(r.lds.map((l) => l.name)).toEqual(expect.arrayContaining(['10.2.0.1_5432', '10.2.0.2_5432', '0.0.0.0_8080']));
    expect(simulate(r, { address: '10.2.0.2', port: 5432, protocol: 'tcp' })).toMatchObject({ listener: '10.2.0.2_5432', cluster: 'outbound|5432||db.shop.svc.cluster.local' });
    expect(r.cds.find((c) => c.name === 'outbound|5432||db.shop.svc.cluster.local')).toMatchObject({ type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED' });
    expect(simulate(r, { port: 8080, host: 'db-0.db.shop.svc.cluster.local' })).toMatchObject({ cluster: 'outbound|8080||db.shop.svc.cluster.local' });
  });

  it('gateways balance over the endpoints (EDS)', () => {
    const r = clean(translate(yaml, routerProxy()));
    expect(r.cds.find((c) => c.name === 'outbound|5432||db.shop.svc.cluster.local')!.type).toBe('EDS');
  });
});

describe('plain Envoy (mizzen\'s proxy image)', () => {
  it('gets no Istio proxy-extension filters when its node says PROXY_EXTENSIONS=envoy', () => {
    const proxy = sidecarProxy('bookinfo', { app: 'productpage' });
    const istio = clean(translate(BOOKINFO, proxy));
    expect(JSON.stringify(istio.lds)).toContain('istio.stats');
    const plain = clean(translate(BOOKINFO, { ...proxy, metadata: { ...proxy.metadata, PROXY_EXTENSIONS: 'envoy' } }));
    const all = JSON.stringify([plain.lds, plain.cds]);
    for (const name of ['istio.stats', 'istio.metadata_exchange', 'istio.alpn', 'io.istio', 'envoy.tcp.metadataexchange']) expect(all).not.toContain(name);
  });
});
