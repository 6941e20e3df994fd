/**
 * What an installed mizzen must do in a cluster, written once and run twice: against the local real kube-apiserver
 * (test/kube/helm-install.test.ts, mizzen in the test process) and against a kind cluster where mizzen runs from its
 * image (test/kind/kind.test.ts, on hosts with Docker). Each scenario talks only to the API server.
 */
import { AdmissionregistrationV1Api, CoreV1Api, KubernetesObjectApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { expect } from 'vitest';
import { eventually } from '../support/mesh.ts';

export interface ClusterUnderTest {
  kc: KubeConfig;
  /** The mesh root(s) mizzen serves, PEM. */
  rootPem(): Promise<string>;
  /**
   * Whether pods need `serviceAccountName` set by the test: the local API server runs without the ServiceAccount
   * admission plugin (no controller-manager creates accounts), which would set it before the webhooks run.
   */
  setServiceAccount: boolean;
  /** What the installed chart says the sidecar is: its image and the control plane's address for the CA. */
  expectedProxyImage: string;
  expectedCaAddress: string;
}

/** Until mizzen has patched the caBundle, the API server cannot trust the webhooks. */
export async function caBundlePatched(c: ClusterUnderTest): Promise<void> {
  const admission = c.kc.makeApiClient(AdmissionregistrationV1Api);
  const root = Buffer.from(await c.rootPem()).toString('base64');
  await eventually(async () => {
    const m = await admission.listMutatingWebhookConfiguration({ labelSelector: 'app=sidecar-injector' });
    const v = await admission.listValidatingWebhookConfiguration({ labelSelector: 'app=istiod' });
    const bundles = [...m.items, ...v.items].flatMap((cfg) => cfg.webhooks ?? []).map((w) => w.clientConfig.caBundle);
    return bundles.length >= 5 && bundles.every((b) => b === root);
  }, 60_000, 'caBundle patched on every webhook');
}

/** The API server calls /validate: an invalid VirtualService is denied with the field named. */
export async function invalidConfigDenied(c: ClusterUnderTest, namespace: string): Promise<void> {
  const objects = KubernetesObjectApi.makeApiClient(c.kc);
  const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'bad-timeout', namespace }, spec: { hosts: ['reviews'], http: [{ timeout: 'soon', route: [{ destination: { host: 'reviews' } }] }] } };
  // failurePolicy is Ignore (as Istio's before it is ready): a denial proves the call was made.
  let denied = '';
  await eventually(async () => {
    try {
      await objects.create(vs);
      await objects.delete(vs);
      return false;
    } catch (err) {
      denied = String((err as { body?: string }).body ?? err);
      return /denied the request/.test(denied);
    }
  }, 30_000, 'the validating webhook to deny');
  expect(denied).toContain(`VirtualService ${namespace}/bad-timeout: spec.http[0].timeout`);
}

/** The API server calls /inject: a pod in an istio-injection=enabled namespace is stored with its sidecar. */
/** Returns the stored injected pod, for callers that compare it with other injection paths. */
export async function podInjected(c: ClusterUnderTest, prefix: string): Promise<V1Pod> {
  const core = c.kc.makeApiClient(CoreV1Api);
  const injected = `${prefix}-injected`;
  const plainNs = `${prefix}-plain`;
  await core.createNamespace({ body: { metadata: { name: injected, labels: { 'istio-injection': 'enabled' } } } });
  await core.createNamespace({ body: { metadata: { name: plainNs } } });
  const sa = c.setServiceAccount ? { serviceAccountName: 'default' } : {};
  const pod = await core
    .createNamespacedPod({
      namespace: injected,
      body: { metadata: { name: 'reviews-v1', labels: { app: 'reviews', version: 'v1' } }, spec: { ...sa, containers: [{ name: 'reviews', image: 'docker.io/istio/examples-bookinfo-reviews-v1:1.20.2', ports: [{ containerPort: 9080 }] }] } },
    })
    .catch((err: { body?: string }) => {
      throw new Error(`pod refused: ${err.body ?? String(err)}`);
    });
  const names = (p: V1Pod) => [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].map((x) => x.name);
  expect(names(pod)).toEqual(expect.arrayContaining(['istio-init', 'istio-proxy', 'reviews']));
  expect(pod.metadata?.annotations?.['sidecar.istio.io/status']).toContain('istio-proxy');
  expect(pod.metadata?.labels?.['security.istio.io/tlsMode']).toBe('istio');
  // The installed settings, not built-in defaults: the chart's proxy image and the control plane's own Service.
  const proxy = pod.spec?.containers?.find((x) => x.name === 'istio-proxy');
  expect(proxy?.image).toBe(c.expectedProxyImage);
  expect(proxy?.env?.find((e) => e.name === 'CA_ADDR')?.value).toBe(c.expectedCaAddress);
  // A pod that opts out by label stays as it is, in an injected namespace too.
  const optOut = await core.createNamespacedPod({
    namespace: injected,
    body: { metadata: { name: 'opted-out', labels: { 'sidecar.istio.io/inject': 'false' } }, spec: { ...sa, containers: [{ name: 'app', image: 'docker.io/library/busybox:1.36' }] } },
  });
  expect(names(optOut)).toEqual(['app']);
  const plain = await core.createNamespacedPod({ namespace: plainNs, body: { metadata: { name: 'app' }, spec: { ...sa, containers: [{ name: 'app', image: 'docker.io/library/busybox:1.36' }] } } });
  expect(names(plain)).toEqual(['app']);
  return pod;
}

/** The leader publishes the root as istio-ca-root-cert in application namespaces. */
export async function rootCertPublished(c: ClusterUnderTest, namespace: string): Promise<void> {
  const core = c.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } }).catch(() => undefined);
  const root = await c.rootPem();
  await eventually(async () => {
    const cm = await core.readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace }).catch(() => undefined);
    return cm?.data?.['root-cert.pem'] === root;
  }, 30_000, `istio-ca-root-cert in ${namespace}`);
}
