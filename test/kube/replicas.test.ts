/**
 * Two replicas, kube mode (issue item "Two replicas"; reliability-security.md §4, §9 G4, G5): two real `mizzen serve
 * --kubeconfig` processes on one real kube-apiserver, started together on an empty istio-system. Both serve, with one
 * CA (the istio-ca-secret one of them created); exactly one holds the status Lease and writes status. The status
 * leader is SIGKILLed — it cannot release its Leases — with proxies on it: they reconnect to the survivor (through one
 * failing-over address, as through a Service) with byte-identical config; the survivor takes the Leases once they
 * expire, not before, writes status for new config and publishes the root ConfigMap into a new namespace, without
 * rewriting what is already right.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { CoordinationV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, type KubernetesObject, type V1Lease } from '@kubernetes/client-node';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCrds } from '../../src/app/crds.ts';
import { CA_SECRET_NAME } from '../../src/app/kube-ca.ts';
import { STATUS_LEADER_ELECTION } from '../../src/app/kube-status.ts';
import { CA_ROOT_CONFIGMAP, CA_ROOT_KEY } from '../../src/app/kube-writers.ts';
import { NAMESPACE_CONTROLLER_ELECTION } from '../../src/app/leader-election.ts';
import { getJson } from '../../src/config/sources/kube-api.ts';
import { kubeApiserverUnavailable, startKubeApiserver, type KubeApiserver } from '../infra/kube-apiserver.ts';
import type { AdsMode, AdsNodeSpec } from '../support/ads-client.ts';
import { startFailoverForwarder, type FailoverForwarder } from '../support/failover-forwarder.ts';
import { createCrd } from '../support/kube.ts';
import { eventually, serviceEntry } from '../support/mesh.ts';
import { nacksOn, startMizzenProcess, waitSyncedOn, type LogLine, type MizzenProcess } from '../support/mizzen-process.ts';
import { diffConfigs, freshConfig, ReconnectingAdsProxy, type ConfigDigest } from '../support/reconnecting-ads-proxy.ts';
import { workloadCerts } from '../support/workload-certs.ts';

const skipReason = kubeApiserverUnavailable();
const BUILD_TIMEOUT_MS = 40 * 60_000;
const NS = 'istio-system';
/** kubeWiring's elections use client-go's and istiod's defaults: a 15 s lease, renewed every 5 s, retried every 2 s. */
const LEASE_MS = 15_000;
const RETRY_MS = 2_000;
/** Room for a loaded 2-core box on top of lease expiry + one retry period. */
const TAKEOVER_SLACK_MS = 8_000;
const MODES: AdsMode[] = ['sotw', 'delta'];
const PROXIES_PER_MODE = 3;
const sidecar = (pod: string): AdsNodeSpec => ({ kind: 'envoy', pod, namespace: 'bookinfo', ip: '10.1.0.1' });
const PROBE = sidecar('fresh-probe');

const vs = (name: string, host: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: bookinfo }
spec:
  hosts: [${host}]
  http:
    - route: [{ destination: { host: ${host}, subset: v1 } }]
`;
const dr = (host: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${host}, namespace: bookinfo }
spec:
  host: ${host}
  subsets: [{ name: v1, labels: { version: v1 } }]
`;

type WithStatus = KubernetesObject & { metadata: { generation?: number }; status?: { observedGeneration?: number; conditions?: Array<{ type: string; status: string; message?: string }> } };
const microMs = (t: unknown) => new Date(t as string | Date).getTime();
/** RootCertPublisher's log line when it starts leading (src/app/kube-writers.ts). */
const PUBLISHING = 'leading: publishing the root certificate to every namespace';

