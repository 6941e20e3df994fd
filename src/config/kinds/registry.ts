import type { KindLookup } from '../validate.ts';
import type { KindDefinition } from './kind.ts';

/** Finds the definition for an apiVersion + kind, and says why when a known group has no such kind or version. */
export class KindRegistry implements KindLookup {
  private readonly byGroupKind = new Map<string, KindDefinition<any>>();
  private readonly groups = new Set<string>();

  constructor(defs: ReadonlyArray<KindDefinition<any>>) {
    for (const d of defs) {
      this.byGroupKind.set(`${d.group}/${d.kind}`, d);
      this.groups.add(d.group);
    }
  }

  all(): Array<KindDefinition<any>> {
    return [...this.byGroupKind.values()];
  }

  byKind(kind: string): KindDefinition<any> | undefined {
    for (const d of this.byGroupKind.values()) if (d.kind === kind) return d;
    return undefined;
  }

  find(apiVersion: string, kind: string): { def: KindDefinition<any> } | { error: string } | undefined {
    const slash = apiVersion.indexOf('/');
    const group = slash < 0 ? '' : apiVersion.slice(0, slash);
    const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
    const def = this.byGroupKind.get(`${group}/${kind}`);
    if (!def) {
      if (this.groups.has(group) && group !== '') {
        const known = this.all().filter((d) => d.group === group).map((d) => d.kind).sort();
        return { error: `unknown kind ${JSON.stringify(kind)} in ${group}; known kinds: ${known.join(', ')}` };
      }
      return undefined;
    }
    if (!def.versions.includes(version)) {
      return { error: `${kind} is not served as ${apiVersion}; use ${def.versions.map((v) => (group ? `${group}/${v}` : v)).join(', ')}` };
    }
    return { def };
  }
}
