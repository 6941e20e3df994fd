/**
 * Config status (src/app/config-status.ts): the tracker's per-object SYNCED / PENDING / NACKED from protocol events,
 * and the StatusWriter that writes statuses off the push path — coalesced, rate-limited, one write in flight, a
 * hanging sink timed out and retried — plus proxy-status's table from /debug/syncz entries.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigStatusTracker, MemoryStatusSink, StatusWriter, type ObjectStatus, type StatusSink, type StatusUpdate } from '../../src/app/config-status.ts';
import { renderStatusTable, statusRows, type SynczEntry } from '../../src/app/proxy-status.ts';
import type { ConfigObject } from '../../src/config/object.ts';
import type { ConfigSnapshot } from '../../src/model/config-store.ts';
import { TypeUrl } from '../../src/proto/types.ts';

const LDS = TypeUrl.Listener;
const RDS = TypeUrl.RouteConfiguration;
const CDS = TypeUrl.Cluster;

function obj(kind: string, name: string, spec: unknown, apiVersion = 'networking.istio.io/v1', resourceVersion?: string): ConfigObject {
  return { apiVersion, kind, metadata: { name, namespace: 'default', labels: {}, annotations: {}, creationTimestamp: '2024-01-01T00:00:00Z', ...(resourceVersion ? { resourceVersion } : {}) }, spec };
}

function snapshot(objects: ConfigObject[]): ConfigSnapshot {
  return {
    revision: 1,
    ofKind: <S>(kind: string) => objects.filter((o) => o.kind === kind) as Array<ConfigObject<S>>,
    get: <S>(kind: string, ns: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.namespace === ns && o.metadata.name === name) as ConfigObject<S> | undefined,
  };
}

const KINDS = ['VirtualService', 'DestinationRule', 'Pod'];
const status = (t: ConfigStatusTracker, key: string) => t.objectStatuses().get(key)!;
const counts = (s: ObjectStatus) => ({ total: s.total, synced: s.synced, pending: s.pending, nacked: s.nacked });

/** A connection that fetched LDS and RDS at `version` and ACKed both. */
function syncedAt(t: ConfigStatusTracker, id: string, version: string): void {
  for (const type of [LDS, RDS]) {
    t.sent(id, type, version);
    t.acked(id, type);
  }
}

