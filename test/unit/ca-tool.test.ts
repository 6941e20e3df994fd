/**
 * `mizzen ca` tooling (src/app/ca-tool.ts): a plug-in hierarchy (root → per-cluster cacerts) that mizzen itself
 * accepts, root rotation for both directory layouts, and offline signing.
 */
import crypto, { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createIntermediate, initRoot, rotateRoot, signOffline } from '../../src/app/ca-tool.ts';
import { createCsr } from '../../src/ca/csr.ts';
import { splitCertificates } from '../../src/ca/der.ts';
import { setupCertificateAuthority } from '../../src/ca/init.ts';
import { FileCaStore, PluginCaStore } from '../../src/ca/root-store.ts';
import { silentLogger } from '../../src/shared/log.ts';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-ca-tool-'));
const tmp = (name: string) => path.join(tmpRoot, name);
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
const mode = (dir: string, f: string) => fs.statSync(path.join(dir, f)).mode & 0o777;

describe('mizzen ca init-root / intermediate', () => {
  it('builds a root and a cluster cacerts set that the CA loads and signs with', async () => {
    const rootDir = tmp('root');
    const r = await initRoot({ dir: rootDir, keyType: 'ec' });
    expect(r.written.map((f) => path.basename(f))).toEqual(['root-cert.pem', 'root-key.pem']);
    expect(mode(rootDir, 'root-key.pem')).toBe(0o600);
    const root = new X509Certificate(read(rootDir, 'root-cert.pem'));
    expect(root.subject).toBe('O=Istio\nCN=Root CA');
    expect(root.ca).toBe(true);

    const out = tmp('cluster1');
    const i = await createIntermediate({ rootDir, out, cluster: 'cluster1', keyType: 'ec' });
    expect(fs.readdirSync(out).sort()).toEqual(['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    expect(mode(out, 'ca-key.pem')).toBe(0o600);
    expect(i.messages.join('\n')).toContain('kubectl create secret generic cacerts -n istio-system');
    const inter = new X509Certificate(read(out, 'ca-cert.pem'));
    expect(inter.subject).toBe('O=Istio\nCN=Intermediate CA\nL=cluster1');
    expect(inter.checkIssued(root) && inter.verify(root.publicKey)).toBe(true);
    expect(splitCertificates(read(out, 'cert-chain.pem'))).toHaveLength(2);

    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new PluginCaStore(out), log: silentLogger });
    expect(ca.bundle.selfSigned).toBe(false);
  });

  it('refuses to overwrite existing files unless forced, and checks the cluster name', async () => {
    const rootDir = tmp('root-twice');
    await initRoot({ dir: rootDir, keyType: 'ec' });
    await expect(initRoot({ dir: rootDir, keyType: 'ec' })).rejects.toThrow(/refusing to overwrite/);
    await initRoot({ dir: rootDir, keyType: 'ec', force: true });
    await createIntermediate({ rootDir, out: tmp('c-twice'), cluster: 'c', keyType: 'ec' });
    await expect(createIntermediate({ rootDir, out: tmp('c-twice'), cluster: 'c', keyType: 'ec' })).rejects.toThrow(/refusing to overwrite/);
    await expect(createIntermediate({ rootDir, out: tmp('bad'), cluster: '../x', keyType: 'ec' })).rejects.toThrow(/cluster name/);
  });

  it('RSA by default (4096-bit, as Istio’s Makefile)', async () => {
    const rootDir = tmp('root-rsa');
    await initRoot({ dir: rootDir });
    expect(crypto.createPrivateKey(read(rootDir, 'root-key.pem')).asymmetricKeyDetails?.modulusLength).toBe(4096);
  });
});

