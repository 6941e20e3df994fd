/**
 * Misbehaving ADS clients beside healthy ones (issue "Scale, faults and hostile input", item 2; reliability-security.md
 * §9 B6, E1, E6, E7 and architecture rule 4: no stream write ever blocks another stream).
 *
 * A real mizzen with a big mesh (200 services × 10 endpoints: ~700 KB of CDS and ~420 KB of EDS for a proxy that sees
 * everything) and an 8 MiB send budget. 20 healthy SotW proxies in a Sidecar-scoped namespace watch CDS and ACK at
 * once; each push is a new marker ServiceEntry file, timed from the file write to the CDS response naming it at every
 * healthy proxy. The baseline is measured first; then each bad actor runs alongside the same pushes and the healthy
 * latency must stay comparable (p90 < 3 × baseline p90 + 1.5 s, baseline re-measured before each bad actor; any push
 * not everywhere within 5 s fails at once), the healthy streams must stay open, the process must
 * keep serving, and the bytes in flight must stay within the send budget (plus one message: the gate is checked before
 * each write, so the last write may overshoot it).
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonToStruct } from '../../src/proto/struct.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import { clientCodec } from '../../src/xds/protocol/messages.ts';
import { decodeResource } from '../../src/proto/encode.ts';
import { AdsClient, adsNode } from '../support/ads-client.ts';
import { eventually, startMesh, type TestMesh } from '../support/mesh.ts';
import {
  ADS_DELTA_PATH,
  ADS_SOTW_PATH,
  bigMeshFiles,
  envoyNode,
  grpcFrame,
  HealthyFleet,
  markerCluster,
  markerYaml,
  memz,
  percentile,
  rawAdsCall,
  rawGrpcCall,
  sleep,
  sotwRequest,
  timedPushes,
  type RawStream,
} from './helpers.ts';

const HEALTHY = 20;
const BUDGET = 8 * 1024 * 1024;
/** The largest single response in this mesh is CDS (~0.7 MB); a write may overshoot the budget by one message. */
const ONE_MESSAGE = 1024 * 1024;
const PUSHES = 4;

interface Row {
  test: string;
  p50: number;
  p90: number;
  p99: number;
  inflightMaxMB: number;
  rssMB: number;
  note?: string;
}
const report: Row[] = [];

/** One mesh + healthy fleet per describe block; `pushes` runs timed pushes while whatever the test started runs. */
function harness() {
  const h = {
    mesh: undefined as unknown as TestMesh,
    fleet: undefined as unknown as HealthyFleet,
    baselineP90: 0,
    next: 1,
    /**
     * The latency bound for the current baseline: on p90 (one GC pause or split file event moves a p99 of 80 samples),
     * and with 1.5 s of slack rather than 0.5 s: the server, the healthy proxies and the bad actors share one process on
     * a shared 2-core machine, so the bad actors' legitimate work (they are proxies too) shows up as healthy latency.
     * What this test is after — a stream that blocks others — shows as a stall, which the 5 s per-push limit catches.
     */
    bound: () => 3 * h.baselineP90 + 1500,
    async pushes(name: string, note?: string): Promise<{ latencies: number[]; inflightMax: number }> {
      let inflightMax = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          inflightMax = Math.max(inflightMax, (await memz(h.mesh.monitoringPort)).send.inflightBytes);
          await sleep(50);
        }
      })();
      try {
        // A push that has not reached every healthy proxy within 5 s is a stall: fail at once.
        const latencies = await timedPushes(h.mesh, h.fleet, h.next, PUSHES, 150, 5000);
        const p90 = percentile(latencies, 0.9);
        report.push({ test: name, p50: percentile(latencies, 0.5), p90, p99: percentile(latencies, 0.99), inflightMaxMB: +(inflightMax / 1048576).toFixed(1), rssMB: Math.round(process.memoryUsage().rss / 1048576), ...(note ? { note } : {}) });
        expect(p90, `${name}: healthy push p90 ${p90} ms vs baseline p90 ${h.baselineP90} ms`).toBeLessThan(h.bound());
        expect(h.fleet.allConnected(), 'every healthy stream is still open').toBe(true);
        return { latencies, inflightMax };
      } finally {
        h.next += PUSHES;
        sampling = false;
        await sampler;
      }
    },
    /** A fresh baseline just before a bad actor starts: the machine's load (shared, 2 cores) drifts between tests. */
    async rebaseline(): Promise<void> {
      const base = await timedPushes(h.mesh, h.fleet, h.next, PUSHES);
      h.next += PUSHES;
      h.baselineP90 = percentile(base, 0.9);
      report.push({ test: 'baseline', p50: percentile(base, 0.5), p90: h.baselineP90, p99: percentile(base, 0.99), inflightMaxMB: 0, rssMB: Math.round(process.memoryUsage().rss / 1048576) });
    },
    async ready(): Promise<void> {
      const res = await fetch(`http://127.0.0.1:${h.mesh.monitoringPort}/ready`);
      expect(res.status).toBe(200);
    },
  };
  beforeAll(async () => {
    h.mesh = await startMesh(bigMeshFiles(200, 10), { sendBudgetBytes: BUDGET });
    h.fleet = new HealthyFleet(h.mesh.xdsPort, HEALTHY);
    // Warm-up push (first generation, JIT), then the baseline.
    h.mesh.write('marker-0.yaml', markerYaml(0));
    await h.fleet.waitFor(markerCluster(0), Date.now());
    await timedPushes(h.mesh, h.fleet, h.next, 2);
    h.next += 2;
  });
  afterAll(async () => {
    h.fleet?.close();
    await h.mesh?.stop();
  });
  return h;
}

