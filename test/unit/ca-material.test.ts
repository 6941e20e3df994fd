/**
 * CA key material (src/ca/{init,bundle,root-store,root-rotation}.ts): the self-signed root and its persistence,
 * concurrent first starts, plug-in `cacerts` checks, and root rotation from the existing key.
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import crypto, { X509Certificate, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { afterAll, describe, expect, it } from 'vitest';
import { createIntermediateCertificate, createRootCertificate } from '../../src/ca/authority-certs.ts';
import { CaKeyCertBundle, type CaMaterialPem } from '../../src/ca/bundle.ts';
import { createCsr, parseCsr } from '../../src/ca/csr.ts';
import { newSelfSignedMaterial, setupCertificateAuthority } from '../../src/ca/init.ts';
import { privateKeyToPem } from '../../src/ca/keys.ts';
import { FileCaStore, PluginCaStore } from '../../src/ca/root-store.ts';
import { needsRotation, RootRotator, rotatedRootMaterial } from '../../src/ca/root-rotation.ts';
import { CertificateAuthority } from '../../src/ca/sign.ts';
import { silentLogger } from '../../src/shared/log.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-ca-'));
const tmp = (name: string) => path.join(tmpRoot, name);
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const ID = 'spiffe://cluster.local/ns/ns1/sa/sa1';
const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const sign = (ca: CertificateAuthority) => new X509Certificate(ca.signCsr(parseCsr(createCsr(ec())), [ID], 0).leaf);

describe('self-signed root', () => {
  it.each([
    ['rsa' as const, 'RSASSA-PKCS1-v1_5', 2048],
    ['ec' as const, 'ECDSA', undefined],
  ])("%s: Istio's CA profile, 10 years, O = trust domain", (keyType, alg, bits) => {
    const m = newSelfSignedMaterial({ trustDomain: 'example.org', keyType });
    const cert = new x509.X509Certificate(m.caCert);
    expect(cert.subject).toBe('O=example.org');
    expect(cert.issuer).toBe('O=example.org');
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    expect(bc.ca && bc.critical).toBe(true);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)).toBeTruthy();
    const years = (cert.notAfter.getTime() - cert.notBefore.getTime()) / (365 * 86400_000);
    expect(years).toBeGreaterThan(9.99);
    expect(years).toBeLessThan(10.01);
    expect(cert.publicKey.algorithm.name).toBe(alg === 'ECDSA' ? 'ECDSA' : 'RSASSA-PKCS1-v1_5');
    if (bits) expect(crypto.createPrivateKey(m.caKey).asymmetricKeyDetails?.modulusLength).toBe(bits);
    expect(m.caKey).toMatch(keyType === 'rsa' ? /BEGIN RSA PRIVATE KEY/ : /BEGIN EC PRIVATE KEY/);
    expect(m.rootCerts).toBe(m.caCert);
  });

  it('is created on first start in --ca-dir (key 0600) and reused on the next', async () => {
    const dir = tmp('first-start');
    const first = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(dir), log: silentLogger, keyType: 'ec' });
    expect(fs.readdirSync(dir).sort()).toEqual(['ca-cert.pem', 'ca-key.pem', 'root-cert.pem']);
    expect(fs.statSync(path.join(dir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    const second = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(dir), log: silentLogger });
    expect(second.bundle.signingCert.fingerprint256).toBe(first.bundle.signingCert.fingerprint256);
    expect(second.trustBundle()).toEqual(first.trustBundle());
  });

  it('concurrent starters in one process agree on one root', async () => {
    const dir = tmp('race-in-process');
    const cas = await Promise.all(Array.from({ length: 8 }, () => setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(dir), log: silentLogger, keyType: 'ec' })));
    expect(new Set(cas.map((c) => c.bundle.signingCert.fingerprint256)).size).toBe(1);
    const onDisk = new X509Certificate(fs.readFileSync(path.join(dir, 'ca-cert.pem')));
    expect(onDisk.fingerprint256).toBe(cas[0]!.bundle.signingCert.fingerprint256);
    expect(onDisk.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'ca-key.pem'))))).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('concurrent starters in separate processes agree on one root', async () => {
    const dir = tmp('race-processes');
    const script = `
      import { setupCertificateAuthority } from ${JSON.stringify(path.resolve('src/ca/init.ts'))};
      import { FileCaStore } from ${JSON.stringify(path.resolve('src/ca/root-store.ts'))};
      import { silentLogger } from ${JSON.stringify(path.resolve('src/shared/log.ts'))};
      const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(process.argv[1]), log: silentLogger, keyType: 'rsa' });
      console.log(ca.bundle.signingCert.fingerprint256);`;
    const run = promisify(execFile);
    const outs = await Promise.all(Array.from({ length: 4 }, () => run(process.execPath, ['--input-type=module', '-e', script, dir])));
    const prints = new Set(outs.map((o) => o.stdout.trim()));
    expect(prints.size).toBe(1);
    expect(new X509Certificate(fs.readFileSync(path.join(dir, 'ca-cert.pem'))).fingerprint256).toBe([...prints][0]);
  });

  it('an incomplete directory is reported, not overwritten', async () => {
    const dir = tmp('incomplete');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'ca-key.pem'), privateKeyToPem(ec()));
    await expect(setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(dir, { incompleteWaitMs: 50 }), log: silentLogger })).rejects.toThrow(/incomplete: ca-cert.pem, root-cert.pem missing/);
  });
});

function pluginSet(): { material: CaMaterialPem; rootPem: string } {
  const rootKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const rootPem = createRootCertificate({ key: rootKey, subject: [{ oid: '2.5.4.10', value: 'Istio' }, { oid: '2.5.4.3', value: 'Root CA' }] });
  const key = ec();
  const inter = createIntermediateCertificate({ rootCertPem: rootPem, rootKey, key, subject: [{ oid: '2.5.4.3', value: 'Intermediate CA' }], ttlSec: 86400 * 365 });
  return { material: { caCert: inter, caKey: privateKeyToPem(key), certChain: inter + rootPem, rootCerts: rootPem }, rootPem };
}

function writeSet(dir: string, files: Record<string, string>): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, k), v);
  return dir;
}

describe('plug-in CA (cacerts)', () => {
  it('loads ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem and serves the chain', async () => {
    const { material, rootPem } = pluginSet();
    const dir = writeSet(tmp('plugin-ok'), { 'ca-cert.pem': material.caCert, 'ca-key.pem': material.caKey, 'cert-chain.pem': material.certChain, 'root-cert.pem': material.rootCerts });
    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new PluginCaStore(dir), log: silentLogger });
    expect(ca.bundle.selfSigned).toBe(false);
    expect(ca.bundle.intermediates).toHaveLength(1);
    const chain = ca.signCsr(parseCsr(createCsr(ec())), [ID], 0).chain;
    expect(chain.map((p) => new X509Certificate(p).fingerprint256)).toEqual([new X509Certificate(chain[0]!).fingerprint256, new X509Certificate(material.caCert).fingerprint256, new X509Certificate(rootPem).fingerprint256]);
  });

  it('accepts the kubernetes.io/tls names tls.crt, tls.key, ca.crt (chain inside tls.crt)', async () => {
    const { material } = pluginSet();
    const dir = writeSet(tmp('plugin-tls'), { 'tls.crt': material.caCert + material.rootCerts, 'tls.key': material.caKey, 'ca.crt': material.rootCerts });
    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new PluginCaStore(dir), log: silentLogger });
    expect(ca.bundle.intermediates).toHaveLength(1);
    expect(ca.bundle.verifyLeaf(sign(ca))).toBeUndefined();
  });

  it('refuses a key that does not match the certificate', () => {
    const { material } = pluginSet();
    expect(() => CaKeyCertBundle.load({ ...material, caKey: privateKeyToPem(ec()) })).toThrow('ca-key.pem does not match the certificate in ca-cert.pem');
  });

  it('refuses a chain that does not verify to root-cert.pem', () => {
    const { material } = pluginSet();
    const other = pluginSet();
    expect(() => CaKeyCertBundle.load({ ...material, certChain: '', rootCerts: other.rootPem })).toThrow(/does not verify to a root in root-cert.pem/);
    expect(() => CaKeyCertBundle.load({ ...material, rootCerts: material.caCert })).toThrow(/is not a self-signed root/);
  });

  it('refuses a signing certificate that is not a CA, or not valid now', () => {
    const { material } = pluginSet();
    const ca = new CertificateAuthority(CaKeyCertBundle.load(material));
    const leafKey = ec();
    const leaf = ca.signCsr(parseCsr(createCsr(leafKey)), [ID], 0).leaf;
    expect(() => CaKeyCertBundle.load({ ...material, caCert: leaf, caKey: privateKeyToPem(leafKey) })).toThrow(/not a CA certificate/);
    expect(() => CaKeyCertBundle.load(material, new Date(Date.now() + 2 * 365 * 86400_000))).toThrow(/not valid now/);
  });

  it('names the missing file, and refuses encrypted keys', async () => {
    const { material } = pluginSet();
    const dir = writeSet(tmp('plugin-missing'), { 'ca-cert.pem': material.caCert, 'ca-key.pem': material.caKey });
    await expect(new PluginCaStore(dir).load()).rejects.toThrow(/root-cert.pem missing/);
    const encrypted = crypto.createPrivateKey(material.caKey).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string;
    expect(() => CaKeyCertBundle.load({ ...material, caKey: encrypted })).toThrow(/encrypted private keys are not supported/);
    await expect(setupCertificateAuthority({ trustDomain: 'cluster.local', store: new PluginCaStore(tmp('plugin-empty')), log: silentLogger })).rejects.toThrow(/no CA files found/);
  });
});

describe('root rotation', () => {
  it('a new root from the same key: old and new leaves verify under both roots', () => {
    const m = newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: 'ec' });
    const oldCa = new CertificateAuthority(CaKeyCertBundle.load(m));
    const oldLeaf = sign(oldCa);
    // Rotated when 15 % of the root's life is left (the rotator's grace period is 20 %).
    const oldRoot = new X509Certificate(m.caCert);
    const at = oldRoot.validFromDate.getTime() + 0.85 * (oldRoot.validToDate.getTime() - oldRoot.validFromDate.getTime());
    const next = rotatedRootMaterial(oldCa.bundle, { now: at });
    const newCa = new CertificateAuthority(CaKeyCertBundle.load(next, new Date(at)), { now: () => at });
    const newLeaf = sign(newCa);
    const newRoot = new X509Certificate(next.caCert);
    expect(newRoot.serialNumber).not.toBe(oldRoot.serialNumber);
    expect(newRoot.subject).toBe(oldRoot.subject);
    expect(newRoot.publicKey.export({ type: 'spki', format: 'der' }).equals(oldRoot.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    for (const leaf of [oldLeaf, newLeaf]) {
      for (const root of [oldRoot, newRoot]) expect(leaf.checkIssued(root) && leaf.verify(root.publicKey)).toBe(true);
      const validAt = new Date(leaf.validFromDate.getTime() + 3600_000);
      expect(newCa.bundle.verifyLeaf(leaf, validAt)).toBeUndefined();
      expect(oldCa.bundle.verifyLeaf(leaf, validAt)).toBeUndefined();
    }
    // The overlap: the trust bundle is new + old; the response's last element carries both.
    expect(newCa.trustBundle()).toEqual([newRoot.toString(), oldRoot.toString()]);
    const chain = newCa.signCsr(parseCsr(createCsr(ec())), [ID], 0).chain;
    expect(chain).toHaveLength(2);
    expect(chain[1]).toBe(newRoot.toString() + oldRoot.toString());
    // Once the old root has expired it leaves the bundle.
    const afterOld = new CertificateAuthority(newCa.bundle, { now: () => oldRoot.validToDate.getTime() + 1000 });
    expect(afterOld.trustBundle()).toEqual([newRoot.toString()]);
  });

  it('refuses to rotate a plug-in CA', () => {
    expect(() => rotatedRootMaterial(CaKeyCertBundle.load(pluginSet().material))).toThrow(/only a self-signed root/);
  });

  it('RootRotator: not due for a fresh root; rotates in the grace period; another replica reloads', async () => {
    const dir = tmp('rotator');
    const store = new FileCaStore(dir);
    let clock = Date.now();
    const now = () => clock;
    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store, log: silentLogger, keyType: 'ec', now });
    const root = ca.bundle.signingCert;
    const replica = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(dir), log: silentLogger, now });
    expect(await new RootRotator({ ca, store, log: silentLogger, now }).check()).toBe('not-due');
    const life = root.validToDate.getTime() - root.validFromDate.getTime();
    const late = root.validFromDate.getTime() + life * 0.85; // 15 % of life left < 20 % grace
    expect(needsRotation(root, late)).toBe(true);
    expect(needsRotation(root, root.validFromDate.getTime() + life * 0.5)).toBe(false);
    const changes: string[] = [];
    ca.onChange((b) => changes.push(b.signingCert.serialNumber));
    const oldLeaf = sign(ca);
    clock = late;
    expect(await new RootRotator({ ca, store, log: silentLogger, now }).check()).toBe('rotated');
    expect(changes).toEqual([ca.bundle.signingCert.serialNumber]);
    expect(ca.bundle.signingCert.serialNumber).not.toBe(root.serialNumber);
    expect(ca.trustBundle()).toHaveLength(2);
    expect(new X509Certificate(fs.readFileSync(path.join(dir, 'ca-cert.pem'))).serialNumber).toBe(ca.bundle.signingCert.serialNumber);
    expect(fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8')).toBe(ca.trustBundle().join(''));
    expect(fs.statSync(path.join(dir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(ca.bundle.verifyLeaf(oldLeaf, new Date(oldLeaf.validFromDate.getTime() + 3600_000))).toBeUndefined();
    // The other replica follows the store instead of rotating again.
    expect(await new RootRotator({ ca: replica, store: new FileCaStore(dir), log: silentLogger, now }).check()).toBe('reloaded');
    expect(replica.bundle.signingCert.serialNumber).toBe(ca.bundle.signingCert.serialNumber);
  });

  it('RootRotator leaves a plug-in CA alone', async () => {
    const { material } = pluginSet();
    const dir = writeSet(tmp('rotator-plugin'), { 'ca-cert.pem': material.caCert, 'ca-key.pem': material.caKey, 'cert-chain.pem': material.certChain, 'root-cert.pem': material.rootCerts });
    const store = new PluginCaStore(dir);
    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store, log: silentLogger });
    expect(await new RootRotator({ ca, store, log: silentLogger, now: () => Date.now() + 364 * 86400_000 }).check()).toBe('not-self-signed');
  });
});