describe('ConfigStatusTracker', () => {
  const vs1 = obj('VirtualService', 'reviews', { http: [{ route: [{ destination: { host: 'reviews' }, weight: 100 }] }] });
  const vs2 = obj('VirtualService', 'reviews', { http: [{ route: [{ destination: { host: 'reviews' }, weight: 50 }] }] });
  const dr = obj('DestinationRule', 'reviews', { host: 'reviews' }, 'networking.istio.io/v1', '42');
  const pod = obj('Pod', 'p', {}, 'v1');

  it('records each object at the first push that holds its content; only Istio kinds; refs carry resourceVersion or a content hash', () => {
    const t = new ConfigStatusTracker({ kinds: KINDS });
    t.recordPush('v1', snapshot([vs1, dr, pod]));
    const all = t.objectStatuses();
    expect([...all.keys()].sort()).toEqual(['DestinationRule/default/reviews', 'VirtualService/default/reviews']);
    expect(all.get('DestinationRule/default/reviews')!.ref).toBe('DestinationRule/default/reviews@42');
    expect(all.get('VirtualService/default/reviews')!.ref).toMatch(/^VirtualService\/default\/reviews@sha1:[0-9a-f]{12}$/);
    t.recordPush('v2', snapshot([vs2, dr, pod]), ['VirtualService/default/reviews', 'Pod/default/p']);
    expect(status(t, 'VirtualService/default/reviews').version).toBe('v2');
    expect(status(t, 'DestinationRule/default/reviews').version).toBe('v1');
    // The same content recorded again keeps its first version; a deleted object is forgotten.
    t.recordPush('v3', snapshot([vs2]), ['VirtualService/default/reviews', 'DestinationRule/default/reviews']);
    expect(status(t, 'VirtualService/default/reviews').version).toBe('v2');
    expect(t.objectStatuses().has('DestinationRule/default/reviews')).toBe(false);
  });

  it('a proxy that NACKs is NACKED with its error while the others are SYNCED; objects of older versions stay SYNCED', () => {
    const t = new ConfigStatusTracker({ kinds: KINDS });
    t.recordPush('v1', snapshot([vs1, dr]));
    syncedAt(t, 'a', 'v1');
    syncedAt(t, 'b', 'v1');
    expect(counts(status(t, 'VirtualService/default/reviews'))).toEqual({ total: 2, synced: 2, pending: 0, nacked: 0 });

    // v2 changes the VirtualService: both are sent RDS in the push, LDS is unchanged (not resent).
    t.recordPush('v2', snapshot([vs2, dr]), ['VirtualService/default/reviews']);
    for (const id of ['a', 'b']) {
      t.sent(id, RDS, 'v2');
      t.pushed(id, 'v2');
    }
    expect(counts(status(t, 'VirtualService/default/reviews'))).toEqual({ total: 2, synced: 0, pending: 2, nacked: 0 });
    t.acked('a', RDS);
    t.nacked('b', RDS, 'route rejected: bad weight');
    const vs = status(t, 'VirtualService/default/reviews');
    expect(counts(vs)).toEqual({ total: 2, synced: 1, pending: 0, nacked: 1 });
    expect(vs.nacks).toEqual([{ proxy: 'b', type: 'RDS', error: 'route rejected: bad weight' }]);
    expect(vs.conditions[0]).toMatchObject({ type: 'Reconciled', status: 'False', reason: 'Rejected' });
    expect(vs.conditions[0]!.message).toContain('1/2 proxies up to date, 1 rejected it: b RDS: route rejected: bad weight');
    // b still holds v1's routes (it keeps its last good config): the DestinationRule of v1 is synced on both.
    expect(counts(status(t, 'DestinationRule/default/reviews'))).toEqual({ total: 2, synced: 2, pending: 0, nacked: 0 });
    expect(status(t, 'DestinationRule/default/reviews').conditions[0]).toMatchObject({ status: 'True', reason: 'Synced' });

    const proxies = Object.fromEntries(t.proxyStatuses().map((p) => [p.id, p.types]));
    expect(proxies.a).toEqual({ LDS: { state: 'SYNCED', sent: 'v2', acked: 'v2' }, RDS: { state: 'SYNCED', sent: 'v2', acked: 'v2' } });
    expect(proxies.b!.RDS).toEqual({ state: 'NACKED', sent: 'v2', acked: 'v1', error: 'route rejected: bad weight' });

    // A later fix, ACKed: b is synced again; a disconnected proxy is no longer counted.
    t.recordPush('v3', snapshot([vs1, dr]), ['VirtualService/default/reviews']);
    t.sent('b', RDS, 'v3');
    t.pushed('b', 'v3');
    t.acked('b', RDS);
    t.disconnected('a');
    expect(counts(status(t, 'VirtualService/default/reviews'))).toEqual({ total: 1, synced: 1, pending: 0, nacked: 0 });
  });

  it('a type a push did not resend holds that push version once the push is applied (and only then)', () => {
    const t = new ConfigStatusTracker({ kinds: KINDS });
    t.recordPush('v1', snapshot([vs1]));
    syncedAt(t, 'a', 'v1');
    t.sent('a', CDS, 'v1');
    t.acked('a', CDS);
    // v2: only CDS changes (a DestinationRule is added).
    t.recordPush('v2', snapshot([vs1, dr]), ['DestinationRule/default/reviews']);
    t.sent('a', CDS, 'v2');
    expect(status(t, 'DestinationRule/default/reviews').pending).toBe(1);
    t.acked('a', CDS); // ACKed before the push loop finished with the other types: LDS/RDS still at v1
    expect(status(t, 'DestinationRule/default/reviews').pending).toBe(1);
    t.pushed('a', 'v2');
    expect(counts(status(t, 'DestinationRule/default/reviews'))).toEqual({ total: 1, synced: 1, pending: 0, nacked: 0 });
    // A change that altered no proxy's config is recorded at the current version: already synced.
    t.recordPush('v2', snapshot([vs2, dr]), ['VirtualService/default/reviews']);
    expect(status(t, 'VirtualService/default/reviews').synced).toBe(1);
  });
});

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fakeStatus(name: string, synced: number): ObjectStatus {
  return { kind: 'VirtualService', namespace: 'default', name, ref: `VirtualService/default/${name}@1`, version: 'v1', total: 1, synced, pending: 1 - synced, nacked: 0, nacks: [], conditions: [{ type: 'Reconciled', status: synced ? 'True' : 'False', reason: synced ? 'Synced' : 'Pending', message: '' }] };
}

