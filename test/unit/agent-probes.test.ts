/**
 * The agent's app prober (src/agent/probes.ts) against real apps on loopback: an HTTP server, a TCP listener and a
 * grpc-js server implementing grpc.health.v1.Health. ISTIO_KUBE_APP_PROBERS values are in the injector's format
 * (istio pkg/kube/inject testdata, e.g. app_probe/startup_ready_live.yaml.injected).
 */
import http from 'node:http';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcHealthDefinition, parseAppProbers, proberPaths, runProbe, type AppProber } from '../../src/agent/probes.ts';

const LOOPBACK = { host: '127.0.0.1' };

async function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((r) => server.listen(0, host, r));
  return (server.address() as net.AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('parseAppProbers (ISTIO_KUBE_APP_PROBERS)', () => {
  it('reads the injector output: httpGet with defaults, tcpSocket, grpc, headers and timeouts', () => {
    // Verbatim from istio's startup_ready_live.yaml.injected, plus the other action kinds.
    const r = parseAppProbers(
      JSON.stringify({
        ...JSON.parse('{"/app-health/hello/livez":{"httpGet":{"port":80}},"/app-health/hello/readyz":{"httpGet":{"port":3333}},"/app-health/hello/startupz":{"httpGet":{"port":3333}},"/app-health/world/livez":{"httpGet":{"port":90}},"/app-health/world/startupz":{"httpGet":{"port":90}}}'),
        '/app-health/web/readyz': { httpGet: { path: '/ready', port: 8080, scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: 'yes' }] }, timeoutSeconds: 3 },
        '/app-health/db/livez': { tcpSocket: { port: 5432 }, timeoutSeconds: 5 },
        '/app-health/api/readyz': { grpc: { port: 9000, service: 'api' } },
        '/app-lifecycle/web/prestopz': { httpGet: { path: '/stop', port: 8080 } },
      }),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.size).toBe(9);
    expect(r.value.get('/app-health/hello/readyz')).toEqual({ httpGet: { port: 3333, scheme: 'HTTP' } });
    expect(r.value.get('/app-health/web/readyz')).toEqual({ httpGet: { path: '/ready', port: 8080, scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: 'yes' }] }, timeoutSeconds: 3 });
    expect(r.value.get('/app-health/db/livez')).toEqual({ tcpSocket: { port: 5432 }, timeoutSeconds: 5 });
    expect(r.value.get('/app-health/api/readyz')).toEqual({ grpc: { port: 9000, service: 'api' } });
    expect(proberPaths('web').prestopz).toBe('/app-lifecycle/web/prestopz');
  });

  it('treats an absent or empty value as no probers', () => {
    expect(parseAppProbers(undefined)).toEqual({ ok: true, value: new Map() });
    expect(parseAppProbers('')).toEqual({ ok: true, value: new Map() });
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['a path outside the pattern', '{"/healthz/app/readyz":{"httpGet":{"port":80}}}', /invalid path/],
    ['two actions', '{"/app-health/a/readyz":{"httpGet":{"port":80},"tcpSocket":{"port":81}}}', /must be one of type httpGet, tcpSocket or gRPC/],
    ['no action', '{"/app-health/a/readyz":{"timeoutSeconds":1}}', /must be one of type/],
    ['a named port the injector did not resolve', '{"/app-health/a/livez":{"tcpSocket":{"port":"http"}}}', /integer port/],
    ['a bad scheme', '{"/app-health/a/livez":{"httpGet":{"port":80,"scheme":"FTP"}}}', /HTTP or HTTPS/],
  ])('refuses %s (the agent must not answer probes wrongly)', (_what, json, message) => {
    const r = parseAppProbers(json);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join('\n')).toMatch(message);
  });
});

