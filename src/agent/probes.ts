/**
 * The app prober behind the rewritten Kubernetes probes (injection-and-proxyless.md A2, "App probe rewrite").
 *
 * The injector turns each app container's httpGet/tcpSocket/gRPC probe into an httpGet on the agent's status port
 * (`/app-health/<container>/readyz|livez|startupz`, `/app-lifecycle/<container>/prestopz|poststartz`) and saves the
 * original action in the proxy's `ISTIO_KUBE_APP_PROBERS`, a JSON object keyed by that path:
 *
 *   {"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP",
 *                                           "httpHeaders": [{"name": "X-A", "value": "1"}]}, "timeoutSeconds": 1},
 *    "/app-health/db/livez":   {"tcpSocket": {"port": 5432}, "timeoutSeconds": 5},
 *    "/app-health/api/readyz": {"grpc": {"port": 9000, "service": "api"}}}
 *
 * The agent then runs the original action against the app and answers the kubelet with the outcome, as istio-agent
 * does (pilot/cmd/pilot-agent/status/server.go: validateAppKubeProber, handleAppProbeHTTPGet/TCPSocket/GRPC):
 * - httpGet: the app's status code is passed through (a 3xx becomes 200, since a redirect answered to the kubelet
 *   would need a Location), with at most 10 KiB of its body; redirects to the same host are followed (at most 10),
 *   a redirect to another host counts as success (kubelet's rule); no connection, or the timeout → 500.
 * - tcpSocket: connected → 200, otherwise → 500.
 * - grpc: `grpc.health.v1.Health/Check` SERVING → 200; anything else (NOT_SERVING, UNIMPLEMENTED, no connection,
 *   deadline) → 500.
 * Probes go to `target.host` (the pod IP by default in the agent, as the kubelet would, or localhost) from
 * `target.localAddress` (istio-agent binds 127.0.0.6, which the sidecar's iptables rules let through uncaptured).
 * gRPC is spoken over node:http2 rather than a grpc-js channel so that the source address can be bound too; the
 * messages are encoded from protos/grpc/health/v1/health.proto through proto-loader.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { fail, ok, type Result } from '../shared/errors.ts';

export interface HttpHeader {
  name: string;
  value: string;
}

export interface HttpGetAction {
  path?: string;
  port: number;
  /** Ignored, as istio-agent ignores it: the probe goes to the agent's probe target. */
  host?: string;
  scheme?: 'HTTP' | 'HTTPS';
  httpHeaders?: HttpHeader[];
}

export interface TcpSocketAction {
  port: number;
}

export interface GrpcAction {
  port: number;
  /** The service name sent in HealthCheckRequest; absent means "" (the server as a whole). */
  service?: string;
}

/** One original probe action (exactly one of the three) and its timeout. */
export interface AppProber {
  httpGet?: HttpGetAction;
  tcpSocket?: TcpSocketAction;
  grpc?: GrpcAction;
  timeoutSeconds?: number;
}

/** The probers by rewritten path, e.g. `/app-health/web/readyz`. */
export type AppProbers = ReadonlyMap<string, AppProber>;

/** istio-agent's appProberPattern. */
export const APP_PROBER_PATH = /^\/(app-health|app-lifecycle)\/[^/]+\/(livez|readyz|startupz|prestopz|poststartz)$/;

/** The paths the injector rewrites a container's probes to (istio-agent's FormatProberURL). */
export function proberPaths(container: string): { readyz: string; livez: string; startupz: string; prestopz: string; poststartz: string } {
  return {
    readyz: `/app-health/${container}/readyz`,
    livez: `/app-health/${container}/livez`,
    startupz: `/app-health/${container}/startupz`,
    prestopz: `/app-lifecycle/${container}/prestopz`,
    poststartz: `/app-lifecycle/${container}/poststartz`,
  };
}

/** Kubernetes' default `timeoutSeconds` (the API server fills it in, so injected probers normally carry it). */
export const DEFAULT_PROBE_TIMEOUT_SECONDS = 1;
/** istio-agent's maxRespBodyLength: how much of the app's probe answer is passed back. */
export const MAX_PROBE_BODY_BYTES = 10 * 1024;
const MAX_REDIRECTS = 10;

