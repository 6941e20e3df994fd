/**
 * `mizzen proxy-config listeners|routes|clusters|endpoints|secrets|all <proxy>`: what one proxy is sent, as
 * `istioctl proxy-config` shows it. Two sources:
 * - offline (`--config DIR`): the folder `serve` would read, translated for the proxy through the same provider,
 *   cache and encoder `serve` uses (as a client would fetch it: LDS and CDS wildcard, then the RDS, EDS and SDS names
 *   those resources refer to);
 * - online (`--server URL`): `/debug/config_dump?proxyID=` of a running `mizzen serve`, i.e. what a connected proxy
 *   subscribed to and is being sent.
 */
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { allKinds } from '../config/kinds/all.ts';
import type { Pod } from '../config/kinds/kubernetes.ts';
import type { ConfigError, ConfigObject } from '../config/object.ts';
import { listYamlFiles } from '../config/sources/file-source.ts';
import { loadYamlText } from '../config/sources/load-file.ts';
import { parseLabels } from '../app/bootstrap.ts';
import { ProxyRefused, translateOffline, type NodeInfo } from '../app/offline-translate.ts';
import {
  clustersTable,
  endpointRows,
  endpointsTable,
  filterAssignments,
  filterClusters,
  filterListeners,
  filterRoutes,
  listenersTable,
  loadAssignments,
  routesTable,
  secretsTable,
  type ProxyFilters,
} from './proxy-config-tables.ts';

type Resource = Record<string, any>;

/** The resources one proxy is sent, decoded to proto3 JSON (as Envoy's config_dump shows them). */
export interface ProxyDump {
  proxy: string;
  listeners: Resource[];
  routes: Resource[];
  clusters: Resource[];
  endpoints: Resource[];
  secrets: Resource[];
  /** Things worth knowing that do not stop the command (refused objects, generation errors). */
  warnings: string[];
}

export interface ProxyConfigOptions extends ProxyFilters {
  config?: string;
  server?: string;
  namespace?: string;
  /** Proxy type: sidecar (default) or router (gateway). */
  type?: string;
  /** `k=v,...`: describe a proxy that has no Pod object in the folder. */
  labels?: string;
  ip?: string;
  output?: string;
}

export interface ProxyConfigResult {
  code: number;
  stdout: string;
  stderr: string;
}

const SECTIONS = ['clusters', 'listeners', 'routes', 'endpoints', 'secrets'] as const;
type Section = (typeof SECTIONS)[number];

/** istioctl's names for each kind, singular and plural. */
const SECTION_ALIASES: Record<string, Section | 'all'> = {
  listeners: 'listeners', listener: 'listeners', l: 'listeners',
  routes: 'routes', route: 'routes', r: 'routes',
  clusters: 'clusters', cluster: 'clusters', c: 'clusters',
  endpoints: 'endpoints', endpoint: 'endpoints', ep: 'endpoints',
  secrets: 'secrets', secret: 'secrets', s: 'secrets',
  all: 'all',
};

export class ProxyConfigError extends Error {}

/* ------------------------------------------------------------------ offline */

export interface LoadedConfig {
  objects: ConfigObject[];
  refused: ConfigError[];
}

/** Every YAML under `dir` (or the one file), validated as `serve` reads it. */
export async function loadConfig(dirOrFile: string): Promise<LoadedConfig> {
  if (!fs.existsSync(dirOrFile)) throw new ProxyConfigError(`config folder ${dirOrFile} does not exist`);
  const files = fs.statSync(dirOrFile).isDirectory() ? await listYamlFiles(dirOrFile) : [dirOrFile];
  const base = fs.statSync(dirOrFile).isDirectory() ? dirOrFile : path.dirname(dirOrFile);
  const now = new Date().toISOString();
  const out: LoadedConfig = { objects: [], refused: [] };
  for (const f of files) {
    const loaded = loadYamlText(fs.readFileSync(f, 'utf8'), path.relative(base, f), allKinds, { defaultNamespace: 'default', now: () => now });
    out.objects.push(...loaded.objects);
    out.refused.push(...loaded.errors);
  }
  return out;
}

/** `<pod>.<namespace>` (or `<pod>` with -n, default namespace `default`) → pod and namespace. */
export function podRef(proxy: string, namespace: string | undefined): { pod: string; namespace: string } {
  const dot = proxy.lastIndexOf('.');
  if (!namespace && dot > 0) return { pod: proxy.slice(0, dot), namespace: proxy.slice(dot + 1) };
  return { pod: proxy, namespace: namespace ?? 'default' };
}

const isNodeId = (proxy: string) => proxy.split('~').length === 4;

/**
 * The xDS node a proxy would connect with: a full node id as given, or a pod looked up in the config folder (labels,
 * IP and service account from its Pod object, as the injector starts the proxy), or — with --labels — a proxy that
 * has no Pod object.
 */
