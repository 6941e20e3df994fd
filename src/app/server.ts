/**
 * The composition root for `mizzen serve`: config source → store → debounce → push context → generators/cache →
 * ADS streams, plus the monitoring port. Nothing here is reachable from the generators or the protocol layer.
 */
import * as grpc from '@grpc/grpc-js';
import os from 'node:os';
import v8 from 'node:v8';
import type { FastifyInstance } from 'fastify';
import { allKinds } from '../config/kinds/all.ts';
import { formatConfigError, type ConfigObject } from '../config/object.ts';
import { FileSource } from '../config/sources/file-source.ts';
import type { ConfigSink, ConfigSource } from '../config/sources/source.ts';
import { ConfigStore, mergeChanges, type ConfigChange, type ConfigSnapshot } from '../model/config-store.ts';
import { DEFAULT_MESH, type MeshConfig } from '../model/mesh.ts';
import { PushContext } from '../model/push-context.ts';
import { buildRegistry, type Registry } from '../model/service-registry.ts';
import { redactPrivateKeys } from '../proto/redact.ts';
import { jwksUris } from '../model/request-authentication.ts';
import { JwksResolver } from './jwks-resolver.ts';
import { decodeResource } from '../proto/encode.ts';
import { PUSH_ORDER, shortTypeName, TypeUrl } from '../proto/types.ts';
import { startMonitoring } from '../monitoring/http.ts';
import { createMetrics, queueTimer, recordPushContext, timeGeneration, type Metrics } from '../monitoring/metrics.ts';
import { systemClock, type Clock } from '../shared/clock.ts';
import { ErrorCode } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { MeshResourceProvider, type ProxyState } from '../xds/mesh-provider.ts';
import { AdsServer } from '../xds/protocol/server.ts';
import type { PushRequest } from '../xds/protocol/provider.ts';
import { Debouncer } from '../xds/push/debounce.ts';
import { PushQueue } from '../xds/push/push-queue.ts';
import { planPush } from './push-planner.ts';
import { ConfigStatusTracker, type StatusSink, type StatusWriterOptions } from './config-status.ts';
import { startCa, type CaRuntime, type CaRuntimeOptions } from '../ca/runtime.ts';
import { resolveInjectorConfig } from '../webhook/inject.ts';
import type { InjectorConfig, InjectorConfigInput, ProxyConfigJson } from '../webhook/injector-config.ts';
import { startWebhookServer, type WebhookServer } from '../webhook/server.ts';
import { defaultNewStreamRate, xdsServerOptions } from './xds-connection-limits.ts';

export const VERSION = '0.1.0';
/** This control plane instance as istioctl's ISTIOD column names it (the pod name in a cluster). */
const CONTROL_PLANE = `mizzen-${os.hostname()}`;