describe('httpGet probes against a real HTTP app', () => {
  let port = 0;
  let healthy = true;
  const seen: http.IncomingHttpHeaders[] = [];
  const peers: string[] = [];
  const app = http.createServer((req, res) => {
    seen.push(req.headers);
    peers.push(req.socket.remoteAddress ?? '');
    const url = new URL(req.url ?? '/', 'http://x');
    switch (url.pathname) {
      case '/ready':
        res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(healthy ? 'ok' : 'database down');
        return;
      case '/moved':
        res.writeHead(302, { location: '/ready' }).end();
        return;
      case '/elsewhere':
        res.writeHead(301, { location: 'http://example.invalid/ready' }).end();
        return;
      case '/loop':
        res.writeHead(302, { location: '/loop' }).end();
        return;
      case '/hang':
        return; // never answers
      case '/big':
        res.writeHead(200).end('x'.repeat(50_000));
        return;
      default:
        res.writeHead(404).end();
    }
  });
  beforeAll(async () => {
    port = await listen(app);
  });
  afterAll(() => {
    app.closeAllConnections();
    app.close();
  });
  const probe = (httpGet: Omit<NonNullable<AppProber['httpGet']>, 'port'>, extra: Partial<AppProber> = {}) => ({ httpGet: { port, ...httpGet }, ...extra });

  it('ready → 200 with the body; failing → the app code (503) and body, reported as a failure', async () => {
    healthy = true;
    const ok = await runProbe(probe({ path: '/ready' }), LOOPBACK);
    expect(ok).toMatchObject({ status: 200, ok: true });
    expect(ok.body.toString()).toBe('ok');
    healthy = false;
    const bad = await runProbe(probe({ path: '/ready' }), LOOPBACK);
    expect(bad).toMatchObject({ status: 503, ok: false });
    expect(bad.body.toString()).toBe('database down');
    healthy = true;
  });

  it('sends the configured headers, forwards the kubelet headers, and rewrites a Host naming the status port', async () => {
    seen.length = 0;
    await runProbe(probe({ path: 'ready', httpHeaders: [{ name: 'X-Probe', value: 'configured' }, { name: 'X-Both', value: 'configured' }] }), LOOPBACK, {
      headers: { host: '10.0.0.7:15020', 'user-agent': 'kube-probe/1.30', 'x-both': 'kubelet', connection: 'close' },
      statusPort: 15020,
    });
    const h = seen[0]!;
    expect(h.host).toBe(`10.0.0.7:${port}`);
    expect(h['user-agent']).toBe('kube-probe/1.30');
    expect(h['x-probe']).toBe('configured');
    expect(h['x-both']).toBe('kubelet');
  });

  it('follows a same-host redirect, counts a redirect to another host as success, and stops a redirect loop', async () => {
    healthy = false;
    expect((await runProbe(probe({ path: '/moved' }), LOOPBACK)).status).toBe(503); // followed to /ready
    healthy = true;
    expect((await runProbe(probe({ path: '/moved' }), LOOPBACK)).status).toBe(200);
    expect(await runProbe(probe({ path: '/elsewhere' }), LOOPBACK)).toMatchObject({ status: 200, ok: true });
    const loop = await runProbe(probe({ path: '/loop' }), LOOPBACK);
    expect(loop).toMatchObject({ status: 500, ok: false });
    expect(loop.reason).toMatch(/redirects/);
  });

  it('passes back at most 10 KiB of the body', async () => {
    const r = await runProbe(probe({ path: '/big' }), LOOPBACK);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(10 * 1024);
  });

  it('fails within its timeout when the app does not answer', async () => {
    const start = performance.now();
    const r = await runProbe(probe({ path: '/hang' }, { timeoutSeconds: 1 }), LOOPBACK);
    const elapsed = performance.now() - start;
    expect(r).toMatchObject({ status: 500, ok: false });
    expect(r.reason).toMatch(/within 1000 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(1800);
  });

  it('fails (500) when nothing listens', async () => {
    const r = await runProbe({ httpGet: { port: await closedPort() } }, LOOPBACK);
    expect(r).toMatchObject({ status: 500, ok: false });
    expect(r.reason).toMatch(/ECONNREFUSED/);
  });

  it('binds the source address (istio-agent probes from 127.0.0.6, which the sidecar iptables rules let through)', async () => {
    peers.length = 0;
    expect((await runProbe(probe({ path: '/ready' }), { host: '127.0.0.1', localAddress: '127.0.0.6' })).status).toBe(200);
    expect(peers).toEqual(['127.0.0.6']);
  });
});

describe('tcpSocket probes against a real listener', () => {
  it('open → 200, closed → 500', async () => {
    const server = net.createServer((s) => s.end());
    const port = await listen(server);
    expect(await runProbe({ tcpSocket: { port } }, LOOPBACK)).toMatchObject({ status: 200, ok: true });
    await new Promise<void>((r) => server.close(() => r()));
    const closed = await runProbe({ tcpSocket: { port } }, LOOPBACK);
    expect(closed).toMatchObject({ status: 500, ok: false });
    expect(closed.reason).toMatch(/ECONNREFUSED/);
  });
});

describe('grpc probes against a real grpc.health.v1 server', () => {
  const statuses = new Map<string, string>([
    ['', 'SERVING'],
    ['api', 'NOT_SERVING'],
    ['slow', 'SERVING'],
  ]);
  const peers: string[] = [];
  let port = 0;
  let bare = 0;
  const server = new grpc.Server();
  const noHealth = new grpc.Server();
  beforeAll(async () => {
    const pkg = grpc.loadPackageDefinition(grpcHealthDefinition()) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
    server.addService(pkg.grpc.health.v1.Health.service, {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        peers.push(call.getPeer());
        const status = statuses.get(call.request.service);
        if (status === undefined) return cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        if (call.request.service === 'slow') return void setTimeout(() => cb(null, { status }), 3000);
        cb(null, { status });
      },
      Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
    });
    const bind = (s: grpc.Server) => new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    port = await bind(server);
    bare = await bind(noHealth);
  });
  afterAll(() => {
    server.forceShutdown();
    noHealth.forceShutdown();
  });

  it('SERVING → 200; NOT_SERVING → 500', async () => {
    expect(await runProbe({ grpc: { port } }, LOOPBACK)).toMatchObject({ status: 200, ok: true });
    const notServing = await runProbe({ grpc: { port, service: 'api' } }, LOOPBACK);
    expect(notServing).toMatchObject({ status: 500, ok: false });
    expect(notServing.reason).toMatch(/NOT_SERVING/);
  });

  it('an unknown service (NOT_FOUND) and a server without the health service (UNIMPLEMENTED) fail', async () => {
    const unknown = await runProbe({ grpc: { port, service: 'nope' } }, LOOPBACK);
    expect(unknown).toMatchObject({ status: 500, ok: false });
    expect(unknown.reason).toMatch(/NOT_FOUND/);
    const unimplemented = await runProbe({ grpc: { port: bare } }, LOOPBACK);
    expect(unimplemented).toMatchObject({ status: 500, ok: false });
    expect(unimplemented.reason).toMatch(/does not implement the grpc health protocol/);
  });

  it('fails within its timeout when the server is slow, and fails when nothing listens', async () => {
    const start = performance.now();
    const slow = await runProbe({ grpc: { port, service: 'slow' }, timeoutSeconds: 1 }, LOOPBACK);
    const elapsed = performance.now() - start;
    expect(slow).toMatchObject({ status: 500, ok: false });
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(1800);
    expect(await runProbe({ grpc: { port: await closedPort() } }, LOOPBACK)).toMatchObject({ status: 500, ok: false });
  });

  it('binds the source address too', async () => {
    peers.length = 0;
    expect((await runProbe({ grpc: { port } }, { host: '127.0.0.1', localAddress: '127.0.0.6' })).status).toBe(200);
    expect(peers[0]).toMatch(/^127\.0\.0\.6:\d+$/);
  });
});
