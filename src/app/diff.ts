/**
 * `mizzen diff --config DIR FILE...`: a dry run of a config change. The folder is the mesh as it is; the files are
 * the change (objects added or replaced by kind/namespace/name; `--delete FILE|Kind/ns/name` removes). For every
 * proxy in scope the resources `serve` would send are translated before and after (translateOffline: the same
 * provider, cache and encoder as `serve`), and the difference is printed per xDS type: added, removed, and changed
 * with one `path: old → new` line per JSON-patch operation (RFC 6902, computed by the rfc6902 library). Proxies whose
 * difference is identical are printed once as a group, so a namespace of 40 alike pods reads as one change.
 *
 * Proxies in scope: every Pod in DIR (or the change) — a router when a Gateway selects it, else a sidecar; one router
 * per distinct Gateway selector no Pod matches; `--proxy` (a node id or pod.namespace); `--namespaces` (one
 * label-less sidecar per namespace, i.e. the namespace-wide view). With none of those, one sidecar per namespace.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createPatch, type Operation } from 'rfc6902';
import { allKinds } from '../config/kinds/all.ts';
import type { GatewaySpec } from '../config/kinds/gateway.ts';
import type { Pod } from '../config/kinds/kubernetes.ts';
import { formatConfigError, keyOf, type ConfigObject } from '../config/object.ts';
import { listYamlFiles } from '../config/sources/file-source.ts';
import { loadYamlText } from '../config/sources/load-file.ts';
import { parseYamlDocuments } from '../config/yaml-docs.ts';
import { redactPrivateKeys } from '../proto/redact.ts';
import { ProxyRefused, translateOffline, type NodeInfo, type OfflineTranslation } from './offline-translate.ts';

type Json = Record<string, any>;

export interface DiffOptions {
  /** The mesh as it is: a folder (or file) of Istio YAML, read as `serve` reads it. */
  config: string;
  /** The change: YAML files whose objects are added, or replace the object of the same kind/namespace/name. */
  files: string[];
  /** Objects to remove: YAML files (only kind, namespace and name are read) or `Kind/namespace/name`. */
  delete?: string[];
  /** More proxies: full node ids (`sidecar~ip~pod.ns~ns.svc.cluster.local`) or `pod.namespace` of a Pod in DIR. */
  proxy?: string[];
  /** One representative sidecar per namespace: these namespaces, or (true) every namespace in the config. */
  namespaces?: string[] | boolean;
  /** `text` (default) or `json`. */
  output?: string;
}

export interface DiffResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A proxy the change is evaluated for. */
export interface ScopedProxy {
  /** How it is shown: `pod.namespace`, `gateway {istio=ingressgateway}`, `namespace bookinfo`, or the node id. */
  name: string;
  node: NodeInfo;
}

export type XdsType = 'LDS' | 'RDS' | 'CDS' | 'EDS' | 'SDS';
const SECTIONS: ReadonlyArray<[XdsType, keyof Pick<OfflineTranslation, 'listeners' | 'routes' | 'clusters' | 'endpoints' | 'secrets'>]> = [
  ['LDS', 'listeners'],
  ['RDS', 'routes'],
  ['CDS', 'clusters'],
  ['EDS', 'endpoints'],
  ['SDS', 'secrets'],
];

export interface ResourceChange {
  type: XdsType;
  name: string;
  op: 'added' | 'changed' | 'removed';
  /** changed: the RFC 6902 patch from the old resource to the new one. */
  patch?: Operation[];
  /** changed: the patch as `path: old → new` lines, array elements named by their `name` where it is unique. */
  lines?: string[];
}

export interface DiffGroup {
  proxies: string[];
  changes: ResourceChange[];
}

export interface DiffReport {
  /** What the change does to the config, one line per object (`VirtualService bookinfo/reviews: updated`). */
  change: string[];
  proxies: number;
  /** Proxies with the same difference, grouped; proxies with none are in `unchanged`. */
  groups: DiffGroup[];
  unchanged: string[];
  warnings: string[];
}

export class DiffError extends Error {}

/* ------------------------------------------------------------------ loading */

interface Loaded {
  objects: ConfigObject[];
  errors: string[];
  ignored: string[];
}