const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 65535;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses `ISTIO_KUBE_APP_PROBERS`. Like istio-agent, any invalid entry fails the whole value (the agent refuses to
 * start rather than answering some probes wrongly): a path outside the pattern, not exactly one action, a port that is
 * not an integer (the injector resolves named ports; a leftover name is an error, as istio-agent's "the port must be
 * int type"). Unknown fields are ignored, as Go's JSON decoding does. Empty or absent → no probers.
 */
export function parseAppProbers(json: string | undefined): Result<Map<string, AppProber>, string[]> {
  const out = new Map<string, AppProber>();
  if (json === undefined || json.trim() === '') return ok(out);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    return fail([`ISTIO_KUBE_APP_PROBERS is not JSON: ${(err as Error).message}`]);
  }
  if (!isObject(raw)) return fail(['ISTIO_KUBE_APP_PROBERS must be a JSON object of path → prober']);
  const errors: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const r = parseProber(key, value);
    if (r.ok) out.set(key, r.value);
    else errors.push(...r.errors.map((e) => `${key}: ${e}`));
  }
  return errors.length > 0 ? fail(errors) : ok(out);
}

function parseProber(key: string, value: unknown): Result<AppProber, string[]> {
  if (!APP_PROBER_PATH.test(key)) return fail([`invalid path, must match ${APP_PROBER_PATH.source}`]);
  if (!isObject(value)) return fail(['prober must be an object']);
  const kinds = (['httpGet', 'tcpSocket', 'grpc'] as const).filter((k) => value[k] !== undefined && value[k] !== null);
  if (kinds.length !== 1) return fail(['invalid prober type, must be one of type httpGet, tcpSocket or gRPC']);
  const timeout = value.timeoutSeconds;
  if (timeout !== undefined && !(typeof timeout === 'number' && Number.isInteger(timeout) && timeout >= 0)) {
    return fail(['timeoutSeconds must be a non-negative integer']);
  }
  const prober: AppProber = timeout ? { timeoutSeconds: timeout } : {};
  const action = value[kinds[0]!];
  if (!isObject(action)) return fail([`${kinds[0]} must be an object`]);
  if (!isPort(action.port)) return fail([`${kinds[0]}.port must be an integer port (named ports are resolved by the injector)`]);
  switch (kinds[0]) {
    case 'httpGet': {
      const scheme = action.scheme === undefined || action.scheme === '' ? 'HTTP' : action.scheme;
      if (scheme !== 'HTTP' && scheme !== 'HTTPS') return fail(['httpGet.scheme must be HTTP or HTTPS']);
      if (action.path !== undefined && typeof action.path !== 'string') return fail(['httpGet.path must be a string']);
      const headers: HttpHeader[] = [];
      if (action.httpHeaders !== undefined && action.httpHeaders !== null) {
        if (!Array.isArray(action.httpHeaders)) return fail(['httpGet.httpHeaders must be a list']);
        for (const h of action.httpHeaders) {
          if (!isObject(h) || typeof h.name !== 'string' || h.name === '' || typeof (h.value ?? '') !== 'string') return fail(['httpGet.httpHeaders entries need a name and a string value']);
          headers.push({ name: h.name, value: (h.value as string | undefined) ?? '' });
        }
      }
      prober.httpGet = { port: action.port, scheme, ...(typeof action.path === 'string' ? { path: action.path } : {}), ...(headers.length ? { httpHeaders: headers } : {}) };
      return ok(prober);
    }
    case 'tcpSocket':
      prober.tcpSocket = { port: action.port };
      return ok(prober);
    case 'grpc':
      if (action.service !== undefined && action.service !== null && typeof action.service !== 'string') return fail(['grpc.service must be a string']);
      prober.grpc = { port: action.port, ...(typeof action.service === 'string' ? { service: action.service } : {}) };
      return ok(prober);
    default:
      return fail(['unknown prober type']);
  }
}

/** Where probes go, and from which source address. */
export interface ProbeTarget {
  /** The app's address: the pod IP (what the kubelet would dial) or a loopback address. */
  host: string;
  /** Source address to bind, e.g. 127.0.0.6 (istio-agent's UpstreamLocalAddressIPv4). */
  localAddress?: string;
}

/** The kubelet's request to the status port, whose headers are forwarded to an httpGet probe. */
export interface IncomingProbe {
  headers?: Readonly<Record<string, string | string[] | undefined>>;
  /** The status port: a Host header naming it is rewritten to the app's port, as istio-agent does. */
  statusPort?: number;
}

export interface ProbeResult {
  /** What the status port answers: the app's code for httpGet, 200 or 500 otherwise. */
  status: number;
  /** Kubernetes' success rule: 200 ≤ status < 400. */
  ok: boolean;
  /** The app's answer (httpGet only), at most MAX_PROBE_BODY_BYTES. */
  body: Buffer;
  /** Why a probe failed, for the log (the kubelet only sees the status). */
  reason?: string;
}

