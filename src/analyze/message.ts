/**
 * Analysis messages in istioctl analyze's shape (istio/istio pkg/config/analysis/diag and msg/messages.yaml): a
 * message type has a stable code, a level and a template; a message names the resource it is about and where that
 * resource (or the offending field) sits in a file. Istio's own codes keep Istio's numbers, levels and wording, so
 * scripts and suppressions written for istioctl work unchanged. mizzen's own analyzers use MZA codes (docs/analyzers.md),
 * a prefix Istio never emits, so the two sets cannot collide.
 */

export type Level = 'Error' | 'Warning' | 'Info';

/** Worst first; thresholds compare by this rank. */
const RANK: Record<Level, number> = { Error: 2, Warning: 1, Info: 0 };

export function levelRank(l: Level): number {
  return RANK[l];
}

export function parseLevel(s: string): Level | undefined {
  const l = s.trim().toLowerCase();
  return l === 'error' ? 'Error' : l === 'warning' ? 'Warning' : l === 'info' ? 'Info' : undefined;
}

export interface MessageType {
  /** `IST0101`, `MZA0001`. */
  code: string;
  /** Istio's message name (`ReferencedResourceNotFound`), or mizzen's. */
  name: string;
  level: Level;
  /** One line: what the message means (the `-L` listing and docs/analyzers.md). */
  description: string;
}

/** The object a message is about, named as istioctl names it: `Kind namespace/name` (cluster-scoped: `Kind name`). */
export interface ResourceRef {
  kind: string;
  /** '' for cluster-scoped kinds (Namespace). */
  namespace: string;
  name: string;
  /** Where it is: the file, and the line of the offending field (else of the document). */
  file?: string;
  line?: number;
}

export interface Message {
  code: string;
  level: Level;
  /** The rendered template text. */
  message: string;
  resource?: ResourceRef;
}

export function origin(r: ResourceRef): string {
  return r.namespace ? `${r.kind} ${r.namespace}/${r.name}` : `${r.kind} ${r.name}`;
}

export function reference(r: ResourceRef): string | undefined {
  if (!r.file) return undefined;
  return r.line && r.line > 0 ? `${r.file}:${r.line}` : r.file;
}

/** `Error [IST0101] (VirtualService default/reviews reviews.yaml:12) Referenced host not found: "ratings"` (diag.Message.String). */
export function renderLog(m: Message): string {
  let where = '';
  if (m.resource) {
    const ref = reference(m.resource);
    where = ` (${origin(m.resource)}${ref ? ` ${ref}` : ''})`;
  }
  return `${m.level} [${m.code}]${where} ${m.message}`;
}

const ISTIO_DOCS = 'https://istio.io/latest/docs/reference/config/analysis';
export const MIZZEN_DOCS = 'docs/analyzers.md';

export function documentationUrl(code: string): string {
  return code.startsWith('IST') ? `${ISTIO_DOCS}/${code.toLowerCase()}/?ref=mizzen-analyze` : `${MIZZEN_DOCS}#${code.toLowerCase()}`;
}

/** istioctl's `-o json|yaml` record (diag.Message.Unstructured): keys as Go's encoding/json orders them. */
export function unstructured(m: Message): Record<string, string> {
  const out: Record<string, string> = { code: m.code, documentationUrl: documentationUrl(m.code), level: m.level, message: m.message };
  if (m.resource) {
    out.origin = origin(m.resource);
    const ref = reference(m.resource);
    if (ref) out.reference = ref;
  }
  return out;
}

/** Go's %q for the strings these templates quote (printable ASCII in practice). */
export const q = (s: string): string => JSON.stringify(s);
/** Go's %v for a []string. */
export const list = (xs: readonly string[]): string => `[${xs.join(' ')}]`;
