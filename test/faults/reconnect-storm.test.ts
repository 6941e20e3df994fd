/**
 * Reconnect storm (issue item "Reconnect storm"; reliability-security.md §9 E2, F1, F2), a smaller `npm run
 * bench:storm`: `mizzen serve` as a child process with 250 connected proxies (the benchmark's load generator, raw
 * SotW ADS streams that reopen with Envoy-like backoff) on a mesh of 100 services, killed with SIGKILL and started again
 * on the same ports.
 * - Every proxy is back on its full config, and no response any proxy got after the restart was partial: the load
 *   generator judges each one against the LDS/CDS sets and non-empty endpoints it held before (bench/storm-judge.ts).
 * - New streams are admitted within the configured rate: the server's admission counter, scraped every 200 ms, never
 *   grew by more than burst + rate × the time between two scrapes; and the storm did exceed the rate (streams were
 *   refused with RESOURCE_EXHAUSTED and reopened), so the bound was tested, not merely unchallenged.
 * - With a small maximum connection age, a connection gets a GOAWAY (max_age) and, after the grace, is closed; every
 *   proxy reopens its stream on a new connection and is full again, still without any partial response.
 * Timing asserts are one-sided with generous slack: the machine has 2 cores shared with other test files.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/proto/types.ts';
import { buildServices, namespacesOf, writeMesh } from '../../bench/mesh-config.ts';
import { freePort, killAll, type ServerProcess } from '../../bench/procs.ts';
import { AdmissionSampler, observedAdmissionRate, restartServer, startLoadgen, worstAdmissionExcess, type Loadgen, type ServerStart } from '../../bench/storm-harness.ts';
import { now } from '../../bench/ads-stream.ts';
import { ADS_SOTW_PATH, envoyNode, grpcFrame, rawGrpcCall, sotwRequest } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PROXIES = 250;
/** Low enough that 250 proxies take > 12 s to admit: their reconnects (within ~2 s of the restart) must be throttled. */
const RATE = 20;
const BURST = 1;
/** Longer than a full resync of the fleet takes even on a loaded machine: a connection must outlive one sync. */
const AGE_MS = 5000;
const GRACE_MS = 1000;

