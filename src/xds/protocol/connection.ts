/**
 * One ADS stream. Subclasses speak SotW or Delta; this base holds what both need: the proxy, per-type watches,
 * non-blocking writes, and push merging. A stream whose socket is full is never waited on: pushes that arrive
 * meanwhile are merged into one and applied when the stream drains (architecture rule 4).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../shared/log.ts';
import type { NodeInfo } from './messages.ts';
import { StreamRefusal, type ProtocolObserver, type PushRequest, type ResourceProvider, type ResourceSet, type Subscription } from './provider.ts';
import type { SendGate } from './send-gate.ts';
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
  gate: SendGate;
  /** Unflushed bytes one stream may hold before it waits for its own writes to flush. */
  streamBufferBytes: number;
}

/** The part of a grpc-js duplex call a connection writes to. */
export interface StreamSink {
  write(chunk: Buffer, callback: (err?: Error | null) => void): boolean;
  once(event: 'drain', fn: () => void): unknown;
}

/** A response a request asked for that had to wait for send budget. */
interface DeferredAnswer {
  force: boolean;
  /** Names to answer; undefined = the whole subscription. */
  only: Set<string> | undefined;
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
  /** Who the transport authenticated (client certificate or token), when the stream came in over the secure port. */
  authenticated: unknown;
  readonly connectedAt: number;
  readonly watches = new Map<string, WatchState>();
  protected readonly deps: ConnectionDeps<P>;
  private readonly sink: StreamSink;
  /** This stream's socket buffer is full: wait for its drain. */
  private blocked = false;
  /** Pushes that arrived while the stream could not send, merged into one. */
  private pending: PushRequest | undefined;
  /** Request answers that had to wait, per watch. */
  private readonly deferred = new Map<WatchState, DeferredAnswer>();
  /** Bytes written and not yet flushed. */
  private outstanding = 0;
  /**
   * The part of `outstanding` still counted in the shared gate. A stream that stops reading has its bytes written off
   * (see checkProgress): they stay this stream's alone, so one stuck client cannot hold the budget every other
   * proxy's pushes wait for.
   */
  private counted = 0;
  /** When a write last flushed (or the first write after an idle period went out). */
  private lastProgress: number;
  /** Written off as not reading: no further writes until its buffered bytes flush. */
  private stuck = false;
  private nonceCounter = 0;
  private readonly noncePrefix = randomBytes(4).toString('hex');
  closed = false;

  constructor(deps: ConnectionDeps<P>, sink: StreamSink, peer: string) {
    this.deps = deps;
    this.sink = sink;
    this.peer = peer;
    this.connectedAt = deps.now();
    this.lastProgress = this.connectedAt;
  }

  abstract readonly mode: 'sotw' | 'delta';

