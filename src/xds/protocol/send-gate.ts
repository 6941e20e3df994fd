/**
 * A budget for bytes written to streams but not yet flushed, shared by all streams. When 2,000 proxies connect at once
 * each wants megabytes; written all at once they would sit in gRPC buffers (gigabytes of RSS). Instead a stream that
 * finds the budget spent waits its turn, its pending work merged, and is resumed as earlier writes flush.
 */
export interface Resumable {
  resume(): void;
  readonly closed: boolean;
}

export class SendGate {
  private inflight = 0;
  private readonly limit: number;
  private readonly waiters = new Set<Resumable>();
  private waking = false;

  constructor(limitBytes: number) {
    this.limit = limitBytes;
  }

  get open(): boolean {
    return this.inflight < this.limit;
  }

  get inflightBytes(): number {
    return this.inflight;
  }

  get waiting(): number {
    return this.waiters.size;
  }

  take(bytes: number): void {
    this.inflight += bytes;
  }

  release(bytes: number): void {
    this.inflight = Math.max(0, this.inflight - bytes);
    this.wake();
  }

  /** Queues a stream until the budget has room (first come, first served). */
  wait(stream: Resumable): void {
    this.waiters.add(stream);
  }

  forget(stream: Resumable): void {
    this.waiters.delete(stream);
  }

  private wake(): void {
    if (this.waking) return; // a resumed stream's own releases must not recurse
    this.waking = true;
    try {
      while (this.open && this.waiters.size > 0) {
        const next = this.waiters.values().next().value as Resumable;
        this.waiters.delete(next);
        if (!next.closed) next.resume();
      }
    } finally {
      this.waking = false;
    }
  }
}
