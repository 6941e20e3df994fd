/**
 * The control plane's own TLS identity for port 15012 (and the webhook port), issued by our CA, as istiod does when no
 * external certificate is provided (pilot/pkg/bootstrap/certcontroller.go). It is a grpc-js CertificateProvider, so
 * the TLS server picks up renewals (at half-life, like istio-agent's SECRET_GRACE_PERIOD_RATIO) and trust-bundle
 * changes (root rotation) without a restart.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../shared/log.ts';
import type { CertificateAuthority, ServingCertificate } from './sign.ts';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** istiod's DNS names; mizzen answers to both so Istio's injection template and bootstrap work unchanged. */
export const DEFAULT_SERVING_DNS_NAMES = ['mizzen.istio-system.svc', 'istiod.istio-system.svc'];

export interface ServingCertificateOptions {
  dnsNames?: string[];
  /** Lifetime of each serving certificate (default 24 h); renewed at half of it. */
  ttlSec?: number;
  log: Logger;
}

export class ServingCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly ca: CertificateAuthority;
  private readonly o: ServingCertificateOptions;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private currentCert: ServingCertificate;
  private trust: Buffer;
  private timer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;

  constructor(ca: CertificateAuthority, options: ServingCertificateOptions) {
    this.ca = ca;
    this.o = options;
    this.currentCert = this.issue();
    this.trust = this.trustPem();
    this.schedule();
    this.unsubscribe = ca.onChange(() => this.refresh('CA changed'));
  }

  /** The current certificate (chain + key PEM), e.g. for the webhook's HTTPS server. */
  get current(): ServingCertificate {
    return this.currentCert;
  }

  private issue(): ServingCertificate {
    return this.ca.issueServingCertificate({ dnsNames: this.o.dnsNames ?? DEFAULT_SERVING_DNS_NAMES, ttlSec: this.o.ttlSec ?? 24 * 3600 });
  }

  /** Roots and intermediates: what a client certificate of ours may chain to (the TLS layer's `ca`). */
  private trustPem(): Buffer {
    return Buffer.from([...this.ca.bundle.chainPems(), ...this.ca.trustBundle()].join(''));
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    const life = this.currentCert.notAfter.getTime() - Date.now();
    this.timer = setTimeout(() => this.refresh('renewal'), Math.max(1000, Math.min(life / 2, 2 ** 31 - 1)));
    this.timer.unref();
  }

  private refresh(why: string): void {
    try {
      this.currentCert = this.issue();
      this.trust = this.trustPem();
    } catch (err) {
      this.o.log.error({ err: (err as Error).message, why }, 'serving certificate renewal failed; retrying in 60 s');
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh('retry'), 60_000);
      this.timer.unref();
      return;
    }
    this.o.log.info({ why, notAfter: this.currentCert.notAfter.toISOString() }, 'serving certificate issued');
    for (const l of this.caListeners) l({ caCertificate: this.trust });
    for (const l of this.identityListeners) l(this.identityUpdate());
    this.schedule();
  }

  private identityUpdate(): grpc.experimental.IdentityCertificateUpdate {
    return { certificate: Buffer.from(this.currentCert.certChain), privateKey: Buffer.from(this.currentCert.key) };
  }

  // The first update is delivered asynchronously: grpc-js registers its watcher only after adding the listener
  // (CertificateProviderServerCredentials._addWatcher), so a synchronous update would be lost and the port would
  // drop every connection as "unloaded credentials".
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && listener({ caCertificate: this.trust }));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identityListeners.has(listener) && listener(this.identityUpdate()));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe();
  }
}
