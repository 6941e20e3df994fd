/**
 * `mizzen explain`: loads the config folder as `serve` reads it, builds the source proxy's node (a Pod of the folder,
 * or a namespace + labels + service account), translates the config for it (app/offline-translate.ts: the resources
 * the proxy would be sent), walks the request through them (explain/outbound.ts), then — for each destination
 * cluster — finds the workload behind its chosen endpoint, translates for that workload's proxy and walks the inbound
 * side (explain/inbound.ts). Every decision is read from generated config; the Kubernetes/Istio objects are used only
 * to find nodes (pods, service accounts, addresses) and to name a VirtualService rule.
 */
import fs from 'node:fs';
import path from 'node:path';
import { allKinds } from '../config/kinds/all.ts';
import type { DestinationRuleSpec } from '../config/kinds/destination-rule.ts';
import type { K8sService, Pod } from '../config/kinds/kubernetes.ts';
import type { ServiceEntrySpec } from '../config/kinds/service-entry.ts';
import type { VirtualServiceSpec } from '../config/kinds/virtual-service.ts';
import type { WorkloadEntrySpec } from '../config/kinds/workload-entry.ts';
import type { ConfigObject } from '../config/object.ts';
import { listYamlFiles } from '../config/sources/file-source.ts';
import { loadYamlText } from '../config/sources/load-file.ts';
import { explainInbound, explainOutbound, outcome, renderText, type DecodedConfig, type DestinationWorkload, type ExplainRequest, type Explanation, type SourceDescription } from '../explain/explain.ts';
import type { EndpointInfo } from '../explain/describe-cluster.ts';
import type { DestinationDecision } from '../explain/outbound.ts';
import { DEFAULT_MESH, type MeshConfig } from '../model/mesh.ts';
import { GRPC_INBOUND_LISTENER_PREFIX, parseClusterName } from '../model/names.ts';
import { parseLabels } from './bootstrap.ts';
import { ProxyRefused, translateOffline, type NodeInfo } from './offline-translate.ts';

export interface ExplainOptions {
  /** `<pod>.<namespace>`: a Pod of the config folder. */
  from?: string;
  fromNamespace?: string;
  /** `k=v,...` */
  fromLabels?: string;
  fromSa?: string;
  fromIp?: string;
  /** The source is a proxyless gRPC client (default: from the Pod's `inject.istio.io/templates` annotation). */
  proxyless?: boolean;
  /** `host:port` (port 80 when left out). */
  to: string;
  method?: string;
  path?: string;
  /** `name: value` */
  header?: string[];
  tls?: boolean;
}

export class ExplainError extends Error {}

type Obj = ConfigObject<any>;
const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
const SECRET_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

/** Every YAML under `dir` (or the one file), validated as `serve` reads it. */
export async function loadExplainConfig(dirOrFile: string): Promise<{ objects: Obj[]; refused: number }> {
  if (!fs.existsSync(dirOrFile)) throw new ExplainError(`config folder ${dirOrFile} does not exist`);
  const isDir = fs.statSync(dirOrFile).isDirectory();
  const files = isDir ? await listYamlFiles(dirOrFile) : [dirOrFile];
  const now = new Date().toISOString();
  const out = { objects: [] as Obj[], refused: 0 };
  for (const f of files) {
    const loaded = loadYamlText(fs.readFileSync(f, 'utf8'), path.relative(isDir ? dirOrFile : path.dirname(dirOrFile), f), allKinds, { defaultNamespace: 'default', now: () => now });
    out.objects.push(...loaded.objects);
    out.refused += loaded.errors.length;
  }
  return out;
}

/** `host:port`, `[v6]:port`, or `host` (port 80). */
export function parseTarget(to: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(to) ?? /^([^:]+)(?::(\d+))?$/.exec(to);
  const port = Number(m?.[2] ?? 80);
  if (!m || !m[1] || !Number.isInteger(port) || port <= 0 || port > 65535) throw new ExplainError(`--to must be host:port, not ${JSON.stringify(to)}`);
  return { host: m[1].toLowerCase(), port };
}

