/**
 * `--kubeconfig` (or in-cluster): the cluster is the config source. One list+watch per kind (client-node's ListWatch:
 * relists on 410 Gone, reconnects with backoff); every object goes through the same validation as a file, so an
 * object the validating webhook would have refused (written before the webhook existed, or with it bypassed) is
 * refused here too, with the same message, and its last good version keeps serving.
 *
 * Readiness: `synced()` is called only once every kind has delivered its first complete list; a proxy never gets a
 * config built from half a cluster. A kind whose CRD is not installed counts as synced (empty) and is looked for
 * again every `rediscoverMs`, as istiod does for CRDs installed after it starts.
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../shared/log.ts';
import { ErrorCode } from '../../shared/errors.ts';
import type { KindDefinition } from '../kinds/kind.ts';
import { validateDocument, type KindLookup } from '../validate.ts';
import { collectionPath, listAll, servedVersions } from './kube-api.ts';
import type { ConfigSink, ConfigSource } from './source.ts';

export interface KubeSourceOptions {
  kubeConfig: KubeConfig;
  kinds: KindLookup & { all(): Array<KindDefinition<any>> };
  log: Logger;
  /** How often kinds whose API is not served yet are looked for again (default 30 s). */
  rediscoverMs?: number;
  /** First retry delay after a failed list (doubles up to 30 s; default 1 s). */
  retryMs?: number;
}

/**
 * Secrets that can never be gateway credentials or a plug-in CA, and are numerous in real clusters: service account
 * tokens and Helm's release records. Filtered by the server, as istiod's secret informer does.
 */
const SECRET_FIELD_SELECTOR = 'type!=kubernetes.io/service-account-token,type!=helm.sh/release.v1';

/** The version to watch: the newest version mizzen knows that the server serves (all Istio versions share one schema). */
export function pickVersion(def: KindDefinition<any>, served: Map<string, Set<string>>): string | undefined {
  const versions = served.get(def.group);
  return versions ? def.versions.find((v) => versions.has(v)) : undefined;
}

export class KubeSource implements ConfigSource {
  private readonly o: KubeSourceOptions;
  private readonly watches = new Map<string, ListWatch<KubernetesObject>>();
  /** Kind → the apiVersion it is watched (and its status written) at. */
  private readonly versions = new Map<string, string>();
  /** Object key → fingerprint of what was last delivered: updates that change nothing mizzen reads are dropped. */
  private readonly delivered = new Map<string, string>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private rediscoverTimer: NodeJS.Timeout | undefined;
  private sink: ConfigSink | undefined;
  private stopped = false;

  constructor(options: KubeSourceOptions) {
    this.o = options;
  }

