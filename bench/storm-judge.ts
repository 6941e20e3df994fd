/**
 * Did any proxy ever see less than its full config? The load generator's judge for restarts and recycled connections
 * (bench/storm.ts, test/faults/reconnect-storm.test.ts). When the storm is armed, each proxy's current LDS and CDS
 * name sets become its reference, and every ClusterLoadAssignment seen with endpoints so far is remembered. From then
 * on the config does not change, so on every stream that follows:
 * - an LDS or CDS response (SotW: every one; Delta: the first per stream, which must carry the whole wildcard set)
 *   whose names differ from the reference is partial: Envoy would remove the missing listeners and clusters;
 * - a Delta response that removes a referenced name is partial for the same reason;
 * - a ClusterLoadAssignment without endpoints for a cluster that had them is empty config: traffic to it would fail.
 * RDS and EDS names that have not arrived yet are not judged: Envoy keeps warming clusters and listeners until they do.
 */
import protobuf from 'protobufjs';
import { TypeUrl } from '../src/proto/types.ts';
import type { ParsedResponse } from './wire.ts';

export interface PartialView {
  proxy: number;
  type: string;
  detail: string;
}

type Wildcard = 'lds' | 'cds';
const WILDCARD: Record<string, Wildcard> = { [TypeUrl.Listener]: 'lds', [TypeUrl.Cluster]: 'cds' };

/** ClusterLoadAssignment.endpoints (2) → LocalityLbEndpoints.lb_endpoints (2): does any locality hold an endpoint? */
export function hasEndpoints(cla: Uint8Array): boolean {
  const r = protobuf.Reader.create(cla);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 !== 2 || (tag & 7) !== 2) {
      r.skipType(tag & 7);
      continue;
    }
    const end = r.uint32() + r.pos;
    while (r.pos < end) {
      const inner = r.uint32();
      if (inner >>> 3 === 2) return true;
      r.skipType(inner & 7);
    }
  }
  return false;
}

export class StormJudge {
  /** Sorted name lists as one string each, interned: 2,000 proxies with the same listeners share one string. */
  private readonly keys = new Map<string, string>();
  /** Key → how many names it lists. */
  private readonly sizes = new Map<string, number>();
  private readonly latest: Array<Partial<Record<Wildcard, string>>>;
  private reference: Array<Partial<Record<Wildcard, string>>> | undefined;
  private readonly withEndpoints = new Set<string>();
  /** Per stream, the wildcard types it has had a response of (Delta judges the first one whole). */
  private readonly seen = new WeakMap<object, Set<Wildcard>>();
  /** Partial responses, and the proxies that got at least one, since the last resetCounts. */
  partial = 0;
  partialProxies = 0;
  private readonly flagged: Uint8Array;
  readonly examples: PartialView[] = [];
  private readonly mode: 'sotw' | 'delta';

  constructor(proxies: number, mode: 'sotw' | 'delta') {
    this.mode = mode;
    this.flagged = new Uint8Array(proxies);
    this.latest = Array.from({ length: proxies }, () => ({}));
  }

  get armed(): boolean {
    return this.reference !== undefined;
  }

  /**
   * From now on, judge: each proxy's current LDS/CDS sets are what it must keep seeing. Returns how many proxies have
   * both, and the smallest and largest sets, so the caller can check the reference itself is the whole mesh.
   */
  arm(): { proxiesWithReference: number; listeners: [number, number]; clusters: [number, number] } {
    this.reference = this.latest.map((l) => ({ ...l }));
    const range = (type: Wildcard): [number, number] => {
      const sizes = this.reference!.map((r) => (r[type] === undefined ? 0 : this.sizes.get(r[type])!));
      return [Math.min(...sizes), Math.max(...sizes)];
    };
    return { proxiesWithReference: this.reference.filter((r) => r.lds !== undefined && r.cds !== undefined).length, listeners: range('lds'), clusters: range('cds') };
  }

  /** Resets the partial count (a new phase); the reference stays. */
  resetCounts(): void {
    this.partial = 0;
    this.partialProxies = 0;
    this.flagged.fill(0);
    this.examples.length = 0;
  }

  observe(stream: object, proxy: number, r: ParsedResponse): void {
    const wildcard = WILDCARD[r.typeUrl];
    if (wildcard) this.observeWildcard(stream, proxy, wildcard, r);
    else if (r.typeUrl === TypeUrl.ClusterLoadAssignment) this.observeEndpoints(proxy, r);
  }

  private observeWildcard(stream: object, proxy: number, type: Wildcard, r: ParsedResponse): void {
    let seen = this.seen.get(stream);
    if (!seen) this.seen.set(stream, (seen = new Set()));
    const first = !seen.has(type);
    seen.add(type);
    const ref = this.reference?.[proxy]?.[type];
    if (ref !== undefined && this.mode === 'delta' && r.removed.length > 0) {
      this.flag(proxy, type, `removed ${r.removed.length} resources (${r.removed.slice(0, 3).join(', ')})`);
    }
    if (this.mode === 'delta' && !first) return;
    const key = this.keyOf(r.names);
    if (ref !== undefined && key !== ref) this.flag(proxy, type, `${r.names.length} resources, expected ${this.sizes.get(ref)}`);
    if (!this.armed) this.latest[proxy]![type] = key;
  }

  private observeEndpoints(proxy: number, r: ParsedResponse): void {
    const raw = r.raw;
    if (!raw) return;
    for (let i = 0; i < raw.length; i++) {
      const name = r.names[i]!;
      const has = hasEndpoints(raw[i]!);
      if (!this.armed) {
        if (has) this.withEndpoints.add(name);
      } else if (!has && this.withEndpoints.has(name)) {
        this.flag(proxy, 'eds', `${name} has no endpoints`);
      }
    }
  }

  /** The interned key of a name set; the order as sent is tried first (the server's order is stable), then sorted. */
  private keyOf(names: string[]): string {
    const asSent = names.join('\n');
    const known = this.keys.get(asSent);
    if (known !== undefined) return known;
    const sorted = [...names].sort().join('\n');
    const key = this.keys.get(sorted) ?? sorted;
    this.keys.set(sorted, key);
    this.keys.set(asSent, key);
    this.sizes.set(key, names.length);
    return key;
  }

  private flag(proxy: number, type: string, detail: string): void {
    this.partial++;
    if (this.flagged[proxy] === 0) {
      this.flagged[proxy] = 1;
      this.partialProxies++;
    }
    if (this.examples.length < 10) this.examples.push({ proxy, type, detail });
  }
}
