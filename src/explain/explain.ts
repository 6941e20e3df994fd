/**
 * `mizzen explain`: every decision the mesh makes for one request, read from the generated config the proxies get —
 * the source proxy's (outbound.ts) and the destination workload's (inbound.ts). This module holds the whole
 * explanation's shape and renders it as numbered decision lines; app/explain.ts loads config, builds both nodes,
 * translates and resolves the destination workload.
 */
import { clusterText, type EndpointInfo } from './describe-cluster.ts';
import { faultText, routePolicyText } from './describe-route.ts';
import type { InboundDecision, PolicyRef } from './inbound.ts';
import type { DecodedConfig } from './simulate.ts';
import type { DestinationDecision, ExplainRequest, OutboundDecision } from './outbound.ts';

export { explainInbound, parsePolicyName, type InboundDecision, type InboundRequest } from './inbound.ts';
export { explainOutbound, type ExplainRequest, type OutboundDecision, type OutboundOptions } from './outbound.ts';
export type { DecodedConfig };

export interface SourceDescription {
  /** The xDS node id the source proxy connects with. */
  node: string;
  proxy: 'sidecar' | 'proxyless';
  /** `Pod ns/name` when the source is a Pod of the config folder. */
  workload?: string;
  namespace: string;
  serviceAccount: string;
  ip: string;
  labels: Record<string, string>;
  principal: string;
}

export interface DestinationWorkload {
  /** `Pod ns/name`, `WorkloadEntry ns/name`, `ServiceEntry ns/name endpoint`, or `selector k=v` when only labels are known. */
  workload: string;
  /** How it was found (endpoint metadata, pod IP, service selector). */
  how: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  address: string;
  port: number;
  /** Whether a proxy runs beside it (tlsMode=istio label / sidecar status annotation, or the proxyless template). */
  proxy: 'sidecar' | 'proxyless' | 'none';
  inbound?: InboundDecision;
}

export interface Explanation {
  source: SourceDescription;
  request: ExplainRequest & { resolvedFrom: string };
  outbound: OutboundDecision;
  /** Parallel to outbound.destinations: the workload behind each cluster's chosen endpoint. */
  destinations: Array<DestinationWorkload | undefined>;
  result: string[];
  warnings: string[];
}

const pct = (n: number) => `${Number(n.toFixed(2))}%`;

function requestLine(e: Explanation): string {
  const r = e.request;
  const hdrs = Object.entries(r.headers).map(([k, v]) => ` -H '${k}: ${v}'`).join('');
  const src = e.source.workload ?? `a ${e.source.proxy} in ${e.source.namespace}`;
  return `${r.tls ? 'TLS' : r.method} ${r.host}:${r.port}${r.tls ? '' : r.path}${hdrs} from ${src} (${e.source.proxy}, ${e.source.principal}, ${e.source.ip}); ${r.resolvedFrom}`;
}

function ruleText(o: OutboundDecision): string {
  const r = o.route!;
  const vs = r.virtualService;
  const who = vs ? `VirtualService ${vs.namespace}/${vs.name}${vs.rule !== undefined ? ` http[${vs.rule}]${vs.ruleName ? ` "${vs.ruleName}"` : ''}` : ''}` : (r.builtIn ?? 'route');
  if (r.action === 'direct_response') return `${who} (match ${r.match}) → direct response ${r.status}`;
  if (r.action === 'redirect') return `${who} (match ${r.match}) → redirect ${JSON.stringify(r.redirect)}`;
  const targets = o.destinations.map((d) => `${d.cluster} (${pct(d.percent)})`).join(', ');
  return `${who} (match ${r.match}) → ${targets || 'no cluster'}`;
}

function endpointsText(d: DestinationDecision): string {
  if (d.info.discovery === 'ORIGINAL_DST') return 'connects to the original destination';
  const healthy = d.endpoints.filter((e) => e.health === 'HEALTHY' || e.health === 'UNKNOWN').length;
  return `${d.endpoints.length} endpoint${d.endpoints.length === 1 ? '' : 's'} (${healthy} healthy)`;
}

