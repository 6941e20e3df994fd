/** Starts a real mizzen on a temporary config folder, on loopback with OS-assigned ports. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MizzenServer } from '../../src/app/server.ts';
import { createLogger, silentLogger } from '../../src/shared/log.ts';

export interface TestMesh {
  server: MizzenServer;
  dir: string;
  xdsPort: number;
  /** The secure port (0 without `ca`). */
  secureXdsPort: number;
  /** The injection webhook's HTTPS port (0 without `ca`). */
  webhookPort: number;
  /** The mesh root certificate(s) (with `ca`). */
  rootPem(): string;
  monitoringPort: number;
  write(file: string, yaml: string): void;
  remove(file: string): void;
  stop(): Promise<void>;
}

export interface MeshOptions {
  debounceAfterMs?: number;
  sendBudgetBytes?: number;
  stuckAfterMs?: number;
  sendTimeoutMs?: number;
  /**
   * New xDS streams admitted per second. Default here: unlimited (0), not the server's istiod default, because test
   * clients open dozens of raw streams at once and do not retry a RESOURCE_EXHAUSTED as Envoy would; the limit itself is
   * tested in test/unit/admission.test.ts and test/faults/reconnect-storm.test.ts.
   */
  maxNewStreamsPerSecond?: number;
  /** Start the CA and the secure port (ADS + CA over TLS) with a test token issuer (see tokenFor). */
  ca?: { jwksFile: string; issuer: string };
}

export async function startMesh(files: Record<string, string>, options: MeshOptions = {}): Promise<TestMesh> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-test-'));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  const log = process.env.MIZZEN_TEST_LOG ? createLogger({ level: process.env.MIZZEN_TEST_LOG }) : silentLogger;
  const server = new MizzenServer({ configDir: dir, host: '127.0.0.1', xdsPort: 0, monitoringPort: 0, log, verifyXds: true, debounceAfterMs: options.debounceAfterMs ?? 50, ...(options.sendBudgetBytes ? { sendBudgetBytes: options.sendBudgetBytes } : {}),
    ...(options.stuckAfterMs ? { stuckAfterMs: options.stuckAfterMs } : {}),
    ...(options.sendTimeoutMs ? { sendTimeoutMs: options.sendTimeoutMs } : {}),
    maxNewStreamsPerSecond: options.maxNewStreamsPerSecond ?? 0,
    ...(options.ca ? { secureXdsPort: 0, webhookPort: 0, ca: { trustDomain: 'cluster.local', caDir: path.join(dir, '.ca'), keyType: 'ec' as const, tokenJwks: options.ca.jwksFile, tokenIssuer: options.ca.issuer } } : {}),
  });
  await server.start();
  return {
    server,
    dir,
    xdsPort: server.xdsPort,
    secureXdsPort: server.secureXdsPort,
    webhookPort: server.webhookPort,
    rootPem: () => server.ca?.ca.trustBundle().join('') ?? '',
    monitoringPort: server.monitoringPort,
    write: (f, text) => fs.writeFileSync(path.join(dir, f), text),
    remove: (f) => fs.rmSync(path.join(dir, f), { force: true }),
    stop: async () => {
      const errors = server.generationErrors();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
      // Generation errors are bugs: every e2e test fails on one, even if its calls happened to succeed.
      if (errors > 0) throw new Error(`${errors} resource(s) failed to generate; run with MIZZEN_TEST_LOG=error`);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns true or the time runs out. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A ServiceEntry with STATIC endpoints on loopback ports. */
export function serviceEntry(name: string, namespace: string, port: number, endpoints: Array<{ port: number; labels?: Record<string, string>; locality?: string; weight?: number }>, protocol = 'GRPC'): string {
  const eps = endpoints
    .map(
      (e) => `    - address: 127.0.0.1
      ports: { grpc: ${e.port} }
      labels: ${JSON.stringify(e.labels ?? {})}${e.locality ? `\n      locality: ${e.locality}` : ''}${e.weight ? `\n      weight: ${e.weight}` : ''}`,
    )
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  hosts: [${name}.${namespace}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - number: ${port}
      name: grpc
      protocol: ${protocol}
  endpoints:
${eps}
`;
}

/** Fails when any connected proxy has NACKed anything: mizzen must never send what a client rejects. */
export async function expectNoNacks(mesh: TestMesh): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/debug/syncz`);
  const conns = (await res.json()) as Array<{ id: string; watches: Array<{ typeUrl: string; lastNack?: { message: string } }> }>;
  const nacks = conns.flatMap((c) => c.watches.filter((w) => w.lastNack).map((w) => `${c.id} ${w.typeUrl}: ${w.lastNack!.message}`));
  if (nacks.length > 0) throw new Error(`proxies rejected config:\n${nacks.join('\n')}`);
}

export function yamlDocs(...docs: string[]): string {
  return docs.join('\n---\n');
}

/** A workload token issuer for the secure port: its JWKS file and Kubernetes-style service account tokens. */
export async function testTokenIssuer(): Promise<{ jwksFile: string; issuer: string; token(namespace: string, serviceAccount: string): Promise<string> }> {
  const jose = await import('jose');
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-issuer-'));
  const jwksFile = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'k', alg: 'ES256', use: 'sig' }] }));
  const issuer = 'https://kubernetes.default.svc.cluster.local';
  return {
    jwksFile,
    issuer,
    token: (ns, sa) =>
      new jose.SignJWT({ 'kubernetes.io': { namespace: ns, serviceaccount: { name: sa } }, sub: `system:serviceaccount:${ns}:${sa}` })
        .setProtectedHeader({ alg: 'ES256', kid: 'k' })
        .setIssuer(issuer)
        .setAudience('istio-ca')
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(privateKey),
  };
}
