/**
 * The analysis run: index the files, run every analyzer over one context, then drop what the user suppressed
 * (`galley.istio.io/analyze-suppress` on the resource, `-S CODE=Kind ns/name`) or scoped out (`-n`), and sort the way
 * istioctl does (worst level first, then code, then resource). Pure: file contents in, messages out.
 */
import type { ConfigError } from '../config/object.ts';
import type { MeshConfig } from '../model/mesh.ts';
import type { Analyzer } from './analyzer.ts';
import { createContext, type AnalysisFile } from './context.ts';
import { levelRank, origin, type Message } from './message.ts';
import { ANALYZERS } from './registry.ts';
import { SourceIndex } from './source-index.ts';

export interface Suppression {
  code: string;
  /** `Kind ns/name` (or istioctl's older `Kind name.ns`), `*` matching any run of characters. */
  resource: string;
}

export interface AnalyzeOptions {
  /** Namespace of objects that name none (the loader's default). */
  defaultNamespace: string;
  /** Only messages about resources in this namespace (and cluster-scoped ones); all when unset. */
  namespace?: string;
  suppress?: readonly Suppression[];
  mesh?: Partial<MeshConfig>;
  analyzers?: readonly Analyzer[];
}

/** A document that is not a Kubernetes object at all (YAML syntax, no apiVersion/kind): istioctl's parse errors. */
export interface Unparsed {
  file: string;
  line: number;
  message: string;
}

export interface AnalyzeResult {
  messages: Message[];
  unparsed: Unparsed[];
}

export const SUPPRESS_ANNOTATION = 'galley.istio.io/analyze-suppress';
const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'IstioOperator']);

function isParseError(e: ConfigError): boolean {
  if (e.kind === 'YAML' || e.kind === 'document') return true;
  return e.errors.some((f) => (f.path === 'apiVersion' || f.path === 'kind') && f.message === 'required field is missing');
}

const globToRegExp = (g: string) => new RegExp(`^${g.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

export function analyze(files: readonly AnalysisFile[], opts: AnalyzeOptions): AnalyzeResult {
  const index = new SourceIndex();
  const unparsed: Unparsed[] = [];
  const analysed: AnalysisFile[] = [];
  for (const f of files) {
    index.addFile(f.file, f.text);
    const errors: ConfigError[] = [];
    for (const e of f.errors) {
      if (!isParseError(e)) {
        errors.push(e);
        continue;
      }
      for (const fe of e.errors) {
        // The loader already prefixes YAML syntax errors with file:line.
        const text = e.kind === 'YAML' ? fe.message.replace(/^.*?:\d+: /, '') : fe.path ? `${fe.path}: ${fe.message}` : fe.message;
        unparsed.push({ file: e.source?.file ?? f.file, line: e.source?.line ?? 0, message: text });
      }
    }
    analysed.push({ ...f, errors });
  }

  const raw: Message[] = [];
  const ctx = createContext({ files: analysed, index, defaultNamespace: opts.defaultNamespace, ...(opts.mesh ? { mesh: opts.mesh } : {}), sink: (m) => raw.push(m) });
  for (const a of opts.analyzers ?? ANALYZERS) a.analyze(ctx);

  // Suppression annotations, by resource.
  const suppressedBy = new Map<string, string[]>();
  for (const d of index.docs) {
    const v = d.value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown; annotations?: Record<string, unknown> } };
    const ann = v?.metadata?.annotations?.[SUPPRESS_ANNOTATION];
    if (typeof v?.kind !== 'string' || typeof v.metadata?.name !== 'string' || typeof ann !== 'string') continue;
    const ns = typeof v.metadata.namespace === 'string' && v.metadata.namespace ? v.metadata.namespace : CLUSTER_SCOPED.has(v.kind) ? '' : opts.defaultNamespace;
    suppressedBy.set(`${v.kind}/${ns}/${v.metadata.name}`, ann.split(',').map((s) => s.trim()));
  }
  const cli = (opts.suppress ?? []).map((s) => ({ code: s.code, re: globToRegExp(s.resource) }));

  const kept = raw.filter((m) => {
    const r = m.resource;
    if (!r) return true;
    const codes = suppressedBy.get(`${r.kind}/${r.namespace}/${r.name}`);
    if (codes && (codes.includes('*') || codes.includes(m.code))) return false;
    const names = [origin(r), r.namespace ? `${r.kind} ${r.name}.${r.namespace}` : `${r.kind} ${r.name}`];
    if (cli.some((s) => s.code === m.code && names.some((n) => s.re.test(n)))) return false;
    if (opts.namespace) {
      const ns = r.kind === 'Namespace' ? r.name : r.namespace;
      if (ns && ns !== opts.namespace) return false;
    }
    return true;
  });

  const seen = new Set<string>();
  const messages: Message[] = [];
  for (const m of kept.sort(compareMessages)) {
    const k = JSON.stringify(m);
    if (seen.has(k)) continue;
    seen.add(k);
    messages.push(m);
  }
  return { messages, unparsed };
}

export function compareMessages(a: Message, b: Message): number {
  const rank = levelRank(b.level) - levelRank(a.level);
  if (rank !== 0) return rank;
  if (a.code !== b.code) return a.code < b.code ? -1 : 1;
  const oa = a.resource ? origin(a.resource) : '';
  const ob = b.resource ? origin(b.resource) : '';
  if (oa !== ob) return oa < ob ? -1 : 1;
  const la = a.resource?.line ?? 0;
  const lb = b.resource?.line ?? 0;
  if (la !== lb) return la - lb;
  return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
}

/** Does any message reach the failure threshold (istioctl: Error by default)? */
export function exceedsThreshold(messages: readonly Message[], threshold: Message['level']): boolean {
  return messages.some((m) => levelRank(m.level) >= levelRank(threshold));
}
