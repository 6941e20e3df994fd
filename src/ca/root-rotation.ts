/**
 * Self-signed root rotation (Istio's SelfSignedCARootCertRotator, security/pkg/pki/ca/selfsignedcarootcertrotator.go):
 * checked periodically (1 h, with a random start jitter); when less than 20 % of the root's life remains, a new root is
 * generated from the *existing* key. The trust bundle then holds new + old roots until the old one expires, and
 * since both share the Name and key, certificates issued under either verify under both: no workload needs to be
 * re-issued, and peers that still trust only the old root accept new leaves.
 *
 * Order matters: the store is written first, then the in-memory bundle; if the write fails nothing changed. Each
 * check reloads the store first, so a replica that already rotated (shared directory or Secret) is followed, not
 * rotated again.
 */
import { X509Certificate } from 'node:crypto';
import type { Logger } from '../shared/log.ts';
import { DEFAULT_ROOT_TTL_SEC, renewRootCertificate } from './authority-certs.ts';
import { CaKeyCertBundle, type CaMaterialPem } from './bundle.ts';
import type { CaStore } from './root-store.ts';
import type { CertificateAuthority } from './sign.ts';

/** CITADEL_SELF_SIGNED_ROOT_CERT_GRACE_PERIOD_PERCENTILE. */
export const DEFAULT_ROOT_GRACE_PERCENT = 20;
/** CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL. */
export const DEFAULT_ROOT_CHECK_INTERVAL_MS = 3600_000;

/**
 * The material after rotating a self-signed root: ca-cert.pem = a new root from the same key; root-cert.pem = the new
 * root followed by the previous roots that have not expired yet.
 */
export function rotatedRootMaterial(bundle: CaKeyCertBundle, options: { ttlSec?: number; now?: number } = {}): CaMaterialPem {
  if (!bundle.selfSigned) throw new Error('only a self-signed root can be rotated this way; a plug-in CA is rotated by its operator (see certs/README.md)');
  const now = options.now ?? Date.now();
  const newRoot = renewRootCertificate(bundle.signingCert.toString(), bundle.signingKey, { ttlSec: options.ttlSec ?? DEFAULT_ROOT_TTL_SEC, now });
  const previous = bundle.roots.filter((r) => r.validToDate.getTime() > now).map((r) => r.toString());
  return { caCert: newRoot, caKey: bundle.material.caKey, certChain: '', rootCerts: [newRoot, ...previous].join('') };
}

/** Whether a root is inside its grace period: less than `gracePercent` of its lifetime left. */
export function needsRotation(root: X509Certificate, now: number, gracePercent = DEFAULT_ROOT_GRACE_PERCENT): boolean {
  const from = root.validFromDate.getTime();
  const to = root.validToDate.getTime();
  return to - now < ((to - from) * gracePercent) / 100;
}

export interface RootRotatorOptions {
  ca: CertificateAuthority;
  store: CaStore;
  log: Logger;
  ttlSec?: number;
  gracePercent?: number;
  checkIntervalMs?: number;
  now?: () => number;
}

export type RotationOutcome = 'rotated' | 'reloaded' | 'not-due' | 'not-self-signed';

export class RootRotator {
  private readonly o: RootRotatorOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RotationOutcome> | undefined;

  constructor(options: RootRotatorOptions) {
    this.o = options;
  }

  /** One check: follow the store if another replica rotated, else rotate if the root is in its grace period. */
  check(): Promise<RotationOutcome> {
    this.running ??= this.checkOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async checkOnce(): Promise<RotationOutcome> {
    const { ca, store, log } = this.o;
    const now = (this.o.now ?? Date.now)();
    if (!ca.bundle.selfSigned || !store.writable) return 'not-self-signed';
    const stored = await store.load();
    if (stored && stored.caCert !== ca.bundle.material.caCert) {
      const bundle = CaKeyCertBundle.load(stored, new Date(now));
      ca.setBundle(bundle);
      log.info({ store: store.description, notAfter: bundle.signingCert.validTo }, 'CA root changed in the store; reloaded');
      return 'reloaded';
    }
    if (!needsRotation(ca.bundle.signingCert, now, this.o.gracePercent)) return 'not-due';
    const material = rotatedRootMaterial(ca.bundle, { ...(this.o.ttlSec ? { ttlSec: this.o.ttlSec } : {}), now });
    const bundle = CaKeyCertBundle.load(material, new Date(now));
    await store.update(material);
    ca.setBundle(bundle);
    log.info({ store: store.description, oldNotAfter: ca.bundle.roots[1]?.validTo, newNotAfter: bundle.signingCert.validTo, trustBundle: bundle.roots.length }, 'CA root rotated (same key)');
    return 'rotated';
  }

  /** Periodic checks, the first after a random jitter within one interval (so replicas do not check in lockstep). */
  start(): void {
    const interval = this.o.checkIntervalMs ?? DEFAULT_ROOT_CHECK_INTERVAL_MS;
    const run = () =>
      void this.check().catch((err) => this.o.log.error({ err: (err as Error).message }, 'CA root rotation check failed; will retry'));
    this.timer = setTimeout(() => {
      run();
      this.timer = setInterval(run, interval);
      this.timer.unref();
    }, Math.floor(Math.random() * interval));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
