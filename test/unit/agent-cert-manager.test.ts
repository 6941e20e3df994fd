/**
 * The agent's certificate manager (src/agent/cert-manager.ts) on a fake clock, against a real signer behind a fake CA
 * client: renewal at 0.5 ± 0.01 of the lifetime, the backoff schedule (500 ms × 1.5ⁿ ± 50 %, capped at 60 s, never
 * giving up), keeping the old certificate through a CA outage and past its expiry, change events, and what the
 * issued secret holds.
 */
import crypto, { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BACKOFF, backoffDelay, CertManager, renewalDelay, secretFromResponse, type CaClient, type WorkloadSecret } from '../../src/agent/cert-manager.ts';
import { CaKeyCertBundle } from '../../src/ca/bundle.ts';
import { createCsr, parseCsr } from '../../src/ca/csr.ts';
import { newSelfSignedMaterial } from '../../src/ca/init.ts';
import { CertificateAuthority } from '../../src/ca/sign.ts';
import type { Clock, Timer } from '../../src/shared/clock.ts';
import { createLogger } from '../../src/shared/log.ts';

const ID = 'spiffe://cluster.local/ns/shop/sa/inventory';

interface FakeTimer extends Timer {
  at: number;
  ms: number;
  fn: () => void;
}

class FakeClock implements Clock {
  t = Date.now();
  timers: FakeTimer[] = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): Timer {
    const timer: FakeTimer = { at: this.t + ms, ms, fn };
    this.timers.push(timer);
    return timer;
  }
  clearTimeout(timer: Timer): void {
    this.timers = this.timers.filter((t) => t !== timer);
  }
  /** Moves time to the next timer and runs it. */
  fireNext(): FakeTimer {
    const next = [...this.timers].sort((a, b) => a.at - b.at)[0];
    if (!next) throw new Error('no timer pending');
    this.clearTimeout(next);
    this.t = Math.max(this.t, next.at);
    next.fn();
    return next;
  }
}

/** A CA client that signs with a real CertificateAuthority, or fails while `down`. */
class FakeCa implements CaClient {
  calls = 0;
  down = false;
  readonly requestedTtls: number[] = [];
  readonly ca: CertificateAuthority;
  constructor(clock: FakeClock) {
    this.ca = new CertificateAuthority(CaKeyCertBundle.load(newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: 'ec' })), { now: () => clock.now() });
  }
  async createCertificate(csrPem: string, ttlSec: number): Promise<string[]> {
    this.calls++;
    this.requestedTtls.push(ttlSec);
    if (this.down) throw new Error('CreateCertificate at ca:15012: UNAVAILABLE: connect ECONNREFUSED');
    return this.ca.signCsr(parseCsr(csrPem), [ID], ttlSec).chain;
  }
}

/** Waits (in real time) until the manager has finished its attempt, i.e. armed its next timer. */
async function settled(clock: FakeClock, count = 1): Promise<FakeTimer> {
  const end = Date.now() + 10_000;
  // Let the attempt's promise chain finish even when its timer is already armed.
  await new Promise((r) => setImmediate(r));
  while (clock.timers.length < count) {
    if (Date.now() > end) throw new Error('the manager never scheduled its next attempt');
    await new Promise((r) => setTimeout(r, 2));
  }
  return clock.timers[clock.timers.length - 1]!;
}

const logLines: string[] = [];
const log = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  }),
});

describe('backoff and renewal schedule', () => {
  it('backoff: 500 ms × 1.5ⁿ, ±50 % at random, capped at 60 s, for as many attempts as it takes', () => {
    const mid = () => 0.5;
    const bases = Array.from({ length: 14 }, (_, i) => backoffDelay(i, mid));
    expect(bases.slice(0, 6)).toEqual([500, 750, 1125, 1688, 2531, 3797]);
    expect(bases.at(-1)).toBe(60_000);
    expect(backoffDelay(1000, mid)).toBe(60_000);
    // The randomization spreads a fleet: [0.5, 1.5] × the interval, never above the cap.
    expect(backoffDelay(0, () => 0)).toBe(250);
    expect(backoffDelay(0, () => 0.999999)).toBe(750);
    expect(backoffDelay(30, () => 0)).toBe(30_000);
    expect(backoffDelay(30, () => 0.999999)).toBe(60_000);
    expect(AGENT_BACKOFF).toEqual({ initialMs: 500, maxMs: 60_000, multiplier: 1.5, randomization: 0.5 });
  });

  it('renewal at (0.5 ± 0.01) of the lifetime, counted from receipt', () => {
    const fetchedAt = 1_000_000;
    const secret = { fetchedAt, notAfter: new Date(fetchedAt + 24 * 3600_000) };
    // random() < 0.5 picks the minus side; the second draw scales the jitter.
    const seq = (...v: number[]) => () => v.shift()!;
    expect(renewalDelay(secret, fetchedAt, 0.5, 0.01, seq(0.9, 0))).toBe(12 * 3600_000);
    expect(renewalDelay(secret, fetchedAt, 0.5, 0.01, seq(0.9, 1))).toBe(Math.round(24 * 3600_000 * 0.49)); // ratio 0.51: earlier
    expect(renewalDelay(secret, fetchedAt, 0.5, 0.01, seq(0.1, 1))).toBe(Math.round(24 * 3600_000 * 0.51)); // ratio 0.49: later
    // The jitter is ~15 minutes either way on 24 h.
    for (let i = 0; i < 200; i++) {
      const d = renewalDelay(secret, fetchedAt, 0.5, 0.01, Math.random);
      expect(Math.abs(d - 12 * 3600_000)).toBeLessThanOrEqual(0.01 * 24 * 3600_000 + 1);
    }
    // Already past the renewal point (e.g. after a long outage): now.
    expect(renewalDelay(secret, fetchedAt + 20 * 3600_000, 0.5, 0.01, Math.random)).toBe(0);
  });
});

