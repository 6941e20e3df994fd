/**
 * One simulated proxyless gRPC proxy on one raw ADS stream (SotW or Delta). It behaves like grpc-js-xds minus the
 * work a real client does with the config: LDS and CDS as wildcards, RDS for the route each listener names, EDS for
 * every cluster, and an ACK for every response. Per-stream state is flat byte arrays indexed by interned name ids,
 * so 2,000 streams × 8,000 names stay small.
 */
import { TypeUrl } from '../src/proto/types.ts';
import { deltaRequest, Interner, parseDeltaResponse, parseSotwResponse, routeNameOf, sidecarRouteNameOf, sotwRequest, type NameList, type ParsedResponse } from './wire.ts';

export type Mode = 'sotw' | 'delta';
/** `grpc`: a proxyless gRPC client; `sidecar`: an Envoy sidecar (listeners name routes by port, EDS only for outbound clusters). */
export type ProxyKind = 'grpc' | 'sidecar';

/** What a stream reports to the load generator (which aggregates over streams). */
export interface StreamObserver {
  /** After the ACK for a response has been written; `ids` are the interned names it carried. */
  acked(stream: AdsStream, typeUrl: string, ids: readonly number[], bytes: number, at: number): void;
  fullConfig(stream: AdsStream, at: number): void;
  warn(message: string): void;
  /** Every response as parsed, before it is acted on (the storm judge reads it; see bench/storm-judge.ts). */
  response?(stream: AdsStream, r: ParsedResponse): void;
}

export interface Writable {
  write(buf: Buffer): boolean;
}

/** State of a type whose names the client chooses (RDS, EDS). */
interface NamedState {
  sub: Uint8Array;
  subN: number;
  got: Uint8Array;
  gotN: number;
  list?: NameList; // SotW: the list last requested
  version: string;
  nonce: string;
}

export const interners: Record<string, Interner> = {
  [TypeUrl.RouteConfiguration]: new Interner(),
  [TypeUrl.ClusterLoadAssignment]: new Interner(),
};

const grow = (a: Uint8Array, id: number): Uint8Array => {
  if (id < a.length) return a;
  const b = new Uint8Array(Math.max(id + 1, a.length * 2));
  b.set(a);
  return b;
};

export const now = (): number => performance.timeOrigin + performance.now();

export class AdsStream {
  readonly index: number;
  readonly mode: Mode;
  private readonly node: unknown;
  private readonly out: Writable;
  private readonly obs: StreamObserver;
  private readonly named = new Map<string, NamedState>();
  private readonly acked = new Set<string>();
  fullAt = Number.NaN;
  /** When each type first became complete (LDS/CDS: first ACK; RDS/EDS: every subscribed name received). */
  readonly completeAt = new Map<string, number>();
  /** Stream 0 checks that the derived route names really are the listeners' rds.route_config_name. */
  private readonly checkRoutes: boolean;

  private readonly kind: ProxyKind;
  /** Keep each resource's bytes on the parsed response (for the observer's `response`), not only stream 0's. */
  private readonly keepRaw: boolean;

  constructor(index: number, mode: Mode, node: unknown, out: Writable, obs: StreamObserver, kind: ProxyKind = 'grpc', keepRaw = false) {
    this.kind = kind;
    this.index = index;
    this.mode = mode;
    this.node = node;
    this.out = out;
    this.obs = obs;
    this.checkRoutes = index === 0;
    this.keepRaw = keepRaw || this.checkRoutes;
    for (const t of [TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment]) {
      this.named.set(t, { sub: new Uint8Array(0), subN: 0, got: new Uint8Array(0), gotN: 0, version: '', nonce: '' });
    }
  }

  /** CDS first, as Envoy and grpc-js do; the node rides on the first request only. */
  start(): void {
    if (this.mode === 'sotw') {
      this.out.write(sotwRequest(TypeUrl.Cluster, '', '', undefined, this.node));
      this.out.write(sotwRequest(TypeUrl.Listener, '', '', undefined));
    } else {
      this.out.write(deltaRequest(TypeUrl.Cluster, '', [], [], this.node));
      this.out.write(deltaRequest(TypeUrl.Listener, ''));
    }
  }

  onResponse(buf: Buffer): void {
    const r = this.mode === 'sotw' ? parseSotwResponse(buf, this.keepRaw) : parseDeltaResponse(buf, this.keepRaw);
    this.obs.response?.(this, r);
    const named = this.named.get(r.typeUrl);
    if (named) return this.onNamed(r, named, buf.length);
    // LDS / CDS: ACK first, then (re)subscribe the names they point at, as a client does.
    this.ack(r, undefined);
    this.acked.add(r.typeUrl);
    if (!this.completeAt.has(r.typeUrl)) this.completeAt.set(r.typeUrl, now());
    if (r.typeUrl === TypeUrl.Cluster) {
      // Envoy asks EDS only for EDS clusters; the sidecar's special clusters (BlackHole, Passthrough, inbound) are not.
      const eds = this.kind === 'sidecar' ? (ns: string[]) => ns.filter((n) => n.startsWith('outbound|')) : (ns: string[]) => ns;
      this.resubscribe(TypeUrl.ClusterLoadAssignment, eds(r.names), eds(r.removed));
    } else if (r.typeUrl === TypeUrl.Listener) {
      if (this.kind === 'sidecar') {
        const routesOf = (ns: string[]) => ns.map(sidecarRouteNameOf).filter((x): x is string => x !== undefined);
        this.resubscribe(TypeUrl.RouteConfiguration, routesOf(r.names), routesOf(r.removed));
      } else {
        const routes = r.names.map(routeNameOf);
        if (this.checkRoutes) this.checkRouteNames(r, routes);
        this.resubscribe(TypeUrl.RouteConfiguration, routes, r.removed.map(routeNameOf));
      }
    }
    this.obs.acked(this, r.typeUrl, [], buf.length, now());
    this.checkFull();
  }

