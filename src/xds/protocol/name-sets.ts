/**
 * Subscribed-name sets, shared between streams that subscribe to the same names (every sidecar in a namespace asks
 * for the same routes and clusters). A set is identified by a content key, which providers also use to share the
 * generated resource set. Interned sets are immutable; a stream that changes its subscription gets a new one.
 */
import { createHash } from 'node:crypto';

export interface NameSet {
  readonly names: ReadonlySet<string>;
  /** Content key: equal names ⇔ equal key. */
  readonly key: string;
  /**
   * The encoded resource_names of a request that listed exactly these names (the first one seen). A SotW ACK whose
   * names encode to the same bytes repeats the same subscription, and is recognised without decoding.
   */
  wire?: Buffer;
}

export const EMPTY_NAMES: NameSet = { names: new Set(), key: 'empty', wire: Buffer.alloc(0) };

const interned = new Map<string, WeakRef<NameSet>>();
const cleanup = new FinalizationRegistry<string>((key) => {
  if (interned.get(key)?.deref() === undefined) interned.delete(key);
});

export function internNames(names: Iterable<string>): NameSet {
  const sorted = [...new Set(names)].sort();
  if (sorted.length === 0) return EMPTY_NAMES;
  const h = createHash('sha1');
  for (const n of sorted) h.update(`${n}\n`);
  const key = h.digest('base64url');
  const existing = interned.get(key)?.deref();
  if (existing) return existing;
  const set: NameSet = { names: new Set(sorted), key };
  interned.set(key, new WeakRef(set));
  cleanup.register(set, key);
  return set;
}
