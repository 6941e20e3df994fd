/**
 * `mizzen ca …`: plug-in CA tooling (Istio's tools/certs Makefile.selfsigned.mk, in TypeScript) and offline signing.
 *   init-root    --dir D [--key-type rsa|ec]            D/root-cert.pem, D/root-key.pem (0600)
 *   intermediate --root-dir D --out D2 --cluster NAME  D2/{ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem}
 *   rotate-root  --dir D                               new root from the existing key; root-cert.pem = new + old
 *   sign         --dir D --csr F --identity URI        a certificate chain for the CSR, offline
 * Files are never overwritten unless asked; private keys are written 0600. See certs/README.md.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createIntermediateCertificate, createRootCertificate, renewRootCertificate } from '../ca/authority-certs.ts';
import { CaKeyCertBundle } from '../ca/bundle.ts';
import { parseCsr } from '../ca/csr.ts';
import { splitCertificates } from '../ca/der.ts';
import { isCertifiableUri } from '../ca/identity.ts';
import { generateKeyPair, Oid, parsePrivateKey, privateKeyToPem, type KeyType } from '../ca/keys.ts';
import { CaFiles, FileCaStore, PluginCaStore, writeFileAtomic } from '../ca/root-store.ts';
import { rotatedRootMaterial } from '../ca/root-rotation.ts';
import { CertificateAuthority } from '../ca/sign.ts';

export const RootFiles = { cert: 'root-cert.pem', key: 'root-key.pem' } as const;
const DAY = 24 * 3600;

export interface ToolResult {
  /** Files written, absolute paths. */
  written: string[];
  /** What to tell the user, one line each. */
  messages: string[];
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function refuseExisting(dir: string, names: string[], force: boolean): Promise<void> {
  if (force) return;
  const present = [];
  for (const n of names) if (await exists(path.join(dir, n))) present.push(n);
  if (present.length > 0) throw new Error(`${dir} already has ${present.join(', ')}; refusing to overwrite (use --force)`);
}

export interface InitRootOptions {
  dir: string;
  keyType?: KeyType;
  /** Subject organisation (Istio's Makefile: ROOTCA_ORG=Istio). */
  org?: string;
  /** Subject common name (ROOTCA_CN=Root CA). */
  cn?: string;
  ttlDays?: number;
  force?: boolean;
}

/** A root CA for a plug-in hierarchy, kept offline by the operator. */
export async function initRoot(o: InitRootOptions): Promise<ToolResult> {
  const dir = path.resolve(o.dir);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await refuseExisting(dir, [RootFiles.cert, RootFiles.key], o.force ?? false);
  const { privateKey } = generateKeyPair({ type: o.keyType ?? 'rsa', ...(o.keyType === 'rsa' || !o.keyType ? { rsaBits: 4096 } : {}) });
  const cert = createRootCertificate({
    key: privateKey,
    subject: [
      { oid: Oid.organizationName, value: o.org ?? 'Istio' },
      { oid: Oid.commonName, value: o.cn ?? 'Root CA' },
    ],
    ttlSec: (o.ttlDays ?? 3650) * DAY,
  });
  await writeFileAtomic(dir, RootFiles.key, privateKeyToPem(privateKey), 0o600);
  await writeFileAtomic(dir, RootFiles.cert, cert);
  const c = new X509Certificate(cert);
  return { written: [path.join(dir, RootFiles.cert), path.join(dir, RootFiles.key)], messages: [`root CA ${c.subject.replace(/\n/g, ', ')} valid until ${c.validTo}`, `keep ${path.join(dir, RootFiles.key)} offline`] };
}

export interface IntermediateToolOptions {
  rootDir: string;
  out: string;
  cluster: string;
  keyType?: KeyType;
  org?: string;
  ttlDays?: number;
  force?: boolean;
}

/** A cluster's plug-in CA set, ready for `kubectl create secret generic cacerts -n istio-system --from-file=D2`. */
export async function createIntermediate(o: IntermediateToolOptions): Promise<ToolResult> {
  const rootDir = path.resolve(o.rootDir);
  const out = path.resolve(o.out);
  if (!/^[a-zA-Z0-9._-]{1,63}$/.test(o.cluster)) throw new Error(`cluster name ${JSON.stringify(o.cluster)}: letters, digits, '.', '-', '_' only`);
  const rootBundle = await fs.readFile(path.join(rootDir, RootFiles.cert), 'utf8');
  const rootKey = parsePrivateKey(await fs.readFile(path.join(rootDir, RootFiles.key), 'utf8'));
  // root-cert.pem may be a bundle after a rotation (newest first): sign with the root that matches the key.
  const root = splitCertificates(rootBundle).find((p) => new X509Certificate(p).checkPrivateKey(rootKey));
  if (!root) throw new Error(`${path.join(rootDir, RootFiles.key)} matches no certificate in ${RootFiles.cert}`);
  await fs.mkdir(out, { recursive: true, mode: 0o700 });
  await refuseExisting(out, Object.values(CaFiles), o.force ?? false);
  const { privateKey } = generateKeyPair({ type: o.keyType ?? 'rsa', ...(o.keyType === 'rsa' || !o.keyType ? { rsaBits: 4096 } : {}) });
  const cert = createIntermediateCertificate({
    rootCertPem: root,
    rootKey,
    key: privateKey,
    // Istio's Makefile: O=Istio, CN=Intermediate CA, L=<cluster>.
    subject: [
      { oid: Oid.organizationName, value: o.org ?? 'Istio' },
      { oid: Oid.commonName, value: 'Intermediate CA' },
      { oid: Oid.localityName, value: o.cluster },
    ],
    ttlSec: (o.ttlDays ?? 730) * DAY,
  });
  const material = { caCert: cert, caKey: privateKeyToPem(privateKey), certChain: cert + root, rootCerts: rootBundle };
  CaKeyCertBundle.load(material); // the set we write must be one mizzen (and istiod) accepts
  await writeFileAtomic(out, CaFiles.key, material.caKey, 0o600);
  await writeFileAtomic(out, CaFiles.cert, material.caCert);
  await writeFileAtomic(out, CaFiles.chain, material.certChain);
  await writeFileAtomic(out, CaFiles.root, material.rootCerts);
  return {
    written: Object.values(CaFiles).map((f) => path.join(out, f)),
    messages: [`intermediate CA for cluster ${o.cluster} valid until ${new X509Certificate(cert).validTo}`, `install: kubectl create secret generic cacerts -n istio-system --from-file=${out}`],
  };
}

