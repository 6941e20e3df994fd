/**
 * Kube mode's writers of trust-bundle copies, as istiod has them: the `istio-ca-root-cert` ConfigMap in every
 * namespace (istiod's NamespaceController, leader-elected) and the caBundle of our admission webhooks (istiod's
 * webhook patcher and validation controller, run by every replica). Each compares the object it watches with what it
 * would write and writes only the difference: N replicas and every resync cost no API writes when nothing changed.
 */
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { V1ConfigMap, V1MutatingWebhookConfiguration, V1Namespace, V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';
import { silentLogger, type Logger } from '../shared/log.ts';
import { collection, keyedQueue, type Collection, type KeyedQueue } from './kube-reconcile.ts';
import { LeaderElector, NAMESPACE_CONTROLLER_ELECTION } from './leader-election.ts';

/** istiod's names (pkg/kube/controllers, security/pkg/k8s/controller: CACertNamespaceConfigMap, CACertConfigMapKey). */
export const CA_ROOT_CONFIGMAP = 'istio-ca-root-cert';
export const CA_ROOT_KEY = 'root-cert.pem';
export const ISTIO_CONFIG_LABEL = 'istio.io/config';
/** Namespaces istiod never writes the root ConfigMap into (constants.go: the system and kind's storage namespaces). */
export const IGNORED_NAMESPACES: ReadonlySet<string> = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']);
/** The labels our chart puts on the webhook configurations (manifests/charts/mizzen/templates/*webhook.yaml). */
export const MUTATING_WEBHOOK_SELECTOR = 'app=sidecar-injector';
export const VALIDATING_WEBHOOK_SELECTOR = 'app=istiod';

const statusOf = (err: unknown): number | undefined => (err as { code?: number } | undefined)?.code;

export interface WriterStats {
  /** Successful creates, updates and patches. */
  writes: number;
  failures: number;
}

export interface RootCertPublisherOptions {
  kubeConfig: KubeConfig;
  /** Only the leader writes; following replicas watch nothing. */
  elector: Pick<LeaderElector, 'isLeader' | 'onChange'>;
  /** The mesh trust bundle: every root, PEM, concatenated. */
  rootsPem: string;
  log?: Logger;
  retryMs?: number;
}

/**
 * Keeps ConfigMap `istio-ca-root-cert` (key `root-cert.pem`) in every namespace equal to the mesh trust bundle, as
 * istiod's NamespaceController: proxies mount it to verify istiod's serving cert before they have any identity.
 */
export class RootCertPublisher {
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private pem: string;
  private lead: { namespaces: Collection<V1Namespace>; configMaps: Collection<V1ConfigMap>; queue: KeyedQueue } | undefined;
  private unsubscribe: (() => void) | undefined;
  private transition: Promise<void> = Promise.resolve();
  private readonly counts: WriterStats = { writes: 0, failures: 0 };
  private readonly o: RootCertPublisherOptions;

  constructor(o: RootCertPublisherOptions) {
    this.o = o;
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.log = (o.log ?? silentLogger).child({ writer: 'root-cert-publisher' });
    this.pem = o.rootsPem;
  }

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.o.elector.onChange((leader) => this.follow(leader));
    if (this.o.elector.isLeader) this.follow(true);
  }

  /** The watches and queue run only while leader; transitions are serialized so a flap cannot leave two running. */
  private follow(leader: boolean): void {
    this.transition = this.transition.then(() => (leader ? this.startLeading() : this.stopLeading()));
  }

  private async startLeading(): Promise<void> {
    if (this.lead || !this.o.elector.isLeader || !this.unsubscribe) return;
    const [kc, retryMs, fieldSelector] = [this.o.kubeConfig, this.o.retryMs ?? 1000, `metadata.name=${CA_ROOT_CONFIGMAP}`];
    const queue = keyedQueue((ns) => this.sync(ns), this.log, retryMs);
    // Only our ConfigMap, server-side filtered, in every namespace: an edit or delete by anyone brings it back.
    const list = () => this.core.listConfigMapForAllNamespaces({ fieldSelector });
    const configMaps = collection<V1ConfigMap>(kc, '/api/v1/configmaps', list, (cm) => queue.add(cm.metadata?.namespace ?? ''), { log: this.log, retryMs, fieldSelector });
    const namespaces = collection<V1Namespace>(kc, '/api/v1/namespaces', () => this.core.listNamespace(), (ns) => queue.add(ns.metadata?.name ?? ''), { log: this.log, retryMs });
    this.lead = { namespaces, configMaps, queue };
    this.log.info('leading: publishing the root certificate to every namespace');
    // ConfigMaps first: the namespaces' initial list enqueues every namespace, compared against a filled cache.
    await configMaps.start();
    await namespaces.start();
  }

  private async stopLeading(): Promise<void> {
    const lead = this.lead;
    if (!lead) return;
    this.lead = undefined;
    lead.queue.stop();
    await Promise.all([lead.namespaces.stop(), lead.configMaps.stop()]);
  }

  setRoots(pem: string): void {
    if (pem === this.pem) return;
    this.pem = pem;
    const lead = this.lead;
    for (const ns of lead?.namespaces.lw.list() ?? []) lead?.queue.add(ns.metadata?.name ?? '');
  }

  stats(): WriterStats {
    return { ...this.counts };
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.follow(false);
    await this.transition;
  }

  /** Resolves true to retry later: a 409 means our cache is behind, and its watch event is on its way. */
  private async sync(namespace: string): Promise<boolean> {
    const lead = this.lead;
    if (!lead || !this.o.elector.isLeader || IGNORED_NAMESPACES.has(namespace)) return false;
    const ns = lead.namespaces.lw.get(namespace);
    // A terminating namespace refuses new objects (403); a deleted one needs nothing.
    if (!ns || ns.metadata?.deletionTimestamp || ns.status?.phase === 'Terminating') return false;
    const cm = lead.configMaps.lw.get(CA_ROOT_CONFIGMAP, namespace);
    const pem = this.pem;
    if (cm?.data?.[CA_ROOT_KEY] === pem && cm.metadata?.labels?.[ISTIO_CONFIG_LABEL] === 'true') return false;
    try {
      if (!cm) {
        const metadata = { name: CA_ROOT_CONFIGMAP, namespace, labels: { [ISTIO_CONFIG_LABEL]: 'true' } };
        await this.core.createNamespacedConfigMap({ namespace, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: { [CA_ROOT_KEY]: pem } } });
      } else {
        // Other keys and labels someone added stay; the cached resourceVersion makes this a compare-and-swap.
        const body = { ...cm, metadata: { ...cm.metadata, labels: { ...cm.metadata?.labels, [ISTIO_CONFIG_LABEL]: 'true' } }, data: { ...cm.data, [CA_ROOT_KEY]: pem } };
        await this.core.replaceNamespacedConfigMap({ name: CA_ROOT_CONFIGMAP, namespace, body });
      }
      this.counts.writes++;
      this.log.info({ kind: 'ConfigMap', namespace, name: CA_ROOT_CONFIGMAP, op: cm ? 'update' : 'create' }, 'root certificate published');
      return false;
    } catch (err) {
      const code = statusOf(err);
      if (code === 409 || (code === 404 && cm)) return true;
      this.counts.failures++;
      throw err;
    }
  }
}

