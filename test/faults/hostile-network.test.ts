/**
 * Hostile network input against a real mizzen with its CA (issue "Scale, faults and hostile input", item 5;
 * reliability-security.md §9 B6, B7, A9): garbage and half-open TLS handshakes on the secure port (15012) while a
 * well-behaved workload still gets its certificate and its ADS answer; oversized gRPC messages refused with
 * RESOURCE_EXHAUSTED (the 4 MiB receive limit) while the server keeps serving; slow-loris requests and idle connection
 * floods on the webhook (15017, HTTPS) and monitoring (15014, HTTP) ports, which the servers' timeouts must close while
 * normal requests still succeed.
 */
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caClientConstructor, TLS_HANDSHAKE_TIMEOUT_MS } from '../../src/ca/service.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import { AdsClient } from '../support/ads-client.ts';
import { eventually, serviceEntry, startMesh, testTokenIssuer, type TestMesh } from '../support/mesh.ts';
import { workloadCerts } from '../support/workload-certs.ts';
import { envoyNode, rawAdsCall, sleep } from './helpers.ts';

const SERVER_NAME = 'istiod.istio-system.svc';
let mesh: TestMesh;
let token: (ns: string, sa: string) => Promise<string>;
const report: Array<{ test: string; load: string; result: string }> = [];

beforeAll(async () => {
  const issuer = await testTokenIssuer();
  token = issuer.token;
  mesh = await startMesh({ 'svc.yaml': serviceEntry('echo', 'default', 8080, [{ port: 8080 }]) }, { ca: issuer });
});

afterAll(async () => {
  console.table(report);
  await mesh?.stop();
});

/** A well-behaved workload on the secure port: a certificate from the CA, then CDS over ADS; returns the ms taken. */
async function wellBehavedTlsClient(): Promise<number> {
  const t0 = Date.now();
  const tok = await token('default', 'echo');
  const certs = await workloadCerts(mesh, tok);
  expect(certs.spiffeId).toBe('spiffe://cluster.local/ns/default/sa/echo');
  certs.remove();
  const ads = new AdsClient('sotw', mesh.secureXdsPort, { ...envoyNode('echo-0', 'default'), metadata: { SERVICE_ACCOUNT: 'echo' } }, { rootPem: mesh.rootPem(), token: tok });
  try {
    const cds = await ads.fetch(TypeUrl.Cluster, [], 10_000);
    expect(cds.names).toContain('outbound|8080||echo.default.svc.cluster.local');
  } finally {
    ads.close();
  }
  return Date.now() - t0;
}

/** The first bytes a TLS client sends (its ClientHello), captured from a real handshake against a dummy listener. */
async function clientHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((sock) => {
      sock.once('data', (d) => {
        resolve(d);
        sock.destroy();
        srv.close();
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, servername: SERVER_NAME, rejectUnauthorized: false });
      c.on('error', () => {});
    });
    srv.on('error', reject);
  });
}

interface Tracked {
  socket: net.Socket;
  openedAt: number;
  closedAt?: number;
}
function track(socket: net.Socket): Tracked {
  const t: Tracked = { socket, openedAt: Date.now() };
  socket.on('error', () => {});
  socket.on('close', () => (t.closedAt = Date.now()));
  return t;
}
const stillOpen = (ts: Tracked[]) => ts.filter((t) => t.closedAt === undefined).length;

