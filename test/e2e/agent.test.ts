/**
 * The workload agent's security half against a real mizzen with its CA, put together as `mizzen agent` does
 * (parseAgentConfig → certManagerFromConfig → SdsServer | startProxylessOutputs), in a temporary "pod root" holding
 * the projected token and the istio-ca-root-cert mount at Istio's relative paths:
 *
 * - Envoy mode: the agent gets a certificate for `spiffe://cluster.local/ns/<ns>/sa/<sa>` chaining to the mesh root,
 *   serves it over SDS on the unix socket to a gRPC client built from Envoy's sds.proto, rotates it (60 s TTL, renewal
 *   at 5 % left), re-reads the token on every call, and survives a CA restart (same CA folder and port) by serving
 *   the old certificate and recovering within its backoff.
 * - Proxyless mode: two agents write their gRPC bootstraps and OUTPUT_CERTS; an XdsServer and a client started from
 *   nothing else talk mTLS (DestinationRule ISTIO_MUTUAL + PeerAuthentication STRICT), each seeing the other's identity.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certManagerFromConfig, type CertManager, type WorkloadSecret } from '../../src/agent/cert-manager.ts';
import { formatConfigErrors, parseAgentConfig, type AgentConfig, type Env } from '../../src/agent/config.ts';
import { startProxylessOutputs, type ProxylessOutputs } from '../../src/agent/grpc-agent.ts';
import { SdsServer } from '../../src/agent/sds-server.ts';
import { MizzenServer } from '../../src/app/server.ts';
import { decodeResource } from '../../src/proto/encode.ts';
import { createLogger, silentLogger } from '../../src/shared/log.ts';
import { call, EchoClient, echoHandlers, echoService, type EchoClientT } from '../support/echo.ts';
import { eventually, expectNoNacks, startMesh, testTokenIssuer, type TestMesh } from '../support/mesh.ts';

grpcXds.register();
const BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';
const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const log = process.env.MIZZEN_TEST_LOG ? createLogger({ level: process.env.MIZZEN_TEST_LOG }) : silentLogger;
type Issuer = Awaited<ReturnType<typeof testTokenIssuer>>;

const tmpDirs: string[] = [];
const tmp = (prefix: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
};

/** A pod's file system as the injection template mounts it, relative to the agent's working directory. */
function podRoot(rootPem: string, token: string): { cwd: string; setToken(t: string): void } {
  const cwd = tmp('mizzen-pod-');
  const tokenFile = path.join(cwd, 'var/run/secrets/tokens/istio-token');
  fs.mkdirSync(path.dirname(tokenFile), { recursive: true });
  fs.mkdirSync(path.join(cwd, 'var/run/secrets/istio'), { recursive: true });
  fs.writeFileSync(path.join(cwd, 'var/run/secrets/istio/root-cert.pem'), rootPem);
  // kubelet replaces projected tokens by renaming a new file in; do the same.
  const setToken = (t: string) => {
    fs.writeFileSync(`${tokenFile}.new`, t);
    fs.renameSync(`${tokenFile}.new`, tokenFile);
  };
  setToken(token);
  return { cwd, setToken };
}

function agentConfig(env: Env, cwd: string): AgentConfig {
  const r = parseAgentConfig(env, { cwd });
  if (!r.ok) throw new Error(formatConfigErrors(r.errors));
  return r.value;
}

const spiffeUri = (pemText: string) => new X509Certificate(pemText).subjectAltName;
const pem = (b64: string) => Buffer.from(b64, 'base64').toString();

// ---- an SDS client built from Envoy's sds.proto, independent of the server's codec ----
const require = createRequire(import.meta.url);
const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const SdsClient = (
  grpc.loadPackageDefinition(
    protoLoader.loadSync('envoy/service/secret/v3/sds.proto', {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)),
    }),
  ) as any
).envoy.service.secret.v3.SecretDiscoveryService as grpc.ServiceClientConstructor;

interface SdsUpdate {
  version: string;
  chain: string;
  key: string;
  roots: string;
}

