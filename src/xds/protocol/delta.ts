/**
 * Incremental ("delta") ADS (DeltaAggregatedResources): subscriptions change by subscribe/unsubscribe lists, and
 * responses carry only changed resources plus the names removed. On reconnect the client lists the versions it holds
 * (initial_resource_versions), so only what differs is sent again.
 */
import { ErrorCode } from '../../shared/errors.ts';
import { Connection } from './connection.ts';
import { encodeDeltaHead, encodeDeltaResources, type DeltaDiscoveryRequest } from './messages.ts';
import type { PushRequest } from './provider.ts';
import { internNames } from './name-sets.ts';
import { LEGACY_WILDCARD_TYPES, type WatchState } from './watch.ts';

export class DeltaConnection<P> extends Connection<P> {
  readonly mode = 'delta' as const;
  /** Names subscribed since the last response that do not exist: answered in removed_resources once. */
  private readonly announceMissing = new Map<string, Set<string>>();

  handleRequest(req: DeltaDiscoveryRequest): void {
    this.identify(req.node);
    if (!this.deps.provider.supports(req.type_url)) {
      this.deps.log.warn({ code: ErrorCode.XdsUnknownType, proxy: this.id, type: req.type_url }, 'request for an unknown type URL ignored');
      return;
    }
    const fresh = !this.watches.has(req.type_url);
    const w = this.watch(req.type_url);

    // A fresh watch may carry the nonce of the client's previous stream: nothing to acknowledge here.
    if (!fresh && req.response_nonce !== '') {
      if (req.error_detail) {
        if (req.response_nonce === w.nonceSent) this.recordNack(w, req.response_nonce, req.error_detail.message);
      } else if (req.response_nonce === w.nonceSent) {
        this.recordAck(w, req.response_nonce);
      } else {
        this.deps.observer.expiredNonce?.(w.typeUrl);
      }
    }

    if (fresh) {
      for (const [name, version] of Object.entries(req.initial_resource_versions)) w.sent.set(name, version);
      if (req.resource_names_subscribe.length === 0 && LEGACY_WILDCARD_TYPES.has(w.typeUrl)) w.wildcard = true;
    }
    const added = this.applySubscription(w, req);
    if (fresh) {
      this.answer(w, undefined, true);
    } else if (added.size > 0 || req.resource_names_subscribe.includes('*')) {
      const missing = this.announceMissing.get(w.typeUrl) ?? new Set<string>();
      for (const n of added) missing.add(n);
      this.announceMissing.set(w.typeUrl, missing);
      this.answer(w, req.resource_names_subscribe.includes('*') ? undefined : added, false);
    }
  }

  /**
   * Applies subscribe/unsubscribe lists; returns the names newly subscribed. A bare ACK changes nothing and copies
   * nothing (the subscribed-name set is shared and immutable; a change makes a new one).
   */
  private applySubscription(w: WatchState, req: DeltaDiscoveryRequest): Set<string> {
    const added = new Set<string>();
    if (req.resource_names_subscribe.length === 0 && req.resource_names_unsubscribe.length === 0) return added;
    const names = new Set(w.names.names);
    const wildcardBefore = w.wildcard;
    for (const n of req.resource_names_subscribe) {
      if (n === '*') w.wildcard = true;
      else if (!names.has(n)) {
        names.add(n);
        added.add(n);
      }
    }
    let removedAny = false;
    for (const n of req.resource_names_unsubscribe) {
      if (n === '*') w.wildcard = false;
      else if (names.delete(n)) {
        removedAny = true;
        if (!w.wildcard) w.sent.delete(n);
      }
    }
    if (added.size > 0 || removedAny || w.wildcard !== wildcardBefore) {
      w.names = internNames(names);
      w.sentSetVersion = undefined;
    }
    return added;
  }

  protected respond(w: WatchState, push: PushRequest | undefined, only: ReadonlySet<string> | undefined, initial = false): void {
    if (!w.wildcard && w.names.names.size === 0) return;
    const set = this.generate(w, only);
    if (!initial && !only && set.version !== undefined && set.version === w.sentSetVersion) return;
    const current = set.resources;
    const changed = w.sent.changedIn(set);

    const removed: string[] = [];
    const scope: Iterable<string> = only ?? (w.wildcard ? [...w.sent.keys(), ...w.names.names] : w.names.names);
    const missing = this.announceMissing.get(w.typeUrl);
    for (const n of new Set(scope)) {
      if (current.has(n)) continue;
      const held = w.sent.has(n);
      if (held || missing?.has(n) || (initial && w.names.names.has(n))) removed.push(n);
      w.sent.delete(n);
    }
    this.announceMissing.delete(w.typeUrl);
    // After a whole-set response the stream holds exactly the shared set; after a partial one, an overlay on it.
    if (only) {
      for (const r of changed) w.sent.set(r.name, r.version);
      // The stream no longer holds exactly the last whole set: a later full push must diff, not skip on the hash.
      w.sentSetVersion = undefined;
    } else {
      w.sentSetVersion = set.version;
      w.sent.replaceAll(current);
    }
    if (changed.length === 0 && removed.length === 0 && !initial) return;

    const version = push?.version ?? this.deps.currentVersion();
    const nonce = this.nextNonce();
    const whole = !only && changed.length === current.size;
    const body = whole ? (set.wire ??= {}).delta ??= encodeDeltaResources(w.typeUrl, current.values()) : encodeDeltaResources(w.typeUrl, changed);
    const bytes = Buffer.concat([encodeDeltaHead(version, w.typeUrl, nonce, removed, this.deps.controlPlaneId), body]);
    w.nonceSent = nonce;
    w.versionSent = version;
    w.sentAt = this.deps.now();
    if (push) w.pushStart ??= push.start;
    this.send(w.typeUrl, bytes, changed.length);
  }
}
