/**
 * The signer (Istio's IstioCA.Sign + genCertTemplateFromCSR, security/pkg/pki/ca/ca.go and pki/util/generate_cert.go):
 * a workload certificate for the caller's identities only, with Istio's extensions and TTL rules.
 *
 * Leaf profile: empty subject (CN from the identity only when the CSR had one: Istio's "dual use"), SAN URIs = the
 * authenticated identities (critical when the subject is empty, RFC 5280 §4.2.1.6), keyUsage digitalSignature +
 * keyEncipherment (critical), extKeyUsage serverAuth + clientAuth, basicConstraints CA:false (critical, as Go marks
 * it), authorityKeyIdentifier = the signing certificate's key id. NotBefore is backdated (clock skew between nodes),
 * NotAfter is clamped to the signing certificate's, and an expired signing certificate is refused.
 */
import crypto from 'node:crypto';
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  encodeName,
  extKeyUsage,
  KeyUsage,
  randomSerial,
  keyUsage,
  subjectAltName,
  type Extension,
} from './cert-builder.ts';
import type { CaKeyCertBundle } from './bundle.ts';
import type { ParsedCsr } from './csr.ts';
import { isCertifiableUri } from './identity.ts';
import { generateKeyPair, Oid, type KeyType } from './keys.ts';

export const DEFAULT_WORKLOAD_CERT_TTL_SEC = 24 * 3600;
export const MAX_WORKLOAD_CERT_TTL_SEC = 90 * 24 * 3600;
/** Istio backdates NotBefore by 2 minutes. */
export const DEFAULT_BACKDATE_SEC = 120;

export class CaSignError extends Error {
  /** `ttl`, `no_identity`, `ca_expired`, `sign`: the `error` label of citadel_server_csr_sign_err_count. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface SignerOptions {
  /** Used when a request asks for 0 or less (DEFAULT_WORKLOAD_CERT_TTL). */
  defaultTtlSec?: number;
  /** Requests above this are refused (MAX_WORKLOAD_CERT_TTL). */
  maxTtlSec?: number;
  backdateSec?: number;
  now?: () => number;
}

export interface IssuedChain {
  /** The new certificate, PEM. */
  leaf: string;
  /** The response: leaf, intermediates, then the trust bundle as the last element (see chainFor). */
  chain: string[];
  serialHex: string;
  notAfter: Date;
}

export interface ServingCertificate {
  /** Leaf + intermediates, PEM, for a TLS server's `cert`. */
  certChain: string;
  /** PKCS#8 PEM private key. */
  key: string;
  /** The roots clients should trust, PEM. */
  roots: string;
  notBefore: Date;
  notAfter: Date;
}

const WORKLOAD_KEY_USAGE = keyUsage([KeyUsage.digitalSignature, KeyUsage.keyEncipherment]);
const WORKLOAD_EXT_KEY_USAGE = extKeyUsage([Oid.serverAuth, Oid.clientAuth]);
const NOT_CA = basicConstraints(false);

type Listener = (bundle: CaKeyCertBundle) => void;

export class CertificateAuthority {
  private current: CaKeyCertBundle;
  private aki: Extension;
  private readonly listeners = new Set<Listener>();
  readonly defaultTtlSec: number;
  readonly maxTtlSec: number;
  readonly backdateSec: number;
  private readonly now: () => number;

  constructor(bundle: CaKeyCertBundle, options: SignerOptions = {}) {
    this.current = bundle;
    this.aki = akiFor(bundle);
    this.defaultTtlSec = options.defaultTtlSec ?? DEFAULT_WORKLOAD_CERT_TTL_SEC;
    this.maxTtlSec = options.maxTtlSec ?? MAX_WORKLOAD_CERT_TTL_SEC;
    this.backdateSec = options.backdateSec ?? DEFAULT_BACKDATE_SEC;
    this.now = options.now ?? Date.now;
    if (this.defaultTtlSec <= 0 || this.defaultTtlSec > this.maxTtlSec) throw new Error(`default certificate TTL ${this.defaultTtlSec}s must be in (0, ${this.maxTtlSec}]`);
  }

  get bundle(): CaKeyCertBundle {
    return this.current;
  }

  /** Swaps in new key material (root rotation, plug-in reload); listeners (serving certificate, TLS trust) follow. */
  setBundle(bundle: CaKeyCertBundle): void {
    this.current = bundle;
    this.aki = akiFor(bundle);
    for (const l of this.listeners) l(bundle);
  }

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The roots workloads should trust (old + new during a root rotation overlap), one PEM per root. */
  trustBundle(): string[] {
    return this.current.trustBundle(new Date(this.now()));
  }

