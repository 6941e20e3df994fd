/**
 * Generated resources, shared by every proxy whose view answers the same. Each entry records the proxy reads its
 * generation made (see model/proxy-view.ts); a proxy may use an entry when it answers all of those reads the same
 * way. One cache per push context: a config change starts a new one, an endpoint change drops only EDS entries.
 */
import type { Read, ReadMemo } from '../model/proxy-view.ts';

interface Entry<T> {
  reads: readonly Read[];
  value: T;
}

export class ViewCache {
  private readonly entries = new Map<string, Array<Entry<unknown>>>();
  hits = 0;
  misses = 0;

  get<T>(key: string, memo: ReadMemo): Entry<T> | undefined {
    const list = this.entries.get(key);
    if (list) {
      for (const e of list) {
        if (memo.satisfies(e.reads)) {
          this.hits++;
          return e as Entry<T>;
        }
      }
    }
    this.misses++;
    return undefined;
  }

  put<T>(key: string, reads: ReadonlyMap<string, string>, value: T): Entry<T> {
    const entry: Entry<T> = { reads: [...reads], value };
    const list = this.entries.get(key);
    if (list) list.push(entry);
    else this.entries.set(key, [entry]);
    return entry;
  }

  /** Drops entries whose key satisfies the predicate. */
  drop(predicate: (key: string) => boolean): void {
    for (const key of [...this.entries.keys()]) if (predicate(key)) this.entries.delete(key);
  }

  /** Encoded bytes held (resources and shared wire encodings), for /debug/memz. */
  bytes(): number {
    let n = 0;
    for (const list of this.entries.values()) {
      for (const e of list) {
        const v = e.value as { bytes?: Uint8Array; wire?: { sotw?: Buffer; delta?: Buffer } } | null;
        n += (v?.bytes?.length ?? 0) + (v?.wire?.sotw?.length ?? 0) + (v?.wire?.delta?.length ?? 0);
      }
    }
    return n;
  }

  get size(): number {
    return this.entries.size;
  }
}
