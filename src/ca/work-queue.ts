/**
 * A first-in, first-out queue for CPU-bound work (CSR verification and signing) that runs in time slices: at most
 * `sliceMs` of work per event-loop turn, then it yields so responses are flushed and other streams (ADS on the same
 * process) get a turn — architecture.md performance rule 5. Without it, a mass restart's thousands of continuations
 * run back to back as microtasks: the loop is held for seconds and every caller gets its answer at the very end.
 * FIFO keeps the first callers' latency low. A bounded length turns an overload into fast RESOURCE_EXHAUSTED answers
 * (istio-agent retries with backoff) instead of unbounded memory.
 */

export class QueueFullError extends Error {}

export class SlicedWorkQueue {
  private readonly sliceMs: number;
  private readonly maxLength: number;
  private items: Array<(() => void) | undefined> = [];
  private head = 0;
  private scheduled = false;

  constructor(options: { sliceMs?: number; maxLength?: number } = {}) {
    this.sliceMs = options.sliceMs ?? 10;
    this.maxLength = options.maxLength ?? 50_000;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** Runs `fn` in turn; rejects with QueueFullError at once when `maxLength` items are already waiting. */
  run<T>(fn: () => T): Promise<T> {
    if (this.length >= this.maxLength) return Promise.reject(new QueueFullError(`work queue full (${this.maxLength} waiting)`));
    return new Promise<T>((resolve, reject) => {
      this.items.push(() => {
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    if (this.length === 0) return;
    const end = performance.now() + this.sliceMs;
    do {
      const item = this.items[this.head];
      this.items[this.head++] = undefined;
      item?.();
    } while (this.head < this.items.length && performance.now() < end);
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else {
      if (this.head > 4096 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      this.schedule();
    }
  }
}
