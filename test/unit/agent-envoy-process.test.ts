/**
 * Envoy supervision (src/agent/envoy-process.ts).
 *
 * STAND-IN: no Envoy binary exists on this machine (no package registry ships one), so these tests run a small Node
 * script in its place, written below. It is NOT Envoy. It does what the supervisor relies on Envoy doing: it takes
 * Envoy's command line (and records it), reads the admin port from the `-c` bootstrap as Envoy does, serves the admin
 * endpoints the agent calls (`/stats?usedonly&filter=...` with Envoy's stat names, `/ready`, `/server_info`,
 * POST `/drain_listeners`, POST `/quitquitquit`), and exits on SIGTERM. Test-only admin endpoints (`/test/*`) move it
 * through Envoy's start-up states (config received, LIVE) and make it exit on command; env STANDIN_MODE makes it
 * crash at start. Every event is appended to a JSON-lines log the tests read. What Envoy itself does with the flags
 * (draining, worker threads, ...) is not tested here and cannot be without an Envoy.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { envoyArgs, EnvoyError, EnvoyProcess, splitComponentLog, type EnvoyOptions } from '../../src/agent/envoy-process.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { eventually } from '../support/mesh.ts';

const STANDIN = String.raw`
const fs = require('node:fs');
const http = require('node:http');
const log = (event, extra = {}) => fs.appendFileSync(process.env.STANDIN_LOG, JSON.stringify({ t: Date.now(), pid: process.pid, event, ...extra }) + '\n');
const argv = process.argv.slice(2);
log('start', { argv });
const mode = process.env.STANDIN_MODE || 'serve';
if (mode === 'crash') { log('crash'); process.exit(1); }
if (mode === 'crash-first') {
  const runs = Number(fs.existsSync(process.env.STANDIN_STATE) ? fs.readFileSync(process.env.STANDIN_STATE, 'utf8') : '0') + 1;
  fs.writeFileSync(process.env.STANDIN_STATE, String(runs));
  // (CommonJS: a top-level return ends the script; the timer keeps the process for 100 ms.)
  if (runs === 1) { log('crash'); setTimeout(() => process.exit(3), 100); return; }
}
const bootstrap = JSON.parse(fs.readFileSync(argv[argv.indexOf('-c') + 1], 'utf8'));
const adminPort = bootstrap.admin.address.socket_address.port_value;
// Envoy's start-up: PRE_INITIALIZING (2) until its initial xDS config arrives, then LIVE (0) with workers started.
const s = { cds: 0, lds: 0, state: 2, workers: 0 };
const stats = (filter) => {
  const all = { 'cluster_manager.cds.update_success': s.cds, 'cluster_manager.cds.update_rejected': 0, 'listener_manager.lds.update_success': s.lds,
    'listener_manager.lds.update_rejected': 0, 'server.state': s.state, 'listener_manager.workers_started': s.workers, 'server.live': s.state === 0 ? 1 : 0 };
  const re = new RegExp(filter || '.');
  return Object.entries(all).filter(([k]) => re.test(k)).map(([k, v]) => k + ': ' + v + '\n').join('');
};
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const key = req.method + ' ' + url.pathname;
  if (key === 'GET /stats') return res.end(stats(url.searchParams.get('filter')));
  if (key === 'GET /ready') return res.writeHead(s.state === 0 ? 200 : 503).end(s.state === 0 ? 'LIVE\n' : 'PRE_INITIALIZING\n');
  if (key === 'GET /server_info') return res.end(JSON.stringify({ state: ['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'][s.state] }));
  if (key === 'GET /stats/prometheus') return res.end('# TYPE envoy_server_live gauge\nenvoy_server_live{} ' + (s.state === 0 ? 1 : 0) + '\n');
  if (key === 'POST /drain_listeners') { log('drain', { url: req.url }); s.state = 1; return res.end('OK\n'); }
  if (key === 'POST /quitquitquit') { log('quit'); res.end('OK\n'); return setTimeout(() => process.exit(0), 10); }
  if (key === 'POST /test/config') { s.cds = 1; s.lds = 1; return res.end('OK\n'); }
  if (key === 'POST /test/live') { s.state = 0; s.workers = 1; return res.end('OK\n'); }
  if (key === 'POST /test/exit') { log('exit-on-command'); res.end('OK\n'); return setTimeout(() => process.exit(Number(url.searchParams.get('code') || 1)), 10); }
  res.writeHead(404).end();
});
server.listen(adminPort, '127.0.0.1', () => log('admin-listening', { port: adminPort }));
process.on('SIGTERM', () => {
  log('SIGTERM');
  if (process.env.STANDIN_IGNORE_TERM) return;
  process.exit(0);
});
`;

interface Event {
  t: number;
  pid: number;
  event: string;
  argv?: string[];
  url?: string;
}

let dir = '';
let standin = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-envoy-'));
  standin = path.join(dir, 'envoy');
  fs.writeFileSync(standin, `#!${process.execPath}\n${STANDIN}`, { mode: 0o755 });
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const running: EnvoyProcess[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A supervised stand-in with its own log, bootstrap and admin port. */
async function supervised(options: Partial<EnvoyOptions> & { mode?: string; ignoreTerm?: boolean } = {}) {
  const run = fs.mkdtempSync(path.join(dir, 'run-'));
  const adminPort = await freePort();
  const bootstrap = path.join(run, 'envoy-rev.json');
  fs.writeFileSync(bootstrap, JSON.stringify({ admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } } }));
  const logFile = path.join(run, 'events.jsonl');
  const { mode, ignoreTerm, ...rest } = options;
  const envoy = new EnvoyProcess({
    binary: standin,
    configPath: bootstrap,
    adminPort,
    log: silentLogger,
    stdio: 'ignore',
    env: { ...process.env, STANDIN_LOG: logFile, STANDIN_MODE: mode ?? 'serve', STANDIN_STATE: path.join(run, 'state'), ...(ignoreTerm ? { STANDIN_IGNORE_TERM: '1' } : {}) },
    restart: { initialBackoffMs: 200, maxBackoffMs: 2000, minUptimeMs: 3000, maxFastFailures: 3 },
    ...rest,
  });
  running.push(envoy);
  const events = (): Event[] =>
    fs.existsSync(logFile)
      ? fs
          .readFileSync(logFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Event)
      : [];
  const admin = (p: string) => fetch(`http://127.0.0.1:${adminPort}${p}`, { method: 'POST' });
  const listening = (n = 1) => eventually(() => events().filter((e) => e.event === 'admin-listening').length >= n, 10_000, `stand-in admin #${n}`);
  return { envoy, events, admin, listening, bootstrap };
}

