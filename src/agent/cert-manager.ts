/**
 * The workload certificate manager (Istio's secret cache, security/pkg/nodeagent/cache/secretcache.go): a fresh key
 * and CSR → `CreateCertificate` on the CA → {key, chain, roots}; renewal at SECRET_GRACE_PERIOD_RATIO (0.5 ± 0.01) of
 * the lifetime; failures retried with exponential backoff (500 ms → 60 s, never giving up: pkg/backoff,
 * pkg/istio-agent/agent.go) while the old certificate keeps being served (reliability-security.md §4: a CA outage
 * breaks mTLS only when certificates expire).
 *
 * The CA call itself is behind `CaClient`; `IstioCaClient` is the real one: TLS to CA_ADDR verified with the mesh root
 * (the `istio-ca-root-cert` ConfigMap mount), the projected token in `authorization: Bearer`, and `clusterid`
 * (istio-xds.md §10.1). It re-reads the token and the root file on every call, since both rotate on disk.
 *
 * Never logged: private keys, tokens. Logged: identity, serial, expiry, the CA's status code.
 */
import crypto, { X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { createCsr } from '../ca/csr.ts';
import { privateKeyToPem } from '../ca/keys.ts';
import { caClientConstructor, type IstioCertificateResponse } from '../ca/service.ts';
import { systemClock, type Clock, type Timer } from '../shared/clock.ts';
import type { Logger } from '../shared/log.ts';
import type { AgentConfig } from './config.ts';

/** What the agent holds for the workload: the SDS `default` and `ROOTCA` secrets, and the OUTPUT_CERTS files. */
export interface WorkloadSecret {
  /** PKCS#1 (RSA) or SEC1 (EC) PEM, as Istio writes key.pem. */
  privateKeyPem: string;
  /** Leaf then intermediates, PEM (cert-chain.pem, SDS `default`). */
  certChainPem: string;
  /** The trust bundle, PEM (root-cert.pem, SDS `ROOTCA`). */
  rootCertPem: string;
  /** The leaf's SPIFFE URI SAN. */
  identity: string | undefined;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** When the agent received it (clock ms); the lifetime for renewal runs from here, as in Istio. */
  fetchedAt: number;
}

/** Anything that hands out the current workload secret and says when it changes (CertManager; tests use fakes). */
export interface SecretSource {
  current(): WorkloadSecret | undefined;
  onChange(listener: (secret: WorkloadSecret) => void): () => void;
}

/** One CreateCertificate: the PEM CSR and the requested TTL → the response's cert_chain (leaf … root bundle). */
export interface CaClient {
  createCertificate(csrPem: string, ttlSec: number): Promise<string[]>;
  close?(): void;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  multiplier: number;
  /** ± this share of each interval, at random (cenkalti/backoff's RandomizationFactor). */
  randomization: number;
}

/** Istio's agent backoff (pkg/backoff DefaultOption on cenkalti/backoff defaults): 500 ms × 1.5ⁿ ± 50 %, at most 60 s. */
export const AGENT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 60_000, multiplier: 1.5, randomization: 0.5 };

/** The delay before retry number `attempt` (0-based): exponential, randomized, capped at maxMs. */
export function backoffDelay(attempt: number, random: () => number, o: BackoffOptions = AGENT_BACKOFF): number {
  const base = Math.min(o.initialMs * o.multiplier ** Math.max(0, attempt), o.maxMs);
  const delta = o.randomization * base;
  return Math.round(Math.min(o.maxMs, Math.max(0, base - delta + random() * 2 * delta)));
}

/**
 * When to renew (secretcache.go rotateTime): at `notAfter − (ratio ± jitter) × lifetime`, the lifetime counted from
 * when the agent received the certificate (not the backdated NotBefore). 0 = now.
 */
export function renewalDelay(secret: Pick<WorkloadSecret, 'fetchedAt' | 'notAfter'>, now: number, ratio: number, jitter: number, random: () => number): number {
  const expires = secret.notAfter.getTime();
  const lifetime = expires - secret.fetchedAt;
  const sign = random() < 0.5 ? -1 : 1;
  const r = Math.min(1, Math.max(0, ratio + sign * random() * jitter));
  return Math.max(0, Math.round(expires - r * lifetime - now));
}

