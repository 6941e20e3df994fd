/**
 * Debounce (istiod's PILOT_DEBOUNCE_AFTER / _MAX): changes are merged and released after `quietMs` without a new
 * one, or `maxMs` after the first, whichever comes first. One release is in flight at a time; changes that arrive
 * meanwhile wait for the next.
 */
import type { Clock, Timer } from '../../shared/clock.ts';

export interface DebounceOptions<E> {
  quietMs: number;
  maxMs: number;
  clock: Clock;
  merge: (a: E, b: E) => E;
  release: (merged: E, firstAt: number) => Promise<void> | void;
  onError?: (err: unknown) => void;
}

export class Debouncer<E> {
  private readonly o: DebounceOptions<E>;
  private pending: E | undefined;
  private firstAt = 0;
  private lastAt = 0;
  private timer: Timer | undefined;
  private inFlight = false;
  private stopped = false;

  constructor(options: DebounceOptions<E>) {
    this.o = options;
  }

  add(event: E): void {
    if (this.stopped) return;
    const now = this.o.clock.now();
    if (this.pending === undefined) {
      this.pending = event;
      this.firstAt = now;
    } else {
      this.pending = this.o.merge(this.pending, event);
    }
    this.lastAt = now;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.inFlight || this.pending === undefined) return;
    const now = this.o.clock.now();
    const wait = Math.max(0, Math.min(this.lastAt + this.o.quietMs, this.firstAt + this.o.maxMs) - now);
    this.timer = this.o.clock.setTimeout(() => this.tick(), wait);
  }

  private tick(): void {
    this.timer = undefined;
    if (this.pending === undefined || this.stopped) return;
    const now = this.o.clock.now();
    const quiet = now - this.lastAt >= this.o.quietMs;
    const overdue = now - this.firstAt >= this.o.maxMs;
    if (!quiet && !overdue) {
      this.schedule();
      return;
    }
    const merged = this.pending;
    const firstAt = this.firstAt;
    this.pending = undefined;
    this.inFlight = true;
    Promise.resolve()
      .then(() => this.o.release(merged, firstAt))
      .catch((err) => this.o.onError?.(err))
      .finally(() => {
        this.inFlight = false;
        this.schedule();
      });
  }

  /** Releases anything pending now (used at startup and in tests). */
  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      this.o.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending === undefined || this.inFlight) return;
    this.lastAt = -Infinity;
    this.firstAt = -Infinity;
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