  /** Istio's TTL rule: ≤ 0 → default; above the maximum → refused. */
  resolveTtl(requestedSec: number): number {
    if (!Number.isFinite(requestedSec) || requestedSec <= 0) return this.defaultTtlSec;
    if (requestedSec > this.maxTtlSec) throw new CaSignError('ttl', `requested TTL ${requestedSec}s is greater than the max allowed TTL ${this.maxTtlSec}s`);
    return Math.floor(requestedSec);
  }

  /**
   * Signs `csr` for `identities` (the authenticated caller's; never anything from the CSR). `requestedTtlSec` is the
   * request's validity_duration.
   */
  signCsr(csr: ParsedCsr, identities: readonly string[], requestedTtlSec: number): IssuedChain {
    if (identities.length === 0) throw new CaSignError('no_identity', 'no identity to certify');
    for (const id of identities) if (!isCertifiableUri(id)) throw new CaSignError('no_identity', 'identity is not a certifiable URI');
    const ttl = this.resolveTtl(requestedTtlSec);
    // Istio's DualUseCommonName: the CN is the first identity, and only when it fits X.520's 64-character bound.
    const cn = csr.hasCommonName && identities[0]!.length <= 64 ? identities[0]! : undefined;
    const subjectDer = encodeName(cn ? [{ oid: Oid.commonName, value: cn }] : []);
    const extensions = [WORKLOAD_KEY_USAGE, WORKLOAD_EXT_KEY_USAGE, NOT_CA, this.aki, subjectAltName({ uris: identities }, cn === undefined)];
    return this.issue(csr.spkiDer, subjectDer, extensions, ttl);
  }

  private issue(spkiDer: Buffer, subjectDer: Buffer, extensions: Extension[], ttlSec: number): IssuedChain {
    const bundle = this.current;
    const now = this.now();
    const caNotAfter = bundle.signingCert.validToDate.getTime();
    if (caNotAfter <= now) throw new CaSignError('ca_expired', 'the signing certificate has expired');
    const notBefore = new Date(Math.max(now - this.backdateSec * 1000, bundle.signingCert.validFromDate.getTime()));
    const notAfter = new Date(Math.min(now + ttlSec * 1000, caNotAfter));
    let cert: { der: Buffer; pem: string };
    const serial = randomSerial();
    try {
      cert = buildCertificate({ serial, subjectDer, notBefore, notAfter, spkiDer, extensions }, bundle.issuer);
    } catch (err) {
      throw new CaSignError('sign', `signing failed: ${(err as Error).message}`);
    }
    return { leaf: cert.pem, chain: this.chainFor(cert.pem), serialHex: serial.toString('hex'), notAfter };
  }

  /**
   * The response chain (Istio server.go): the leaf, each intermediate (cert-chain.pem) as its own element, and the trust
   * bundle last. With one root that is one PEM; during a root rotation overlap the last element holds every root,
   * concatenated, because istio-agent takes the last element as its whole ROOTCA bundle.
   */
  chainFor(leafPem: string): string[] {
    return [leafPem, ...this.current.chainPems(), this.trustBundle().join('')];
  }

  /**
   * The control plane's own serving certificate (Istio's istiod DNS certificate, pilot/pkg/bootstrap/certcontroller.go):
   * a fresh key, DNS SANs such as `mizzen.istio-system.svc`, serverAuth + clientAuth.
   */
  issueServingCertificate(options: { dnsNames: readonly string[]; ttlSec?: number; keyType?: KeyType }): ServingCertificate {
    if (options.dnsNames.length === 0) throw new Error('a serving certificate needs at least one DNS name');
    const { privateKey } = generateKeyPair({ type: options.keyType ?? 'ec' });
    const spki = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    const ttl = Math.min(options.ttlSec ?? this.defaultTtlSec, this.maxTtlSec);
    const extensions = [WORKLOAD_KEY_USAGE, WORKLOAD_EXT_KEY_USAGE, NOT_CA, this.aki, subjectAltName({ dns: options.dnsNames }, true)];
    const issued = this.issue(spki, encodeName([]), extensions, ttl);
    return {
      certChain: [issued.leaf, ...this.current.chainPems()].join(''),
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      roots: this.trustBundle().join(''),
      notBefore: new Date(this.now() - this.backdateSec * 1000),
      notAfter: issued.notAfter,
    };
  }
}

function akiFor(bundle: CaKeyCertBundle): Extension {
  const keyId = bundle.issuer.keyId;
  if (!keyId) throw new Error('signing certificate has no key identifier');
  return authorityKeyIdentifier(keyId);
}

