/**
 * CLUSTER patches (istiod cluster_patch.go): per generated cluster, in patch order, REMOVE drops it and MERGE merges
 * into it — a patch transport_socket is merged at the typed_config level into the socket of the same name (in
 * transport_socket_matches when the cluster has them), or replaces the cluster's transport_socket, and the rest of
 * that patch is not applied. ADD appends new clusters, once per context in `adds` (a context-ANY ADD only for
 * SIDECAR_OUTBOUND and GATEWAY), skipping a name already present (Envoy would reject the whole CDS update).
 */
import type { PatchContext } from '../../config/kinds/envoy-filter.ts';
import { INBOUND_PASSTHROUGH_CLUSTER } from '../../model/names.ts';
import { added } from './list-ops.ts';
import { clusterMatches, contextMatches } from './match.ts';
import { mergeAny, mergeMessage } from './merge.ts';
import type { CompiledPatch, Note, SelectedPatches } from './select.ts';
import { APPLY_TO_MESSAGE, type Json } from './value.ts';

const CLUSTER = APPLY_TO_MESSAGE.CLUSTER as string;

export interface ClusterContexts {
  of: (cluster: Json) => PatchContext;
  adds: readonly PatchContext[];
  /** For inbound clusters (`inbound|8080||`, no host in the name): the service hostnames `match.cluster.service` is tested against. */
  hostsOf?: (cluster: Json) => readonly string[];
}

/** Sidecar clusters: inbound ones (and the inbound passthrough) are SIDECAR_INBOUND, the rest SIDECAR_OUTBOUND (istiod cluster.go). */
export function sidecarClusterContext(c: Json): PatchContext {
  const name = typeof c.name === 'string' ? c.name : '';
  return name.startsWith('inbound|') || name.startsWith(INBOUND_PASSTHROUGH_CLUSTER) ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

export const SIDECAR_CLUSTERS: ClusterContexts = { of: sidecarClusterContext, adds: ['SIDECAR_INBOUND', 'SIDECAR_OUTBOUND'] };
export const GATEWAY_CLUSTERS: ClusterContexts = { of: () => 'GATEWAY', adds: ['GATEWAY'] };

const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);

/**
 * Applies the patches to a proxy's clusters, then appends the CLUSTER ADDs. Clusters no patch touches are returned as
 * they are; touched ones are patched copies; the input is never modified.
 */
export function applyClusterPatches(clusters: readonly Json[], ctx: PatchContext | ClusterContexts, patches: SelectedPatches, note: Note): Json[] {
  const spec: ClusterContexts = typeof ctx === 'string' ? { of: () => ctx, adds: [ctx] } : ctx;
  if ((patches.get('CLUSTER') ?? []).length === 0) return [...clusters];
  const out: Json[] = [];
  for (const c of clusters) {
    const patched = patchCluster(c, spec.of(c), patches, note, spec.hostsOf?.(c));
    if (patched) out.push(patched);
  }
  out.push(...addedClusters(patches, spec.adds, note, new Set(out.map((c) => c.name))));
  return out;
}

/**
 * Patches one generated cluster in its context: the patched copy, the cluster itself when nothing applies, or undefined
 * when a patch removes it. `hosts`: for an inbound cluster, the service hostnames `match.cluster.service` is tested on.
 */
export function patchCluster(c: Json, ctx: PatchContext, patches: SelectedPatches, note: Note, hosts: readonly string[] = []): Json | undefined {
  const mine = (patches.get('CLUSTER') ?? []).filter(
    (p) => (p.operation === 'MERGE' || p.operation === 'REMOVE') && contextMatches(ctx, p) && clusterMatches(c, p, hosts),
  );
  if (mine.length === 0) return c;
  const copy = structuredClone(c);
  for (const p of mine) {
    if (p.operation === 'REMOVE') return undefined;
    mergeCluster(copy, p, note);
  }
  return copy;
}

/** The clusters CLUSTER ADD patches create for a proxy with clusters in these contexts; names in `taken` are skipped with a note. */
export function addedClusters(patches: SelectedPatches, adds: readonly PatchContext[], note: Note, taken: ReadonlySet<unknown> = new Set()): Json[] {
  return added(patches.get('CLUSTER') ?? [], adds, note, taken, 'cluster');
}

/** istiod ApplyClusterMerge + mergeTransportSocketCluster. */
function mergeCluster(c: Json, p: CompiledPatch, note: Note): void {
  const value = p.value as Json;
  const ts = obj(value.transport_socket);
  if (!ts) {
    mergeMessage(CLUSTER, c, value);
    return;
  }
  if (Object.keys(value).length > 1) note(`${p.ref}: a CLUSTER MERGE with a transport_socket applies only the transport_socket (as in Istio)`);
  let target: Json | undefined;
  const matches = Array.isArray(c.transport_socket_matches) ? (c.transport_socket_matches as Json[]) : [];
  if (matches.length > 0) {
    target = matches.map((m) => obj(m.transport_socket)).find((t) => t !== undefined && t.name === ts.name);
    if (!target) {
      // Merging would leave both transport_socket and transport_socket_matches, which Envoy rejects.
      note(`${p.ref}: transport_socket ${String(ts.name)} matches none of the cluster's transport_socket_matches; not applied`);
      return;
    }
  } else if (obj(c.transport_socket)?.name === ts.name) {
    target = obj(c.transport_socket);
  }
  if (!target) {
    c.transport_socket = structuredClone(ts);
    return;
  }
  const dst = obj(target.typed_config);
  const src = obj(ts.typed_config);
  if (!dst || !src) return;
  const err = mergeAny(dst, src);
  if (err) note(`${p.ref}: transport_socket ${String(ts.name)}: ${err}; not applied`);
}
