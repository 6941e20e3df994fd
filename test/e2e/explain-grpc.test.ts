/**
 * `mizzen explain` cross-checked against real traffic: the bookinfo example (examples/bookinfo, ports pointed at real
 * gRPC echo backends) served by a real mizzen to real proxyless @grpc/grpc-js-xds clients. What explain prints for a
 * proxyless source — the VirtualService rule, the weighted destinations and their endpoints, the fault, the timeout —
 * must be what the calls do.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explain, loadExplainConfig } from '../../src/app/explain.ts';
import type { Explanation } from '../../src/explain/explain.ts';
import { call, startEchoBackend, type EchoBackend } from '../support/echo.ts';
import { expectNoNacks, startMesh, type TestMesh } from '../support/mesh.ts';
import { xdsClient } from '../support/xds-client.ts';

const BOOKINFO = path.resolve(import.meta.dirname, '../../examples/bookinfo');
const REVIEWS = 'reviews.bookinfo.svc.cluster.local:9080';
const RATINGS = 'ratings.bookinfo.svc.cluster.local:9080';
const METHOD = '/mizzen.test.Echo/Call';

describe('explain vs real proxyless gRPC traffic (bookinfo)', () => {
  const backends: Record<string, EchoBackend> = {};
  let mesh: TestMesh;
  const byPort = (port: number | undefined) => Object.values(backends).find((b) => b.port === port)?.name;

  beforeAll(async () => {
    for (const name of ['reviews-v1', 'reviews-v2', 'reviews-v3', 'ratings-v1', 'details-v1']) backends[name] = await startEchoBackend(name);
    // The example as shipped, with its fixed loopback ports replaced by the backends' ports.
    const ports: Record<string, string> = { 19081: 'reviews-v1', 19082: 'reviews-v2', 19083: 'reviews-v3', 19091: 'ratings-v1', 19071: 'details-v1' };
    const files: Record<string, string> = {};
    for (const f of fs.readdirSync(BOOKINFO).filter((x) => x.endsWith('.yaml'))) {
      files[f] = fs.readFileSync(path.join(BOOKINFO, f), 'utf8').replace(/\b(190[789]\d)\b/g, (p) => String(backends[ports[p]!]!.port));
    }
    mesh = await startMesh(files);
  });
  afterAll(async () => {
    await mesh?.stop();
    await Promise.all(Object.values(backends).map((b) => b.stop()));
  });

  /** explain for a proxyless client in bookinfo, on the folder the running mizzen serves. */
  async function explainCall(to: string, headers: Record<string, string> = {}): Promise<Explanation> {
    const { objects } = await loadExplainConfig(mesh.dir);
    return explain(objects, { fromNamespace: 'bookinfo', proxyless: true, to, path: METHOD, header: Object.entries(headers).map(([k, v]) => `${k}: ${v}`) });
  }

  it('header override: explain says http[0] → v2 (100%), and every call from jason lands on v2', async () => {
    const e = await explainCall(REVIEWS, { 'end-user': 'jason' });
    expect(e.outbound.listener).toMatchObject({ name: REVIEWS, protocol: 'gRPC' });
    expect(e.outbound.route).toMatchObject({ virtualService: { namespace: 'bookinfo', name: 'reviews', rule: 0 }, match: 'headers end-user=jason' });
    expect(e.outbound.destinations.map((d) => [d.cluster, d.percent])).toEqual([['outbound|9080|v2|reviews.bookinfo.svc.cluster.local', 100]]);
    const predicted = byPort(e.outbound.destinations[0]!.endpoint?.port);
    expect(predicted).toBe('reviews-v2');

    const client = xdsClient(REVIEWS, mesh.xdsPort, { namespace: 'bookinfo' });
    try {
      for (let i = 0; i < 20; i++) expect((await call(client, { 'end-user': 'jason' })).reply?.backend).toBe(predicted);
    } finally {
      client.close();
    }
  });

  it('weighted split: explain says http[1] → v1 80% / v3 20% with a 2s timeout; real calls split the same way', async () => {
    const e = await explainCall(REVIEWS);
    expect(e.outbound.route).toMatchObject({ virtualService: { name: 'reviews', rule: 1 }, match: 'any request', policy: { timeout: '2s', retries: { attempts: 3, on: 'unavailable,cancelled', perTryTimeout: '500ms' } } });
    const expected = new Map(e.outbound.destinations.map((d) => [byPort(d.endpoint?.port), d.percent / 100]));
    expect([...expected]).toEqual([['reviews-v1', 0.8], ['reviews-v3', 0.2]]);

    const client = xdsClient(REVIEWS, mesh.xdsPort, { namespace: 'bookinfo' });
    const counts: Record<string, number> = {};
    const N = 400;
    try {
      for (let i = 0; i < N; i++) {
        const r = await call(client);
        counts[r.reply?.backend ?? 'error'] = (counts[r.reply?.backend ?? 'error'] ?? 0) + 1;
      }
    } finally {
      client.close();
    }
    // Nothing lands where explain predicts nothing; the shares are within ±8 points (4 standard deviations at N=400).
    expect(Object.keys(counts).sort()).toEqual([...expected.keys()].sort());
    for (const [backend, share] of expected) expect(Math.abs((counts[backend!] ?? 0) / N - share)).toBeLessThan(0.08);
  });

  it('fault: explain says abort 100% gRPC UNAVAILABLE for testers; the call fails with UNAVAILABLE and the backend is never reached', async () => {
    const faulty = await explainCall(RATINGS, { 'x-test-fault': 'abort' });
    expect(faulty.outbound.route).toMatchObject({ virtualService: { name: 'ratings', rule: 0 }, policy: { fault: { abort: { percent: 100, grpcStatus: grpc.status.UNAVAILABLE } } } });
    expect(faulty.result[0]).toBe('fault injected by the source proxy: abort 100% gRPC UNAVAILABLE — otherwise:');
    const plain = await explainCall(RATINGS);
    expect(plain.outbound.route?.policy?.fault).toBeUndefined();
    expect(byPort(plain.outbound.destinations[0]?.endpoint?.port)).toBe('ratings-v1');
    // The ratings cluster carries its DestinationRule: http2MaxRequests → max_requests, the only breaker gRPC reads.
    expect(plain.outbound.destinations[0]?.info).toMatchObject({ destinationRule: { name: 'ratings' }, circuitBreakers: { maxRequests: 100 }, outlierDetection: { consecutive5xx: 5 } });

    const client = xdsClient(RATINGS, mesh.xdsPort, { namespace: 'bookinfo' });
    try {
      const before = backends['ratings-v1']!.calls;
      for (let i = 0; i < 5; i++) expect((await call(client, { 'x-test-fault': 'abort' })).error?.code).toBe(grpc.status.UNAVAILABLE);
      expect(backends['ratings-v1']!.calls).toBe(before);
      expect((await call(client)).reply?.backend).toBe('ratings-v1');
    } finally {
      client.close();
    }
  });

  it('timeout: the 2s explain prints is the deadline a slow backend meets', async () => {
    const e = await explainCall(REVIEWS);
    expect(e.outbound.route?.policy?.timeout).toBe('2s');
    backends['reviews-v1']!.behaviour = () => ({ delayMs: 3000 });
    backends['reviews-v3']!.behaviour = () => ({ delayMs: 3000 });
    const client = xdsClient(REVIEWS, mesh.xdsPort, { namespace: 'bookinfo' });
    try {
      // Warm the channel (xDS fetched, v2 is fast) so the measured call is routing plus the route timeout only.
      expect((await call(client, { 'end-user': 'jason' })).reply?.backend).toBe('reviews-v2');
      const t0 = Date.now();
      const r = await call(client, {}, 10_000);
      const took = Date.now() - t0;
      expect(r.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(took).toBeGreaterThanOrEqual(1900);
      expect(took).toBeLessThan(3000);
    } finally {
      client.close();
      backends['reviews-v1']!.behaviour = undefined;
      backends['reviews-v3']!.behaviour = undefined;
    }
    await expectNoNacks(mesh);
  });
});
