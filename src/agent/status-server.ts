/**
 * The agent's status port, 15020 (istio-xds.md §12; istio pilot/cmd/pilot-agent/status/server.go):
 * - `/healthz/ready`: 200 when every readiness probe passes (Envoy: initial config and LIVE, see envoy-process.ts;
 *   plus whatever the agent adds, e.g. certificates), else 503 with the first reason. The kubelet reaches it through
 *   Envoy's 15021 listener, whose bootstrap route sends `/healthz/ready` to the `agent` cluster (127.0.0.1:15020), so
 *   a pod is ready only when Envoy serves and the agent agrees.
 * - `/app-health/<container>/{readyz,livez,startupz}`, `/app-lifecycle/<container>/{prestopz,poststartz}`: the
 *   rewritten app probes (probes.ts); a path with no prober → 400, as istio-agent answers.
 * - `/stats/prometheus` (and `/metrics`): the agent's own metrics (`istio_agent_*`), then Envoy's
 *   `/stats/prometheus`, then the app's metrics when ISTIO_PROMETHEUS_ANNOTATIONS names them; plain concatenation as
 *   istio-agent does (it assumes the app does not export Envoy's names). A part that fails is left out and counted in
 *   `istio_agent_scrape_failures_total{type}`; each part is bounded in time and size.
 * - POST `/quitquitquit` and `/drain` (loopback callers only): terminate the agent, or start Envoy's drain.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import net from 'node:net';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import { fail, ok, type Result } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { APP_PROBER_PATH, runProbe, type AppProbers, type ProbeTarget } from './probes.ts';

export interface ReadinessProbe {
  name: string;
  check(): Promise<{ ready: boolean; reason?: string }>;
}

/** The app's scrape config saved by the injector (`prometheus.io/{scrape,port,path}` of the pod). */
export interface AppMetricsScrape {
  port: number;
  path: string;
}

/**
 * Parses ISTIO_PROMETHEUS_ANNOTATIONS (`{"scrape":"true","path":"/metrics","port":"9090"}`) as istio-agent does:
 * absent → no app metrics; `scrape: "false"` → none; path defaults to /metrics and port to 80; the status port itself
 * is refused (the merge would scrape itself).
 */