/** An Envoy-like SDS subscriber: asks for default + ROOTCA, ACKs every response, keeps what it got. */
function sdsSubscriber(socket: string): { updates: SdsUpdate[]; close(): void } {
  const client = new SdsClient(`unix:${socket}`, grpc.credentials.createInsecure());
  const stream = (client as any).StreamSecrets() as grpc.ClientDuplexStream<any, any>;
  const updates: SdsUpdate[] = [];
  const names = ['default', 'ROOTCA'];
  stream.on('data', (r: any) => {
    const secrets = Object.fromEntries(r.resources.map((a: any) => [decodeResource(SECRET_TYPE, a.value).name, decodeResource(SECRET_TYPE, a.value)]));
    updates.push({
      version: r.version_info,
      chain: pem(secrets.default.tls_certificate.certificate_chain.inline_bytes),
      key: pem(secrets.default.tls_certificate.private_key.inline_bytes),
      roots: pem(secrets.ROOTCA.validation_context.trusted_ca.inline_bytes),
    });
    stream.write({ type_url: SECRET_TYPE, resource_names: names, version_info: r.version_info, response_nonce: r.nonce });
  });
  stream.on('error', () => {});
  stream.write({ node: { id: 'sidecar~127.0.0.1~inventory-0.shop~shop.svc.cluster.local' }, type_url: SECRET_TYPE, resource_names: names });
  return {
    updates,
    close: () => {
      stream.end();
      client.close();
    },
  };
}

