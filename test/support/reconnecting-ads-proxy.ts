/**
 * A raw ADS proxy that behaves like Envoy when its control plane goes away. It follows Envoy's subscription sequence
 * (CDS and LDS wildcard, then EDS for the EDS clusters and RDS for the route configurations the listeners name), ACKs
 * every response, and when its stream ends it keeps the config it holds (Envoy goes on serving from it) and reconnects
 * with jittered exponential backoff, telling the new server what it holds: SotW its last accepted version_info, Delta
 * the initial_resource_versions of every resource (xDS protocol, "Reconnect").
 *
 * It records what a failover test checks: each stream and when it was synced (every watched type answered on it and
 * every watched name held), a digest of every resource's bytes (versions and nonces differ between replicas, the
 * bytes must not), and every resource that was removed or emptied on the way: a replica that answers a reconnecting
 * proxy before it has its config, or with part of it, shows up there.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { decodeResource } from '../../src/proto/encode.ts';
import { ensureType } from '../../src/proto/root.ts';
import { shortTypeName, TypeUrl } from '../../src/proto/types.ts';
import { clientCodec } from '../../src/xds/protocol/messages.ts';
import { adsService } from '../../src/xds/protocol/server.ts';
import { adsNode, resourceName, type AdsMode, type AdsNode, type AdsNodeSpec } from './ads-client.ts';

const { Cluster: CDS, ClusterLoadAssignment: EDS, Listener: LDS, RouteConfiguration: RDS } = TypeUrl;
/** Envoy's order: clusters before their endpoints, listeners before their routes. */
const TYPES = [CDS, EDS, LDS, RDS] as const;
const WILDCARD: ReadonlySet<string> = new Set([CDS, LDS]);
/** The named type whose subscription a wildcard type's resources decide. */
const DEPENDENT: Readonly<Record<string, string>> = { [CDS]: EDS, [LDS]: RDS };

const identity = (b: Buffer): Buffer => b;
const AdsGrpcClient = grpc.makeGenericClientConstructor(adsService(identity, identity), 'AggregatedDiscoveryService');
type AdsMethod = (this: grpc.Client) => grpc.ClientDuplexStream<Buffer, Buffer>;

export interface HeldResource {
  /** Delta: the server's per-resource version; SotW: ''. */
  version: string;
  /** sha256 of the resource's encoded bytes. */
  digest: string;
  body: Record<string, any>;
}

/** Type (cds, eds, lds, rds) → resource name → digest of its bytes. */
export type ConfigDigest = Record<string, Record<string, string>>;

export interface ConfigEvent {
  at: number;
  stream: number;
  /** removed: a held resource was deleted by the server; emptied: an endpoint set lost all its endpoints;
   * empty: a whole-state (SotW CDS/LDS) response with no resources at all. */
  kind: 'removed' | 'emptied' | 'empty';
  type: string;
  name: string;
}

export interface StreamRecord {
  n: number;
  openedAt: number;
  /** When every watched type had been answered on this stream and every watched name was held. */
  syncedAt?: number;
  endedAt?: number;
  endStatus?: string;
  responses: number;
}

interface LiveStream {
  record: StreamRecord;
  client: grpc.Client;
  call: grpc.ClientDuplexStream<Buffer, Buffer>;
  nodeSent: boolean;
  answered: Set<string>;
  /** SotW: the last nonce received per type on this stream (a request must echo it to be current). */
  nonces: Map<string, string>;
}

interface Decoded {
  typeUrl: string;
  version: string;
  nonce: string;
  resources: Array<{ name: string; version: string; digest: string; body: Record<string, any> }>;
  removed: string[];
}