afterAll(() => {
  console.table(report);
});

/** A SotW proxy (raw bytes, envelope-only decoding) that subscribes to CDS, LDS and all EDS and NACKs every response. */
function nackingProxy(port: number, pod: string) {
  const node = envoyNode(pod, 'default');
  const raw = rawAdsCall(port);
  const names = new Map<string, string[]>();
  const state = { received: 0, ended: false, last: undefined as { type_url: string; nonce: string } | undefined };
  const request = (typeUrl: string, nonce = '', message?: string, withNode = false) =>
    raw.call.write(
      clientCodec.encodeRequest({
        type_url: typeUrl,
        resource_names: names.get(typeUrl) ?? [],
        version_info: '',
        response_nonce: nonce,
        ...(message ? { error_detail: { code: grpc.status.INVALID_ARGUMENT, message } } : {}),
        ...(withNode ? { node: adsNode(node) } : {}),
      } as Parameters<typeof clientCodec.encodeRequest>[0]),
    );
  raw.call.removeAllListeners('data');
  raw.call.on('data', (buf: Buffer) => {
    const m = clientCodec.decodeResponse(buf);
    state.received++;
    state.last = m;
    if (m.type_url === TypeUrl.Cluster && !names.has(TypeUrl.ClusterLoadAssignment)) {
      const clusters = (m.resources ?? []).map((r) => (decodeResource(TypeUrl.Cluster, r.value) as { name: string }).name).filter((n) => n.startsWith('outbound|'));
      names.set(TypeUrl.ClusterLoadAssignment, clusters);
      request(TypeUrl.ClusterLoadAssignment);
    }
    request(m.type_url, m.nonce, 'NACK everything');
  });
  void raw.status.then(() => (state.ended = true));
  request(TypeUrl.Cluster, '', undefined, true);
  request(TypeUrl.Listener);
  return {
    get received() {
      return state.received;
    },
    get ended() {
      return state.ended;
    },
    nackLast: (message: string) => state.last && request(state.last.type_url, state.last.nonce, message),
    close: () => raw.close(),
  };
}

