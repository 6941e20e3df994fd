/**
 * The AggregatedDiscoveryService on grpc-js: both SotW and Delta methods, with our own codec so cached resource
 * bytes go out without re-encoding. It tracks live connections; the push queue decides when each is pushed.
 */
import * as grpc from '@grpc/grpc-js';
import { systemClock, type Clock } from '../../shared/clock.ts';
import { ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { AdmissionLimiter, type AdmissionStats, type AdmissionTicket } from './admission.ts';
import { Connection, type ConnectionDeps } from './connection.ts';
import { DeltaConnection } from './delta.ts';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, type DeltaDiscoveryRequest, type DiscoveryRequest } from './messages.ts';
import { StreamRefusal, type ProtocolObserver, type ResourceProvider } from './provider.ts';
import { releaseDecoderBuffers } from './decoder-release.ts';
import { resetCallStream } from './stream-reset.ts';
import { SendGate } from './send-gate.ts';
import { SotwConnection } from './sotw.ts';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const identity = (b: Buffer) => b;

/** The ADS service with the given request decoders; responses are always pre-encoded bytes. Clients pass identity. */
export function adsService(decodeSotw: (b: Buffer) => unknown, decodeDelta: (b: Buffer) => unknown): grpc.ServiceDefinition {
  const method = (name: string, decode: (b: Buffer) => unknown) => ({
    path: `${SERVICE}/${name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: decode,
    responseSerialize: identity,
    responseDeserialize: identity,
  });
  return {
    StreamAggregatedResources: method('StreamAggregatedResources', decodeSotw),
    DeltaAggregatedResources: method('DeltaAggregatedResources', decodeDelta),
  } as unknown as grpc.ServiceDefinition;
}

export const adsServiceDefinition = adsService(decodeDiscoveryRequest, decodeDeltaDiscoveryRequest);

/** Establishes who is on the other end of a stream (opaque to the protocol layer); rejects to refuse the stream. */
export type Authenticate = (call: grpc.ServerDuplexStream<unknown, unknown>) => Promise<unknown>;

export interface AdsServerOptions<P> {
  provider: ResourceProvider<P>;
  log: Logger;
  observer?: ProtocolObserver;
  now?: () => number;
  controlPlaneId: string;
  typeOrder: readonly string[];
  currentVersion: () => string;
  /** Bytes written to all streams but not yet flushed before further responses wait (default 32 MiB). */
  sendBudgetBytes?: number;
  /** Unflushed bytes one stream may hold before it waits for its own writes (default 4 MiB; one response always fits). */
  streamBufferBytes?: number;
  /** A stream with nothing flushed for this long stops counting against the shared budget (default 2 s). */
  stuckAfterMs?: number;
  /** A stream with nothing flushed for this long is ended with UNAVAILABLE (default 30 s; istiod: PILOT_XDS_SEND_TIMEOUT). */
  sendTimeoutMs?: number;
  /**
   * New streams admitted per second (istiod: PILOT_MAX_REQUESTS_PER_SECOND); a stream over the rate waits, its
   * requests queued, and is refused with RESOURCE_EXHAUSTED when its wait would exceed `admissionMaxWaitMs`.
   * 0 or absent = unlimited.
   */
  maxNewStreamsPerSecond?: number;
  /** New streams admitted back to back before the rate applies (default 1, as istiod). */
  newStreamBurst?: number;
  /** The longest a new stream may wait for admission (default 1 s, as istiod). */
  admissionMaxWaitMs?: number;
  /** Time for the admission limiter (tests). */
  clock?: Clock;
}

export class AdsServer<P> {
  readonly connections = new Set<Connection<P>>();
  /** Every open call, identified or not, so shutdown can end them. */
  private readonly calls = new Set<grpc.ServerDuplexStream<unknown, Buffer>>();
  private readonly deps: ConnectionDeps<P>;
  /** How to end each stream's call at once (slow-consumer timeouts). */
  private readonly enders = new Map<Connection<P>, () => void>();
  private progressTimer: ReturnType<typeof setInterval> | undefined;
  private readonly stuckAfterMs: number;
  private readonly sendTimeoutMs: number;
  /** Undefined = new streams are admitted at once, however many arrive. */
  private readonly admission: AdmissionLimiter | undefined;

  constructor(options: AdsServerOptions<P>) {
    this.stuckAfterMs = options.stuckAfterMs ?? 2000;
    this.sendTimeoutMs = options.sendTimeoutMs ?? 30_000;
    const rate = options.maxNewStreamsPerSecond ?? 0;
    if (rate > 0) {
      this.admission = new AdmissionLimiter({
        ratePerSecond: rate,
        burst: options.newStreamBurst ?? 1,
        maxWaitMs: options.admissionMaxWaitMs ?? 1000,
        clock: options.clock ?? systemClock,
        onWaitingChange: (n) => options.observer?.awaitingAdmission?.(n),
        onError: (err) => options.log.error({ code: ErrorCode.Internal, err }, 'admitting an xDS stream failed'),
      });
    }
    this.deps = {
      provider: options.provider,
      observer: options.observer ?? {},
      log: options.log,
      now: options.now ?? (() => Date.now()),
      currentVersion: options.currentVersion,
      controlPlaneId: options.controlPlaneId,
      typeOrder: options.typeOrder,
      gate: new SendGate(options.sendBudgetBytes ?? 32 * 1024 * 1024),
      streamBufferBytes: options.streamBufferBytes ?? 4 * 1024 * 1024,
    };
  }

  /** Once a second: write off streams that stopped reading, end those stuck past the send timeout. */
  private watchProgress(): void {
    if (this.progressTimer) return;
    const every = Math.max(50, Math.min(1000, this.stuckAfterMs / 2));
    this.progressTimer = setInterval(() => {
      const now = this.deps.now();
      for (const c of this.connections) {
        if (c.checkProgress(now, this.stuckAfterMs, this.sendTimeoutMs) === 'timeout') {
          this.deps.log.warn({ proxy: c.id, timeoutMs: this.sendTimeoutMs }, 'ending an xDS stream that has not read for the send timeout');
          this.enders.get(c)?.();
        }
      }
    }, every);
    this.progressTimer.unref();
  }

  /**
   * Adds the ADS methods to a gRPC server. With `authenticate` (the secure port), each stream is first authenticated
   * from its call (peer certificate, metadata); requests wait for it, and a rejection ends the stream with
   * UNAUTHENTICATED. What it resolves to is handed to the provider with the node.
   */
  register(server: grpc.Server, authenticate?: Authenticate): void {
    server.addService(adsServiceDefinition, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, Buffer>) =>
        this.serve(call, new SotwConnection<P>(this.deps, call as any, call.getPeer()), authenticate),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, Buffer>) =>
        this.serve(call, new DeltaConnection<P>(this.deps, call as any, call.getPeer()), authenticate),
    });
  }

  private serve<R>(call: grpc.ServerDuplexStream<R, Buffer>, conn: Connection<P> & { handleRequest(r: R): void }, authenticate?: Authenticate): void {
    const untyped = call as unknown as grpc.ServerDuplexStream<unknown, Buffer>;
    this.calls.add(untyped);
    let admissionTicket: AdmissionTicket | undefined;
    const finish = () => {
      this.calls.delete(untyped);
      this.enders.delete(conn);
      admissionTicket?.cancel();
      if (conn.closed) return;
      conn.close();
      this.connections.delete(conn);
    };
    const refuse = (code: number, details: string) => {
      finish();
      call.emit('error', { code, details, metadata: new grpc.Metadata() });
    };
    this.enders.set(conn, () => {
      refuse(grpc.status.UNAVAILABLE, `slow consumer: nothing read for ${this.sendTimeoutMs} ms`);
      // The status waits behind responses the client will never read: reset the stream so they are dropped now.
      resetCallStream(untyped);
    });
    this.watchProgress();
    // Requests queue until the stream is admitted (rate limit), then authenticated: istiod limits first, so a storm of
    // new streams costs no token checks. The queue is bounded: a client that floods meanwhile is cut.
    let queue: R[] | undefined = this.admission || authenticate ? [] : undefined;
    const open = () => {
      const waiting = queue ?? [];
      queue = undefined;
      for (const r of waiting) handle(r);
    };
    const authenticateThenOpen = () => {
      if (!authenticate) return open();
      authenticate(call as unknown as grpc.ServerDuplexStream<unknown, unknown>).then(
        (who) => {
          if (conn.closed) return;
          conn.authenticated = who;
          open();
        },
        (err: unknown) => {
          this.deps.log.warn({ code: ErrorCode.ProxyUnauthenticated, peer: conn.peer, reason: err instanceof Error ? err.message : String(err) }, 'xDS stream not authenticated');
          refuse(grpc.status.UNAUTHENTICATED, 'authentication failed');
        },
      );
    };
    const handle = (req: R) => {
      if (conn.closed) return;
      try {
        const wasNew = conn.proxy === undefined;
        conn.handleRequest(req);
        releaseDecoderBuffers(call);
        if (wasNew && conn.proxy !== undefined) this.connections.add(conn);
      } catch (err) {
        const refusal = err instanceof StreamRefusal;
        const code = refusal ? err.grpcCode : grpc.status.INTERNAL;
        const details = err instanceof Error ? err.message : String(err);
        if (refusal) this.deps.log.warn({ code: ErrorCode.ProxyBadNode, peer: conn.peer, error: details }, 'xDS stream refused');
        else this.deps.log.error({ code: ErrorCode.Internal, proxy: conn.id, err }, 'xDS request failed');
        refuse(code, details);
      }
    };
    call.on('data', (req: R) => {
      if (queue) {
        if (queue.length >= 16) refuse(grpc.status.RESOURCE_EXHAUSTED, 'too many requests before the stream was admitted and authenticated');
        else queue.push(req);
        return;
      }
      handle(req);
    });
    call.on('end', () => {
      finish();
      call.end();
    });
    call.on('error', finish);
    call.on('close', finish);
    call.on('cancelled', finish);
    this.admit(conn, authenticateThenOpen, refuse, (ticket) => (admissionTicket = ticket));
  }

  /** Runs `proceed` once the limiter admits the stream (at once without one); refuses it when the wait is too long. */
  private admit(conn: Connection<P>, proceed: () => void, refuse: (code: number, details: string) => void, waiting: (t: AdmissionTicket) => void): void {
    const observer = this.deps.observer;
    if (!this.admission) {
      observer.admitted?.(0);
      proceed();
      return;
    }
    const ticket = this.admission.request((waitedMs) => {
      if (conn.closed) return;
      observer.admitted?.(waitedMs);
      proceed();
    });
    if (ticket) return waiting(ticket);
    const { ratePerSecond, maxWaitMs } = this.admission.stats();
    observer.throttled?.();
    // Debug, not warn: in a storm this is thousands of lines; mizzen_xds_streams_throttled counts them.
    this.deps.log.debug({ peer: conn.peer, ratePerSecond }, 'new xDS stream refused: admission queue full');
    refuse(grpc.status.RESOURCE_EXHAUSTED, `too many new xDS streams: admitted at ${ratePerSecond}/s, and this one would wait over ${maxWaitMs} ms; retry with backoff`);
  }

  /** Bytes written to streams and not yet flushed, and streams waiting for send budget. */
  sendStats(): { inflightBytes: number; waitingStreams: number; openCalls: number } {
    return { inflightBytes: this.deps.gate.inflightBytes, waitingStreams: this.deps.gate.waiting, openCalls: this.calls.size };
  }

  /** The new-stream limiter's counts; undefined when admission is unlimited. */
  admissionStats(): AdmissionStats | undefined {
    return this.admission?.stats();
  }

  /** Ends every stream with UNAVAILABLE, so clients reconnect (to this or another replica) at once. */
  closeAll(): void {
    this.admission?.close();
    if (this.progressTimer) clearInterval(this.progressTimer);
    this.progressTimer = undefined;
    for (const c of this.connections) c.close();
    this.connections.clear();
    for (const call of this.calls) {
      try {
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'control plane shutting down', metadata: new grpc.Metadata() });
      } catch {
        // already ended
      }
    }
    this.calls.clear();
  }
}