  private onNamed(r: ParsedResponse, s: NamedState, bytes: number): void {
    const interner = interners[r.typeUrl]!;
    const ids = r.names.map((n) => interner.id(n));
    for (const id of ids) {
      s.got = grow(s.got, id);
      if (s.got[id] === 0) {
        s.got[id] = 1;
        if (s.sub[id] === 1) s.gotN++;
      }
    }
    for (const n of r.removed) {
      const id = interner.peek(n);
      if (id !== undefined && s.got[id] === 1) {
        s.got[id] = 0;
        if (s.sub[id] === 1) s.gotN--;
      }
    }
    s.version = r.version;
    s.nonce = r.nonce;
    this.ack(r, s.list);
    this.acked.add(r.typeUrl);
    if (s.subN > 0 && s.gotN === s.subN && !this.completeAt.has(r.typeUrl)) this.completeAt.set(r.typeUrl, now());
    this.obs.acked(this, r.typeUrl, ids, bytes, now());
    this.checkFull();
  }

  private ack(r: ParsedResponse, list: NameList | undefined): void {
    if (this.mode === 'sotw') this.out.write(sotwRequest(r.typeUrl, r.version, r.nonce, list));
    else this.out.write(deltaRequest(r.typeUrl, r.nonce));
  }

  /**
   * SotW: LDS/CDS responses are the whole set, so the new RDS/EDS subscription is exactly their names, sent whole
   * with the last nonce of that type. Delta: LDS/CDS carry changes only, so subscribe the new and drop the removed.
   */
  private resubscribe(typeUrl: string, names: string[], removed: string[]): void {
    const s = this.named.get(typeUrl)!;
    const interner = interners[typeUrl]!;
    if (this.mode === 'sotw') {
      const list = interner.list(names);
      if (list === s.list) return;
      const sub = new Uint8Array(interner.names.length);
      for (const id of list.ids) sub[id] = 1;
      // Names no longer watched are forgotten by the server, so forget them here too.
      for (let id = 0; id < s.got.length; id++) if (s.got[id] === 1 && sub[id] !== 1) s.got[id] = 0;
      s.sub = sub;
      s.subN = list.ids.length;
      s.gotN = 0;
      for (const id of list.ids) if (s.got[id] === 1) s.gotN++;
      s.list = list;
      this.out.write(sotwRequest(typeUrl, s.version, s.nonce, list));
      return;
    }
    const add: string[] = [];
    for (const n of names) {
      const id = interner.id(n);
      s.sub = grow(s.sub, id);
      if (s.sub[id] === 1) continue;
      s.sub[id] = 1;
      s.subN++;
      if (s.got[id] === 1) s.gotN++;
      add.push(n);
    }
    const drop: string[] = [];
    for (const n of removed) {
      const id = interner.peek(n);
      if (id === undefined || s.sub[id] !== 1) continue;
      s.sub[id] = 0;
      s.subN--;
      if (s.got[id] === 1) {
        s.got[id] = 0;
        s.gotN--;
      }
      drop.push(n);
    }
    if (add.length > 0 || drop.length > 0) this.out.write(deltaRequest(typeUrl, '', add, drop));
  }

  /** "Holds full config": LDS and CDS ACKed, and every subscribed route and cluster load assignment received. */
  private checkFull(): void {
    if (!Number.isNaN(this.fullAt)) return;
    if (!this.acked.has(TypeUrl.Listener) || !this.acked.has(TypeUrl.Cluster)) return;
    for (const s of this.named.values()) if (s.subN === 0 || s.gotN !== s.subN) return;
    this.fullAt = now();
    this.obs.fullConfig(this, this.fullAt);
  }

  /** Where this stream is: which wildcard types it ACKed, and received/subscribed counts of RDS and EDS. */
  status(): { lds: boolean; cds: boolean; rds: [number, number]; eds: [number, number] } {
    const n = (t: string): [number, number] => [this.named.get(t)!.gotN, this.named.get(t)!.subN];
    return { lds: this.acked.has(TypeUrl.Listener), cds: this.acked.has(TypeUrl.Cluster), rds: n(TypeUrl.RouteConfiguration), eds: n(TypeUrl.ClusterLoadAssignment) };
  }

  private checkRouteNames(r: ParsedResponse, routes: string[]): void {
    const raw = r.raw ?? [];
    if (raw.length !== routes.length) this.obs.warn(`LDS response: ${routes.length} listeners but ${raw.length} resource bodies`);
    for (let i = 0; i < raw.length; i++) {
      if (!Buffer.from(raw[i]!).includes(routes[i]!)) {
        this.obs.warn(`listener ${r.names[i]} does not name route ${routes[i]}: the load generator's RDS names are wrong`);
        return;
      }
    }
  }
}
