/**
 * The CA's key/certificate bundle (Istio's KeyCertBundle): the signing certificate and key, the intermediates
 * between it and a root, and the trust bundle (one or more roots). Loading checks everything a plug-in CA can get
 * wrong, with a message that says which file: the key matches the certificate, the signing certificate is a CA and
 * is valid now, and the chain verifies (node:crypto checkIssued + verify) up to a self-signed root in root-cert.pem.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { certificateExtensions, Issuer, keyIdentifier, subjectKeyId, subjectNameDer } from './cert-builder.ts';
import { readDerExact, splitCertificates, Tag } from './der.ts';
import { Oid, parsePrivateKey } from './keys.ts';

/** The CA's files, as PEM text (Istio's `cacerts` / `istio-ca-secret` keys). */
export interface CaMaterialPem {
  /** ca-cert.pem: the signing certificate (for a self-signed CA, the root itself). */
  caCert: string;
  /** ca-key.pem: its private key. */
  caKey: string;
  /** cert-chain.pem: intermediates from the signing certificate up to (optionally including) the root; may be empty. */
  certChain: string;
  /** root-cert.pem: the trust bundle, one or more roots, newest first. */
  rootCerts: string;
}

export class CaMaterialError extends Error {}

const MAX_CHAIN_DEPTH = 8;

