/**
 * Config status: per config object, how many connected proxies have ACKed a version of their config that includes
 * it, how many are still pending, and how many rejected it (NACK) and why — istiod's "distribution tracking"
 * (pilot/pkg/status/distribution), shown on /debug/config_status and written to a StatusSink (kube mode: the
 * object's `status`).
 *
 * Data model.
 * - Every push version gets an ordinal. An object is recorded with the first push version whose snapshot holds its
 *   current content (`Kind/ns/name@resourceVersion`, or a content hash for file objects without one).
 * - Per connection and type the tracker follows the protocol events (ProtocolObserver): `delivered` is the newest
 *   version whose content for that type the proxy has been sent — a push that did not resend a type leaves that
 *   type's content unchanged, so once the push has been applied to the stream (`pushed`) the proxy holds that
 *   version's content too; `acked` is the newest delivered version the proxy ACKed; a NACK leaves `acked` where it
 *   was and marks (acked, delivered] as rejected with the error.
 * - A proxy is SYNCED for an object first included at version v when every type it watches has acked ≥ v; NACKED
 *   when a type it watches rejected a version range holding v; PENDING otherwise. Objects recorded at the same
 *   version share one answer, so a report costs O(proxies × types + versions), not O(objects × proxies).
 *   (When a proxy's ACK of one response is overtaken by the next push, that ACK is stale and ignored by the protocol,
 *   so a NACK of the newer response is counted from the older ACK: pessimistic, never optimistic.)
 *
 * Nothing here is on the push path's critical section: protocol events are O(1) updates; computing statuses and
 * writing them happen in StatusWriter, on a timer, coalesced, rate-limited, with a timeout — a push never awaits a
 * sink, and a sink that hangs only delays status, never config.
 */
import { createHash } from 'node:crypto';
import type { ConfigObject } from '../config/object.ts';
import type { ConfigSnapshot } from '../model/config-store.ts';
import { shortTypeName } from '../proto/types.ts';
import { silentLogger, type Logger } from '../shared/log.ts';
import { StatusWriter, type StatusSink, type StatusWriterOptions, type WriterStats } from './status-writer.ts';

export { MemoryStatusSink, StatusWriter, type StatusSink, type StatusUpdate, type StatusWriterOptions, type WriterStats } from './status-writer.ts';

/** istioctl's names for the xDS types: CDS, LDS, EDS, RDS, SDS, ECDS. */
export function xdsTypeName(typeUrl: string): string {
  if (typeUrl.endsWith('.TypedExtensionConfig')) return 'ECDS';
  const s = shortTypeName(typeUrl);
  return s.length === 3 ? s.toUpperCase() : s;
}

/** One proxy that rejected (NACKed) a version including the object. */
export interface StatusNack {
  proxy: string;
  type: string;
  error: string;
}

/** An object's distribution status: what /debug/config_status lists and a StatusSink receives. */
export interface ObjectStatus {
  kind: string;
  namespace: string;
  name: string;
  /** `Kind/ns/name@resourceVersion` (or `@sha1:<hash>` of the content when the object has no resourceVersion). */
  ref: string;
  resourceVersion?: string;
  generation?: number;
  /** The first push version that included this content. */
  version: string;
  /** Connected proxies counted (those that were sent config of at least one type). */
  total: number;
  synced: number;
  pending: number;
  nacked: number;
  /** The proxies that rejected it (at most MAX_NACKS listed). */
  nacks: StatusNack[];
  /** Istio's status condition: Reconciled True once every proxy has ACKed it. */
  conditions: Array<{ type: 'Reconciled'; status: 'True' | 'False'; reason: 'Synced' | 'Pending' | 'Rejected'; message: string }>;
}

export interface ProxyTypeStatus {
  /** SYNCED (last response ACKed), STALE (sent, not ACKed yet), NACKED (last response rejected). */
  state: 'SYNCED' | 'STALE' | 'NACKED';
  sent?: string;
  acked?: string;
  error?: string;
}

export interface ConfigStatusReport {
  /** The newest push version. */
  version: string;
  objects: ObjectStatus[];
  proxies: Array<{ id: string; types: Record<string, ProxyTypeStatus> }>;
  writer?: WriterStats;
}

const MAX_NACKS = 20;
/** Ordinals kept for version strings; an older version seen in an event counts as "before everything recorded". */
const MAX_VERSIONS = 4096;

interface TypeTrack {
  delivered: number;
  deliveredVersion: string;
  acked: number;
  ackedVersion?: string;
  state: 'pending' | 'acked' | 'nacked';
  error?: string;
}

interface Tracked {
  kind: string;
  namespace: string;
  name: string;
  ref: string;
  resourceVersion?: string;
  generation?: number;
  version: string;
  ordinal: number;
}

