/**
 * The destination proxy's decisions for one request, from the config the destination workload is sent: the inbound
 * mTLS mode of the port (which transport protocols virtualInbound's chains for it accept, as PeerAuthentication made
 * them), whether the connection is accepted, the JWT requirement (jwt_authn) and the authorization decision (the RBAC
 * filters, evaluated by rbac-eval.ts; policy names `ns[..]-policy[..]-rule[..]` name the AuthorizationPolicy and rule).
 */
import type { UpstreamTls } from './describe-cluster.ts';
import { jwtDecision, JWT_AUTHN_FILTER, type JwtDecision } from './jwt.ts';
import { evaluateHttp, evaluateNetwork, type Decision } from './rbac-eval.ts';
import { walk, type DecodedConfig, type Json } from './simulate.ts';

export interface InboundRequest {
  /** The endpoint the source connects to. */
  address: string;
  port: number;
  host: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  /** HTTP, or a TCP connection (tcp_proxy on the source). */
  http: boolean;
  /** What the source proxy sends. */
  tls: UpstreamTls;
  /** The source's SPIFFE identity (presented when it sends ISTIO_MUTUAL). */
  sourcePrincipal: string;
  sourceIp: string;
  /** The destination's own SPIFFE identity (checked against the source's SAN list). */
  destinationPrincipal?: string;
  nowSec: number;
}

export interface PolicyRef {
  /** The RBAC policy name as generated. */
  policy: string;
  namespace?: string;
  name?: string;
  rule?: number;
  /** A CUSTOM rule turned into DENY because mizzen cannot call the provider. */
  badCustom?: boolean;
}

export interface AuthzDecision {
  allowed: boolean;
  status: number;
  /** The policy that decided: ALLOW's match, DENY's match. */
  by?: PolicyRef & { action: string };
  /** Index (in the chain's filters) of the RBAC filter that denied. */
  deniedAt?: number;
  /** In words. */
  reason: string;
  /** Policies of the enforcing filters, per action, for context. */
  policies: Record<string, string[]>;
  dryRun: Array<{ action: string; matched?: string }>;
  logged: string[];
  /** HTTP filters the evaluator does not know and skipped. */
  skipped: string[];
  /** The evaluator could not evaluate something (CEL, matcher trees): no decision. */
  error?: string;
}

export interface InboundDecision {
  proxy: 'sidecar' | 'proxyless';
  listener?: string;
  chain?: string;
  /** From the chains for this port: both TLS and plaintext → PERMISSIVE, TLS only → STRICT, plaintext only → DISABLE. */
  mtlsMode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  connection: { accepted: boolean; mtls: boolean; peerPrincipal?: string; reason: string };
  route?: { routeConfig?: string; cluster?: string };
  jwt?: JwtDecision;
  authz?: AuthzDecision;
  /** The request's fate at the destination proxy: 200 (handed to the app), 401, 403, 400/404 (path refused), or reset. */
  status: number | 'reset';
}

const POLICY = /^(?:istio-ext-authz-(?:.+?-)?)?ns\[(.+?)\]-policy\[(.+?)\]-rule\[(\d+)\](-deny-due-to-bad-CUSTOM-action)?$/;

export function parsePolicyName(policy: string): PolicyRef {
  const m = POLICY.exec(policy);
  if (!m) return { policy };
  return { policy, namespace: m[1]!, name: m[2]!, rule: Number(m[3]), ...(m[4] ? { badCustom: true } : {}) };
}

function mtlsMode(listener: Json, port: number, proxyless: boolean): InboundDecision['mtlsMode'] {
  const chains = (listener.filter_chains ?? []) as Json[];
  if (proxyless) return chains.some((c) => c.transport_socket) ? 'STRICT' : 'DISABLE';
  const forPort = chains.filter((c) => c.filter_chain_match?.destination_port === port);
  const set = forPort.length > 0 ? forPort : chains.filter((c) => c.filter_chain_match?.destination_port === undefined);
  const tls = set.some((c) => c.filter_chain_match?.transport_protocol === 'tls' && c.transport_socket);
  const plain = set.some((c) => c.filter_chain_match?.transport_protocol !== 'tls');
  return tls && plain ? 'PERMISSIVE' : tls ? 'STRICT' : 'DISABLE';
}

function policiesOf(filters: readonly Json[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of filters) {
    const rules = f.name === 'envoy.filters.http.rbac' || f.name === 'envoy.filters.network.rbac' ? f.typed_config?.rules : undefined;
    if (!rules) continue;
    const action = String(rules.action ?? 'ALLOW');
    out[action] = [...(out[action] ?? []), ...Object.keys(rules.policies ?? {}).sort()];
  }
  return out;
}

function authz(filters: readonly Json[], run: (skip: (n: string) => void) => Decision): AuthzDecision {
  const skipped: string[] = [];
  const policies = policiesOf(filters);
  let d: Decision;
  try {
    d = run((n) => skipped.push(n));
  } catch (err) {
    return { allowed: false, status: 0, reason: 'not evaluated', policies, dryRun: [], logged: [], skipped, error: err instanceof Error ? err.message : String(err) };
  }
  const base = { policies, dryRun: d.shadow.map((s) => ({ action: s.action, ...(s.matched ? { matched: s.matched } : {}) })), logged: d.logged, skipped };
  if (d.status === 400 || d.status === 404 || d.status === 307) return { ...base, allowed: false, status: d.status, reason: `refused by the HCM before any filter: ${d.reason}` };
  const last = d.enforced.at(-1);
  if (!d.allowed) {
    const at = last ? { deniedAt: last.filter } : {};
    if (last?.matched) return { ...base, ...at, allowed: false, status: 403, by: { ...parsePolicyName(last.matched), action: last.action }, reason: `${last.action} policy matched` };
    return { ...base, ...at, allowed: false, status: 403, reason: `no ALLOW policy matched (ALLOW policies here: ${(policies.ALLOW ?? []).join(', ') || 'none: allow-nothing'})` };
  }
  const allow = d.enforced.find((e) => e.action === 'ALLOW' && e.matched);
  if (allow) return { ...base, allowed: true, status: 200, by: { ...parsePolicyName(allow.matched!), action: 'ALLOW' }, reason: 'ALLOW policy matched' };
  if (d.enforced.length === 0) return { ...base, allowed: true, status: 200, reason: 'no AuthorizationPolicy applies to this workload' };
  return { ...base, allowed: true, status: 200, reason: 'no DENY policy matched and no ALLOW policy applies' };
}