export interface WebhookCaBundlePatcherOptions {
  kubeConfig: KubeConfig;
  rootsPem: string;
  log?: Logger;
  /** Label selectors of the configurations to keep patched (defaults: our chart's labels). */
  mutatingSelector?: string;
  validatingSelector?: string;
  retryMs?: number;
}

type WebhookConfig = V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration;

/**
 * Keeps `webhooks[].clientConfig.caBundle` of our Mutating- and ValidatingWebhookConfigurations equal to the trust
 * bundle, so the API server verifies our webhook's serving cert (signed by our CA). Every replica runs it, as istiod's
 * webhook patcher does: the writes are idempotent and happen only when a caBundle differs.
 */
export class WebhookCaBundlePatcher {
  private readonly admission: AdmissionregistrationV1Api;
  private readonly log: Logger;
  private readonly queue: KeyedQueue;
  private readonly watches: Record<'mutating' | 'validating', Collection<WebhookConfig>>;
  private bundle: string;
  private readonly counts: WriterStats = { writes: 0, failures: 0 };

  constructor(o: WebhookCaBundlePatcherOptions) {
    this.admission = o.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.log = (o.log ?? silentLogger).child({ writer: 'webhook-ca-bundle' });
    this.bundle = Buffer.from(o.rootsPem, 'utf8').toString('base64');
    const retryMs = o.retryMs ?? 1000;
    this.queue = keyedQueue((key) => this.sync(key), this.log, retryMs);
    const base = '/apis/admissionregistration.k8s.io/v1';
    const m = o.mutatingSelector ?? MUTATING_WEBHOOK_SELECTOR;
    const v = o.validatingSelector ?? VALIDATING_WEBHOOK_SELECTOR;
    const enqueue = (kind: string) => (obj: KubernetesObject) => this.queue.add(`${kind}/${obj.metadata?.name ?? ''}`);
    this.watches = {
      mutating: collection<WebhookConfig>(o.kubeConfig, `${base}/mutatingwebhookconfigurations`, () => this.admission.listMutatingWebhookConfiguration({ labelSelector: m }), enqueue('mutating'), { log: this.log, retryMs, labelSelector: m }),
      validating: collection<WebhookConfig>(o.kubeConfig, `${base}/validatingwebhookconfigurations`, () => this.admission.listValidatingWebhookConfiguration({ labelSelector: v }), enqueue('validating'), { log: this.log, retryMs, labelSelector: v }),
    };
  }

