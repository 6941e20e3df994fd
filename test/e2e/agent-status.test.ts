/**
 * The agent's status port end to end: the status server (15020) in front of real apps on loopback, then the whole
 * agent (`startAgent`, and `mizzen agent` as a process) with Envoy supervised.
 *
 * STAND-IN: no Envoy binary exists on this machine (no package registry ships one). Where the agent needs Envoy, a
 * small Node script stands in for it (written below). It is NOT Envoy: it records its command line and the admin
 * calls it receives, serves the admin endpoints the agent reads (`/stats?usedonly&filter=...` with Envoy's stat
 * names, `/stats/prometheus`, POST `/drain_listeners`), exits on SIGTERM, and turns "ready" (initial config received,
 * LIVE, workers started) only when the test says so (POST /test/ready). The admin port comes from the bootstrap's
 * `admin` block, as in Envoy, unless STANDIN_ADMIN_PORT overrides it (the generated bootstrap always says 15000).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAppProbers } from '../../src/agent/probes.ts';
import { startStatusServer, type StatusServer } from '../../src/agent/status-server.ts';
import { resolveAgentOptions, startAgent } from '../../src/app/agent.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { eventually } from '../support/mesh.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

const STANDIN = String.raw`
const fs = require('node:fs');
const http = require('node:http');
const log = (event, extra = {}) => fs.appendFileSync(process.env.STANDIN_LOG, JSON.stringify({ t: Date.now(), event, ...extra }) + '\n');
const argv = process.argv.slice(2);
log('start', { argv });
const bootstrap = JSON.parse(fs.readFileSync(argv[argv.indexOf('-c') + 1], 'utf8'));
const port = Number(process.env.STANDIN_ADMIN_PORT || bootstrap.admin.address.socket_address.port_value);
let ready = false;
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const key = req.method + ' ' + url.pathname;
  if (key === 'GET /stats') {
    const all = { 'cluster_manager.cds.update_success': ready ? 1 : 0, 'listener_manager.lds.update_success': ready ? 1 : 0, 'server.state': ready ? 0 : 2, 'listener_manager.workers_started': ready ? 1 : 0 };
    const re = new RegExp(url.searchParams.get('filter') || '.');
    return res.end(Object.entries(all).filter(([k]) => re.test(k)).map(([k, v]) => k + ': ' + v + '\n').join(''));
  }
  if (key === 'GET /stats/prometheus') return res.end('# TYPE envoy_server_live gauge\nenvoy_server_live{} ' + (ready ? 1 : 0) + '\n');
  if (key === 'POST /drain_listeners') { log('drain', { url: req.url }); return res.end('OK\n'); }
  if (key === 'POST /test/ready') { ready = true; return res.end('OK\n'); }
  res.writeHead(404).end();
}).listen(port, '127.0.0.1', () => log('admin-listening', { port }));
process.on('SIGTERM', () => { log('SIGTERM'); process.exit(0); });
`;

interface Event {
  t: number;
  event: string;
  argv?: string[];
  url?: string;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The app: readiness that can be switched off, a TCP port, and OpenMetrics on /metrics. */
let appPort = 0;
let appHealthy = true;
const app = http.createServer((req, res) => {
  if (req.url === '/ready') return void res.writeHead(appHealthy ? 200 : 503).end(appHealthy ? 'ready' : 'warming up');
  if (req.url === '/metrics') {
    return void res.writeHead(200, { 'content-type': 'application/openmetrics-text; version=1.0.0; charset=utf-8' }).end('# TYPE app_requests counter\napp_requests_total 7\n# EOF\n');
  }
  res.writeHead(404).end();
});

