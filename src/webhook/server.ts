/**
 * The injection webhook on 15017 (HTTPS, fastify): `POST /inject` takes an AdmissionReview (admission.k8s.io/v1) for a
 * Pod CREATE and answers an AdmissionReview whose patch (base64 RFC 6902 JSON Patch) is the diff of the pod before
 * and after injectPod() (shared/reference/injection-and-proxyless.md A2 "How the patch is built", A3).
 *
 * Answers, as istiod's:
 * - skipped (not selected, opted out, not a Pod CREATE): `allowed: true`, no patch; `sidecar_injection_skip_total`;
 * - injected: `allowed: true` with the patch (none when nothing changed, e.g. an already injected pod);
 * - the template fails (invalid annotation, unknown template, invalid prometheus port): `allowed: false` and
 *   `status.message: "Pod injection failed: ..."`, so the API server refuses the pod (failurePolicy Fail would do the
 *   same); `sidecar_injection_failure_total`;
 * - not an AdmissionReview at all: HTTP 400 (no body, not JSON, no request.uid), 413 (over the body limit), 415 (not
 *   application/json). Bodies are bounded (default 10 MiB; istiod reads at most 6 MiB since CVE-2022-24726), and so
 *   are the request, handshake and idle times (reliability-security.md §1.5, §6).
 *
 * `POST /validate` is the validating webhook for mesh CRDs (validate.ts): same transport limits, 400 for a body that is
 * not an AdmissionReview, otherwise the AdmissionReview answer; `galley_validation_*` metrics.
 *
 * TLS: key and certificate as PEM, or a `getCertificate` callback (e.g. mizzen's CA serving certificate, which
 * renews itself) read on every handshake that names a server and at least every 30 s for those that do not. This
 * module never imports the CA: the composition root passes the PEMs in.
 */
import tls from 'node:tls';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Operation } from 'rfc6902';
import type { Logger } from '../shared/log.ts';
import { injectPod, type InjectorConfig, type StringMap } from './inject.ts';
import { createPodPatch } from './json-patch.ts';
import { isRecord } from './templates.ts';
import { recordValidation, reviewValidation, validationMetrics } from './validate.ts';

export const DEFAULT_WEBHOOK_PORT = 15017;
export const DEFAULT_BODY_LIMIT = 10 * 1024 * 1024;

export interface PemPair {
  key: string;
  cert: string;
}
export type WebhookTls = PemPair | { getCertificate: () => PemPair };

export interface ReviewContext {
  /** Read per request: the injector configuration may change (mesh config, injector ConfigMap). */
  config: InjectorConfig | (() => InjectorConfig);
  /** The namespace's labels, to apply the webhook selectors here too; absent: trust the API server's selection. */
  namespaceLabels?: (namespace: string) => Readonly<StringMap> | undefined;
  /** For ENABLE_NATIVE_SIDECARS=auto: whether the pod's node (or, unscheduled, every node) supports them. */
  nativeSidecarsSupported?: (nodeName: string | undefined) => boolean;
  log?: Logger;
}

export interface InjectionMetrics {
  requests: Counter;
  success: Counter;
  skip: Counter;
  failure: Counter;
  time: Histogram;
}