  /** Lists (which enqueues every configuration found) and watches both kinds. */
  async start(): Promise<void> {
    await Promise.all([this.watches.mutating.start(), this.watches.validating.start()]);
  }

  setRoots(pem: string): void {
    const bundle = Buffer.from(pem, 'utf8').toString('base64');
    if (bundle === this.bundle) return;
    this.bundle = bundle;
    for (const kind of ['mutating', 'validating'] as const) {
      for (const c of this.watches[kind].lw.list()) this.queue.add(`${kind}/${c.metadata?.name ?? ''}`);
    }
  }

  stats(): WriterStats {
    return { ...this.counts };
  }

  async stop(): Promise<void> {
    this.queue.stop();
    await Promise.all([this.watches.mutating.stop(), this.watches.validating.stop()]);
  }

  private async sync(key: string): Promise<boolean> {
    const [kind, name] = key.split('/') as ['mutating' | 'validating', string];
    const current = this.watches[kind].lw.get(name);
    const bundle = this.bundle;
    // A JSON patch of only the webhooks that differ; `test` on each name so a concurrent reorder fails, not misfires.
    const ops = (current?.webhooks ?? []).flatMap((w, i) => (w.clientConfig.caBundle === bundle ? [] : [
      { op: 'test', path: `/webhooks/${i}/name`, value: w.name },
      { op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: bundle },
    ]));
    if (ops.length === 0) return false;
    try {
      if (kind === 'mutating') await this.admission.patchMutatingWebhookConfiguration({ name, body: ops });
      else await this.admission.patchValidatingWebhookConfiguration({ name, body: ops });
      this.counts.writes++;
      this.log.info({ kind: kind === 'mutating' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration', name, webhooks: ops.length / 2 }, 'caBundle patched');
      return false;
    } catch (err) {
      const code = statusOf(err);
      if (code === 404) return false; // deleted meanwhile; its watch event drops it from the cache
      if (code === 409 || code === 422) return true; // a failed `test`: the cache is behind, the watch catches up
      this.counts.failures++;
      throw err;
    }
  }
}

export interface KubeWriters {
  setRoots(pem: string): void;
  stop(): Promise<void>;
}

/**
 * Wires kube mode's writers: the root-cert publisher under the `istio-namespace-controller-election` Lease (istiod's
 * lease for exactly this job) and the webhook caBundle patcher on every replica. Failures are logged and retried;
 * nothing here blocks serving.
 */
export function startKubeWriters(o: { kubeConfig: KubeConfig; namespace: string; identity: string; rootsPem: string; log: Logger }): KubeWriters {
  const elector = new LeaderElector({ kubeConfig: o.kubeConfig, namespace: o.namespace, name: NAMESPACE_CONTROLLER_ELECTION, identity: o.identity, log: o.log });
  const publisher = new RootCertPublisher({ kubeConfig: o.kubeConfig, elector, rootsPem: o.rootsPem, log: o.log });
  const patcher = new WebhookCaBundlePatcher({ kubeConfig: o.kubeConfig, rootsPem: o.rootsPem, log: o.log });
  publisher.start();
  elector.start();
  patcher.start().catch((err: unknown) => o.log.error({ err }, 'starting the webhook caBundle patcher failed'));
  return {
    setRoots(pem) {
      publisher.setRoots(pem);
      patcher.setRoots(pem);
    },
    async stop() {
      // Stop writing before releasing the lease, so the next leader never overlaps with our last writes.
      await Promise.all([patcher.stop(), publisher.stop()]);
      await elector.stop();
    },
  };
}
