/**
 * The chart as users install it, on a real kube-apiserver: `helm template` output (CRDs included) is applied, mizzen
 * runs in kube mode, patches its webhooks' caBundle, and then the API server itself calls our webhooks — an invalid
 * VirtualService is denied with mizzen's message, and a pod created in an `istio-injection=enabled` namespace is
 * stored with its sidecar. No mock stands between the API server and mizzen.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, KubernetesObjectApi, type KubernetesObject, type V1PodSpec } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { injectorInput } from '../../src/app/injector-files.ts';
import { kubeInjectText } from '../../src/app/kube-inject.ts';
import { kubeWiring } from '../../src/app/kube.ts';
import { parseMeshConfig } from '../../src/config/mesh-config.ts';
import type { ProxyConfigJson } from '../../src/webhook/injector-config.ts';
import { MizzenServer } from '../../src/app/server.ts';
import { createLogger, silentLogger } from '../../src/shared/log.ts';
import { ensureHelm } from '../infra/helm.ts';
import { startKubeApiserver } from '../infra/kube-apiserver.ts';
import { createCrd } from '../support/kube.ts';
import { eventually } from '../support/mesh.ts';
import { caBundlePatched, invalidConfigDenied, podInjected, rootCertPublished, type ClusterUnderTest } from './scenarios.ts';

const CHART = fileURLToPath(new URL('../../manifests/charts/mizzen', import.meta.url));
const BUILD_TIMEOUT_MS = 40 * 60_000;
const log = process.env.MIZZEN_TEST_LOG ? createLogger({ level: process.env.MIZZEN_TEST_LOG }) : silentLogger;
const { helm, reason } = ensureHelm();

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function renderChart(webhookPort: number): KubernetesObject[] {
  const home = path.join(os.tmpdir(), 'mizzen-test-helm-home');
  // The test API server cannot reach Service IPs (no kube-proxy): the webhooks are called by URL (Istio's
  // istiodRemote.injectionURL / base.validationURL), on a name the serving certificate carries.
  const r = spawnSync(
    helm as string,
    ['template', 'mizzen', CHART, '--namespace', 'istio-system', '--include-crds', '--set', `istiodRemote.injectionURL=https://localhost:${webhookPort}/inject`, '--set', `base.validationURL=https://localhost:${webhookPort}/validate`],
    { encoding: 'utf8', timeout: 30_000, env: { ...process.env, HELM_CACHE_HOME: home, HELM_CONFIG_HOME: home, HELM_DATA_HOME: home } },
  );
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null)
    // `helm test` hooks are not part of an install.
    .filter((o) => !o.metadata?.annotations?.['helm.sh/hook']);
}

describe.skipIf(!helm)(`helm chart installed on a real kube-apiserver${helm ? '' : ` (skipped: ${reason})`}`, () => {
  let stopApi: (() => Promise<void>) | undefined;
  let kc: KubeConfig;
  let objects: KubernetesObjectApi;
  let core: CoreV1Api;
  let server: MizzenServer | undefined;

  beforeAll(async () => {
    const cluster = await startKubeApiserver();
    stopApi = cluster.stop;
    kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    objects = KubernetesObjectApi.makeApiClient(kc);
    core = kc.makeApiClient(CoreV1Api);

    const webhookPort = await freePort();
    const rendered = renderChart(webhookPort);
    await core.createNamespace({ body: { metadata: { name: 'istio-system' } } });
    // CRDs first, then everything else once they are served (as helm install does with crds/).
    const isCrd = (o: KubernetesObject) => o.kind === 'CustomResourceDefinition';
    for (const o of rendered.filter(isCrd)) await createCrd(kc, o);
    await eventually(async () => {
      for (const o of rendered.filter(isCrd)) {
        const got = (await objects.read(o as KubernetesObject & { metadata: { name: string } })) as { status?: { conditions?: Array<{ type: string; status: string }> } };
        if (!got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return false;
      }
      return true;
    }, 60_000, 'CRDs established');
    for (const o of rendered.filter((x) => !isCrd(x))) await objects.create(o);

    // As the chart's Deployment does: the mesh and injector ConfigMaps are what serve reads (--mesh-config, --inject-dir).
    const cm = (name: string) => rendered.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === name) as unknown as { data: Record<string, string> };
    const mesh = parseMeshConfig(cm('istio').data.mesh!);
    if (!mesh.ok) throw new Error(`chart mesh config refused: ${JSON.stringify(mesh.errors)}`);
    const injector = injectorInput(cm('istio-sidecar-injector').data.values, cm('istio-sidecar-injector').data.config, mesh.value.mesh.defaultConfig as ProxyConfigJson);
    const kube = kubeWiring(kc, { log, namespace: 'istio-system' });
    server = new MizzenServer({
      source: kube.source,
      host: '127.0.0.1',
      xdsPort: 0,
      monitoringPort: 0,
      secureXdsPort: 0,
      webhookPort,
      log,
      mesh: mesh.value.mesh,
      injector,
      ca: { trustDomain: 'cluster.local', store: kube.caStore, tokenReview: kube.tokenReview, keyType: 'ec', servingDnsNames: ['mizzen.istio-system.svc', 'istiod.istio-system.svc', 'localhost'] },
      trustBundleWriters: kube.trustBundleWriters,
    });
    await server.start();
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await server?.stop();
    await stopApi?.();
  }, 60_000);

  const cluster = (): ClusterUnderTest => ({
    kc,
    rootPem: async () => server!.ca!.ca.trustBundle().join(''),
    setServiceAccount: true,
    expectedProxyImage: 'ghcr.io/mizzen/mizzen-proxy:0.1.0',
    expectedCaAddress: 'mizzen.istio-system.svc:15012',
  });

  it("installs every rendered object, and mizzen patches its webhooks' caBundle with the mesh root", () => caBundlePatched(cluster()));
  it('the API server calls /validate: an invalid VirtualService is denied with the field named', () => invalidConfigDenied(cluster(), 'istio-system'));
  it('the API server calls /inject: a pod in an istio-injection=enabled namespace is stored with its sidecar', async () => {
    await caBundlePatched(cluster());
    const pod = await podInjected(cluster(), 'local');
    // kube-inject, with the same settings, injects a Deployment's pod template identically.
    const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: { name: reviews-v1, namespace: local-injected }
spec:
  selector: { matchLabels: { app: reviews } }
  template:
    metadata: { labels: { app: reviews, version: v1 } }
    spec:
      serviceAccountName: default
      containers: [{ name: reviews, image: docker.io/istio/examples-bookinfo-reviews-v1:1.20.2, ports: [{ containerPort: 9080 }] }]
`;
    const offline = kubeInjectText(deployment, server!.injectorConfig());
    expect(offline.errors).toEqual([]);
    const template = (parseAllDocuments(offline.output)[0]!.toJS() as { spec: { template: { spec: V1PodSpec } } }).spec.template.spec;
    const shape = (s: V1PodSpec) => ({
      // What injection decides; fields the API server defaults (port protocols, pull policies) are left out.
      containers: [...(s.initContainers ?? []), ...s.containers].map((x) => ({ name: x.name, image: x.image, args: x.args, env: (x.env ?? []).map((e) => e.name), mounts: (x.volumeMounts ?? []).map((m) => m.mountPath) })),
      volumes: (s.volumes ?? []).map((v) => v.name),
    });
    expect(shape(template)).toEqual(shape(pod.spec!));
  });
  it('publishes istio-ca-root-cert into application namespaces', () => rootCertPublished(cluster(), 'apps'));
});