describe('the Envoy command line', () => {
  it("is istio-agent's, in its order", () => {
    expect(envoyArgs({ configPath: '/etc/istio/proxy/envoy-rev.json', drainDurationSec: 45, logLevel: 'warning', componentLogLevel: 'misc:error' })).toEqual([
      '-c', '/etc/istio/proxy/envoy-rev.json',
      '--drain-time-s', '45',
      '--drain-strategy', 'immediate',
      '--local-address-ip-version', 'v4',
      '--file-flush-interval-msec', '1000',
      '--disable-hot-restart',
      '--allow-unknown-static-fields',
      '-l', 'warning',
      '--component-log-level', 'misc:error',
    ]); // prettier-ignore
  });

  it('splits component levels out of the log level, and adds v6, an override and concurrency when set', () => {
    expect(splitComponentLog('info,misc:error,upstream:debug')).toEqual({ level: 'info', components: ['misc:error', 'upstream:debug'] });
    const args = envoyArgs({ configPath: 'b.json', drainDurationSec: 10, logLevel: 'info,upstream:debug', componentLogLevel: 'misc:error', ipv6: true, concurrency: 2, configOverride: '{"a":1}' });
    expect(args.slice(6, 8)).toEqual(['--local-address-ip-version', 'v6']);
    expect(args.slice(args.indexOf('-l'))).toEqual(['-l', 'info', '--component-log-level', 'upstream:debug', '--config-yaml', '{"a":1}', '--concurrency', '2']);
    expect(args[3]).toBe('10');
  });

  it('is what the process receives', async () => {
    const { envoy, events, listening, bootstrap } = await supervised({ drainDurationSec: 30 });
    await envoy.start();
    await listening();
    expect(events()[0]!.argv).toEqual(envoyArgs({ configPath: bootstrap, drainDurationSec: 30 }));
    expect(events()[0]!.argv).toContain('--disable-hot-restart');
    expect(envoy.pid).toBe(events()[0]!.pid);
  });
});

describe('a missing or unusable binary', () => {
  it('fails start with a clear message that names the path and the setting', async () => {
    const envoy = new EnvoyProcess({ binary: path.join(dir, 'no-such-envoy'), configPath: 'x.json', log: silentLogger });
    const err = await envoy.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EnvoyError);
    expect((err as EnvoyError).reason).toBe('binary-missing');
    expect((err as Error).message).toMatch(/envoy binary not found at .*no-such-envoy: set ENVOY_BINARY/);
    expect(await envoy.done).toMatchObject({ kind: 'failed' });
  });

  it('refuses a file that is not executable', async () => {
    const file = path.join(dir, 'not-executable');
    fs.writeFileSync(file, 'x', { mode: 0o644 });
    const envoy = new EnvoyProcess({ binary: file, configPath: 'x.json', log: silentLogger });
    await expect(envoy.start()).rejects.toMatchObject({ reason: 'binary-not-executable' });
  });
});