async function loadPaths(p: string, now: string): Promise<Loaded> {
  if (!fs.existsSync(p)) throw new DiffError(`${p}: no such file or directory`);
  const isDir = fs.statSync(p).isDirectory();
  const files = isDir ? await listYamlFiles(p) : [p];
  const out: Loaded = { objects: [], errors: [], ignored: [] };
  for (const f of files) {
    const rel = isDir ? path.relative(p, f) : f;
    const loaded = loadYamlText(fs.readFileSync(f, 'utf8'), rel, allKinds, { defaultNamespace: 'default', now: () => now });
    out.objects.push(...loaded.objects);
    out.ignored.push(...loaded.ignored.map((k) => `${rel}: ${k}`));
    for (const e of loaded.errors) for (const line of formatConfigError(e)) out.errors.push(e.source ? `${e.source.file}:${e.source.line}: ${line}` : line);
  }
  return out;
}

/** `Kind/namespace/name` keys named by a delete argument: a YAML file (identity fields only) or the key itself. */
function deleteKeys(arg: string): string[] {
  if (!fs.existsSync(arg)) {
    if (/^[A-Za-z]+\/[^/\s]+\/[^/\s]+$/.test(arg)) return [arg];
    throw new DiffError(`--delete ${arg}: neither a file nor Kind/namespace/name`);
  }
  const { docs, errors } = parseYamlDocuments(fs.readFileSync(arg, 'utf8'));
  if (errors.length > 0) throw new DiffError(`--delete ${arg}:${errors[0]!.line}: ${errors[0]!.message}`);
  return docs.map((d) => {
    const v = d.value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
    if (typeof v.kind !== 'string' || typeof v.metadata?.name !== 'string') throw new DiffError(`--delete ${arg}:${d.line}: a document without kind or metadata.name`);
    return `${v.kind}/${typeof v.metadata.namespace === 'string' ? v.metadata.namespace : 'default'}/${v.metadata.name}`;
  });
}

const content = (o: ConfigObject) => JSON.stringify([o.spec, o.metadata.labels, o.metadata.annotations]);

/**
 * The config after the change. A replaced object keeps its creation time, as the store keeps it for a live update,
 * so "the oldest wins" rules resolve the same way `serve` would resolve them.
 */
export function applyChange(before: readonly ConfigObject[], upserts: readonly ConfigObject[], deletes: readonly string[]): { after: ConfigObject[]; change: string[]; warnings: string[] } {
  const byKey = new Map(before.map((o) => [keyOf(o), o]));
  const change: string[] = [];
  const warnings: string[] = [];
  const describe = (key: string) => {
    const [kind, ns, name] = key.split('/');
    return `${kind} ${ns}/${name}`;
  };
  for (const key of deletes) {
    if (byKey.delete(key)) change.push(`${describe(key)}: deleted`);
    else warnings.push(`${describe(key)} is not in the config: nothing to delete`);
  }
  for (const obj of upserts) {
    const key = keyOf(obj);
    const prev = byKey.get(key);
    if (!prev) {
      byKey.set(key, obj);
      change.push(`${describe(key)}: added`);
    } else if (content(prev) === content(obj)) {
      change.push(`${describe(key)}: unchanged (same content)`);
    } else {
      byKey.set(key, { ...obj, metadata: { ...obj.metadata, creationTimestamp: prev.metadata.creationTimestamp } });
      change.push(`${describe(key)}: updated`);
    }
  }
  return { after: [...byKey.values()], change, warnings };
}

/* ------------------------------------------------------------------ scope */

const podIp = (pod: ConfigObject<Pod>): string => pod.spec.status?.podIP ?? pod.spec.status?.podIPs?.[0]?.ip ?? '10.0.0.1';

function podNode(pod: ConfigObject<Pod>, type: 'sidecar' | 'router'): NodeInfo {
  const { name, namespace, labels } = pod.metadata;
  const sa = pod.spec.spec?.serviceAccountName;
  return {
    id: `${type}~${podIp(pod)}~${name}.${namespace}~${namespace}.svc.cluster.local`,
    cluster: '',
    metadata: { NAMESPACE: namespace, LABELS: { ...labels }, ...(sa ? { SERVICE_ACCOUNT: sa } : {}), ...(type === 'sidecar' ? { INTERCEPTION_MODE: 'REDIRECT' } : {}) },
  };
}

const selects = (selector: Record<string, string> | undefined, labels: Readonly<Record<string, string>>) =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

const noSidecar = (pod: ConfigObject<Pod>) => (pod.metadata.annotations['sidecar.istio.io/inject'] ?? pod.metadata.labels['sidecar.istio.io/inject']) === 'false' || pod.spec.spec?.hostNetwork === true;

