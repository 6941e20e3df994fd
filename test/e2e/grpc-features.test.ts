/**
 * Every proxyless gRPC feature of the core issue, end to end: real @grpc/grpc-js-xds clients, real gRPC backends on
 * loopback, mizzen in between. Each test counts where calls land or how they fail.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { call, startEchoBackend, type EchoBackend, type EchoClientT } from '../support/echo.ts';
import { eventually, expectNoNacks, serviceEntry, startMesh, type TestMesh } from '../support/mesh.ts';
import { xdsClient } from '../support/xds-client.ts';

const NS = 'shop';
const HOST = `cart.${NS}.svc.cluster.local:7070`;

function vs(http: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: cart, namespace: ${NS} }
spec:
  hosts: [cart]
  http:
${http}`;
}

function dr(spec: string): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: cart, namespace: ${NS} }
spec:
  host: cart
${spec}`;
}

describe('proxyless gRPC features', () => {
  let a: EchoBackend, b: EchoBackend, c: EchoBackend;
  let mesh: TestMesh;
  const clients: EchoClientT[] = [];
  const client = () => {
    const cl = xdsClient(HOST, mesh.xdsPort, { namespace: NS });
    clients.push(cl);
    return cl;
  };

  /** Replaces the routing config and waits until a fresh client sees it (`probe` tells). */
  async function configure(files: Record<string, string>, probe: (cl: EchoClientT) => Promise<boolean>): Promise<void> {
    for (const f of ['vs.yaml', 'dr.yaml']) if (!(f in files)) mesh.remove(f);
    for (const [f, text] of Object.entries(files)) mesh.write(f, text);
    await eventually(async () => probe(client()), 10_000, 'config to apply');
  }

  beforeAll(async () => {
    [a, b, c] = await Promise.all([startEchoBackend('a'), startEchoBackend('b'), startEchoBackend('c')]);
    mesh = await startMesh({
      'cart.yaml': serviceEntry('cart', NS, 7070, [
        { port: a.port, labels: { version: 'v1' }, locality: 'eu/eu-1/a' },
        { port: b.port, labels: { version: 'v1' }, locality: 'eu/eu-1/a' },
        { port: c.port, labels: { version: 'v2' }, locality: 'eu/eu-2/b' },
      ]),
      'vs.yaml': vs('    - route: [{ destination: { host: cart } }]\n'),
      'dr.yaml': dr('  trafficPolicy: {}\n'),
    });
  });
  afterEach(async () => {
    await expectNoNacks(mesh);
    for (const cl of clients.splice(0)) cl.close();
    for (const x of [a, b, c]) {
      x.behaviour = undefined;
      x.calls = 0;
    }
  });
  afterAll(async () => {
    await mesh?.stop();
    await Promise.all([a, b, c].map((x) => x?.stop()));
  });

  it('timeout: the route timeout becomes the call deadline', async () => {
    for (const x of [a, b, c]) x.behaviour = () => ({ delayMs: 1500 });
    await configure({ 'vs.yaml': vs('    - timeout: 200ms\n      route: [{ destination: { host: cart } }]\n') }, async (cl) => {
      const t0 = Date.now();
      const r = await call(cl, {}, 5000);
      return r.error?.code === grpc.status.DEADLINE_EXCEEDED && Date.now() - t0 < 1000;
    });
    const t0 = Date.now();
    const r = await call(client(), {}, 5000);
    expect(r.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('retries: attempts and retryOn with gRPC codes; attempts 0 turns them off', async () => {
    let failuresLeft = 0;
    for (const x of [a, b, c]) x.behaviour = () => (failuresLeft-- > 0 ? { code: grpc.status.UNAVAILABLE } : undefined);
    await configure({ 'vs.yaml': vs('    - retries: { attempts: 0 }\n      route: [{ destination: { host: cart } }]\n') }, async (cl) => {
      failuresLeft = 1;
      return (await call(cl)).error?.code === grpc.status.UNAVAILABLE;
    });
    await configure({ 'vs.yaml': vs('    - retries: { attempts: 3, retryOn: unavailable }\n      route: [{ destination: { host: cart } }]\n') }, async (cl) => {
      failuresLeft = 2;
      return (await call(cl)).reply !== undefined && failuresLeft < 0;
    });
    failuresLeft = 3;
    const before = a.calls + b.calls + c.calls;
    const r = await call(client());
    expect(r.error).toBeUndefined();
    expect(a.calls + b.calls + c.calls - before).toBe(4); // three failed attempts, then success
    failuresLeft = 4; // more failures than attempts allow
    expect((await call(client())).error?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('fault abort: grpcStatus and httpStatus, with percentages; the backend is never reached', async () => {
    await configure({ 'vs.yaml': vs('    - fault: { abort: { grpcStatus: RESOURCE_EXHAUSTED, percentage: { value: 100 } } }\n      route: [{ destination: { host: cart } }]\n') }, async (cl) =>
      (await call(cl)).error?.code === grpc.status.RESOURCE_EXHAUSTED,
    );
    const before = a.calls + b.calls + c.calls;
    for (let i = 0; i < 10; i++) expect((await call(client())).error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(a.calls + b.calls + c.calls).toBe(before);

    // httpStatus 503 maps to UNAVAILABLE (gRFC A28 table); 50 % of calls.
    await configure({ 'vs.yaml': vs('    - retries: { attempts: 0 }\n      fault: { abort: { httpStatus: 503, percentage: { value: 50 } } }\n      route: [{ destination: { host: cart } }]\n') }, async (cl) => {
      for (let i = 0; i < 20; i++) if ((await call(cl)).error?.code === grpc.status.UNAVAILABLE) return true;
      return false;
    });
    const cl = client();
    let aborted = 0;
    for (let i = 0; i < 200; i++) if ((await call(cl)).error?.code === grpc.status.UNAVAILABLE) aborted++;
    expect(aborted).toBeGreaterThan(60);
    expect(aborted).toBeLessThan(140);
  });

  it('fault delay: fixedDelay with a percentage', async () => {
    await configure({ 'vs.yaml': vs('    - fault: { delay: { fixedDelay: 400ms, percentage: { value: 100 } } }\n      route: [{ destination: { host: cart } }]\n') }, async (cl) => {
      const t0 = Date.now();
      await call(cl);
      return Date.now() - t0 >= 380;
    });
    const t0 = Date.now();
    expect((await call(client())).error).toBeUndefined();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
  });

  it('circuit breaking: connectionPool.http.http2MaxRequests caps concurrent calls', async () => {
    for (const x of [a, b, c]) x.behaviour = () => ({ delayMs: 600 });
    await configure({ 'dr.yaml': dr('  trafficPolicy: { connectionPool: { http: { http2MaxRequests: 2 } } }\n') }, async (cl) => {
      const results = await Promise.all(Array.from({ length: 6 }, () => call(cl, {}, 3000)));
      return results.some((r) => r.error?.code === grpc.status.UNAVAILABLE);
    });
    const cl = client();
    await call(cl, {}, 3000); // connect first, so only the limit decides
    // gRPC counts a call once it has started: two in flight fill the limit, and the next ones are dropped.
    const inFlight = [call(cl, {}, 3000), call(cl, {}, 3000)];
    await new Promise((r) => setTimeout(r, 150));
    const extra = await Promise.all(Array.from({ length: 6 }, () => call(cl, {}, 3000)));
    expect(extra.every((r) => r.error?.code === grpc.status.UNAVAILABLE)).toBe(true);
    expect((await Promise.all(inFlight)).every((r) => r.reply !== undefined)).toBe(true);
  });

  it('consistentHash on a header (ring hash): one key, one backend', async () => {
    await configure({ 'dr.yaml': dr('  trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user } } }\n') }, async (cl) => {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add((await call(cl, { 'x-user': 'alice' })).reply?.backend ?? 'err');
      return seen.size === 1 && !seen.has('err');
    });
    const cl = client();
    const byUser = new Map<string, Set<string>>();
    for (const user of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi']) {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add((await call(cl, { 'x-user': user })).reply!.backend);
      byUser.set(user, seen);
    }
    for (const seen of byUser.values()) expect(seen.size).toBe(1);
    const distinct = new Set([...byUser.values()].map((s) => [...s][0]));
    expect(distinct.size).toBeGreaterThan(1);
  });

  it('consistentHash useSourceIp: each client channel sticks to one backend', async () => {
    await configure({ 'dr.yaml': dr('  trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } }\n') }, async (cl) => {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add((await call(cl)).reply?.backend ?? 'err');
      return seen.size === 1 && !seen.has('err');
    });
    const seenPerClient: string[] = [];
    for (let k = 0; k < 4; k++) {
      const cl = client();
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add((await call(cl)).reply!.backend);
      expect(seen.size).toBe(1);
      seenPerClient.push([...seen][0]!);
    }
  });

  it('subsets with their own traffic policy, and weighted routes across subsets', async () => {
    await configure(
      {
        'dr.yaml': dr(`  subsets:
    - name: v1
      labels: { version: v1 }
      trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user } } }
    - name: v2
      labels: { version: v2 }
`),
        'vs.yaml': vs(`    - route:
        - { destination: { host: cart, subset: v1 }, weight: 50 }
        - { destination: { host: cart, subset: v2 }, weight: 50 }
`),
      },
      async (cl) => {
        const seen = new Set<string>();
        for (let i = 0; i < 30; i++) seen.add((await call(cl, { 'x-user': 'zed' })).reply?.backend ?? 'err');
        return seen.has('c') && seen.size === 2 && !seen.has('err');
      },
    );
    // Within subset v1 (a, b) the hash pins one backend for a user; v2 is only c.
    const cl = client();
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) seen.add((await call(cl, { 'x-user': 'zed' })).reply!.backend);
    expect(seen.has('c')).toBe(true);
    expect(seen.size).toBe(2);
  });

  it('outlierDetection ejects a backend that keeps failing', async () => {
    a.behaviour = () => ({ code: grpc.status.UNAVAILABLE, details: 'a is broken' });
    await configure(
      {
        'dr.yaml': dr('  trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3, interval: 500ms, baseEjectionTime: 30s, maxEjectionPercent: 100 } }\n'),
        'vs.yaml': vs('    - retries: { attempts: 0 }\n      route: [{ destination: { host: cart } }]\n'),
      },
      async (cl) => {
        // Drive traffic until `a` stops receiving calls: it has been ejected.
        for (let i = 0; i < 30; i++) await call(cl);
        await new Promise((r) => setTimeout(r, 600));
        const before = a.calls;
        for (let i = 0; i < 30; i++) await call(cl);
        return a.calls === before;
      },
    );
  });

  it('endpoint locality weights split traffic between localities', async () => {
    mesh.write(
      'cart.yaml',
      serviceEntry('cart', NS, 7070, [
        { port: a.port, labels: { version: 'v1' }, locality: 'eu/eu-1/a', weight: 1 },
        { port: c.port, labels: { version: 'v2' }, locality: 'eu/eu-2/b', weight: 3 },
      ]),
    );
    await configure({ 'vs.yaml': vs('    - route: [{ destination: { host: cart } }]\n') }, async (cl) => {
      b.calls = 0;
      let seenC = 0;
      for (let i = 0; i < 40; i++) if ((await call(cl)).reply?.backend === 'c') seenC++;
      return seenC > 20 && b.calls === 0;
    });
    const cl = client();
    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const r = await call(cl);
      counts[r.reply!.backend] = (counts[r.reply!.backend] ?? 0) + 1;
    }
    expect(counts.b ?? 0).toBe(0);
    expect(counts.c! / 400).toBeGreaterThan(0.65);
    expect(counts.c! / 400).toBeLessThan(0.85);
  });

  it('features gRPC cannot take are left out, never sent in a form the client rejects', async () => {
    await configure(
      {
        'vs.yaml': vs(`    - match: [{ headers: { x-go: { exact: away } } }]
      redirect: { uri: /elsewhere }
    - match: [{ queryParams: { debug: { exact: "1" } } }]
      route: [{ destination: { host: cart, subset: nope } }]
    - route: [{ destination: { host: cart } }]
      mirror: { host: cart }
      rewrite: { uri: /other }
      corsPolicy: { allowOrigins: [{ exact: "https://example.com" }] }
`),
        'dr.yaml': dr('  trafficPolicy: { loadBalancer: { simple: LEAST_REQUEST } }\n'),
      },
      async (cl) => (await call(cl, { 'x-go': 'away' })).reply !== undefined,
    );
    const cl = client();
    for (let i = 0; i < 10; i++) expect((await call(cl, { 'x-go': 'away' })).error).toBeUndefined();
  });

  it('an invalid edit is refused and traffic keeps flowing on the last good config', async () => {
    await configure({ 'vs.yaml': vs('    - route: [{ destination: { host: cart, subset: v2 } }]\n'), 'dr.yaml': dr('  subsets: [{ name: v2, labels: { version: v2 } }]\n') }, async (cl) =>
      (await call(cl)).reply?.backend === 'c',
    );
    const cl = client();
    mesh.write('vs.yaml', vs('    - timeout: soon\n      route: [{ destination: { host: cart } }]\n'));
    await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/debug/configz`);
      const body = (await res.json()) as { rejected: Record<string, string[]> };
      return JSON.stringify(body.rejected).includes(`VirtualService ${NS}/cart: spec.http[0].timeout: invalid duration \\"soon\\"`);
    }, 5000, 'the refusal to be reported');
    await new Promise((r) => setTimeout(r, 300)); // past the debounce: a wrong push would have happened by now
    for (let i = 0; i < 20; i++) expect((await call(cl)).reply?.backend).toBe('c');
    expect((await call(client())).reply?.backend).toBe('c');
  });
});
