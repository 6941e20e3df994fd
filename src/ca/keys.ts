/**
 * Key material: generation, PEM import/export and the signature algorithm that goes with each CA key. Keys are
 * node:crypto KeyObjects throughout (native, fast); node-forge never holds a private key.
 */
import crypto, { type KeyObject } from 'node:crypto';

export type KeyType = 'rsa' | 'ec';

export interface KeyOptions {
  type: KeyType;
  /** RSA modulus size (default 2048, Istio's CITADEL_SELF_SIGNED_CA_RSA_KEY_SIZE). */
  rsaBits?: number;
  /** EC curve (default P-256). */
  curve?: 'P-256' | 'P-384';
}

export function generateKeyPair(options: KeyOptions): { privateKey: KeyObject; publicKey: KeyObject } {
  if (options.type === 'rsa') return crypto.generateKeyPairSync('rsa', { modulusLength: options.rsaBits ?? 2048 });
  return crypto.generateKeyPairSync('ec', { namedCurve: options.curve ?? 'P-256' });
}

/** Istio writes CA keys as PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`); we do the same for compatibility. */
export function privateKeyToPem(key: KeyObject): string {
  const type = key.asymmetricKeyType === 'rsa' ? 'pkcs1' : key.asymmetricKeyType === 'ec' ? 'sec1' : 'pkcs8';
  return key.export({ type, format: 'pem' }) as string;
}

/** Parses a private key PEM (PKCS#1, SEC1 or PKCS#8). Encrypted keys are refused: a CA cannot prompt. */
export function parsePrivateKey(pem: string): KeyObject {
  if (/ENCRYPTED/.test(pem)) throw new Error('encrypted private keys are not supported; decrypt it first (openssl pkey -in k.pem -out k.pem)');
  const key = crypto.createPrivateKey({ key: pem, format: 'pem' });
  checkCaKey(key);
  return key;
}

/** Keys a CA may sign with: RSA 2048–8192, EC P-256/P-384. */
export function checkCaKey(key: KeyObject): void {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    if ((d.modulusLength ?? 0) < 2048 || (d.modulusLength ?? 0) > 8192) throw new Error(`RSA CA key of ${d.modulusLength} bits (need 2048-8192)`);
  } else if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve !== 'prime256v1' && d.namedCurve !== 'secp384r1') throw new Error(`EC CA key on curve ${d.namedCurve} (need P-256 or P-384)`);
  } else {
    throw new Error(`CA key of type ${key.asymmetricKeyType} (need RSA or EC)`);
  }
}

export const Oid = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  ecdsaWithSHA512: '1.2.840.10045.4.3.4',
  commonName: '2.5.4.3',
  localityName: '2.5.4.7',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

/** Signature algorithms we verify (CSRs) and use (certificates): OID → hash and key family. SHA-1 is refused. */
export const SIGNATURE_ALGORITHMS: ReadonlyMap<string, { hash: 'sha256' | 'sha384' | 'sha512'; key: KeyType }> = new Map([
  [Oid.sha256WithRSA, { hash: 'sha256', key: 'rsa' }],
  [Oid.sha384WithRSA, { hash: 'sha384', key: 'rsa' }],
  [Oid.sha512WithRSA, { hash: 'sha512', key: 'rsa' }],
  [Oid.ecdsaWithSHA256, { hash: 'sha256', key: 'ec' }],
  [Oid.ecdsaWithSHA384, { hash: 'sha384', key: 'ec' }],
  [Oid.ecdsaWithSHA512, { hash: 'sha512', key: 'ec' }],
]);

/** The algorithm a CA key signs certificates with: SHA-256 for RSA and P-256, SHA-384 for P-384 (as Go's x509 does). */
export function signatureAlgorithmFor(key: KeyObject): { oid: string; hash: 'sha256' | 'sha384'; rsa: boolean } {
  if (key.asymmetricKeyType === 'rsa') return { oid: Oid.sha256WithRSA, hash: 'sha256', rsa: true };
  if (key.asymmetricKeyDetails?.namedCurve === 'secp384r1') return { oid: Oid.ecdsaWithSHA384, hash: 'sha384', rsa: false };
  return { oid: Oid.ecdsaWithSHA256, hash: 'sha256', rsa: false };
}

