/**
 * Kube mode against a real kube-apiserver (built from source, see test/infra/kube-apiserver.ts): mizzen reads the Istio
 * CRDs (installed from our generated chart CRDs) and the registry kinds from the API server, and real proxyless gRPC
 * clients route by what they say — before start, after live edits, and when an object is invalid.
 */
import os from 'node:os';
import { KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCrds } from '../../src/app/crds.ts';
import { kubeWiring } from '../../src/app/kube.ts';
import { getJson } from '../../src/config/sources/kube-api.ts';
import { MizzenServer } from '../../src/app/server.ts';
import { createLogger, silentLogger } from '../../src/shared/log.ts';
import { startKubeApiserver } from '../infra/kube-apiserver.ts';
import { call, startEchoBackend, type EchoBackend } from '../support/echo.ts';
import { eventually, serviceEntry } from '../support/mesh.ts';
import { createCrd } from '../support/kube.ts';
import { xdsClient } from '../support/xds-client.ts';

const HOST = 'reviews.bookinfo.svc.cluster.local:9080';
const BUILD_TIMEOUT_MS = 40 * 60_000;

const vs = (http: string) => `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: reviews, namespace: bookinfo }
spec:
  hosts: [reviews]
  http:
${http}`;
const JASON_V2_ELSE_V1 = vs(`    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews, subset: v2 } }]
    - route: [{ destination: { host: reviews, subset: v1 } }]
`);
const ALL_V3 = vs(`    - route: [{ destination: { host: reviews, subset: v3 } }]
`);

