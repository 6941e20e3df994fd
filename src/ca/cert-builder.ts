/**
 * X.509 certificate construction: node-forge's ASN.1 module builds the TBSCertificate (RFC 5280 §4.1), node:crypto
 * signs it (ecosystem.md "X.509 / CSR": forge's own RSA signing is 20-40× slower and pure JS; its pki module has no
 * ECDSA). Raw pieces that must keep their exact bytes (the issuer's subject Name, the subject public key) are copied
 * from their DER, so name chaining works byte for byte. Extensions are encoded as Go's crypto/x509 encodes them, so
 * certificates look like istiod's.
 */
import crypto, { type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { children, encodeDer, readDerExact, Tag, toPem } from './der.ts';
import { Oid, signatureAlgorithmFor } from './keys.ts';

const asn1 = forge.asn1;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;
type Node = forge.asn1.Asn1;
/**
 * DER → forge node, keeping BIT STRINGs opaque (forge would otherwise try to parse key bits as nested DER). Only for
 * DER we produced or already validated; @types/node-forge lacks the options overload that forge 1.x has.
 */
export const forgeFromDer = (b: Buffer): Node => (asn1.fromDer as unknown as (bytes: string, options: object) => Node)(b.toString('binary'), { decodeBitStrings: false });

const bin = (b: Buffer): string => b.toString('binary');
const oid = (dotted: string): Node => asn1.create(U, T.OID, false, asn1.oidToDer(dotted).getBytes());
const seq = (items: Node[]): Node => asn1.create(U, T.SEQUENCE, true, items);
const octets = (b: Buffer): Node => asn1.create(U, T.OCTETSTRING, false, bin(b));

/** One certificate extension, already encoded: `value` is the DER inside the extnValue OCTET STRING. */
export interface Extension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

const toDer = (node: Node): Buffer => Buffer.from(asn1.toDer(node).getBytes(), 'binary');

/** basicConstraints: critical, as Go always marks it. `pathLen` only for CAs that set one. */
export function basicConstraints(ca: boolean, pathLen?: number): Extension {
  const items: Node[] = [];
  if (ca) items.push(asn1.create(U, T.BOOLEAN, false, '\xff'));
  if (ca && pathLen !== undefined) items.push(asn1.create(U, T.INTEGER, false, asn1.integerToDer(pathLen).getBytes()));
  return { oid: Oid.basicConstraints, critical: true, value: toDer(seq(items)) };
}

export const KeyUsage = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** keyUsage: critical; a BIT STRING with trailing zero bits dropped (DER named-bit-list rule, as Go encodes it). */
export function keyUsage(bits: readonly number[]): Extension {
  let v = 0;
  for (const b of bits) v |= 0x80 >> b;
  let unused = 0;
  while (unused < 7 && (v & (1 << unused)) === 0) unused++;
  return { oid: Oid.keyUsage, critical: true, value: encodeDer(Tag.BitString, Buffer.from([unused, v])) };
}

export function extKeyUsage(oids: readonly string[]): Extension {
  return { oid: Oid.extKeyUsage, critical: false, value: toDer(seq(oids.map(oid))) };
}

/**
 * subjectAltName with URI ([6]) and DNS ([2]) names. RFC 5280 §4.2.1.6: critical when the subject is empty, which is
 * the case for workload certificates (Istio's BuildSANExtension does the same).
 */
export function subjectAltName(names: { uris?: readonly string[]; dns?: readonly string[] }, critical: boolean): Extension {
  const items: Node[] = [];
  for (const d of names.dns ?? []) items.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, d));
  for (const u of names.uris ?? []) items.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, u));
  return { oid: Oid.subjectAltName, critical, value: toDer(seq(items)) };
}

export function subjectKeyIdentifier(keyId: Buffer): Extension {
  return { oid: Oid.subjectKeyIdentifier, critical: false, value: toDer(octets(keyId)) };
}

export function authorityKeyIdentifier(keyId: Buffer): Extension {
  return { oid: Oid.authorityKeyIdentifier, critical: false, value: toDer(seq([asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, bin(keyId))])) };
}

/** RFC 5280 §4.2.1.2 method 1 (what Go uses): SHA-1 of the subjectPublicKey BIT STRING's bits. */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  const [, bits] = children(readDerExact(spkiDer, Tag.Sequence));
  if (!bits || bits.tag !== Tag.BitString) throw new Error('bad SubjectPublicKeyInfo');
  return crypto.createHash('sha1').update(bits.content.subarray(1)).digest();
}

export interface NameAttribute {
  oid: string;
  value: string;
}

/** An X.501 Name, one attribute per RDN; PrintableString when the value allows it, else UTF8String (as Go does). */
export function encodeName(attributes: readonly NameAttribute[]): Buffer {
  const rdns = attributes.map((a) => {
    const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(a.value);
    const value = printable ? asn1.create(U, T.PRINTABLESTRING, false, a.value) : asn1.create(U, T.UTF8, false, forge.util.encodeUtf8(a.value));
    return asn1.create(U, T.SET, true, [seq([oid(a.oid), value])]);
  });
  return toDer(seq(rdns));
}