export interface CertManagerOptions {
  client: CaClient;
  /** SECRET_TTL in seconds (24 h). */
  ttlSec: number;
  graceRatio: number;
  graceRatioJitter: number;
  keyType: 'rsa' | 'ec';
  rsaBits?: number;
  log: Logger;
  /** `spiffe://<td>/ns/<ns>/sa/<sa>`: a certificate for another identity is logged (trust domain aliases exist). */
  expectedIdentity?: string;
  backoff?: BackoffOptions;
  clock?: Clock;
  random?: () => number;
}

export type CertState = 'pending' | 'valid' | 'expired';

export interface CertStatus {
  state: CertState;
  notAfter?: Date;
  identity?: string;
  /** Failed CA calls since the last success. */
  failures: number;
  lastError?: string;
  /** Clock ms of the next renewal or retry. */
  nextAttemptAt?: number;
}

/** setTimeout's limit (~24.8 days); a 90-day certificate's renewal is reached in several hops. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const generateKeyPair = promisify(crypto.generateKeyPair);
/** Never renew sooner than this after an issue: a very short-lived certificate must not turn into a tight loop. */
const MIN_RENEWAL_MS = 1000;

/** Issued certificate → WorkloadSecret, or an error saying why the response is unusable. */
export function secretFromResponse(chain: string[], privateKey: KeyObject, fetchedAt: number): WorkloadSecret {
  if (chain.length < 2) throw new Error(`CA returned ${chain.length} certificate(s); want the leaf and the root bundle`);
  // Istio's contract (server.go): leaf, intermediates, then the trust bundle as the LAST element (it may hold several
  // roots during a rotation).
  const pem = (s: string) => (s.endsWith('\n') ? s : `${s}\n`);
  const certs = chain.slice(0, -1).map((p) => new X509Certificate(p));
  const roots = splitPem(chain[chain.length - 1]!).map((p) => new X509Certificate(p));
  if (roots.length === 0) throw new Error('CA returned no root certificate');
  const leaf = certs[0]!;
  if (!leaf.checkPrivateKey(privateKey)) throw new Error('issued certificate does not match our private key');
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!certs[i]!.verify(certs[i + 1]!.publicKey)) throw new Error(`certificate ${i} of the chain is not signed by certificate ${i + 1}`);
  }
  const top = certs[certs.length - 1]!;
  if (!roots.some((r) => top.checkIssued(r) && top.verify(r.publicKey))) throw new Error('issued chain does not lead to the returned root bundle');
  const identity = (leaf.subjectAltName ?? '')
    .split(', ')
    .find((s) => s.startsWith('URI:spiffe://'))
    ?.slice('URI:'.length);
  return {
    privateKeyPem: privateKeyToPem(privateKey),
    certChainPem: chain.slice(0, -1).map(pem).join(''),
    rootCertPem: roots.map((r) => r.toString()).map(pem).join(''),
    identity,
    serialNumber: leaf.serialNumber,
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
    fetchedAt,
  };
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

export class CertManager implements SecretSource {
  private readonly o: CertManagerOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly listeners = new Set<(s: WorkloadSecret) => void>();
  private secret: WorkloadSecret | undefined;
  private timer: Timer | undefined;
  /** Clock ms when the pending timer should really fire (long delays hop through MAX_TIMER_MS). */
  private dueAt: number | undefined;
  private failures = 0;
  private lastError: string | undefined;
  private running = false;
  private inFlight: Promise<void> | undefined;
  private firstWaiters: Array<(s: WorkloadSecret) => void> = [];

  constructor(options: CertManagerOptions) {
    this.o = options;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
  }

  /** Starts fetching now; renewals and retries follow on their own. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.runAttempt();
  }

  stop(): void {
    this.running = false;
    this.clearTimer();
    this.o.client.close?.();
  }

  current(): WorkloadSecret | undefined {
    return this.secret;
  }

  /** Resolves with the first certificate (immediately if there is one). */
  whenReady(): Promise<WorkloadSecret> {
    if (this.secret) return Promise.resolve(this.secret);
    return new Promise((resolve) => this.firstWaiters.push(resolve));
  }

