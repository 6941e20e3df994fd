/**
 * The CA's time-sliced FIFO (src/ca/work-queue.ts): order kept, the event loop gets turns during a long backlog,
 * errors stay with their item, and a full queue answers at once.
 */
import { describe, expect, it } from 'vitest';
import { QueueFullError, SlicedWorkQueue } from '../../src/ca/work-queue.ts';

const spin = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('SlicedWorkQueue', () => {
  it('runs items first in, first out, and returns their results', async () => {
    const q = new SlicedWorkQueue();
    const order: number[] = [];
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => q.run(() => (order.push(i), i * 2))));
    expect(order).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(results[99]).toBe(198);
    expect(q.length).toBe(0);
  });

  it('yields to the event loop between slices of a long backlog', async () => {
    const q = new SlicedWorkQueue({ sliceMs: 5 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    // 200 × 1 ms of work: without slicing the loop would be held for 200 ms in one go.
    await Promise.all(Array.from({ length: 200 }, () => q.run(() => spin(1))));
    clearInterval(timer);
    expect(performance.now() - started).toBeGreaterThanOrEqual(200);
    expect(ticks).toBeGreaterThan(10);
  });

  it('rejects only the item that threw', async () => {
    const q = new SlicedWorkQueue();
    const a = q.run(() => {
      throw new Error('bad');
    });
    const b = q.run(() => 'ok');
    await expect(a).rejects.toThrow('bad');
    await expect(b).resolves.toBe('ok');
  });

  it('refuses new work at once when full', async () => {
    const q = new SlicedWorkQueue({ maxLength: 3 });
    const ok = [q.run(() => 1), q.run(() => 2), q.run(() => 3)];
    await expect(q.run(() => 4)).rejects.toBeInstanceOf(QueueFullError);
    expect(await Promise.all(ok)).toEqual([1, 2, 3]);
    await expect(q.run(() => 5)).resolves.toBe(5);
  });
});