describe.skipIf(skipReason !== undefined)(`two kube-mode replicas on a real kube-apiserver${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let api: KubeApiserver | undefined;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let leases: CoordinationV1Api;
  let objects: KubernetesObjectApi;
  let replicas: MizzenProcess[] = [];
  let leader: MizzenProcess;
  let follower: MizzenProcess;
  let front: FailoverForwarder | undefined;
  const fleet: ReconnectingAdsProxy[] = [];
  const report: Record<string, string | number> = {};

  const create = async (yaml: string) => {
    for (const doc of YAML.parseAllDocuments(yaml)) {
      await objects.create(doc.toJS() as KubernetesObject).catch((e: { body?: string }) => {
        throw new Error(`creating ${yaml.split('\n')[1]}: ${e.body ?? String(e)}`);
      });
    }
  };
  const lease = (name: string): Promise<V1Lease | undefined> => leases.readNamespacedLease({ name, namespace: NS }).catch(() => undefined);
  const holder = async (name: string) => (await lease(name))?.spec?.holderIdentity ?? '';
  const rootConfigMap = (namespace: string) => core.readNamespacedConfigMap({ name: CA_ROOT_CONFIGMAP, namespace }).catch(() => undefined);
  const statusWrites = async (p: MizzenProcess) => (await p.debug<{ writer?: { writes: number } }>('/debug/config_status?kind=VirtualService')).writer?.writes ?? 0;
  const reconciled = async (name: string) => {
    const o = await getJson<WithStatus>(kc, `/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/${name}`);
    const c = o.status?.conditions?.find((x) => x.type === 'Reconciled');
    return c?.status === 'True' && o.status?.observedGeneration === o.metadata.generation ? c : undefined;
  };
  const caRoot = async () => {
    const s = await core.readNamespacedSecret({ name: CA_SECRET_NAME, namespace: NS });
    return Buffer.from(s.data?.['root-cert.pem'] ?? '', 'base64').toString();
  };
  const token = async () =>
    (await core.createNamespacedServiceAccountToken({ name: 'reviews', namespace: 'bookinfo', body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['istio-ca'], expirationSeconds: 600 } } })).status?.token ?? '';
  /** LeaderElector's log line on winning `election`. */
  const becameLeader = (election: string) => (l: LogLine) => l.msg === 'became leader' && l.lease === `${NS}/${election}`;

  beforeAll(async () => {
    api = await startKubeApiserver();
    kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    leases = kc.makeApiClient(CoordinationV1Api);
    objects = KubernetesObjectApi.makeApiClient(kc);
    for (const crd of generateCrds()) await createCrd(kc, crd);
    await eventually(async () => {
      for (const crd of generateCrds()) {
        const got = (await objects.read(crd as unknown as KubernetesObject & { metadata: { name: string } })) as { status?: { conditions?: Array<{ type: string; status: string }> } };
        if (!got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return false;
      }
      return true;
    }, 60_000, 'CRDs established');
    for (const name of [NS, 'bookinfo']) await core.createNamespace({ body: { metadata: { name } } });
    await core.createNamespacedServiceAccount({ namespace: 'bookinfo', body: { metadata: { name: 'reviews' } } });
    await create(serviceEntry('reviews', 'bookinfo', 9080, [{ port: 7001, labels: { version: 'v1' } }, { port: 7002, labels: { version: 'v2' } }], 'HTTP'));
    await create(dr('reviews'));
    await create(vs('reviews', 'reviews'));
    // Both at once on an empty istio-system: they race to create istio-ca-secret and both Leases.
    replicas = await Promise.all(['replica-a', 'replica-b'].map((name) => startMizzenProcess({ name, args: ['--kubeconfig', api!.kubeconfigPath, '--ca-namespace', NS] })));
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    console.table(report);
    for (const p of fleet) p.close();
    await Promise.all(replicas.map((p) => p.stop()));
    await front?.close();
    await api?.stop();
  }, 60_000);

  it('both serve, with one CA; exactly one holds the status Lease and writes status', async () => {
    // One CA: exactly one Secret holds it, and a certificate from either replica verifies against its root.
    const secrets = await core.listNamespacedSecret({ namespace: NS });
    expect(secrets.items.filter((s) => s.type === 'istio.io/ca-root').map((s) => s.metadata?.name)).toEqual([CA_SECRET_NAME]);
    const root = await caRoot();
    const rootCert = new crypto.X509Certificate(root);
    for (const p of replicas) {
      // The TLS handshake itself checks that this replica's serving certificate chains to the Secret's root.
      const certs = await workloadCerts({ secureXdsPort: p.secureXdsPort, rootPem: () => root }, await token());
      try {
        expect(certs.spiffeId).toBe('spiffe://cluster.local/ns/bookinfo/sa/reviews');
        expect(fs.readFileSync(certs.rootCertFile, 'utf8').trim()).toBe(root.trim());
        const leaf = new crypto.X509Certificate(fs.readFileSync(certs.certChainFile, 'utf8'));
        expect(leaf.verify(rootCert.publicKey)).toBe(true);
      } finally {
        certs.remove();
      }
    }

    // The same config from both.
    for (const mode of MODES) {
      const [a, b] = await Promise.all(replicas.map((p) => freshConfig(p.xdsPort, mode, PROBE)));
      expect(diffConfigs(a!, b!, ['replica-a', 'replica-b'])).toEqual([]);
      expect(Object.keys(a!.cds ?? {})).toContain('outbound|9080|v1|reviews.bookinfo.svc.cluster.local');
    }

    // One status leader, which writes; the other writes nothing, and never led.
    await eventually(async () => ['replica-a', 'replica-b'].includes(await holder(STATUS_LEADER_ELECTION)), 20_000, 'a status leader');
    const leaderName = await holder(STATUS_LEADER_ELECTION);
    [leader, follower] = replicas[0]!.name === leaderName ? [replicas[0]!, replicas[1]!] : [replicas[1]!, replicas[0]!];
    await eventually(async () => (await reconciled('reviews')) !== undefined, 20_000, 'Reconciled status on the VirtualService');
    await eventually(async () => (await statusWrites(leader)) > 0, 10_000, 'the leader to count its status writes');
    // Across more than one renew period nothing changes hands.
    await new Promise((r) => setTimeout(r, 6_000));
    expect(await holder(STATUS_LEADER_ELECTION)).toBe(leader.name);
    expect(await statusWrites(follower)).toBe(0);
    expect(follower.logs.find(becameLeader(STATUS_LEADER_ELECTION))).toBeUndefined();
    // The root-cert publisher runs on its Lease's holder only (its own election: not necessarily the status leader).
    const publisher = await holder(NAMESPACE_CONTROLLER_ELECTION);
    expect(replicas.filter((p) => p.logs.some((l) => l.msg === PUBLISHING)).map((p) => p.name)).toEqual([publisher]);
    report['status leader'] = leader.name;
    report['root-cert publisher (namespace-controller Lease)'] = publisher;
  }, 60_000);

  it('SIGKILL the leader: its proxies reconnect to the survivor with identical config; the survivor takes the Leases on expiry and writes', async () => {
    front = await startFailoverForwarder([leader.xdsPort, follower.xdsPort]);
    for (const mode of MODES) for (let i = 0; i < PROXIES_PER_MODE; i++) fleet.push(new ReconnectingAdsProxy(front.port, mode, sidecar(`${mode}-${i}`)));
    await Promise.all(fleet.map((p) => p.waitSynced(30_000)));
    await waitSyncedOn(leader, fleet.map((p) => p.nodeId), 10_000);
    const before = new Map(fleet.map((p) => [p, p.digest()]));
    const streamsBefore = new Map(fleet.map((p) => [p, p.streams.length]));

    // What the namespace-controller leader already wrote, to see that a new leader does not rewrite it.
    const published = ['default', 'bookinfo', NS];
    const root = await caRoot();
    await eventually(async () => (await Promise.all(published.map(rootConfigMap))).every((cm) => cm?.data?.[CA_ROOT_KEY] === root), 20_000, 'istio-ca-root-cert in every namespace');
    const configMapVersions = async () => Promise.all(published.map(async (ns) => (await rootConfigMap(ns))?.metadata?.resourceVersion));
    const versionsBefore = await configMapVersions();
    const nsControllerBefore = await holder(NAMESPACE_CONTROLLER_ELECTION);

    const killedAt = Date.now();
    await leader.kill();
    // Its last renewal, read after its death: nobody may lead before that + the lease duration.
    const last = (await lease(STATUS_LEADER_ELECTION))!;
    expect(last.spec?.holderIdentity).toBe(leader.name);
    const lastRenewMs = microMs(last.spec?.renewTime);

    // The proxies: back within a bound, on the survivor, holding exactly what they held and what it serves.
    await Promise.all(fleet.map(async (p) => {
      await eventually(() => p.streams.length > streamsBefore.get(p)!, 15_000, `${p.nodeId} to reconnect`);
      await p.waitSynced(15_000, 'resynced on the survivor');
    }));
    const reconnectMs = fleet.map((p) => p.streams.at(-1)!.syncedAt! - killedAt);
    report['proxies reconnected, max reconnect+resync (ms)'] = `${fleet.length}, ${Math.max(...reconnectMs)}`;
    await waitSyncedOn(follower, fleet.map((p) => p.nodeId), 10_000);
    const fresh = new Map<AdsMode, ConfigDigest>();
    for (const mode of MODES) fresh.set(mode, await freshConfig(follower.xdsPort, mode, PROBE));
    for (const p of fleet) {
      expect(diffConfigs(before.get(p)!, p.digest(), ['before', 'after'])).toEqual([]);
      expect(diffConfigs(p.digest(), fresh.get(p.mode)!, [p.nodeId, 'survivor'])).toEqual([]);
      expect(p.events).toEqual([]);
    }

    // The status Lease: taken over once expired — not before — and within its duration plus one retry.
    await eventually(async () => (await holder(STATUS_LEADER_ELECTION)) === follower.name, LEASE_MS + RETRY_MS + TAKEOVER_SLACK_MS, 'the survivor to take the status Lease');
    const taken = (await lease(STATUS_LEADER_ELECTION))!;
    const acquiredMs = microMs(taken.spec?.acquireTime);
    report['status Lease taken over after SIGKILL (ms)'] = acquiredMs - killedAt;
    report['status Lease free to take after SIGKILL (ms)'] = lastRenewMs + LEASE_MS - killedAt;
    // MicroTime keeps microseconds: allow 1 ms of rounding.
    expect(acquiredMs).toBeGreaterThanOrEqual(lastRenewMs + LEASE_MS - 1);
    expect(acquiredMs - killedAt).toBeLessThanOrEqual(LEASE_MS + RETRY_MS + TAKEOVER_SLACK_MS);
    expect(taken.spec?.leaseTransitions).toBe((last.spec?.leaseTransitions ?? 0) + 1);
    // Its own account (the line may still be in the pipe when the Lease already names it).
    await follower.waitForLog(becameLeader(STATUS_LEADER_ELECTION), 10_000, 'became leader of the status Lease');

    // The new leader writes status for config created after the failover, counting the proxies now on it.
    await create(serviceEntry('ratings', 'bookinfo', 9081, [{ port: 7003, labels: { version: 'v1' } }], 'HTTP'));
    await create(dr('ratings'));
    await create(vs('ratings', 'ratings'));
    let condition: Awaited<ReturnType<typeof reconciled>>;
    await eventually(async () => (condition = await reconciled('ratings')) !== undefined, 20_000, 'Reconciled status on the new VirtualService');
    // Every proxy it counts is up to date, and it counts the reconnected ones (a probe closing meanwhile may linger).
    expect(Number(/^(\d+)\/\1 proxies up to date$/.exec(condition!.message ?? '')?.[1])).toBeGreaterThanOrEqual(fleet.length);
    expect(await statusWrites(follower)).toBeGreaterThan(0);
    // …and the proxies have that config, as a new proxy would get it.
    await eventually(async () => {
      const fresh = await freshConfig(follower.xdsPort, 'sotw', PROBE);
      return Object.keys(fresh.cds ?? {}).includes('outbound|9081|v1|ratings.bookinfo.svc.cluster.local') && fleet.every((p) => diffConfigs(p.digest(), fresh).length === 0);
    }, 20_000, 'the new config on every proxy, as a new proxy gets it');

    // The root-cert publisher: the survivor leads it (taken over if the dead replica held it) and publishes into a
    // new namespace, while the ConfigMaps already right are not written again.
    await eventually(async () => (await holder(NAMESPACE_CONTROLLER_ELECTION)) === follower.name, LEASE_MS + RETRY_MS + TAKEOVER_SLACK_MS, 'the survivor to lead the root-cert publisher');
    report['namespace-controller Lease'] = nsControllerBefore === leader.name ? `taken over after ${microMs((await lease(NAMESPACE_CONTROLLER_ELECTION))!.spec?.acquireTime) - killedAt} ms` : 'already held by the survivor';
    await core.createNamespace({ body: { metadata: { name: 'after-failover' } } });
    await eventually(async () => (await rootConfigMap('after-failover'))?.data?.[CA_ROOT_KEY] === root, 20_000, 'istio-ca-root-cert in a namespace created after the failover');
    await follower.waitForLog((l) => l.msg === PUBLISHING, 10_000, 'leading the root-cert publisher');
    expect(await configMapVersions()).toEqual(versionsBefore);

    expect(await nacksOn(follower)).toEqual([]);
    expect(follower.logs.filter((l) => (l.level ?? 0) >= 50).map((l) => l.msg)).toEqual([]);
  }, 90_000);
});