function parseCerts(pem: string, file: string): X509Certificate[] {
  let blocks: string[];
  try {
    blocks = splitCertificates(pem);
  } catch (err) {
    throw new CaMaterialError(`${file}: ${(err as Error).message}`);
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new CaMaterialError(`${file}: certificate #${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
}

const selfSigned = (c: X509Certificate): boolean => c.checkIssued(c) && c.verify(c.publicKey);
// node: `child.checkIssued(issuer)` is true when `issuer` issued `child` (names and key ids match); verify() checks the signature.
const issues = (issuer: X509Certificate, child: X509Certificate): boolean => child.checkIssued(issuer) && child.verify(issuer.publicKey);
const validAt = (c: X509Certificate, now: Date): boolean => c.validFromDate.getTime() <= now.getTime() && now.getTime() <= c.validToDate.getTime();

/** Whether a certificate may sign others: basicConstraints CA and, when keyUsage is present, keyCertSign. */
function canSign(c: X509Certificate): boolean {
  if (!c.ca) return false;
  const ku = certificateExtensions(c.raw).get(Oid.keyUsage);
  if (!ku) return true;
  const bits = readDerExact(ku.value, Tag.BitString).content;
  return bits.length >= 2 && (bits[1]! & 0x04) !== 0; // bit 5 = keyCertSign
}

export class CaKeyCertBundle {
  readonly signingCert: X509Certificate;
  readonly signingKey: KeyObject;
  /** Certificates from the signing certificate (when it is not itself a root) up to, excluding, the root. */
  readonly intermediates: readonly X509Certificate[];
  /** Trust anchors, newest first. */
  readonly roots: readonly X509Certificate[];
  /** The signing certificate is a self-signed root (mizzen's own CA): root rotation applies. */
  readonly selfSigned: boolean;
  readonly issuer: Issuer;
  readonly material: CaMaterialPem;
  private readonly intermediatePems: string[];

  private constructor(material: CaMaterialPem, now: Date) {
    this.material = material;
    const caCerts = parseCerts(material.caCert, 'ca-cert.pem');
    if (caCerts.length === 0) throw new CaMaterialError('ca-cert.pem: no certificate');
    const signing = caCerts[0]!;
    let key: KeyObject;
    try {
      key = parsePrivateKey(material.caKey);
    } catch (err) {
      throw new CaMaterialError(`ca-key.pem: ${(err as Error).message}`);
    }
    if (!signing.checkPrivateKey(key)) throw new CaMaterialError('ca-key.pem does not match the certificate in ca-cert.pem');
    if (!canSign(signing)) throw new CaMaterialError('ca-cert.pem is not a CA certificate (basicConstraints CA:true and keyUsage keyCertSign are required)');
    if (!validAt(signing, now)) throw new CaMaterialError(`ca-cert.pem is not valid now (valid ${signing.validFrom} to ${signing.validTo})`);

    const roots = parseCerts(material.rootCerts, 'root-cert.pem');
    if (roots.length === 0) throw new CaMaterialError('root-cert.pem: no certificate');
    for (const r of roots) if (!selfSigned(r)) throw new CaMaterialError(`root-cert.pem: ${r.subject.replace(/\n/g, ', ')} is not a self-signed root`);
    const liveRoots = roots.filter((r) => validAt(r, now));
    if (liveRoots.length === 0) throw new CaMaterialError('root-cert.pem: every root has expired');

    // Candidate intermediates: the rest of ca-cert.pem (tls.crt may hold a chain) and cert-chain.pem, minus roots.
    const isRoot = (c: X509Certificate) => roots.some((r) => r.fingerprint256 === c.fingerprint256);
    const candidates = [...caCerts.slice(1), ...parseCerts(material.certChain, 'cert-chain.pem')].filter((c) => !isRoot(c) && c.fingerprint256 !== signing.fingerprint256);
    const path: X509Certificate[] = [];
    let cur = signing;
    for (let depth = 0; ; depth++) {
      if (depth > MAX_CHAIN_DEPTH) throw new CaMaterialError('cert-chain.pem: chain too long');
      if (isRoot(cur)) break;
      path.push(cur);
      const root = liveRoots.find((r) => issues(r, cur));
      if (root) break;
      const next = candidates.find((c) => issues(c, cur) && !path.includes(c));
      if (!next) throw new CaMaterialError(`the chain from ca-cert.pem does not verify to a root in root-cert.pem (no issuer found for ${cur.subject.replace(/\n/g, ', ')} in cert-chain.pem or root-cert.pem)`);
      if (!canSign(next)) throw new CaMaterialError(`cert-chain.pem: ${next.subject.replace(/\n/g, ', ')} is not a CA certificate`);
      if (!validAt(next, now)) throw new CaMaterialError(`cert-chain.pem: ${next.subject.replace(/\n/g, ', ')} is not valid now`);
      cur = next;
    }

    this.signingCert = signing;
    this.signingKey = key;
    this.intermediates = path;
    this.roots = roots;
    this.selfSigned = isRoot(signing);
    this.intermediatePems = path.map((c) => c.toString());
    this.issuer = new Issuer(subjectNameDer(signing.raw), key, subjectKeyId(signing.raw) ?? keyIdentifier(spkiOf(signing)));
  }

  /** Parses and checks CA material; throws CaMaterialError naming the file at fault. */
  static load(material: CaMaterialPem, now: Date = new Date()): CaKeyCertBundle {
    return new CaKeyCertBundle(material, now);
  }

  /** Intermediates as PEM strings (each ending with a newline), signing certificate first; empty for a root CA. */
  chainPems(): string[] {
    return this.intermediatePems;
  }

  /** The trust bundle: every root not expired at `now`, newest first, one PEM per root. */
  trustBundle(now: Date = new Date()): string[] {
    const live = this.roots.filter((r) => r.validToDate.getTime() >= now.getTime());
    return (live.length > 0 ? live : this.roots).map((r) => r.toString());
  }

  /**
   * Verifies a certificate presented by a caller: valid now, not a CA, and chained through our intermediates to one
   * of our roots, every link valid now. Returns undefined when it verifies, else the reason.
   */
  verifyLeaf(leaf: X509Certificate, now: Date = new Date()): string | undefined {
    if (!validAt(leaf, now)) return leaf.validToDate.getTime() < now.getTime() ? 'certificate expired' : 'certificate not yet valid';
    if (leaf.ca) return 'certificate is a CA certificate';
    const pool = [...this.intermediates, this.signingCert];
    let cur = leaf;
    for (let depth = 0; depth <= MAX_CHAIN_DEPTH; depth++) {
      const root = this.roots.find((r) => validAt(r, now) && issues(r, cur));
      if (root) return undefined;
      const next = pool.find((c) => c !== cur && issues(c, cur));
      if (!next) return 'certificate not issued by this CA';
      if (!validAt(next, now) || !canSign(next)) return 'issuer certificate not valid';
      cur = next;
    }
    return 'chain too long';
  }
}

function spkiOf(cert: X509Certificate): Buffer {
  return cert.publicKey.export({ type: 'spki', format: 'der' });
}

