/**
 * A small, bounds-checked DER reader and PEM helpers. Parsing untrusted CSRs needs the exact bytes that were signed
 * (CertificationRequestInfo) and of the public key (SubjectPublicKeyInfo); node-forge's ASN.1 parser re-encodes, and
 * node:crypto cannot parse CSRs at all. Everything here works on Buffers and refuses anything malformed instead of
 * guessing: indefinite lengths, lengths past the end, trailing bytes, high tag numbers.
 */

export const Tag = {
  Integer: 0x02,
  BitString: 0x03,
  OctetString: 0x04,
  Null: 0x05,
  Oid: 0x06,
  Utf8String: 0x0c,
  PrintableString: 0x13,
  Ia5String: 0x16,
  UtcTime: 0x17,
  GeneralizedTime: 0x18,
  Sequence: 0x30,
  Set: 0x31,
} as const;

/** One TLV element: `raw` is the whole encoding (header + content), `content` the value bytes; both are views. */
export interface Der {
  tag: number;
  raw: Buffer;
  content: Buffer;
}

export class DerError extends Error {}

/** Reads one element at `offset`. */
export function readDer(buf: Buffer, offset = 0): Der {
  if (offset + 2 > buf.length) throw new DerError('truncated DER header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high-tag-number form is not used in certificates');
  let len = buf[offset + 1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // 0x80 is BER's indefinite length; DER forbids it. Four length bytes (4 GiB) is far beyond any input we accept.
    if (n === 0 || n > 4) throw new DerError(n === 0 ? 'indefinite length is not DER' : 'DER length too long');
    if (offset + 2 + n > buf.length) throw new DerError('truncated DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
    header += n;
  }
  const end = offset + header + len;
  if (end > buf.length) throw new DerError('DER length past the end of input');
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + header, end) };
}

/** Reads exactly one element filling the whole buffer. */
export function readDerExact(buf: Buffer, expectTag?: number): Der {
  const el = readDer(buf, 0);
  if (el.raw.length !== buf.length) throw new DerError('trailing bytes after DER element');
  if (expectTag !== undefined && el.tag !== expectTag) throw new DerError(`expected tag 0x${expectTag.toString(16)}, got 0x${el.tag.toString(16)}`);
  return el;
}

/** The children of a constructed element. */
export function children(el: Der): Der[] {
  if ((el.tag & 0x20) === 0) throw new DerError('not a constructed element');
  const out: Der[] = [];
  let off = 0;
  while (off < el.content.length) {
    const child = readDer(el.content, off);
    out.push(child);
    off += child.raw.length;
    if (out.length > 10_000) throw new DerError('too many DER elements');
  }
  return out;
}

/** Decodes an OBJECT IDENTIFIER's content to dotted form. */
export function decodeOid(el: Der): string {
  if (el.tag !== Tag.Oid || el.content.length === 0 || el.content.length > 64) throw new DerError('bad OBJECT IDENTIFIER');
  const c = el.content;
  const parts: number[] = [];
  let v = 0;
  for (let i = 0; i < c.length; i++) {
    v = v * 128 + (c[i]! & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if ((c[i]! & 0x80) === 0) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    }
  }
  if ((c[c.length - 1]! & 0x80) !== 0) throw new DerError('truncated OID');
  return parts.join('.');
}

/** Encodes a TLV with a definite DER length. */
export function encodeDer(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  const n = body.length;
  let header: Buffer;
  if (n < 0x80) header = Buffer.from([tag, n]);
  else if (n < 0x100) header = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) header = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else header = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([header, body]);
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----/g;

/** Every PEM block of the given label(s) in `text`, as DER. Text between blocks (openssl's comments) is ignored. */
export function pemBlocks(text: string, labels: readonly string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(PEM_RE)) {
    if (!labels.includes(m[1]!)) continue;
    const b64 = m[2]!.replace(/\s+/g, '');
    if (b64.length === 0 || b64.length % 4 !== 0) throw new DerError(`bad base64 in PEM ${m[1]}`);
    out.push(Buffer.from(b64, 'base64'));
  }
  return out;
}

/** DER → PEM, 64-character lines, ending with a newline (Istio sends each chain element that way). */
export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += b64.slice(i, i + 64) + '\n';
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/** Splits a PEM bundle into one normalised PEM string per certificate. */
export function splitCertificates(text: string): string[] {
  return pemBlocks(text, ['CERTIFICATE']).map((der) => toPem('CERTIFICATE', der));
}
