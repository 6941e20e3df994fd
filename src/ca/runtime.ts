/**
 * Everything the server needs from the CA, built from options in one call: key material (plug-in or self-signed in
 * a store), the signer, the authenticator chain, the gRPC service, the serving certificate for 15012 and root
 * rotation. src/app/server.ts calls startCa() and registers `service` on its TLS server bound with `credentials()`.
 */
import fs from 'node:fs/promises';
import type * as grpc from '@grpc/grpc-js';
import type { JSONWebKeySet } from 'jose';
import type { Registry } from 'prom-client';
import type { Logger } from '../shared/log.ts';
import { ClientCertAuthenticator, DEFAULT_TOKEN_AUDIENCES, JwtAuthenticator, TokenReviewAuthenticator, type Authenticator, type TokenReviewAuthenticatorOptions } from './authenticate.ts';
import { setupCertificateAuthority } from './init.ts';
import type { KeyType } from './keys.ts';
import { FileCaStore, PluginCaStore, type CaStore } from './root-store.ts';
import { RootRotator } from './root-rotation.ts';
import { CaService, secureServerCredentials } from './service.ts';
import { ServingCertificateProvider } from './serving-cert.ts';
import type { CertificateAuthority } from './sign.ts';

export interface CaRuntimeOptions {
  trustDomain: string;
  /** Self-signed CA directory (`--ca-dir`); created on first start. */
  caDir?: string;
  /** Plug-in CA directory (`cacerts`); takes precedence over caDir when it holds CA files. */
  pluginDir?: string;
  /** Any other store (kube mode: the istio-ca-secret Secret). Takes precedence over caDir. */
  store?: CaStore;
  keyType?: KeyType;
  /** A JWKS file path or an https URL for bearer tokens (file mode). */
  tokenJwks?: string;
  tokenIssuer?: string;
  tokenAudiences?: string[];
  /** Kube mode: TokenReview clients by cluster id. */
  tokenReview?: TokenReviewAuthenticatorOptions['reviewerFor'];
  defaultTtlSec?: number;
  maxTtlSec?: number;
  servingDnsNames?: string[];
  registry?: Registry;
  log: Logger;
  /** Rotate the self-signed root when it nears expiry (default true). */
  rotateRoot?: boolean;
}

export interface CaRuntime {
  ca: CertificateAuthority;
  service: CaService;
  serving: ServingCertificateProvider;
  rotator: RootRotator | undefined;
  /** Credentials for the 15012 TLS server (serving certificate, optional client certificates, TLS marking). */
  credentials(): grpc.ServerCredentials;
  stop(): void;
}

async function pluginStoreIfPresent(dir: string | undefined): Promise<CaStore | undefined> {
  if (!dir) return undefined;
  const store = new PluginCaStore(dir);
  return (await store.load()) ? store : undefined;
}

export async function loadJwks(source: string): Promise<JSONWebKeySet | URL> {
  if (/^https?:\/\//.test(source)) return new URL(source);
  const parsed = JSON.parse(await fs.readFile(source, 'utf8')) as JSONWebKeySet;
  if (!parsed || !Array.isArray(parsed.keys)) throw new Error(`${source}: not a JWKS (no "keys" array)`);
  return parsed;
}

export async function startCa(o: CaRuntimeOptions): Promise<CaRuntime> {
  const log = o.log.child({ scope: 'ca' });
  const store = o.store ?? (await pluginStoreIfPresent(o.pluginDir)) ?? (o.caDir ? new FileCaStore(o.caDir) : undefined);
  if (!store) throw new Error('the CA needs --ca-dir (self-signed, created on first start) or a plug-in CA directory');
  const ca = await setupCertificateAuthority({
    trustDomain: o.trustDomain,
    store,
    log,
    ...(o.keyType ? { keyType: o.keyType } : {}),
    ...(o.defaultTtlSec ? { defaultTtlSec: o.defaultTtlSec } : {}),
    ...(o.maxTtlSec ? { maxTtlSec: o.maxTtlSec } : {}),
  });

  const authenticators: Authenticator[] = [new ClientCertAuthenticator(() => ca.bundle)];
  if (o.tokenJwks) {
    if (!o.tokenIssuer) throw new Error('--token-jwks needs --token-issuer');
    authenticators.push(new JwtAuthenticator({ issuer: o.tokenIssuer, jwks: await loadJwks(o.tokenJwks), audiences: o.tokenAudiences ?? DEFAULT_TOKEN_AUDIENCES, trustDomain: o.trustDomain }));
  }
  if (o.tokenReview) authenticators.push(new TokenReviewAuthenticator({ reviewerFor: o.tokenReview, audiences: o.tokenAudiences ?? DEFAULT_TOKEN_AUDIENCES, trustDomain: o.trustDomain }));
  if (authenticators.length === 1) log.warn('no token authenticator configured (--token-jwks or kube TokenReview): only callers with a certificate from this CA can get certificates');

  const service = new CaService({ ca, authenticators, log, ...(o.registry ? { registry: o.registry } : {}) });
  const serving = new ServingCertificateProvider(ca, { log, ...(o.servingDnsNames ? { dnsNames: o.servingDnsNames } : {}) });
  let rotator: RootRotator | undefined;
  if (ca.bundle.selfSigned && store.writable && o.rotateRoot !== false) {
    rotator = new RootRotator({ ca, store, log });
    rotator.start();
  }
  return {
    ca,
    service,
    serving,
    rotator,
    credentials: () => secureServerCredentials(serving),
    stop: () => {
      rotator?.stop();
      serving.stop();
      service.close();
    },
  };
}
