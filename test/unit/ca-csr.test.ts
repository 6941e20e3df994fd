/**
 * CSR parsing and verification (src/ca/csr.ts): RSA 2048-4096 and ECDSA P-256/P-384 accepted, from our own encoder
 * and from an independent one (@peculiar/x509 over WebCrypto); everything malformed, oversized, unsigned or of the
 * wrong key type refused with a CsrError, never another exception.
 */
import 'reflect-metadata';
import crypto, { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCsr, CsrError, MAX_CSR_BYTES, parseCsr } from '../../src/ca/csr.ts';
import { pemBlocks, toPem } from '../../src/ca/der.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const rsa = (bits: number) => crypto.generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
const ec = (curve: string) => crypto.generateKeyPairSync('ec', { namedCurve: curve }).privateKey;

function refused(pem: string, reason?: string): CsrError {
  try {
    parseCsr(pem);
  } catch (err) {
    expect(err).toBeInstanceOf(CsrError);
    if (reason) expect((err as CsrError).reason).toBe(reason);
    return err as CsrError;
  }
  throw new Error('CSR was accepted');
}

describe('parseCsr accepts', () => {
  it.each([
    ['RSA-2048', () => rsa(2048), 'rsa-2048'],
    ['RSA-3072', () => rsa(3072), 'rsa-3072'],
    ['RSA-4096', () => rsa(4096), 'rsa-4096'],
    ['ECDSA P-256', () => ec('P-256'), 'ec-prime256v1'],
    ['ECDSA P-384', () => ec('P-384'), 'ec-secp384r1'],
  ])('%s', (_name, key, description) => {
    const k = key();
    const parsed = parseCsr(createCsr(k, { uris: ['spiffe://cluster.local/ns/a/sa/b'] }));
    expect(parsed.keyDescription).toBe(description);
    expect(parsed.spkiDer.equals(crypto.createPublicKey(k).export({ type: 'spki', format: 'der' }))).toBe(true);
    expect(parsed.hasCommonName).toBe(false);
  });

  it('notes a CommonName in the subject (dual use)', () => {
    expect(parseCsr(createCsr(ec('P-256'), { subject: [{ oid: '2.5.4.3', value: 'admin' }] })).hasCommonName).toBe(true);
    expect(parseCsr(createCsr(ec('P-256'), { subject: [{ oid: '2.5.4.10', value: 'org' }] })).hasCommonName).toBe(false);
  });

  it.each([
    ['ECDSA P-256', { name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
    ['ECDSA P-384', { name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }],
    ['RSA-2048', { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }],
  ])('%s CSRs from an independent encoder (@peculiar/x509)', async (_n, keyAlg, signingAlgorithm) => {
    const keys = (await webcrypto.subtle.generateKey(keyAlg as webcrypto.EcKeyGenParams, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=admin, O=evil',
      keys,
      signingAlgorithm: signingAlgorithm as webcrypto.EcdsaParams,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://cluster.local/ns/kube-system/sa/admin' }])],
    });
    const parsed = parseCsr(csr.toString('pem'));
    expect(parsed.hasCommonName).toBe(true);
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    expect(parsed.spkiDer.equals(spki)).toBe(true);
  });

  it('accepts the NEW CERTIFICATE REQUEST label and surrounding text', () => {
    const pem = createCsr(ec('P-256')).replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST');
    expect(parseCsr(`Subject: whatever\n${pem}\n`).keyDescription).toBe('ec-prime256v1');
  });
});

describe('parseCsr refuses', () => {
  it('RSA keys below 2048 or above 4096 bits', () => {
    expect(refused(createCsr(rsa(1024)), 'key_size').message).toMatch(/1024 bits/);
    expect(refused(createCsr(rsa(4160)), 'key_size').message).toMatch(/4160 bits/);
  });

  it('other curves and key types', () => {
    expect(refused(createCsr(ec('P-521')), 'key_type').message).toMatch(/secp521r1/);
    expect(refused(createCsr(crypto.generateKeyPairSync('ed25519').privateKey), 'key_type').message).toMatch(/ed25519/);
  });

  it('a CSR whose signature does not verify', () => {
    for (const key of [ec('P-256'), rsa(2048)]) {
      const der = pemBlocks(createCsr(key, { subject: [{ oid: '2.5.4.3', value: 'alice' }] }), ['CERTIFICATE REQUEST'])[0]!;
      // Change the signed subject (CN=alice → CN=alicf): the structure stays valid, the signature no longer matches.
      const at = der.indexOf('alice');
      const tampered = Buffer.from(der);
      tampered[at + 4] = 'f'.charCodeAt(0);
      expect(refused(toPem('CERTIFICATE REQUEST', tampered), 'signature').message).toBe('CSR signature does not verify');
    }
  });

  it('a CSR signed by another key', () => {
    // Splice a valid CSR's info with another key's signature over different bytes.
    const a = pemBlocks(createCsr(rsa(2048)), ['CERTIFICATE REQUEST'])[0]!;
    const b = pemBlocks(createCsr(rsa(2048)), ['CERTIFICATE REQUEST'])[0]!;
    const sigLen = 256 + 5; // BIT STRING header (03 82 01 01) + unused-bits byte + 256-byte signature
    const spliced = Buffer.concat([a.subarray(0, a.length - sigLen), b.subarray(b.length - sigLen)]);
    expect(refused(toPem('CERTIFICATE REQUEST', spliced), 'signature').message).toBe('CSR signature does not verify');
  });

  it('garbage, empty input, certificates and several CSR blocks', () => {
    refused('', 'empty');
    refused('hello', 'pem');
    refused('-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n', 'pem');
    refused('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', 'asn1');
    refused('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'pem');
    const one = createCsr(ec('P-256'));
    refused(one + one, 'pem');
  });

  it('trailing bytes, indefinite lengths and truncation', () => {
    const der = pemBlocks(createCsr(ec('P-256')), ['CERTIFICATE REQUEST'])[0]!;
    refused(toPem('CERTIFICATE REQUEST', Buffer.concat([der, Buffer.from([0])])), 'asn1');
    refused(toPem('CERTIFICATE REQUEST', der.subarray(0, der.length - 1)), 'asn1');
    const indefinite = Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(2), Buffer.from([0, 0])]);
    refused(toPem('CERTIFICATE REQUEST', indefinite), 'asn1');
  });

  it(`input above ${MAX_CSR_BYTES} bytes, before parsing`, () => {
    const huge = '-----BEGIN CERTIFICATE REQUEST-----\n' + 'A'.repeat(10 * 1024 * 1024) + '\n-----END CERTIFICATE REQUEST-----\n';
    const t0 = performance.now();
    expect(refused(huge, 'too_large').message).toMatch(/max 65536/);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(() => parseCsr(createCsr(ec('P-256')), { maxBytes: 100 })).toThrow(CsrError);
  });

  it('random bytes and mutated CSRs: only CsrError, never a crash', () => {
    const base = pemBlocks(createCsr(ec('P-256'), { subject: [{ oid: '2.5.4.3', value: 'x' }] }), ['CERTIFICATE REQUEST'])[0]!;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          parseCsr(toPem('CERTIFICATE REQUEST', Buffer.from(bytes)));
        } catch (err) {
          return err instanceof CsrError;
        }
        return bytes.length > 0; // random bytes that parse and verify: vanishingly unlikely
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 }), (pos, xor) => {
        const m = Buffer.from(base);
        m[pos]! ^= xor;
        try {
          parseCsr(toPem('CERTIFICATE REQUEST', m));
          return true; // a flip in an unsigned part (e.g. the signature's DER padding) may still verify: fine
        } catch (err) {
          return err instanceof CsrError;
        }
      }),
      { numRuns: 500 },
    );
  });
});
