/**
 * LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER patches (istiod listener_patch.go,
 * http_filter_patch.go), on builder JSON. Per listener, in istiod's order:
 * 1. LISTENER: REMOVE drops it, MERGE merges into it;
 * 2. LISTENER_FILTER: list operations (list-ops.ts); MERGE merges typed_config into the filters it names;
 * 3. each filter chain (and the default one): FILTER_CHAIN REMOVE / MERGE (a transport_socket of the same name is merged
 *    at the typed_config level and the rest of the value is then ignored, as istiod does); then NETWORK_FILTER list
 *    operations; then per network filter MERGE (name, and typed_config of the same type merged as that message); then,
 *    in an HTTP connection manager, HTTP_FILTER list operations and MERGE (MERGE needs a subFilter name);
 * 4. FILTER_CHAIN ADD appends to the listener.
 * Then LISTENER ADD appends new listeners, once per context in `adds` (a context-ANY ADD only for SIDECAR_OUTBOUND and
 * GATEWAY, as istiod), skipping a name already present (Envoy would reject the whole LDS update).
 *
 * Before those, the inline `route_config` of every HTTP connection manager gets the route patches in the listener's
 * context: istiod patches an inbound HCM's route configuration while building it, before listener patches.
 */
import type { EnvoyFilterApplyTo, PatchContext } from '../../config/kinds/envoy-filter.ts';
import { VIRTUAL_INBOUND_LISTENER } from '../../model/names.ts';
import { added, applyListOp } from './list-ops.ts';
import {
  contextMatches,
  filterChainMatches,
  hasNetworkFilterMatch,
  httpFilterMatches,
  httpFilterName,
  isHcm,
  listenerFilterMatches,
  listenerMatches,
  networkFilterMatches,
} from './match.ts';
import { anyTypeName, mergeAny, mergeMessage } from './merge.ts';
import { patchRouteConfigInPlace, routePatchesApply } from './route-patch.ts';
import type { CompiledPatch, Note, SelectedPatches } from './select.ts';
import { APPLY_TO_MESSAGE, type Json } from './value.ts';

export const LISTENER_APPLY_TO: readonly EnvoyFilterApplyTo[] = ['LISTENER', 'LISTENER_FILTER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER'];

const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** How a generator tells which context each listener is in, and in which contexts LISTENER ADD patches are added. */
export interface ListenerContexts {
  of: (listener: Json) => PatchContext;
  adds: readonly PatchContext[];
}

/**
 * Sidecar listeners: virtualInbound (and any INBOUND listener) is SIDECAR_INBOUND, the rest (virtualOutbound,
 * `0.0.0.0_9080`, `10.96.0.5_3306`) SIDECAR_OUTBOUND. istiod: listener_builder.go patchListeners.
 */
export function sidecarListenerContext(l: Json): PatchContext {
  return l.name === VIRTUAL_INBOUND_LISTENER || l.traffic_direction === 'INBOUND' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND';
}

export const SIDECAR_LISTENERS: ListenerContexts = { of: sidecarListenerContext, adds: ['SIDECAR_INBOUND', 'SIDECAR_OUTBOUND'] };
export const GATEWAY_LISTENERS: ListenerContexts = { of: () => 'GATEWAY', adds: ['GATEWAY'] };

const list = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);

/**
 * Applies the patches to a proxy's listeners, then appends the LISTENER ADDs. Listeners no patch touches are returned
 * as they are; touched ones are patched copies; the input array and objects are never modified.
 */
export function applyListenerPatches(listeners: readonly Json[], ctx: PatchContext | ListenerContexts, patches: SelectedPatches, note: Note): Json[] {
  const spec: ListenerContexts = typeof ctx === 'string' ? { of: () => ctx, adds: [ctx] } : ctx;
  const out: Json[] = [];
  for (const l of listeners) {
    const patched = patchListener(l, spec.of(l), patches, note);
    if (patched) out.push(patched);
  }
  out.push(...addedListeners(patches, spec.adds, note, new Set(out.map((l) => l.name))));
  return out;
}

