/** `mizzen analyze --kubeconfig` on a real kube-apiserver: the same analyzers, on what the cluster holds. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { generateCrds } from '../../src/app/crds.ts';
import { startKubeApiserver } from '../infra/kube-apiserver.ts';
import { createCrd } from '../support/kube.ts';
import { eventually } from '../support/mesh.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BUILD_TIMEOUT_MS = 40 * 60_000;

describe('mizzen analyze --kubeconfig', () => {
  let stopApi: (() => Promise<void>) | undefined;
  let kubeconfig = '';

  beforeAll(async () => {
    const cluster = await startKubeApiserver();
    stopApi = cluster.stop;
    kubeconfig = cluster.kubeconfigPath;
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const api = KubernetesObjectApi.makeApiClient(kc);
    for (const crd of generateCrds()) await createCrd(kc, crd);
    await eventually(async () => {
      try {
        await api.list('networking.istio.io/v1', 'VirtualService');
        return true;
      } catch {
        return false;
      }
    }, 60_000, 'CRDs served');
    const docs = `apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { istio-injection: enabled } }
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
spec: { selector: { app: cart }, ports: [{ name: http, port: 8080 }] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: cart, namespace: shop }
spec:
  hosts: [cart]
  gateways: [missing-gateway]
  http: [{ route: [{ destination: { host: cart }, weight: 50 }, { destination: { host: no-such-service }, weight: 50 }] }]
`;
    for (const d of YAML.parseAllDocuments(docs)) await api.create(d.toJS() as KubernetesObject);
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await stopApi?.();
  }, 60_000);

  it("reports Istio's codes on cluster objects, naming the resource without a file, and exits 79", () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'analyze', '--kubeconfig', kubeconfig], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stdout).toContain('Error [IST0101] (VirtualService shop/cart) Referenced host not found: "no-such-service"');
    expect(r.stdout).toContain('Error [IST0101] (VirtualService shop/cart) Referenced gateway not found: "missing-gateway"');
    expect(r.stdout).not.toContain('cluster:');
    expect(r.status).toBe(79);
    const json = spawnSync(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'analyze', '--kubeconfig', kubeconfig, '-o', 'json'], { cwd: ROOT, encoding: 'utf8' });
    const messages = JSON.parse(json.stdout) as Array<{ code: string; origin?: string }>;
    expect(messages.filter((m) => m.code === 'IST0101').map((m) => m.origin)).toEqual(['VirtualService shop/cart', 'VirtualService shop/cart']);
  });
});