/** A positive random serial of 128 bits (Go's genSerialNum draws from [0, 2^128)); never zero. */
export function randomSerial(): Buffer {
  let b = crypto.randomBytes(16);
  while (b.every((x) => x === 0)) b = crypto.randomBytes(16);
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  b = b.subarray(i);
  return b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. Seconds precision. */
function time(d: Date): Node {
  const s = new Date(Math.floor(d.getTime() / 1000) * 1000);
  return s.getUTCFullYear() < 2050 ? asn1.create(U, T.UTCTIME, false, asn1.dateToUtcTime(s)) : asn1.create(U, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(s));
}

/** Who signs: the issuer's subject Name (exact DER), its key, and its subject key id (for authorityKeyIdentifier). */
export class Issuer {
  readonly nameDer: Buffer;
  readonly key: KeyObject;
  readonly keyId: Buffer | undefined;
  readonly sig: ReturnType<typeof signatureAlgorithmFor>;
  /** Parsed once: every certificate this issuer signs reuses these nodes. */
  readonly nameNode: Node;
  readonly algorithmNode: Node;
  readonly algorithmDer: Buffer;

  constructor(nameDer: Buffer, key: KeyObject, keyId: Buffer | undefined) {
    this.nameDer = nameDer;
    this.key = key;
    this.keyId = keyId;
    this.sig = signatureAlgorithmFor(key);
    this.nameNode = forgeFromDer(nameDer);
    // RFC 5754 / RFC 3279: RSA signature AlgorithmIdentifiers carry NULL parameters, ECDSA ones none.
    this.algorithmNode = seq(this.sig.rsa ? [oid(this.sig.oid), asn1.create(U, T.NULL, false, '')] : [oid(this.sig.oid)]);
    this.algorithmDer = toDer(this.algorithmNode);
  }

  /** Signs raw TBS bytes; PKCS#1 v1.5 for RSA, DER-encoded ECDSA signatures for EC. */
  signTbs(tbs: Buffer): Buffer {
    return crypto.sign(this.sig.hash, tbs, this.key);
  }
}

export interface CertificateFields {
  serial?: Buffer;
  /** The subject Name as DER (see encodeName); an empty SEQUENCE for workload certificates. */
  subjectDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER of the certified key. */
  spkiDer: Buffer;
  extensions: readonly Extension[];
}

const EMPTY_NAME = Buffer.from([0x30, 0x00]);
const emptyNameNode = forgeFromDer(EMPTY_NAME);
const versionV3 = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(U, T.INTEGER, false, '\x02')]);

/** Builds, signs and encodes one certificate. Returns its DER and PEM (ending with a newline). */
export function buildCertificate(fields: CertificateFields, issuer: Issuer): { der: Buffer; pem: string } {
  const exts = fields.extensions.map((e) => {
    const items = [oid(e.oid)];
    if (e.critical) items.push(asn1.create(U, T.BOOLEAN, false, '\xff'));
    items.push(octets(e.value));
    return seq(items);
  });
  const tbsNodes: Node[] = [
    versionV3,
    asn1.create(U, T.INTEGER, false, bin(fields.serial ?? randomSerial())),
    issuer.algorithmNode,
    issuer.nameNode,
    seq([time(fields.notBefore), time(fields.notAfter)]),
    fields.subjectDer.length === 2 && fields.subjectDer.equals(EMPTY_NAME) ? emptyNameNode : forgeFromDer(fields.subjectDer),
    forgeFromDer(fields.spkiDer),
  ];
  if (exts.length > 0) tbsNodes.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [seq(exts)]));
  const tbs = toDer(seq(tbsNodes));
  const signature = issuer.signTbs(tbs);
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
  const der = encodeDer(Tag.Sequence, tbs, issuer.algorithmDer, encodeDer(Tag.BitString, Buffer.from([0]), signature));
  return { der, pem: toPem('CERTIFICATE', der) };
}

/** The subject Name DER of a certificate, byte for byte (the issuer Name of everything it signs). */
export function subjectNameDer(certDer: Buffer): Buffer {
  const tbs = tbsOf(certDer);
  const fields = children(tbs);
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version is optional (v1)
  const subject = fields[offset + 4];
  if (!subject || subject.tag !== Tag.Sequence) throw new Error('certificate has no subject');
  return Buffer.from(subject.raw);
}

function tbsOf(certDer: Buffer) {
  const [tbs] = children(readDerExact(certDer, Tag.Sequence));
  if (!tbs || tbs.tag !== Tag.Sequence) throw new Error('bad certificate');
  return tbs;
}

/** The certificate's extensions by OID: the extnValue content (DER) and criticality. */
export function certificateExtensions(certDer: Buffer): Map<string, { critical: boolean; value: Buffer }> {
  const out = new Map<string, { critical: boolean; value: Buffer }>();
  const tbs = tbsOf(certDer);
  const ext = children(tbs).find((f) => f.tag === 0xa3);
  if (!ext) return out;
  const [list] = children(ext);
  if (!list) return out;
  for (const e of children(list)) {
    const parts = children(e);
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (!id || !value || value.tag !== Tag.OctetString) continue;
    const critical = parts.length === 3 && parts[1]!.content[0] === 0xff;
    out.set(forge.asn1.derToOid(bin(id.content)), { critical, value: Buffer.from(value.content) });
  }
  return out;
}

/** URI SANs of a certificate, read from the DER (no string parsing of node's `subjectAltName` rendering). */
export function uriSans(certDer: Buffer): string[] {
  const san = certificateExtensions(certDer).get(Oid.subjectAltName);
  if (!san) return [];
  return children(readDerExact(san.value, Tag.Sequence))
    .filter((n) => n.tag === 0x86)
    .map((n) => n.content.toString('latin1'));
}

/** The subjectKeyIdentifier of a certificate, if it has one. */
export function subjectKeyId(certDer: Buffer): Buffer | undefined {
  const ski = certificateExtensions(certDer).get(Oid.subjectKeyIdentifier);
  return ski ? Buffer.from(readDerExact(ski.value, Tag.OctetString).content) : undefined;
}
