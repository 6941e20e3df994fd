/**
 * Where config status goes (kube mode: the objects' `status`), written off the push path: updates are merged, at most
 * one write runs at a time, writes are rate-limited and batched, a hanging sink is abandoned after a timeout.
 */
import { silentLogger, type Logger } from '../shared/log.ts';
import type { ObjectStatus } from './config-status.ts';

/** A status to write; `status` undefined: the object is gone (a kube writer has nothing to patch). */
export interface StatusUpdate {
  key: string;
  status?: ObjectStatus;
}

/**
 * Where statuses go. The in-memory sink keeps them for debugging and tests; a Kubernetes writer patches each object's
 * `status` subresource (conditions + observedGeneration from `generation`, only when `resourceVersion` still
 * matches). `write` may be slow, fail or hang: it is called by StatusWriter only, one call at a time, with a timeout
 * signalled through `signal`; a rejected or timed-out batch is retried later with whatever is newest then.
 */
export interface StatusSink {
  write(updates: readonly StatusUpdate[], signal: AbortSignal): Promise<void>;
}

export class MemoryStatusSink implements StatusSink {
  readonly statuses = new Map<string, ObjectStatus>();
  writes = 0;

  async write(updates: readonly StatusUpdate[]): Promise<void> {
    this.writes++;
    for (const u of updates) {
      if (u.status) this.statuses.set(u.key, u.status);
      else this.statuses.delete(u.key);
    }
  }
}

export interface StatusWriterOptions {
  /** At most one write started per interval (default 1 s): status changes in between are coalesced. */
  intervalMs?: number;
  /** Objects per write (default 200); the rest follow in the next intervals. */
  batchSize?: number;
  /** A write not settled by then is abandoned (its signal aborted) and retried later (default 10 s). */
  timeoutMs?: number;
  /**
   * Only the leader writes (kube mode: a Lease-based leader election among replicas). While not leader nothing is
   * written and nothing is lost: call markDirty() on becoming leader and the current statuses are written.
   */
  isLeader?: () => boolean;
  log?: Logger;
}

export interface WriterStats {
  writes: number;
  failures: number;
  timeouts: number;
  inFlight: boolean;
  /** Objects whose newest status is not written yet. */
  unwritten: number;
}

/**
 * Writes statuses to a sink off the push path: `markDirty` (called on every protocol event) only sets a flag and
 * arms a timer; the timer computes the statuses, writes those that changed since the last successful write, and
 * never has more than one write in flight.
 */
export class StatusWriter {
  private readonly sink: StatusSink;
  private readonly compute: () => Map<string, ObjectStatus>;
  private readonly o: Required<Omit<StatusWriterOptions, 'log'>> & { log: Logger };
  /** Key → JSON of the status last written successfully. */
  private readonly written = new Map<string, string>();
  private dirty = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: AbortController | undefined;
  private lastStart = -Infinity;
  private unwritten = 0;
  private stopped = false;
  private readonly counts = { writes: 0, failures: 0, timeouts: 0 };

  constructor(sink: StatusSink, compute: () => Map<string, ObjectStatus>, o: StatusWriterOptions = {}) {
    this.sink = sink;
    this.compute = compute;
    this.o = { intervalMs: o.intervalMs ?? 1000, batchSize: o.batchSize ?? 200, timeoutMs: o.timeoutMs ?? 10_000, isLeader: o.isLeader ?? (() => true), log: o.log ?? silentLogger };
  }

  markDirty(): void {
    this.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.inFlight || this.stopped || !this.dirty) return;
    const wait = Math.max(0, this.lastStart + this.o.intervalMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
    this.timer.unref?.();
  }

  private flush(): void {
    if (this.stopped || this.inFlight || !this.o.isLeader()) return;
    this.dirty = false;
    let statuses: Map<string, ObjectStatus>;
    try {
      statuses = this.compute();
    } catch (err) {
      this.o.log.error({ err }, 'computing config status failed');
      return;
    }
    const updates: StatusUpdate[] = [];
    const json = new Map<string, string | undefined>();
    for (const [key, s] of statuses) {
      const j = JSON.stringify(s);
      if (this.written.get(key) !== j) {
        updates.push({ key, status: s });
        json.set(key, j);
      }
    }
    for (const key of this.written.keys()) {
      if (!statuses.has(key)) {
        updates.push({ key });
        json.set(key, undefined);
      }
    }
    this.unwritten = updates.length;
    if (updates.length === 0) return;
    const batch = updates.slice(0, this.o.batchSize);
    if (updates.length > batch.length) this.dirty = true;
    const ctl = new AbortController();
    this.inFlight = ctl;
    this.lastStart = performance.now();
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      ctl.abort(new Error(`status write timed out after ${this.o.timeoutMs} ms`));
    }, this.o.timeoutMs);
    timeout.unref?.();
    const done = (ok: boolean, err?: unknown) => {
      if (this.inFlight !== ctl) return; // settled after the timeout already released it
      clearTimeout(timeout);
      this.inFlight = undefined;
      if (ok) {
        this.counts.writes++;
        for (const u of batch) {
          const j = json.get(u.key);
          if (j === undefined) this.written.delete(u.key);
          else this.written.set(u.key, j);
        }
        this.unwritten -= batch.length;
      } else {
        if (this.stopped) return;
        if (timedOut) this.counts.timeouts++;
        else this.counts.failures++;
        this.o.log.warn({ err, objects: batch.length }, 'writing config status failed; retrying later');
        this.dirty = true;
      }
      this.schedule();
    };
    ctl.signal.addEventListener('abort', () => done(false, ctl.signal.reason));
    let p: Promise<void>;
    try {
      p = this.sink.write(batch, ctl.signal);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => done(!timedOut),
      (err: unknown) => done(false, err),
    );
  }

  stats(): WriterStats {
    return { ...this.counts, inFlight: this.inFlight !== undefined, unwritten: this.unwritten };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort(new Error('stopped'));
  }
}
