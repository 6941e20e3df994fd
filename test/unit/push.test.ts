/**
 * The push machinery on its own: the Debouncer against a fake clock, and the PushQueue's merging, skipping and
 * yielding (architecture.md, Tests item 1).
 */
import { describe, expect, it } from 'vitest';
import type { Clock, Timer } from '../../src/shared/clock.ts';
import { mergePush } from '../../src/xds/protocol/connection.ts';
import type { PushRequest } from '../../src/xds/protocol/provider.ts';
import { Debouncer } from '../../src/xds/push/debounce.ts';
import { PushQueue, type Pushable } from '../../src/xds/push/push-queue.ts';

/** A clock whose time moves only when the test calls advance(); timers fire in time order. */
class FakeClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<Timer, { at: number; seq: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer: Timer = {};
    this.timers.set(timer, { at: this.t + Math.max(0, ms), seq: ++this.seq, fn });
    return timer;
  }

  clearTimeout(timer: Timer): void {
    this.timers.delete(timer);
  }

  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in order; lets promise callbacks run after each one. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error(`timers keep firing at t=${this.t}: a zero-delay timer loop`);
      await settle();
      let next: [Timer, { at: number; seq: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[1].seq < next[1].seq))) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** Lets pending promise callbacks (microtasks) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

interface Release<E> {
  merged: E;
  firstAt: number;
  at: number;
}

function debouncer(clock: FakeClock, release?: (merged: number[]) => Promise<void> | void) {
  const releases: Array<Release<number[]>> = [];
  const d = new Debouncer<number[]>({
    quietMs: 100,
    maxMs: 10_000,
    clock,
    merge: (a, b) => [...a, ...b],
    release: (merged, firstAt) => {
      releases.push({ merged, firstAt, at: clock.now() });
      return release?.(merged);
    },
  });
  return { d, releases };
}

describe('Debouncer', () => {
  it('releases after a quiet period, which every new event restarts', async () => {
    const clock = new FakeClock();
    const { d, releases } = debouncer(clock);
    d.add([1]);
    await clock.advance(90);
    expect(releases).toEqual([]);
    d.add([2]); // t=90: the quiet period restarts
    await clock.advance(90); // t=180
    expect(releases).toEqual([]);
    await clock.advance(9); // t=189
    expect(releases).toEqual([]);
    await clock.advance(1); // t=190 = 90 + 100
    expect(releases).toEqual([{ merged: [1, 2], firstAt: 0, at: 190 }]);
    await clock.advance(1000);
    expect(releases).toHaveLength(1);
  });

  it('forces a release maxMs after the first event under a constant stream of events', async () => {
    const clock = new FakeClock();
    const { d, releases } = debouncer(clock);
    // An event every 50 ms for 12 s: never 100 ms of quiet.
    for (let i = 0; i < 240; i++) {
      d.add([i]);
      await clock.advance(50);
    }
    expect(releases).toHaveLength(1);
    expect(releases[0]!.at).toBe(10_000);
    expect(releases[0]!.firstAt).toBe(0);
    // Events at 0, 50, …, 9950 went into the first release; nothing was lost or duplicated.
    expect(releases[0]!.merged).toEqual(Array.from({ length: 200 }, (_, i) => i));
    await clock.advance(100); // quiet now
    expect(releases).toHaveLength(2);
    expect(releases[1]!.firstAt).toBe(10_000);
    expect(releases[1]!.merged).toEqual(Array.from({ length: 40 }, (_, i) => 200 + i));
  });

  it('applies merge to every event of a batch', async () => {
    const clock = new FakeClock();
    const merges: Array<[Set<string>, Set<string>]> = [];
    const released: Array<Set<string>> = [];
    const d = new Debouncer<Set<string>>({
      quietMs: 100,
      maxMs: 10_000,
      clock,
      merge: (a, b) => {
        merges.push([a, b]);
        return new Set([...a, ...b]);
      },
      release: (merged) => {
        released.push(merged);
      },
    });
    d.add(new Set(['a']));
    d.add(new Set(['b', 'a']));
    d.add(new Set(['c']));
    await clock.advance(100);
    expect(merges).toHaveLength(2);
    expect(released).toHaveLength(1);
    expect([...released[0]!].sort()).toEqual(['a', 'b', 'c']);
  });

  it('has one release in flight at a time; events during it wait for the next release', async () => {
    const clock = new FakeClock();
    let finish!: () => void;
    let inFlight = 0;
    let maxInFlight = 0;
    const { d, releases } = debouncer(clock, async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((r) => (finish = r));
      inFlight--;
    });
    d.add([1]);
    await clock.advance(100);
    expect(releases.map((r) => r.merged)).toEqual([[1]]);
    expect(inFlight).toBe(1);

    // While the first release runs, more events arrive and go quiet: they must wait.
    d.add([2]);
    await clock.advance(50);
    d.add([3]);
    await clock.advance(5000);
    expect(releases).toHaveLength(1);

    finish();
    await clock.advance(0);
    expect(releases.map((r) => r.merged)).toEqual([[1], [2, 3]]);
    expect(releases[1]!.firstAt).toBe(100);
    expect(maxInFlight).toBe(1);
    finish();
    await clock.advance(1000);
    expect(releases).toHaveLength(2);
    expect(inFlight).toBe(0);
  });

  it('a failing release is reported and does not stop later releases', async () => {
    const clock = new FakeClock();
    const errors: unknown[] = [];
    const released: number[][] = [];
    const d = new Debouncer<number[]>({
      quietMs: 100,
      maxMs: 10_000,
      clock,
      merge: (a, b) => [...a, ...b],
      release: (merged) => {
        released.push(merged);
        if (merged.includes(1)) throw new Error('boom');
      },
      onError: (err) => errors.push(err),
    });
    d.add([1]);
    await clock.advance(100);
    expect(errors).toHaveLength(1);
    d.add([2]);
    await clock.advance(100);
    expect(released).toEqual([[1], [2]]);
  });

  it('flush releases at once; stop releases nothing more', async () => {
    const clock = new FakeClock();
    const { d, releases } = debouncer(clock);
    d.add([1]);
    await d.flush();
    await settle();
    expect(releases.map((r) => r.merged)).toEqual([[1]]);
    expect(releases[0]!.at).toBe(0);
    d.add([2]);
    d.stop();
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(20_000);
    expect(releases).toHaveLength(1);
  });
});

