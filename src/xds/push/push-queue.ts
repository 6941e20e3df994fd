/**
 * Fans a push out to connections without holding the event loop: connections are pushed one after another and the
 * loop yields every `sliceMs` (architecture rule 5). A connection queued twice gets one merged push.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { mergePush } from '../protocol/connection.ts';
import type { PushRequest } from '../protocol/provider.ts';

export interface Pushable {
  push(req: PushRequest): void;
  readonly closed: boolean;
}

export class PushQueue<C extends Pushable> {
  private readonly pending = new Map<C, PushRequest>();
  private running: Promise<void> = Promise.resolve();
  /** Set and cleared synchronously by drain(), so an enqueue right after a drain's last push starts a new one. */
  private draining = false;
  private readonly sliceMs: number;

  constructor(options: { sliceMs?: number } = {}) {
    this.sliceMs = options.sliceMs ?? 15;
  }

  enqueue(connections: Iterable<C>, req: PushRequest): Promise<void> {
    for (const c of connections) this.pending.set(c, mergePush(this.pending.get(c), req));
    if (!this.draining) this.running = this.drain();
    return this.running;
  }

  get size(): number {
    return this.pending.size;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      let sliceStart = performance.now();
      while (this.pending.size > 0) {
        const [conn, req] = this.pending.entries().next().value as [C, PushRequest];
        this.pending.delete(conn);
        if (!conn.closed) conn.push(req);
        if (performance.now() - sliceStart > this.sliceMs) {
          await yieldToLoop();
          sliceStart = performance.now();
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