describe('NACKers, disconnectors and malformed requests beside 20 healthy proxies', () => {
  const h = harness();

  it('(a) proxies that NACK everything: no resend loop, healthy pushes unaffected', async () => {
    // Two proxies that see the whole mesh (CDS, EDS of every cluster, LDS) and NACK every response. Raw clients that
    // decode only the envelope, so the test process's own decoding does not compete with the server under test.
    await h.rebaseline();
    const nackers = Array.from({ length: 2 }, (_, i) => nackingProxy(h.mesh.xdsPort, `nacker-${i}`));
    try {
      // Their initial CDS, LDS and EDS (all 600 clusters), each NACKed, before the timed pushes.
      await eventually(() => nackers.every((c) => c.received >= 3), 10_000, "the NACKers' first responses");
      // A NACK flood on one stream: the same rejected nonce, 200 times. It must not be answered 200 times.
      const flooder = nackers[0]!;
      const before = flooder.received;
      for (let i = 0; i < 200; i++) flooder.nackLast(`flood ${i}`);
      await sleep(500);
      await h.pushes('(a) 2 NACK-everything proxies + 200-NACK flood');
      for (const c of nackers) {
        // Per push at most one response per watched type (CDS, EDS, LDS): never a resend of the rejected version.
        expect(c.received, 'responses to a NACKer').toBeLessThanOrEqual(3 + 3 * (PUSHES + 1));
        expect(c.ended).toBe(false);
      }
      expect(flooder.received - before).toBeLessThanOrEqual(3 * (PUSHES + 1));
      const syncz = (await (await fetch(`http://127.0.0.1:${h.mesh.monitoringPort}/debug/syncz`)).json()) as Array<{ node?: string; watches: Array<{ lastNack?: unknown }> }>;
      expect(syncz.filter((c) => c.node?.includes('nacker-') && c.watches.some((w) => w.lastNack)).length).toBe(2);
    } finally {
      for (const c of nackers) c.close();
    }
    await h.ready();
  });

  it('(c) proxies that disconnect mid-push, over and over: no leak, healthy pushes unaffected', async () => {
    await h.rebaseline();
    let stop = false;
    let cycles = 0;
    // Two loops: connect, subscribe to everything, cancel as soon as the first bytes of the first response arrive
    // (mid-message: ~700 KB of CDS is still on its way) or, every other time, right after subscribing.
    const loops = Array.from({ length: 2 }, async (_, l) => {
      for (let i = 0; !stop; i++) {
        const node = envoyNode(`flapper-${l}-${i}`, 'default');
        const s = rawGrpcCall(h.mesh.xdsPort, ADS_SOTW_PATH, [grpcFrame(sotwRequest(TypeUrl.Cluster, node)), grpcFrame(sotwRequest(TypeUrl.Listener, node))]);
        if (i % 2 === 0) await new Promise<void>((resolve) => (s.stream.once('data', () => resolve()), s.stream.once('close', () => resolve()), setTimeout(resolve, 2000)));
        else await sleep(5);
        s.close();
        cycles++;
      }
    });
    try {
      await sleep(300);
      await h.pushes('(c) 2 loops connect/subscribe/cancel', undefined);
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    expect(cycles).toBeGreaterThan(20);
    report.at(-1)!.note = `${cycles} connect/cancel cycles`;
    // Every cancelled stream is forgotten and its unflushed bytes are returned to the budget.
    let m = await memz(h.mesh.monitoringPort);
    for (let i = 0; i < 40 && (m.send.openCalls !== HEALTHY || m.send.inflightBytes > ONE_MESSAGE); i++) {
      await sleep(100);
      m = await memz(h.mesh.monitoringPort);
    }
    expect(m.send.openCalls).toBe(HEALTHY);
    expect(m.send.inflightBytes).toBeLessThan(ONE_MESSAGE);
    expect(m.send.waitingStreams).toBe(0);
    await h.ready();
  });

  it('(d) malformed requests and unknown type URLs: each stream ends (or goes on) cleanly, nothing else is affected', async () => {
    const port = h.mesh.xdsPort;
    const node = envoyNode('malformed', 'default');
    const deep: Record<string, unknown> = {};
    let cursor = deep;
    for (let i = 0; i < 24; i++) cursor = cursor.x = {} as Record<string, unknown>;
    const withNode = (n: object) =>
      grpcFrame(clientCodec.encodeRequest({ type_url: TypeUrl.Cluster, resource_names: [], version_info: '', response_nonce: '', node: n } as Parameters<typeof clientCodec.encodeRequest>[0]));
    /** name → the frames, and whether the stream must be refused (true) or may be served (false). */
    const cases: Array<{ name: string; path?: string; chunks: Buffer[]; refused: boolean; anyStatus?: boolean }> = [
      { name: 'garbage protobuf', chunks: [grpcFrame(Buffer.from('\xff\xff\xff\xff\x0fthis is not protobuf', 'latin1'))], refused: true },
      { name: 'random bytes as message', chunks: [grpcFrame(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 255)))], refused: true },
      { name: 'not gRPC framing at all', chunks: [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], refused: true },
      { name: 'frame claiming 1 GiB', chunks: [Buffer.from([0, 0x40, 0, 0, 0]), Buffer.alloc(1024, 1)], refused: true },
      // grpc-js reads a compressed message without grpc-encoding as identity-encoded: served.
      { name: 'compressed flag, no grpc-encoding', chunks: [grpcFrame(sotwRequest(TypeUrl.Cluster, node), true)], refused: false },
      // grpc-js drops a partial message at end of stream and ends the call OK: only 'the stream ends' is asserted.
      { name: 'truncated frame then end', chunks: [grpcFrame(sotwRequest(TypeUrl.Cluster, node)).subarray(0, 20)], refused: true, anyStatus: true },
      { name: 'first request without node', chunks: [grpcFrame(clientCodec.encodeRequest({ type_url: TypeUrl.Cluster, resource_names: [], version_info: '', response_nonce: '' } as Parameters<typeof clientCodec.encodeRequest>[0]))], refused: true },
      { name: 'empty node id', chunks: [withNode({ ...adsNode({ kind: 'envoy' }), id: '' })], refused: false },
      { name: 'node id "x"', chunks: [withNode({ ...adsNode({ kind: 'envoy' }), id: 'x' })], refused: false },
      { name: 'node id "~~~~~~"', chunks: [withNode({ ...adsNode({ kind: 'envoy' }), id: '~~~~~~' })], refused: false },
      { name: 'node id of 64 KiB', chunks: [withNode({ ...adsNode({ kind: 'envoy' }), id: `sidecar~1.2.3.4~${'p'.repeat(65536)}.ns~ns.svc.cluster.local` })], refused: false },
      { name: 'deeply nested metadata', chunks: [withNode({ id: 'sidecar~10.0.0.1~deep.default~default.svc.cluster.local', cluster: 'deep', metadata: jsonToStruct({ NAMESPACE: 'default', LABELS: deep, ANNOTATIONS: 'x' }) })], refused: false },
      { name: 'metadata of wrong types', chunks: [withNode({ id: 'sidecar~10.0.0.1~types.default~default.svc.cluster.local', cluster: 'x', metadata: jsonToStruct({ NAMESPACE: 42, LABELS: 'not a map', ISTIO_VERSION: [], CLUSTER_ID: {} }) })], refused: false },
      { name: 'unknown method', path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/Nope', chunks: [grpcFrame(sotwRequest(TypeUrl.Cluster, node))], refused: true },
      { name: 'delta garbage', path: ADS_DELTA_PATH, chunks: [grpcFrame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))], refused: true },
    ];
    const outcomes: string[] = [];
    let stop = false;
    let rounds = 0;
    const runCases = async () => {
      const streams: Array<{ c: (typeof cases)[number]; s: RawStream }> = cases.map((c) => ({ c, s: rawGrpcCall(port, c.path ?? ADS_SOTW_PATH, c.chunks, { end: c.refused }) }));
      for (const { c, s } of streams) {
        const end = await Promise.race([s.ended, sleep(c.refused ? 5000 : 300).then(() => undefined)]);
        if (c.refused) {
          expect(end, `${c.name}: the stream must end`).toBeDefined();
          if (!c.anyStatus) expect(end!.grpcStatus ?? -1, `${c.name}: ${JSON.stringify(end)}`).not.toBe(0);
        }
        if (rounds === 0) outcomes.push(`${c.name}: ${end ? (end.grpcStatus !== undefined ? `${grpc.status[end.grpcStatus]} ${end.message ?? ''}` : end.error) : 'served'}`);
        s.close();
      }
      rounds++;
    };
    await runCases();
    // Unknown type URLs are ignored; the stream goes on and still answers a known type.
    const unknown = new AdsClient('sotw', port, envoyNode('unknown-types', 'default'));
    unknown.subscribe('type.googleapis.com/envoy.config.nope.v3.Nope', ['a']);
    unknown.subscribe('not a type url at all', []);
    unknown.subscribe('', ['x']);
    const cds = await unknown.fetch(TypeUrl.Cluster);
    expect(cds.names.length).toBeGreaterThan(100);
    expect(unknown.pending().filter((r) => r.typeUrl !== TypeUrl.Cluster)).toEqual([]);
    unknown.close();
    // Oversized and garbage messages through a real gRPC client: refused with a status, the channel still usable.
    const big = rawAdsCall(port);
    big.call.write(Buffer.alloc(5 * 1024 * 1024, 7));
    expect((await big.status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    big.close();

    await h.rebaseline();
    const loop = (async () => {
      while (!stop) await runCases();
    })();
    try {
      await h.pushes('(d) malformed requests, in a loop');
    } finally {
      stop = true;
      await loop;
    }
    report.at(-1)!.note = `${rounds} rounds of ${cases.length} malformed streams`;
    console.log(outcomes.join('\n'));
    await h.ready();
  });
});

