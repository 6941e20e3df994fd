/**
 * Which EnvoyFilter patches apply to a proxy, in which order (istiod pilot/pkg/model push_context.go EnvoyFilters,
 * envoyfilter.go):
 * - filters in the mesh root namespace apply to every proxy, others only to proxies in their own namespace;
 * - `workloadSelector.labels` must all be on the proxy's workload (no selector = every workload);
 * - a filter with `targetRefs` never matches a sidecar or gateway (istiod: "meant for a specific target … currently
 *   these would never match"); a note says so;
 * - order: `priority` ascending (default 0), then root-namespace filters before the proxy namespace's, then creation
 *   time, then `name.namespace`. (The API doc words it as "root namespace first, then priority"; istiod's code sorts
 *   by priority first, and that is what is followed here.) Within a filter, configPatches keep their order;
 * - per patch, `match.proxy`: `proxyVersion` is a regex on the proxy's ISTIO_VERSION (no version = no match) and every
 *   `metadata` entry must equal the node metadata value.
 *
 * Each filter is compiled once (WeakMap on the config object): patch values converted to builder JSON, unusable patches
 * turned into notes. Compiling does not read the proxy; selection reads it only through the ProxyView (namespace,
 * selector) and the two lazy functions below, so a cached result can be keyed by exactly what was read.
 */
import type { EnvoyConfigObjectMatch, EnvoyFilterApplyTo, EnvoyFilterSpec, PatchContext, PatchOperation } from '../../config/kinds/envoy-filter.ts';
import type { ConfigObject } from '../../config/object.ts';
import type { ProxyView } from '../../model/proxy-view.ts';
import { convertPatchValue, type Json } from './value.ts';

export type Note = (message: string) => void;

export interface CompiledPatch {
  /** `EnvoyFilter ns/name configPatches[i]`, the prefix of every note about this patch. */
  readonly ref: string;
  readonly applyTo: EnvoyFilterApplyTo;
  /** After istiod's normalisation: INSERT_* becomes ADD except for the ordered lists (see INSERTABLE). */
  readonly operation: PatchOperation;
  readonly context: PatchContext;
  readonly match: EnvoyConfigObjectMatch;
  /** The converted patch value (builder JSON); never mutated, cloned on use. Absent for REMOVE. */
  readonly value?: Json;
  readonly proxyVersion?: RegExp;
}

/** Patches for one proxy, grouped by applyTo, each list in application order. */
export type SelectedPatches = ReadonlyMap<EnvoyFilterApplyTo, readonly CompiledPatch[]>;

export const NO_PATCHES: SelectedPatches = new Map();

export interface EnvoyFilterProxy {
  view: ProxyView;
  /**
   * The proxy's ISTIO_VERSION node metadata; called only when a patch has `match.proxy.proxyVersion`. ProxyView does
   * not record this read yet: a caller caching by recorded reads must record it itself.
   */
  istioVersion?: () => string | undefined;
  /** One node metadata value (raw); called only for `match.proxy.metadata` keys. Same caveat as istioVersion. */
  metadata?: (key: string) => unknown;
}

