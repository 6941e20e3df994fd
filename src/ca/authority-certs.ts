/**
 * CA certificates: the self-signed root (Istio's `istio-ca-secret`, or `mizzen ca init-root` for a plug-in
 * hierarchy), a root renewed from its existing key (Istio's GenRootCertFromExistingKey), and intermediates for
 * `cacerts`. Profile, as Go's x509 and Istio's GenCertKeyFromOptions produce it: basicConstraints CA:true (critical),
 * keyUsage keyCertSign + cRLSign (critical), subjectKeyIdentifier, and authorityKeyIdentifier on intermediates.
 */
import crypto, { X509Certificate, type KeyObject } from 'node:crypto';
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  encodeName,
  Issuer,
  keyIdentifier,
  KeyUsage,
  keyUsage,
  subjectKeyIdentifier,
  subjectKeyId,
  subjectNameDer,
  type NameAttribute,
} from './cert-builder.ts';
import { Oid } from './keys.ts';

/** CITADEL_SELF_SIGNED_CA_CERT_TTL: 10 years. */
export const DEFAULT_ROOT_TTL_SEC = 10 * 365 * 24 * 3600;
const CLOCK_SKEW_MS = 2 * 60 * 1000;
const CA_KEY_USAGE = keyUsage([KeyUsage.keyCertSign, KeyUsage.cRLSign]);

const spkiOf = (key: KeyObject): Buffer => crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });

export interface RootOptions {
  key: KeyObject;
  /** Subject attributes; Istio's self-signed root is just `O=<trust domain>`. */
  subject: NameAttribute[];
  ttlSec?: number;
  now?: number;
}

/** A self-signed root certificate, PEM. */
export function createRootCertificate(options: RootOptions): string {
  return selfSigned(encodeName(options.subject), options.key, options.ttlSec ?? DEFAULT_ROOT_TTL_SEC, options.now ?? Date.now());
}

/**
 * A new root from the existing key and subject: new serial and validity, same Name and key identifier. Certificates
 * issued under the old root verify under the new one too (same issuer Name, same key), which is what lets a
 * rotation overlap without re-issuing anything (Istio selfsignedcarootcertrotator.go).
 */
export function renewRootCertificate(oldRootPem: string, key: KeyObject, options: { ttlSec?: number; now?: number } = {}): string {
  const old = new X509Certificate(oldRootPem);
  if (!old.checkPrivateKey(key)) throw new Error('the key does not match the root being renewed');
  const ttlSec = options.ttlSec ?? Math.round((old.validToDate.getTime() - old.validFromDate.getTime()) / 1000);
  return selfSigned(subjectNameDer(old.raw), key, ttlSec, options.now ?? Date.now());
}

function selfSigned(nameDer: Buffer, key: KeyObject, ttlSec: number, now: number): string {
  const spki = spkiOf(key);
  const keyId = keyIdentifier(spki);
  const issuer = new Issuer(nameDer, key, keyId);
  return buildCertificate(
    {
      subjectDer: nameDer,
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + ttlSec * 1000),
      spkiDer: spki,
      extensions: [CA_KEY_USAGE, basicConstraints(true), subjectKeyIdentifier(keyId)],
    },
    issuer,
  ).pem;
}

export interface IntermediateOptions {
  rootCertPem: string;
  rootKey: KeyObject;
  key: KeyObject;
  subject: NameAttribute[];
  ttlSec: number;
  now?: number;
}

/** An intermediate CA signed by a root, for a cluster's `cacerts` (Istio's tools/certs Makefile: `<cluster>-cacerts`). */
export function createIntermediateCertificate(options: IntermediateOptions): string {
  const root = new X509Certificate(options.rootCertPem);
  if (!root.checkPrivateKey(options.rootKey)) throw new Error('the root key does not match the root certificate');
  const rootKeyId = subjectKeyId(root.raw) ?? keyIdentifier(spkiOf(options.rootKey));
  const issuer = new Issuer(subjectNameDer(root.raw), options.rootKey, rootKeyId);
  const now = options.now ?? Date.now();
  const spki = spkiOf(options.key);
  const notAfter = Math.min(now + options.ttlSec * 1000, root.validToDate.getTime());
  return buildCertificate(
    {
      subjectDer: encodeName(options.subject),
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(notAfter),
      spkiDer: spki,
      // pathLen 0: an intermediate for one cluster signs workloads only.
      extensions: [CA_KEY_USAGE, basicConstraints(true, 0), subjectKeyIdentifier(keyIdentifier(spki)), authorityKeyIdentifier(rootKeyId)],
    },
    issuer,
  ).pem;
}

/** Istio's self-signed CA subject: the organisation is the trust domain. */
export function selfSignedRootSubject(trustDomain: string): NameAttribute[] {
  return [{ oid: Oid.organizationName, value: trustDomain }];
}