function parseHeaders(list: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list ?? []) {
    const i = h.indexOf(':', h.startsWith(':') ? 1 : 0);
    if (i <= 0) throw new ExplainError(`-H must be 'name: value', not ${JSON.stringify(h)}`);
    out[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return out;
}

const find = (objects: readonly Obj[], kind: string, ns: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.namespace === ns && o.metadata.name === name);
const podIp = (p: Obj): string | undefined => (p.spec as Pod).status?.podIP ?? (p.spec as Pod).status?.podIPs?.[0]?.ip;
const podSa = (p: Obj): string => (p.spec as Pod).spec?.serviceAccountName ?? 'default';
const isProxylessPod = (p: Obj) => /grpc/.test(p.metadata.annotations['inject.istio.io/templates'] ?? '');
const principal = (mesh: MeshConfig, ns: string, sa: string) => `spiffe://${mesh.trustDomain}/ns/${ns}/sa/${sa}`;

function sourceOf(objects: readonly Obj[], o: ExplainOptions, mesh: MeshConfig): { source: SourceDescription; pod?: Obj } {
  let labels: Record<string, string> | undefined;
  try {
    labels = o.fromLabels !== undefined ? parseLabels(o.fromLabels) : undefined;
  } catch (err) {
    throw new ExplainError(`--from-labels: ${(err as Error).message}`);
  }
  let pod: Obj | undefined;
  let name = 'explain-source';
  let ns = o.fromNamespace;
  if (o.from) {
    const dot = o.from.lastIndexOf('.');
    [name, ns] = dot > 0 && !o.fromNamespace ? [o.from.slice(0, dot), o.from.slice(dot + 1)] : [o.from, o.fromNamespace ?? 'default'];
    pod = find(objects, 'Pod', ns, name);
    if (!pod && !labels) throw new ExplainError(`pod ${name}.${ns} not found in the config folder; pass --from-namespace with --from-labels and --from-sa to describe a source without a Pod object`);
  }
  if (!ns) throw new ExplainError('give the source: --from <pod>.<namespace>, or --from-namespace NS [--from-labels k=v,...] [--from-sa SA]');
  const proxyless = o.proxyless ?? (pod ? isProxylessPod(pod) : false);
  const sa = o.fromSa ?? (pod ? podSa(pod) : 'default');
  const ip = o.fromIp ?? (pod ? podIp(pod) : undefined) ?? '10.0.0.1';
  const source: SourceDescription = {
    node: `sidecar~${ip}~${name}.${ns}~${ns}.svc.${mesh.domainSuffix}`,
    proxy: proxyless ? 'proxyless' : 'sidecar',
    ...(pod ? { workload: `Pod ${ns}/${name}` } : {}),
    namespace: ns,
    serviceAccount: sa,
    ip,
    labels: labels ?? { ...(pod?.metadata.labels ?? {}) },
    principal: principal(mesh, ns, sa),
  };
  return { source, ...(pod ? { pod } : {}) };
}

function nodeInfo(id: string, ns: string, labels: Record<string, string>, sa: string, proxyless: boolean): NodeInfo {
  const metadata: Record<string, unknown> = { NAMESPACE: ns, LABELS: labels, SERVICE_ACCOUNT: sa, ...(proxyless ? { GENERATOR: 'grpc' } : { INTERCEPTION_MODE: 'REDIRECT' }) };
  return { id, cluster: '', metadata } as NodeInfo;
}

function translate(objects: readonly Obj[], node: NodeInfo, mesh: MeshConfig, listeners?: string[]): { cfg: DecodedConfig; errors: number } {
  try {
    const t = translateOffline(objects, node, { trustClaims: true, mesh, ...(listeners ? { listeners } : {}) });
    return { cfg: { listeners: t.listeners, routes: t.routes, clusters: t.clusters, endpoints: t.endpoints }, errors: t.generationErrors };
  } catch (err) {
    if (err instanceof ProxyRefused) throw new ExplainError(`${node.id}: ${err.message}`);
    throw err;
  }
}

/** What the application's DNS lookup gives: a Service VIP or a ServiceEntry address (Kubernetes search path first). */
function resolveAddress(objects: readonly Obj[], host: string, ns: string, mesh: MeshConfig): { address?: string; how: string } {
  if (/^[\d.]+$/.test(host) || host.includes(':')) return { address: host, how: `${host} is an address` };
  const suffix = mesh.domainSuffix;
  const names = [`${host}.${ns}.svc.${suffix}`, `${host}.svc.${suffix}`, `${host}.${suffix}`, host];
  for (const name of names) {
    for (const svc of objects.filter((o) => o.kind === 'Service')) {
      if (`${svc.metadata.name}.${svc.metadata.namespace}.svc.${suffix}` !== name) continue;
      const ip = (svc.spec as K8sService).spec?.clusterIP;
      if (ip && ip !== 'None') return { address: ip, how: `${host} resolves to Service ${svc.metadata.namespace}/${svc.metadata.name} VIP ${ip}` };
      return { how: `${host} is Service ${svc.metadata.namespace}/${svc.metadata.name} without a VIP` };
    }
    for (const se of objects.filter((o) => o.kind === 'ServiceEntry')) {
      const spec = se.spec as ServiceEntrySpec;
      if (!spec.hosts.includes(name)) continue;
      const a = spec.addresses?.[0];
      return a ? { address: a.replace(/\/\d+$/, ''), how: `${host} resolves to ServiceEntry ${se.metadata.namespace}/${se.metadata.name} address ${a}` } : { how: `${host} is ServiceEntry ${se.metadata.namespace}/${se.metadata.name} (no address: the port's listener catches it)` };
    }
  }
  return { how: `${host} is not a service of the config folder` };
}

function injection(labels: Readonly<Record<string, string>>, annotations: Readonly<Record<string, string>> = {}): DestinationWorkload['proxy'] {
  if (/grpc/.test(annotations['inject.istio.io/templates'] ?? '')) return 'proxyless';
  if (labels[TLS_MODE_LABEL] === 'istio' || annotations['sidecar.istio.io/status']) return 'sidecar';
  return 'none';
}

/** The workload behind a cluster's chosen endpoint: endpoint metadata, pod IP, ServiceEntry endpoint, else the selector. */
function workloadFor(objects: readonly Obj[], d: DestinationDecision, ep: EndpointInfo, mesh: MeshConfig): DestinationWorkload | undefined {
  const base = { address: ep.address, port: ep.port };
  const ref = /^(Pod|WorkloadEntry) ([^/]+)\/(.+)$/.exec(ep.workload ?? '');
  const fromPod = (p: Obj, how: string): DestinationWorkload => ({ ...base, workload: `Pod ${p.metadata.namespace}/${p.metadata.name}`, how, namespace: p.metadata.namespace, serviceAccount: podSa(p), labels: { ...p.metadata.labels }, proxy: injection(p.metadata.labels, p.metadata.annotations) });
  if (ref?.[1] === 'Pod') {
    const p = find(objects, 'Pod', ref[2]!, ref[3]!);
    if (p) return fromPod(p, 'the endpoint metadata (istio.workload)');
  }
  if (ref?.[1] === 'WorkloadEntry') {
    const we = find(objects, 'WorkloadEntry', ref[2]!, ref[3]!);
    if (we) {
      const s = we.spec as WorkloadEntrySpec;
      const labels = { ...we.metadata.labels, ...(s.labels ?? {}) };
      return { ...base, workload: `WorkloadEntry ${ref[2]}/${ref[3]}`, how: 'the endpoint metadata (istio.workload)', namespace: ref[2]!, serviceAccount: s.serviceAccount ?? 'default', labels, proxy: injection(labels) };
    }
  }
  const byIp = objects.find((o) => o.kind === 'Pod' && podIp(o) === ep.address);
  if (byIp) return fromPod(byIp, 'its pod IP');
  const key = parseClusterName(d.cluster);
  for (const se of objects.filter((o) => o.kind === 'ServiceEntry' && (!key || (o.spec as ServiceEntrySpec).hosts.includes(key.host)))) {
    const e = ((se.spec as ServiceEntrySpec).endpoints ?? []).find((x) => x.address === ep.address && (!x.ports || Object.values(x.ports).includes(ep.port) || Object.keys(x.ports).length === 0));
    if (e) {
      const labels = { ...(e.labels ?? {}) };
      return { ...base, workload: `ServiceEntry ${se.metadata.namespace}/${se.metadata.name} endpoint`, how: 'its ServiceEntry endpoint', namespace: se.metadata.namespace, serviceAccount: e.serviceAccount ?? 'default', labels, proxy: injection(labels) };
    }
  }
  // Only labels are known: a Kubernetes Service's selector narrowed by the subset's labels.
  const svc = key ? objects.find((o) => o.kind === 'Service' && `${o.metadata.name}.${o.metadata.namespace}.svc.${mesh.domainSuffix}` === key.host) : undefined;
  if (!svc) return undefined;
  const ns = svc.metadata.namespace;
  const dr = d.info.destinationRule ? find(objects, 'DestinationRule', d.info.destinationRule.namespace, d.info.destinationRule.name) : undefined;
  const subset = d.info.subset ? (dr?.spec as DestinationRuleSpec | undefined)?.subsets?.find((s) => s.name === d.info.subset)?.labels : undefined;
  const labels = { ...((svc.spec as K8sService).spec?.selector ?? {}), ...(subset ?? {}) };
  // auto-mTLS marks endpoints of injected workloads (tlsMode=istio): the control plane's own view of a sidecar there.
  const proxy = ep.tlsMode === 'istio' ? 'sidecar' : 'none';
  return { ...base, workload: `selector ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') || '(none)'}`, how: `Service ${ns}/${svc.metadata.name}'s selector (no Pod object)${proxy === 'sidecar' ? ', a sidecar: the endpoint is labelled tlsMode=istio' : ''}`, namespace: ns, serviceAccount: 'default', labels, proxy };
}

export interface ExplainContext {
  mesh?: MeshConfig;
  /** Seconds since the epoch (JWT expiry checks). */
  now?: () => number;
}

/** The whole explanation, from loaded objects. */
export function explain(objects: readonly Obj[], o: ExplainOptions, ctx: ExplainContext = {}): Explanation {
  const mesh = ctx.mesh ?? DEFAULT_MESH;
  const warnings: string[] = [];
  const { source, pod: sourcePod } = sourceOf(objects, o, mesh);
  const proxyless = source.proxy === 'proxyless';
  const { host, port } = parseTarget(o.to);
  const resolved = resolveAddress(objects, host, source.namespace, mesh);
  const headers = parseHeaders(o.header);
  const request: ExplainRequest = {
    host,
    port,
    ...(resolved.address && !proxyless ? { address: resolved.address } : {}),
    method: (o.method ?? (proxyless ? 'POST' : 'GET')).toUpperCase(),
    path: o.path ?? '/',
    headers: proxyless ? { 'content-type': 'application/grpc', ...headers } : headers,
    tls: o.tls === true,
  };
  if (sourcePod && !proxyless && injection(sourcePod.metadata.labels, sourcePod.metadata.annotations) === 'none') warnings.push(`${source.workload} does not look injected (no ${TLS_MODE_LABEL}=istio label or sidecar.istio.io/status annotation): without a sidecar its traffic takes none of these outbound decisions`);
  const listenerName = proxyless ? `${host}:${port}` : undefined;
  const src = translate(objects, nodeInfo(source.node, source.namespace, source.labels, source.serviceAccount, proxyless), mesh, listenerName ? [listenerName] : undefined);
  if (src.errors > 0) warnings.push(`${src.errors} resource(s) failed to generate for the source proxy and are left out (a mizzen bug)`);
  const vsOf = (ns: string, name: string) => find(objects, 'VirtualService', ns, name)?.spec as VirtualServiceSpec | undefined;
  const outbound = explainOutbound(src.cfg, request, { proxyless, ...(listenerName ? { listenerName } : {}), virtualServices: vsOf });
  const authority = port === 80 || port === 443 ? host : `${host}:${port}`;
  const cache = new Map<string, DecodedConfig>();
  const destinations = outbound.stopped ? [] : outbound.destinations.map((d) => {
    if (!d.endpoint) return undefined;
    const w = workloadFor(objects, d, d.endpoint, mesh);
    if (!w || w.proxy === 'none') return w;
    const dstProxyless = w.proxy === 'proxyless';
    const pod = w.workload.startsWith('Pod ') ? w.workload.slice(w.workload.indexOf('/') + 1) : 'explain-destination';
    const id = `sidecar~${w.address}~${pod}.${w.namespace}~${w.namespace}.svc.${mesh.domainSuffix}`;
    const inboundListener = dstProxyless ? `${GRPC_INBOUND_LISTENER_PREFIX}${w.address}:${w.port}` : undefined;
    const key = `${id}|${inboundListener ?? ''}|${JSON.stringify(w.labels)}|${w.serviceAccount}`;
    let cfg = cache.get(key);
    if (!cfg) {
      const t = translate(objects, nodeInfo(id, w.namespace, w.labels, w.serviceAccount, dstProxyless), mesh, inboundListener ? [inboundListener] : undefined);
      if (t.errors > 0) warnings.push(`${t.errors} resource(s) failed to generate for ${w.workload}'s proxy (a mizzen bug)`);
      cfg = t.cfg;
      cache.set(key, cfg);
    }
    w.inbound = explainInbound(
      cfg,
      {
        address: w.address,
        port: w.port,
        host: authority,
        method: request.method,
        path: request.path,
        headers: request.headers,
        http: outbound.listener?.protocol !== 'TCP',
        tls: d.tls,
        sourcePrincipal: source.principal,
        sourceIp: source.ip,
        destinationPrincipal: principal(mesh, w.namespace, w.serviceAccount),
        nowSec: (ctx.now ?? (() => Date.now() / 1000))(),
      },
      { proxyless: dstProxyless, ...(inboundListener ? { listenerName: inboundListener } : {}) },
    );
    return w;
  });
  // Credentials the caller passed are not printed back.
  const shown = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, SECRET_HEADERS.has(k) ? `${v.split(' ')[0]} [redacted]` : v]));
  const e = { source, request: { ...request, headers: shown, resolvedFrom: resolved.how }, outbound, destinations, warnings };
  return { ...e, result: outcome(e) };
}

export interface ExplainResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command, without touching process: exit code and the text for stdout and stderr. */
export async function runExplain(config: string, o: ExplainOptions & { output?: string }, ctx: ExplainContext = {}): Promise<ExplainResult> {
  const stderr: string[] = [];
  try {
    const output = o.output ?? 'text';
    if (output !== 'text' && output !== 'json') throw new ExplainError(`-o must be text or json, not ${JSON.stringify(output)}`);
    const loaded = await loadExplainConfig(config);
    if (loaded.refused > 0) stderr.push(`warning: ${loaded.refused} object(s) refused and left out; see mizzen validate ${config}`);
    const e = explain(loaded.objects, o, ctx);
    const stdout = output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : renderText(e);
    return { code: 0, stdout, stderr: stderr.map((l) => `${l}\n`).join('') };
  } catch (err) {
    if (!(err instanceof ExplainError)) throw err;
    stderr.push(`Error: ${err.message}`);
    return { code: 1, stdout: '', stderr: stderr.map((l) => `${l}\n`).join('') };
  }
}