  onChange(listener: (secret: WorkloadSecret) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): CertStatus {
    const s = this.secret;
    const state: CertState = !s ? 'pending' : s.notAfter.getTime() <= this.clock.now() ? 'expired' : 'valid';
    return {
      state,
      failures: this.failures,
      ...(s ? { notAfter: s.notAfter, ...(s.identity ? { identity: s.identity } : {}) } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.dueAt !== undefined ? { nextAttemptAt: this.dueAt } : {}),
    };
  }

  /** Renews now (operator request, or a root change); a call already in flight is reused. */
  renewNow(): Promise<void> {
    if (!this.running) return Promise.resolve();
    if (this.inFlight) return this.inFlight;
    this.clearTimer();
    return this.runAttempt();
  }

  private clearTimer(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.dueAt = undefined;
  }

  private schedule(delayMs: number): void {
    this.clearTimer();
    this.dueAt = this.clock.now() + delayMs;
    const arm = (ms: number) => {
      this.timer = this.clock.setTimeout(() => {
        this.timer = undefined;
        const left = (this.dueAt ?? 0) - this.clock.now();
        if (left > 0) return arm(Math.min(left, MAX_TIMER_MS));
        this.dueAt = undefined;
        void this.runAttempt();
      }, ms);
      // Not unref'd: in proxyless mode the pending renewal may be the only thing keeping the agent alive.
    };
    arm(Math.min(delayMs, MAX_TIMER_MS));
  }

  private runAttempt(): Promise<void> {
    const p = this.attempt()
      .catch((err: unknown) => this.o.log.error({ err: (err as Error).message }, 'certificate manager failed unexpectedly'))
      .finally(() => {
      if (this.inFlight === p) this.inFlight = undefined;
    });
    this.inFlight = p;
    return p;
  }

  private async attempt(): Promise<void> {
    if (!this.running) return;
    const { log } = this.o;
    let secret: WorkloadSecret;
    try {
      secret = await this.fetch();
    } catch (err) {
      if (!this.running) return;
      this.failures++;
      this.lastError = (err as Error).message;
      const delay = backoffDelay(this.failures - 1, this.random, this.o.backoff);
      const s = this.secret;
      const expired = s !== undefined && s.notAfter.getTime() <= this.clock.now();
      const fields = { failures: this.failures, retryInMs: delay, error: this.lastError, ...(s ? { serving: s.serialNumber, notAfter: s.notAfter.toISOString() } : {}) };
      if (expired) log.error(fields, 'workload certificate has EXPIRED and the CA cannot be reached; still retrying');
      else if (s) log.warn(fields, 'certificate renewal failed; keeping the current certificate and retrying');
      else log.warn(fields, 'workload certificate request failed; retrying');
      this.schedule(delay);
      return;
    }
    if (!this.running) return;
    if (this.failures > 0) log.info({ failures: this.failures }, 'CA reachable again');
    this.failures = 0;
    this.lastError = undefined;
    this.secret = secret;
    const delay = Math.max(MIN_RENEWAL_MS, renewalDelay(secret, this.clock.now(), this.o.graceRatio, this.o.graceRatioJitter, this.random));
    if (this.o.expectedIdentity && secret.identity !== this.o.expectedIdentity) {
      log.warn({ identity: secret.identity, expected: this.o.expectedIdentity }, 'issued certificate names another identity than this workload\'s');
    }
    log.info({ identity: secret.identity, serial: secret.serialNumber, notAfter: secret.notAfter.toISOString(), renewInMs: delay }, 'workload certificate issued');
    this.schedule(delay);
    const waiters = this.firstWaiters;
    this.firstWaiters = [];
    for (const w of waiters) w(secret);
    for (const l of this.listeners) {
      try {
        l(secret);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'certificate change listener failed');
      }
    }
  }

  private async fetch(): Promise<WorkloadSecret> {
    // A new key for every certificate, as Istio's agent does; generated off the event loop (RSA takes ~50-200 ms).
    const { privateKey } =
      this.o.keyType === 'ec'
        ? await generateKeyPair('ec', { namedCurve: 'P-256' })
        : await generateKeyPair('rsa', { modulusLength: this.o.rsaBits ?? 2048 });
    // No SANs or subject: the CA takes the identity from the authenticated caller (istio-xds.md §10.2).
    const chain = await this.o.client.createCertificate(createCsr(privateKey), this.o.ttlSec);
    const secret = secretFromResponse(chain, privateKey, this.clock.now());
    // Installing it would only schedule an immediate renewal, again and again: retry on the backoff instead.
    if (secret.notAfter.getTime() <= secret.fetchedAt + MIN_RENEWAL_MS) {
      throw new Error(`issued certificate expires at ${secret.notAfter.toISOString()}, already or within a second (clock skew with the CA?)`);
    }
    return secret;
  }
}