describe('StatusWriter', () => {
  const writers: StatusWriter[] = [];
  afterEach(() => writers.splice(0).forEach((w) => w.stop()));
  const writer = (sink: StatusSink, compute: () => Map<string, ObjectStatus>, o: ConstructorParameters<typeof StatusWriter>[2] = {}) => {
    const w = new StatusWriter(sink, compute, { intervalMs: 20, timeoutMs: 60, ...o });
    writers.push(w);
    return w;
  };

  it('coalesces many changes into one write, rewrites only what changed, and reports deletions', async () => {
    const sink = new MemoryStatusSink();
    let current = new Map([['a', fakeStatus('a', 0)], ['b', fakeStatus('b', 0)]]);
    let computed = 0;
    const w = writer(sink, () => (computed++, current));
    for (let i = 0; i < 1000; i++) w.markDirty();
    await tick(60);
    expect(sink.writes).toBe(1);
    expect(computed).toBe(1);
    expect(sink.statuses.get('a')!.synced).toBe(0);
    current = new Map([['a', fakeStatus('a', 1)]]);
    let seen: StatusUpdate[] = [];
    const write = sink.write.bind(sink);
    sink.write = async (u) => {
      seen = [...u];
      return write(u);
    };
    w.markDirty();
    await tick(60);
    expect(seen.map((u) => [u.key, u.status?.synced])).toEqual([['a', 1], ['b', undefined]]);
    expect(sink.statuses.has('b')).toBe(false);
    w.markDirty(); // nothing changed: nothing written
    await tick(60);
    expect(sink.writes).toBe(2);
    expect(w.stats()).toMatchObject({ writes: 2, failures: 0, timeouts: 0, inFlight: false, unwritten: 0 });
  });

  it('a sink that never answers: markDirty stays instant, the write is aborted at the timeout and retried', async () => {
    const signals: AbortSignal[] = [];
    const hanging: StatusSink = { write: (_u, signal) => (signals.push(signal), new Promise<void>(() => {})) };
    const w = writer(hanging, () => new Map([['a', fakeStatus('a', 0)]]));
    w.markDirty();
    await tick(30);
    expect(signals).toHaveLength(1);
    expect(w.stats().inFlight).toBe(true);
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) w.markDirty();
    expect(performance.now() - t0).toBeLessThan(50);
    expect(signals).toHaveLength(1); // never two writes in flight
    await tick(150);
    expect(signals[0]!.aborted).toBe(true);
    expect(w.stats().timeouts).toBeGreaterThanOrEqual(1);
    expect(signals.length).toBeGreaterThanOrEqual(2);
  });

  it('a failed write is retried; only the leader writes; large changes go out in batches', async () => {
    let fail = true;
    const sink = new MemoryStatusSink();
    const flaky: StatusSink = { write: async (u) => (fail ? Promise.reject(new Error('apiserver said no')) : sink.write(u)) };
    let leader = false;
    const many = new Map(['a', 'b', 'c', 'd', 'e'].map((n) => [n, fakeStatus(n, 1)]));
    const w = writer(flaky, () => many, { isLeader: () => leader, batchSize: 2 });
    w.markDirty();
    await tick(50);
    expect(w.stats().failures).toBe(0); // not the leader: nothing attempted
    leader = true;
    w.markDirty();
    await tick(30);
    expect(w.stats().failures).toBeGreaterThanOrEqual(1);
    fail = false;
    await tick(250);
    expect([...sink.statuses.keys()].sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(sink.writes).toBe(3);
  });
});

describe('proxy-status table', () => {
  const w = (typeUrl: string, f: Partial<SynczEntry['watches'][number]>) => ({ typeUrl, ...f });
  it("istioctl's columns, one state per type: SYNCED, NACKED, STALE, NOT SENT, IGNORED", () => {
    const rows = statusRows([
      { id: 'b.ns-2', node: 'sidecar~10.0.0.2~b.ns~ns.svc.cluster.local', clusterId: 'Kubernetes', proxyVersion: '1.27.1', controlPlane: 'mizzen-x', watches: [w(CDS, { nonceSent: '1', nonceAcked: '1' }), w(LDS, { nonceSent: '2', nonceAcked: '1' }), w(RDS, { nonceSent: '3', nonceAcked: '2', lastNack: { message: 'bad route', nonce: '3' } })] },
      { id: 'a.ns-1', node: 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local', watches: [w(CDS, { nonceSent: '1', nonceAcked: '1' }), w(LDS, {}), w(RDS, { nonceSent: '4' })] },
    ]);
    expect(rows.map((r) => r.name)).toEqual(['a.ns', 'b.ns']);
    expect(rows[1]!.states).toEqual({ CDS: 'SYNCED', LDS: 'STALE', RDS: 'NACKED' });
    expect(rows[1]!.errors).toEqual({ RDS: 'bad route' });
    expect(rows[0]!.states).toEqual({ CDS: 'SYNCED', LDS: 'NOT SENT', RDS: 'STALE (Never Acknowledged)' });
    const lines = renderStatusTable(rows).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+CLUSTER\s+ISTIOD\s+VERSION\s+SUBSCRIBED TYPES\s+CDS\s+LDS\s+EDS\s+RDS$/);
    expect(lines[2]).toMatch(/^b\.ns\s+Kubernetes\s+mizzen-x\s+1\.27\.1\s+3 \(CDS,LDS,RDS\)\s+SYNCED\s+STALE\s+IGNORED\s+NACKED$/);
    expect(lines[1]).toMatch(/^a\.ns\s+Kubernetes\s+-\s+-\s+3 \(CDS,LDS,RDS\)\s+SYNCED\s+NOT SENT\s+IGNORED\s+STALE \(Never Acknowledged\)$/);
    // Columns line up under the header.
    expect(lines[2]!.indexOf('SYNCED')).toBe(lines[0]!.indexOf('CDS'));
  });
});