  /** Sets up the proxy from the first request's node; throws StreamRefusal when there is none or it is refused. */
  protected identify(node: NodeInfo | undefined): void {
    if (this.proxy !== undefined) return;
    // The client's mistake, not ours: INVALID_ARGUMENT, as istiod answers ("missing node information").
    if (!node) throw new StreamRefusal(3, 'missing node information: the first request on a stream must carry a node');
    this.proxy = this.deps.provider.connect(node, this.peer, this.authenticated);
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

  /**
   * Can a response be generated and written now? Not while this socket is full, this stream holds its share of
   * unflushed bytes or was written off as not reading, or the shared budget is spent.
   */
  private canSend(): boolean {
    return !this.blocked && !this.ownBufferFull() && this.deps.gate.open;
  }

  /** Holding its share of unflushed bytes, or written off as not reading: only its own flushes can free it. */
  private ownBufferFull(): boolean {
    return this.stuck || this.outstanding >= this.deps.streamBufferBytes;
  }

  /**
   * Waits for the socket to drain, this stream's writes to flush, or the shared budget to free up; `resume` runs what
   * was deferred. Only the last joins the gate's queue: a stream the gate woke that still cannot send for its own
   * reasons would otherwise rejoin the queue at once, and the gate would wake it again, forever.
   */
  private waitToSend(): void {
    if (this.blocked || this.ownBufferFull()) return; // 'drain' or a write callback resumes it
    this.deps.gate.wait(this);
  }

  /** Writes one encoded response, counted against the shared budget until it is flushed. */
  protected send(typeUrl: string, bytes: Buffer, resources: number): void {
    this.deps.observer.sent?.(typeUrl, resources, bytes.length, this.id, this.watches.get(typeUrl)?.versionSent);
    const size = bytes.length;
    if (this.outstanding === 0) this.lastProgress = this.deps.now();
    this.outstanding += size;
    this.counted += size;
    this.deps.gate.take(size);
    const more = this.sink.write(bytes, () => {
      if (this.closed) return; // close() already returned this stream's counted bytes
      const wasFull = this.ownBufferFull();
      this.outstanding -= size;
      this.lastProgress = this.deps.now();
      const back = Math.min(size, this.counted);
      this.counted -= back;
      if (this.outstanding <= 0) {
        this.outstanding = 0;
        this.stuck = false;
      }
      this.deps.gate.release(back);
      if (wasFull && !this.ownBufferFull() && !this.blocked) this.resume();
    });
    if (!more && !this.blocked) {
      this.blocked = true;
      this.sink.once('drain', () => {
        this.blocked = false;
        this.resume();
      });
    }
  }

  /** Answers a request now, or once the stream may send (the answer is recomputed then, against current state). */
  protected answer(w: WatchState, only: ReadonlySet<string> | undefined, force: boolean): void {
    if (this.canSend()) {
      this.respond(w, undefined, only, force);
      return;
    }
    const prev = this.deferred.get(w);
    // Either side asking for the whole subscription makes the merged answer whole.
    const whole = only === undefined || (prev !== undefined && prev.only === undefined);
    this.deferred.set(w, {
      force: force || (prev?.force ?? false),
      only: whole ? undefined : new Set([...(prev?.only ?? []), ...only]),
    });
    this.waitToSend();
  }

  /** Runs deferred answers and the merged pending push, as far as the budget allows. */
  resume(): void {
    if (this.closed) return;
    for (const [w, d] of [...this.deferred]) {
      if (!this.canSend()) return this.waitToSend();
      this.deferred.delete(w);
      try {
        this.respond(w, undefined, d.only, d.force);
      } catch (err) {
        this.deps.observer.error?.(this.id, err);
        this.deps.log.error({ proxy: this.id, err }, 'answering a request failed');
      }
    }
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    this.push(pending);
  }

  /** Applies a push now, or merges it into the pending one while the stream cannot send. */
  push(req: PushRequest): void {
    if (this.closed || this.proxy === undefined) return;
    if (!this.canSend()) {
      this.pending = mergePush(this.pending, req);
      this.waitToSend();
      return;
    }
    try {
      for (const typeUrl of this.deps.typeOrder) {
        const w = this.watches.get(typeUrl);
        if (!w || (!w.wildcard && w.names.names.size === 0)) continue;
        if (!this.canSend()) {
          // Out of budget part-way: keep the whole push; types already answered will find nothing new.
          this.pending = mergePush(this.pending, req);
          this.waitToSend();
          return;
        }
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
      this.deps.observer.pushed?.(this.id, this.deps.now() - req.start, req.version);
    } catch (err) {
      this.deps.observer.error?.(this.id, err);
      this.deps.log.error({ proxy: this.id, err }, 'push failed for one proxy; others are unaffected');
    }
  }

  /** Sends what changed for one watch. `push` is undefined when answering a request. */
  protected abstract respond(w: WatchState, push: PushRequest | undefined, only: ReadonlySet<string> | undefined, force?: boolean): void;

  protected recordAck(w: WatchState, nonce: string): void {
    w.nonceAcked = nonce;
    w.versionAcked = w.versionSent;
    w.ackedAt = this.deps.now();
    w.lastNack = undefined;
    this.deps.observer.acked?.(w.typeUrl, w.pushStart === undefined ? undefined : w.ackedAt - w.pushStart, this.id, w.versionAcked);
    w.pushStart = undefined;
  }

  protected recordNack(w: WatchState, nonce: string, message: string): void {
    w.lastNack = { nonce, message, at: this.deps.now() };
    w.pushStart = undefined;
    this.deps.observer.nacked?.(this.id, w.typeUrl, message);
    this.deps.log.warn({ proxy: this.id, type: w.typeUrl, nonce, error: message }, 'proxy rejected config (NACK); it keeps its last good config');
  }

  /**
   * A stream whose written bytes have not flushed for `stuckAfterMs` stops counting against the shared budget (its
   * bytes are written off and it sends nothing more until they flush); after `timeoutMs` without progress it should
   * be ended (istiod's PILOT_XDS_SEND_TIMEOUT): a client that never reads must not keep memory forever.
   */
  checkProgress(now: number, stuckAfterMs: number, timeoutMs: number): 'ok' | 'timeout' {
    if (this.closed || this.outstanding === 0) return 'ok';
    const idle = now - this.lastProgress;
    if (idle >= timeoutMs) return 'timeout';
    if (idle >= stuckAfterMs && !this.stuck) {
      this.stuck = true;
      const off = this.counted;
      this.counted = 0;
      this.deps.log.warn({ proxy: this.id, unflushedBytes: this.outstanding, idleMs: idle }, 'proxy is not reading its xDS stream; its buffered bytes no longer hold back other proxies');
      this.deps.gate.release(off);
    }
    return 'ok';
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.deps.gate.forget(this);
    this.deps.gate.release(this.counted);
    this.counted = 0;
    this.outstanding = 0;
    this.deferred.clear();
    this.pending = undefined;
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