/** Operations each applyTo supports, after normalisation (istiod listener_patch.go, rc_patch.go, cluster_patch.go). */
export const SUPPORTED_OPERATIONS: Readonly<Partial<Record<EnvoyFilterApplyTo, readonly PatchOperation[]>>> = {
  LISTENER: ['MERGE', 'REMOVE', 'ADD'],
  LISTENER_FILTER: ['MERGE', 'REMOVE', 'ADD', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  FILTER_CHAIN: ['MERGE', 'REMOVE', 'ADD'],
  NETWORK_FILTER: ['MERGE', 'REMOVE', 'ADD', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  HTTP_FILTER: ['MERGE', 'REMOVE', 'ADD', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'],
  ROUTE_CONFIGURATION: ['MERGE'],
  VIRTUAL_HOST: ['MERGE', 'REMOVE', 'ADD', 'REPLACE'],
  HTTP_ROUTE: ['MERGE', 'REMOVE', 'ADD', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST'],
  CLUSTER: ['MERGE', 'REMOVE', 'ADD'],
};

/** istiod keeps INSERT_* only where there is an ordered list to insert into; elsewhere they mean ADD. */
const INSERTABLE: ReadonlySet<EnvoyFilterApplyTo> = new Set(['HTTP_FILTER', 'NETWORK_FILTER', 'HTTP_ROUTE', 'LISTENER_FILTER']);

export interface CompiledFilter {
  patches: CompiledPatch[];
  /** Notes about patches left out at compile time (bad value, unsupported combination). */
  problems: string[];
}

const compiled = new WeakMap<ConfigObject<EnvoyFilterSpec>, CompiledFilter>();

export function describePatch(obj: ConfigObject<EnvoyFilterSpec>, index: number): string {
  return `EnvoyFilter ${obj.metadata.namespace}/${obj.metadata.name} configPatches[${index}]`;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** Go regexp (RE2) → JS RegExp for the patterns both accept; `(?P<name>` is RE2-only spelling. */
function compileVersionRegex(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern.replace(/\(\?P</g, '(?<'), 'u');
  } catch {
    return undefined;
  }
}

/** Compiles one EnvoyFilter (memoized on the object, which the config store never mutates). */
export function compileEnvoyFilter(obj: ConfigObject<EnvoyFilterSpec>): CompiledFilter {
  const hit = compiled.get(obj);
  if (hit) return hit;
  const out: CompiledFilter = { patches: [], problems: [] };
  obj.spec.configPatches?.forEach((cp, i) => {
    const ref = describePatch(obj, i);
    const skip = (why: string) => out.problems.push(`${ref}: ${why}; patch not applied`);
    const applyTo = cp.applyTo;
    let operation = cp.patch?.operation;
    if (!applyTo || applyTo === 'INVALID' || !operation || operation === 'INVALID') return skip('applyTo and patch.operation are required');
    if (!SUPPORTED_OPERATIONS[applyTo]) return skip(`applyTo ${applyTo} is not supported by mizzen`);
    if (cp.match?.context === 'WAYPOINT' || cp.match?.waypoint) return skip('context WAYPOINT (ambient) is not supported by mizzen');
    if ((operation === 'INSERT_BEFORE' || operation === 'INSERT_AFTER' || operation === 'INSERT_FIRST') && !INSERTABLE.has(applyTo)) operation = 'ADD';
    if (!SUPPORTED_OPERATIONS[applyTo]?.includes(operation)) return skip(`operation ${operation} is not supported for applyTo ${applyTo} (as in Istio)`);
    const needsName = needsNameMatch(applyTo, operation, cp.match);
    if (needsName) return skip(needsName);
    if (cp.patch?.filterClass && cp.patch.filterClass !== 'UNSPECIFIED') {
      out.problems.push(`${ref}: patch.filterClass is not supported by mizzen and is ignored`);
    }
    let value: Json | undefined;
    if (operation !== 'REMOVE') {
      const converted = convertPatchValue(applyTo, cp.patch?.value ?? {});
      if (!converted.ok) return skip(converted.error);
      const untyped = untypedFilter(applyTo, operation, converted.value);
      if (untyped) return skip(untyped);
      value = deepFreeze(converted.value); // shared by every proxy: patching clones it, never writes to it
    }
    let proxyVersion: RegExp | undefined;
    const pv = cp.match?.proxy?.proxyVersion;
    if (pv) {
      proxyVersion = compileVersionRegex(pv);
      if (!proxyVersion) return skip(`match.proxy.proxyVersion ${JSON.stringify(pv)} is not a regular expression mizzen can evaluate`);
    }
    out.patches.push({
      ref,
      applyTo,
      operation,
      context: cp.match?.context ?? 'ANY',
      match: cp.match ?? {},
      ...(value ? { value } : {}),
      ...(proxyVersion ? { proxyVersion } : {}),
    });
  });
  compiled.set(obj, out);
  return out;
}

/** REPLACE/REMOVE (and HTTP_FILTER MERGE) of a list element need the element's name; istiod silently ignores them. */
function needsNameMatch(applyTo: EnvoyFilterApplyTo, op: PatchOperation, match: EnvoyConfigObjectMatch | undefined): string | undefined {
  const filter = match?.listener?.filterChain?.filter;
  if (applyTo === 'HTTP_FILTER' && (op === 'REPLACE' || op === 'REMOVE' || op === 'MERGE') && !filter?.subFilter?.name) {
    return `${op} of an HTTP_FILTER needs match.listener.filterChain.filter.subFilter.name`;
  }
  if (applyTo === 'NETWORK_FILTER' && (op === 'REPLACE' || op === 'REMOVE') && !filter) {
    return `${op} of a NETWORK_FILTER needs match.listener.filterChain.filter.name`;
  }
  if (applyTo === 'LISTENER_FILTER' && (op === 'REPLACE' || op === 'REMOVE' || op === 'MERGE') && !match?.listener?.listenerFilter) {
    return `${op} of a LISTENER_FILTER needs match.listener.listenerFilter`;
  }
  return undefined;
}

const INSERTS: ReadonlySet<PatchOperation> = new Set(['ADD', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE']);

/**
 * A filter put into Envoy config without typed_config (or config_discovery), e.g. `{name: envoy.listener.proxy_protocol}`
 * from old EnvoyFilter examples: Envoy no longer finds extensions by name and would reject the whole LDS update.
 */
function untypedFilter(applyTo: EnvoyFilterApplyTo, op: PatchOperation, value: Json): string | undefined {
  const list = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
  let filters: Json[] = [];
  if (applyTo === 'HTTP_FILTER' || applyTo === 'NETWORK_FILTER' || applyTo === 'LISTENER_FILTER') filters = INSERTS.has(op) ? [value] : [];
  else if (applyTo === 'FILTER_CHAIN') filters = list(value.filters);
  else if (applyTo === 'LISTENER') {
    const chains = [...list(value.filter_chains), ...(value.default_filter_chain ? [value.default_filter_chain as Json] : [])];
    filters = [...list(value.listener_filters), ...chains.flatMap((c) => list(c.filters))];
  }
  const bad = filters.find((f) => f.typed_config === undefined && f.config_discovery === undefined);
  if (!bad) return undefined;
  return `filter ${JSON.stringify(bad.name ?? '')} has no typed_config; Envoy no longer finds extensions by name and would reject the listener`;
}

function creationMs(obj: ConfigObject): number {
  const t = Date.parse(obj.metadata.creationTimestamp);
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000); // Kubernetes keeps seconds; ties fall through to the name
}

function proxyMatches(p: CompiledPatch, proxy: EnvoyFilterProxy): boolean {
  const pm = p.match.proxy;
  if (!pm) return true;
  if (p.proxyVersion) {
    const version = proxy.istioVersion?.() ?? '';
    if (version === '' || !p.proxyVersion.test(version)) return false;
  }
  for (const [k, v] of Object.entries(pm.metadata ?? {})) if (proxy.metadata?.(k) !== v) return false;
  return true;
}

/**
 * The patches of every EnvoyFilter that applies to the proxy, grouped by applyTo in application order. Notes are
 * given for the selected filters' unusable patches (and for targetRefs filters in scope).
 */
export function envoyFiltersFor(
  filters: readonly ConfigObject<EnvoyFilterSpec>[],
  proxy: EnvoyFilterProxy,
  rootNamespace: string,
  note: Note = () => {},
): SelectedPatches {
  if (filters.length === 0) return NO_PATCHES;
  const namespace = proxy.view.namespace();
  const chosen: ConfigObject<EnvoyFilterSpec>[] = [];
  for (const f of filters) {
    const ns = f.metadata.namespace;
    if (ns !== rootNamespace && ns !== namespace) continue;
    if (f.spec.targetRefs?.length) {
      note(`EnvoyFilter ${ns}/${f.metadata.name}: targetRefs never selects a sidecar or gateway (as in Istio); not applied`);
      continue;
    }
    if (!proxy.view.selectedBy(f.spec.workloadSelector?.labels)) continue;
    chosen.push(f);
  }
  if (chosen.length === 0) return NO_PATCHES;
  chosen.sort((a, b) => {
    const pa = a.spec.priority ?? 0;
    const pb = b.spec.priority ?? 0;
    if (pa !== pb) return pa - pb;
    const ra = a.metadata.namespace === rootNamespace;
    if (ra !== (b.metadata.namespace === rootNamespace)) return ra ? -1 : 1;
    const ta = creationMs(a);
    const tb = creationMs(b);
    if (ta !== tb) return ta - tb;
    const na = `${a.metadata.name}.${a.metadata.namespace}`;
    const nb = `${b.metadata.name}.${b.metadata.namespace}`;
    return na < nb ? -1 : na > nb ? 1 : 0;
  });
  const out = new Map<EnvoyFilterApplyTo, CompiledPatch[]>();
  for (const f of chosen) {
    const c = compileEnvoyFilter(f);
    for (const problem of c.problems) note(problem);
    for (const p of c.patches) {
      if (!proxyMatches(p, proxy)) continue;
      const list = out.get(p.applyTo);
      if (list) list.push(p);
      else out.set(p.applyTo, [p]);
    }
  }
  return out;
}

/** Does the selection hold any patch for these applyTos? (Lets a generator skip cloning when nothing can change.) */
export function hasPatches(patches: SelectedPatches, ...applyTo: EnvoyFilterApplyTo[]): boolean {
  return applyTo.some((a) => (patches.get(a)?.length ?? 0) > 0);
}