describe('reconnect storm', () => {
  const services = buildServices({ services: 100, endpointsPerService: 3, servicesPerNamespace: 20 });
  let configDir = '';
  let logDir = '';
  let xdsPort = 0;
  let monitoringPort = 0;
  let server: ServerProcess | undefined;
  let lg: Loadgen;
  const start = (name: string, args: string[]): ServerStart => ({ root: ROOT, configDir, logFile: path.join(logDir, `${name}.log`), xdsPort, monitoringPort, args });
  const failureContext = () => `server logs in ${logDir}`;

  /** Arms the load generator's judge: from now on, every response is judged and every proxy must be full again on a new stream. */
  async function arm(): Promise<void> {
    lg.send({ t: 'arm' });
    const armed = await lg.wait((m) => m.t === 'armed', 10_000, 'the load generator to arm');
    expect(armed.proxiesWithReference).toBe(PROXIES);
    // The reference is the whole mesh, not whatever the first server happened to send: a listener per service and
    // a cluster per service and subset (v1, v2).
    expect(armed.listeners[0]).toBeGreaterThanOrEqual(services.length);
    expect(armed.clusters[0]).toBeGreaterThanOrEqual(3 * services.length);
  }

  beforeAll(async () => {
    configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-storm-'));
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-storm-logs-'));
    writeMesh(configDir, services);
    xdsPort = await freePort();
    monitoringPort = await freePort();
    ({ server } = await restartServer(undefined, start('first', ['--max-new-streams-per-second', '0'])));
    lg = startLoadgen(ROOT, {
      target: `127.0.0.1:${xdsPort}`,
      proxies: PROXIES,
      mode: 'sotw',
      namespaces: namespacesOf(services),
      streamsPerChannel: 25,
      flowControlWindow: 0,
      // Envoy's base (500 ms) and max (30 s) scaled down, so the test's tail stays short.
      reconnect: { baseMs: 100, maxMs: 2000 },
    });
    await lg.wait((m) => m.t === 'ready', 30_000, 'the load generator to load its protos');
    lg.send({ t: 'start' });
    await lg.wait((m) => m.t === 'synced', 60_000, `all ${PROXIES} proxies to hold full config`);
  }, 120_000);

  afterAll(async () => {
    if (lg?.child.exitCode === null) lg.send({ t: 'stop' });
    await killAll(2000);
    fs.rmSync(configDir, { recursive: true, force: true });
    fs.rmSync(logDir, { recursive: true, force: true });
  });

  it('after a SIGKILL and restart, every proxy is back on its full config, never partial, admitted within the rate', async () => {
    await arm();
    const resynced = lg.wait((m) => m.t === 'resynced', 100_000, 'every proxy to be full again after the restart');
    const restarted = await restartServer(server, start('limited', ['--max-new-streams-per-second', String(RATE)]));
    server = restarted.server;
    const sampler = new AdmissionSampler(monitoringPort, 200, restarted.startedAt);
    let r: any;
    let samples;
    try {
      r = await resynced;
    } finally {
      samples = await sampler.stopAfter(now());
    }

    const rate = observedAdmissionRate(sampler.samples);
    const full = r.fullAgainAt as number[];
    console.log(
      `[storm] ready ${Math.round(restarted.readyAt - restarted.startedAt)} ms after spawn; all ${PROXIES} full again ${Math.round(Math.max(...full) - restarted.startedAt)} ms after spawn; ` +
        `admitted ${rate.admitted} (mean ${rate.meanPerSecond.toFixed(1)}/s, peak ${rate.peakPerSecond.toFixed(1)}/s at limit ${RATE}/s), refused ${rate.throttled}; streams ended by ${JSON.stringify(r.endedBy)}`,
    );
    // No proxy ever saw less than it held before: the first response after reconnecting, and every one after it.
    expect(r.partial, `partial responses, e.g. ${JSON.stringify(r.partialExamples)}; ${failureContext()}`).toBe(0);
    expect((r.firstResponseAt as number[]).every((t) => Number.isFinite(t) && t >= restarted.startedAt)).toBe(true);
    expect(full.every((t) => Number.isFinite(t))).toBe(true);

    // The storm exceeded the rate, and the server held it: refused streams, and never more than burst + rate × T.
    expect(rate.admitted).toBeGreaterThanOrEqual(PROXIES);
    const worst = worstAdmissionExcess(samples, RATE, BURST);
    expect(worst.excess, `${worst.admitted} streams admitted within ${Math.round(worst.windowMs)} ms at ${RATE}/s + ${BURST}`).toBeLessThanOrEqual(0);
    expect(rate.throttled, 'no stream was refused: the storm never exceeded the admission rate').toBeGreaterThan(0);
    expect(r.endedBy.RESOURCE_EXHAUSTED ?? 0).toBeGreaterThan(0);
    // Admission must not have been much slower than the rate either: 250 streams at 20/s is 12.5 s.
    expect(Math.max(...full) - restarted.readyAt).toBeLessThan(60_000);
  }, 120_000);

  it('past the maximum connection age, connections get a GOAWAY and every proxy reconnects without losing config', async () => {
    await arm();
    const back = lg.wait((m) => m.t === 'resynced', 60_000, 'every proxy to be full again after the restart');
    const restarted = await restartServer(server, start('aged', ['--max-new-streams-per-second', '0', '--max-connection-age', `${AGE_MS}ms`, '--max-connection-age-grace', `${GRACE_MS}ms`]));
    server = restarted.server;
    expect((await back).partial).toBe(0);

    // A raw HTTP/2 connection sees the GOAWAY itself: NO_ERROR with grpc-js's "max_age", no earlier than the age - 10 %.
    const probe = rawGrpcCall(xdsPort, ADS_SOTW_PATH, [grpcFrame(sotwRequest(TypeUrl.Cluster, envoyNode('goaway-probe', services[0]!.namespace)))]);
    const openedAt = Date.now();
    try {
      const goaway = await new Promise<{ code: number; data: string; at: number }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no GOAWAY within 20 s')), 20_000);
        probe.session.once('goaway', (code, _lastStreamId, data) => {
          clearTimeout(timer);
          resolve({ code, data: data?.toString() ?? '', at: Date.now() });
        });
      });
      expect(goaway.code).toBe(0);
      expect(goaway.data).toBe('max_age');
      expect(goaway.at - openedAt).toBeGreaterThanOrEqual(AGE_MS * 0.9 - 50);
      // The ADS stream outlives the GOAWAY only by the grace: then the connection is closed under it.
      await Promise.race([probe.ended, new Promise((_, reject) => setTimeout(() => reject(new Error('the stream outlived the grace by 15 s')), GRACE_MS + 15_000))]);
    } finally {
      probe.close();
    }

    // Meanwhile every proxy's connection aged out too: each reopened on a new connection and is full again.
    await arm();
    const recycled = await lg.wait((m) => m.t === 'resynced', 30_000, 'every proxy to reconnect after its connection aged out');
    console.log(`[storm] max age ${AGE_MS} ms: ${recycled.reopened} streams reopened, ended by ${JSON.stringify(recycled.endedBy)}`);
    expect(recycled.partial, `partial responses, e.g. ${JSON.stringify(recycled.partialExamples)}; ${failureContext()}`).toBe(0);
    expect(recycled.reopened).toBeGreaterThanOrEqual(PROXIES);
    expect((recycled.fullAgainAt as number[]).every((t) => Number.isFinite(t))).toBe(true);
  }, 120_000);
});