export interface IstioCaClientOptions {
  /** CA_ADDR, `host:port`. */
  address: string;
  /** The DNS name the CA's serving certificate must carry (TLS SNI and verification). */
  serverName: string;
  /** PEM root(s) for the CA's serving certificate; undefined = the system roots. Re-read on every call. */
  rootCertPath: string | undefined;
  /** The projected service-account token; re-read on every call (kubelet rotates it). */
  tokenPath: string;
  /** Sent as `clusterid`: which cluster's TokenReview the CA uses. */
  clusterId: string;
  /** Per call (default 10 s). */
  timeoutMs?: number;
}

type GeneratedCaClient = grpc.Client & {
  CreateCertificate(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: IstioCertificateResponse) => void): void;
};

/**
 * `istio.v1.auth.IstioCertificateService/CreateCertificate` over TLS. A channel per call: a call happens every
 * ~12 hours (or during retries), and a fresh channel picks up a rotated root file and skips grpc-js's own reconnect
 * backoff (1 s → 120 s), leaving the retry schedule to CertManager's.
 */
export class IstioCaClient implements CaClient {
  private readonly o: IstioCaClientOptions;
  /** Where calls go; tests move it (a CA restarted elsewhere). */
  address: string;

  constructor(options: IstioCaClientOptions) {
    this.o = options;
    this.address = options.address;
  }

  async createCertificate(csrPem: string, ttlSec: number): Promise<string[]> {
    let token: string;
    try {
      token = (await fs.readFile(this.o.tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new Error(`cannot read the service-account token ${this.o.tokenPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!token) throw new Error(`the service-account token ${this.o.tokenPath} is empty`);
    let root: Buffer | null = null;
    if (this.o.rootCertPath) {
      try {
        root = await fs.readFile(this.o.rootCertPath);
      } catch (err) {
        throw new Error(`cannot read the CA root ${this.o.rootCertPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const Ctor = caClientConstructor();
    const client = new Ctor(this.address, grpc.credentials.createSsl(root), {
      'grpc.ssl_target_name_override': this.o.serverName,
      'grpc.default_authority': this.o.serverName,
    }) as unknown as GeneratedCaClient;
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    md.set('clusterid', this.o.clusterId);
    try {
      return await new Promise<string[]>((resolve, reject) =>
        client.CreateCertificate({ csr: csrPem, validity_duration: ttlSec }, md, { deadline: Date.now() + (this.o.timeoutMs ?? 10_000) }, (err, res) => {
          if (err) reject(new Error(`CreateCertificate at ${this.address}: ${grpc.status[err.code] ?? err.code}: ${err.details}`));
          else resolve(res?.cert_chain ?? []);
        }),
      );
    } finally {
      client.close();
    }
  }
}

/** The manager as `mizzen agent` runs it: IstioCaClient to CA_ADDR, and the lifetime and key settings from the config. */
export function certManagerFromConfig(config: AgentConfig, log: Logger, overrides: Partial<CertManagerOptions> = {}): CertManager {
  const client = new IstioCaClient({
    address: config.caAddress,
    serverName: config.caServerName,
    rootCertPath: config.caRootCertPath,
    tokenPath: config.tokenPath,
    clusterId: config.clusterId,
  });
  return new CertManager({
    client,
    ttlSec: config.secretTtlSec,
    graceRatio: config.graceRatio,
    graceRatioJitter: config.graceRatioJitter,
    keyType: config.keyType,
    rsaBits: config.rsaBits,
    log,
    ...(config.serviceAccount ? { expectedIdentity: `spiffe://${config.trustDomain}/ns/${config.namespace}/sa/${config.serviceAccount}` } : {}),
    ...overrides,
  });
}
