/**
 * Kube mode's leader-elected writers against a real kube-apiserver (test/infra/kube-apiserver.ts, built from source
 * the first time, under beforeAll's 40-minute timeout): Lease election and failover, the `istio-ca-root-cert`
 * ConfigMap in every namespace, and the webhooks' caBundle — each written only when it differs.
 */
import { AdmissionregistrationV1Api, CoordinationV1Api, CoreV1Api, KubeConfig, V1MicroTime } from '@kubernetes/client-node';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderElector, NAMESPACE_CONTROLLER_ELECTION } from '../../src/app/leader-election.ts';
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY, RootCertPublisher, startKubeWriters, WebhookCaBundlePatcher } from '../../src/app/kube-writers.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { kubeApiserverUnavailable, startKubeApiserver, type KubeApiserver } from '../infra/kube-apiserver.ts';
import { eventually } from '../support/mesh.ts';

const skipReason = kubeApiserverUnavailable();
const NS = 'istio-system';
const pem = (tag: string) => `-----BEGIN CERTIFICATE-----\nMIIB${tag}\n-----END CERTIFICATE-----\n`;
const ROOTS_1 = pem('root1');
const ROOTS_2 = pem('root1') + pem('root2');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const codeOf = (err: unknown) => (err as { code?: number }).code;

