/** What a change means for proxies: full push, EDS-only push of the changed clusters, or nothing. */
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { planPush } from '../../src/app/push-planner.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { DEFAULT_MESH } from '../../src/model/mesh.ts';
import { PushContext } from '../../src/model/push-context.ts';
import { buildRegistry } from '../../src/model/service-registry.ts';

const se = (ip: string, port = 7000) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: cart, namespace: shop }
spec:
  hosts: [cart.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${port}, name: grpc, protocol: GRPC }]
  endpoints: [{ address: ${ip}, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: cart, namespace: shop }
spec:
  host: cart
  subsets: [{ name: v1, labels: { version: v1 } }]
`;

function store(yaml: string): ConfigStore {
  const s = new ConfigStore();
  for (const o of loadYamlText(yaml, 'x.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' }).objects) s.upsert(o);
  return s;
}

function plan(before: string, after: string, kinds: string[]) {
  const prev = new PushContext(store(before).snapshot(), DEFAULT_MESH);
  const next = buildRegistry(store(after).snapshot(), DEFAULT_MESH);
  return planPush(prev, next, { keys: new Set(), kinds: new Set(kinds) });
}

describe('push planning', () => {
  it('an endpoint move is an EDS push of that service’s clusters, subsets included', () => {
    const p = plan(se('10.0.0.1'), se('10.0.0.2'), ['ServiceEntry']);
    expect(p).toEqual({ full: false, reason: 'endpoints of 1 service(s) changed', edsClusters: new Set(['outbound|7000||cart.shop.svc.cluster.local', 'outbound|7000|v1|cart.shop.svc.cluster.local']) });
  });
  it('a port change is a full push', () => {
    expect(plan(se('10.0.0.1'), se('10.0.0.1', 7001), ['ServiceEntry'])).toMatchObject({ full: true });
  });
  it('any non-registry kind is a full push', () => {
    expect(plan(se('10.0.0.1'), se('10.0.0.1'), ['DestinationRule'])).toMatchObject({ full: true, reason: 'DestinationRule changed' });
  });
  it('a registry object that changes no service or endpoint pushes nothing', () => {
    expect(plan(se('10.0.0.1'), se('10.0.0.1'), ['Pod'])).toEqual({ none: true });
  });
  it('a new service account behind a service is a full push (clusters verify server identities)', () => {
    const withSa = se('10.0.0.2').replace('labels: { version: v1 } }', 'labels: { version: v1 }, serviceAccount: cart }');
    expect(plan(se('10.0.0.1'), withSa, ['ServiceEntry'])).toMatchObject({ full: true, reason: 'service accounts of cart.shop.svc.cluster.local changed' });
  });
  it('an endpoint change of a headless Kubernetes service is a full push (sidecars listen per endpoint)', () => {
    const headless = (ip: string) => `apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { clusterIP: None, selector: { app: db }, ports: [{ name: tcp, port: 5432 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: db-1, namespace: shop, labels: { kubernetes.io/service-name: db } }
addressType: IPv4
ports: [{ name: tcp, port: 5432 }]
endpoints: [{ addresses: [${ip}], conditions: { ready: true } }]
`;
    expect(plan(headless('10.2.0.1'), headless('10.2.0.2'), ['EndpointSlice'])).toMatchObject({ full: true, reason: 'headless service db.shop.svc.cluster.local endpoints changed' });
  });
});
