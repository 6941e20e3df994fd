/**
 * Real proxyless gRPC clients route exactly as the Istio YAML says: header matches, weights, live edits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, startEchoBackend, type EchoBackend } from '../support/echo.ts';
import { eventually, serviceEntry, startMesh, type TestMesh } from '../support/mesh.ts';
import { xdsClient } from '../support/xds-client.ts';

const HOST = 'reviews.bookinfo.svc.cluster.local:9080';

describe('proxyless gRPC routing', () => {
  let v1: EchoBackend, v2: EchoBackend, v3: EchoBackend;
  let mesh: TestMesh;

  beforeAll(async () => {
    [v1, v2, v3] = await Promise.all([startEchoBackend('v1'), startEchoBackend('v2'), startEchoBackend('v3')]);
    mesh = await startMesh({
      'reviews.yaml': serviceEntry('reviews', 'bookinfo', 9080, [
        { port: v1.port, labels: { version: 'v1' } },
        { port: v2.port, labels: { version: 'v2' } },
        { port: v3.port, labels: { version: 'v3' } },
      ]),
      'dr.yaml': `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: reviews, namespace: bookinfo }
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
    - { name: v3, labels: { version: v3 } }
`,
      'vs.yaml': `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: reviews, namespace: bookinfo }
spec:
  hosts: [reviews]
  http:
    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews, subset: v2 } }]
    - match: [{ uri: { prefix: /mizzen.test.Echo/ }, headers: { x-canary: { regex: "^(yes|true)$" } } }]
      route: [{ destination: { host: reviews, subset: v3 } }]
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 75 }
        - { destination: { host: reviews, subset: v3 }, weight: 25 }
`,
    });
  });
  afterAll(async () => {
    await mesh?.stop();
    await Promise.all([v1, v2, v3].map((b) => b?.stop()));
  });

  it('routes by exact header, regex header + uri prefix, and weights', async () => {
    const client = xdsClient(HOST, mesh.xdsPort, { namespace: 'bookinfo' });
    const first = await call(client, { 'end-user': 'jason' });
    expect(first.error).toBeUndefined();
    expect(first.reply?.backend).toBe('v2');
    for (let i = 0; i < 5; i++) expect((await call(client, { 'end-user': 'jason' })).reply?.backend).toBe('v2');
    expect((await call(client, { 'x-canary': 'yes' })).reply?.backend).toBe('v3');

    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const r = await call(client);
      counts[r.reply?.backend ?? 'error'] = (counts[r.reply?.backend ?? 'error'] ?? 0) + 1;
    }
    expect(counts.v2 ?? 0).toBe(0);
    expect(counts.error ?? 0).toBe(0);
    // 75/25 split: allow generous statistical slack (p ≈ 1e-6 bounds).
    expect(counts.v1).toBeGreaterThan(240);
    expect(counts.v3).toBeGreaterThan(55);
    client.close();
  });

  it('applies a live VirtualService edit, then the deletion of its file', async () => {
    const client = xdsClient(HOST, mesh.xdsPort, { namespace: 'bookinfo' });
    expect((await call(client)).error).toBeUndefined();
    mesh.write(
      'vs.yaml',
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: bookinfo }
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  http:
    - route: [{ destination: { host: reviews, subset: v2 } }]
`,
    );
    await eventually(async () => (await call(client)).reply?.backend === 'v2', 10_000, 'edit to take effect');
    for (let i = 0; i < 20; i++) expect((await call(client)).reply?.backend).toBe('v2');

    mesh.remove('vs.yaml');
    // No VirtualService: the default route spreads calls over every endpoint of the service.
    const seen = new Set<string>();
    await eventually(async () => {
      const r = await call(client);
      if (r.reply) seen.add(r.reply.backend);
      return seen.has('v1') && seen.has('v3');
    }, 10_000, 'default routing after the file was deleted');
    client.close();
  });
});