describe('crashes', () => {
  it('restarts Envoy after a crash, after the backoff', async () => {
    const { envoy, events, listening } = await supervised({ mode: 'crash-first' });
    await envoy.start();
    await listening();
    const ev = events();
    const starts = ev.filter((e) => e.event === 'start');
    expect(starts).toHaveLength(2);
    expect(ev.some((e) => e.event === 'crash')).toBe(true);
    // The first run exits 100 ms after start; the restart waits at least initialBackoffMs (200) after that.
    expect(starts[1]!.t - starts[0]!.t).toBeGreaterThanOrEqual(290);
    expect(envoy.epochs).toBe(2);
    expect(envoy.running).toBe(true);
  });

  it('restarts an Envoy that dies after running, and its readiness must be proven again', async () => {
    const { envoy, admin, listening } = await supervised();
    await envoy.start();
    await listening();
    await admin('/test/config');
    await admin('/test/live');
    expect(await envoy.check()).toEqual({ ready: true });
    await admin('/test/exit?code=1');
    await listening(2);
    expect(envoy.epochs).toBe(2);
    expect((await envoy.check()).ready).toBe(false);
    await admin('/test/config');
    await admin('/test/live');
    expect(await envoy.check()).toEqual({ ready: true });
  });

  it('gives up after N fast failures in a row, with backoff growing between them and a clear error', async () => {
    const { envoy, events } = await supervised({ mode: 'crash' });
    await envoy.start();
    const outcome = await envoy.done;
    expect(outcome.kind).toBe('failed');
    const error = (outcome as { error: EnvoyError }).error;
    expect(error.reason).toBe('crash-loop');
    expect(error.message).toMatch(/exited 3 times in a row within 3000 ms of starting \(last: exit code 1\); giving up/);
    const starts = events().filter((e) => e.event === 'start');
    expect(starts).toHaveLength(3);
    const gap1 = starts[1]!.t - starts[0]!.t;
    const gap2 = starts[2]!.t - starts[1]!.t;
    expect(gap1).toBeGreaterThanOrEqual(190); // 200 ms
    expect(gap2).toBeGreaterThanOrEqual(390); // 400 ms: doubled
    expect(envoy.running).toBe(false);
  });
});

describe('readiness', () => {
  it('is true only when the stand-in reports initial config, LIVE and workers started', async () => {
    const { envoy, admin, listening } = await supervised();
    expect(await envoy.check()).toMatchObject({ ready: false, reason: 'envoy is starting' });
    await envoy.start();
    await listening();
    expect(await envoy.check()).toMatchObject({ ready: false, reason: expect.stringMatching(/config not received from the control plane: cds updates: 0 successful/) });
    await admin('/test/config');
    expect(await envoy.check()).toMatchObject({ ready: false, reason: 'server is not live, current state is: PRE_INITIALIZING' });
    await admin('/test/live');
    expect(await envoy.check()).toEqual({ ready: true });
  });
});

describe('termination', () => {
  it('drains (inbound listeners, graceful), waits terminationDrainDuration, then stops Envoy — no restart', async () => {
    const { envoy, events, listening } = await supervised({ terminationDrainMs: 600 });
    await envoy.start();
    await listening();
    const outcome = await envoy.shutdown();
    expect(outcome).toEqual({ kind: 'stopped' });
    const ev = events();
    const drain = ev.find((e) => e.event === 'drain')!;
    const term = ev.find((e) => e.event === 'SIGTERM')!;
    expect(drain.url).toBe('/drain_listeners?inboundonly&graceful');
    expect(term.t - drain.t).toBeGreaterThanOrEqual(550);
    await new Promise((r) => setTimeout(r, 400)); // longer than the restart backoff
    expect(events().filter((e) => e.event === 'start')).toHaveLength(1);
    expect(envoy.running).toBe(false);
  });

  it('drains all listeners of a gateway', async () => {
    const { envoy, events, listening } = await supervised({ terminationDrainMs: 50, proxyType: 'router' });
    await envoy.start();
    await listening();
    await envoy.shutdown();
    expect(events().find((e) => e.event === 'drain')!.url).toBe('/drain_listeners?graceful');
  });

  it('does not wait out the drain period when Envoy exits by itself', async () => {
    const { envoy, admin, listening } = await supervised({ terminationDrainMs: 10_000 });
    await envoy.start();
    await listening();
    const start = performance.now();
    const shutdown = envoy.shutdown();
    await eventually(async () => (await admin('/quitquitquit').catch(() => undefined)) !== undefined, 5000, 'quit');
    expect(await shutdown).toEqual({ kind: 'stopped' });
    expect(performance.now() - start).toBeLessThan(5000);
  });

  it('kills an Envoy that ignores SIGTERM after the grace period', async () => {
    const { envoy, events, listening } = await supervised({ ignoreTerm: true, killGraceMs: 300 });
    await envoy.start();
    await listening();
    const start = performance.now();
    expect(await envoy.stop()).toEqual({ kind: 'stopped' });
    expect(performance.now() - start).toBeGreaterThanOrEqual(280);
    expect(events().some((e) => e.event === 'SIGTERM')).toBe(true);
    expect(envoy.running).toBe(false);
  });
});