/** A TCP relay to the API server that can be cut: a replica partitioned from the API server, without killing it. */
async function cuttableRelay(target: URL): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) return void client.destroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe.skipIf(skipReason !== undefined)(`kube writers on a real kube-apiserver${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let api: KubeApiserver | undefined;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  const cleanups: Array<() => Promise<unknown>> = [];

  const elector = (name: string, identity: string, leaseDurationSec = 4) => {
    const e = new LeaderElector({ kubeConfig: kc, namespace: NS, name, identity, leaseDurationSec, renewEverySec: 1, retryEverySec: 0.25, log: silentLogger });
    cleanups.push(() => e.stop());
    return e;
  };
  const rootCm = async (namespace: string) => {
    try {
      return await core.readNamespacedConfigMap({ name: CA_ROOT_CONFIGMAP, namespace });
    } catch (err) {
      if (codeOf(err) === 404) return undefined;
      throw err;
    }
  };
  const userNamespaces = ['default', NS, 'app-a', 'app-b'];

  beforeAll(async () => {
    api = await startKubeApiserver();
    kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    admission = kc.makeApiClient(AdmissionregistrationV1Api);
    for (const name of [NS, 'app-a', 'app-b']) await core.createNamespace({ body: { metadata: { name } } });
  }, 40 * 60_000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await api?.stop();
  }, 60_000);

  it('elects exactly one of two candidates, and the other takes over within a second when the leader stops', async () => {
    const a = elector('test-election', 'replica-a');
    const b = elector('test-election', 'replica-b');
    const changes: string[] = [];
    a.onChange((l) => changes.push(`a:${l}`));
    b.onChange((l) => changes.push(`b:${l}`));
    a.start();
    b.start();
    await eventually(() => a.isLeader || b.isLeader, 10_000, 'a leader');
    // Across several renew periods: never two leaders, never a change of leader.
    for (let i = 0; i < 30; i++) {
      expect(Number(a.isLeader) + Number(b.isLeader)).toBe(1);
      await sleep(100);
    }
    expect(changes).toHaveLength(1);
    const [leader, follower] = a.isLeader ? [a, b] : [b, a];
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'test-election', namespace: NS });
    expect(lease.spec?.holderIdentity).toBe(a.isLeader ? 'replica-a' : 'replica-b');

    const t0 = Date.now();
    await leader.stop();
    expect(leader.isLeader).toBe(false);
    await eventually(() => follower.isLeader, 10_000, 'failover');
    const failoverMs = Date.now() - t0;
    console.log(`failover after a released lease: ${failoverMs} ms (retry period 250 ms)`);
    expect(failoverMs).toBeLessThan(2_000);
  });

  it('a leader cut off from the API server steps down when its lease runs out, before anyone else leads', async () => {
    const relay = await cuttableRelay(new URL(api!.server));
    cleanups.push(relay.close);
    const cut = new KubeConfig();
    cut.loadFromOptions({ clusters: kc.clusters.map((c) => ({ ...c, server: relay.url })), users: kc.users, contexts: kc.contexts, currentContext: kc.currentContext });
    const a = new LeaderElector({ kubeConfig: cut, namespace: NS, name: 'cut-election', identity: 'cut-a', leaseDurationSec: 4, renewEverySec: 1, retryEverySec: 0.25, log: silentLogger });
    cleanups.push(() => a.stop());
    const b = elector('cut-election', 'cut-b');
    a.start();
    await eventually(() => a.isLeader, 10_000, 'a leads');
    b.start();
    let aLost = 0;
    let bWon = 0;
    let overlap = false;
    a.onChange((l) => void (l || (aLost = Date.now())));
    b.onChange((l) => {
      if (!l) return;
      bWon = Date.now();
      overlap = a.isLeader;
    });
    const t0 = Date.now();
    relay.cut();
    await eventually(() => b.isLeader, 15_000, 'b takes over');
    console.log(`partitioned leader stepped down after ${aLost - t0} ms; the standby led after ${bWon - t0} ms (lease 4 s)`);
    expect(overlap).toBe(false);
    expect(aLost).toBeGreaterThan(0);
    expect(aLost - t0).toBeLessThanOrEqual(4_500);
    expect(bWon).toBeGreaterThanOrEqual(aLost);
  });

  it('takes over a lease whose holder vanished only once it has expired', async () => {
    const leases = kc.makeApiClient(CoordinationV1Api);
    const now = Date.now();
    await leases.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: 'ghost-election' }, spec: { holderIdentity: 'ghost', leaseDurationSeconds: 3, renewTime: new V1MicroTime(now), acquireTime: new V1MicroTime(now) } },
    });
    const c = elector('ghost-election', 'replica-c');
    c.start();
    await sleep(2_000);
    expect(c.isLeader).toBe(false);
    await eventually(() => c.isLeader, 10_000, 'takeover of an expired lease');
    const takeoverMs = Date.now() - now;
    console.log(`takeover of an abandoned 3 s lease: ${takeoverMs} ms after its last renewal`);
    expect(takeoverMs).toBeGreaterThanOrEqual(3_000);
    const lease = await leases.readNamespacedLease({ name: 'ghost-election', namespace: NS });
    expect(lease.spec?.holderIdentity).toBe('replica-c');
    expect(lease.spec?.leaseTransitions).toBe(1);
  });

  it('publishes istio-ca-root-cert to every namespace but the system ones, keeps it, and only the leader writes', async () => {
    const e1 = elector(NAMESPACE_CONTROLLER_ELECTION, 'pub-1');
    const e2 = elector(NAMESPACE_CONTROLLER_ELECTION, 'pub-2');
    const p1 = new RootCertPublisher({ kubeConfig: kc, elector: e1, rootsPem: ROOTS_1, log: silentLogger, retryMs: 200 });
    const p2 = new RootCertPublisher({ kubeConfig: kc, elector: e2, rootsPem: ROOTS_1, log: silentLogger, retryMs: 200 });
    cleanups.push(() => p1.stop(), () => p2.stop());
    p1.start();
    p2.start();
    e1.start();
    await eventually(() => e1.isLeader, 10_000, 'pub-1 leads');
    e2.start();
    const hasRoots = async (ns: string, roots: string) => (await rootCm(ns))?.data?.[CA_ROOT_KEY] === roots;
    const allHave = async (roots: string) => (await Promise.all(userNamespaces.map((ns) => hasRoots(ns, roots)))).every(Boolean);
    await eventually(() => allHave(ROOTS_1), 15_000, 'root ConfigMaps in every namespace');
    const cm = await rootCm('app-a');
    expect(cm?.metadata?.labels).toEqual({ 'istio.io/config': 'true' });
    for (const ns of ['kube-system', 'kube-public', 'kube-node-lease']) expect(await rootCm(ns)).toBeUndefined();

    // A namespace created later gets it.
    await core.createNamespace({ body: { metadata: { name: 'late' } } });
    await eventually(() => hasRoots('late', ROOTS_1), 10_000, 'root ConfigMap in a new namespace');

    // A user's edit is reverted (their extra key kept); a deleted one comes back.
    const edited = (await rootCm('app-a'))!;
    await core.replaceNamespacedConfigMap({ name: CA_ROOT_CONFIGMAP, namespace: 'app-a', body: { ...edited, data: { [CA_ROOT_KEY]: 'tampered', extra: 'x' } } });
    await eventually(() => hasRoots('app-a', ROOTS_1), 10_000, 'edited ConfigMap restored');
    expect((await rootCm('app-a'))?.data?.extra).toBe('x');
    await core.deleteNamespacedConfigMap({ name: CA_ROOT_CONFIGMAP, namespace: 'app-b' });
    await eventually(() => hasRoots('app-b', ROOTS_1), 10_000, 'deleted ConfigMap restored');

    // An unchanged trust bundle writes nothing: resourceVersions stay put.
    const versions = async () => Promise.all([...userNamespaces, 'late'].map(async (ns) => (await rootCm(ns))?.metadata?.resourceVersion));
    const before = await versions();
    const writes = p1.stats().writes;
    p1.setRoots(ROOTS_1);
    await sleep(1_000);
    expect(await versions()).toEqual(before);
    expect(p1.stats().writes).toBe(writes);
    expect(writes).toBe(userNamespaces.length + 1 + 2); // one create per namespace, one restore after each user change

    // A new bundle reaches every namespace.
    p1.setRoots(ROOTS_2);
    p2.setRoots(ROOTS_2);
    await eventually(async () => (await allHave(ROOTS_2)) && (await hasRoots('late', ROOTS_2)), 10_000, 'rotated roots everywhere');
    expect(p2.stats().writes).toBe(0);

    // The standby takes over when the leader stops, and keeps the ConfigMaps from then on.
    await p1.stop();
    await e1.stop();
    await eventually(() => e2.isLeader, 10_000, 'pub-2 leads');
    await core.deleteNamespacedConfigMap({ name: CA_ROOT_CONFIGMAP, namespace: 'app-a' });
    await eventually(() => hasRoots('app-a', ROOTS_2), 10_000, 'restored by the new leader');
    expect(p2.stats().writes).toBe(1);
    await p2.stop();
    await e2.stop();
  });

  it('patches the caBundle of our webhook configurations only where it differs', async () => {
    const webhook = (name: string) => ({
      name,
      clientConfig: { url: 'https://127.0.0.1:1/inject' },
      // A group nothing serves, and Ignore: the API server never needs to call these.
      rules: [{ operations: ['CREATE'], apiGroups: ['test.mizzen.io'], apiVersions: ['v1'], resources: ['nothings'] }],
      failurePolicy: 'Ignore',
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
    });
    const meta = (name: string, app?: string): { name: string; labels: Record<string, string> } => ({ name, labels: app ? { app, 'istio.io/rev': 'default' } : { app: 'other' } });
    await admission.createMutatingWebhookConfiguration({ body: { metadata: meta('istio-sidecar-injector', 'sidecar-injector'), webhooks: [webhook('a.sidecar-injector.istio.io'), webhook('b.sidecar-injector.istio.io')] } });
    await admission.createValidatingWebhookConfiguration({ body: { metadata: meta('istio-validator-istio-system', 'istiod'), webhooks: [webhook('validation.istio.io')] } });
    await admission.createMutatingWebhookConfiguration({ body: { metadata: meta('someone-else'), webhooks: [webhook('x.example.com')] } });

    const patcher = new WebhookCaBundlePatcher({ kubeConfig: kc, rootsPem: ROOTS_1, log: silentLogger, retryMs: 200 });
    cleanups.push(() => patcher.stop());
    await patcher.start();
    const bundles = async () => {
      const m = await admission.readMutatingWebhookConfiguration({ name: 'istio-sidecar-injector' });
      const v = await admission.readValidatingWebhookConfiguration({ name: 'istio-validator-istio-system' });
      return { bundles: [...(m.webhooks ?? []), ...(v.webhooks ?? [])].map((w) => w.clientConfig.caBundle), rv: [m.metadata?.resourceVersion, v.metadata?.resourceVersion] };
    };
    const all = (roots: string) => async () => (await bundles()).bundles.every((b) => b === b64(roots));
    await eventually(all(ROOTS_1), 10_000, 'caBundles filled');
    expect(patcher.stats().writes).toBe(2);
    const other = await admission.readMutatingWebhookConfiguration({ name: 'someone-else' });
    expect(other.webhooks?.[0]?.clientConfig.caBundle).toBeUndefined();

    // Nothing differs: nothing written.
    const { rv } = await bundles();
    patcher.setRoots(ROOTS_1);
    await sleep(1_000);
    expect((await bundles()).rv).toEqual(rv);
    expect(patcher.stats().writes).toBe(2);

    // A user blanks one webhook's caBundle: that one is patched back.
    const m = await admission.readMutatingWebhookConfiguration({ name: 'istio-sidecar-injector' });
    m.webhooks![1]!.clientConfig.caBundle = '';
    await admission.replaceMutatingWebhookConfiguration({ name: 'istio-sidecar-injector', body: m });
    await eventually(all(ROOTS_1), 10_000, 'blanked caBundle restored');
    expect(patcher.stats().writes).toBe(3);

    // New roots: one patch per configuration.
    patcher.setRoots(ROOTS_2);
    await eventually(all(ROOTS_2), 10_000, 'caBundles rotated');
    await sleep(500);
    expect(patcher.stats()).toEqual({ writes: 5, failures: 0 });
  });

  it('startKubeWriters wires the publisher under istiod\'s lease and the patcher', async () => {
    const writers = startKubeWriters({ kubeConfig: kc, namespace: NS, identity: 'mizzen-0', rootsPem: ROOTS_2, log: silentLogger });
    cleanups.push(() => writers.stop());
    const ROOTS_3 = ROOTS_2 + pem('root3');
    writers.setRoots(ROOTS_3);
    await eventually(async () => (await rootCm('late'))?.data?.[CA_ROOT_KEY] === ROOTS_3, 15_000, 'ConfigMap with the new roots');
    await eventually(async () => (await admission.readValidatingWebhookConfiguration({ name: 'istio-validator-istio-system' })).webhooks?.[0]?.clientConfig.caBundle === b64(ROOTS_3), 10_000, 'caBundle with the new roots');
    await writers.stop();
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: NAMESPACE_CONTROLLER_ELECTION, namespace: NS });
    expect(lease.spec?.holderIdentity).toBe(''); // released on stop
  });
});
