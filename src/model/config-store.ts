/**
 * The validated config, by kind. Sources write into it; each debounced push takes an immutable snapshot. It also
 * remembers the last good version of every object: a refused update leaves the old object serving.
 */
import type { ConfigKey, ConfigObject } from '../config/object.ts';

export interface ConfigSnapshot {
  /** Increases with every change. */
  readonly revision: number;
  ofKind<S = unknown>(kind: string): ReadonlyArray<ConfigObject<S>>;
  get<S = unknown>(kind: string, namespace: string, name: string): ConfigObject<S> | undefined;
}

export interface ConfigChange {
  /** Keys added, updated or deleted. */
  keys: Set<ConfigKey>;
  kinds: Set<string>;
}

export function mergeChanges(a: ConfigChange, b: ConfigChange): ConfigChange {
  return { keys: new Set([...a.keys, ...b.keys]), kinds: new Set([...a.kinds, ...b.kinds]) };
}

const keyFor = (kind: string, namespace: string, name: string) => `${kind}/${namespace}/${name}`;

export class ConfigStore {
  private readonly byKind = new Map<string, Map<string, ConfigObject>>();
  private revision = 0;
  private cachedSnapshot: ConfigSnapshot | undefined;

  /** Adds or replaces an object; returns false when it is unchanged (same content). */
  upsert(obj: ConfigObject): boolean {
    let m = this.byKind.get(obj.kind);
    if (!m) {
      m = new Map();
      this.byKind.set(obj.kind, m);
    }
    const key = keyFor(obj.kind, obj.metadata.namespace, obj.metadata.name);
    const prev = m.get(key);
    if (prev) {
      // Keep the first-seen creation time for file objects that carry none, so "oldest wins" rules stay stable.
      const stable = { ...obj, metadata: { ...obj.metadata, creationTimestamp: prev.metadata.creationTimestamp } };
      if (sameContent(prev, stable)) return false;
      m.set(key, stable);
    } else {
      m.set(key, obj);
    }
    this.touch();
    return true;
  }

  delete(kind: string, namespace: string, name: string): boolean {
    const deleted = this.byKind.get(kind)?.delete(keyFor(kind, namespace, name)) ?? false;
    if (deleted) this.touch();
    return deleted;
  }

  get(kind: string, namespace: string, name: string): ConfigObject | undefined {
    return this.byKind.get(kind)?.get(keyFor(kind, namespace, name));
  }

  count(): number {
    let n = 0;
    for (const m of this.byKind.values()) n += m.size;
    return n;
  }

  private touch(): void {
    this.revision++;
    this.cachedSnapshot = undefined;
  }

  snapshot(): ConfigSnapshot {
    if (this.cachedSnapshot) return this.cachedSnapshot;
    const frozen = new Map<string, ConfigObject[]>();
    const index = new Map<string, ConfigObject>();
    for (const [kind, m] of this.byKind) {
      // Sorted oldest first, then by namespace/name: Istio's precedence order wherever "the oldest wins".
      const list = [...m.values()].sort(compareAge);
      frozen.set(kind, list);
      for (const [k, o] of m) index.set(k, o);
    }
    const revision = this.revision;
    const snap: ConfigSnapshot = {
      revision,
      ofKind: <S>(kind: string) => (frozen.get(kind) ?? []) as ReadonlyArray<ConfigObject<S>>,
      get: <S>(kind: string, namespace: string, name: string) => index.get(keyFor(kind, namespace, name)) as ConfigObject<S> | undefined,
    };
    this.cachedSnapshot = snap;
    return snap;
  }
}

export function compareAge(a: ConfigObject, b: ConfigObject): number {
  if (a.metadata.creationTimestamp !== b.metadata.creationTimestamp) {
    return a.metadata.creationTimestamp < b.metadata.creationTimestamp ? -1 : 1;
  }
  const an = `${a.metadata.namespace}/${a.metadata.name}`;
  const bn = `${b.metadata.namespace}/${b.metadata.name}`;
  return an < bn ? -1 : an > bn ? 1 : 0;
}

function sameContent(a: ConfigObject, b: ConfigObject): boolean {
  return (
    a.apiVersion === b.apiVersion &&
    JSON.stringify(a.spec) === JSON.stringify(b.spec) &&
    JSON.stringify(a.metadata) === JSON.stringify(b.metadata)
  );
}
