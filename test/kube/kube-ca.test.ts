/**
 * Kube mode's CA against a real kube-apiserver: the root lives in the istio-ca-secret Secret (a second replica signs
 * with the same root), and bearer tokens are checked by TokenReview — a projected token with audience istio-ca gets the
 * identity of its service account; a token for the API server's own audience, or of a deleted account, gets nothing.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CA_SECRET_NAME } from '../../src/app/kube-ca.ts';
import { kubeWiring } from '../../src/app/kube.ts';
import { MizzenServer } from '../../src/app/server.ts';
import { createLogger, silentLogger } from '../../src/shared/log.ts';
import { startKubeApiserver } from '../infra/kube-apiserver.ts';
import { eventually } from '../support/mesh.ts';
import { workloadCerts } from '../support/workload-certs.ts';

const BUILD_TIMEOUT_MS = 40 * 60_000;
const log = process.env.MIZZEN_TEST_LOG ? createLogger({ level: process.env.MIZZEN_TEST_LOG }) : silentLogger;

function replica(kc: KubeConfig): MizzenServer {
  const kube = kubeWiring(kc, { log, namespace: 'istio-system' });
  return new MizzenServer({
    source: kube.source,
    host: '127.0.0.1',
    xdsPort: 0,
    monitoringPort: 0,
    secureXdsPort: 0,
    webhookPort: 0,
    log,
    ca: { trustDomain: 'cluster.local', store: kube.caStore, tokenReview: kube.tokenReview, keyType: 'ec' },
    trustBundleWriters: kube.trustBundleWriters,
  });
}

describe('kube mode CA: istio-ca-secret and TokenReview on a real kube-apiserver', () => {
  let stopApi: (() => Promise<void>) | undefined;
  let kc: KubeConfig;
  let core: CoreV1Api;
  const servers: MizzenServer[] = [];
  const mesh = (s: MizzenServer) => ({ secureXdsPort: s.secureXdsPort, rootPem: () => s.ca?.ca.trustBundle().join('') ?? '' });
  const token = async (namespace: string, sa: string, audiences: string[]) =>
    (await core.createNamespacedServiceAccountToken({ name: sa, namespace, body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences, expirationSeconds: 600 } } })).status?.token ?? '';

  beforeAll(async () => {
    const cluster = await startKubeApiserver();
    stopApi = cluster.stop;
    kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    for (const ns of ['istio-system', 'bookinfo']) await core.createNamespace({ body: { metadata: { name: ns } } });
    for (const sa of ['reviews', 'gone']) await core.createNamespacedServiceAccount({ namespace: 'bookinfo', body: { metadata: { name: sa } } });
    const first = replica(kc);
    servers.push(first);
    await first.start();
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    for (const s of servers) await s.stop();
    await stopApi?.();
  }, 60_000);

  it('creates the root in istio-ca-secret (Istio keys) and a second replica signs with the same root', async () => {
    const secret = await core.readNamespacedSecret({ name: CA_SECRET_NAME, namespace: 'istio-system' });
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    const rootInSecret = Buffer.from(secret.data!['root-cert.pem']!, 'base64').toString();
    expect(rootInSecret).toBe(mesh(servers[0]!).rootPem());
    const second = replica(kc);
    servers.push(second);
    await second.start();
    expect(mesh(second).rootPem()).toBe(rootInSecret);
  });

  it('publishes the root as istio-ca-root-cert in application namespaces (not kube-system)', async () => {
    const root = mesh(servers[0]!).rootPem();
    await eventually(async () => {
      const cm = await core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'bookinfo' }).catch(() => undefined);
      return cm?.data?.['root-cert.pem'] === root;
    }, 15_000, 'istio-ca-root-cert in bookinfo');
    await expect(core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'kube-system' })).rejects.toMatchObject({ code: 404 });
  });

  it('issues the service account identity for a projected token with audience istio-ca', async () => {
    const certs = await workloadCerts(mesh(servers[0]!), await token('bookinfo', 'reviews', ['istio-ca']));
    expect(certs.spiffeId).toBe('spiffe://cluster.local/ns/bookinfo/sa/reviews');
    certs.remove();
  });

  it("refuses a token for the API server's own audience, and the token of a deleted service account", async () => {
    const apiServerToken = await token('bookinfo', 'reviews', ['https://kubernetes.default.svc.cluster.local']);
    await expect(workloadCerts(mesh(servers[0]!), apiServerToken)).rejects.toThrow(/CreateCertificate failed: 16 /);
    const goneToken = await token('bookinfo', 'gone', ['istio-ca']);
    await core.deleteNamespacedServiceAccount({ name: 'gone', namespace: 'bookinfo' });
    await expect(workloadCerts(mesh(servers[0]!), goneToken)).rejects.toThrow(/CreateCertificate failed: 16 /);
  });
});