  async start(sink: ConfigSink): Promise<void> {
    this.sink = sink;
    await this.startServedKinds();
    sink.synced();
    this.rediscoverTimer = setInterval(() => void this.startServedKinds().catch((err: unknown) => this.o.log.warn({ code: ErrorCode.ConfigSource, err }, 'API discovery failed')), this.o.rediscoverMs ?? 30_000);
    this.rediscoverTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.rediscoverTimer) clearInterval(this.rediscoverTimer);
    for (const t of this.retryTimers) clearTimeout(t);
    await Promise.all([...this.watches.values()].map((w) => w.stop()));
    this.watches.clear();
  }

  /** Starts a watch for every kind the server serves and is not watched yet; resolves once each has listed. */
  private async startServedKinds(): Promise<void> {
    const served = await servedVersions(this.o.kubeConfig);
    const starting: Array<Promise<void>> = [];
    for (const def of this.o.kinds.all()) {
      if (this.watches.has(def.kind) || this.stopped) continue;
      const version = pickVersion(def, served);
      if (!version) {
        this.o.log.warn({ code: ErrorCode.ConfigSource, kind: def.kind, group: def.group }, 'API not served (CRD not installed?); will look again');
        continue;
      }
      starting.push(this.watchKind(def, version));
    }
    await Promise.all(starting);
  }

  private async watchKind(def: KindDefinition<any>, version: string): Promise<void> {
    const apiVersion = def.group ? `${def.group}/${version}` : version;
    const path = collectionPath(def.group, version, def.plural);
    const fieldSelector = def.kind === 'Secret' ? SECRET_FIELD_SELECTOR : undefined;
    const lw = new ListWatch<KubernetesObject>(
      path,
      new Watch(this.o.kubeConfig),
      () => listAll(this.o.kubeConfig, path, { apiVersion, kind: def.kind }, fieldSelector),
      false,
      undefined,
      fieldSelector,
    );
    this.watches.set(def.kind, lw);
    this.versions.set(def.kind, apiVersion);
    lw.on('add', (obj) => this.deliver(obj, apiVersion, def));
    lw.on('update', (obj) => this.deliver(obj, apiVersion, def));
    lw.on('delete', (obj) => {
      const ns = def.namespaced ? (obj.metadata?.namespace ?? '') : '';
      this.delivered.delete(`${def.kind}/${ns}/${obj.metadata?.name ?? ''}`);
      this.sink?.delete(def.kind, ns, obj.metadata?.name ?? '');
    });
    let delay = this.o.retryMs ?? 1000;
    lw.on('error', (err: unknown) => {
      // ListWatch stops on any error other than 410 Gone and timeouts; restart it with backoff. Objects already
      // delivered keep serving meanwhile, and the relist deletes the ones that went away.
      if (this.stopped) return;
      this.o.log.warn({ code: ErrorCode.ConfigSource, kind: def.kind, err, retryInMs: delay }, 'list/watch failed; retrying');
      const t = setTimeout(() => {
        this.retryTimers.delete(t);
        if (!this.stopped) void lw.start();
      }, delay);
      this.retryTimers.add(t);
      delay = Math.min(delay * 2, 30_000);
    });
    lw.on('connect', () => {
      if (lw.latestResourceVersion()) delay = this.o.retryMs ?? 1000;
    });
    await lw.start();
    // A failed first list leaves no resourceVersion: wait for a retry to succeed, so readiness means "complete".
    while (!lw.latestResourceVersion() && !this.stopped) await new Promise((r) => setTimeout(r, 100));
    this.o.log.info({ kind: def.kind, apiVersion, objects: lw.list().length }, 'kind synced');
  }

  /** The apiVersion a kind is read at (status is written at the same one); undefined while it is not watched. */
  apiVersionOf(kind: string): string | undefined {
    return this.versions.get(kind);
  }

  private deliver(obj: KubernetesObject, apiVersion: string, def: KindDefinition<any>): void {
    const sink = this.sink;
    if (!sink) return;
    const kind = def.kind;
    // Our own status writes (and any other status or managedFields churn) come back as updates with a new
    // resourceVersion. For Istio kinds only spec, labels and annotations matter: dropping those updates keeps a status
    // write from causing a push, which would cause another status write.
    const key = `${kind}/${def.namespaced ? (obj.metadata?.namespace ?? 'default') : ''}/${obj.metadata?.name ?? ''}`;
    const { resourceVersion: _rv, managedFields: _mf, ...meta } = obj.metadata ?? {};
    const { status: _status, ...rest } = obj as KubernetesObject & { status?: unknown };
    const fingerprint = JSON.stringify(def.wholeObject ? { ...obj, metadata: meta } : { ...rest, metadata: meta });
    if (this.delivered.get(key) === fingerprint) return;
    this.delivered.set(key, fingerprint);
    // Watch events carry apiVersion/kind; list items got them from listAll. The watched version is what the object is
    // read as, whatever version it was written in (Istio's CRDs share one schema across versions).
    const raw = { ...obj, apiVersion, kind };
    const r = validateDocument(raw, this.o.kinds, { defaultNamespace: 'default', now: () => new Date().toISOString() });
    if (!r) return;
    if (r.ok) sink.upsert(r.value);
    else sink.rejected(r.errors);
  }
}
