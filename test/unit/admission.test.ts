/** The new-stream admission limiter (src/xds/protocol/admission.ts) on a fake clock: rate, burst, wait bound, cancel. */
import { describe, expect, it } from 'vitest';
import type { Clock, Timer } from '../../src/shared/clock.ts';
import { AdmissionLimiter } from '../../src/xds/protocol/admission.ts';

/** A clock whose time moves only when the test says; due timers run in order as it passes them. */
class FakeClock implements Clock {
  private t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void; unref(): void }> = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.t + ms, fn, unref: () => {} };
    this.timers.push(timer);
    return timer;
  }
  clearTimeout(timer: Timer): void {
    this.timers = this.timers.filter((t) => t !== timer);
  }
  /** Moves time forward by `ms`, running each timer at its due time. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }
  /** Moves time forward without running timers: the event loop was busy; the next advance runs the late ones. */
  jump(ms: number): void {
    this.t += ms;
  }
  get pending(): number {
    return this.timers.length;
  }
}

function limiter(clock: FakeClock, ratePerSecond: number, burst = 1, maxWaitMs = 1000, onWaitingChange?: (n: number) => void) {
  return new AdmissionLimiter({ ratePerSecond, burst, maxWaitMs, clock, ...(onWaitingChange ? { onWaitingChange } : {}) });
}

describe('AdmissionLimiter', () => {
  it('admits the first stream at once, synchronously, and queues the next for one interval', () => {
    const clock = new FakeClock();
    const l = limiter(clock, 10);
    const admitted: Array<{ i: number; at: number; waited: number }> = [];
    const ask = (i: number) => l.request((waited) => admitted.push({ i, at: clock.now(), waited }));
    expect(ask(0)).toBeDefined();
    expect(admitted).toEqual([{ i: 0, at: 1_000_000, waited: 0 }]);
    expect(ask(1)).toBeDefined();
    expect(admitted).toHaveLength(1);
    clock.advance(99);
    expect(admitted).toHaveLength(1);
    clock.advance(1);
    expect(admitted[1]).toEqual({ i: 1, at: 1_000_100, waited: 100 });
  });

  it('admits waiting streams in arrival order, one per interval', () => {
    const clock = new FakeClock();
    const l = limiter(clock, 20);
    const order: number[] = [];
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      l.request(() => {
        order.push(i);
        times.push(clock.now());
      });
    }
    clock.advance(1000);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let k = 1; k < times.length; k++) expect(times[k]! - times[k - 1]!).toBe(50);
    expect(l.stats()).toMatchObject({ admitted: 10, delayed: 9, refused: 0, waiting: 0 });
  });

  it('refuses at once a stream whose expected wait exceeds the bound, and only those', () => {
    const clock = new FakeClock();
    // 10/s and 1 s of wait: the first is admitted, the next 10 wait (100…1000 ms), the 12th would wait 1.1 s.
    const l = limiter(clock, 10);
    const tickets = Array.from({ length: 14 }, () => l.request(() => {}));
    expect(tickets.map((t) => t !== undefined)).toEqual([...Array(11).fill(true), false, false, false]);
    expect(l.stats()).toMatchObject({ admitted: 1, refused: 3, waiting: 10 });
    // As the queue drains, room opens up again.
    clock.advance(100);
    expect(l.request(() => {})).toBeDefined();
    expect(l.request(() => {})).toBeUndefined();
  });

  it('never admits more than burst + rate × T in any window, however the requests arrive', () => {
    const clock = new FakeClock();
    const rate = 25;
    const burst = 3;
    const l = limiter(clock, rate, burst, 2000);
    const at: number[] = [];
    // Bursty arrivals: clumps of 40 requests every 700 ms, with idle gaps that refill the bucket to the burst.
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 40; i++) l.request(() => at.push(clock.now()));
      clock.advance(round % 3 === 2 ? 3000 : 700);
    }
    clock.advance(5000);
    expect(at.length).toBeGreaterThan(100);
    for (let i = 0; i < at.length; i++) {
      for (let j = i; j < at.length; j++) {
        const windowMs = at[j]! - at[i]!;
        expect(j - i + 1).toBeLessThanOrEqual(burst + (rate * windowMs) / 1000);
      }
    }
  });

  it('loses the tokens a late timer would bunch up: a busy server admits fewer streams, not more at once', () => {
    const clock = new FakeClock();
    const l = limiter(clock, 10);
    const at: number[] = [];
    for (let i = 0; i < 6; i++) l.request(() => at.push(clock.now()));
    expect(at).toHaveLength(1);
    // The event loop was blocked for 450 ms: the timer due at +100 ms runs now. Only one token (the burst) is there.
    clock.jump(450);
    clock.advance(0);
    expect(at).toHaveLength(2);
    clock.advance(100);
    expect(at).toHaveLength(3);
  });

  it('a cancelled wait takes no token, and the next stream moves up', () => {
    const clock = new FakeClock();
    const waiting: number[] = [];
    const l = limiter(clock, 10, 1, 1000, (n) => waiting.push(n));
    const got: string[] = [];
    l.request(() => got.push('a'));
    const b = l.request(() => got.push('b'))!;
    l.request(() => got.push('c'));
    expect(waiting.at(-1)).toBe(2);
    b.cancel();
    b.cancel(); // twice is harmless
    expect(waiting.at(-1)).toBe(1);
    clock.advance(100);
    expect(got).toEqual(['a', 'c']);
    expect(waiting.at(-1)).toBe(0);
    expect(l.stats()).toMatchObject({ admitted: 2, waiting: 0 });
  });

  it('stops its timer when nothing waits any more, and close drops the waiting streams', () => {
    const clock = new FakeClock();
    const l = limiter(clock, 10);
    l.request(() => {});
    const t = l.request(() => {})!;
    expect(clock.pending).toBe(1);
    t.cancel();
    expect(clock.pending).toBe(0);
    let ran = false;
    l.request(() => (ran = true));
    l.close();
    clock.advance(1000);
    expect(ran).toBe(false);
    expect(l.stats().waiting).toBe(0);
  });

  it('keeps admitting the others when one callback throws', () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    const l = new AdmissionLimiter({ ratePerSecond: 10, burst: 1, maxWaitMs: 1000, clock, onError: (e) => errors.push(e) });
    const got: number[] = [];
    l.request(() => got.push(0));
    l.request(() => {
      throw new Error('boom');
    });
    l.request(() => got.push(2));
    clock.advance(300);
    expect(got).toEqual([0, 2]);
    expect(errors).toHaveLength(1);
  });

  it('refuses a non-positive rate (no limiter at all is how unlimited is spelled)', () => {
    expect(() => limiter(new FakeClock(), 0)).toThrow(/rate/);
  });
});
