/**
 * What one stream was sent of one type, name → version. Most of the time a stream holds exactly a set every other
 * stream with the same view holds too, so the state is that shared (immutable) map plus a small overlay of
 * differences: 2,000 streams × 3,000 resources would otherwise be six million map entries.
 */
import type { Resource, ResourceSet } from './provider.ts';

const DELETED = Symbol('deleted');

export class SentVersions {
  private base: ReadonlyMap<string, Resource> | undefined;
  private readonly overlay = new Map<string, string | typeof DELETED>();

  get(name: string): string | undefined {
    const o = this.overlay.get(name);
    if (o === DELETED) return undefined;
    return o ?? this.base?.get(name)?.version;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  set(name: string, version: string): void {
    if (this.base?.get(name)?.version === version) this.overlay.delete(name);
    else this.overlay.set(name, version);
  }

  delete(name: string): void {
    if (this.base?.has(name)) this.overlay.set(name, DELETED);
    else this.overlay.delete(name);
  }

  /** The shared set this stream holds exactly (no differences on top), if any. */
  exactBase(): ReadonlyMap<string, Resource> | undefined {
    return this.overlay.size === 0 ? this.base : undefined;
  }

  /**
   * Resources of `set` this stream does not hold at the same version. Streams holding exactly the same previous set
   * share one computed answer (memoized on the new set), so a push to 2,000 such streams diffs once.
   */
  changedIn(set: ResourceSet): Resource[] {
    const base = this.exactBase();
    if (base) {
      if (base === set.resources) return [];
      const memo = (set.diffs ??= new WeakMap());
      let d = memo.get(base);
      if (!d) {
        d = [];
        for (const r of set.resources.values()) if (base.get(r.name)?.version !== r.version) d.push(r);
        memo.set(base, d);
      }
      return d;
    }
    const out: Resource[] = [];
    for (const r of set.resources.values()) if (this.get(r.name) !== r.version) out.push(r);
    return out;
  }

  /** The stream now holds exactly this set (shared, never copied). */
  replaceAll(resources: ReadonlyMap<string, Resource>): void {
    this.base = resources;
    this.overlay.clear();
  }

  clear(): void {
    this.base = undefined;
    this.overlay.clear();
  }

  *keys(): IterableIterator<string> {
    for (const name of this.base?.keys() ?? []) if (this.overlay.get(name) !== DELETED) yield name;
    for (const [name, v] of this.overlay) if (v !== DELETED && !this.base?.has(name)) yield name;
  }

  get size(): number {
    if (this.overlay.size === 0) return this.base?.size ?? 0;
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }
}