const passed = (status = 200, body: Buffer = Buffer.alloc(0)): ProbeResult => ({ status, ok: status >= 200 && status < 400, body });
const failed = (reason: string): ProbeResult => ({ status: 500, ok: false, body: Buffer.alloc(0), reason });

/** Runs one prober; never throws. */
export async function runProbe(prober: AppProber, target: ProbeTarget, incoming: IncomingProbe = {}): Promise<ProbeResult> {
  const timeoutMs = (prober.timeoutSeconds || DEFAULT_PROBE_TIMEOUT_SECONDS) * 1000;
  try {
    if (prober.httpGet) return await probeHttp(prober.httpGet, target, incoming, timeoutMs);
    if (prober.tcpSocket) return await probeTcp(prober.tcpSocket.port, target, timeoutMs);
    if (prober.grpc) return await probeGrpc(prober.grpc, target, incoming, timeoutMs);
    return failed('prober has no action');
  } catch (err) {
    return failed((err as Error).message);
  }
}

const hostPort = (host: string, port: number): string => (net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`);

/** Hop-by-hop and framing headers are the client's own business, never forwarded. */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'host']);

function probeHeaders(action: HttpGetAction, target: ProbeTarget, incoming: IncomingProbe): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  // The kubelet sends the probe's httpHeaders itself (the rewritten probe keeps them); the configured ones fill in when
  // the agent is asked directly.
  let host: string | undefined;
  for (const h of action.httpHeaders ?? []) {
    if (h.name.toLowerCase() === 'host') host = h.value;
    else if (!NOT_FORWARDED.has(h.name.toLowerCase())) headers[h.name.toLowerCase()] = h.value;
  }
  for (const [name, value] of Object.entries(incoming.headers ?? {})) {
    if (value === undefined || NOT_FORWARDED.has(name.toLowerCase())) continue;
    headers[name.toLowerCase()] = value;
  }
  const incomingHost = incoming.headers?.host;
  if (typeof incomingHost === 'string' && incomingHost !== '') {
    host = incomingHost;
    // "the port is same as the status port, then we need to replace the port in the host with the real one"
    const m = /^(.*):(\d+)$/.exec(incomingHost);
    if (m && incoming.statusPort !== undefined && Number(m[2]) === incoming.statusPort) host = `${m[1]}:${action.port}`;
  }
  headers.host = host ?? hostPort(target.host, action.port);
  return headers;
}

async function probeHttp(action: HttpGetAction, target: ProbeTarget, incoming: IncomingProbe, timeoutMs: number): Promise<ProbeResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  const headers = probeHeaders(action, target, incoming);
  const origin = `${action.scheme === 'HTTPS' ? 'https' : 'http'}://${hostPort(target.host, action.port)}`;
  // The probe path may carry a query string (`/ready?full=1`); an empty path is `/`.
  let url = new URL(action.path ? (action.path.startsWith('/') ? action.path : `/${action.path}`) : '/', origin);
  const originalHost = url.hostname;
  for (let redirects = 0; ; redirects++) {
    const res = await httpGet(url, headers, target.localAddress, signal, timeoutMs);
    if (res.status >= 300 && res.status < 400) {
      const location = res.location;
      if (!location) return passed(200);
      const next = new URL(location, url);
      // kubelet: a redirect to another host is not followed and counts as success.
      if (next.hostname !== originalHost || (next.protocol !== 'http:' && next.protocol !== 'https:')) return passed(200);
      if (redirects >= MAX_REDIRECTS) return failed(`stopped after ${MAX_REDIRECTS} redirects`);
      url = next;
      continue;
    }
    const result = passed(res.status, res.body);
    return result.ok ? result : { ...result, reason: `app answered ${res.status}` };
  }
}

function httpGet(url: URL, headers: Record<string, string | string[]>, localAddress: string | undefined, signal: AbortSignal, timeoutMs: number): Promise<{ status: number; location?: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(
      {
        method: 'GET',
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        path: `${url.pathname}${url.search}`,
        headers,
        signal,
        // Like the kubelet: a fresh connection per probe, closed after it; HTTPS certificates are not verified.
        agent: false,
        rejectUnauthorized: false,
        ...(localAddress ? { localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const finish = () => {
          res.destroy();
          resolve({ status: res.statusCode ?? 500, ...(typeof res.headers.location === 'string' ? { location: res.headers.location } : {}), body: Buffer.concat(chunks).subarray(0, MAX_PROBE_BODY_BYTES) });
        };
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          size += c.length;
          if (size >= MAX_PROBE_BODY_BYTES) finish();
        });
        res.on('end', finish);
        res.on('error', () => finish());
      },
    );
    req.on('error', (err) => reject(signal.aborted ? new Error(`no answer within ${timeoutMs} ms`) : err));
    req.end();
  });
}