export interface ServeOptions {
  configDir?: string;
  /** A source to use instead of the config folder (tests). */
  source?: ConfigSource;
  host: string;
  xdsPort: number;
  monitoringPort: number;
  log: Logger;
  mesh?: Partial<MeshConfig>;
  debounceAfterMs?: number;
  debounceMaxMs?: number;
  clock?: Clock;
  /** Unflushed response bytes across all streams before responses wait their turn (default 32 MiB). */
  sendBudgetBytes?: number;
  /** A stream that has flushed nothing for this long no longer holds back others' pushes (default 2 s). */
  stuckAfterMs?: number;
  /** A stream that has flushed nothing for this long is ended with UNAVAILABLE (default 30 s). */
  sendTimeoutMs?: number;
  /**
   * New xDS streams admitted per second; excess streams wait up to 1 s, then get RESOURCE_EXHAUSTED (istiod's
   * PILOT_MAX_REQUESTS_PER_SECOND). Default min(15 + 5 × cores, 100), as istiod; 0 = unlimited.
   */
  maxNewStreamsPerSecond?: number;
  /** xDS connections get a GOAWAY after this age, ±10 % (default 30 min, as istiod's chart; 0 = never). */
  maxConnectionAgeMs?: number;
  /** After that GOAWAY, how long the connection's streams have before it is closed (default 10 s, as istiod). */
  maxConnectionAgeGraceMs?: number;
  /** Check every generated resource against Envoy's schema and validation rules (tests, debugging). */
  verifyXds?: boolean;
  /** The CA and the TLS port (ADS + IstioCertificateService); absent = no TLS server. */
  ca?: Omit<CaRuntimeOptions, 'log' | 'registry'>;
  /** TLS port for ADS and the CA (default 15012; 0 = any free port). */
  secureXdsPort?: number;
  /** The sidecar injection webhook's HTTPS port (default 15017; 0 = any free port); served when the CA runs. */
  webhookPort?: number;
  /**
   * Where per-object config status is written, off the push path (kube mode: the objects' `status`; tests: a
   * MemoryStatusSink). None by default: /debug/config_status computes it on request.
   */
  statusSink?: StatusSink;
  statusWriter?: StatusWriterOptions;
  /**
   * Copies of the trust bundle kept outside the process (kube mode: the istio-ca-root-cert ConfigMaps and the webhooks'
   * caBundle), started once the CA is up and told of every root change.
   */
  trustBundleWriters?: (rootsPem: string) => TrustBundleWriters;
  /** The injector's settings (images, control-plane addresses, policy) as installed (`serve --inject-dir`). */
  injector?: InjectorConfigInput;
  /** Only the holder of this election writes status (kube mode: a Lease among replicas). */
  statusElection?: Election;
}

export interface Election {
  readonly isLeader: boolean;
  onChange(cb: (leader: boolean) => void): () => void;
  start(): void;
  stop(): Promise<void>;
}

export interface TrustBundleWriters {
  setRoots(rootsPem: string): void;
  stop(): Promise<void>;
}

export class MizzenServer {
  readonly store = new ConfigStore();
  readonly metrics: Metrics;
  /** Replaced as a whole by updateMesh (the mesh config file changed); never mutated in place. */
  mesh: MeshConfig;
  private readonly o: ServeOptions;
  private readonly log: Logger;
  private provider!: MeshResourceProvider;
  private ads!: AdsServer<ProxyState>;
  private readonly queue = new PushQueue();
  private readonly queued: ReturnType<typeof queueTimer>;
  private debouncer!: Debouncer<ConfigChange>;
  private grpcServer: grpc.Server | undefined;
  private secureServer: grpc.Server | undefined;
  private webhook: WebhookServer | undefined;
  private trustWriters: TrustBundleWriters | undefined;
  webhookPort = 0;
  ca: CaRuntime | undefined;
  private monitoring: FastifyInstance | undefined;
  private source: ConfigSource | undefined;
  private pushCounter = 0;
  private currentVersion = '';
  private isReady = false;
  private lastPush: { version: string; reason: string; at: string; proxies: number } | undefined;
  readonly rejected = new Map<string, string[]>();
  /** Per config object: which proxies ACKed, are pending, or NACKed a version including it (/debug/config_status). */
  readonly configStatus: ConfigStatusTracker;
  xdsPort = 0;
  secureXdsPort = 0;
  monitoringPort = 0;

  constructor(options: ServeOptions) {
    this.o = options;
    this.log = options.log;
    this.jwks = new JwksResolver({
      log: this.log.child({ scope: 'jwks' }),
      onChange: () => {
        if (this.isReady) this.debouncer.add({ keys: new Set(['RequestAuthentication/jwks']), kinds: new Set(['RequestAuthentication']) });
      },
    });
    this.mesh = { ...DEFAULT_MESH, ...(options.mesh ?? {}) };
    this.metrics = createMetrics(VERSION);
    this.queued = queueTimer(this.metrics.proxyQueueTime);
    this.configStatus = new ConfigStatusTracker({
      kinds: allKinds.all().filter((d) => d.group.endsWith('istio.io')).map((d) => d.kind),
      ...(options.statusSink ? { sink: options.statusSink } : {}),
      writer: {
        ...options.statusWriter,
        ...(options.statusElection ? { isLeader: () => options.statusElection!.isLeader } : {}),
        log: this.log.child({ scope: 'status' }),
      },
    });
  }

