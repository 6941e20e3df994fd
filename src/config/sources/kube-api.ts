/**
 * The little of the Kubernetes REST API the config source needs beyond client-node's watch: raw JSON GETs (lists and
 * discovery). client-node's typed clients deserialize into its model classes (timestamps become Dates, unknown fields
 * of CRDs are kept only as `any`), while its Watch hands out the raw JSON; reading lists raw as well keeps one shape
 * for both, the shape validation expects.
 */
import { HttpMethod, RequestContext, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { fetch } from 'undici';

/** An API error with its HTTP status; client-node's ListWatch reads `statusCode` (410 Gone → relist). */
export class KubeApiError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, path: string, body: string, method = 'GET') {
    super(`${method} ${path}: HTTP ${statusCode}${body ? `: ${body.slice(0, 300)}` : ''}`);
    this.statusCode = statusCode;
  }
}

export async function getJson<T>(kc: KubeConfig, path: string): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig names no current cluster');
  const ctx = new RequestContext(cluster.server + path, HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  const res = await fetch(ctx.getUrl(), { method: 'GET', headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher() });
  const text = await res.text();
  if (!res.ok) throw new KubeApiError(res.status, path, text);
  return JSON.parse(text) as T;
}

/** REST path of a resource collection across all namespaces: `/api/v1/services`, `/apis/networking.istio.io/v1/gateways`. */
export function collectionPath(group: string, version: string, plural: string): string {
  return group ? `/apis/${group}/${version}/${plural}` : `/api/${version}/${plural}`;
}

/**
 * Lists a collection page by page (500 per page, as client-go's reflector does) and returns one list with the
 * resourceVersion of the last page. List items carry no apiVersion/kind; they are filled in so every object looks as
 * it does in a watch event.
 */
export async function listAll(
  kc: KubeConfig,
  path: string,
  typeMeta: { apiVersion: string; kind: string },
  fieldSelector?: string,
): Promise<KubernetesListObject<KubernetesObject>> {
  const items: KubernetesObject[] = [];
  let continueToken: string | undefined;
  let resourceVersion = '';
  do {
    const q = new URLSearchParams({ limit: '500' });
    if (continueToken) q.set('continue', continueToken);
    if (fieldSelector) q.set('fieldSelector', fieldSelector);
    // The raw JSON says `continue`; client-node's model class renames it `_continue`.
    const page = await getJson<{ items?: KubernetesObject[]; metadata?: { resourceVersion?: string; continue?: string } }>(kc, `${path}?${q.toString()}`);
    for (const item of page.items ?? []) items.push({ ...item, apiVersion: typeMeta.apiVersion, kind: typeMeta.kind });
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return { apiVersion: 'v1', kind: 'List', items, metadata: { resourceVersion } };
}

/** Every API group the server serves → its versions (core `''` → `v1`). */
export async function servedVersions(kc: KubeConfig): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>([['', new Set(['v1'])]]);
  const groups = await getJson<{ groups?: Array<{ name: string; versions?: Array<{ version: string }> }> }>(kc, '/apis');
  for (const g of groups.groups ?? []) out.set(g.name, new Set((g.versions ?? []).map((v) => v.version)));
  return out;
}

/** A JSON merge patch (RFC 7386), e.g. of a status subresource. */
export async function mergePatch(kc: KubeConfig, path: string, body: unknown, signal?: AbortSignal): Promise<void> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig names no current cluster');
  const ctx = new RequestContext(cluster.server + path, HttpMethod.PATCH);
  await kc.applySecurityAuthentication(ctx);
  const headers = { ...ctx.getHeaders(), 'content-type': 'application/merge-patch+json' };
  const res = await fetch(ctx.getUrl(), { method: 'PATCH', headers, body: JSON.stringify(body), dispatcher: ctx.getDispatcher(), ...(signal ? { signal } : {}) });
  const text = await res.text();
  if (!res.ok) throw new KubeApiError(res.status, path, text, 'PATCH');
}