/** Every proxy the change is evaluated for (see the file comment), each node id once. */
export function proxiesInScope(before: readonly ConfigObject[], after: readonly ConfigObject[], o: Pick<DiffOptions, 'proxy' | 'namespaces'>): { proxies: ScopedProxy[]; notes: string[] } {
  const all = new Map<string, ConfigObject>();
  for (const obj of [...before, ...after]) all.set(keyOf(obj), obj); // after wins
  const objects = [...all.values()];
  const podName = (x: ConfigObject) => `${x.metadata.name}.${x.metadata.namespace}`;
  const pods = objects.filter((x): x is ConfigObject<Pod> => x.kind === 'Pod').sort((a, b) => podName(a).localeCompare(podName(b)));
  const gateways = objects.filter((x): x is ConfigObject<GatewaySpec> => x.kind === 'Gateway').sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  const out = new Map<string, ScopedProxy>();
  const add = (p: ScopedProxy) => {
    if (!out.has(p.node.id)) out.set(p.node.id, p);
  };
  const notes: string[] = [];

  for (const pod of pods) {
    if (noSidecar(pod)) continue;
    const router = gateways.some((g) => selects(g.spec.selector, pod.metadata.labels));
    add({ name: `${pod.metadata.name}.${pod.metadata.namespace}`, node: podNode(pod, router ? 'router' : 'sidecar') });
  }
  // Gateways no Pod in the folder runs: one router per distinct selector (the deployment those Gateways configure).
  const selectors = new Set<string>();
  for (const g of gateways) {
    const sel = g.spec.selector ?? {};
    if (Object.keys(sel).length === 0 || pods.some((p) => selects(sel, p.metadata.labels))) continue;
    const label = Object.entries(sel).sort().map(([k, v]) => `${k}=${v}`).join(',');
    if (selectors.has(label)) continue;
    selectors.add(label);
    const ns = g.metadata.namespace;
    const pod = `gateway-${label.replace(/[^a-z0-9-]+/gi, '-').toLowerCase()}`;
    add({ name: `gateway {${label}}`, node: { id: `router~10.0.0.1~${pod}.${ns}~${ns}.svc.cluster.local`, cluster: '', metadata: { NAMESPACE: ns, LABELS: { ...sel } } } });
  }
  for (const p of o.proxy ?? []) add(namedProxy(pods, p));

  let namespaces = Array.isArray(o.namespaces) ? o.namespaces : o.namespaces === true ? undefined : [];
  if (!o.namespaces && out.size === 0) {
    notes.push('no Pods, gateways or --proxy in scope: one representative sidecar per namespace');
    namespaces = undefined;
  }
  namespaces ??= [...new Set(objects.filter((x) => x.kind !== 'Namespace' && x.kind !== 'Node').map((x) => x.metadata.namespace))].sort();
  for (const ns of namespaces) {
    add({ name: `namespace ${ns}`, node: { id: `sidecar~10.0.0.1~representative.${ns}~${ns}.svc.cluster.local`, cluster: '', metadata: { NAMESPACE: ns, LABELS: {}, INTERCEPTION_MODE: 'REDIRECT' } } });
  }
  return { proxies: [...out.values()], notes };
}

function namedProxy(pods: ReadonlyArray<ConfigObject<Pod>>, p: string): ScopedProxy {
  const parts = p.split('~');
  if (parts.length === 4) {
    const [type, , podPart = '', domain = ''] = parts;
    const ns = domain.split('.')[0] || 'default';
    const dot = podPart.lastIndexOf('.');
    const found = pods.find((x) => x.metadata.name === (dot > 0 ? podPart.slice(0, dot) : podPart) && x.metadata.namespace === ns);
    const labels = found ? { ...found.metadata.labels } : {};
    return { name: p, node: { id: p, cluster: '', metadata: { NAMESPACE: ns, LABELS: labels, ...(type === 'sidecar' ? { INTERCEPTION_MODE: 'REDIRECT' } : {}) } } };
  }
  const dot = p.lastIndexOf('.');
  const [name, ns] = dot > 0 ? [p.slice(0, dot), p.slice(dot + 1)] : [p, 'default'];
  const pod = pods.find((x) => x.metadata.name === name && x.metadata.namespace === ns);
  if (!pod) throw new DiffError(`--proxy ${p}: no Pod ${name}.${ns} in the config or the change (give a full node id sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local instead)`);
  return { name: `${name}.${ns}`, node: podNode(pod, 'sidecar') };
}

/* ------------------------------------------------------------------ diff */