export function resolveNode(objects: ConfigObject[], proxy: string, opts: ProxyConfigOptions): NodeInfo {
  const proxyType = opts.type ?? 'sidecar';
  if (proxyType !== 'sidecar' && proxyType !== 'router') throw new ProxyConfigError(`--type must be sidecar or router, not ${JSON.stringify(proxyType)}`);
  let labels: Record<string, string> | undefined;
  try {
    labels = opts.labels !== undefined ? parseLabels(opts.labels) : undefined;
  } catch (err) {
    throw new ProxyConfigError(`--labels: ${err instanceof Error ? err.message : String(err)}`);
  }
  const intercept = proxyType === 'sidecar' ? { INTERCEPTION_MODE: 'REDIRECT' } : {};
  if (isNodeId(proxy)) {
    const [, , podPart = '', domain = ''] = proxy.split('~');
    const ns = opts.namespace ?? domain.split('.')[0] ?? 'default';
    const { pod } = podRef(podPart, undefined);
    const found = findPod(objects, pod, ns);
    const meta = found ? podMetadata(found) : {};
    return { id: proxy, cluster: '', metadata: { ...meta, NAMESPACE: ns, ...(labels ? { LABELS: labels } : {}), ...(proxy.startsWith('sidecar~') ? intercept : {}) } };
  }
  const { pod, namespace } = podRef(proxy, opts.namespace);
  const found = findPod(objects, pod, namespace);
  if (!found && !labels) {
    throw new ProxyConfigError(`pod ${pod}.${namespace} not found in the config folder (no Pod object there); pass --labels k=v,... to describe a proxy without one`);
  }
  const ip = opts.ip ?? (found ? podIp(found) : '10.0.0.1');
  if (!ip) throw new ProxyConfigError(`pod ${pod}.${namespace} has no status.podIP; pass --ip`);
  const metadata = { ...(found ? podMetadata(found) : { LABELS: {} }), NAMESPACE: namespace, ...(labels ? { LABELS: labels } : {}), ...intercept };
  return { id: `${proxyType}~${ip}~${pod}.${namespace}~${namespace}.svc.cluster.local`, cluster: '', metadata };
}

function findPod(objects: ConfigObject[], name: string, namespace: string): ConfigObject<Pod> | undefined {
  return objects.find((o) => o.kind === 'Pod' && o.metadata.name === name && o.metadata.namespace === namespace) as ConfigObject<Pod> | undefined;
}

const podIp = (pod: ConfigObject<Pod>): string | undefined => pod.spec.status?.podIP ?? pod.spec.status?.podIPs?.[0]?.ip;

function podMetadata(pod: ConfigObject<Pod>): Record<string, unknown> {
  const sa = pod.spec.spec?.serviceAccountName;
  return { LABELS: { ...pod.metadata.labels }, ...(sa ? { SERVICE_ACCOUNT: sa } : {}) };
}

/** The resources `serve` would send this node for this config, fetched as a client would. */
export function translateForNode(objects: ConfigObject[], node: NodeInfo): ProxyDump {
  let t;
  try {
    t = translateOffline(objects, node, { trustClaims: true });
  } catch (err) {
    if (err instanceof ProxyRefused) throw new ProxyConfigError(err.message);
    throw err;
  }
  const warnings = t.generationErrors > 0 ? [`${t.generationErrors} resource(s) failed to generate and are left out (a mizzen bug; serve logs the reason)`] : [];
  return { proxy: node.id, listeners: t.listeners, routes: t.routes, clusters: t.clusters, endpoints: t.endpoints, secrets: t.secrets, warnings };
}

/* ------------------------------------------------------------------ online */

/** The proxyID a running server is asked for: `<pod>.<namespace>`, a substring of its connection id. */
export function onlineProxyId(proxy: string, namespace: string | undefined): string {
  if (isNodeId(proxy)) return proxy.split('~')[2]!;
  const { pod, namespace: ns } = podRef(proxy, namespace);
  return `${pod}.${ns}`;
}