function upstreamText(d: DestinationDecision): string {
  const t = d.tls;
  if (t.mode === 'plaintext') return `the source sends plaintext${t.via === 'auto-mTLS' ? ' (auto-mTLS: endpoint not labelled tlsMode=istio)' : ''}`;
  const detail = [t.mode === 'ISTIO_MUTUAL' ? 'ISTIO_MUTUAL' : '', t.sni ? `SNI ${t.sni}` : '', t.sans ? `expects ${t.sans.join(' or ')}` : ''].filter(Boolean).join(', ');
  return `the source sends ${t.mode === 'ISTIO_MUTUAL' ? 'mTLS' : 'TLS'}${detail ? ` (${detail})` : ''}`;
}

const policyText = (p: PolicyRef): string => (p.name !== undefined ? `${p.policy} (AuthorizationPolicy ${p.namespace}/${p.name} rules[${p.rule}]${p.badCustom ? ', a CUSTOM rule denied because its provider cannot be called' : ''})` : p.policy);

function endpointLabel(ep: EndpointInfo | undefined, w: DestinationWorkload | undefined): string {
  if (w) return `${w.workload} (${w.address}:${w.port})`;
  return ep ? `${ep.address}:${ep.port}` : 'no endpoint';
}

function inboundLines(d: DestinationDecision, w: DestinationWorkload | undefined): string[] {
  const head = `destination ${endpointLabel(d.endpoint, w)}`;
  if (!d.info.found) return [];
  if (d.cluster === 'BlackHoleCluster') return ['destination none: BlackHoleCluster drops the request (outboundTrafficPolicy REGISTRY_ONLY)'];
  if (!d.endpoint) return [`${head}: the cluster has no healthy endpoint — Envoy answers 503 (no healthy upstream)`];
  if (!w) return [`${head}: no workload found for this endpoint; ${upstreamText(d)}`];
  if (w.proxy === 'none') return [`${head}, found by ${w.how}: no proxy runs beside it (not injected), so nothing checks mTLS, JWT or authorization there; ${upstreamText(d)}`];
  const ib = w.inbound!;
  const conn = ib.connection.accepted ? ib.connection.reason : `connection refused: ${ib.connection.reason}`;
  const where = ib.route?.cluster ? ` → ${ib.route.cluster}` : '';
  const lines = [`${head}, found by ${w.how}: ${upstreamText(d)}; inbound mTLS ${ib.mtlsMode} on port ${w.port}${ib.chain ? ` (chain ${ib.chain})` : ''}: ${conn}${ib.connection.accepted ? where : ''}`];
  if (!ib.connection.accepted) return lines;
  const jwtBlocked = ib.status === 401;
  const a = ib.authz;
  if (a) {
    let text: string;
    if (a.error) text = `authorization: not evaluated (${a.error})`;
    else if (a.by) text = `authorization: ${a.allowed ? 'ALLOW' : `${a.status} DENY`} by ${policyText(a.by)}`;
    else text = `authorization: ${a.allowed ? 'allowed' : `${a.status} denied`}: ${a.reason}`;
    if (jwtBlocked) text += ' (not reached: the JWT check rejects the request first)';
    const extras = [
      a.dryRun.length ? `dry-run: ${a.dryRun.map((s) => `${s.action} ${s.matched ?? 'no match'}`).join(', ')}` : '',
      a.logged.length ? `audited by ${a.logged.join(', ')}` : '',
      a.skipped.length ? `filters not evaluated: ${a.skipped.join(', ')}` : '',
    ].filter(Boolean);
    lines.push(extras.length ? `${text}; ${extras.join('; ')}` : text);
  }
  const j = ib.jwt;
  if (!j) lines.push('JWT: no RequestAuthentication applies (no jwt_authn filter)');
  else {
    const providers = j.providers.map((p) => `${p.name} (issuer ${p.issuer ?? '(any)'}${p.audiences ? `, audiences ${p.audiences.join(', ')}` : ''}, token from ${p.from.join(' or ')}, keys: ${p.keys}${p.forward ? ', token forwarded upstream' : ''})`).join('; ');
    lines.push(`JWT: provider ${providers}; requirement: ${j.requirement}; ${j.allowed ? 'passes' : 'rejected'}: ${j.reason}`);
  }
  return lines;
}

