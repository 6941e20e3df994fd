/**
 * Smoke test of the real kube-apiserver + etcd harness (test/infra/kube-apiserver.ts): the first run on a machine
 * builds both from the Go module proxy (many minutes on 2 cores), which happens in beforeAll under a 40-minute hook
 * timeout, never inside a test's own timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as k8s from '@kubernetes/client-node';
import { kubeApiserverUnavailable, startKubeApiserver, type KubeApiserver } from '../infra/kube-apiserver.ts';

const skipReason = kubeApiserverUnavailable();

describe.skipIf(skipReason !== undefined)(`real kube-apiserver${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let api: KubeApiserver | undefined;
  let kc: k8s.KubeConfig;

  beforeAll(async () => {
    const t0 = Date.now();
    api = await startKubeApiserver();
    console.log(`kube-apiserver ready at ${api.server} in ${Date.now() - t0} ms (including the binaries check/build)`);
    kc = new k8s.KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
  }, 40 * 60_000);

  afterAll(async () => {
    await api?.stop();
  }, 60_000);

  it('reports the pinned version', async () => {
    const v = await kc.makeApiClient(k8s.VersionApi).getCode();
    expect(v.major).toBe('1');
    expect(v.gitVersion).toMatch(/^v1\.34\.\d+$/);
  });

  it('creates a Namespace and a ConfigMap and reads them back', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'smoke' } } });
    await core.createNamespacedConfigMap({
      namespace: 'smoke',
      body: { metadata: { name: 'cm', labels: { app: 'smoke' } }, data: { hello: 'world' } },
    });
    const ns = await core.readNamespace({ name: 'smoke' });
    expect(ns.status?.phase).toBe('Active');
    const cm = await core.readNamespacedConfigMap({ name: 'cm', namespace: 'smoke' });
    expect(cm.data).toEqual({ hello: 'world' });
    const list = await core.listNamespacedConfigMap({ namespace: 'smoke', labelSelector: 'app=smoke' });
    expect(list.items.map((c) => c.metadata?.name)).toEqual(['cm']);
  });

  it('serves a CustomResourceDefinition once it is Established', async () => {
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    const name = 'widgets.test.mizzen.io';
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name },
        spec: {
          group: 'test.mizzen.io',
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
          versions: [{
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
              },
            },
          }],
        },
      },
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const crd = await ext.readCustomResourceDefinition({ name });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established: ${JSON.stringify(crd.status?.conditions)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const widget = { apiVersion: 'test.mizzen.io/v1', kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } };
    await custom.createNamespacedCustomObject({ group: 'test.mizzen.io', version: 'v1', namespace: 'default', plural: 'widgets', body: widget });
    const got = await custom.getNamespacedCustomObject({ group: 'test.mizzen.io', version: 'v1', namespace: 'default', plural: 'widgets', name: 'w1' });
    expect((got as { spec: unknown }).spec).toEqual({ size: 3 });
  });
});