describe('kube mode: config from a real kube-apiserver', () => {
  let stopApi: (() => Promise<void>) | undefined;
  let kc: KubeConfig;
  let api: KubernetesObjectApi;
  let backends: EchoBackend[] = [];
  let server: MizzenServer | undefined;
  let kube: ReturnType<typeof kubeWiring>;

  /** Create or replace, as kubectl apply would; a replace that races mizzen's own status write is retried. */
  const apply = async (yaml: string): Promise<void> => {
    for (const doc of YAML.parseAllDocuments(yaml)) {
      const obj = doc.toJS() as KubernetesObject;
      for (let attempt = 1; ; attempt++) {
        try {
          const current = await api.read(obj as KubernetesObject & { metadata: { name: string } });
          await api.replace({ ...obj, metadata: { ...obj.metadata, resourceVersion: current.metadata?.resourceVersion } });
          break;
        } catch (err) {
          const code = (err as { code?: number }).code;
          if (code === 409 && attempt < 5) continue; // the status writer bumped resourceVersion between read and replace
          if (code !== 404) throw new Error(`${obj.kind} ${obj.metadata?.name}: ${(err as { body?: string }).body ?? String(err)}`);
          await api.create(obj).catch((e: { body?: string }) => {
            throw new Error(`${obj.kind} ${obj.metadata?.name}: ${e.body ?? String(e)}`);
          });
          break;
        }
      }
    }
  };

  beforeAll(async () => {
    const cluster = await startKubeApiserver();
    stopApi = cluster.stop;
    kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    api = KubernetesObjectApi.makeApiClient(kc);
    for (const crd of generateCrds()) await createCrd(kc, crd);
    await eventually(async () => {
      for (const crd of generateCrds()) {
        const got = (await api.read(crd as unknown as KubernetesObject & { metadata: { name: string } })) as { status?: { conditions?: Array<{ type: string; status: string }> } };
        if (!got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return false;
      }
      return true;
    }, 60_000, 'CRDs established');

    backends = await Promise.all(['v1', 'v2', 'v3'].map((v) => startEchoBackend(v)));
    await apply('apiVersion: v1\nkind: Namespace\nmetadata: { name: bookinfo }\n');
    // Three kinds in three API versions: the source reads each at the newest version the server serves.
    await apply(serviceEntry('reviews', 'bookinfo', 9080, backends.map((b, i) => ({ port: b.port, labels: { version: `v${i + 1}` } }))));
    await apply(`apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: reviews, namespace: bookinfo }
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
    - { name: v3, labels: { version: v3 } }
`);
    await apply(JASON_V2_ELSE_V1);

    const log = process.env.MIZZEN_TEST_LOG ? createLogger({ level: process.env.MIZZEN_TEST_LOG }) : silentLogger;
    kube = kubeWiring(kc, { log, namespace: 'default' });
    server = new MizzenServer({
      source: kube.source,
      host: '127.0.0.1',
      xdsPort: 0,
      monitoringPort: 0,
      log,
      verifyXds: true,
      debounceAfterMs: 50,
      statusSink: kube.statusSink,
      statusElection: kube.statusElection,
      statusWriter: { intervalMs: 200 },
    });
    await server.start();
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    const errors = server?.generationErrors() ?? 0;
    await server?.stop();
    await Promise.all(backends.map((b) => b.stop()));
    await stopApi?.();
    expect(errors).toBe(0);
  }, 60_000);

  it('is ready only with the cluster read, and routes by it', async () => {
    expect(server?.ready).toBe(true);
    const client = xdsClient(HOST, server!.xdsPort, { namespace: 'bookinfo' });
    expect((await call(client, { 'end-user': 'jason' })).reply?.backend).toBe('v2');
    for (let i = 0; i < 5; i++) expect((await call(client)).reply?.backend).toBe('v1');
    client.close();
  });

  it('follows edits made in the API server', async () => {
    const client = xdsClient(HOST, server!.xdsPort, { namespace: 'bookinfo' });
    expect((await call(client)).reply?.backend).toBe('v1');
    await apply(ALL_V3);
    await eventually(async () => (await call(client)).reply?.backend === 'v3', 15_000, 'the edit to reach the client');
    await apply(JASON_V2_ELSE_V1);
    await eventually(async () => (await call(client)).reply?.backend === 'v1', 15_000, 'the edit back');
    client.close();
  });

  it('refuses an invalid object with kind, namespace/name and field, and keeps its last good version serving', async () => {
    const client = xdsClient(HOST, server!.xdsPort, { namespace: 'bookinfo' });
    // A regex RE2 cannot compile passes the CRD's structural schema; only mizzen's validation catches it.
    await apply(vs(`    - match: [{ headers: { end-user: { regex: "(" } } }]
      route: [{ destination: { host: reviews, subset: v3 } }]
`));
    await eventually(() => server!.rejected.has('VirtualService/bookinfo/reviews'), 15_000, 'the refusal');
    const lines = server!.rejected.get('VirtualService/bookinfo/reviews') ?? [];
    expect(lines.join('\n')).toMatch(/VirtualService bookinfo\/reviews: spec\.http\[0\]\.match\[0\]\.headers\.end-user\.regex/);
    expect((await call(client, { 'end-user': 'jason' })).reply?.backend).toBe('v2');
    await apply(JASON_V2_ELSE_V1);
    await eventually(() => !server!.rejected.has('VirtualService/bookinfo/reviews'), 15_000, 'the refusal to clear');
    client.close();
  });

  // The API server refuses loopback endpoint addresses: these backends listen on the host's own non-loopback address.
  const hostIp = Object.values(os.networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  it.skipIf(!hostIp)('routes to a Kubernetes Service by its EndpointSlices, and follows endpoint changes', async () => {
    const [a, b] = await Promise.all([startEchoBackend('ratings-a', hostIp), startEchoBackend('ratings-b', hostIp)]);
    backends.push(a, b);
    const slice = (port: number) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ratings-abc, namespace: bookinfo, labels: { kubernetes.io/service-name: ratings } }
addressType: IPv4
ports: [{ name: grpc, port: ${port}, protocol: TCP }]
endpoints: [{ addresses: [${hostIp}], conditions: { ready: true } }]
`;
    await apply(`apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: bookinfo }
spec:
  ports: [{ name: grpc, port: 9080, targetPort: grpc, protocol: TCP }]
`);
    await apply(slice(a.port));
    const client = xdsClient('ratings.bookinfo.svc.cluster.local:9080', server!.xdsPort, { namespace: 'bookinfo' });
    await eventually(async () => (await call(client)).reply?.backend === 'ratings-a', 15_000, 'the Service to be reachable');
    await apply(slice(b.port));
    await eventually(async () => (await call(client)).reply?.backend === 'ratings-b', 15_000, 'the endpoint change');
    client.close();
  });

  it("writes each object's status (Reconciled, observedGeneration) once proxies have it, without status writes causing pushes", async () => {
    const client = xdsClient(HOST, server!.xdsPort, { namespace: 'bookinfo' });
    expect((await call(client)).reply?.backend).toBeDefined();
    type WithStatus = KubernetesObject & { status?: { observedGeneration?: number; conditions?: Array<{ type: string; status: string; reason: string }> } };
    // Raw JSON: client-node's generic read deserializes into KubernetesObject and drops `status`.
    const read = () => getJson<WithStatus>(kc, '/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/reviews');
    await eventually(async () => {
      const vs = await read();
      const c = vs.status?.conditions?.find((x) => x.type === 'Reconciled');
      return c?.status === 'True' && vs.status?.observedGeneration === vs.metadata?.generation;
    }, 15_000, 'status Reconciled=True').catch(async (err: Error) => {
      const st = await (await fetch(`http://127.0.0.1:${server!.monitoringPort}/debug/config_status?kind=VirtualService`)).text();
      throw new Error(`${err.message}: leader ${kube.statusElection.isLeader}, patches ${kube.statusSink.patches}; in the API server ${JSON.stringify((await read()).status)}; mizzen: ${st.slice(0, 800)}`);
    });
    // Status writes change resourceVersion and come back as watch events: they must not start pushes.
    const pushes = () => server!.pushCount();
    const before = pushes();
    await new Promise((r) => setTimeout(r, 1500));
    expect(pushes()).toBe(before);
    client.close();
  });

  it('deletes what the API server deletes', async () => {
    const client = xdsClient(HOST, server!.xdsPort, { namespace: 'bookinfo' });
    await api.delete({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'bookinfo' } });
    // Without the VirtualService the default route spreads calls over every endpoint.
    const seen = new Set<string>();
    await eventually(async () => {
      const b = (await call(client)).reply?.backend;
      if (b) seen.add(b);
      return seen.size === 3;
    }, 15_000, 'calls to reach every version');
    client.close();
  });
});