/** Istio's injector metrics (pkg/kube/inject/monitoring.go), registered once per registry. */
export function injectionMetrics(registry: Registry): InjectionMetrics {
  const counter = (name: string, help: string) => (registry.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, registers: [registry] });
  const time =
    (registry.getSingleMetric('sidecar_injection_time_seconds') as Histogram | undefined) ??
    new Histogram({ name: 'sidecar_injection_time_seconds', help: 'Total time taken for injection in seconds.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: [registry] });
  return {
    requests: counter('sidecar_injection_requests_total', 'Total number of sidecar injection requests.'),
    success: counter('sidecar_injection_success_total', 'Total number of successful sidecar injection requests.'),
    skip: counter('sidecar_injection_skip_total', 'Total number of skipped sidecar injection requests.'),
    failure: counter('sidecar_injection_failure_total', 'Total number of failed sidecar injection requests.'),
    time,
  };
}

export interface AdmissionReviewResponse {
  apiVersion: string;
  kind: 'AdmissionReview';
  response: { uid: string; allowed: boolean; patchType?: 'JSONPatch'; patch?: string; status?: { message: string } };
}

export type ReviewOutcome =
  | { ok: true; review: AdmissionReviewResponse; result: 'injected' | 'skipped' | 'failed'; message?: string }
  | { ok: false; error: string };

/**
 * The pod without metadata.managedFields, leaving the request as it is. Shallow: nothing downstream writes to it
 * (injectPod works on its own deep copy, the patch only reads it).
 */
function withoutManagedFields(obj: Record<string, unknown>): Record<string, unknown> {
  if (!isRecord(obj.metadata) || !Object.hasOwn(obj.metadata, 'managedFields')) return obj;
  const { managedFields: _dropped, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

/**
 * A real pod is a dozen levels deep (affinity terms are the deepest). Copying and diffing recurse, so a pathological
 * nesting would exhaust the stack somewhere inside; it is refused up front instead, with a message that says why.
 */
const MAX_POD_DEPTH = 100;

/** Whether `value` has objects or arrays nested more than `max` levels (iterative: the check itself cannot overflow). */
function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

/** One AdmissionReview → its answer (pure apart from logging). Never throws. */
export function reviewAdmission(body: unknown, ctx: ReviewContext): ReviewOutcome {
  try {
    return reviewUnsafe(body, ctx);
  } catch (err) {
    // E.g. a pathologically nested object that exhausts the stack while being copied: the pod is refused, not skipped.
    const uid = isRecord(body) && isRecord(body.request) && typeof body.request.uid === 'string' ? body.request.uid : undefined;
    if (uid === undefined) return { ok: false, error: 'not an AdmissionReview' };
    const message = `Pod injection failed: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: true, review: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: false, status: { message } } }, result: 'failed', message };
  }
}

function reviewUnsafe(body: unknown, ctx: ReviewContext): ReviewOutcome {
  if (!isRecord(body) || !isRecord(body.request)) return { ok: false, error: 'not an AdmissionReview: no request' };
  const request = body.request;
  if (typeof request.uid !== 'string' || request.uid === '') return { ok: false, error: 'not an AdmissionReview: request.uid is missing' };
  const apiVersion = typeof body.apiVersion === 'string' && body.apiVersion.startsWith('admission.k8s.io/') ? body.apiVersion : 'admission.k8s.io/v1';
  const answer = (response: Omit<AdmissionReviewResponse['response'], 'uid'>): AdmissionReviewResponse => ({ apiVersion, kind: 'AdmissionReview', response: { uid: request.uid as string, ...response } });
  const skip = (message: string): ReviewOutcome => ({ ok: true, review: answer({ allowed: true }), result: 'skipped', message });

  if (isRecord(request.kind) && request.kind.kind !== 'Pod') return skip(`not a Pod (${String(request.kind.kind)})`);
  if (typeof request.operation === 'string' && request.operation !== 'CREATE') return skip(`operation ${request.operation}, only CREATE is injected`);
  if (typeof request.subResource === 'string' && request.subResource !== '') return skip(`subresource ${request.subResource}`);
  if (!isRecord(request.object)) return skip('no pod object in the request');
  if (nestedDeeperThan(request.object, MAX_POD_DEPTH)) {
    const message = `Pod injection failed: the pod nests deeper than ${MAX_POD_DEPTH} levels`;
    return { ok: true, review: answer({ allowed: false, status: { message } }), result: 'failed', message };
  }
  const original = withoutManagedFields(request.object);
  const meta = isRecord(original.metadata) ? original.metadata : {};
  const namespace = (typeof request.namespace === 'string' && request.namespace) || (typeof meta.namespace === 'string' && meta.namespace) || 'default';
  const spec = isRecord(original.spec) ? original.spec : {};
  const nodeName = typeof spec.nodeName === 'string' ? spec.nodeName : undefined;
  let config: InjectorConfig;
  try {
    config = typeof ctx.config === 'function' ? ctx.config() : ctx.config;
  } catch (err) {
    return { ok: true, review: answer({ allowed: false, status: { message: `Pod injection failed: no injector configuration: ${(err as Error).message}` } }), result: 'failed' };
  }
  const namespaceLabels = ctx.namespaceLabels?.(namespace);
  const outcome = injectPod({
    pod: original,
    namespace,
    config,
    ...(namespaceLabels ? { namespaceLabels } : {}),
    nativeSidecarsSupported: ctx.nativeSidecarsSupported?.(nodeName) ?? false,
    warn: (msg) => ctx.log?.warn({ namespace, uid: request.uid }, msg),
  });
  if (outcome.kind === 'skipped') return skip(outcome.reason);
  if (outcome.kind === 'failed') return { ok: true, review: answer({ allowed: false, status: { message: outcome.message } }), result: 'failed', message: outcome.message };
  let patch: Operation[];
  try {
    // rfc6902's createPatch with arrays over 10,000 table cells replaced whole, computed without its cost (json-patch.ts).
    patch = createPodPatch(original, outcome.pod);
  } catch (err) {
    const message = `Pod injection failed: could not compute the patch: ${(err as Error).message}`;
    return { ok: true, review: answer({ allowed: false, status: { message } }), result: 'failed', message };
  }
  const review = patch.length > 0 ? answer({ allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }) : answer({ allowed: true });
  return { ok: true, review, result: 'injected', ...(outcome.alreadyInjected ? { message: 'already injected' } : {}) };
}

export interface WebhookServerOptions extends ReviewContext {
  /** Default 0.0.0.0. */
  host?: string;
  /** Default 15017; 0 picks a free port. */
  port?: number;
  tls: WebhookTls;
  registry: Registry;
  /** Default 10 MiB. */
  bodyLimitBytes?: number;
  /** Whole request, headers and body (default 10 s, the API server's default webhook timeout). */
  requestTimeoutMs?: number;
}

export interface WebhookServer {
  app: FastifyInstance;
  port: number;
  /** Re-reads getCertificate now (also done on handshakes and every 30 s). */
  refreshCertificate(): void;
  close(): Promise<void>;
}

/** A transport-level error as a short JSON answer. */
function transportError(err: FastifyError, limit: number): { status: number; error: string } {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, error: `request body larger than ${limit} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: err.statusCode === 400 ? 400 : 415, error: 'invalid Content-Type, want `application/json`' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, error: 'no body found' };
    default:
      if (err instanceof SyntaxError || err.statusCode === 400) return { status: 400, error: `body is not a JSON AdmissionReview: ${err.message}` };
      return { status: err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500, error: err.statusCode && err.statusCode < 500 ? err.message : 'internal error' };
  }
}

export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const metrics = injectionMetrics(o.registry);
  const vmetrics = validationMetrics(o.registry);
  const limit = o.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const source = 'getCertificate' in o.tls ? o.tls.getCertificate : undefined;
  let current: PemPair = source ? source() : (o.tls as PemPair);
  let context = tls.createSecureContext({ key: current.key, cert: current.cert });
  const refreshCertificate = () => {
    if (!source) return;
    try {
      const next = source();
      if (next.cert === current.cert && next.key === current.key) return;
      context = tls.createSecureContext({ key: next.key, cert: next.cert });
      current = next;
      // Called only once the server exists (handshakes, the timer), so `app` below is initialised.
      (app.server as unknown as tls.Server).setSecureContext({ key: next.key, cert: next.cert });
    } catch (err) {
      o.log?.error({ err: (err as Error).message }, 'webhook serving certificate could not be loaded; keeping the previous one');
    }
  };
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: limit,
    requestTimeout: o.requestTimeoutMs ?? 10_000,
    connectionTimeout: 60_000,
    keepAliveTimeout: 30_000,
    https: {
      key: current.key,
      cert: current.cert,
      minVersion: 'TLSv1.2',
      handshakeTimeout: 10_000,
      // Node enforces requestTimeout/headersTimeout only when it sweeps its connections, every 30 s by default: a
      // slow-loris client (headers at one byte per second) would hold its socket for up to 40 s, not 10.
      connectionsCheckingInterval: 1000,
      SNICallback: (_name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => {
        refreshCertificate();
        cb(null, context);
      },
    },
  });
  // Only application/json is an AdmissionReview (istiod answers 415 to anything else).
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const { status, error } = transportError(err, limit);
    if (req.url.startsWith('/inject')) metrics.failure.inc();
    else if (req.url.startsWith('/validate')) vmetrics.httpError.inc({ status: String(status) });
    o.log?.warn({ status, code: err.code, url: req.url }, `webhook request refused: ${error}`);
    return reply.code(status).send({ error });
  });
  const countRequest = (_req: unknown, _reply: unknown, done: () => void) => {
    metrics.requests.inc();
    done();
  };
  const handler = async (req: { body: unknown }, reply: { code(n: number): { send(b: unknown): unknown } }) => {
    const end = metrics.time.startTimer();
    const r = reviewAdmission(req.body, o);
    end();
    if (!r.ok) {
      metrics.failure.inc();
      return reply.code(400).send({ error: r.error });
    }
    const uid = r.review.response.uid;
    if (r.result === 'injected') {
      metrics.success.inc();
      o.log?.debug({ uid, patched: r.review.response.patch !== undefined }, r.message ?? 'pod injected');
    } else if (r.result === 'skipped') {
      metrics.skip.inc();
      o.log?.debug({ uid }, `pod not injected: ${r.message ?? ''}`);
    } else {
      metrics.failure.inc();
      o.log?.error({ uid }, r.message ?? 'injection failed');
    }
    return reply.code(200).send(r.review);
  };
  // `/inject/<env pairs>` (istiod's parseInjectEnvs) is accepted; the extra path is ignored.
  app.post('/inject', { onRequest: countRequest }, handler);
  app.post('/inject/*', { onRequest: countRequest }, handler);
  // The validating webhook for mesh CRDs: same body limit and content type; 400 when it is not an AdmissionReview.
  app.post('/validate', async (req, reply) => {
    const r = reviewValidation(req.body);
    recordValidation(vmetrics, r);
    if (!r.ok) return reply.code(400).send({ error: r.error });
    if (!r.review.response.allowed) o.log?.info({ uid: r.review.response.uid }, `configuration is invalid: ${r.review.response.status?.message ?? ''}`);
    return reply.code(200).send(r.review);
  });
  await app.listen({ host: o.host ?? '0.0.0.0', port: o.port ?? DEFAULT_WEBHOOK_PORT });
  const timer = source ? setInterval(refreshCertificate, 30_000) : undefined;
  timer?.unref();
  const address = app.server.address();
  return {
    app,
    port: typeof address === 'object' && address ? address.port : (o.port ?? DEFAULT_WEBHOOK_PORT),
    refreshCertificate,
    close: async () => {
      if (timer) clearInterval(timer);
      await app.close();
    },
  };
}