export async function fetchDump(server: string, proxyId: string): Promise<ProxyDump> {
  const url = new URL('/debug/config_dump', server.includes('://') ? server : `http://${server}`);
  url.searchParams.set('proxyID', proxyId);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new ProxyConfigError(`cannot reach ${url.origin}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
  }
  const text = await res.text();
  let body: Resource;
  try {
    body = JSON.parse(text) as Resource;
  } catch {
    throw new ProxyConfigError(`${url.origin} answered ${res.status} with a body that is not JSON`);
  }
  if (!res.ok) throw new ProxyConfigError(`${url.origin}: ${typeof body.error === 'string' ? body.error : `HTTP ${res.status}`}`);
  const list = (k: string): Resource[] => (Array.isArray(body[k]) ? (body[k] as Resource[]) : []);
  return { proxy: String(body.node ?? body.proxy ?? proxyId), listeners: list('lds'), routes: list('rds'), clusters: list('cds'), endpoints: list('eds'), secrets: list('sds'), warnings: [] };
}

/* ------------------------------------------------------------------ redaction */

/** Fields whose inline data is key material (Envoy's TlsCertificate, TlsSessionTicketKeys, GenericSecret). */
const SENSITIVE = new Set(['private_key', 'password', 'session_ticket_keys', 'generic_secret', 'privateKey', 'sessionTicketKeys', 'genericSecret']);
const INLINE = new Set(['inline_bytes', 'inline_string', 'inlineBytes', 'inlineString']);

/**
 * A deep copy with the inline data of every private key (and other key material) replaced by "[redacted]": -o json
 * and -o yaml print resources as decoded, and key material must never reach a terminal or a log.
 */
export function redactSecrets<T>(value: T, inside = false): T {
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, inside)) as T;
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (inside && INLINE.has(k)) out[k] = '[redacted]';
    else out[k] = redactSecrets(v, inside || SENSITIVE.has(k));
  }
  return out as T;
}

/* ------------------------------------------------------------------ output */

/** The resources of one section after the filters that apply to it. */
function sectionResources(dump: ProxyDump, section: Section, f: ProxyFilters): Resource[] {
  switch (section) {
    case 'listeners':
      return filterListeners(dump.listeners, f);
    case 'routes':
      return filterRoutes(dump.routes, f);
    case 'clusters':
      return filterClusters(dump.clusters, f);
    case 'endpoints':
      return filterAssignments(loadAssignments(dump.endpoints, dump.clusters), f);
    case 'secrets':
      return dump.secrets;
  }
}

function sectionTable(dump: ProxyDump, section: Section, f: ProxyFilters): string {
  switch (section) {
    case 'listeners':
      return listenersTable(filterListeners(dump.listeners, f));
    case 'routes':
      return routesTable(filterRoutes(dump.routes, f));
    case 'clusters':
      return clustersTable(filterClusters(dump.clusters, f));
    case 'endpoints':
      return endpointsTable(endpointRows(loadAssignments(dump.endpoints, dump.clusters), f));
    case 'secrets':
      return secretsTable(dump.secrets);
  }
}

/** Renders a dump: tables (istioctl's default), or the resources as JSON / YAML with key material redacted. */
export function renderDump(dump: ProxyDump, what: Section | 'all', output: string, f: ProxyFilters): string {
  const sections = what === 'all' ? SECTIONS : [what];
  if (output === 'json' || output === 'yaml') {
    const value = redactSecrets(what === 'all' ? Object.fromEntries(sections.map((s) => [s, sectionResources(dump, s, f)])) : sectionResources(dump, what, f));
    return output === 'json' ? `${JSON.stringify(value, null, 4)}\n` : stringify(value);
  }
  return sections.map((s) => sectionTable(dump, s, f)).join('\n');
}

/** The whole command, without touching process: exit code and the text for stdout and stderr. */
export async function runProxyConfig(kind: string, proxy: string, opts: ProxyConfigOptions): Promise<ProxyConfigResult> {
  const what = SECTION_ALIASES[kind.toLowerCase()];
  const stderr: string[] = [];
  try {
    if (!what) throw new ProxyConfigError(`unknown config type ${JSON.stringify(kind)}: use listeners, routes, clusters, endpoints, secrets or all`);
    const output = opts.output ?? 'table';
    if (!['table', 'short', 'json', 'yaml'].includes(output)) throw new ProxyConfigError(`-o must be table, json or yaml, not ${JSON.stringify(output)}`);
    if (!opts.config === !opts.server) throw new ProxyConfigError('give exactly one of --config DIR (offline) or --server URL (a running mizzen serve)');
    let dump: ProxyDump;
    if (opts.server) {
      dump = await fetchDump(opts.server, onlineProxyId(proxy, opts.namespace));
    } else {
      const loaded = await loadConfig(opts.config!);
      if (loaded.refused.length > 0) stderr.push(`warning: ${loaded.refused.length} object(s) refused and left out; see mizzen validate ${opts.config}`);
      dump = translateForNode(loaded.objects, resolveNode(loaded.objects, proxy, opts));
    }
    stderr.push(...dump.warnings.map((w) => `warning: ${w}`));
    return { code: 0, stdout: renderDump(dump, what, output, opts), stderr: stderr.map((l) => `${l}\n`).join('') };
  } catch (err) {
    if (!(err instanceof ProxyConfigError)) throw err;
    stderr.push(`Error: ${err.message}`);
    return { code: 1, stdout: '', stderr: stderr.map((l) => `${l}\n`).join('') };
  }
}