describe('CertManager', () => {
  let clock: FakeClock;
  let ca: FakeCa;
  let manager: CertManager | undefined;
  beforeAll(() => {
    logLines.length = 0;
  });
  afterEach(() => {
    manager?.stop();
    manager = undefined;
    // Never a key or a token in the log.
    expect(logLines.join('')).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE|Bearer/);
  });

  function start(options: { ttlSec?: number; random?: () => number; keyType?: 'rsa' | 'ec' } = {}): CertManager {
    clock = new FakeClock();
    ca = new FakeCa(clock);
    manager = new CertManager({
      client: ca,
      ttlSec: options.ttlSec ?? 24 * 3600,
      graceRatio: 0.5,
      graceRatioJitter: 0.01,
      keyType: options.keyType ?? 'ec',
      log,
      clock,
      random: options.random ?? (() => 0.5),
      expectedIdentity: ID,
    });
    manager.start();
    return manager;
  }

  it('gets a certificate for the caller\'s identity, with a fresh key, and schedules renewal at half-life', async () => {
    const m = start({ random: () => 0.5 });
    const changes: WorkloadSecret[] = [];
    m.onChange((s) => changes.push(s));
    const secret = await m.whenReady();
    expect(ca.requestedTtls).toEqual([86400]);
    expect(secret.identity).toBe(ID);
    const leaf = new X509Certificate(secret.certChainPem);
    expect(leaf.checkPrivateKey(crypto.createPrivateKey(secret.privateKeyPem))).toBe(true);
    expect(leaf.verify(new X509Certificate(secret.rootCertPem).publicKey)).toBe(true);
    expect(secret.privateKeyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    expect(secret.rootCertPem).toBe(ca.ca.trustBundle().join(''));
    expect(changes).toEqual([secret]);
    const renewal = await settled(clock);
    // random 0.5 → the plus side with jitter 0.005: ratio 0.505.
    const lifetime = secret.notAfter.getTime() - secret.fetchedAt;
    expect(renewal.ms).toBe(Math.round(secret.notAfter.getTime() - 0.505 * lifetime - clock.t));
    expect(Math.abs(renewal.ms - 86400_000 * 0.495)).toBeLessThan(1000);
    expect(m.status()).toMatchObject({ state: 'valid', identity: ID, failures: 0, nextAttemptAt: clock.t + renewal.ms });

    // At the renewal point: a new key and certificate, and a change event.
    clock.fireNext();
    await settled(clock);
    expect(ca.calls).toBe(2);
    expect(changes).toHaveLength(2);
    expect(changes[1]!.serialNumber).not.toBe(secret.serialNumber);
    expect(changes[1]!.privateKeyPem).not.toBe(secret.privateKeyPem);
    expect(m.current()).toBe(changes[1]);
  });

  it('RSA-2048 by default (ECC_SIGNATURE_ALGORITHM unset)', async () => {
    const m = start({ keyType: 'rsa' });
    const secret = await m.whenReady();
    const key = crypto.createPrivateKey(secret.privateKeyPem);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(secret.privateKeyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
  });

  it('CA outage: retries with backoff, keeps serving the old certificate, past expiry, and recovers', async () => {
    const m = start({ ttlSec: 3600, random: () => 0.5 });
    const first = await m.whenReady();
    const changes: WorkloadSecret[] = [];
    m.onChange((s) => changes.push(s));
    await settled(clock);

    ca.down = true;
    clock.fireNext(); // the renewal, into an outage
    const delays: number[] = [];
    for (let i = 0; i < 16; i++) {
      delays.push((await settled(clock)).ms);
      expect(m.current()).toBe(first);
      if (i < 15) clock.fireNext();
    }
    expect(delays.slice(0, 5)).toEqual([500, 750, 1125, 1688, 2531]);
    expect(delays.slice(-3)).toEqual([60_000, 60_000, 60_000]);
    expect(m.status()).toMatchObject({ state: 'valid', failures: 16 });
    expect(m.status().lastError).toMatch(/UNAVAILABLE/);
    expect(changes).toEqual([]);
    expect(logLines.join('')).toMatch(/certificate renewal failed; keeping the current certificate/);

    // Still down when the certificate expires: it is still what the agent holds (nothing better to give Envoy),
    // the status says expired, and the retries never stop.
    while (clock.t < first.notAfter.getTime() + 1) {
      clock.fireNext();
      await settled(clock);
    }
    expect(m.status().state).toBe('expired');
    expect(m.current()).toBe(first);
    expect(logLines.join('')).toMatch(/EXPIRED/);

    ca.down = false;
    const calls = ca.calls;
    clock.fireNext();
    await settled(clock);
    expect(ca.calls).toBe(calls + 1);
    expect(changes).toHaveLength(1);
    expect(m.status()).toMatchObject({ state: 'valid', failures: 0 });
    expect(m.status().lastError).toBeUndefined();
    // Back on the renewal schedule, and the next failure starts the backoff from 500 ms again.
    const renewed = changes[0]!;
    expect(clock.timers[0]!.ms).toBe(Math.round(renewed.notAfter.getTime() - 0.505 * (renewed.notAfter.getTime() - renewed.fetchedAt) - clock.t));
    ca.down = true;
    clock.fireNext();
    expect((await settled(clock)).ms).toBe(500);
  });

  it('first fetch failing: retries until the CA answers; whenReady waits for it', async () => {
    clock = new FakeClock();
    ca = new FakeCa(clock);
    ca.down = true;
    manager = new CertManager({ client: ca, ttlSec: 3600, graceRatio: 0.5, graceRatioJitter: 0.01, keyType: 'ec', log, clock, random: () => 0.5 });
    const ready = manager.whenReady();
    manager.start();
    await settled(clock);
    expect(manager.status()).toMatchObject({ state: 'pending', failures: 1 });
    clock.fireNext();
    await settled(clock);
    ca.down = false;
    clock.fireNext();
    const secret = await ready;
    expect(secret.identity).toBe(ID);
    expect(ca.calls).toBe(3);
  });

  it('a 90-day certificate\'s renewal is reached through timers no longer than setTimeout allows', async () => {
    const m = start({ ttlSec: 90 * 24 * 3600, random: () => 0.5 });
    const secret = await m.whenReady();
    const t = await settled(clock);
    expect(t.ms).toBe(2 ** 31 - 1);
    const due = m.status().nextAttemptAt!;
    expect(due).toBe(Math.round(secret.notAfter.getTime() - 0.505 * (secret.notAfter.getTime() - secret.fetchedAt)));
    let hops = 0;
    while (ca.calls === 1) {
      clock.fireNext();
      hops++;
      await settled(clock);
    }
    expect(hops).toBe(2);
    expect(clock.t).toBe(due);
  });

  it('renewNow renews at once; stop ends the schedule', async () => {
    const m = start();
    const first = await m.whenReady();
    await settled(clock);
    await m.renewNow();
    expect(m.current()!.serialNumber).not.toBe(first.serialNumber);
    expect(clock.timers).toHaveLength(1);
    m.stop();
    expect(clock.timers).toHaveLength(0);
  });

  it('a certificate that arrives already expired (clock skew) is a failure, retried on the backoff', async () => {
    clock = new FakeClock();
    ca = new FakeCa(clock);
    const skewed = new CertificateAuthority(ca.ca.bundle, { now: () => clock.now() - 2 * 3600_000 });
    const client: CaClient = { createCertificate: async (csr, ttl) => skewed.signCsr(parseCsr(csr), [ID], ttl).chain };
    manager = new CertManager({ client, ttlSec: 3600, graceRatio: 0.5, graceRatioJitter: 0.01, keyType: 'ec', log, clock, random: () => 0.5 });
    manager.start();
    expect((await settled(clock)).ms).toBe(500);
    expect(manager.status()).toMatchObject({ state: 'pending', failures: 1 });
    expect(manager.status().lastError).toMatch(/clock skew/);
  });

  it('refuses a response it cannot use', () => {
    const clockNow = new FakeClock();
    const signer = new FakeCa(clockNow).ca;
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const csr = (k: crypto.KeyObject) => parseCsr(createCsr(k));
    const chain = signer.signCsr(csr(key), [ID], 3600).chain;
    expect(secretFromResponse(chain, key, 0).identity).toBe(ID);
    expect(() => secretFromResponse(chain, other, 0)).toThrow(/does not match our private key/);
    expect(() => secretFromResponse(chain.slice(0, 1), key, 0)).toThrow(/1 certificate/);
    const foreignRoot = new FakeCa(clockNow).ca.trustBundle().join('');
    expect(() => secretFromResponse([chain[0]!, foreignRoot], key, 0)).toThrow(/root bundle/);
  });
});