class FakeConnection implements Pushable {
  readonly name: string;
  closed = false;
  readonly pushes: PushRequest[] = [];
  private readonly burnMs: number;
  private readonly onPush: ((c: FakeConnection) => void) | undefined;

  constructor(name: string, burnMs = 0, onPush?: (c: FakeConnection) => void) {
    this.name = name;
    this.burnMs = burnMs;
    this.onPush = onPush;
  }

  push(req: PushRequest): void {
    const end = performance.now() + this.burnMs;
    while (performance.now() < end) {
      // busy: a push that costs CPU
    }
    this.pushes.push(req);
    this.onPush?.(this);
  }
}

const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const incremental = (version: string, start: number, names: Record<string, string[]>): PushRequest => ({
  version,
  start,
  full: false,
  names: new Map(Object.entries(names).map(([t, n]) => [t, new Set(n)])),
});
const namesOf = (req: PushRequest | undefined) =>
  Object.fromEntries([...(req?.names ?? new Map<string, ReadonlySet<string>>())].map(([t, s]) => [t, [...s].sort()]));

describe('mergePush', () => {
  it('full dominates, names are united per type, the newest version and the oldest start win', () => {
    const a = incremental('1', 10, { [EDS]: ['x'] });
    const b = incremental('2', 5, { [EDS]: ['y'], [CDS]: ['c'] });
    const m = mergePush(a, b);
    expect(m.full).toBe(false);
    expect(m.version).toBe('2');
    expect(m.start).toBe(5);
    expect(namesOf(m)).toEqual({ [EDS]: ['x', 'y'], [CDS]: ['c'] });
    const f = mergePush(m, { version: '3', start: 20, full: true });
    expect(f).toEqual({ version: '3', start: 5, full: true });
    expect(mergePush({ version: '4', start: 1, full: true }, incremental('5', 2, { [EDS]: ['z'] })).full).toBe(true);
    expect(mergePush(undefined, a)).toBe(a);
  });
});