export interface ConfigStatusOptions {
  /** Which objects get a status (default: the Istio API kinds, `*.istio.io` groups). */
  tracks?: (obj: ConfigObject) => boolean;
  /** Kinds to scan on a full record (recordPush without changed keys). */
  kinds: readonly string[];
  /** Where statuses are written (off the push path); none = computed only on request. */
  sink?: StatusSink;
  writer?: StatusWriterOptions;
  log?: Logger;
}

const istioKind = (obj: ConfigObject) => /\.istio\.io\//.test(obj.apiVersion);

export class ConfigStatusTracker {
  private readonly ordinals = new Map<string, number>();
  private nextOrdinal = 0;
  private latest = '';
  private readonly objects = new Map<string, Tracked>();
  private readonly conns = new Map<string, Map<string, TypeTrack>>();
  private readonly tracks: (obj: ConfigObject) => boolean;
  private readonly kinds: readonly string[];
  readonly writer: StatusWriter | undefined;

  constructor(o: ConfigStatusOptions) {
    this.tracks = o.tracks ?? istioKind;
    this.kinds = o.kinds;
    this.writer = o.sink ? new StatusWriter(o.sink, () => this.objectStatuses(), { ...o.writer, log: o.writer?.log ?? o.log ?? silentLogger }) : undefined;
  }

  private ordinal(version: string): number {
    return this.ordinals.get(version) ?? 0;
  }