/** The request's fate per destination share, in words (Explanation.result). */
export function outcome(e: Omit<Explanation, 'result'>): string[] {
  const o = e.outbound;
  if (o.stopped) return [`${o.stopped.status === 'reset' ? 'connection reset' : o.stopped.status} at the source proxy: ${o.stopped.reason}`];
  const out: string[] = [];
  const fault = o.route?.policy?.fault;
  if (fault) out.push(`fault injected by the source proxy: ${faultText(fault)} — otherwise:`);
  o.destinations.forEach((d, i) => {
    const w = e.destinations[i];
    const share = o.destinations.length > 1 || d.percent !== 100 ? `${pct(d.percent)} → ` : '';
    let fate: string;
    if (!d.info.found) fate = `503: cluster ${d.cluster} does not exist`;
    else if (d.cluster === 'BlackHoleCluster') fate = '502/reset: blocked (BlackHoleCluster)';
    else if (!d.endpoint) fate = '503: no healthy upstream';
    else if (!w || w.proxy === 'none' || !w.inbound) fate = `reaches ${endpointLabel(d.endpoint, w)}`;
    else if (w.inbound.status === 'reset') fate = `connection refused by ${w.workload}'s proxy (Envoy answers 503 to the app)`;
    else if (w.inbound.status === 200) fate = `reaches ${w.workload} (${w.address}:${w.port})`;
    else if (w.inbound.status === 0) fate = `unknown: ${w.inbound.authz?.error ?? 'not evaluated'}`;
    else fate = `${w.inbound.status} from ${w.workload}'s proxy`;
    out.push(`${share}${fate}`);
  });
  if (o.destinations.length === 0) out.push('no destination');
  return out;
}

/** The explanation as numbered decision lines. */
export function renderText(e: Explanation): string {
  const lines: string[] = [`explain ${requestLine(e)}`];
  const steps: string[] = [];
  const o = e.outbound;
  if (o.listener) steps.push(`listener ${o.listener.name} (${o.listener.protocol}${o.listener.chain ? `, ${o.listener.chain}` : ''}; ${o.listener.via})`);
  if (o.routeConfig) steps.push(`route config ${o.routeConfig.name} → virtual host ${o.routeConfig.virtualHost}${o.routeConfig.domain ? ` (domain ${o.routeConfig.domain})` : ''}`);
  if (o.route) steps.push(ruleText(o));
  if (o.route?.policy) steps.push(routePolicyText(o.route.policy));
  if (o.listener?.protocol === 'TCP' && o.destinations.length > 0) steps.push(`TCP proxy → ${o.destinations.map((d) => `${d.cluster} (${pct(d.percent)})`).join(', ')}`);
  o.destinations.forEach((d, i) => {
    const share = o.destinations.length > 1 ? ` (${pct(d.percent)})` : '';
    steps.push(`cluster ${d.cluster}${share}: ${d.info.found ? `${clusterText(d.info)}; ${d.info.tls}; ${endpointsText(d)}` : clusterText(d.info)}`);
    steps.push(...inboundLines(d, e.destinations[i]));
  });
  if (o.stopped && !o.route) steps.push(`stopped: ${o.stopped.reason}`);
  steps.forEach((s, i) => lines.push(`${i + 1}. ${s}`));
  for (const r of e.result) lines.push(`=> ${r}`);
  for (const w of e.warnings) lines.push(`warning: ${w}`);
  return `${lines.join('\n')}\n`;
}