let dir = '';
let standin = '';
beforeAll(async () => {
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as net.AddressInfo).port;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-agent-'));
  standin = path.join(dir, 'envoy');
  fs.writeFileSync(standin, `#!${process.execPath}\n${STANDIN}`, { mode: 0o755 });
});
afterAll(() => {
  app.closeAllConnections();
  app.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const probersJson = () =>
  JSON.stringify({
    '/app-health/app/readyz': { httpGet: { path: '/ready', port: appPort, scheme: 'HTTP' }, timeoutSeconds: 1 },
    '/app-health/app/livez': { tcpSocket: { port: appPort }, timeoutSeconds: 1 },
  });

const readEvents = (file: string): Event[] =>
  fs.existsSync(file)
    ? fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Event)
    : [];

describe('status server (15020) in front of a real app', () => {
  let server: StatusServer;
  let ready = false;
  let quits = 0;
  let envoyStats: http.Server;
  beforeAll(async () => {
    envoyStats = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`# TYPE envoy_cluster_upstream_rq counter\nenvoy_cluster_upstream_rq{q="${req.url}"} 3\n`));
    await new Promise<void>((r) => envoyStats.listen(0, '127.0.0.1', r));
    const probers = parseAppProbers(probersJson());
    if (!probers.ok) throw new Error(probers.errors.join());
    server = await startStatusServer({
      host: '127.0.0.1',
      port: 0,
      probers: probers.value,
      probeTarget: { host: '127.0.0.1' },
      readiness: [{ name: 'envoy', check: async () => (ready ? { ready: true } : { ready: false, reason: 'config not received' }) }],
      envoyStatsUrl: `http://127.0.0.1:${(envoyStats.address() as net.AddressInfo).port}/stats/prometheus`,
      appMetrics: { port: appPort, path: '/metrics' },
      appMetricsHost: '127.0.0.1',
      onQuit: () => quits++,
      log: silentLogger,
    });
  });
  afterAll(async () => {
    await server.close();
    envoyStats.close();
  });
  const get = (p: string) => fetch(`http://127.0.0.1:${server.port}${p}`);

  it('/app-health/app/readyz answers with the app: 200 when ready, its 503 when not', async () => {
    appHealthy = true;
    const ok = await get('/app-health/app/readyz');
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('ready');
    appHealthy = false;
    const bad = await get('/app-health/app/readyz');
    expect(bad.status).toBe(503);
    expect(await bad.text()).toBe('warming up');
    appHealthy = true;
  });

  it('a tcpSocket prober answers on livez; an unknown prober path is a 400', async () => {
    expect((await get('/app-health/app/livez')).status).toBe(200);
    const unknown = await get('/app-health/other/readyz');
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toMatch(/app prober config does not exists for \/app-health\/other\/readyz/);
  });

  it('/healthz/ready follows the readiness probes', async () => {
    ready = false;
    const no = await get('/healthz/ready');
    expect(no.status).toBe(503);
    expect(await no.text()).toBe('envoy: config not received\n');
    ready = true;
    expect((await get('/healthz/ready')).status).toBe(200);
  });

  it('/stats/prometheus merges agent, Envoy (query passed on) and app metrics, app last, in the app format', async () => {
    const res = await get('/stats/prometheus?usedonly');
    expect(res.headers.get('content-type')).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    const text = await res.text();
    const agentAt = text.indexOf('istio_agent_scrapes_total');
    const envoyAt = text.indexOf('envoy_cluster_upstream_rq{q="/stats/prometheus?usedonly"} 3');
    const appAt = text.indexOf('app_requests_total 7');
    expect(agentAt).toBeGreaterThanOrEqual(0);
    expect(envoyAt).toBeGreaterThan(agentAt);
    expect(appAt).toBeGreaterThan(envoyAt);
    expect(text.trimEnd().endsWith('# EOF')).toBe(true);
  });

  it('POST /quitquitquit from loopback reaches the agent', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/quitquitquit`, { method: 'POST' });
    expect(res.status).toBe(200);
    await eventually(() => quits === 1, 2000, 'quit');
  });
});

describe('the whole agent with Envoy supervised', () => {
  it('is ready only once Envoy is, serves the rewritten probes and merged stats, and drains on shutdown', async () => {
    const cwd = fs.mkdtempSync(path.join(dir, 'pod-'));
    const adminPort = await freePort();
    const logFile = path.join(cwd, 'events.jsonl');
    // The stand-in inherits the agent's environment, as Envoy does.
    process.env.STANDIN_LOG = logFile;
    process.env.STANDIN_ADMIN_PORT = String(adminPort);
    const env = {
      POD_NAME: 'web-0',
      POD_NAMESPACE: 'shop',
      INSTANCE_IP: '127.0.0.1',
      SERVICE_ACCOUNT: 'web',
      ENVOY_BINARY: standin,
      PROXY_CONFIG: JSON.stringify({ terminationDrainDuration: '0.5s', drainDuration: '12s', proxyAdminPort: adminPort }),
      ISTIO_KUBE_APP_PROBERS: probersJson(),
      ISTIO_PROMETHEUS_ANNOTATIONS: JSON.stringify({ scrape: 'true', port: String(appPort), path: '/metrics' }),
    };
    const resolved = resolveAgentOptions(env, { statusPort: 0, domain: 'shop.svc.cluster.local' }, cwd, silentLogger);
    if (!resolved.ok) throw new Error(resolved.errors.join('\n'));
    expect(resolved.value.terminationDrainMs).toBe(500);
    expect(resolved.value.probeLocalAddress).toBe('127.0.0.6');
    // No CA here: the identity half (certificates, SDS) is left out; see agent-envoy-process.test.ts for Envoy alone.
    const agent = await startAgent({ ...resolved.value, components: { identity: () => [] } });
    const get = (p: string) => fetch(`http://127.0.0.1:${agent.statusPort}${p}`);
    try {
      // The bootstrap the agent wrote, and the command line Envoy got.
      const bootstrapFile = path.join(cwd, 'etc/istio/proxy/envoy-rev.json');
      const bootstrap = JSON.parse(fs.readFileSync(bootstrapFile, 'utf8')) as { node: { id: string }; static_resources: { clusters: Array<{ name: string; load_assignment: unknown }> } };
      expect(bootstrap.node.id).toBe('sidecar~127.0.0.1~web-0.shop~shop.svc.cluster.local');
      expect(JSON.stringify(bootstrap.static_resources.clusters.find((c) => c.name === 'agent'))).toContain('15020');
      await eventually(() => readEvents(logFile).some((e) => e.event === 'admin-listening'), 10_000, 'stand-in admin');
      expect(readEvents(logFile)[0]!.argv!.slice(0, 4)).toEqual(['-c', bootstrapFile, '--drain-time-s', '12']);

      const notReady = await get('/healthz/ready');
      expect(notReady.status).toBe(503);
      expect(await notReady.text()).toMatch(/^envoy: config not received from the control plane/);
      await fetch(`http://127.0.0.1:${adminPort}/test/ready`, { method: 'POST' });
      expect((await get('/healthz/ready')).status).toBe(200);

      // Probes go to INSTANCE_IP from 127.0.0.6, as istio-agent's do.
      expect((await get('/app-health/app/readyz')).status).toBe(200);
      const stats = await (await get('/stats/prometheus')).text();
      expect(stats).toContain('envoy_server_live{} 1');
      expect(stats).toContain('app_requests_total 7');
    } finally {
      await agent.shutdown('test');
      delete process.env.STANDIN_LOG;
      delete process.env.STANDIN_ADMIN_PORT;
    }
    expect(await agent.done).toEqual({ code: 0 });
    const events = readEvents(logFile);
    const drain = events.find((e) => e.event === 'drain')!;
    const term = events.find((e) => e.event === 'SIGTERM')!;
    expect(drain.url).toBe('/drain_listeners?inboundonly&graceful');
    expect(term.t - drain.t).toBeGreaterThanOrEqual(450);
    await expect(fetch(`http://127.0.0.1:${agent.statusPort}/healthz/ready`)).rejects.toThrow();
  });
});

