/**
 * The list operations shared by listener filters, network filters, HTTP filters and HTTP routes, with istiod's
 * semantics (util.go insertBeforeFunc / insertAfterFunc / replaceFunc and the per-list code around them):
 * - ADD appends; INSERT_FIRST prepends;
 * - INSERT_BEFORE / INSERT_AFTER with no element match prepend / append; with one, they insert next to the first
 *   matching element, and do nothing when none matches;
 * - REPLACE replaces the first matching element (an element match is required);
 * - REMOVE removes every matching element (an element match is required).
 * The value is cloned for every insertion: the compiled patch is shared by every proxy.
 */
import type { PatchContext, PatchOperation } from '../../config/kinds/envoy-filter.ts';
import { addsFor } from './match.ts';
import type { CompiledPatch, Note } from './select.ts';
import type { Json } from './value.ts';

/**
 * Applies one list operation. `hasMatch` says whether the patch names an element; `matches` tests one. Returns the new
 * list (the input is not modified), or the input itself when nothing changed.
 */
export function applyListOp(
  list: readonly Json[],
  op: PatchOperation,
  value: Json | undefined,
  hasMatch: boolean,
  matches: (e: Json) => boolean,
): readonly Json[] {
  const fresh = () => structuredClone(value ?? {});
  switch (op) {
    case 'ADD':
      return [...list, fresh()];
    case 'INSERT_FIRST':
      return [fresh(), ...list];
    case 'INSERT_BEFORE':
    case 'INSERT_AFTER': {
      if (!hasMatch) return op === 'INSERT_BEFORE' ? [fresh(), ...list] : [...list, fresh()];
      const i = list.findIndex(matches);
      if (i < 0) return list;
      const at = op === 'INSERT_BEFORE' ? i : i + 1;
      return [...list.slice(0, at), fresh(), ...list.slice(at)];
    }
    case 'REPLACE': {
      if (!hasMatch) return list;
      const i = list.findIndex(matches);
      if (i < 0) return list;
      return [...list.slice(0, i), fresh(), ...list.slice(i + 1)];
    }
    case 'REMOVE': {
      if (!hasMatch) return list;
      const kept = list.filter((e) => !matches(e));
      return kept.length === list.length ? list : kept;
    }
    default:
      return list;
  }
}

/** Shared by listeners and clusters: each ADD once if a context in `adds` takes it, names kept unique. */
export function added(patches: readonly CompiledPatch[], adds: readonly PatchContext[], note: Note, taken: ReadonlySet<unknown>, what: string): Json[] {
  const names = new Set(taken);
  const out: Json[] = [];
  for (const p of patches) {
    if (p.operation !== 'ADD' || !p.value || !addsFor(p, adds)) continue;
    if (names.has(p.value.name)) {
      note(`${p.ref}: a ${what} named ${JSON.stringify(p.value.name)} already exists; ADD not applied`);
      continue;
    }
    names.add(p.value.name);
    out.push(structuredClone(p.value));
  }
  return out;
}