describe('PushQueue', () => {
  it('gives a connection queued twice before its turn one merged push', async () => {
    // sliceMs 0 with pushes that cost time: the queue yields after every connection, so later enqueues merge.
    const queue = new PushQueue<FakeConnection>({ sliceMs: 0 });
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new FakeConnection(n, 0.2)) as [FakeConnection, FakeConnection, FakeConnection];
    const done = queue.enqueue([a, b, c], incremental('1', 100, { [EDS]: ['x'] }));
    // `a` was pushed synchronously; b and c are still queued.
    expect(a.pushes).toHaveLength(1);
    expect(b.pushes).toHaveLength(0);
    expect(queue.size).toBe(2);
    const again = queue.enqueue([c], incremental('2', 200, { [EDS]: ['y'] }));
    queue.enqueue([b], { version: '3', start: 300, full: true });
    expect(again).toBe(done);
    await done;

    expect(a.pushes).toHaveLength(1);
    expect(b.pushes).toEqual([{ version: '3', start: 100, full: true }]);
    expect(c.pushes).toHaveLength(1);
    expect(c.pushes[0]!.full).toBe(false);
    expect(c.pushes[0]!.version).toBe('2');
    expect(c.pushes[0]!.start).toBe(100);
    expect(namesOf(c.pushes[0])).toEqual({ [EDS]: ['x', 'y'] });
    expect(queue.size).toBe(0);
  });

  it('skips closed connections, including ones that close while queued', async () => {
    const queue = new PushQueue<FakeConnection>({ sliceMs: 0 });
    const closedBefore = new FakeConnection('closed');
    closedBefore.closed = true;
    const later = new FakeConnection('later', 0.2);
    const first = new FakeConnection('first', 0.2, () => {
      later.closed = true; // closes while the queue is running, before its turn
    });
    const open = new FakeConnection('open', 0.2);
    await queue.enqueue([first, closedBefore, later, open], { version: '1', start: 0, full: true });
    expect(first.pushes).toHaveLength(1);
    expect(closedBefore.pushes).toHaveLength(0);
    expect(later.pushes).toHaveLength(0);
    expect(open.pushes).toHaveLength(1);
    expect(queue.size).toBe(0);
  });

  it('yields to the event loop during a long push', async () => {
    const queue = new PushQueue<FakeConnection>();
    const conns = Array.from({ length: 2000 }, (_, i) => new FakeConnection(`c${i}`, 0.05));
    const pushed = () => conns.reduce((n, c) => n + c.pushes.length, 0);
    let seenByOtherWork: number | undefined;
    const t0 = performance.now();
    const done = queue.enqueue(conns, { version: '1', start: 0, full: true });
    setImmediate(() => {
      seenByOtherWork = pushed();
    });
    await done;
    const took = performance.now() - t0;
    // ~100 ms of pushing in 15 ms slices: other work ran in between.
    expect(took).toBeGreaterThan(50);
    expect(seenByOtherWork).toBeDefined();
    expect(seenByOtherWork!).toBeGreaterThan(0);
    expect(seenByOtherWork!).toBeLessThan(2000);
    expect(pushed()).toBe(2000);
    for (const c of conns) expect(c.pushes).toHaveLength(1);
  });

  it('a new enqueue after the queue drained starts a new run', async () => {
    const queue = new PushQueue<FakeConnection>();
    const a = new FakeConnection('a');
    await queue.enqueue([a], { version: '1', start: 0, full: true });
    await queue.enqueue([a], { version: '2', start: 0, full: true });
    expect(a.pushes.map((p) => p.version)).toEqual(['1', '2']);
  });
});

describe('push queue hand-off', () => {
  it('a second enqueue right after a drain that finished synchronously is still pushed', async () => {
    const { PushQueue } = await import('../../src/xds/push/push-queue.ts');
    const q = new PushQueue<{ closed: boolean; push: (r: unknown) => void; n: number }>();
    const a = { closed: false, n: 0, push() { a.n++; } };
    const b = { closed: false, n: 0, push() { b.n++; } };
    // The first drain pushes `a` and ends before its promise settles; the second enqueue must start a new drain
    // rather than wait on the finished one.
    const first = q.enqueue([a], { version: 'v1', start: 0, full: true });
    const second = q.enqueue([b], { version: 'v2', start: 0, full: true });
    await Promise.all([first, second]);
    expect([a.n, b.n]).toEqual([1, 1]);
    expect(q.size).toBe(0);
  });
});