  private nextVersion(): string {
    // istiod's format: RFC 3339 time + "/" + counter.
    return `${new Date().toISOString()}/${++this.pushCounter}`;
  }

  async start(): Promise<void> {
    const clock = this.o.clock ?? systemClock;
    this.debouncer = new Debouncer<ConfigChange>({
      quietMs: this.o.debounceAfterMs ?? 100,
      maxMs: this.o.debounceMaxMs ?? 10_000,
      clock,
      merge: mergeChanges,
      release: (change, firstAt) => this.release(change, firstAt),
      onError: (err) => this.log.error({ code: ErrorCode.Internal, err }, 'push failed'),
    });

    let synced!: () => void;
    const initialSync = new Promise<void>((resolve) => (synced = resolve));
    const sink = this.sink(() => synced());
    this.source = this.o.source ?? new FileSource({ dir: this.o.configDir ?? '.', kinds: allKinds, log: this.log.child({ scope: 'config' }) });
    await this.source.start(sink);
    await initialSync;

    // The first push context is built before any proxy can connect: no proxy ever gets an empty config.
    this.currentVersion = this.nextVersion();
    const initial = this.store.snapshot();
    this.configStatus.recordPush(this.currentVersion, initial);
    this.provider = new MeshResourceProvider(this.buildPushContext(initial, buildRegistry(initial, this.mesh)), this.log.child({ scope: 'xds' }), () => this.metrics.internalErrors.inc(), { verify: this.o.verifyXds ?? false });
    this.ads = new AdsServer<ProxyState>({
      provider: timeGeneration(this.provider, this.metrics.pushTime),
      log: this.log.child({ scope: 'ads' }),
      controlPlaneId: `mizzen-${VERSION}`,
      typeOrder: PUSH_ORDER,
      currentVersion: () => this.currentVersion,
      observer: this.observer(),
      ...(this.o.sendBudgetBytes ? { sendBudgetBytes: this.o.sendBudgetBytes } : {}),
      ...(this.o.stuckAfterMs ? { stuckAfterMs: this.o.stuckAfterMs } : {}),
      ...(this.o.sendTimeoutMs ? { sendTimeoutMs: this.o.sendTimeoutMs } : {}),
      maxNewStreamsPerSecond: this.o.maxNewStreamsPerSecond ?? defaultNewStreamRate(),
    });
    const grpcOptions = xdsServerOptions({ maxConnectionAgeMs: this.o.maxConnectionAgeMs, maxConnectionAgeGraceMs: this.o.maxConnectionAgeGraceMs });
    this.grpcServer = new grpc.Server(grpcOptions);
    this.ads.register(this.grpcServer);
    this.xdsPort = await new Promise<number>((resolve, reject) =>
      this.grpcServer!.bindAsync(`${this.o.host}:${this.o.xdsPort}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    if (this.o.ca) {
      // 15012: the CA (IstioCertificateService) and the same ADS, over TLS with a serving certificate from our own CA.
      // Client certificates are requested but optional (istiod's VerifyClientCertIfGiven): workloads authenticate with
      // a token or their current certificate, CSRs and ADS streams alike. A grpc.Server of its own, so the plaintext
      // 15010 never reaches the CA.
      const ca = await startCa({ ...this.o.ca, log: this.log, registry: this.metrics.registry });
      this.ca = ca;
      this.secureServer = new grpc.Server(grpcOptions);
      ca.service.register(this.secureServer);
      this.ads.register(this.secureServer, (call) => ca.service.authenticateStream(call));
      this.secureXdsPort = await new Promise<number>((resolve, reject) =>
        this.secureServer!.bindAsync(`${this.o.host}:${this.o.secureXdsPort ?? 15012}`, ca.credentials(), (err, port) => (err ? reject(err) : resolve(port))),
      );
      // 15017: the injection webhook over HTTPS, with the same serving certificate (renewed with it).
      this.webhook = await startWebhookServer({
        host: this.o.host,
        port: this.o.webhookPort ?? 15017,
        tls: { getCertificate: () => ({ key: ca.serving.current.key, cert: ca.serving.current.certChain }) },
        registry: this.metrics.registry,
        // The installed injector settings win; the mesh's trust domain and proxy defaults (discoveryAddress…) apply.
        config: () => this.injectorConfig(),
        log: this.log.child({ scope: 'webhook' }),
      });
      this.webhookPort = this.webhook.port;
      if (this.o.trustBundleWriters) {
        const roots = () => ca.ca.trustBundle().join('');
        const writers = this.o.trustBundleWriters(roots());
        const unsubscribe = ca.ca.onChange(() => writers.setRoots(roots()));
        this.trustWriters = { setRoots: (pem) => writers.setRoots(pem), stop: async () => (unsubscribe(), await writers.stop()) };
      }
    }
    if (this.o.statusElection) {
      // A new leader writes every current status: what the previous one left may be stale.
      this.o.statusElection.onChange((leader) => leader && this.configStatus.writer?.markDirty());
      this.o.statusElection.start();
    }
    this.isReady = true;
    this.metrics.startupDuration.set(process.uptime());
    this.monitoring = await startMonitoring({ host: this.o.host, port: this.o.monitoringPort, metrics: this.metrics, debug: this.debugSource() });
    const addr = this.monitoring.server.address();
    this.monitoringPort = typeof addr === 'object' && addr ? addr.port : this.o.monitoringPort;
    this.log.info({ xds: this.xdsPort, secureXds: this.secureXdsPort || undefined, webhook: this.webhookPort || undefined, monitoring: this.monitoringPort, objects: this.store.count() }, 'mizzen is serving');
  }

  private sink(onSynced: () => void): ConfigSink {
    const changed = (kind: string, ns: string, name: string) => {
      this.metrics.inboundUpdates.inc({ type: 'config' });
      if (this.isReady) this.debouncer.add({ keys: new Set([`${kind}/${ns}/${name}`]), kinds: new Set([kind]) });
    };
    return {
      upsert: (obj: ConfigObject) => {
        const key = `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`;
        this.rejected.delete(key);
        if (this.store.upsert(obj)) changed(obj.kind, obj.metadata.namespace, obj.metadata.name);
      },
      delete: (kind, ns, name) => {
        this.rejected.delete(`${kind}/${ns}/${name}`);
        if (this.store.delete(kind, ns, name)) changed(kind, ns, name);
      },
      rejected: (e) => {
        const lines = formatConfigError(e);
        this.rejected.set(`${e.kind}/${e.namespace ?? ''}/${e.name ?? e.source?.file ?? ''}`, lines);
        this.metrics.configRejected.inc({ kind: e.kind });
        const code = e.kind === 'YAML' ? ErrorCode.ConfigParse : e.errors.some((f) => f.path === 'apiVersion') ? (e.errors[0]!.message.startsWith('unknown kind') ? ErrorCode.ConfigUnknownKind : ErrorCode.ConfigUnsupportedVersion) : ErrorCode.ConfigInvalid;
        for (const line of lines) {
          this.log.error({ code, kind: e.kind, namespace: e.namespace, name: e.name, file: e.source?.file, line: e.source?.line }, `config refused: ${line}`);
        }
      },
      synced: onSynced,
    };
  }

  /**
   * A new mesh config (the mounted mesh ConfigMap changed): every resource may depend on it, so a full push. The trust
   * domain is kept: certificates already issued name it, and the CA signs with it (changing it takes a restart).
   */
  updateMesh(mesh: Partial<MeshConfig>): void {
    const trustDomain = this.mesh.trustDomain;
    if (mesh.trustDomain !== undefined && mesh.trustDomain !== trustDomain) {
      this.log.warn({ trustDomain, requested: mesh.trustDomain }, 'the mesh config changes trustDomain: that takes a restart; keeping the current one');
    }
    this.mesh = { ...DEFAULT_MESH, ...mesh, trustDomain };
    if (this.isReady) this.debouncer.add({ keys: new Set(['MeshConfig/mesh']), kinds: new Set(['MeshConfig']) });
  }

  /** JWKS for RequestAuthentication jwksUri: fetched here, inlined into proxies; a change is a full push. */
  private readonly jwks: JwksResolver;

  private buildPushContext(snapshot: ConfigSnapshot, registry: Registry): PushContext {
    const t0 = performance.now();
    const push = new PushContext(snapshot, this.mesh, registry, { jwks: this.jwks.current });
    this.jwks.sync(jwksUris(push));
    this.metrics.pushContextInit.observe((performance.now() - t0) / 1000);
    recordPushContext(this.metrics, push);
    return push;
  }

  /** A debounced batch of changes: build the new snapshot and push what it changed. */
  private async release(change: ConfigChange, firstAt: number): Promise<void> {
    this.metrics.debounceTime.observe((Date.now() - firstAt) / 1000);
    const prev = this.provider.pushContext;
    const snapshot = this.store.snapshot();
    const registry = buildRegistry(snapshot, this.mesh);
    const plan = planPush(prev, registry, change);
    const push = this.buildPushContext(snapshot, registry);
    if ('none' in plan) {
      // Registry-only objects changed without changing any service or endpoint (e.g. a Pod's annotations).
      this.provider.update(push, new Set());
      this.configStatus.recordPush(this.currentVersion, snapshot, change.keys);
      return;
    }
    const version = this.nextVersion();
    this.currentVersion = version;
    this.configStatus.recordPush(version, snapshot, change.keys);
    let req: PushRequest;
    if (plan.full) {
      this.provider.update(push);
      req = { version, start: firstAt, full: true };
      this.metrics.pushTriggers.inc({ type: 'config' });
    } else {
      this.provider.update(push, plan.edsClusters);
      req = { version, start: firstAt, full: false, names: new Map([[TypeUrl.ClusterLoadAssignment, plan.edsClusters]]) };
      this.metrics.pushTriggers.inc({ type: 'endpoint' });
    }
    this.lastPush = { version, reason: plan.reason, at: new Date().toISOString(), proxies: this.ads.connections.size };
    this.log.info({ version, reason: plan.reason, full: plan.full, objects: change.keys.size, proxies: this.ads.connections.size }, 'push');
    await this.queue.enqueue(this.queued(this.ads.connections), req);
  }

  private observer() {
    const m = this.metrics;
    const status = this.configStatus;
    return {
      connected: () => m.xdsClients.inc({ version: VERSION }),
      disconnected: (id: string) => {
        m.xdsClients.dec({ version: VERSION });
        status.disconnected(id);
      },
      sent: (typeUrl: string, _n: number, bytes: number, id: string, version: string | undefined) => {
        m.xdsPushes.inc({ type: shortTypeName(typeUrl) });
        m.configSize.observe({ type: shortTypeName(typeUrl) }, bytes);
        status.sent(id, typeUrl, version);
      },
      acked: (typeUrl: string, _ms: number | undefined, id: string) => status.acked(id, typeUrl),
      nacked: (id: string, typeUrl: string, message: string) => {
        m.xdsRejects.inc({ type: shortTypeName(typeUrl) });
        status.nacked(id, typeUrl, message);
      },
      expiredNonce: (typeUrl: string) => m.expiredNonce.inc({ type: shortTypeName(typeUrl) }),
      pushed: (id: string, ms: number, version: string) => {
        m.convergence.observe(ms / 1000);
        status.pushed(id, version);
      },
      error: () => m.internalErrors.inc(),
      admitted: (waitedMs: number) => {
        m.streamsAdmitted.inc();
        m.admissionWait.observe(waitedMs / 1000);
      },
      throttled: () => m.streamsThrottled.inc(),
      awaitingAdmission: (n: number) => m.streamsAwaitingAdmission.set(n),
    };
  }

  private debugSource() {
    return {
      ready: () => this.isReady,
      version: VERSION,
      syncz: () =>
        [...this.ads.connections].map((c) => ({
          ...c.status(),
          // What istioctl proxy-status shows beside the per-type state: the proxy's cluster and version, and us.
          clusterId: typeof c.node?.metadata.CLUSTER_ID === 'string' ? c.node.metadata.CLUSTER_ID : undefined,
          proxyVersion: typeof c.node?.metadata.ISTIO_VERSION === 'string' ? c.node.metadata.ISTIO_VERSION : undefined,
          controlPlane: CONTROL_PLANE,
        })),
      configStatus: (filter?: { kind?: string; namespace?: string; name?: string }) => this.configStatus.report(filter),
      connections: () => [...this.ads.connections].map((c) => ({ id: c.id, node: c.node?.id, mode: c.mode, peer: c.peer })),
      configDump: (proxyId: string, types?: string[]) => {
        const conn = [...this.ads.connections].find((c) => c.id.includes(proxyId));
        if (!conn || !conn.proxy) return undefined;
        const out: Record<string, unknown> = { proxy: conn.id, node: conn.node?.id };
        for (const w of conn.watches.values()) {
          const short = shortTypeName(w.typeUrl);
          if (types && !types.includes(short)) continue;
          const set = this.provider.resources(conn.proxy, conn.subscription(w));
          out[short] = [...set.resources.values()].map((r) => redactPrivateKeys(decodeResource(w.typeUrl, r.bytes)));
        }
        return out;
      },
      configz: () => ({ objects: this.store.count(), rejected: Object.fromEntries(this.rejected) }),
      mesh: () => this.mesh,
      registryz: () => this.provider.pushContext.registry.services,
      memz: () => {
        const mb = (n: number) => Math.round(n / 1048576);
        const m = process.memoryUsage();
        return {
          processMB: { rss: mb(m.rss), heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) },
          heapSpacesMB: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, mb(s.space_used_size)])),
          send: this.ads.sendStats(),
          admission: this.ads.admissionStats() ?? 'unlimited',
          cache: this.provider.cacheStats(),
        };
      },
      pushStatus: () => ({ version: this.currentVersion, lastPush: this.lastPush, cache: this.provider.cacheStats(), leftOut: this.provider.currentNotes() }),
    };
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** Resources that failed to generate since start (should stay 0; tests assert it). */
  generationErrors(): number {
    return this.provider?.generationErrors ?? 0;
  }

  /** What the injection webhook injects: the installed injector settings over the mesh's trust domain and proxy defaults. */
  injectorConfig(): InjectorConfig {
    return resolveInjectorConfig({
      ...this.o.injector,
      mesh: { trustDomain: this.o.ca?.trustDomain ?? this.mesh.trustDomain, defaultConfig: this.mesh.defaultConfig as ProxyConfigJson, ...this.o.injector?.mesh },
      values: { proxyImage: `mizzen/proxy:${VERSION}`, ...this.o.injector?.values },
    });
  }

  /** Config versions built so far (one per push that changed config); for tests and debugging. */
  pushCount(): number {
    return this.pushCounter;
  }

  connectionCount(): number {
    return this.ads?.connections.size ?? 0;
  }

  async stop(): Promise<void> {
    this.debouncer?.stop();
    this.jwks.stop();
    this.configStatus.stop();
    await this.o.statusElection?.stop();
    await this.source?.stop();
    await this.trustWriters?.stop();
    this.ads?.closeAll();
    await this.monitoring?.close();
    await this.webhook?.close();
    this.ca?.stop();
    // Graceful for up to 5 s, then forced: a client that never lets go must not hold shutdown forever.
    await Promise.all(
      [this.grpcServer, this.secureServer].map(async (server) => {
        if (!server) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5000);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        server.forceShutdown();
      }),
    );
  }
}