describe('the whole agent in proxyless mode', () => {
  it('starts no Envoy, writes the gRPC bootstrap, and is not ready until the certificate files exist', async () => {
    const cwd = fs.mkdtempSync(path.join(dir, 'proxyless-'));
    const env = {
      POD_NAME: 'api-0',
      POD_NAMESPACE: 'shop',
      INSTANCE_IP: '127.0.0.1',
      DISABLE_ENVOY: 'true',
      OUTPUT_CERTS: './var/lib/istio/data',
      GRPC_XDS_BOOTSTRAP: './etc/istio/proxy/grpc-bootstrap.json',
      CA_ADDR: `127.0.0.1:${await freePort()}`, // no CA: the certificate never arrives
      ENVOY_BINARY: path.join(cwd, 'no-envoy'), // not needed, so not checked
    };
    const resolved = resolveAgentOptions(env, { statusPort: 0 }, cwd, silentLogger);
    if (!resolved.ok) throw new Error(resolved.errors.join('\n'));
    const agent = await startAgent(resolved.value);
    try {
      expect(agent.envoy).toBeUndefined();
      expect(fs.existsSync(path.join(cwd, 'etc/istio/proxy/grpc-bootstrap.json'))).toBe(true);
      const res = await fetch(`http://127.0.0.1:${agent.statusPort}/healthz/ready`);
      expect(res.status).toBe(503);
      expect(await res.text()).toBe(`grpc: ${path.join(cwd, 'var/lib/istio/data/key.pem')} does not exist\n`);
      const stats = await (await fetch(`http://127.0.0.1:${agent.statusPort}/stats/prometheus`)).text();
      expect(stats).toContain('istio_agent_scrapes_total');
    } finally {
      await agent.shutdown('test');
    }
    expect(await agent.done).toEqual({ code: 0 });
  });
});

