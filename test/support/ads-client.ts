/**
 * A raw ADS test client on @grpc/grpc-js (no grpc-js-xds): it speaks StreamAggregatedResources (SotW) or
 * DeltaAggregatedResources (Delta) with the wire codec from src/xds/protocol/messages.ts, queues every response, and
 * lets a test send exactly the requests it wants (ACKs, NACKs, stale nonces, subscription changes, bad nodes).
 */
import * as grpc from '@grpc/grpc-js';
import { decodeResource } from '../../src/proto/encode.ts';
import { adsService } from '../../src/xds/protocol/server.ts';
import { clientCodec, jsonToStruct, type DeltaDiscoveryRequest, type DiscoveryRequest } from '../../src/xds/protocol/messages.ts';

export type AdsMode = 'sotw' | 'delta';

const identity = (b: Buffer): Buffer => b;
const serviceDefinition = adsService(identity, identity);

const AdsGenericClient = grpc.makeGenericClientConstructor(serviceDefinition, 'AggregatedDiscoveryService');

export interface AdsNodeSpec {
  /** A full node id; overrides pod/namespace/ip (for malformed-id tests). */
  id?: string;
  pod?: string;
  namespace?: string;
  ip?: string;
  labels?: Record<string, string>;
  /** Extra metadata merged over {GENERATOR, NAMESPACE, LABELS}. */
  metadata?: Record<string, unknown>;
  /** `envoy`: an Envoy sidecar or gateway (no GENERATOR metadata); default `grpc` (proxyless). */
  kind?: 'grpc' | 'envoy';
  /** Node id proxy type (`router` for gateways). */
  type?: 'sidecar' | 'router';
}

/** The secure port (15012): the server's root, and the workload's token and/or client certificate. */
export interface AdsTls {
  rootPem: string;
  serverName?: string;
  token?: string;
  keyPem?: string;
  certChainPem?: string;
}

export interface AdsNode {
  id: string;
  cluster: string;
  metadata: { fields: Record<string, unknown> };
}

export function adsNode(spec: AdsNodeSpec = {}): AdsNode {
  const ns = spec.namespace ?? 'default';
  const ip = spec.ip ?? '127.0.0.1';
  const pod = spec.pod ?? 'ads-client';
  return {
    id: spec.id ?? `${spec.type ?? 'sidecar'}~${ip}~${pod}.${ns}~${ns}.svc.cluster.local`,
    cluster: pod,
    metadata: jsonToStruct({ ...(spec.kind === 'envoy' ? {} : { GENERATOR: 'grpc' }), NAMESPACE: ns, LABELS: spec.labels ?? {}, ...(spec.metadata ?? {}) }),
  };
}

export interface AdsResource {
  name: string;
  /** The per-resource version (Delta only; '' in SotW). */
  version: string;
  /** The resource decoded to Envoy's JSON form. */
  body: Record<string, unknown>;
}

/** A response of either protocol, normalized. */
export interface AdsResponse {
  mode: AdsMode;
  typeUrl: string;
  nonce: string;
  /** version_info (SotW) or system_version_info (Delta). */
  version: string;
  resources: AdsResource[];
  /** Resource names, sorted. */
  names: string[];
  /** removed_resources, sorted (always [] in SotW). */
  removed: string[];
}

/** The name of a decoded resource (Listener/Cluster/RouteConfiguration: name; ClusterLoadAssignment: cluster_name). */
export function resourceName(body: Record<string, unknown>): string {
  const n = body.name ?? body.cluster_name ?? body.clusterName;
  return typeof n === 'string' ? n : '';
}

/** `node: null` sends the request without a node even when it is the stream's first. */
type SotwRequest = Partial<Omit<DiscoveryRequest, 'node'>> & { node?: AdsNode | null };
type DeltaRequest = Partial<Omit<DeltaDiscoveryRequest, 'node'>> & { node?: AdsNode | null };