export interface ReconnectOptions {
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export class ReconnectingAdsProxy {
  readonly mode: AdsMode;
  readonly node: AdsNode;
  readonly streams: StreamRecord[] = [];
  readonly events: ConfigEvent[] = [];
  /** Responses this proxy could not decode (none expected). */
  readonly errors: string[] = [];
  private readonly port: number;
  private readonly backoff: Required<ReconnectOptions>;
  private readonly held = new Map<string, Map<string, HeldResource>>(TYPES.map((t) => [t, new Map()]));
  private readonly watched = new Map<string, Set<string>>([[EDS, new Set()], [RDS, new Set()]]);
  /** SotW: the version_info last accepted per type, sent again on reconnect as Envoy does. */
  private readonly accepted = new Map<string, string>();
  private stream: LiveStream | undefined;
  private attempt = 0;
  private lastResponseAt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(port: number, mode: AdsMode, node: AdsNodeSpec, options: ReconnectOptions = {}) {
    this.port = port;
    this.mode = mode;
    this.node = adsNode(node);
    this.backoff = { backoffBaseMs: options.backoffBaseMs ?? 200, backoffMaxMs: options.backoffMaxMs ?? 2_000 };
    this.connect();
  }

  get nodeId(): string {
    return this.node.id;
  }

  /** The current stream is open and has been synced (it may be in the middle of a later push). */
  get synced(): boolean {
    return this.stream?.record.syncedAt !== undefined && this.stream.record.endedAt === undefined;
  }

  /**
   * Synced, with every watched name held right now, and no response for `quietMs`: not in the middle of a push (CDS
   * of a new push with EDS, LDS and RDS of the previous one is a state every proxy passes through, not a config).
   */
  async waitSettled(timeoutMs: number, quietMs = 300): Promise<void> {
    const end = Date.now() + timeoutMs;
    await this.waitSynced(timeoutMs, 'synced');
    for (;;) {
      const s = this.stream;
      if (s && s.record.endedAt === undefined && this.isSynced(s) && Date.now() - this.lastResponseAt >= quietMs) return;
      if (Date.now() > end) throw new Error(`${this.nodeId} (${this.mode}) not settled within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The digest of everything held, by type. */
  digest(): ConfigDigest {
    const out: ConfigDigest = {};
    for (const [t, m] of this.held) out[shortTypeName(t)] = Object.fromEntries([...m].map(([name, r]) => [name, r.digest]).sort(([a], [b]) => a!.localeCompare(b!)));
    return out;
  }

  async waitSynced(timeoutMs: number, what = 'synced'): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.synced) {
      if (this.errors.length > 0) throw new Error(`${this.nodeId}: ${this.errors[0]}`);
      if (this.closed) throw new Error(`${this.nodeId}: closed before ${what}`);
      if (Date.now() > end) throw new Error(`${this.nodeId} (${this.mode}) not ${what} within ${timeoutMs} ms; streams: ${JSON.stringify(this.streams.slice(-3))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const s = this.stream;
    this.stream = undefined;
    if (s && s.record.endedAt === undefined) s.call.cancel();
    s?.client.close();
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (this.closed) return;
    // A local subchannel pool: one TCP connection per proxy, as each Envoy has its own (grpc-js would otherwise share
    // one connection between every client to the same address, and one reset would end them all together).
    const client = new AdsGrpcClient(`127.0.0.1:${this.port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const method = (client as unknown as Record<string, AdsMethod>)[this.mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources']!;
    const call = method.call(client);
    const record: StreamRecord = { n: this.streams.length + 1, openedAt: Date.now(), responses: 0 };
    this.streams.push(record);
    const s: LiveStream = { record, client, call, nodeSent: false, answered: new Set(), nonces: new Map() };
    this.stream = s;
    call.on('data', (buf: Buffer) => this.onResponse(s, buf));
    call.on('error', () => undefined); // reported through 'status'
    call.on('status', (st: grpc.StatusObject) => this.onEnd(s, st));
    // Every type watched before is asked for again, with what is held: the new server sends only what differs (Delta)
    // or everything (SotW), and never anything less than before.
    for (const t of TYPES) {
      const names = WILDCARD.has(t) ? [] : [...this.watched.get(t)!];
      if (!WILDCARD.has(t) && names.length === 0) continue;
      if (this.mode === 'sotw') this.send(s, { type_url: t, resource_names: names, version_info: this.accepted.get(t) ?? '', response_nonce: '' });
      else this.send(s, { type_url: t, resource_names_subscribe: names, initial_resource_versions: Object.fromEntries([...this.held.get(t)!].map(([n, r]) => [n, r.version])) });
    }
  }

  private send(s: LiveStream, req: Record<string, unknown>): void {
    if (s.record.endedAt !== undefined) return;
    const msg = s.nodeSent ? req : { ...req, node: this.node };
    s.nodeSent = true;
    s.call.write(this.mode === 'sotw' ? clientCodec.encodeRequest(msg as never) : clientCodec.encodeDeltaRequest(msg as never));
  }

  private onEnd(s: LiveStream, st: grpc.StatusObject): void {
    s.record.endedAt = Date.now();
    s.record.endStatus = `${grpc.status[st.code]} ${st.details}`;
    s.client.close();
    if (this.closed || this.stream !== s) return;
    this.stream = undefined;
    // A stream that got answers was a working connection: start the backoff over, as Envoy does.
    if (s.record.responses > 0) this.attempt = 0;
    const ceiling = Math.min(this.backoff.backoffMaxMs, this.backoff.backoffBaseMs * 2 ** this.attempt++);
    this.retryTimer = setTimeout(() => this.connect(), ceiling / 2 + Math.random() * (ceiling / 2));
  }

  private onResponse(s: LiveStream, buf: Buffer): void {
    if (this.stream !== s) return;
    let r: Decoded;
    try {
      r = this.mode === 'sotw' ? decodeSotw(buf) : decodeDelta(buf);
    } catch (err) {
      // Not ACKed, not applied: the test fails on it (waitSynced reports it) rather than the worker crashing.
      this.errors.push(`stream ${s.record.n}: undecodable response: ${String(err)}`);
      return;
    }
    s.record.responses++;
    this.lastResponseAt = Date.now();
    s.answered.add(r.typeUrl);
    this.apply(s, r);
    if (this.mode === 'sotw') {
      s.nonces.set(r.typeUrl, r.nonce);
      this.accepted.set(r.typeUrl, r.version);
      this.send(s, { type_url: r.typeUrl, version_info: r.version, response_nonce: r.nonce, resource_names: WILDCARD.has(r.typeUrl) ? [] : [...this.watched.get(r.typeUrl)!] });
    } else {
      this.send(s, { type_url: r.typeUrl, response_nonce: r.nonce });
    }
    const dependent = DEPENDENT[r.typeUrl];
    if (dependent) this.watch(s, dependent, dependent === EDS ? edsNames(this.held.get(CDS)!) : rdsNames(this.held.get(LDS)!));
    if (s.record.syncedAt === undefined && this.isSynced(s)) s.record.syncedAt = Date.now();
  }

  private apply(s: LiveStream, r: Decoded): void {
    const held = this.held.get(r.typeUrl);
    if (!held) return;
    const event = (kind: ConfigEvent['kind'], name: string) => this.events.push({ at: Date.now(), stream: s.record.n, kind, type: shortTypeName(r.typeUrl), name });
    const upsert = (x: Decoded['resources'][number]) => {
      const before = held.get(x.name);
      if (r.typeUrl === EDS && before && endpointCount(before.body) > 0 && endpointCount(x.body) === 0) event('emptied', x.name);
      held.set(x.name, { version: x.version, digest: x.digest, body: x.body });
    };
    if (this.mode === 'sotw' && WILDCARD.has(r.typeUrl)) {
      // A SotW CDS/LDS response is the whole state: what it leaves out is deleted.
      if (r.resources.length === 0) event('empty', '');
      const names = new Set(r.resources.map((x) => x.name));
      for (const name of [...held.keys()]) {
        if (names.has(name)) continue;
        held.delete(name);
        event('removed', name);
      }
      r.resources.forEach(upsert);
      return;
    }
    // SotW EDS/RDS carry only what changed (absence means nothing); Delta says what is removed.
    const watched = this.watched.get(r.typeUrl);
    for (const x of r.resources) if (!watched || watched.has(x.name)) upsert(x);
    for (const name of r.removed) if (held.delete(name)) event('removed', name);
  }

  /** Changes a named type's subscription to `next`, as Envoy does when the clusters or listeners naming it change. */
  private watch(s: LiveStream, typeUrl: string, next: Set<string>): void {
    const prev = this.watched.get(typeUrl)!;
    const added = [...next].filter((n) => !prev.has(n));
    const dropped = [...prev].filter((n) => !next.has(n));
    if (added.length === 0 && dropped.length === 0) return;
    this.watched.set(typeUrl, next);
    // No longer named by anything: dropped by the proxy itself, not a removal by the server.
    for (const n of dropped) this.held.get(typeUrl)!.delete(n);
    if (this.mode === 'delta') {
      this.send(s, { type_url: typeUrl, resource_names_subscribe: added, resource_names_unsubscribe: dropped });
    } else {
      // The whole list with the last nonce: stale (a response in flight) it is ignored, and the ACK of that response
      // carries the new list anyway.
      this.send(s, { type_url: typeUrl, resource_names: [...next], version_info: this.accepted.get(typeUrl) ?? '', response_nonce: s.nonces.get(typeUrl) ?? '' });
    }
  }

  private isSynced(s: LiveStream): boolean {
    if (!s.answered.has(CDS) || !s.answered.has(LDS)) return false;
    for (const [t, names] of this.watched) {
      if (names.size === 0) continue;
      if (!s.answered.has(t)) return false;
      const held = this.held.get(t)!;
      for (const n of names) if (!held.has(n)) return false;
    }
    return true;
  }
}

/** Differences between two configs, one line each (empty when identical). */
export function diffConfigs(a: ConfigDigest, b: ConfigDigest, labels: [string, string] = ['a', 'b']): string[] {
  const out: string[] = [];
  for (const type of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[type] ?? {};
    const y = b[type] ?? {};
    for (const name of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (!(name in y)) out.push(`${type} ${name}: only in ${labels[0]}`);
      else if (!(name in x)) out.push(`${type} ${name}: only in ${labels[1]}`);
      else if (x[name] !== y[name]) out.push(`${type} ${name}: different bytes`);
    }
  }
  return out.sort();
}

/** How many resources a digest holds, per type (for reports). */
export function countResources(d: ConfigDigest): Record<string, number> {
  return Object.fromEntries(Object.entries(d).map(([t, m]) => [t, Object.keys(m).length]));
}

/** What a new proxy with this node gets from the server at `port` right now. */
export async function freshConfig(port: number, mode: AdsMode, node: AdsNodeSpec, timeoutMs = 15_000): Promise<ConfigDigest> {
  const probe = new ReconnectingAdsProxy(port, mode, node);
  try {
    await probe.waitSettled(timeoutMs);
    // A first fetch: a stream refused before any answer (e.g. RESOURCE_EXHAUSTED by the server's admission limit) may
    // be retried, but one that had received config before it ended would make the next a reconnect, not a new proxy.
    if (probe.streams.slice(0, -1).some((st) => st.responses > 0)) throw new Error(`fresh probe on port ${port} reconnected after receiving config`);
    return probe.digest();
  } finally {
    probe.close();
  }
}

const digestOf = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex').slice(0, 24);

/**
 * decodeResource, loading the nested Any types it meets first. The proto root loads extension types on demand when a
 * server encodes them; this process only decodes (its servers are other processes), so it loads them here.
 */
function decode(typeUrl: string, bytes: Uint8Array): Record<string, any> {
  for (;;) {
    try {
      return decodeResource(typeUrl, bytes);
    } catch (err) {
      const missing = /cannot find type ([\w.]+)/.exec(String(err))?.[1];
      if (!missing || !ensureType(missing)) throw err;
    }
  }
}

function decodeSotw(buf: Buffer): Decoded {
  const m = clientCodec.decodeResponse(buf);
  const resources = (m.resources ?? []).map((any) => {
    const body = decode(any.type_url || m.type_url, any.value);
    return { name: resourceName(body), version: '', digest: digestOf(any.value), body };
  });
  return { typeUrl: m.type_url, version: m.version_info, nonce: m.nonce, resources, removed: [] };
}

function decodeDelta(buf: Buffer): Decoded {
  const m = clientCodec.decodeDeltaResponse(buf);
  const resources = (m.resources ?? []).map((r) => {
    const value = r.resource?.value ?? new Uint8Array();
    return { name: r.name, version: r.version, digest: digestOf(value), body: r.resource ? decode(r.resource.type_url || m.type_url, value) : {} };
  });
  return { typeUrl: m.type_url, version: m.system_version_info, nonce: m.nonce, resources, removed: [...(m.removed_resources ?? [])] };
}

/** The EDS names of a cluster set: EDS clusters' service_name, or their own name (Envoy's rule). */
function edsNames(clusters: Map<string, HeldResource>): Set<string> {
  const out = new Set<string>();
  for (const [name, c] of clusters) if (c.body.type === 'EDS') out.add((c.body.eds_cluster_config?.service_name as string | undefined) || name);
  return out;
}

/** Every RDS route_config_name the listeners' HTTP connection managers name. */
function rdsNames(listeners: Map<string, HeldResource>): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, any>;
      if (typeof o.rds?.route_config_name === 'string') out.add(o.rds.route_config_name);
      Object.values(o).forEach(walk);
    }
  };
  for (const l of listeners.values()) walk(l.body);
  return out;
}

function endpointCount(cla: Record<string, any>): number {
  return ((cla.endpoints ?? []) as Array<{ lb_endpoints?: unknown[] }>).reduce((n, e) => n + (e.lb_endpoints?.length ?? 0), 0);
}