describe('mizzen agent', () => {
  it('runs Envoy, answers probes on its status port, and on SIGTERM drains Envoy, stops it and exits 0', async () => {
    const cwd = fs.mkdtempSync(path.join(dir, 'cli-'));
    const [statusPort, adminPort, deadCa] = [await freePort(), await freePort(), await freePort()];
    const logFile = path.join(cwd, 'events.jsonl');
    const bootstrap = path.join(cwd, 'bootstrap.json');
    fs.writeFileSync(bootstrap, JSON.stringify({ admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } } }));
    const child = spawn(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'agent', 'sidecar', '--status-port', String(statusPort), '--bootstrap', bootstrap, '--proxyLogLevel=info,misc:error'], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        STANDIN_LOG: logFile,
        STANDIN_ADMIN_PORT: '',
        POD_NAME: 'web-0',
        POD_NAMESPACE: 'shop',
        INSTANCE_IP: '127.0.0.1',
        // Nothing listens there: the certificate manager keeps retrying, which must not hold up Envoy or the probes.
        CA_ADDR: `127.0.0.1:${deadCa}`,
        ENVOY_BINARY: standin,
        PROXY_CONFIG: JSON.stringify({ terminationDrainDuration: '1s', proxyAdminPort: adminPort }),
        ISTIO_KUBE_APP_PROBERS: probersJson(),
      },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await eventually(async () => (await fetch(`http://127.0.0.1:${statusPort}/app-health/app/readyz`).catch(() => undefined))?.status === 200, 20_000, 'agent status port');
      await eventually(() => readEvents(logFile).some((e) => e.event === 'admin-listening'), 10_000, 'stand-in admin');
      expect(readEvents(logFile)[0]!.argv!.slice(-4)).toEqual(['-l', 'info', '--component-log-level', 'misc:error']);
      expect((await fetch(`http://127.0.0.1:${statusPort}/healthz/ready`)).status).toBe(503);
      await fetch(`http://127.0.0.1:${adminPort}/test/ready`, { method: 'POST' });
      expect((await fetch(`http://127.0.0.1:${statusPort}/healthz/ready`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
    const events = readEvents(logFile);
    const drain = events.find((e) => e.event === 'drain')!;
    const term = events.find((e) => e.event === 'SIGTERM')!;
    expect(drain.url).toBe('/drain_listeners?inboundonly&graceful');
    expect(term.t - drain.t).toBeGreaterThanOrEqual(950);
    expect(fs.existsSync(path.join(cwd, 'var/run/secrets/workload-spiffe-uds/socket'))).toBe(false); // SDS cleaned up
  });

  it('exits 1 with a clear message when the envoy binary is missing', async () => {
    const cwd = fs.mkdtempSync(path.join(dir, 'cli-missing-'));
    const child = spawn(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'agent', '--status-port', String(await freePort())], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, POD_NAME: 'web-0', POD_NAMESPACE: 'shop', INSTANCE_IP: '10.0.0.9', ENVOY_BINARY: path.join(cwd, 'no-envoy') },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(stderr).toContain(`error: envoy binary not found at ${path.join(cwd, 'no-envoy')}: set ENVOY_BINARY (or --envoy-binary)`);
    expect(fs.existsSync(path.join(cwd, 'etc'))).toBe(false); // checked before anything was written
  });
});