export interface RotateRootOptions {
  dir: string;
  ttlDays?: number;
}

/**
 * A new root from the existing key (Istio's rotator does this for its self-signed root). Works on a `--ca-dir`
 * (ca-cert.pem + ca-key.pem self-signed: the running server follows at its next rotation check) and on an
 * `init-root` directory (root-cert.pem + root-key.pem: then re-publish root-cert.pem, now new + old, in each
 * cluster's cacerts). Certificates issued under the old root keep verifying under the new one.
 */
export async function rotateRoot(o: RotateRootOptions): Promise<ToolResult> {
  const dir = path.resolve(o.dir);
  const ttlSec = (o.ttlDays ?? 3650) * DAY;
  if (await exists(path.join(dir, CaFiles.key))) {
    const store = new FileCaStore(dir);
    const material = await store.load();
    if (!material) throw new Error(`${dir}: no CA files`);
    const next = rotatedRootMaterial(CaKeyCertBundle.load(material), { ttlSec });
    CaKeyCertBundle.load(next);
    await store.update(next);
    return { written: [CaFiles.root, CaFiles.cert].map((f) => path.join(dir, f)), messages: rootMessages(next.rootCerts) };
  }
  if (await exists(path.join(dir, RootFiles.key))) {
    const key = parsePrivateKey(await fs.readFile(path.join(dir, RootFiles.key), 'utf8'));
    const bundle = splitCertificates(await fs.readFile(path.join(dir, RootFiles.cert), 'utf8'));
    const current = bundle.find((p) => new X509Certificate(p).checkPrivateKey(key));
    if (!current) throw new Error(`${path.join(dir, RootFiles.key)} matches no certificate in ${RootFiles.cert}`);
    const renewed = renewRootCertificate(current, key, { ttlSec });
    const now = Date.now();
    const keep = bundle.filter((p) => new X509Certificate(p).validToDate.getTime() > now);
    const rootCerts = [renewed, ...keep].join('');
    await writeFileAtomic(dir, RootFiles.cert, rootCerts);
    return { written: [path.join(dir, RootFiles.cert)], messages: [...rootMessages(rootCerts), `publish ${path.join(dir, RootFiles.cert)} as root-cert.pem in every cluster's cacerts, then re-issue intermediates at leisure`] };
  }
  throw new Error(`${dir} has neither ${CaFiles.key} (a --ca-dir) nor ${RootFiles.key} (an init-root directory)`);
}

function rootMessages(rootCerts: string): string[] {
  return splitCertificates(rootCerts).map((p, i) => {
    const c = new X509Certificate(p);
    return `${i === 0 ? 'new root' : 'kept root'} serial ${c.serialNumber} valid until ${c.validTo}`;
  });
}

export interface SignToolOptions {
  /** A CA directory: --ca-dir or a cacerts set. */
  dir: string;
  csr: string;
  identities: string[];
  ttlSec?: number;
  maxTtlSec?: number;
}

/** Signs a CSR file offline for the given identities; returns the chain (leaf, intermediates, roots) as PEM text. */
export async function signOffline(o: SignToolOptions): Promise<{ chain: string; messages: string[] }> {
  if (o.identities.length === 0) throw new Error('at least one --identity is required');
  for (const id of o.identities) if (!isCertifiableUri(id)) throw new Error(`--identity ${JSON.stringify(id)} is not a URI (e.g. spiffe://cluster.local/ns/default/sa/default)`);
  const material = await new PluginCaStore(o.dir).load();
  if (!material) throw new Error(`${path.resolve(o.dir)}: no CA files (ca-cert.pem, ca-key.pem, root-cert.pem)`);
  const ca = new CertificateAuthority(CaKeyCertBundle.load(material), { maxTtlSec: o.maxTtlSec ?? Math.max(o.ttlSec ?? 0, 90 * DAY) });
  const csr = parseCsr(await fs.readFile(o.csr, 'utf8'));
  const issued = ca.signCsr(csr, o.identities, o.ttlSec ?? 0);
  return { chain: issued.chain.join(''), messages: [`issued serial ${issued.serialHex} for ${o.identities.join(', ')}, valid until ${issued.notAfter.toISOString()}`] };
}
