/**
 * The cluster scenarios of test/kube/scenarios.ts against a kind cluster where mizzen runs from its image, installed by
 * helm (test/kind/run.sh sets this up on a host with Docker and kind). Skipped unless MIZZEN_KIND_KUBECONFIG is set:
 * the development machines have no Docker engine, so there the same scenarios run against a locally built
 * kube-apiserver instead (test/kube/helm-install.test.ts).
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { describe, it } from 'vitest';
import { caBundlePatched, invalidConfigDenied, podInjected, rootCertPublished, type ClusterUnderTest } from '../kube/scenarios.ts';

const kubeconfig = process.env.MIZZEN_KIND_KUBECONFIG;
const namespace = process.env.MIZZEN_KIND_NAMESPACE ?? 'istio-system';

describe.skipIf(!kubeconfig)('kind: mizzen installed by helm, running from its image', () => {
  const cluster = (): ClusterUnderTest => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig as string);
    const core = kc.makeApiClient(CoreV1Api);
    return {
      kc,
      // The root every replica signs with lives in istio-ca-secret.
      rootPem: async () => Buffer.from((await core.readNamespacedSecret({ name: 'istio-ca-secret', namespace })).data?.['root-cert.pem'] ?? '', 'base64').toString(),
      setServiceAccount: false,
      // test/kind/run.sh installs with --set global.hub=$HUB --set global.tag=$TAG.
      expectedProxyImage: `${process.env.MIZZEN_KIND_HUB ?? 'localhost/mizzen'}/mizzen-proxy:${process.env.MIZZEN_KIND_TAG ?? 'e2e'}`,
      expectedCaAddress: `mizzen.${namespace}.svc:15012`,
    };
  };
  const run = `${Date.now() % 100000}`;

  it("patches its webhooks' caBundle with the mesh root", () => caBundlePatched(cluster()), 120_000);
  it('denies invalid config through the validating webhook', () => invalidConfigDenied(cluster(), namespace), 60_000);
  it('injects pods in labelled namespaces only', () => podInjected(cluster(), `kind${run}`), 60_000);
  it('publishes istio-ca-root-cert into application namespaces', () => rootCertPublished(cluster(), `kind${run}-apps`), 60_000);
});