describe('mizzen ca rotate-root', () => {
  it('init-root layout: root-cert.pem becomes new + old; existing intermediates verify under the new root', async () => {
    const rootDir = tmp('rot-root');
    await initRoot({ dir: rootDir, keyType: 'ec' });
    const old = new X509Certificate(read(rootDir, 'root-cert.pem'));
    const out = tmp('rot-cluster');
    await createIntermediate({ rootDir, out, cluster: 'east', keyType: 'ec' });
    const r = await rotateRoot({ dir: rootDir });
    expect(r.messages[0]).toMatch(/^new root serial/);
    const roots = splitCertificates(read(rootDir, 'root-cert.pem')).map((p) => new X509Certificate(p));
    expect(roots).toHaveLength(2);
    expect(roots[1]!.fingerprint256).toBe(old.fingerprint256);
    const inter = new X509Certificate(read(out, 'ca-cert.pem'));
    expect(inter.checkIssued(roots[0]!) && inter.verify(roots[0]!.publicKey)).toBe(true);
    // The old cluster set with the new bundle published as its root-cert.pem still loads.
    fs.writeFileSync(path.join(out, 'root-cert.pem'), read(rootDir, 'root-cert.pem'));
    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new PluginCaStore(out), log: silentLogger });
    expect(ca.trustBundle()).toHaveLength(2);
    // New intermediates are signed by the newest root.
    await createIntermediate({ rootDir, out: tmp('rot-cluster-2'), cluster: 'west', keyType: 'ec' });
    expect(new X509Certificate(read(tmp('rot-cluster-2'), 'ca-cert.pem')).verify(roots[0]!.publicKey)).toBe(true);
  });

  it('--ca-dir layout: ca-cert.pem is the new root, root-cert.pem new + old', async () => {
    const dir = tmp('rot-cadir');
    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(dir), log: silentLogger, keyType: 'ec' });
    const old = ca.bundle.signingCert;
    await rotateRoot({ dir });
    const now = new X509Certificate(read(dir, 'ca-cert.pem'));
    expect(now.serialNumber).not.toBe(old.serialNumber);
    expect(splitCertificates(read(dir, 'root-cert.pem')).map((p) => new X509Certificate(p).serialNumber)).toEqual([now.serialNumber, old.serialNumber]);
    const reloaded = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(dir), log: silentLogger });
    expect(reloaded.bundle.signingCert.serialNumber).toBe(now.serialNumber);
  });

  it('refuses a directory with no CA key', async () => {
    fs.mkdirSync(tmp('empty'));
    await expect(rotateRoot({ dir: tmp('empty') })).rejects.toThrow(/neither ca-key.pem/);
  });
});

describe('mizzen ca sign', () => {
  it('signs a CSR file offline for the given identity', async () => {
    const rootDir = tmp('sign-root');
    await initRoot({ dir: rootDir, keyType: 'ec' });
    const out = tmp('sign-cluster');
    await createIntermediate({ rootDir, out, cluster: 'c1', keyType: 'ec' });
    const csrFile = tmp('w.csr');
    fs.writeFileSync(csrFile, createCsr(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { uris: ['spiffe://evil/ns/x/sa/y'] }));
    const r = await signOffline({ dir: out, csr: csrFile, identities: ['spiffe://cluster.local/ns/default/sa/sleep'], ttlSec: 3600 });
    const certs = splitCertificates(r.chain).map((p) => new X509Certificate(p));
    expect(certs).toHaveLength(3);
    expect(certs[0]!.subjectAltName).toBe('URI:spiffe://cluster.local/ns/default/sa/sleep');
    expect(certs[0]!.verify(certs[1]!.publicKey) && certs[1]!.verify(certs[2]!.publicKey)).toBe(true);
    expect(r.messages[0]).toMatch(/^issued serial/);
    await expect(signOffline({ dir: out, csr: csrFile, identities: ['not a uri'] })).rejects.toThrow(/is not a URI/);
    await expect(signOffline({ dir: tmp('nothing'), csr: csrFile, identities: ['spiffe://a/b'] })).rejects.toThrow(/no CA files/);
  });
});
