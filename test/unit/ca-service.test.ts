/**
 * The CreateCertificate handler (src/ca/service.ts) without a network: status codes and opaque messages, metrics under
 * Istio's names, and logs that carry reasons but never tokens or keys. test/e2e/ca-grpc.test.ts runs it over TLS.
 */
import crypto, { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as jose from 'jose';
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { JwtAuthenticator, ClientCertAuthenticator } from '../../src/ca/authenticate.ts';
import { CaKeyCertBundle } from '../../src/ca/bundle.ts';
import { createCsr } from '../../src/ca/csr.ts';
import { newSelfSignedMaterial } from '../../src/ca/init.ts';
import { CaService, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/ca/service.ts';
import { CertificateAuthority, MAX_WORKLOAD_CERT_TTL_SEC } from '../../src/ca/sign.ts';
import { createLogger } from '../../src/shared/log.ts';

const ISSUER = 'https://issuer.test';
const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

interface Answer {
  err: grpc.ServiceError | null;
  res: IstioCertificateResponse | undefined;
}

describe('CaService.CreateCertificate', () => {
  let ca: CertificateAuthority;
  let signingKey: jose.CryptoKey;
  let registry: Registry;
  let logs: string[];
  let make: (options?: { allowPlaintext?: boolean }) => CaService;

  beforeAll(async () => {
    ca = new CertificateAuthority(CaKeyCertBundle.load(newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: 'ec' })));
    const pair = await jose.generateKeyPair('RS256', { extractable: true });
    signingKey = pair.privateKey;
    const jwks = { keys: [{ ...(await jose.exportJWK(pair.publicKey)), kid: 'a', alg: 'RS256' }] };
    registry = new Registry();
    logs = [];
    const log = createLogger({ level: 'debug', destination: new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }) });
    make = (o = {}) =>
      new CaService({
        ca,
        authenticators: [new ClientCertAuthenticator(() => ca.bundle), new JwtAuthenticator({ issuer: ISSUER, jwks, trustDomain: 'cluster.local' })],
        log,
        registry,
        allowPlaintext: o.allowPlaintext ?? true,
      });
  });

  const token = (ns = 'ns1', sa = 'sa1') =>
    new jose.SignJWT({ 'kubernetes.io': { namespace: ns, serviceaccount: { name: sa } } }).setProtectedHeader({ alg: 'RS256', kid: 'a' }).setIssuer(ISSUER).setAudience('istio-ca').setExpirationTime('1h').sign(signingKey);

  async function call(service: CaService, request: Partial<IstioCertificateRequest>, tok?: string): Promise<Answer> {
    const metadata = new grpc.Metadata();
    if (tok) metadata.set('authorization', `Bearer ${tok}`);
    const fake = { request: { csr: '', validity_duration: '0', metadata: null, ...request }, metadata, getAuthContext: () => ({}), getPeer: () => 'ipv4:127.0.0.1:5000' };
    return new Promise((resolve) => {
      (service.implementation.CreateCertificate as (c: unknown, cb: (e: grpc.ServiceError | null, r?: IstioCertificateResponse) => void) => void)(fake, (err, res) => resolve({ err, res }));
    });
  }

  const metric = async (name: string, labels = '') => {
    const text = await registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
    return line ? Number(line.split(' ')[1]) : 0;
  };

  it('signs for the token identity, whatever the CSR asks for (A3)', async () => {
    const before = await metric('citadel_server_success_cert_issuance_count');
    const csrs = await metric('citadel_server_csr_count');
    const csr = createCsr(ec(), { subject: [{ oid: '2.5.4.3', value: 'admin' }], uris: ['spiffe://cluster.local/ns/ns2/sa/sa2'] });
    const t = await token();
    const { err, res } = await call(make(), { csr, validity_duration: '3600' }, t);
    expect(err).toBeNull();
    expect(res!.cert_chain).toHaveLength(2);
    const leaf = new X509Certificate(res!.cert_chain[0]!);
    expect(leaf.subjectAltName).toBe('URI:spiffe://cluster.local/ns/ns1/sa/sa1');
    expect(await metric('citadel_server_success_cert_issuance_count')).toBe(before + 1);
    expect(await metric('citadel_server_csr_count')).toBe(csrs + 1);
    expect(logs.join('')).not.toContain(t);
  });

  it('no credential → UNAUTHENTICATED, counted, reason logged (A1)', async () => {
    const before = await metric('citadel_server_authentication_failure_count', 'error="no_credential"');
    const { err } = await call(make(), { csr: createCsr(ec()) });
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'request authenticate failure' });
    expect(await metric('citadel_server_authentication_failure_count', 'error="no_credential"')).toBe(before + 1);
    expect(logs.some((l) => l.includes('no credential'))).toBe(true);
  });

  it('bad token → the same opaque answer; the log has the reason, not the token', async () => {
    const bad = await new jose.SignJWT({ sub: 'system:serviceaccount:a:b' }).setProtectedHeader({ alg: 'RS256', kid: 'a' }).setIssuer(ISSUER).setAudience('kube-apiserver').setExpirationTime('1h').sign(signingKey);
    const { err } = await call(make(), { csr: createCsr(ec()) }, bad);
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'request authenticate failure' });
    expect(await metric('citadel_server_authentication_failure_count', 'error="token_claims"')).toBeGreaterThan(0);
    const all = logs.join('');
    expect(all).toContain('aud');
    expect(all).not.toContain(bad);
  });

  it('plaintext callers are refused unless allowed (A2)', async () => {
    const { err } = await call(make({ allowPlaintext: false }), { csr: createCsr(ec()) }, await token());
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    expect(await metric('citadel_server_authentication_failure_count', 'error="plaintext"')).toBeGreaterThan(0);
  });

  it('malformed, huge and wrong-key CSRs → INVALID_ARGUMENT "CSR parsing error" (A9)', async () => {
    const t = await token();
    for (const [csr, label] of [
      ['garbage', 'pem'],
      ['-----BEGIN CERTIFICATE REQUEST-----\n' + 'QUFB'.repeat(1 << 18) + '\n-----END CERTIFICATE REQUEST-----\n', 'too_large'],
      [createCsr(crypto.generateKeyPairSync('ed25519').privateKey), 'key_type'],
    ] as const) {
      const { err } = await call(make(), { csr }, t);
      expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'CSR parsing error' });
      expect(await metric('citadel_server_csr_parsing_err_count', `error="${label}"`)).toBeGreaterThan(0);
    }
  });

  it('TTL above the maximum → INVALID_ARGUMENT; 0 and negative → default (A8)', async () => {
    const t = await token();
    const { err } = await call(make(), { csr: createCsr(ec()), validity_duration: String(MAX_WORKLOAD_CERT_TTL_SEC + 1) }, t);
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(await metric('citadel_server_csr_sign_err_count', 'error="ttl"')).toBeGreaterThan(0);
    for (const v of ['0', '-5', '9223372036854775807']) {
      const r = await call(make(), { csr: createCsr(ec()), validity_duration: v }, t);
      if (v.startsWith('9')) expect(r.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      else expect(new X509Certificate(r.res!.cert_chain[0]!).validToDate.getTime() - Date.now()).toBeGreaterThan(23.9 * 3600_000);
    }
  });

  it('impersonation metadata is refused (A7: not supported)', async () => {
    const { err } = await call(make(), { csr: createCsr(ec()), metadata: { fields: { ImpersonatedIdentity: { stringValue: 'spiffe://cluster.local/ns/kube-system/sa/admin' } } } }, await token());
    expect(err).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'request impersonation authentication failure' });
  });

  it('authenticateStream: the proven namespace and service account for xDS, or a rejection with the reason', async () => {
    const stream = (tok?: string) => {
      const metadata = new grpc.Metadata();
      if (tok) metadata.set('authorization', `Bearer ${tok}`);
      return { metadata, getAuthContext: () => ({}), getPeer: () => 'ipv4:127.0.0.1:6000' } as unknown as grpc.ServerDuplexStream<unknown, unknown>;
    };
    const service = make();
    await expect(service.authenticateStream(stream(await token('shop', 'cart')))).resolves.toEqual({ namespace: 'shop', serviceAccount: 'cart', identities: ['spiffe://cluster.local/ns/shop/sa/cart'] });
    await expect(service.authenticateStream(stream())).rejects.toThrow(/^no_credential/);
    await expect(make({ allowPlaintext: false }).authenticateStream(stream(await token()))).rejects.toThrow(/^plaintext/);
  });

  it("exports the CA's expiry gauges and shares metrics between services on one registry", async () => {
    make();
    expect(await metric('citadel_server_root_cert_expiry_timestamp')).toBe(Math.floor(ca.bundle.roots[0]!.validToDate.getTime() / 1000));
    expect(await metric('citadel_server_cert_chain_expiry_timestamp')).toBe(Math.floor(ca.bundle.signingCert.validToDate.getTime() / 1000));
    expect(logs.join('')).not.toMatch(/PRIVATE KEY/);
  });
});