describe('the secure port (15012) under garbage and half-open TLS handshakes', () => {
  it('200 hostile connections at once: garbage is cut off, a well-behaved workload still gets its certificate and ADS answer', async () => {
    const hello = await clientHello();
    const alone = await wellBehavedTlsClient();
    const garbage: Tracked[] = [];
    const halfOpen: Tracked[] = [];
    for (let i = 0; i < 100; i++) {
      const g = track(net.connect(mesh.secureXdsPort, '127.0.0.1'));
      g.socket.on('connect', () => g.socket.write(Buffer.from(Array.from({ length: 2048 }, (_, j) => (i * 31 + j * 7) & 255))));
      garbage.push(g);
      const h = track(net.connect(mesh.secureXdsPort, '127.0.0.1'));
      // A partial ClientHello, then nothing: the server waits for the rest.
      h.socket.on('connect', () => h.socket.write(hello.subarray(0, Math.floor(hello.length / 2))));
      halfOpen.push(h);
    }
    try {
      await sleep(300);
      const during = await wellBehavedTlsClient();
      report.push({ test: '15012 garbage + half-open TLS', load: '100 garbage + 100 half-open ClientHello', result: `cert+CDS in ${during} ms (alone ${alone} ms); garbage closed by server ${100 - stillOpen(garbage)}/100; half-open still held ${stillOpen(halfOpen)}/100` });
      expect(during).toBeLessThan(3 * alone + 2000);
      // Garbage is not TLS: the server answers with an alert and closes at once.
      expect(stillOpen(garbage)).toBe(0);
      // The half-open handshakes cost a socket each and no CPU, and are cut off at the TLS handshake timeout.
      const started = Date.now();
      await eventually(() => stillOpen(halfOpen) === 0, TLS_HANDSHAKE_TIMEOUT_MS + 5000, 'half-open handshakes closed by the server');
      report.at(-1)!.result += `; half-open closed by the server within ${Date.now() - started} ms more`;
      const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/ready`);
      expect(res.status).toBe(200);
    } finally {
      for (const t of [...garbage, ...halfOpen]) t.socket.destroy();
    }
  }, 60_000);
});

describe('oversized gRPC messages (> 4 MiB)', () => {
  it('are refused with RESOURCE_EXHAUSTED on 15010 and 15012 (ADS and CA); the server keeps serving', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1024, 0x0a);
    const plain = rawAdsCall(mesh.xdsPort);
    plain.call.write(big);
    expect((await plain.status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    plain.close();

    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${await token('default', 'echo')}`);
    const creds = grpc.credentials.createSsl(Buffer.from(mesh.rootPem()));
    const opts = { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME, 'grpc.max_send_message_length': -1 };
    const secure = rawAdsCall(mesh.secureXdsPort, creds, opts, md);
    secure.call.write(big);
    expect((await secure.status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    secure.close();

    const Ctor = caClientConstructor();
    const ca = new Ctor(`127.0.0.1:${mesh.secureXdsPort}`, creds, opts) as unknown as grpc.Client & {
      CreateCertificate(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void;
    };
    const err = await new Promise<grpc.ServiceError | null>((resolve) => ca.CreateCertificate({ csr: 'A'.repeat(5 * 1024 * 1024), validity_duration: 3600 }, md, { deadline: Date.now() + 10_000 }, resolve));
    ca.close();
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);

    const after = await wellBehavedTlsClient();
    const ads = new AdsClient('sotw', mesh.xdsPort, envoyNode('after-big', 'default'));
    expect((await ads.fetch(TypeUrl.Cluster)).names).toContain('outbound|8080||echo.default.svc.cluster.local');
    ads.close();
    report.push({ test: 'oversized messages', load: '4 MiB + 1 KiB ADS on 15010/15012, 5 MiB CSR', result: `RESOURCE_EXHAUSTED x3; then cert+CDS in ${after} ms` });
  });
});

describe('slow-loris and connection floods on the webhook (15017) and monitoring (15014) ports', () => {
  it('are closed by the servers\' timeouts while normal requests still succeed', async () => {
    const SLOW = 50;
    const IDLE = 200;
    const loris = (port: number, secure: boolean, request: string): Tracked => {
      const socket = secure ? tls.connect({ host: '127.0.0.1', port, servername: SERVER_NAME, ca: mesh.rootPem() }) : net.connect(port, '127.0.0.1');
      const t = track(socket);
      let i = 0;
      const timer = setInterval(() => {
        if (t.closedAt !== undefined || socket.destroyed) return clearInterval(timer);
        // Headers, one byte per second, never finished.
        socket.write(request[i % request.length]!);
        i++;
      }, 1000);
      socket.on('close', () => clearInterval(timer));
      return t;
    };
    const monitoringLoris = Array.from({ length: SLOW }, () => loris(mesh.monitoringPort, false, 'GET /ready HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'));
    const webhookLoris = Array.from({ length: SLOW }, () => loris(mesh.webhookPort, true, 'POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'));
    // Connection floods: TCP connections that send nothing at all (for 15017, not even a ClientHello).
    const monitoringIdle = Array.from({ length: IDLE }, () => track(net.connect(mesh.monitoringPort, '127.0.0.1')));
    const webhookIdle = Array.from({ length: IDLE }, () => track(net.connect(mesh.webhookPort, '127.0.0.1')));
    const all = [...monitoringLoris, ...webhookLoris, ...monitoringIdle, ...webhookIdle];
    const start = Date.now();
    try {
      await sleep(1500);
      // Normal requests meanwhile, on both ports.
      const normal: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const ready = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/ready`, { signal: AbortSignal.timeout(5000) });
        expect(ready.status).toBe(200);
        const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: `u${i}`, namespace: 'shop', operation: 'CREATE', object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'app', image: 'app' }] } } } };
        const answer = await postJson(mesh.webhookPort, '/inject', review);
        expect(answer.status).toBe(200);
        expect((answer.body as { response: { uid: string; allowed: boolean } }).response).toMatchObject({ uid: `u${i}`, allowed: true });
        normal.push(Date.now() - t0);
        await sleep(200);
      }
      expect(stillOpen(all), 'the hostile connections are still open while the normal requests ran').toBeGreaterThan(0);
      // Every hostile connection is closed by the server within its timeouts (10 s request/handshake/idle) plus the
      // servers' 1 s timeout-checking interval, with slack for a loaded machine.
      const deadline = start + 20_000;
      while (stillOpen(all) > 0 && Date.now() < deadline) await sleep(250);
      const closedIn = (ts: Tracked[]) => Math.max(...ts.map((t) => (t.closedAt ?? Number.NaN) - t.openedAt));
      report.push({
        test: 'slow-loris + idle flood, 15014 and 15017',
        load: `${SLOW} slow-loris (1 byte/s) + ${IDLE} idle TCP per port`,
        result: `normal requests max ${Math.max(...normal)} ms; closed by server: 15014 loris ${(closedIn(monitoringLoris) / 1000).toFixed(1)} s, idle ${(closedIn(monitoringIdle) / 1000).toFixed(1)} s; 15017 loris ${(closedIn(webhookLoris) / 1000).toFixed(1)} s, idle ${(closedIn(webhookIdle) / 1000).toFixed(1)} s; still open ${stillOpen(all)}`,
      });
      expect(stillOpen(monitoringLoris), '15014 slow-loris still open').toBe(0);
      expect(stillOpen(webhookLoris), '15017 slow-loris still open').toBe(0);
      expect(stillOpen(monitoringIdle), '15014 idle still open').toBe(0);
      expect(stillOpen(webhookIdle), '15017 idle still open').toBe(0);
      expect(Math.max(...normal)).toBeLessThan(2000);
    } finally {
      for (const t of all) t.socket.destroy();
    }
  }, 40_000);
});

function postJson(port: number, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method: 'POST', ca: mesh.rootPem(), servername: SERVER_NAME, headers: { 'content-type': 'application/json' }, timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
