/**
 * PKCS#10 certificate signing requests (RFC 2986): parse and verify untrusted CSRs, and build CSRs (for the serving
 * certificate, tools, tests and the benchmark).
 *
 * Verification uses node:crypto, never node-forge (forge had signature-forgery CVEs up to 1.3.x and cannot read EC
 * keys). Only what we need is read from the CSR: the public key (checked: RSA 2048-4096, EC P-256/P-384) and whether
 * the subject has a CommonName (Istio's "dual use" mode). Its requested SANs and subject are never used: the identity
 * comes from the authenticated caller (reliability-security.md §1.3).
 */
import crypto, { type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { children, decodeOid, DerError, readDerExact, Tag, toPem, pemBlocks, type Der } from './der.ts';
import { encodeName, forgeFromDer, subjectAltName, type NameAttribute } from './cert-builder.ts';
import { Oid, SIGNATURE_ALGORITHMS, signatureAlgorithmFor } from './keys.ts';

/** CSRs above this many bytes are refused before any parsing; a 4096-bit RSA CSR is under 2 KiB. */
export const MAX_CSR_BYTES = 64 * 1024;

export class CsrError extends Error {
  /** A short machine-readable reason, used as the `error` label of citadel_server_csr_parsing_err_count. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface ParsedCsr {
  /** The SubjectPublicKeyInfo DER (verified usable by node:crypto), copied as-is into the certificate. */
  spkiDer: Buffer;
  /** `rsa-2048`, `ec-prime256v1`: for logs. */
  keyDescription: string;
  /** The CSR's subject has a CommonName: the leaf gets a CN derived from the caller's identity (Istio dual use). */
  hasCommonName: boolean;
}

export interface CsrLimits {
  maxBytes?: number;
  rsaMinBits?: number;
  rsaMaxBits?: number;
}

const CURVES: ReadonlyMap<string, { name: string; pointBytes: number }> = new Map([
  ['1.2.840.10045.3.1.7', { name: 'prime256v1', pointBytes: 32 }],
  ['1.3.132.0.34', { name: 'secp384r1', pointBytes: 48 }],
]);
const OTHER_KEY_TYPES: Record<string, string> = {
  '1.3.101.112': 'ed25519',
  '1.3.101.113': 'ed448',
  '1.2.840.113549.1.1.10': 'rsa-pss',
  '1.2.840.10040.4.1': 'dsa',
  '1.3.132.0.35': 'secp521r1',
};

/** Bit length of a DER INTEGER's magnitude. */
function integerBits(el: Der): number {
  const c = el.content;
  let i = 0;
  while (i < c.length - 1 && c[i] === 0) i++;
  if (i >= c.length) return 0;
  return (c.length - i - 1) * 8 + (32 - Math.clz32(c[i]!));
}

/**
 * Reads the key type and size from the SubjectPublicKeyInfo DER (RFC 5480, RFC 8017) and checks them, without a
 * KeyObject: node recomputes KeyObject details on every access, and verifying straight from the DER saves ~30 µs of
 * the ~150 µs a CSR costs. node:crypto still parses (and validates) the key when it verifies.
 */
function checkSpki(spki: Der, limits: CsrLimits): { type: 'rsa' | 'ec'; description: string } {
  let algId: Der | undefined, bits: Der | undefined;
  try {
    [algId, bits] = children(spki);
    if (!algId || algId.tag !== Tag.Sequence || !bits || bits.tag !== Tag.BitString || bits.content[0] !== 0) throw new DerError('bad SubjectPublicKeyInfo');
    const [oid, params] = children(algId);
    if (!oid) throw new DerError('bad key algorithm');
    const keyOid = decodeOid(oid);
    const point = bits.content.subarray(1);
    if (keyOid === Oid.rsaEncryption) {
      const [n, e] = children(readDerExact(point, Tag.Sequence));
      if (!n || n.tag !== Tag.Integer || !e || e.tag !== Tag.Integer) throw new DerError('bad RSA public key');
      const size = integerBits(n);
      const min = limits.rsaMinBits ?? 2048;
      const max = limits.rsaMaxBits ?? 4096;
      if (size < min || size > max) throw new CsrError('key_size', `RSA key of ${size} bits (allowed ${min}-${max})`);
      if (integerBits(e) < 17) throw new CsrError('key_size', 'RSA public exponent below 65537');
      return { type: 'rsa', description: `rsa-${size}` };
    }
    if (keyOid === Oid.ecPublicKey) {
      const curveOid = params && params.tag === Tag.Oid ? decodeOid(params) : '?';
      const curve = CURVES.get(curveOid);
      if (!curve) throw new CsrError('key_type', `EC key on curve ${OTHER_KEY_TYPES[curveOid] ?? curveOid} (allowed P-256, P-384)`);
      // Uncompressed (04 || X || Y) or compressed (02/03 || X) point of the curve's size.
      if (point.length !== 1 + 2 * curve.pointBytes && point.length !== 1 + curve.pointBytes) throw new CsrError('key_type', 'malformed EC public key');
      return { type: 'ec', description: `ec-${curve.name}` };
    }
    throw new CsrError('key_type', `key type ${OTHER_KEY_TYPES[keyOid] ?? keyOid} (allowed RSA, ECDSA)`);
  } catch (err) {
    if (err instanceof CsrError) throw err;
    throw new CsrError('key_type', err instanceof DerError ? `unsupported or malformed public key: ${err.message}` : 'unsupported or malformed public key');
  }
}

function subjectHasCommonName(subject: Der): boolean {
  for (const rdn of children(subject)) {
    for (const atv of children(rdn)) {
      const [type] = children(atv);
      if (type && type.tag === Tag.Oid && decodeOid(type) === Oid.commonName) return true;
    }
  }
  return false;
}

/**
 * Parses a PEM CSR and verifies its self-signature. Throws CsrError with a specific reason; callers answer the
 * client opaquely and log the reason.
 */
export function parseCsr(pem: string, limits: CsrLimits = {}): ParsedCsr {
  const max = limits.maxBytes ?? MAX_CSR_BYTES;
  if (typeof pem !== 'string' || pem.length === 0) throw new CsrError('empty', 'empty CSR');
  if (Buffer.byteLength(pem) > max) throw new CsrError('too_large', `CSR of ${Buffer.byteLength(pem)} bytes (max ${max})`);
  let blocks: Buffer[];
  try {
    blocks = pemBlocks(pem, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
  } catch (err) {
    throw new CsrError('pem', (err as Error).message);
  }
  if (blocks.length !== 1) throw new CsrError('pem', blocks.length === 0 ? 'no PEM CERTIFICATE REQUEST block' : `${blocks.length} CSR blocks (need exactly one)`);
  const der = blocks[0]!;

  let info: Der, algorithm: Der, signature: Der, spki: Der, subject: Der;
  try {
    const top = children(readDerExact(der, Tag.Sequence));
    if (top.length !== 3) throw new DerError('CertificationRequest must have 3 fields');
    [info, algorithm, signature] = top as [Der, Der, Der];
    if (info.tag !== Tag.Sequence || algorithm.tag !== Tag.Sequence || signature.tag !== Tag.BitString) throw new DerError('bad CertificationRequest field types');
    const fields = children(info);
    const [version, subj, key, attrs] = fields;
    if (!version || version.tag !== Tag.Integer || version.content.length !== 1 || version.content[0] !== 0) throw new DerError('CSR version must be 0 (v1)');
    if (!subj || subj.tag !== Tag.Sequence || !key || key.tag !== Tag.Sequence) throw new DerError('bad CSR subject or public key');
    // attributes [0] is required by RFC 2986 but some encoders omit it when empty; tolerate that, nothing more.
    if (fields.length > 4 || (attrs && attrs.tag !== 0xa0)) throw new DerError('bad CSR attributes');
    spki = key;
    subject = subj;
  } catch (err) {
    throw new CsrError('asn1', err instanceof DerError ? err.message : 'malformed CSR');
  }

  const key = checkSpki(spki, limits);

  let algOid: string;
  let algParams: Der[];
  try {
    const [id, ...params] = children(algorithm);
    if (!id) throw new DerError('empty AlgorithmIdentifier');
    algOid = decodeOid(id);
    algParams = params;
  } catch (err) {
    throw new CsrError('asn1', err instanceof DerError ? err.message : 'bad signature algorithm');
  }
  const alg = SIGNATURE_ALGORITHMS.get(algOid);
  if (!alg) throw new CsrError('signature_algorithm', `signature algorithm ${algOid} not accepted (SHA-256/384/512 with RSA or ECDSA)`);
  if (alg.key !== key.type) throw new CsrError('signature_algorithm', `signature algorithm ${algOid} does not match a ${key.type} key`);
  const paramsOk = alg.key === 'rsa' ? algParams.length === 0 || (algParams.length === 1 && algParams[0]!.tag === Tag.Null) : algParams.length === 0;
  if (!paramsOk) throw new CsrError('signature_algorithm', 'unexpected signature algorithm parameters');
  if (signature.content.length < 2 || signature.content[0] !== 0) throw new CsrError('asn1', 'bad signature BIT STRING');

  let valid: boolean;
  try {
    valid = crypto.verify(alg.hash, info.raw, { key: spki.raw, format: 'der', type: 'spki' }, signature.content.subarray(1));
  } catch {
    // node could not use the key (e.g. an EC point not on the curve); a malformed signature returns false instead.
    throw new CsrError('key_type', 'unsupported or malformed public key');
  }
  if (!valid) throw new CsrError('signature', 'CSR signature does not verify');

  let hasCommonName: boolean;
  try {
    hasCommonName = subjectHasCommonName(subject);
  } catch (err) {
    throw new CsrError('asn1', err instanceof DerError ? err.message : 'bad CSR subject');
  }
  return { spkiDer: Buffer.from(spki.raw), keyDescription: key.description, hasCommonName };
}

const asn1 = forge.asn1;

/**
 * Builds a PEM CSR signed with `key` (RSA or EC). `uris`/`dns` go into an extensionRequest, as istio-agent does; the
 * CA ignores them, but tests use them to prove that.
 */
export function createCsr(key: KeyObject, options: { subject?: NameAttribute[]; uris?: string[]; dns?: string[] } = {}): string {
  const spki = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  const attributes: forge.asn1.Asn1[] = [];
  if ((options.uris?.length ?? 0) + (options.dns?.length ?? 0) > 0) {
    const san = subjectAltName({ ...(options.uris ? { uris: options.uris } : {}), ...(options.dns ? { dns: options.dns } : {}) }, false);
    const ext = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(Oid.subjectAltName).getBytes()),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, san.value.toString('binary')),
    ]);
    attributes.push(
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(Oid.extensionRequest).getBytes()),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [ext])]),
      ]),
    );
  }
  const info = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x00'),
    forgeFromDer(encodeName(options.subject ?? [])),
    forgeFromDer(spki),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, attributes),
  ]);
  const infoDer = Buffer.from(asn1.toDer(info).getBytes(), 'binary');
  // Ed25519 (RFC 8410) only so tests can prove such CSRs are refused; the CA itself signs with RSA or ECDSA.
  const sig = key.asymmetricKeyType === 'ed25519' ? { oid: '1.3.101.112', hash: null, rsa: false } : signatureAlgorithmFor(key);
  const signature = crypto.sign(sig.hash, infoDer, key);
  const algId = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(sig.oid).getBytes()),
    ...(sig.rsa ? [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')] : []),
  ]);
  const csr = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    forgeFromDer(infoDer),
    algId,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + signature.toString('binary')),
  ]);
  return toPem('CERTIFICATE REQUEST', Buffer.from(asn1.toDer(csr).getBytes(), 'binary'));
}
