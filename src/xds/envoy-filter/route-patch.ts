/**
 * ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches (istiod rc_patch.go ApplyRouteConfigurationPatches):
 * - ROUTE_CONFIGURATION: MERGE only;
 * - VIRTUAL_HOST: REMOVE, MERGE, REPLACE per matching virtual host, then ADD appends;
 * - HTTP_ROUTE: REMOVE and MERGE per matching route, then ADD appends, INSERT_BEFORE/AFTER go next to the first
 *   matching route (head/tail without a route match), INSERT_FIRST prepends — when it names a route, only if that
 *   route exists.
 */
import type { EnvoyFilterApplyTo, PatchContext } from '../../config/kinds/envoy-filter.ts';
import { applyListOp } from './list-ops.ts';
import {
  contextMatches,
  hasRouteMatch,
  routeConfigurationMatches,
  routeMatches,
  virtualHostMatches,
  type RouteMatchContext,
} from './match.ts';
import { mergeMessage } from './merge.ts';
import type { CompiledPatch, Note, SelectedPatches } from './select.ts';
import { APPLY_TO_MESSAGE, type Json } from './value.ts';

export const ROUTE_APPLY_TO: readonly EnvoyFilterApplyTo[] = ['ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE'];

const RC = APPLY_TO_MESSAGE.ROUTE_CONFIGURATION as string;
const VH = APPLY_TO_MESSAGE.VIRTUAL_HOST as string;
const ROUTE = APPLY_TO_MESSAGE.HTTP_ROUTE as string;

const list = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);

const toContext = (ctx: PatchContext | RouteMatchContext): RouteMatchContext => (typeof ctx === 'string' ? { context: ctx } : ctx);

/** Could any route-class patch touch this route configuration? */
export function routePatchesApply(rc: Json, ctx: RouteMatchContext, patches: SelectedPatches): boolean {
  return ROUTE_APPLY_TO.some((a) =>
    (patches.get(a) ?? []).some((p) => contextMatches(ctx.context, p) && routeConfigurationMatches(rc, p, ctx)),
  );
}

/**
 * Applies the patches to one route configuration (an RDS resource, or an HCM's inline `route_config`). Returns the
 * input itself when no patch applies, else a patched copy; the input is never modified.
 */
export function applyRouteConfigPatches(rc: Json, ctx: PatchContext | RouteMatchContext, patches: SelectedPatches, note: Note): Json {
  const c = toContext(ctx);
  if (!routePatchesApply(rc, c, patches)) return rc;
  const copy = structuredClone(rc);
  patchRouteConfigInPlace(copy, c, patches, note);
  return copy;
}

/** The in-place form, for a route configuration that is already a private copy. */
export function patchRouteConfigInPlace(rc: Json, ctx: RouteMatchContext, patches: SelectedPatches, _note: Note): void {
  const applies = (p: CompiledPatch) => contextMatches(ctx.context, p) && routeConfigurationMatches(rc, p, ctx);
  for (const p of patches.get('ROUTE_CONFIGURATION') ?? []) {
    if (p.operation === 'MERGE' && p.value && applies(p)) mergeMessage(RC, rc, p.value);
  }
  const vhPatches = (patches.get('VIRTUAL_HOST') ?? []).filter(applies);
  const routePatches = (patches.get('HTTP_ROUTE') ?? []).filter(applies);
  if (vhPatches.length === 0 && routePatches.length === 0) return;
  const out: Json[] = [];
  for (const original of list(rc.virtual_hosts)) {
    let vh = original;
    let removed = false;
    for (const p of vhPatches) {
      if (!virtualHostMatches(vh, p)) continue;
      if (p.operation === 'REMOVE') {
        removed = true;
        break;
      }
      if (p.operation === 'MERGE' && p.value) mergeMessage(VH, vh, p.value);
      else if (p.operation === 'REPLACE' && p.value) vh = structuredClone(p.value);
    }
    if (removed) continue;
    patchRoutes(vh, routePatches);
    out.push(vh);
  }
  for (const p of vhPatches) if (p.operation === 'ADD' && p.value) out.push(structuredClone(p.value));
  rc.virtual_hosts = out;
}

function patchRoutes(vh: Json, patches: readonly CompiledPatch[]): void {
  const mine = patches.filter((p) => virtualHostMatches(vh, p));
  if (mine.length === 0) return;
  let routes: readonly Json[] = list(vh.routes).filter((r) => {
    for (const p of mine) {
      if (!routeMatches(r, p)) continue;
      if (p.operation === 'REMOVE') return false;
      if (p.operation === 'MERGE' && p.value) mergeMessage(ROUTE, r, p.value);
    }
    return true;
  });
  for (const p of mine) {
    if (p.operation === 'MERGE' || p.operation === 'REMOVE') continue;
    if (p.operation === 'INSERT_FIRST' && hasRouteMatch(p) && !routes.some((r) => routeMatches(r, p))) continue;
    routes = applyListOp(routes, p.operation, p.value, hasRouteMatch(p), (r) => routeMatches(r, p));
  }
  vh.routes = [...routes];
}