  /**
   * A push version and the config it was built from. `changed`: the keys (`Kind/ns/name`) changed since the last
   * record; undefined = scan every tracked kind (the first push). Recording the current version again (a change that
   * altered no proxy's config) records the changed objects at it.
   */
  recordPush(version: string, snapshot: ConfigSnapshot, changed?: Iterable<string>): void {
    let ord = this.ordinals.get(version);
    if (ord === undefined) {
      ord = ++this.nextOrdinal;
      this.ordinals.set(version, ord);
      if (this.ordinals.size > MAX_VERSIONS) this.ordinals.delete(this.ordinals.keys().next().value!);
      this.latest = version;
    }
    const record = (obj: ConfigObject) => {
      if (!this.tracks(obj)) return;
      const { kind, metadata: m } = obj;
      const ref = `${kind}/${m.namespace}/${m.name}@${m.resourceVersion ?? `sha1:${createHash('sha1').update(JSON.stringify([obj.spec, m.labels, m.annotations])).digest('hex').slice(0, 12)}`}`;
      const key = `${kind}/${m.namespace}/${m.name}`;
      if (this.objects.get(key)?.ref === ref) return;
      this.objects.set(key, { kind, namespace: m.namespace, name: m.name, ref, ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}), ...(m.generation !== undefined ? { generation: m.generation } : {}), version, ordinal: ord });
    };
    if (changed === undefined) {
      for (const kind of this.kinds) for (const obj of snapshot.ofKind(kind)) record(obj);
    } else {
      for (const key of changed) {
        const [kind = '', ns = '', name = ''] = key.split('/');
        const obj = snapshot.get(kind, ns, name);
        if (obj) record(obj);
        else this.objects.delete(key);
      }
    }
    this.writer?.markDirty();
  }

  /* Protocol events (wired from the ProtocolObserver): O(1), never I/O. */

  /** A response of `typeUrl` at `version` was written to connection `id`. */
  sent(id: string, typeUrl: string, version: string | undefined): void {
    if (!id || version === undefined) return;
    let types = this.conns.get(id);
    if (!types) this.conns.set(id, (types = new Map()));
    const ord = this.ordinal(version);
    const t = types.get(typeUrl);
    if (!t) types.set(typeUrl, { delivered: ord, deliveredVersion: version, acked: 0, state: 'pending' });
    else {
      if (ord >= t.delivered) {
        t.delivered = ord;
        t.deliveredVersion = version;
      }
      t.state = 'pending';
    }
    this.writer?.markDirty();
  }

  acked(id: string, typeUrl: string): void {
    const t = this.conns.get(id)?.get(typeUrl);
    if (!t) return;
    t.state = 'acked';
    t.acked = t.delivered;
    t.ackedVersion = t.deliveredVersion;
    t.error = undefined;
    this.writer?.markDirty();
  }

  nacked(id: string, typeUrl: string, message: string): void {
    const t = this.conns.get(id)?.get(typeUrl);
    if (!t) return;
    t.state = 'nacked';
    t.error = message;
    this.writer?.markDirty();
  }

  /** A push was applied to connection `id` in full: every type it did not resend holds that version's content. */
  pushed(id: string, version: string | undefined): void {
    const types = this.conns.get(id);
    if (!types || version === undefined) return;
    const ord = this.ordinal(version);
    for (const t of types.values()) {
      if (ord <= t.delivered) continue;
      t.delivered = ord;
      t.deliveredVersion = version;
      if (t.state === 'acked') {
        t.acked = ord;
        t.ackedVersion = version;
      }
    }
    this.writer?.markDirty();
  }

  disconnected(id: string): void {
    if (this.conns.delete(id)) this.writer?.markDirty();
  }

  /* Reports. */

  /** Every tracked object's status, by `Kind/ns/name`. */
  objectStatuses(filter?: { kind?: string; namespace?: string; name?: string }): Map<string, ObjectStatus> {
    // Per connection: the lowest acked version across its types, and the version ranges it rejected.
    const minAcked: number[] = [];
    const rejecting: Array<{ id: string; minAcked: number; ranges: Array<{ type: string; lo: number; hi: number; error: string }> }> = [];
    for (const [id, types] of this.conns) {
      if (types.size === 0) continue;
      let min = Infinity;
      const ranges = [];
      for (const [typeUrl, t] of types) {
        min = Math.min(min, t.acked);
        if (t.state === 'nacked') ranges.push({ type: xdsTypeName(typeUrl), lo: t.acked, hi: t.delivered, error: t.error ?? '' });
      }
      minAcked.push(min);
      if (ranges.length > 0) rejecting.push({ id, minAcked: min, ranges });
    }
    minAcked.sort((a, b) => a - b);
    const total = minAcked.length;
    const byOrdinal = new Map<number, { synced: number; nacked: number; nacks: StatusNack[] }>();
    const countsAt = (v: number) => {
      let c = byOrdinal.get(v);
      if (c) return c;
      // Synced: connections whose lowest acked version is ≥ v (binary search for the first such).
      let lo = 0;
      let hi = total;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (minAcked[mid]! >= v) hi = mid;
        else lo = mid + 1;
      }
      c = { synced: total - lo, nacked: 0, nacks: [] };
      for (const r of rejecting) {
        if (r.minAcked >= v) continue;
        const hits = r.ranges.filter((x) => x.lo < v && v <= x.hi);
        if (hits.length === 0) continue;
        c.nacked++;
        for (const h of hits) if (c.nacks.length < MAX_NACKS) c.nacks.push({ proxy: r.id, type: h.type, error: h.error });
      }
      byOrdinal.set(v, c);
      return c;
    };
    const out = new Map<string, ObjectStatus>();
    for (const [key, o] of this.objects) {
      if (filter?.kind && o.kind !== filter.kind) continue;
      if (filter?.namespace && o.namespace !== filter.namespace) continue;
      if (filter?.name && o.name !== filter.name) continue;
      const c = countsAt(o.ordinal);
      const pending = total - c.synced - c.nacked;
      const reason = c.nacked > 0 ? 'Rejected' : pending > 0 ? 'Pending' : 'Synced';
      const message =
        `${c.synced}/${total} proxies up to date` +
        (pending > 0 ? `, ${pending} pending` : '') +
        (c.nacked > 0 ? `, ${c.nacked} rejected it: ${c.nacks[0]!.proxy} ${c.nacks[0]!.type}: ${c.nacks[0]!.error}` : '');
      out.set(key, {
        kind: o.kind,
        namespace: o.namespace,
        name: o.name,
        ref: o.ref,
        ...(o.resourceVersion ? { resourceVersion: o.resourceVersion } : {}),
        ...(o.generation !== undefined ? { generation: o.generation } : {}),
        version: o.version,
        total,
        synced: c.synced,
        pending,
        nacked: c.nacked,
        nacks: c.nacks,
        conditions: [{ type: 'Reconciled', status: reason === 'Synced' ? 'True' : 'False', reason, message }],
      });
    }
    return out;
  }

  /** Per connection and type: the state of its last response, the versions sent and ACKed, the NACK error. */
  proxyStatuses(): ConfigStatusReport['proxies'] {
    return [...this.conns].map(([id, types]) => ({
      id,
      types: Object.fromEntries(
        [...types].map(([typeUrl, t]) => [
          xdsTypeName(typeUrl),
          {
            state: t.state === 'acked' ? 'SYNCED' : t.state === 'nacked' ? 'NACKED' : 'STALE',
            sent: t.deliveredVersion,
            ...(t.ackedVersion ? { acked: t.ackedVersion } : {}),
            ...(t.error ? { error: t.error } : {}),
          } satisfies ProxyTypeStatus,
        ]),
      ),
    }));
  }

  report(filter?: { kind?: string; namespace?: string; name?: string }): ConfigStatusReport {
    const objects = [...this.objectStatuses(filter).values()].sort((a, b) => a.ref.localeCompare(b.ref));
    return { version: this.latest, objects, proxies: this.proxyStatuses(), ...(this.writer ? { writer: this.writer.stats() } : {}) };
  }

  stop(): void {
    this.writer?.stop();
  }
}