describe('slow consumers that never read beside 20 healthy proxies', () => {
  const h = harness();
  let slow: RawStream[] = [];
  let stalledInflightMax = 0;
  const openSlow = (n: number, from: number) => {
    for (let i = from; i < from + n; i++) {
      const node = envoyNode(`slow-${i}`, 'default');
      // CDS and LDS (wildcard); the responses are never read, so flow control stops them after 64 KiB.
      slow.push(rawGrpcCall(h.mesh.xdsPort, ADS_SOTW_PATH, [grpcFrame(sotwRequest(TypeUrl.Cluster, node)), grpcFrame(sotwRequest(TypeUrl.Listener, node))], { read: false }));
    }
  };

  it('(b) one slow consumer: what it holds stays within the send budget, healthy pushes unaffected', async () => {
    await h.rebaseline();
    openSlow(1, 0);
    await sleep(500);
    const { inflightMax } = await h.pushes('(b) 1 slow consumer (never reads)');
    expect(inflightMax).toBeLessThanOrEqual(BUDGET + ONE_MESSAGE);
    expect(inflightMax, 'the stuck stream holds its unflushed responses').toBeGreaterThan(ONE_MESSAGE);
  });

  /*
   * Regression: a stream that never reads used to keep every response written to it counted against the shared send
   * budget (grpc-js accepts up to 16 messages per stream before write() returns false, ~10 MB of CDS here), so a few
   * such streams spent the whole budget and every other proxy's pushes waited forever. Now a stream holds at most its
   * per-stream buffer, and one that has flushed nothing for `stuckAfterMs` is written off the shared budget.
   */
  it('(b) slow consumers holding more than the send budget do not stall the healthy proxies', async () => {
    openSlow(4, 1);
    await sleep(500);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        stalledInflightMax = Math.max(stalledInflightMax, (await memz(h.mesh.monitoringPort)).send.inflightBytes);
        await sleep(50);
      }
    })();
    try {
      await h.pushes('(b) 5 slow consumers (never read)');
    } finally {
      sampling = false;
      await sampler;
    }
  });

  it('(b) memory stays bounded by the budget while stalled, and closing the slow consumers frees it and resumes pushes', async () => {
    expect(stalledInflightMax).toBeGreaterThan(0);
    expect(stalledInflightMax).toBeLessThanOrEqual(BUDGET + ONE_MESSAGE);
    for (const s of slow) s.close();
    slow = [];
    // The healthy proxies have every marker so far.
    await h.fleet.waitFor(markerCluster(h.next - 1), Date.now(), 10_000);
    let m = await memz(h.mesh.monitoringPort);
    for (let i = 0; i < 40 && m.send.inflightBytes > ONE_MESSAGE; i++) {
      await sleep(100);
      m = await memz(h.mesh.monitoringPort);
    }
    expect(m.send.inflightBytes).toBeLessThan(ONE_MESSAGE);
    expect(m.send.waitingStreams).toBe(0);
    const { latencies } = await h.pushes('(b) after the slow consumers left');
    expect(latencies.length).toBe(HEALTHY * PUSHES);
    await h.ready();
  });
});