interface Waiter {
  typeUrl: string | undefined;
  resolve: (r: AdsResponse) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class AdsClient {
  readonly mode: AdsMode;
  readonly node: AdsNode;
  /** Resolves with the gRPC status when the stream ends (for any reason). */
  readonly ended: Promise<grpc.StatusObject>;
  /** Every response received, in order (including those already taken by next()). */
  readonly received: AdsResponse[] = [];
  private readonly client: InstanceType<typeof AdsGenericClient>;
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  private readonly queue: AdsResponse[] = [];
  private readonly waiters: Waiter[] = [];
  private nodeSent = false;
  private status: grpc.StatusObject | undefined;
  private failure: Error | undefined;
  /** SotW bookkeeping per type: the names this client watches, the last nonce received, the last version ACKed. */
  private readonly names = new Map<string, string[]>();
  private readonly lastNonce = new Map<string, string>();
  private readonly ackedVersion = new Map<string, string>();

  constructor(mode: AdsMode, port: number, node: AdsNodeSpec = {}, tls?: AdsTls) {
    this.mode = mode;
    this.node = adsNode(node);
    const creds = tls
      ? grpc.credentials.createSsl(Buffer.from(tls.rootPem), tls.keyPem ? Buffer.from(tls.keyPem) : null, tls.certChainPem ? Buffer.from(tls.certChainPem) : null)
      : grpc.credentials.createInsecure();
    const options = tls ? { 'grpc.ssl_target_name_override': tls.serverName ?? 'istiod.istio-system.svc', 'grpc.default_authority': tls.serverName ?? 'istiod.istio-system.svc' } : {};
    this.client = new AdsGenericClient(`127.0.0.1:${port}`, creds, options);
    const method = mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources';
    const start = this.client[method] as (this: grpc.Client, metadata?: grpc.Metadata) => grpc.ClientDuplexStream<Buffer, Buffer>;
    const md = new grpc.Metadata();
    if (tls?.token) md.set('authorization', `Bearer ${tls.token}`);
    this.call = start.call(this.client, md);
    this.call.on('data', (buf: Buffer) => this.onData(buf));
    // A non-OK status is also emitted as 'error'; it is reported through `ended`.
    this.call.on('error', () => {});
    this.ended = new Promise((resolve) => {
      this.call.on('status', (s: grpc.StatusObject) => {
        this.status = s;
        this.failAll(new Error(`stream ended: ${grpc.status[s.code]} ${s.details}`));
        resolve(s);
      });
    });
  }

  get nodeId(): string {
    return this.node.id;
  }

  /** The gRPC status, once the stream has ended. */
  get endedWith(): grpc.StatusObject | undefined {
    return this.status;
  }

  private onData(buf: Buffer): void {
    let r: AdsResponse;
    try {
      r = this.mode === 'sotw' ? decodeSotw(buf) : decodeDelta(buf);
    } catch (err) {
      this.failAll(new Error(`undecodable response: ${String(err)}`));
      return;
    }
    this.received.push(r);
    this.lastNonce.set(r.typeUrl, r.nonce);
    const i = this.waiters.findIndex((w) => w.typeUrl === undefined || w.typeUrl === r.typeUrl);
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w!.timer);
      w!.resolve(r);
    } else {
      this.queue.push(r);
    }
  }

  private failAll(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  /** Sends a raw SotW request. The node goes on the first request unless one is given. */
  sendSotw(req: SotwRequest): void {
    if (this.mode !== 'sotw') throw new Error('sendSotw on a delta client');
    const msg: SotwRequest = { ...req };
    if (!this.nodeSent && msg.node === undefined) msg.node = this.node;
    if (msg.node === null) delete msg.node;
    this.nodeSent = true;
    this.call.write(clientCodec.encodeRequest(msg as Parameters<typeof clientCodec.encodeRequest>[0]));
  }

  /** Sends a raw Delta request. The node goes on the first request unless one is given. */
  sendDelta(req: DeltaRequest): void {
    if (this.mode !== 'delta') throw new Error('sendDelta on a sotw client');
    const msg: DeltaRequest = { ...req };
    if (!this.nodeSent && msg.node === undefined) msg.node = this.node;
    if (msg.node === null) delete msg.node;
    this.nodeSent = true;
    this.call.write(clientCodec.encodeDeltaRequest(msg as Parameters<typeof clientCodec.encodeDeltaRequest>[0]));
  }

  /**
   * Adds names to a type's subscription (an empty list on a new watch is the legacy wildcard for LDS/CDS).
   * SotW: sends the whole name list, with the last nonce and ACKed version of that type, as Envoy does.
   * Delta: sends resource_names_subscribe.
   */
  subscribe(typeUrl: string, names: string[] = [], extra: { initialVersions?: Record<string, string>; versionInfo?: string } = {}): void {
    if (this.mode === 'delta') {
      this.sendDelta({
        type_url: typeUrl,
        resource_names_subscribe: names,
        ...(extra.initialVersions ? { initial_resource_versions: extra.initialVersions } : {}),
      });
      return;
    }
    const current = this.names.get(typeUrl) ?? [];
    const next = [...current, ...names.filter((n) => !current.includes(n))];
    this.setNames(typeUrl, next, extra.versionInfo);
  }

  /** Removes names from a type's subscription. */
  unsubscribe(typeUrl: string, names: string[]): void {
    if (this.mode === 'delta') {
      this.sendDelta({ type_url: typeUrl, resource_names_unsubscribe: names });
      return;
    }
    this.setNames(
      typeUrl,
      (this.names.get(typeUrl) ?? []).filter((n) => !names.includes(n)),
    );
  }

  /** SotW: sets a type's whole name list and sends it (with the last nonce received and the last version ACKed). */
  setNames(typeUrl: string, names: string[], versionInfo?: string): void {
    this.names.set(typeUrl, names);
    this.sendSotw({
      type_url: typeUrl,
      resource_names: names,
      version_info: versionInfo ?? this.ackedVersion.get(typeUrl) ?? '',
      response_nonce: this.lastNonce.get(typeUrl) ?? '',
    });
  }

  /** ACKs a response. */
  ack(r: AdsResponse): void {
    if (this.mode === 'delta') {
      this.sendDelta({ type_url: r.typeUrl, response_nonce: r.nonce });
      return;
    }
    this.ackedVersion.set(r.typeUrl, r.version);
    this.sendSotw({ type_url: r.typeUrl, version_info: r.version, response_nonce: r.nonce, resource_names: this.names.get(r.typeUrl) ?? [] });
  }

  /** NACKs a response (error_detail set, the rejected nonce, and in SotW the last version ACKed). */
  nack(r: AdsResponse, message = 'rejected by the test client'): void {
    const error_detail = { code: grpc.status.INVALID_ARGUMENT, message };
    if (this.mode === 'delta') {
      this.sendDelta({ type_url: r.typeUrl, response_nonce: r.nonce, error_detail });
      return;
    }
    this.sendSotw({
      type_url: r.typeUrl,
      version_info: this.ackedVersion.get(r.typeUrl) ?? '',
      response_nonce: r.nonce,
      resource_names: this.names.get(r.typeUrl) ?? [],
      error_detail,
    });
  }

  /** The next response (of `typeUrl`, when given; responses of other types stay queued). */
  next(typeUrl?: string, timeoutMs = 5000): Promise<AdsResponse> {
    const i = this.queue.findIndex((r) => typeUrl === undefined || r.typeUrl === typeUrl);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        typeUrl,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          const queued = this.queue.map((r) => `${short(r.typeUrl)}[${r.names.join(',')}]`).join(' ');
          reject(new Error(`no ${typeUrl ? short(typeUrl) : 'xDS'} response within ${timeoutMs} ms (${this.nodeId}; queued: ${queued || 'none'})`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Fetches: subscribe then wait for the response. */
  async fetch(typeUrl: string, names: string[] = [], timeoutMs = 5000): Promise<AdsResponse> {
    this.subscribe(typeUrl, names);
    return this.next(typeUrl, timeoutMs);
  }

  /** Waits `ms` and fails if any response (of `typeUrl`, when given) arrived or was still queued. */
  async expectNone(ms = 300, typeUrl?: string): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const extra = this.queue.filter((r) => typeUrl === undefined || r.typeUrl === typeUrl);
    if (extra.length > 0) {
      const what = extra.map((r) => `${short(r.typeUrl)} nonce=${r.nonce} resources=[${r.names.join(',')}] removed=[${r.removed.join(',')}]`);
      throw new Error(`expected no response, got ${extra.length}: ${what.join('; ')}`);
    }
  }

  /** Responses queued and not yet taken. */
  pending(): AdsResponse[] {
    return [...this.queue];
  }

  close(): void {
    this.failAll(new Error('client closed'));
    if (!this.status) this.call.cancel();
    this.client.close();
  }
}

function short(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

function decodeSotw(buf: Buffer): AdsResponse {
  const m = clientCodec.decodeResponse(buf);
  const resources = (m.resources ?? []).map((any) => {
    const body = decodeResource(any.type_url || m.type_url, any.value);
    return { name: resourceName(body), version: '', body };
  });
  return {
    mode: 'sotw',
    typeUrl: m.type_url,
    nonce: m.nonce,
    version: m.version_info,
    resources,
    names: resources.map((r) => r.name).sort(),
    removed: [],
  };
}

function decodeDelta(buf: Buffer): AdsResponse {
  const m = clientCodec.decodeDeltaResponse(buf);
  const resources = (m.resources ?? []).map((r) => ({
    name: r.name,
    version: r.version,
    body: r.resource ? decodeResource(r.resource.type_url || m.type_url, r.resource.value) : {},
  }));
  return {
    mode: 'delta',
    typeUrl: m.type_url,
    nonce: m.nonce,
    version: m.system_version_info,
    resources,
    names: resources.map((r) => r.name).sort(),
    removed: [...(m.removed_resources ?? [])].sort(),
  };
}