const resourceName = (r: Json): string => String(r.name ?? r.cluster_name ?? r.clusterName ?? '');

const show = (v: unknown): string => (v === undefined ? '(none)' : JSON.stringify(v));

/**
 * An RFC 6902 patch as readable lines. Operations are applied one by one to a copy of the old resource, so each
 * path is resolved against the document it applies to (array indices shift as earlier operations add or remove):
 * `virtual_hosts[reviews.bookinfo.svc.cluster.local:9080].routes[1].route.weighted_clusters.clusters[outbound|9080|v1|reviews.bookinfo.svc.cluster.local].weight: 80 → 50`.
 */
export function describePatch(before: unknown, patch: readonly Operation[]): string[] {
  let doc: any = structuredClone(before);
  const lines: string[] = [];
  for (const op of patch) {
    const tokens = op.path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    const parts: string[] = [];
    let node: any = doc;
    for (const [i, t] of tokens.entries()) {
      if (Array.isArray(node)) {
        const idx = t === '-' ? node.length : Number(t);
        const el = i === tokens.length - 1 && op.op === 'add' ? (op as { value?: unknown }).value : node[idx];
        const name = el && typeof el === 'object' && typeof (el as Json).name === 'string' ? (el as Json).name as string : undefined;
        const unique = name !== undefined && node.filter((x: unknown) => x && typeof x === 'object' && (x as Json).name === name).length <= (i === tokens.length - 1 && op.op === 'add' ? 0 : 1);
        parts.push(`[${unique ? name : idx}]`);
      } else {
        parts.push(parts.length === 0 ? t : `.${t}`);
      }
      node = node?.[t === '-' ? -1 : t];
    }
    const where = parts.join('') || '(whole resource)';
    const old = op.op === 'add' ? undefined : node;
    const next = op.op === 'remove' ? undefined : (op as { value?: unknown }).value;
    lines.push(`${where}: ${show(old)} → ${show(next)}`);
    if (op.path === '') doc = structuredClone(next);
    else applyOne(doc, tokens, op);
  }
  return lines;
}

function applyOne(doc: any, tokens: string[], op: Operation): void {
  let parent = doc;
  for (const t of tokens.slice(0, -1)) parent = parent[t];
  const last = tokens[tokens.length - 1]!;
  const value = structuredClone((op as { value?: unknown }).value);
  if (Array.isArray(parent)) {
    const idx = last === '-' ? parent.length : Number(last);
    if (op.op === 'add') parent.splice(idx, 0, value);
    else if (op.op === 'remove') parent.splice(idx, 1);
    else parent[idx] = value;
  } else if (op.op === 'remove') delete parent[last];
  else parent[last] = value;
}

/** What changed between two translations for one proxy, per type (LDS, RDS, CDS, EDS, SDS), sorted by name. */
export function diffTranslations(before: OfflineTranslation, after: OfflineTranslation): ResourceChange[] {
  const out: ResourceChange[] = [];
  for (const [type, key] of SECTIONS) {
    const a = new Map(before[key].map((r) => [resourceName(r), redactPrivateKeys(r)]));
    const b = new Map(after[key].map((r) => [resourceName(r), redactPrivateKeys(r)]));
    for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
      const x = a.get(name);
      const y = b.get(name);
      if (!x) out.push({ type, name, op: 'added' });
      else if (!y) out.push({ type, name, op: 'removed' });
      else {
        const patch = createPatch(x, y);
        if (patch.length > 0) out.push({ type, name, op: 'changed', patch, lines: describePatch(x, patch) });
      }
    }
  }
  return out;
}

/** Translates before and after for every proxy and groups proxies whose difference is identical. */
export function computeDiff(before: readonly ConfigObject[], after: readonly ConfigObject[], proxies: readonly ScopedProxy[]): Pick<DiffReport, 'groups' | 'unchanged' | 'warnings'> {
  const warnings: string[] = [];
  const groups = new Map<string, DiffGroup>();
  const unchanged: string[] = [];
  for (const p of proxies) {
    let changes: ResourceChange[];
    try {
      const a = translateOffline(before, p.node, { trustClaims: true });
      const b = translateOffline(after, p.node, { trustClaims: true });
      if (a.generationErrors + b.generationErrors > 0) warnings.push(`${p.name}: ${a.generationErrors + b.generationErrors} resource(s) failed to generate and are left out (a mizzen bug)`);
      changes = diffTranslations(a, b);
    } catch (err) {
      if (!(err instanceof ProxyRefused)) throw err;
      warnings.push(`${p.name}: ${err.message}; left out`);
      continue;
    }
    if (changes.length === 0) {
      unchanged.push(p.name);
      continue;
    }
    const key = JSON.stringify(changes.map((c) => [c.type, c.name, c.op, c.patch]));
    const g = groups.get(key);
    if (g) g.proxies.push(p.name);
    else groups.set(key, { proxies: [p.name], changes });
  }
  return { groups: [...groups.values()], unchanged, warnings };
}