export function parsePrometheusAnnotations(json: string | undefined, statusPort: number): Result<AppMetricsScrape | undefined, string> {
  if (json === undefined || json.trim() === '') return ok(undefined);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    return fail(`ISTIO_PROMETHEUS_ANNOTATIONS is not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null) return fail('ISTIO_PROMETHEUS_ANNOTATIONS must be a JSON object');
  const { scrape, path, port } = raw as Record<string, unknown>;
  if (scrape === 'false') return ok(undefined);
  const p = port === undefined || port === '' ? 80 : Number(port);
  if (!Number.isInteger(p) || p <= 0 || p > 65535) return fail(`ISTIO_PROMETHEUS_ANNOTATIONS: invalid port ${JSON.stringify(port)}`);
  if (p === statusPort) {
    return fail(
      `invalid prometheus scrape configuration: application port is the same as agent port (${statusPort}), which may lead to a recursive loop. ` +
        `Ensure pod does not have prometheus.io/port=${statusPort} label, or that injection is not happening multiple times`,
    );
  }
  const metricsPath = typeof path === 'string' && path !== '' ? (path.startsWith('/') ? path : `/${path}`) : '/metrics';
  return ok({ port: p, path: metricsPath });
}

export interface StatusServerOptions {
  /** 0.0.0.0 in a pod: the kubelet probes the pod IP. */
  host?: string;
  port: number;
  probers: AppProbers;
  probeTarget: ProbeTarget;
  readiness: ReadinessProbe[];
  /** Envoy's Prometheus stats, e.g. http://127.0.0.1:15000/stats/prometheus; absent without Envoy. */
  envoyStatsUrl?: string;
  appMetrics?: AppMetricsScrape;
  /** Host the app's metrics are scraped on (localhost, as istio-agent does). */
  appMetricsHost?: string;
  /** Default scrape timeout when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds (10 s). */
  scrapeTimeoutMs?: number;
  /** Per-part size cap of the merge (32 MiB). */
  maxScrapeBytes?: number;
  onQuit?: () => void;
  onDrain?: () => void;
  log: Logger;
}

export interface StatusServer {
  readonly port: number;
  readonly app: FastifyInstance;
  /** What `/healthz/ready` answers, without HTTP. */
  checkReady(): Promise<{ ready: boolean; reason?: string }>;
  close(): Promise<void>;
}

const TEXT_FORMAT = 'text/plain; version=0.0.4; charset=utf-8';
const OPENMETRICS = 'application/openmetrics-text';

/** istio-agent's negotiateMetricsFormat: the app's OpenMetrics (1.0.0 or 0.0.1) is kept, anything else is text. */
function negotiateFormat(contentType: string | undefined): string {
  const [media, ...params] = (contentType ?? '').split(';').map((s) => s.trim());
  if (media !== OPENMETRICS) return TEXT_FORMAT;
  const version = params.find((p) => p.startsWith('version='))?.slice('version='.length);
  return `${OPENMETRICS}; version=${version === '1.0.0' ? '1.0.0' : '0.0.1'}; charset=utf-8`;
}

const isLoopback = (addr: string | undefined): boolean =>
  !!addr && (addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.'));

export async function startStatusServer(o: StatusServerOptions): Promise<StatusServer> {
  const log = o.log;
  const maxBytes = o.maxScrapeBytes ?? 32 * 1024 * 1024;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'istio_agent_' });
  const scrapes = new Counter({ name: 'istio_agent_scrapes_total', help: 'The total number of scrapes.', registers: [registry] });
  const scrapeFailures = new Counter({ name: 'istio_agent_scrape_failures_total', help: 'The total number of failed scrapes.', labelNames: ['type'], registers: [registry] });

  let lastReady: boolean | undefined;
  const checkReady = async (): Promise<{ ready: boolean; reason?: string }> => {
    for (const p of o.readiness) {
      const r = await p.check();
      if (!r.ready) return { ready: false, reason: `${p.name}: ${r.reason ?? 'not ready'}` };
    }
    return { ready: true };
  };

  const app = Fastify({
    logger: false,
    // A probe may legitimately take its whole timeoutSeconds; idle sockets still go away.
    connectionTimeout: 120_000,
    requestTimeout: 30_000,
    bodyLimit: 16 * 1024,
    forceCloseConnections: true,
  });

  app.get('/healthz/ready', async (_req, reply) => {
    const r = await checkReady();
    if (r.ready !== lastReady) {
      if (r.ready) log.info('proxy is ready');
      else log.warn({ reason: r.reason }, 'proxy is NOT ready');
      lastReady = r.ready;
    }
    return r.ready ? reply.code(200).type('text/plain').send('') : reply.code(503).type('text/plain').send(`${r.reason}\n`);
  });

  const appProbe = async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0] ?? '';
    const prober = APP_PROBER_PATH.test(path) ? o.probers.get(path) : undefined;
    if (!prober) {
      log.error({ path }, 'prober does not exist');
      return reply.code(400).type('text/plain').send(`app prober config does not exists for ${path}`);
    }
    const r = await runProbe(prober, o.probeTarget, { headers: req.headers, statusPort: server.port });
    if (!r.ok) log.warn({ path, status: r.status, reason: r.reason }, 'app probe failed');
    return reply.code(r.status).send(r.body);
  };
  app.get('/app-health/*', appProbe);
  app.get('/app-lifecycle/*', appProbe);

  /** GETs one part of the merge: bounded, never throws. */
  const scrapePart = async (url: string, req: FastifyRequest, type: 'envoy' | 'application'): Promise<{ text: string; contentType?: string } | undefined> => {
    const headers: Record<string, string> = {};
    for (const h of ['accept', 'user-agent', 'x-prometheus-scrape-timeout-seconds']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const headerTimeout = Number(headers['x-prometheus-scrape-timeout-seconds']);
    const timeoutMs = Number.isFinite(headerTimeout) && headerTimeout > 0 ? headerTimeout * 1000 : (o.scrapeTimeoutMs ?? 10_000);
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
      if (res.status !== 200) throw new Error(`status code ${res.status}`);
      const reader = res.body?.getReader();
      const chunks: Uint8Array[] = [];
      let size = 0;
      for (;;) {
        const { done, value } = reader ? await reader.read() : { done: true, value: undefined };
        if (done) break;
        size += value.length;
        if (size > maxBytes) {
          await reader?.cancel();
          throw new Error(`more than ${maxBytes} bytes`);
        }
        chunks.push(value);
      }
      const contentType = res.headers.get('content-type') ?? undefined;
      return { text: Buffer.concat(chunks).toString('utf8'), ...(contentType ? { contentType } : {}) };
    } catch (err) {
      scrapeFailures.inc({ type });
      log.error({ err: (err as Error).message, url }, `failed scraping ${type} metrics`);
      return undefined;
    }
  };

  const stats = async (req: FastifyRequest, reply: FastifyReply) => {
    scrapes.inc();
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
    const appHost = o.appMetricsHost ?? 'localhost';
    const [envoy, application] = await Promise.all([
      o.envoyStatsUrl ? scrapePart(o.envoyStatsUrl + query, req, 'envoy') : undefined,
      o.appMetrics ? scrapePart(`http://${net.isIPv6(appHost) ? `[${appHost}]` : appHost}:${o.appMetrics.port}${o.appMetrics.path}`, req, 'application') : undefined,
    ]);
    let agent = '';
    try {
      agent = await registry.metrics();
    } catch (err) {
      scrapeFailures.inc({ type: 'agent' });
      log.error({ err }, 'failed scraping agent metrics');
    }
    const parts = [agent, envoy?.text ?? ''].filter((p) => p !== '');
    // The app goes last: OpenMetrics ends with `# EOF`, which closes the whole exposition.
    if (application) parts.push(application.text);
    const body = parts.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
    return reply.code(200).header('content-type', o.appMetrics ? negotiateFormat(application?.contentType) : TEXT_FORMAT).send(body);
  };
  app.get('/stats/prometheus', stats);
  app.get('/metrics', stats);

  const localOnly = (action: (() => void) | undefined, what: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!isLoopback(req.socket.remoteAddress)) return reply.code(403).type('text/plain').send('Only requests from localhost are allowed');
    if (!action) return reply.code(404).type('text/plain').send(`${what} is not available`);
    log.info(`handling ${what}`);
    setImmediate(action); // answer first: the action may stop this server
    return reply.code(200).type('text/plain').send('OK');
  };
  app.post('/quitquitquit', localOnly(o.onQuit, '/quitquitquit'));
  app.post('/drain', localOnly(o.onDrain, '/drain'));

  await app.listen({ host: o.host ?? '0.0.0.0', port: o.port });
  const address = app.server.address();
  const server: StatusServer = {
    port: typeof address === 'object' && address ? address.port : o.port,
    app,
    checkReady,
    close: () => app.close(),
  };
  log.info({ port: server.port }, 'status server listening');
  return server;
}
