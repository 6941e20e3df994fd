/**
 * The Istio CA over real gRPC + TLS on loopback, put together as `mizzen serve` does (startCa → service registered on
 * a grpc.Server bound with the CA's credentials): a workload gets a certificate with a bearer token from a test JWKS
 * issuer, then renews with that certificate as its TLS client certificate and no token. Plaintext, missing and
 * foreign credentials are refused; a root rotation is picked up by the live TLS server.
 */
import crypto, { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as jose from 'jose';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaKeyCertBundle } from '../../src/ca/bundle.ts';
import { createCsr, parseCsr } from '../../src/ca/csr.ts';
import { newSelfSignedMaterial } from '../../src/ca/init.ts';
import { rotatedRootMaterial } from '../../src/ca/root-rotation.ts';
import { startCa, type CaRuntime } from '../../src/ca/runtime.ts';
import { caClientConstructor, type IstioCertificateResponse } from '../../src/ca/service.ts';
import { CertificateAuthority } from '../../src/ca/sign.ts';
import { silentLogger } from '../../src/shared/log.ts';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const SERVER_NAME = 'istiod.istio-system.svc';
const ID = 'spiffe://cluster.local/ns/bookinfo/sa/reviews';

type CaClient = grpc.Client & {
  CreateCertificate(req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: IstioCertificateResponse) => void): void;
};

