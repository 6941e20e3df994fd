/**
 * The signer (src/ca/sign.ts): Istio's workload-certificate profile, identities from the caller only, TTL rules,
 * chain order, and the control plane's serving certificate. Issued certificates are read back with node:crypto and
 * with an independent parser (@peculiar/x509), not with our own encoder.
 */
import 'reflect-metadata';
import crypto, { X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { createIntermediateCertificate, createRootCertificate } from '../../src/ca/authority-certs.ts';
import { CaKeyCertBundle } from '../../src/ca/bundle.ts';
import { createCsr, parseCsr } from '../../src/ca/csr.ts';
import { newSelfSignedMaterial } from '../../src/ca/init.ts';
import { privateKeyToPem } from '../../src/ca/keys.ts';
import { CaSignError, CertificateAuthority, DEFAULT_WORKLOAD_CERT_TTL_SEC, MAX_WORKLOAD_CERT_TTL_SEC } from '../../src/ca/sign.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ID = 'spiffe://cluster.local/ns/ns1/sa/sa1';
const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const rsa = () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

function ext<T extends x509.Extension>(cert: x509.X509Certificate, type: new (...a: any[]) => T): T | undefined {
  return cert.getExtension(type) ?? undefined;
}

describe.each([
  ['RSA-2048 CA', 'rsa' as const],
  ['ECDSA P-256 CA', 'ec' as const],
])('%s', (_name, keyType) => {
  let ca: CertificateAuthority;
  let root: X509Certificate;
  beforeAll(() => {
    const m = newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType });
    ca = new CertificateAuthority(CaKeyCertBundle.load(m));
    root = new X509Certificate(m.rootCerts);
  });

  it.each([
    ['RSA CSR', rsa],
    ['ECDSA CSR', ec],
  ])('%s: a CSR asking for another identity gets the caller identity only (A3)', (_n, key) => {
    const csr = createCsr(key(), { subject: [{ oid: '2.5.4.3', value: 'admin' }], uris: ['spiffe://cluster.local/ns/ns2/sa/sa2'], dns: ['evil.example.com'] });
    const out = ca.signCsr(parseCsr(csr), [ID], 0);
    const leaf = new X509Certificate(out.leaf);
    expect(leaf.subjectAltName).toBe(`URI:${ID}`);
    // Dual use: the CSR had a CN, so the leaf's CN is the caller's identity, never the CSR's "admin".
    expect(leaf.subject).toBe(`CN=${ID}`);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.ca).toBe(false);
  });

  it("has Istio's workload profile (independent parser)", () => {
    const out = ca.signCsr(parseCsr(createCsr(ec())), [ID], 0);
    const leaf = new x509.X509Certificate(out.leaf);
    const caCert = new x509.X509Certificate(ca.bundle.signingCert.toString());
    expect(leaf.subject).toBe('');
    const san = ext(leaf, x509.SubjectAlternativeNameExtension)!;
    expect(san.critical).toBe(true); // empty subject → SAN critical (RFC 5280 §4.2.1.6)
    expect(san.names.toJSON()).toEqual([{ type: 'url', value: ID }]);
    const ku = ext(leaf, x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    const eku = ext(leaf, x509.ExtendedKeyUsageExtension)!;
    expect(eku.usages).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    const bc = ext(leaf, x509.BasicConstraintsExtension)!;
    expect(bc.ca).toBe(false);
    expect(bc.critical).toBe(true);
    const aki = ext(leaf, x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(ext(caCert, x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(ext(leaf, x509.SubjectKeyIdentifierExtension)).toBeUndefined();
    expect(leaf.signatureAlgorithm).toMatchObject({ name: keyType === 'rsa' ? 'RSASSA-PKCS1-v1_5' : 'ECDSA' });
    expect(leaf.issuer).toBe('O=cluster.local');
    expect(BigInt('0x' + leaf.serialNumber)).toBeGreaterThan(0n);
  });

  it('TTL: 0 and negative → 24 h; in range → as asked; above the max → refused (A8)', () => {
    const now = Date.now();
    for (const ttl of [0, -5]) {
      const leaf = new X509Certificate(ca.signCsr(parseCsr(createCsr(ec())), [ID], ttl).leaf);
      expect(Math.abs(leaf.validToDate.getTime() - (now + DEFAULT_WORKLOAD_CERT_TTL_SEC * 1000))).toBeLessThan(5000);
      // NotBefore is backdated by 2 minutes for clock skew, and ≤ now.
      expect(Math.abs(leaf.validFromDate.getTime() - (now - 120_000))).toBeLessThan(5000);
    }
    const hour = new X509Certificate(ca.signCsr(parseCsr(createCsr(ec())), [ID], 3600).leaf);
    expect(Math.abs(hour.validToDate.getTime() - (now + 3600_000))).toBeLessThan(5000);
    const max = new X509Certificate(ca.signCsr(parseCsr(createCsr(ec())), [ID], MAX_WORKLOAD_CERT_TTL_SEC).leaf);
    expect(Math.abs(max.validToDate.getTime() - (now + MAX_WORKLOAD_CERT_TTL_SEC * 1000))).toBeLessThan(5000);
    expect(() => ca.signCsr(parseCsr(createCsr(ec())), [ID], MAX_WORKLOAD_CERT_TTL_SEC + 1)).toThrow(expect.objectContaining({ reason: 'ttl' }));
  });

  it('chain: leaf then root, one PEM per element, each ending with a newline (A10)', () => {
    const out = ca.signCsr(parseCsr(createCsr(ec())), [ID], 0);
    expect(out.chain).toHaveLength(2);
    expect(out.chain[0]).toBe(out.leaf);
    expect(out.chain[1]).toBe(root.toString());
    for (const pem of out.chain) {
      expect(pem.endsWith('-----END CERTIFICATE-----\n')).toBe(true);
      expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    }
    expect(ca.trustBundle()).toEqual([root.toString()]);
  });
});

describe('signing rules', () => {
  const material = newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: 'ec' });
  const bundle = CaKeyCertBundle.load(material);

  it('random, distinct, positive 128-bit serials', () => {
    const ca = new CertificateAuthority(bundle);
    const serials = new Set<string>();
    const csr = parseCsr(createCsr(ec()));
    for (let i = 0; i < 200; i++) serials.add(new X509Certificate(ca.signCsr(csr, [ID], 0).leaf).serialNumber);
    expect(serials.size).toBe(200);
    const bits = [...serials].map((s) => BigInt('0x' + s).toString(2).length);
    expect(Math.max(...bits)).toBeGreaterThan(120);
    expect(Math.max(...bits)).toBeLessThanOrEqual(128);
  });

  it('several identities become several URI SANs; a CN too long for X.520 is left out', () => {
    const ca = new CertificateAuthority(bundle);
    const long = 'spiffe://cluster.local/ns/a-rather-long-namespace-name/sa/an-even-longer-service-account';
    const leaf = new X509Certificate(ca.signCsr(parseCsr(createCsr(ec(), { subject: [{ oid: '2.5.4.3', value: 'x' }] })), [long, ID], 0).leaf);
    expect(leaf.subjectAltName).toBe(`URI:${long}, URI:${ID}`);
    expect(leaf.subject ?? '').toBe(''); // node reports an empty Name as undefined
  });

  it('refuses no identity or a non-URI identity', () => {
    const ca = new CertificateAuthority(bundle);
    const csr = parseCsr(createCsr(ec()));
    expect(() => ca.signCsr(csr, [], 0)).toThrow(expect.objectContaining({ reason: 'no_identity' }));
    expect(() => ca.signCsr(csr, ['not a uri'], 0)).toThrow(CaSignError);
    expect(() => ca.signCsr(csr, ['spiffe://x/ns/a/sa/b\nCN=evil'], 0)).toThrow(CaSignError);
  });

  it('honours a configured maximum and default', () => {
    const ca = new CertificateAuthority(bundle, { maxTtlSec: 7200, defaultTtlSec: 600 });
    const csr = parseCsr(createCsr(ec()));
    expect(() => ca.signCsr(csr, [ID], 7201)).toThrow(expect.objectContaining({ reason: 'ttl' }));
    const leaf = new X509Certificate(ca.signCsr(csr, [ID], 0).leaf);
    expect(Math.abs(leaf.validToDate.getTime() - Date.now() - 600_000)).toBeLessThan(5000);
    expect(() => new CertificateAuthority(bundle, { maxTtlSec: 60, defaultTtlSec: 600 })).toThrow(/default certificate TTL/);
  });

  it('clamps NotAfter to the signing certificate and refuses once it has expired', () => {
    const key = ec();
    const shortRoot = createRootCertificate({ key, subject: [{ oid: '2.5.4.10', value: 'short' }], ttlSec: 3600 });
    const short = CaKeyCertBundle.load({ caCert: shortRoot, caKey: privateKeyToPem(key), certChain: '', rootCerts: shortRoot });
    const ca = new CertificateAuthority(short);
    const leaf = new X509Certificate(ca.signCsr(parseCsr(createCsr(ec())), [ID], 86400).leaf);
    expect(leaf.validToDate.getTime()).toBe(short.signingCert.validToDate.getTime());
    const later = new CertificateAuthority(short, { now: () => short.signingCert.validToDate.getTime() + 1000 });
    expect(() => later.signCsr(parseCsr(createCsr(ec())), [ID], 0)).toThrow(expect.objectContaining({ reason: 'ca_expired' }));
  });

  it('a P-384 CA signs with ecdsa-with-SHA384', () => {
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const r = createRootCertificate({ key, subject: [{ oid: '2.5.4.10', value: 'p384' }] });
    const ca = new CertificateAuthority(CaKeyCertBundle.load({ caCert: r, caKey: privateKeyToPem(key), certChain: '', rootCerts: r }));
    const leaf = new x509.X509Certificate(ca.signCsr(parseCsr(createCsr(ec())), [ID], 0).leaf);
    expect(leaf.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-384' } });
    expect(new X509Certificate(leaf.toString('pem')).verify(new X509Certificate(r).publicKey)).toBe(true);
  });

  it('plug-in CA: leaf, intermediate, root; the chain verifies link by link', () => {
    const rootKey = rsa();
    const rootPem = createRootCertificate({ key: rootKey, subject: [{ oid: '2.5.4.10', value: 'Istio' }, { oid: '2.5.4.3', value: 'Root CA' }] });
    const interKey = ec();
    const inter = createIntermediateCertificate({ rootCertPem: rootPem, rootKey, key: interKey, subject: [{ oid: '2.5.4.10', value: 'Istio' }, { oid: '2.5.4.3', value: 'Intermediate CA' }], ttlSec: 86400 * 30 });
    const ca = new CertificateAuthority(CaKeyCertBundle.load({ caCert: inter, caKey: privateKeyToPem(interKey), certChain: inter + rootPem, rootCerts: rootPem }));
    const out = ca.signCsr(parseCsr(createCsr(rsa())), [ID], 0);
    expect(out.chain).toHaveLength(3);
    const [leaf, mid, top] = out.chain.map((p) => new X509Certificate(p)) as [X509Certificate, X509Certificate, X509Certificate];
    expect(mid.toString()).toBe(new X509Certificate(inter).toString());
    expect(top.toString()).toBe(new X509Certificate(rootPem).toString());
    expect(leaf.checkIssued(mid) && leaf.verify(mid.publicKey)).toBe(true);
    expect(mid.checkIssued(top) && mid.verify(top.publicKey)).toBe(true);
    expect(ca.bundle.verifyLeaf(leaf)).toBeUndefined();
  });

  it("issues the control plane's serving certificate with DNS SANs", () => {
    const ca = new CertificateAuthority(bundle);
    const s = ca.issueServingCertificate({ dnsNames: ['mizzen.istio-system.svc', 'istiod.istio-system.svc'] });
    const cert = new X509Certificate(s.certChain);
    expect(cert.subjectAltName).toBe('DNS:mizzen.istio-system.svc, DNS:istiod.istio-system.svc');
    expect(cert.checkPrivateKey(crypto.createPrivateKey(s.key))).toBe(true);
    expect(cert.verify(bundle.signingCert.publicKey)).toBe(true);
    expect(cert.checkHost('istiod.istio-system.svc')).toBe('istiod.istio-system.svc');
    expect(s.roots).toBe(bundle.signingCert.toString());
    expect(() => ca.issueServingCertificate({ dnsNames: [] })).toThrow();
  });
});