/** A control plane we can stop and start again on the same CA folder and TLS port (a CA restart). */
async function startControlPlane(configDir: string, caDir: string, secureXdsPort: number, issuer: Issuer): Promise<MizzenServer> {
  const server = new MizzenServer({
    configDir,
    host: '127.0.0.1',
    xdsPort: 0,
    monitoringPort: 0,
    log,
    secureXdsPort,
    ca: { trustDomain: 'cluster.local', caDir, keyType: 'ec', tokenJwks: issuer.jwksFile, tokenIssuer: issuer.issuer },
  });
  await server.start();
  return server;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

afterAll(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('mizzen agent (Envoy mode): certificate, SDS, rotation, CA restart', () => {
  let issuer: Issuer;
  let cp: MizzenServer | undefined;
  let caPort: number;
  let configDir: string, caDir: string;
  let rootPem: string;
  let pod: ReturnType<typeof podRoot>;
  let config: AgentConfig;
  let manager: CertManager;
  let sds: SdsServer;
  const issued: WorkloadSecret[] = [];

  beforeAll(async () => {
    issuer = await testTokenIssuer();
    configDir = tmp('mizzen-cp-config-');
    caDir = path.join(tmp('mizzen-cp-ca-'), 'ca');
    cp = await startControlPlane(configDir, caDir, 0, issuer);
    caPort = cp.secureXdsPort;
    rootPem = cp.ca!.ca.trustBundle().join('');
    pod = podRoot(rootPem, await issuer.token('shop', 'inventory'));
    config = agentConfig(
      {
        POD_NAME: 'inventory-0',
        POD_NAMESPACE: 'shop',
        INSTANCE_IP: '127.0.0.1',
        SERVICE_ACCOUNT: 'inventory',
        CA_ADDR: `127.0.0.1:${caPort}`,
        PILOT_CERT_PROVIDER: 'istiod',
        ISTIO_META_CLUSTER_ID: 'Kubernetes',
        // A short life so rotation happens within the test: renewal with 5 % ± 1 % of 60 s left, i.e. after ~3 s.
        SECRET_TTL: '60s',
        SECRET_GRACE_PERIOD_RATIO: '0.95',
      },
      pod.cwd,
    );
    manager = certManagerFromConfig(config, log);
    manager.onChange((s) => issued.push(s));
    sds = new SdsServer({ source: manager, socketPath: config.sdsSocketPath, log });
    await sds.start();
    manager.start();
  });

  afterAll(async () => {
    manager?.stop();
    await sds?.stop();
    await cp?.stop();
  });

  it('obtains an RSA-2048 certificate for spiffe://cluster.local/ns/shop/sa/inventory that chains to the mesh root', async () => {
    const secret = await manager.whenReady();
    expect(config.caServerName).toBe('istiod.istio-system.svc');
    expect(spiffeUri(secret.certChainPem)).toBe('URI:spiffe://cluster.local/ns/shop/sa/inventory');
    const leaf = new X509Certificate(secret.certChainPem);
    const root = new X509Certificate(rootPem);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(secret.privateKeyPem))).toBe(true);
    expect(createPrivateKey(secret.privateKeyPem).asymmetricKeyDetails?.modulusLength).toBe(2048);
    // The requested 60 s (NotBefore is backdated by the CA for clock skew).
    expect(leaf.validToDate.getTime() - secret.fetchedAt).toBeGreaterThan(55_000);
    expect(leaf.validToDate.getTime() - secret.fetchedAt).toBeLessThanOrEqual(61_000);
    expect(secret.rootCertPem).toBe(rootPem);
    expect(manager.status()).toMatchObject({ state: 'valid', identity: 'spiffe://cluster.local/ns/shop/sa/inventory', failures: 0 });
  });

  it('serves default and ROOTCA over SDS on the unix socket, and pushes each rotation', async () => {
    expect(config.sdsSocketPath).toBe(path.join(pod.cwd, 'var/run/secrets/workload-spiffe-uds/socket'));
    expect(fs.statSync(config.sdsSocketPath).mode & 0o777).toBe(0o600);
    const sub = sdsSubscriber(config.sdsSocketPath);
    try {
      await eventually(() => sub.updates.length >= 1, 5000, 'the first SDS response');
      const first = sub.updates[0]!;
      expect(issued.some((s) => s.certChainPem === first.chain && s.privateKeyPem === first.key)).toBe(true);
      expect(first.roots).toBe(rootPem);
      const firstSerial = new X509Certificate(first.chain).serialNumber;

      // The renewal is due ~3 s after issue: a new key and certificate arrive on the open stream.
      await eventually(() => sub.updates.some((u) => new X509Certificate(u.chain).serialNumber !== firstSerial), 15_000, 'a rotated certificate over SDS');
      const next = sub.updates.find((u) => new X509Certificate(u.chain).serialNumber !== firstSerial)!;
      expect(next.version).not.toBe(first.version);
      expect(next.key).not.toBe(first.key);
      const leaf = new X509Certificate(next.chain);
      expect(leaf.subjectAltName).toBe('URI:spiffe://cluster.local/ns/shop/sa/inventory');
      expect(leaf.checkPrivateKey(createPrivateKey(next.key))).toBe(true);
      expect(leaf.verify(new X509Certificate(rootPem).publicKey)).toBe(true);
      await eventually(() => sds.streamInfo().some((i) => i.acked === sub.updates.at(-1)!.version), 5000, 'the proxy\'s ACK');
    } finally {
      sub.close();
    }
  }, 30_000);

  it('re-reads the token on every call: a bad token fails renewal (the old certificate stays), a good one recovers', async () => {
    pod.setToken('not-a-token');
    await eventually(() => manager.status().failures > 0, 15_000, 'a renewal refused for the bad token');
    expect(manager.status().lastError).toMatch(/UNAUTHENTICATED/);
    const held = manager.current()!;
    expect(manager.status().state).toBe('valid');
    pod.setToken(await issuer.token('shop', 'inventory'));
    await eventually(() => manager.status().failures === 0 && manager.current() !== held, 15_000, 'recovery with the new token');
  }, 30_000);

  it('survives a CA restart: keeps serving its certificate while the CA is down, and renews once it is back', async () => {
    const sub = sdsSubscriber(config.sdsSocketPath);
    try {
      await eventually(() => sub.updates.length >= 1, 5000, 'the SDS response');
      await cp!.stop();
      cp = undefined;
      await eventually(() => manager.status().failures >= 2, 20_000, 'renewals failing while the CA is down');
      expect(manager.status().lastError).toMatch(/UNAVAILABLE/);
      const held = manager.current()!;
      expect(manager.status().state).toBe('valid');
      // Envoy still has (and would be re-sent) the certificate it holds.
      expect(sub.updates.at(-1)!.chain).toBe(held.certChainPem);
      const reconnect = sdsSubscriber(config.sdsSocketPath);
      await eventually(() => reconnect.updates.length >= 1, 5000, 'SDS answering during the outage');
      expect(reconnect.updates[0]!.chain).toBe(held.certChainPem);
      reconnect.close();

      // The CA comes back on the same port with the same key material (its CA folder).
      cp = await startControlPlane(configDir, caDir, caPort, issuer);
      expect(cp.ca!.ca.trustBundle().join('')).toBe(rootPem);
      // Within one backoff period of recovery (reliability-security.md E4); the retries are ≤ a few seconds apart here.
      await eventually(() => manager.status().failures === 0 && manager.current() !== held, 15_000, 'renewal after the CA came back');
      const renewed = manager.current()!;
      expect(new X509Certificate(renewed.certChainPem).verify(new X509Certificate(rootPem).publicKey)).toBe(true);
      await eventually(() => sub.updates.some((u) => u.chain === renewed.certChainPem), 5000, 'the renewed certificate pushed over SDS');
    } finally {
      sub.close();
    }
  }, 60_000);
});

