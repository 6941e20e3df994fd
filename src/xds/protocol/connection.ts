/**
 * One ADS stream. Subclasses speak SotW or Delta; this base holds what both need: the proxy, per-type watches,
 * non-blocking writes, and push merging. A stream whose socket is full is never waited on: pushes that arrive
 * meanwhile are merged into one and applied when the stream drains (architecture rule 4).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../shared/log.ts';
import type { NodeInfo } from './messages.ts';
import { StreamRefusal, type ProtocolObserver, type PushRequest, type ResourceProvider, type ResourceSet, type Subscription } from './provider.ts';
import { newWatch, watchStatus, type WatchState, type WatchStatus } from './watch.ts';

export interface ConnectionDeps<P> {
  provider: ResourceProvider<P>;
  observer: ProtocolObserver;
  log: Logger;
  now: () => number;
  /** The version of the newest push, used for responses that answer a request rather than a push. */
  currentVersion: () => string;
  controlPlaneId: string;
  typeOrder: readonly string[];
}

/** The part of a grpc-js duplex call a connection writes to. */
export interface StreamSink {
  write(chunk: Buffer): boolean;
  once(event: 'drain', fn: () => void): unknown;
}

let connectionCounter = 0;

export function mergePush(a: PushRequest | undefined, b: PushRequest): PushRequest {
  if (!a) return b;
  const start = Math.min(a.start, b.start);
  if (a.full || b.full) return { version: b.version, start, full: true };
  const names = new Map<string, Set<string>>();
  for (const m of [a.names, b.names]) {
    for (const [type, set] of m ?? []) {
      const into = names.get(type) ?? new Set<string>();
      for (const n of set) into.add(n);
      names.set(type, into);
    }
  }
  return { version: b.version, start, full: false, names };
}

export abstract class Connection<P> {
  id = '';
  proxy: P | undefined;
  node: NodeInfo | undefined;
  readonly peer: string;
  readonly connectedAt: number;
  readonly watches = new Map<string, WatchState>();
  protected readonly deps: ConnectionDeps<P>;
  private readonly sink: StreamSink;
  private blocked = false;
  private pending: PushRequest | undefined;
  private nonceCounter = 0;
  private readonly noncePrefix = randomBytes(4).toString('hex');
  closed = false;

  constructor(deps: ConnectionDeps<P>, sink: StreamSink, peer: string) {
    this.deps = deps;
    this.sink = sink;
    this.peer = peer;
    this.connectedAt = deps.now();
  }

  abstract readonly mode: 'sotw' | 'delta';

  /** Sets up the proxy from the first request's node; throws StreamRefusal when there is none or it is refused. */
  protected identify(node: NodeInfo | undefined): void {
    if (this.proxy !== undefined) return;
    // The client's mistake, not ours: INVALID_ARGUMENT, as istiod answers ("missing node information").
    if (!node) throw new StreamRefusal(3, 'missing node information: the first request on a stream must carry a node');
    this.proxy = this.deps.provider.connect(node, this.peer);
    this.node = node;
    const idPart = node.id.split('~')[2] || node.id || 'unknown';
    this.id = `${idPart}-${++connectionCounter}`;
    this.deps.observer.connected?.(this.id);
    this.deps.log.info({ proxy: this.id, node: node.id, mode: this.mode }, 'proxy connected');
  }

  watch(typeUrl: string): WatchState {
    let w = this.watches.get(typeUrl);
    if (!w) {
      w = newWatch(typeUrl);
      this.watches.set(typeUrl, w);
    }
    return w;
  }

  protected nextNonce(): string {
    return `${this.noncePrefix}-${++this.nonceCounter}`;
  }

  /** The watch as the provider sees it. */
  subscription(w: WatchState): Subscription {
    return { typeUrl: w.typeUrl, wildcard: w.wildcard, names: w.names.names, key: `${w.wildcard ? '*' : ''}${w.names.key}` };
  }

  protected generate(w: WatchState, only?: ReadonlySet<string>): ResourceSet {
    return this.deps.provider.resources(this.proxy as P, this.subscription(w), only);
  }

  /** Writes one encoded response; a full socket buffer marks the stream blocked until it drains. */
  protected send(typeUrl: string, bytes: Buffer, resources: number): void {
    this.deps.observer.sent?.(typeUrl, resources, bytes.length);
    const more = this.sink.write(bytes);
    if (!more && !this.blocked) {
      this.blocked = true;
      this.sink.once('drain', () => this.onDrain());
    }
  }

  private onDrain(): void {
    this.blocked = false;
    const pending = this.pending;
    this.pending = undefined;
    if (pending && !this.closed) this.push(pending);
  }

  /** Applies a push now, or merges it into the pending one while the stream is blocked. */
  push(req: PushRequest): void {
    if (this.closed || this.proxy === undefined) return;
    if (this.blocked) {
      this.pending = mergePush(this.pending, req);
      return;
    }
    try {
      for (const typeUrl of this.deps.typeOrder) {
        const w = this.watches.get(typeUrl);
        if (!w || (!w.wildcard && w.names.names.size === 0)) continue;
        if (req.full) {
          this.respond(w, req, undefined);
          continue;
        }
        const changed = req.names?.get(typeUrl);
        if (!changed) continue;
        const only = new Set<string>();
        for (const n of changed) if (w.wildcard || w.names.names.has(n)) only.add(n);
        if (only.size > 0) this.respond(w, req, only);
      }
      this.deps.observer.pushed?.(this.id, this.deps.now() - req.start);
    } catch (err) {
      this.deps.observer.error?.(this.id, err);
      this.deps.log.error({ proxy: this.id, err }, 'push failed for one proxy; others are unaffected');
    }
  }

  /** Sends what changed for one watch. `push` is undefined when answering a request. */
  protected abstract respond(w: WatchState, push: PushRequest | undefined, only: ReadonlySet<string> | undefined): void;

  protected recordAck(w: WatchState, nonce: string): void {
    w.nonceAcked = nonce;
    w.versionAcked = w.versionSent;
    w.ackedAt = this.deps.now();
    w.lastNack = undefined;
    this.deps.observer.acked?.(w.typeUrl, w.pushStart === undefined ? undefined : w.ackedAt - w.pushStart);
    w.pushStart = undefined;
  }

  protected recordNack(w: WatchState, nonce: string, message: string): void {
    w.lastNack = { nonce, message, at: this.deps.now() };
    w.pushStart = undefined;
    this.deps.observer.nacked?.(this.id, w.typeUrl, message);
    this.deps.log.warn({ proxy: this.id, type: w.typeUrl, nonce, error: message }, 'proxy rejected config (NACK); it keeps its last good config');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.proxy !== undefined) {
      this.deps.provider.disconnect(this.proxy);
      this.deps.observer.disconnected?.(this.id);
      this.deps.log.info({ proxy: this.id }, 'proxy disconnected');
    }
  }

  status(): { id: string; node?: string; mode: string; peer: string; connectedAt: string; watches: WatchStatus[] } {
    return {
      id: this.id,
      node: this.node?.id,
      mode: this.mode,
      peer: this.peer,
      connectedAt: new Date(this.connectedAt).toISOString(),
      watches: [...this.watches.values()].map(watchStatus),
    };
  }
}