/**
 * The listeners LISTENER ADD patches create for a proxy whose listeners are in these contexts (a generator building
 * listeners one name at a time serves these too, and lists their names for wildcard LDS). A name in `taken` (or added
 * twice) is skipped with a note: Envoy would reject the whole LDS update.
 */
export function addedListeners(patches: SelectedPatches, adds: readonly PatchContext[], note: Note, taken: ReadonlySet<unknown> = new Set()): Json[] {
  return added(patches.get('LISTENER') ?? [], adds, note, taken, 'listener');
}

/** Every HCM's inline route configuration in a listener. */
function inlineRouteConfigs(l: Json): Json[] {
  const out: Json[] = [];
  for (const fc of [...list(l.filter_chains), obj(l.default_filter_chain)]) {
    for (const f of list(fc?.filters)) {
      const rc = isHcm(f) ? obj(obj(f.typed_config)?.route_config) : undefined;
      if (rc) out.push(rc);
    }
  }
  return out;
}

/**
 * Patches one generated listener in its context: the patched copy, the listener itself when nothing applies, or
 * undefined when a patch removes it. (No ADDs: see addedListeners.)
 */
export function patchListener(l: Json, ctx: PatchContext, patches: SelectedPatches, note: Note): Json | undefined {
  // A LISTENER ADD creates a listener (addedListeners); it does nothing to this one.
  const touches = LISTENER_APPLY_TO.some((a) =>
    (patches.get(a) ?? []).some((p) => !(a === 'LISTENER' && p.operation === 'ADD') && contextMatches(ctx, p) && listenerMatches(l, p)),
  );
  const routes = inlineRouteConfigs(l).some((rc) => routePatchesApply(rc, { context: ctx }, patches));
  if (!touches && !routes) return l;
  const lis = structuredClone(l);
  if (routes) for (const rc of inlineRouteConfigs(lis)) patchRouteConfigInPlace(rc, { context: ctx }, patches, note);
  if (!touches) return lis;
  const applies = (p: CompiledPatch) => contextMatches(ctx, p) && listenerMatches(lis, p);
  for (const p of patches.get('LISTENER') ?? []) {
    if (!applies(p)) continue;
    if (p.operation === 'REMOVE') return undefined;
    if (p.operation === 'MERGE' && p.value) mergeMessage(APPLY_TO_MESSAGE.LISTENER as string, lis, p.value);
  }
  patchListenerFilters(lis, (patches.get('LISTENER_FILTER') ?? []).filter(applies), note);
  patchFilterChains(lis, ctx, patches, note);
  return lis;
}

function patchListenerFilters(lis: Json, patches: readonly CompiledPatch[], note: Note): void {
  if (patches.length === 0) return;
  let filters: readonly Json[] = list(lis.listener_filters);
  for (const p of patches) {
    if (p.operation === 'MERGE') {
      for (const f of filters) if (listenerFilterMatches(f, p)) mergeFilter(f, p, note);
      continue;
    }
    filters = applyListOp(filters, p.operation, p.value, !!p.match.listener?.listenerFilter, (f) => listenerFilterMatches(f, p));
  }
  lis.listener_filters = [...filters];
}

function patchFilterChains(lis: Json, ctx: PatchContext, patches: SelectedPatches, note: Note): void {
  const kept = list(lis.filter_chains).filter((fc) => patchFilterChain(lis, fc, ctx, patches, note));
  const dfc = obj(lis.default_filter_chain);
  if (dfc && !patchFilterChain(lis, dfc, ctx, patches, note)) delete lis.default_filter_chain;
  for (const p of patches.get('FILTER_CHAIN') ?? []) {
    if (p.operation === 'ADD' && p.value && contextMatches(ctx, p) && listenerMatches(lis, p)) kept.push(structuredClone(p.value));
  }
  if (kept.length > 0 || lis.filter_chains !== undefined) lis.filter_chains = kept;
}

