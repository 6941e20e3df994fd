/**
 * Start-up of the CA (Istio's pilot/pkg/bootstrap/istio_ca.go): a plug-in CA when one is configured (files checked,
 * refused with the reason otherwise); else the self-signed root from the store, created on first start.
 */
import type { Logger } from '../shared/log.ts';
import { createRootCertificate, DEFAULT_ROOT_TTL_SEC, selfSignedRootSubject } from './authority-certs.ts';
import { CaKeyCertBundle, CaMaterialError, type CaMaterialPem } from './bundle.ts';
import { checkTrustDomain } from './identity.ts';
import { generateKeyPair, privateKeyToPem, type KeyType } from './keys.ts';
import type { CaStore } from './root-store.ts';
import { CertificateAuthority, type SignerOptions } from './sign.ts';

export interface CaSetupOptions extends SignerOptions {
  trustDomain: string;
  /** The self-signed CA's store (FileCaStore for --ca-dir; a Secret store in kube mode), or a PluginCaStore. */
  store: CaStore;
  /** Key type for a newly created self-signed root (default RSA, as istiod). */
  keyType?: KeyType;
  rsaBits?: number;
  rootTtlSec?: number;
  log: Logger;
}

/** A new self-signed CA's material (Istio's istio-ca-secret): the root is also the signing certificate. */
export function newSelfSignedMaterial(options: { trustDomain: string; keyType?: KeyType; rsaBits?: number; ttlSec?: number; now?: number }): CaMaterialPem {
  const { privateKey } = generateKeyPair({ type: options.keyType ?? 'rsa', ...(options.rsaBits ? { rsaBits: options.rsaBits } : {}) });
  const root = createRootCertificate({
    key: privateKey,
    subject: selfSignedRootSubject(options.trustDomain),
    ttlSec: options.ttlSec ?? DEFAULT_ROOT_TTL_SEC,
    ...(options.now ? { now: options.now } : {}),
  });
  return { caCert: root, caKey: privateKeyToPem(privateKey), certChain: '', rootCerts: root };
}

export async function setupCertificateAuthority(options: CaSetupOptions): Promise<CertificateAuthority> {
  checkTrustDomain(options.trustDomain);
  const { store, log } = options;
  let material = await store.load();
  if (!material) {
    if (!store.writable) throw new CaMaterialError(`${store.description}: no CA files found`);
    const fresh = newSelfSignedMaterial({
      trustDomain: options.trustDomain,
      ...(options.keyType ? { keyType: options.keyType } : {}),
      ...(options.rsaBits ? { rsaBits: options.rsaBits } : {}),
      ...(options.rootTtlSec ? { ttlSec: options.rootTtlSec } : {}),
    });
    if (await store.create(fresh)) {
      material = fresh;
      log.info({ store: store.description, keyType: options.keyType ?? 'rsa' }, 'created a self-signed CA root');
    } else {
      material = await store.load();
      if (!material) throw new Error(`${store.description}: another starter created the CA but its files cannot be read`);
      log.info({ store: store.description }, 'another starter created the CA root; using it');
    }
  }
  const bundle = CaKeyCertBundle.load(material, new Date((options.now ?? Date.now)()));
  log.info(
    { store: store.description, selfSigned: bundle.selfSigned, signingNotAfter: bundle.signingCert.validTo, intermediates: bundle.intermediates.length, roots: bundle.roots.length },
    'CA ready',
  );
  return new CertificateAuthority(bundle, options);
}