/* ------------------------------------------------------------------ output */

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const proxies = (n: number) => `${n} ${n === 1 ? 'proxy' : 'proxies'}`;
const MARK = { added: '+', removed: '-', changed: '~' } as const;

export function renderDiff(report: DiffReport): string {
  const out: string[] = [];
  out.push('change:');
  for (const c of report.change) out.push(`  ${c}`);
  out.push('');
  for (const g of report.groups) {
    out.push(g.proxies.length === 1 ? `change for 1 proxy: ${g.proxies[0]}` : `same change for ${g.proxies.length} proxies: ${g.proxies.join(', ')}`);
    for (const c of g.changes) {
      out.push(`  ${c.type} ${MARK[c.op]} ${c.name}${c.op === 'changed' ? '' : ` (${c.op})`}`);
      for (const l of c.lines ?? []) out.push(`      ${l}`);
    }
    out.push('');
  }
  if (report.unchanged.length > 0) out.push(`no change for ${proxies(report.unchanged.length)}: ${report.unchanged.join(', ')}`, '');
  const affected = report.groups.reduce((n, g) => n + g.proxies.length, 0);
  out.push(`${affected} of ${proxies(report.proxies)} affected, ${plural(report.groups.length, 'distinct change')}`);
  return `${out.join('\n')}\n`;
}

/** The whole command, without touching process: exit code and the text for stdout and stderr. */
export async function runDiff(o: DiffOptions): Promise<DiffResult> {
  const stderr: string[] = [];
  try {
    if (o.files.length === 0 && (o.delete ?? []).length === 0) throw new DiffError('nothing to diff: give change FILEs and/or --delete FILE|Kind/ns/name');
    const output = o.output ?? 'text';
    if (output !== 'text' && output !== 'json') throw new DiffError(`-o must be text or json, not ${JSON.stringify(output)}`);
    const now = new Date();
    const base = await loadPaths(o.config, now.toISOString());
    if (base.errors.length > 0) stderr.push(`warning: ${base.errors.length} object(s) in ${o.config} refused and left out (before and after); see mizzen validate ${o.config}`);
    // Objects of the change are newer than everything in the folder, as they would be when applied.
    const later = new Date(now.getTime() + 1000).toISOString();
    const upserts: ConfigObject[] = [];
    const refused: string[] = [];
    for (const f of o.files) {
      const loaded = await loadPaths(f, later);
      upserts.push(...loaded.objects);
      refused.push(...loaded.errors);
      for (const i of loaded.ignored) stderr.push(`warning: ${i} is not an Istio or registry kind; ignored`);
    }
    if (refused.length > 0) {
      stderr.push('Error: the change would be refused:', ...refused.map((l) => `  ${l}`));
      return { code: 1, stdout: '', stderr: stderr.map((l) => `${l}\n`).join('') };
    }
    const applied = applyChange(base.objects, upserts, (o.delete ?? []).flatMap(deleteKeys));
    stderr.push(...applied.warnings.map((w) => `warning: ${w}`));
    const scope = proxiesInScope(base.objects, applied.after, o);
    stderr.push(...scope.notes.map((n) => `note: ${n}`));
    const diff = computeDiff(base.objects, applied.after, scope.proxies);
    stderr.push(...diff.warnings.map((w) => `warning: ${w}`));
    const report: DiffReport = { change: applied.change, proxies: scope.proxies.length, ...diff };
    const stdout = output === 'json' ? `${JSON.stringify({ ...report, proxyNodes: Object.fromEntries(scope.proxies.map((p) => [p.name, p.node.id])) }, null, 2)}\n` : renderDiff(report);
    return { code: 0, stdout, stderr: stderr.map((l) => `${l}\n`).join('') };
  } catch (err) {
    if (!(err instanceof DiffError)) throw err;
    stderr.push(`Error: ${err.message}`);
    return { code: 1, stdout: '', stderr: stderr.map((l) => `${l}\n`).join('') };
  }
}