describe('Istio CA over gRPC/TLS', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-ca-e2e-'));
  const registry = new Registry();
  let runtime: CaRuntime;
  let server: grpc.Server;
  let tlsPort: number;
  let plainPort: number;
  let signingKey: jose.CryptoKey;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    const pair = await jose.generateKeyPair('RS256', { extractable: true });
    signingKey = pair.privateKey;
    const jwksFile = path.join(dir, 'jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await jose.exportJWK(pair.publicKey)), kid: 'sa-key', alg: 'RS256', use: 'sig' }] }));
    runtime = await startCa({ trustDomain: 'cluster.local', caDir: path.join(dir, 'ca'), keyType: 'rsa', tokenJwks: jwksFile, tokenIssuer: ISSUER, registry, log: silentLogger });
    server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
    runtime.service.register(server);
    // A stand-in for ADS on the same TLS server: a bidi stream authenticated with runtime.service.authenticateStream,
    // as src/app/server.ts passes it to AdsServer.register(secureServer, authenticate).
    const identity = (b: Buffer) => b;
    const who = { path: '/test.Who/Who', requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
    server.addService({ Who: who } as unknown as grpc.ServiceDefinition, {
      Who: (call: grpc.ServerDuplexStream<Buffer, Buffer>) =>
        runtime.service.authenticateStream(call).then(
          (id) => {
            call.write(Buffer.from(JSON.stringify(id)));
            call.end();
          },
          () => call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'authentication failed', metadata: new grpc.Metadata() }),
        ),
    });
    const bind = (creds: grpc.ServerCredentials) => new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
    tlsPort = await bind(runtime.credentials());
    // A plaintext port on the same server: the CA must not answer there (A2), even with a valid token.
    plainPort = await bind(grpc.ServerCredentials.createInsecure());
  });

  afterAll(() => {
    for (const c of clients) c.close();
    server?.forceShutdown();
    runtime?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const rootPem = () => runtime.ca.trustBundle().join('');
  const token = (ns = 'bookinfo', sa = 'reviews', aud = 'istio-ca') =>
    new jose.SignJWT({ 'kubernetes.io': { namespace: ns, serviceaccount: { name: sa, uid: 'x' }, pod: { name: 'reviews-v1-abc', uid: 'y' } }, sub: `system:serviceaccount:${ns}:${sa}` })
      .setProtectedHeader({ alg: 'RS256', kid: 'sa-key' })
      .setIssuer(ISSUER)
      .setAudience(aud)
      .setIssuedAt()
      .setExpirationTime('12h')
      .sign(signingKey);

  function client(port: number, creds: grpc.ChannelCredentials): CaClient {
    const Ctor = caClientConstructor();
    const c = new Ctor(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME }) as unknown as CaClient;
    clients.push(c);
    return c;
  }

  function create(c: CaClient, csr: string, tok?: string, ttl = 3600): Promise<{ err: grpc.ServiceError | null; chain: string[] }> {
    const md = new grpc.Metadata();
    if (tok) md.set('authorization', `Bearer ${tok}`);
    md.set('clusterid', 'Kubernetes');
    return new Promise((resolve) => c.CreateCertificate({ csr, validity_duration: ttl }, md, (err, res) => resolve({ err, chain: res?.cert_chain ?? [] })));
  }

  function verifies(chain: string[]): X509Certificate {
    expect(chain.length).toBeGreaterThanOrEqual(2);
    const leaf = new X509Certificate(chain[0]!);
    const roots = chain[chain.length - 1]!.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g)!.map((p) => new X509Certificate(p));
    expect(roots.some((r) => leaf.checkIssued(r) && leaf.verify(r.publicKey))).toBe(true);
    for (const pem of chain) expect(pem.endsWith('\n')).toBe(true);
    return leaf;
  }

  let workloadKey: crypto.KeyObject;
  let workloadChain: string[];

  it('issues a certificate for a bearer token; the chain verifies to the root with the right SPIFFE URI', async () => {
    workloadKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    // The CSR asks for somebody else: ignored.
    const csr = createCsr(workloadKey, { uris: ['spiffe://cluster.local/ns/istio-system/sa/istiod'] });
    const c = client(tlsPort, grpc.credentials.createSsl(Buffer.from(rootPem())));
    const { err, chain } = await create(c, csr, await token());
    expect(err).toBeNull();
    const leaf = verifies(chain);
    expect(leaf.subjectAltName).toBe(`URI:${ID}`);
    expect(leaf.checkPrivateKey(workloadKey)).toBe(true);
    expect(chain[chain.length - 1]).toBe(rootPem());
    // The server's own certificate came from the same CA (the client trusted only our root and checked the name).
    workloadChain = chain;
  });

  it('renews over mTLS with the issued certificate and no token: same identity', async () => {
    const certChain = workloadChain.slice(0, -1).join('');
    const keyPem = workloadKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const c = client(tlsPort, grpc.credentials.createSsl(Buffer.from(rootPem()), Buffer.from(keyPem), Buffer.from(certChain)));
    const newKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const { err, chain } = await create(c, createCsr(newKey));
    expect(err).toBeNull();
    const leaf = verifies(chain);
    expect(leaf.subjectAltName).toBe(`URI:${ID}`);
    expect(leaf.checkPrivateKey(newKey)).toBe(true);
  });

  it('refuses a caller with neither certificate nor token (A1)', async () => {
    const { err } = await create(client(tlsPort, grpc.credentials.createSsl(Buffer.from(rootPem()))), createCsr(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey));
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'request authenticate failure' });
  });

  it('refuses plaintext, even with a valid token (A2)', async () => {
    const { err } = await create(client(plainPort, grpc.credentials.createInsecure()), createCsr(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), await token());
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    // A plaintext caller that forges the TLS marker header gets nowhere either.
    const md = new grpc.Metadata();
    md.set('x-mizzen-transport-security', 'guess');
    md.set('authorization', `Bearer ${await token()}`);
    const c = client(plainPort, grpc.credentials.createInsecure());
    const forged = await new Promise<grpc.ServiceError | null>((resolve) => c.CreateCertificate({ csr: createCsr(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey) }, md, (e) => resolve(e)));
    expect(forged).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  it('refuses a client certificate from another CA, and a token for another audience (A4, A6)', async () => {
    const other = new CertificateAuthority(CaKeyCertBundle.load(newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: 'ec' })));
    const k = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const { leaf } = other.signCsr(parseCsr(createCsr(k)), ['spiffe://cluster.local/ns/istio-system/sa/istiod'], 0);
    const c = client(tlsPort, grpc.credentials.createSsl(Buffer.from(rootPem()), Buffer.from(k.export({ type: 'pkcs8', format: 'pem' }) as string), Buffer.from(leaf)));
    expect((await create(c, createCsr(k))).err).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    const plainTls = client(tlsPort, grpc.credentials.createSsl(Buffer.from(rootPem())));
    expect((await create(plainTls, createCsr(k), await token('bookinfo', 'reviews', 'https://kubernetes.default.svc'))).err).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  it('refuses malformed CSRs and TTLs above the maximum without harm to the server (A8, A9)', async () => {
    const c = client(tlsPort, grpc.credentials.createSsl(Buffer.from(rootPem())));
    const t = await token();
    expect((await create(c, 'not a csr', t)).err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'CSR parsing error' });
    expect((await create(c, 'A'.repeat(3 * 1024 * 1024), t)).err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect((await create(c, createCsr(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), t, 91 * 86400)).err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect((await create(c, createCsr(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), t)).err).toBeNull();
  });

  it('follows a root rotation live: old-root clients still connect, the bundle carries both roots', async () => {
    const oldRoot = rootPem();
    runtime.ca.setBundle(CaKeyCertBundle.load(rotatedRootMaterial(runtime.ca.bundle)));
    expect(runtime.ca.trustBundle()).toHaveLength(2);
    // A workload that still trusts only the old root reaches the server (new serving cert, same CA key) …
    const c = client(tlsPort, grpc.credentials.createSsl(Buffer.from(oldRoot)));
    const { err, chain } = await create(c, createCsr(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), await token());
    expect(err).toBeNull();
    // … and gets both roots as its trust bundle; its new leaf verifies under the old root too.
    expect(chain[chain.length - 1]).toBe(runtime.ca.trustBundle().join(''));
    const leaf = new X509Certificate(chain[0]!);
    const old = new X509Certificate(oldRoot);
    expect(leaf.verify(old.publicKey) && leaf.checkIssued(old)).toBe(true);
  });

  it('authenticates xDS-style streams on the same server with the same chain (token, client certificate; not plaintext)', async () => {
    const whoAmI = (port: number, creds: grpc.ChannelCredentials, tok?: string) => {
      const c = new grpc.Client(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': SERVER_NAME });
      clients.push(c);
      const md = new grpc.Metadata();
      if (tok) md.set('authorization', `Bearer ${tok}`);
      const stream = c.makeBidiStreamRequest('/test.Who/Who', (b: Buffer) => b, (b: Buffer) => b, md);
      return new Promise<{ id?: unknown; code?: number }>((resolve) => {
        stream.on('data', (b: Buffer) => resolve({ id: JSON.parse(b.toString()) }));
        stream.on('error', (e: grpc.ServiceError) => resolve({ code: e.code }));
        stream.write(Buffer.from('hello'));
      });
    };
    const root = Buffer.from(rootPem());
    expect(await whoAmI(tlsPort, grpc.credentials.createSsl(root), await token('shop', 'cart'))).toEqual({ id: { namespace: 'shop', serviceAccount: 'cart', identities: ['spiffe://cluster.local/ns/shop/sa/cart'] } });
    const keyPem = workloadKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(await whoAmI(tlsPort, grpc.credentials.createSsl(root, Buffer.from(keyPem), Buffer.from(workloadChain[0]!)))).toMatchObject({ id: { namespace: 'bookinfo', serviceAccount: 'reviews' } });
    expect(await whoAmI(tlsPort, grpc.credentials.createSsl(root))).toEqual({ code: grpc.status.UNAUTHENTICATED });
    expect(await whoAmI(plainPort, grpc.credentials.createInsecure(), await token())).toEqual({ code: grpc.status.UNAUTHENTICATED });
  });

  it("counts everything under Istio's metric names", async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/^citadel_server_csr_count \d+/m);
    expect(text).toMatch(/^citadel_server_success_cert_issuance_count [1-9]/m);
    expect(text).toMatch(/^citadel_server_authentication_failure_count\{error="no_credential"\} [1-9]/m);
    expect(text).toMatch(/^citadel_server_authentication_failure_count\{error="plaintext"\} [1-9]/m);
    expect(text).toMatch(/^citadel_server_csr_parsing_err_count\{error="[a-z_]+"\} [1-9]/m);
    expect(text).toMatch(/^citadel_server_csr_sign_err_count\{error="ttl"\} 1/m);
  });
});
