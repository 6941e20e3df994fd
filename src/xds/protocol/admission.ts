/**
 * Admission of new xDS streams at a bounded rate, as istiod's PILOT_MAX_REQUESTS_PER_SECOND (a token bucket with
 * burst 1, waited on before the stream is authenticated; pilot/pkg/xds/discovery.go WaitForRequestLimit). When a
 * replica restarts under thousands of proxies they all reconnect within seconds; answering them all at once means
 * generating and buffering every proxy's full config together (istio PR #35046: a new istiod "instantly receives 1k
 * requests … This leads to OOM"). Instead each new stream waits for a token, first come first served. A stream whose
 * expected wait exceeds `maxWaitMs` (istiod: 1 s) is refused at once rather than after waiting, as Go's
 * rate.Limiter.Wait does: its client backs off and retries, ideally at another replica.
 *
 * Tokens accrue at `ratePerSecond` up to `burst`, so in any interval of T ms at most burst + rate·T/1000 streams are
 * admitted. When the event loop is busy and a timer fires late, the tokens that would have overflowed the bucket are
 * lost rather than spent in a bunch: a server too busy to run its timers on time admits fewer streams, not more.
 */
import type { Clock, Timer } from '../../shared/clock.ts';

export interface AdmissionOptions {
  /** Streams admitted per second on average; must be > 0 (no limiter at all means unlimited). */
  ratePerSecond: number;
  /** Streams admitted back to back before the rate applies (istiod: 1). */
  burst: number;
  /** A stream that would wait longer than this is refused (istiod: 1 s). */
  maxWaitMs: number;
  clock: Clock;
  /** Told the number of waiting streams whenever it changes (a gauge). */
  onWaitingChange?: (waiting: number) => void;
  /** An `admitted` callback threw (a bug in the caller): reported here, and the other waiting streams go on. */
  onError?: (err: unknown) => void;
}

/** A stream waiting for admission; `cancel` when it closes first, so it does not take a token. */
export interface AdmissionTicket {
  cancel(): void;
}

export interface AdmissionStats {
  ratePerSecond: number;
  burst: number;
  maxWaitMs: number;
  /** Streams admitted since start, at once or after waiting. */
  admitted: number;
  /** Of those, the ones that had to wait. */
  delayed: number;
  /** Streams refused because their wait would have exceeded maxWaitMs. */
  refused: number;
  waiting: number;
}

interface Waiter {
  since: number;
  admitted: (waitedMs: number) => void;
}

const NOTHING_TO_CANCEL: AdmissionTicket = { cancel: () => {} };

export class AdmissionLimiter {
  private readonly o: AdmissionOptions;
  private readonly intervalMs: number;
  private tokens: number;
  private refilledAt: number;
  /** Insertion order is arrival order: the first entry is admitted next. */
  private readonly waiters = new Set<Waiter>();
  private timer: Timer | undefined;
  private readonly counts = { admitted: 0, delayed: 0, refused: 0 };

  constructor(options: AdmissionOptions) {
    if (!(options.ratePerSecond > 0)) throw new Error('admission rate must be > 0 (use no limiter for unlimited)');
    if (!(options.burst >= 1)) throw new Error('admission burst must be ≥ 1');
    this.o = options;
    this.intervalMs = 1000 / options.ratePerSecond;
    this.tokens = options.burst;
    this.refilledAt = options.clock.now();
  }

  /**
   * Asks to admit one new stream. `admitted` runs when it gets a token: synchronously, before this returns, when one
   * is free and no stream waits ahead of it; later otherwise. Returns a ticket to cancel the wait, or undefined when
   * the expected wait exceeds maxWaitMs: the stream is refused and `admitted` never runs.
   */
  request(admitted: (waitedMs: number) => void): AdmissionTicket | undefined {
    const now = this.o.clock.now();
    this.refill(now);
    if (this.waiters.size === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      this.counts.admitted++;
      admitted(0);
      return NOTHING_TO_CANCEL;
    }
    // Every stream already waiting takes the next token, then this one; tokens accrue one per interval.
    const expectedWaitMs = (this.waiters.size + 1 - this.tokens) * this.intervalMs;
    if (expectedWaitMs > this.o.maxWaitMs) {
      this.counts.refused++;
      return undefined;
    }
    const waiter: Waiter = { since: now, admitted };
    this.waiters.add(waiter);
    this.o.onWaitingChange?.(this.waiters.size);
    this.schedule();
    return {
      cancel: () => {
        if (!this.waiters.delete(waiter)) return;
        this.o.onWaitingChange?.(this.waiters.size);
        if (this.waiters.size === 0) this.stopTimer();
      },
    };
  }

  stats(): AdmissionStats {
    return { ratePerSecond: this.o.ratePerSecond, burst: this.o.burst, maxWaitMs: this.o.maxWaitMs, ...this.counts, waiting: this.waiters.size };
  }

  /** Drops every waiting stream without admitting it (shutdown: their calls are being ended anyway). */
  close(): void {
    this.stopTimer();
    if (this.waiters.size === 0) return;
    this.waiters.clear();
    this.o.onWaitingChange?.(0);
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.o.burst, this.tokens + (now - this.refilledAt) / this.intervalMs);
    this.refilledAt = now;
  }

  private schedule(): void {
    if (this.timer || this.waiters.size === 0) return;
    const delay = Math.max(1, Math.ceil((1 - this.tokens) * this.intervalMs));
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      this.admitWaiting();
    }, delay);
    // Waiting streams keep their own sockets open; the timer alone must not keep a stopping process alive.
    this.timer.unref?.();
  }

  private admitWaiting(): void {
    const now = this.o.clock.now();
    this.refill(now);
    let changed = false;
    while (this.tokens >= 1 && this.waiters.size > 0) {
      const next = this.waiters.values().next().value as Waiter;
      this.waiters.delete(next);
      this.tokens -= 1;
      this.counts.admitted++;
      this.counts.delayed++;
      changed = true;
      // The callback belongs to one stream; whatever it does must not stop the others' admission.
      try {
        next.admitted(now - next.since);
      } catch (err) {
        this.o.onError?.(err);
      }
    }
    if (changed) this.o.onWaitingChange?.(this.waiters.size);
    this.schedule();
  }

  private stopTimer(): void {
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