/** Patches one filter chain in place; false when it is removed. */
function patchFilterChain(lis: Json, fc: Json, ctx: PatchContext, patches: SelectedPatches, note: Note): boolean {
  const applies = (p: CompiledPatch) => contextMatches(ctx, p) && listenerMatches(lis, p) && filterChainMatches(lis, fc, p);
  for (const p of patches.get('FILTER_CHAIN') ?? []) {
    if (!applies(p)) continue;
    if (p.operation === 'REMOVE') return false;
    if (p.operation === 'MERGE' && p.value) mergeFilterChain(fc, p, note);
  }
  const networkPatches = (patches.get('NETWORK_FILTER') ?? []).filter(applies);
  const httpPatches = (patches.get('HTTP_FILTER') ?? []).filter(applies);
  if (networkPatches.length === 0 && httpPatches.length === 0) return true;
  let filters: readonly Json[] = list(fc.filters);
  for (const p of networkPatches) {
    if (p.operation === 'MERGE') continue;
    filters = applyListOp(filters, p.operation, p.value, hasNetworkFilterMatch(p), (f) => networkFilterMatches(f, p));
  }
  fc.filters = [...filters];
  for (const f of fc.filters as Json[]) {
    for (const p of networkPatches) if (p.operation === 'MERGE' && networkFilterMatches(f, p)) mergeFilter(f, p, note);
    if (isHcm(f)) patchHttpFilters(f, httpPatches.filter((p) => networkFilterMatches(f, p)), note);
  }
  return true;
}

/**
 * FILTER_CHAIN MERGE (istiod mergeTransportSocketListener): a patch transport_socket named like the chain's own has its
 * typed_config merged into it and nothing else of the patch is applied; otherwise a plain merge.
 */
function mergeFilterChain(fc: Json, p: CompiledPatch, note: Note): void {
  const value = p.value as Json;
  const ts = obj(value.transport_socket);
  const own = obj(fc.transport_socket);
  if (!ts || !own || ts.name !== own.name) {
    mergeMessage(APPLY_TO_MESSAGE.FILTER_CHAIN as string, fc, value);
    return;
  }
  const dst = obj(own.typed_config);
  const src = obj(ts.typed_config);
  if (!dst || !src) return;
  const err = mergeAny(dst, src);
  if (err) note(`${p.ref}: transport_socket ${String(own.name)}: ${err}; MERGE not applied`);
}

/**
 * MERGE into a network, HTTP or listener filter (istiod patchNetworkFilter / mergeHTTPFilter / mergeListenerFilter):
 * skipped when the generated filter has no typed_config; the patch's name (if any) renames the filter; a typed_config
 * of the same type is merged as that message. A different type cannot be merged: noted, and the patch is skipped
 * (istiod's proto.Merge panics there and every patch of the call is lost).
 */
function mergeFilter(f: Json, p: CompiledPatch, note: Note): void {
  const dst = obj(f.typed_config);
  if (!dst) return;
  const value = p.value as Json;
  const src = obj(value.typed_config);
  if (src) {
    const err = mergeAny(dst, src);
    if (err) {
      note(`${p.ref}: filter ${String(f.name)}: ${err}; MERGE not applied`);
      return;
    }
  }
  if (typeof value.name === 'string' && value.name !== '') f.name = value.name;
}

function patchHttpFilters(hcmFilter: Json, patches: readonly CompiledPatch[], note: Note): void {
  if (patches.length === 0) return;
  const hcm = obj(hcmFilter.typed_config);
  // istiod unmarshals the HCM and gives up silently when it cannot; a TypedStruct-wrapped HCM is noted instead.
  if (!hcm || anyTypeName(hcm) !== HCM_TYPE) {
    for (const p of patches) note(`${p.ref}: the HTTP connection manager's typed_config is ${anyTypeName(hcm) ?? 'missing'}, not ${HCM_TYPE}; not applied`);
    return;
  }
  let filters: readonly Json[] = list(hcm.http_filters);
  for (const p of patches) {
    if (p.operation === 'MERGE') continue;
    filters = applyListOp(filters, p.operation, p.value, httpFilterName(p) !== undefined, (f) => httpFilterMatches(f, p));
  }
  hcm.http_filters = [...filters];
  for (const f of hcm.http_filters as Json[]) {
    for (const p of patches) if (p.operation === 'MERGE' && httpFilterMatches(f, p)) mergeFilter(f, p, note);
  }
}