describe('a consumer that never reads is ended after the send timeout', () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startMesh(bigMeshFiles(50, 10), { stuckAfterMs: 200, sendTimeoutMs: 1500 });
  });
  afterAll(async () => {
    await mesh?.stop();
  });

  it('(b) its stream is reset once nothing has flushed for sendTimeoutMs, and its buffered bytes are freed', async () => {
    const reader = new AdsClient('sotw', mesh.xdsPort, envoyNode('reads', 'default'));
    expect((await reader.fetch(TypeUrl.Cluster)).names.length).toBeGreaterThan(50);
    const node = envoyNode('never-reads', 'default');
    const slow = rawGrpcCall(mesh.xdsPort, ADS_SOTW_PATH, [grpcFrame(sotwRequest(TypeUrl.Cluster, node)), grpcFrame(sotwRequest(TypeUrl.Listener, node))], { read: false });
    try {
      await eventually(async () => (await memz(mesh.monitoringPort)).send.openCalls === 2, 5000, 'both calls open');
      const started = Date.now();
      // Ended by the server: only the reader's call is left.
      await eventually(async () => (await memz(mesh.monitoringPort)).send.openCalls === 1, 10_000, 'the slow call ended');
      expect(Date.now() - started).toBeLessThan(8000);
      expect((await memz(mesh.monitoringPort)).send.inflightBytes).toBe(0);
      // Closed at the HTTP/2 level while the client still reads nothing: the status could never get past the
      // unread responses, so the stream is reset and they are dropped.
      const status = await Promise.race([slow.ended, sleep(3000).then(() => 'still open' as const)]);
      expect(status).toEqual({ error: `RST_STREAM ${http2.constants.NGHTTP2_CANCEL}` });
      // The proxy that reads was served all along, and still is.
      mesh.write('marker-1.yaml', markerYaml(1));
      await eventually(async () => {
        const r = await reader.next(TypeUrl.Cluster);
        reader.ack(r);
        return r.names.includes(markerCluster(1));
      }, 5000, 'the reader got the marker');
    } finally {
      slow.close();
      reader.close();
    }
  });
});