export function explainInbound(cfg: DecodedConfig, req: InboundRequest, o: { proxyless?: boolean; listenerName?: string } = {}): InboundDecision {
  const proxyless = o.proxyless === true;
  const sendsTls = req.tls.mode !== 'plaintext';
  const w = walk(cfg, {
    direction: 'inbound',
    port: req.port,
    address: req.address,
    ...(o.listenerName ? { listenerName: o.listenerName } : {}),
    protocol: req.http ? 'http' : 'tcp',
    tls: sendsTls,
    ...(req.tls.alpn ? { alpn: req.tls.alpn } : {}),
    ...(req.tls.sni ? { sni: req.tls.sni } : {}),
    host: req.host,
    path: req.path,
    method: req.method,
    headers: req.headers,
  });
  const base = { proxy: proxyless ? ('proxyless' as const) : ('sidecar' as const) };
  if (!w.listener) return { ...base, mtlsMode: 'DISABLE', connection: { accepted: false, mtls: false, reason: `the destination proxy has no inbound listener${o.listenerName ? ` ${o.listenerName}` : ''}` }, status: 'reset' };
  const mode = mtlsMode(w.listener, req.port, proxyless);
  const out: InboundDecision = { ...base, listener: w.listener.name, mtlsMode: mode, connection: { accepted: false, mtls: false, reason: '' }, status: 'reset' };
  if (!w.chain) {
    out.connection.reason = mode === 'STRICT' && !sendsTls ? 'STRICT mTLS: a plaintext connection matches no filter chain and is closed' : (w.error ?? 'no filter chain');
    return out;
  }
  out.chain = w.chain.name ?? String(w.chainIndex);
  const terminates = w.chain.transport_socket !== undefined;
  // TLS the source proxy originates (DestinationRule SIMPLE/MUTUAL) is for the application: its sidecar passes it on.
  if (sendsTls && !terminates && req.tls.mode === 'ISTIO_MUTUAL') {
    out.connection.reason = `the source sends mTLS but this port is plaintext (${mode}): the handshake fails`;
    return out;
  }
  if (!sendsTls && terminates) {
    out.connection.reason = 'a plaintext connection reached a TLS chain';
    return out;
  }
  const mtls = sendsTls && terminates && req.tls.mode === 'ISTIO_MUTUAL';
  if (mtls && req.tls.sans && req.destinationPrincipal && !req.tls.sans.includes(req.destinationPrincipal)) {
    out.connection.reason = `the source only accepts ${req.tls.sans.join(', ')}, the destination presents ${req.destinationPrincipal}: the handshake fails`;
    return out;
  }
  out.connection = {
    accepted: true,
    mtls,
    ...(mtls ? { peerPrincipal: req.sourcePrincipal } : {}),
    reason: mtls ? `mTLS: the source presents ${req.sourcePrincipal}` : sendsTls ? 'TLS for the application, passed through: no peer identity' : 'plaintext: no peer identity',
  };
  const peer = mtls ? req.sourcePrincipal : undefined;
  const rbacReq = { host: req.host, method: req.method, path: req.path, headers: req.headers, ...(peer ? { sourcePrincipal: peer } : {}), sourceIp: req.sourceIp, destinationIp: req.address, destinationPort: req.port, ...(mtls && req.tls.sni ? { sni: req.tls.sni } : {}) };
  if (w.tcpProxy) {
    out.route = { ...(w.tcpProxy.cluster ? { cluster: w.tcpProxy.cluster } : {}) };
    out.authz = authz(w.chain.filters ?? [], (skip) => evaluateNetwork(w.chain!.filters ?? [], rbacReq, { onUnknownFilter: skip }));
    out.status = out.authz.error ? 0 : out.authz.allowed ? 200 : 'reset';
    return out;
  }
  const hcm = w.hcm ?? {};
  const filters = (hcm.http_filters ?? []) as Json[];
  out.route = { ...(w.routeConfig?.name ? { routeConfig: w.routeConfig.name } : {}), ...(w.route?.route?.cluster ? { cluster: w.route.route.cluster } : {}) };
  const jwt = jwtDecision(filters, { path: req.path, method: req.method, host: req.host, headers: req.headers }, req.nowSec);
  if (jwt) out.jwt = jwt;
  out.authz = authz(filters, (skip) => evaluateHttp({ ...hcm, http_filters: filters }, { ...rbacReq, ...(jwt?.payload ? { jwtPayload: jwt.payload } : {}) }, { onUnknownFilter: skip }));
  // Filters run in chain order: a CUSTOM (or bad-CUSTOM DENY) filter before jwt_authn answers 403 before a bad token's 401.
  const jwtAt = filters.findIndex((f) => f.name === JWT_AUTHN_FILTER);
  const deniedFirst = out.authz.deniedAt !== undefined && out.authz.deniedAt < jwtAt;
  if (jwt && !jwt.allowed && !deniedFirst) out.status = 401;
  else out.status = out.authz.error ? 0 : out.authz.status;
  return out;
}