describe('mizzen agent (proxyless mode): gRPC bootstrap and OUTPUT_CERTS drive a real mTLS call', () => {
  const NS = 'shop';
  let mesh: TestMesh;
  let port: number;
  const managers: CertManager[] = [];
  const outputs: ProxylessOutputs[] = [];
  let server: grpcXds.XdsServer | undefined;
  let client: EchoClientT | undefined;
  const seen: Array<{ security?: string; peerSans?: string }> = [];
  let serverAgent: { bootstrap: string; certs: string; config: AgentConfig };

  /** Runs a grpc-agent for `sa` as `mizzen agent` would and returns its bootstrap JSON and OUTPUT_CERTS folder. */
  async function grpcAgent(issuer: Issuer, pod: string, sa: string, labels: Record<string, string>, extra: Env = {}): Promise<{ bootstrap: string; certs: string; config: AgentConfig }> {
    const root = podRoot(mesh.rootPem(), await issuer.token(NS, sa));
    const config = agentConfig(
      {
        POD_NAME: pod,
        POD_NAMESPACE: NS,
        INSTANCE_IP: '127.0.0.1',
        SERVICE_ACCOUNT: sa,
        CA_ADDR: `127.0.0.1:${mesh.secureXdsPort}`,
        XDS_ADDR: `127.0.0.1:${mesh.xdsPort}`,
        ISTIO_META_GENERATOR: 'grpc',
        ISTIO_META_CLUSTER_ID: 'Kubernetes',
        ISTIO_METAJSON_LABELS: JSON.stringify(labels),
        DISABLE_ENVOY: 'true',
        OUTPUT_CERTS: 'var/lib/istio/data',
        GRPC_XDS_BOOTSTRAP: 'etc/istio/proxy/grpc-bootstrap.json',
        ...extra,
      },
      root.cwd,
    );
    const manager = certManagerFromConfig(config, log);
    managers.push(manager);
    manager.start();
    const out = await startProxylessOutputs(config, manager, log);
    outputs.push(out);
    await manager.whenReady();
    await out.writer!.flushed();
    return { bootstrap: fs.readFileSync(config.grpcBootstrapPath!, 'utf8'), certs: config.outputCertsDir!, config };
  }

  beforeAll(async () => {
    const issuer = await testTokenIssuer();
    port = await freePort();
    mesh = await startMesh(
      {
        'svc.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: inventory, namespace: ${NS} }
spec:
  hosts: [inventory.${NS}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7070, name: grpc, protocol: GRPC, targetPort: ${port} }]
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${port} }, labels: { app: inventory }, serviceAccount: inventory }]
`,
        'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: inventory, namespace: ${NS} }
spec:
  host: inventory.${NS}.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`,
        'pa.yaml': `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${NS} }
spec: { mtls: { mode: STRICT } }
`,
      },
      { ca: issuer },
    );
    serverAgent = await grpcAgent(issuer, 'inventory-0', 'inventory', { app: 'inventory' }, { ECC_SIGNATURE_ALGORITHM: 'ECDSA' });
    const clientAgent = await grpcAgent(issuer, 'frontend-0', 'frontend', { app: 'frontend' });

    server = new grpcXds.XdsServer({ [BOOTSTRAP_OPTION]: serverAgent.bootstrap, drainGraceTimeMs: 1000 } as never);
    server.addService(
      echoService,
      echoHandlers({
        name: 'inventory',
        calls: 0,
        behaviour: (c) => {
          const auth = c.getAuthContext();
          seen.push({ ...(auth.transportSecurityType ? { security: auth.transportSecurityType } : {}), ...(auth.sslPeerCertificate ? { peerSans: auth.sslPeerCertificate.subjectaltname } : {}) });
          return undefined;
        },
      }),
    );
    await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('XdsServer never started serving')), 10_000);
      server!.bindAsync(`127.0.0.1:${port}`, new grpcXds.XdsServerCredentials(grpc.ServerCredentials.createInsecure()), (err, p) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(p);
      });
    });
    client = new EchoClient(`xds:///inventory.${NS}.svc.cluster.local:7070`, new grpcXds.XdsChannelCredentials(grpc.credentials.createInsecure()), {
      [BOOTSTRAP_OPTION]: clientAgent.bootstrap,
    }) as EchoClientT;
  });

  afterAll(async () => {
    client?.close();
    server?.forceShutdown();
    for (const o of outputs) o.stop();
    for (const m of managers) m.stop();
    if (mesh) {
      try {
        await expectNoNacks(mesh);
      } finally {
        await mesh.stop();
      }
    }
  });

  it('writes the bootstrap and the three certificate files', () => {
    const boot = JSON.parse(serverAgent.bootstrap);
    expect(boot.node.id).toBe('sidecar~127.0.0.1~inventory-0.shop~shop.svc.cluster.local');
    expect(boot.node.metadata).toMatchObject({ GENERATOR: 'grpc', NAMESPACE: NS, SERVICE_ACCOUNT: 'inventory', LABELS: { app: 'inventory' } });
    expect(boot.xds_servers[0].server_uri).toBe(`127.0.0.1:${mesh.xdsPort}`);
    const dir = serverAgent.certs;
    expect(boot.certificate_providers.default.config.certificate_file).toBe(path.join(dir, 'cert-chain.pem'));
    expect(fs.readdirSync(dir).sort()).toEqual(['cert-chain.pem', 'key.pem', 'root-cert.pem']);
    expect(fs.statSync(path.join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
    const chain = fs.readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8');
    expect(spiffeUri(chain)).toBe('URI:spiffe://cluster.local/ns/shop/sa/inventory');
    const key = createPrivateKey(fs.readFileSync(path.join(dir, 'key.pem')));
    expect(key.asymmetricKeyType).toBe('ec');
    expect(new X509Certificate(chain).checkPrivateKey(key)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8')).toBe(mesh.rootPem());
  });

  it('an XdsServer and a client started only from the agents\' files talk mTLS, each with its SPIFFE identity', async () => {
    await eventually(async () => !(await call(client!, {}, 2000)).error, 15_000, 'a successful mTLS call');
    seen.length = 0;
    const r = await call(client!);
    expect(r.error).toBeUndefined();
    expect(r.reply?.backend).toBe('inventory');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.security).toBe('ssl');
    expect(seen[0]!.peerSans?.split(', ')).toContain('URI:spiffe://cluster.local/ns/shop/sa/frontend');
    await expectNoNacks(mesh);
  });
});