function probeTcp(port: number, target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port, ...(target.localAddress ? { localAddress: target.localAddress } : {}) });
    const timer = setTimeout(() => done(failed(`no connection within ${timeoutMs} ms`)), timeoutMs);
    const done = (r: ProbeResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    socket.once('connect', () => done(passed()));
    socket.once('error', (err) => done(failed(err.message)));
  });
}

// ---- gRPC health ------------------------------------------------------------------------------------------------

const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
const MAX_GRPC_RESPONSE_BYTES = 64 * 1024;
/** gRPC status codes named in failure reasons. */
const GRPC_CODES: Record<number, string> = { 4: 'DEADLINE_EXCEEDED', 5: 'NOT_FOUND', 12: 'UNIMPLEMENTED', 14: 'UNAVAILABLE' };

interface HealthCodec {
  serialize(req: { service: string }): Buffer;
  deserialize(bytes: Buffer): { status?: string };
}
let healthCodec: HealthCodec | undefined;

/** HealthCheckRequest/Response encoders from protos/grpc/health/v1/health.proto (loaded once). */
export function grpcHealthDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync('grpc/health/v1/health.proto', {
    keepCase: true,
    enums: String,
    defaults: true,
    includeDirs: [path.resolve(import.meta.dirname, '../../protos')],
  });
}

function codec(): HealthCodec {
  if (healthCodec) return healthCodec;
  const service = grpcHealthDefinition()['grpc.health.v1.Health'] as protoLoader.ServiceDefinition;
  const check = service.Check!;
  healthCodec = { serialize: (r) => check.requestSerialize(r), deserialize: (b) => check.responseDeserialize(b) as { status?: string } };
  return healthCodec;
}

function probeGrpc(action: GrpcAction, target: ProbeTarget, incoming: IncomingProbe, timeoutMs: number): Promise<ProbeResult> {
  const message = codec().serialize({ service: action.service ?? '' });
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1); // byte 0: not compressed
  message.copy(frame, 5);
  const authority = hostPort(target.host, action.port);
  const ua = incoming.headers?.['user-agent'];
  return new Promise((resolve) => {
    let settled = false;
    const session = http2.connect(`http://${authority}`, {
      createConnection: () => net.connect({ host: target.host, port: action.port, ...(target.localAddress ? { localAddress: target.localAddress } : {}) }),
    });
    const timer = setTimeout(() => done(failed(`grpc request not finished within ${timeoutMs} ms`)), timeoutMs);
    function done(r: ProbeResult): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(r);
    }
    session.on('error', (err) => done(failed(`grpc connection failed: ${err.message}`)));
    const stream = session.request({
      ':method': 'POST',
      ':path': HEALTH_CHECK_PATH,
      ':authority': authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': `${timeoutMs}m`,
      'user-agent': typeof ua === 'string' ? ua : 'mizzen-agent-probe',
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    let httpStatus: number | undefined;
    const readStatus = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) grpcMessage = decodeURIComponent(String(h['grpc-message']));
    };
    stream.on('response', (h) => {
      httpStatus = Number(h[':status']);
      readStatus(h); // a trailers-only answer carries grpc-status in the headers
    });
    stream.on('trailers', readStatus);
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_GRPC_RESPONSE_BYTES) return done(failed('grpc health response too large'));
      chunks.push(c);
    });
    stream.on('error', (err) => done(failed(`grpc probe failed: ${err.message}`)));
    stream.on('close', () => {
      if (httpStatus !== 200) return done(failed(`grpc probe failed: HTTP status ${httpStatus ?? 'none'}`));
      if (grpcStatus !== '0') {
        const code = Number(grpcStatus);
        const what = code === 12 ? 'server does not implement the grpc health protocol (grpc.health.v1.Health)' : `grpc probe failed: ${GRPC_CODES[code] ?? `status ${grpcStatus ?? 'missing'}`}`;
        return done(failed(grpcMessage ? `${what}: ${grpcMessage}` : what));
      }
      const body = Buffer.concat(chunks);
      if (body.length < 5 || body[0] !== 0) return done(failed('grpc probe failed: malformed response'));
      const len = body.readUInt32BE(1);
      const status = codec().deserialize(body.subarray(5, 5 + len)).status;
      done(status === 'SERVING' ? passed() : failed(`grpc health status ${status ?? 'UNKNOWN'}`));
    });
    stream.end(frame);
  });
}
