/**
 * The monitoring port (15014): /ready, /metrics, /version and the debug endpoints istioctl users know.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.ts';

export interface DebugSource {
  ready(): boolean;
  version: string;
  syncz(): unknown;
  configDump(proxyId: string, types?: string[]): unknown | undefined;
  connections(): unknown;
  configz(): unknown;
  /** The effective MeshConfig (defaults + --mesh-config), as istiod's /debug/mesh. */
  mesh(): unknown;
  registryz(): unknown;
  memz(): unknown;
  pushStatus(): unknown;
  /** Per config object: proxies SYNCED / PENDING / NACKED (with the error); filtered by kind, namespace, name. */
  configStatus?(filter: { kind?: string; namespace?: string; name?: string }): unknown;
}

export async function startMonitoring(options: { host: string; port: number; metrics: Metrics; debug: DebugSource }): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    // Bounded: a slow or hostile client cannot hold a connection open indefinitely.
    connectionTimeout: 10_000,
    requestTimeout: 10_000,
    bodyLimit: 64 * 1024,
    // Node enforces requestTimeout/headersTimeout only when it sweeps its connections, every 30 s by default: a
    // slow-loris client (headers at one byte per second) then holds its socket for up to 40 s, not 10.
    http: { connectionsCheckingInterval: 1000 },
  });
  const { metrics, debug } = options;
  app.get('/ready', async (_req, reply) => {
    if (debug.ready()) return reply.code(200).type('text/plain').send('ready\n');
    return reply.code(503).type('text/plain').send('not ready: initial config not built yet\n');
  });
  app.get('/version', async () => ({ version: debug.version }));
  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  app.get('/debug/syncz', async () => debug.syncz());
  app.get('/debug/connections', async () => debug.connections());
  app.get('/debug/configz', async () => debug.configz());
  app.get('/debug/mesh', async () => debug.mesh());
  app.get('/debug/registryz', async () => debug.registryz());
  app.get('/debug/memz', async () => debug.memz());
  app.get('/debug/push_status', async () => debug.pushStatus());
  app.get<{ Querystring: { kind?: string; namespace?: string; name?: string } }>('/debug/config_status', async (req, reply) => {
    if (!debug.configStatus) return reply.code(404).send({ error: 'config status is not tracked' });
    const { kind, namespace, name } = req.query;
    return debug.configStatus({ ...(kind ? { kind } : {}), ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) });
  });
  app.get<{ Querystring: { proxyID?: string; types?: string } }>('/debug/config_dump', async (req, reply) => {
    const id = req.query.proxyID;
    if (!id) return reply.code(400).send({ error: 'proxyID is required (a substring of the connection id, see /debug/connections)' });
    const dump = debug.configDump(id, req.query.types?.split(','));
    if (dump === undefined) return reply.code(404).send({ error: `no connected proxy matches ${JSON.stringify(id)}` });
    return dump;
  });
  app.get('/debug', async () => ({
    endpoints: ['/debug/syncz', '/debug/config_dump?proxyID=', '/debug/connections', '/debug/configz', '/debug/mesh', '/debug/registryz', '/debug/push_status', '/debug/config_status', '/debug/memz'],
  }));
  await app.listen({ host: options.host, port: options.port });
  return app;
}
