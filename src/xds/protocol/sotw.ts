/**
 * State-of-the-world ADS (StreamAggregatedResources). Rules from the xDS protocol spec and istiod's ShouldRespond:
 * - a request with error_detail is a NACK: recorded and counted, no response (the proxy keeps its last good config);
 * - a request whose nonce is not the last one sent is stale and ignored;
 * - a request with the current nonce is an ACK; if its resource names changed, the new names are answered;
 * - an empty nonce starts (or restarts) a watch and is always answered.
 * LDS and CDS responses carry every resource; RDS and EDS responses carry only new or changed ones.
 */
import { ErrorCode } from '../../shared/errors.ts';
import { Connection } from './connection.ts';
import { encodeSotwHead, encodeSotwResources, type DiscoveryRequest } from './messages.ts';
import type { PushRequest, Resource } from './provider.ts';
import { internNames } from './name-sets.ts';
import { ALL_RESOURCES_REQUIRED, LEGACY_WILDCARD_TYPES, type WatchState } from './watch.ts';

export class SotwConnection<P> extends Connection<P> {
  readonly mode = 'sotw' as const;

  handleRequest(req: DiscoveryRequest): void {
    this.identify(req.node);
    if (!this.deps.provider.supports(req.type_url)) {
      this.deps.log.warn({ code: ErrorCode.XdsUnknownType, proxy: this.id, type: req.type_url }, 'request for an unknown type URL ignored');
      return;
    }
    const w = this.watch(req.type_url);
    // The first request for a type on this stream starts a watch even if it carries a nonce: a client reconnecting
    // (possibly to another replica) may echo the nonce of its previous stream (istiod's shouldRespond does the same).
    const first = w.nonceSent === undefined;

    if (req.error_detail) {
      if (req.response_nonce === w.nonceSent) this.recordNack(w, req.response_nonce, req.error_detail.message);
      // A NACK may still change the subscription; fall through to that check without responding to the NACK itself.
      if (this.updateNames(w, req, first)) this.answer(w, undefined, false);
      return;
    }
    if (!first && req.response_nonce !== '' && req.response_nonce !== w.nonceSent) {
      this.deps.observer.expiredNonce?.(w.typeUrl);
      return;
    }
    const isAck = !first && req.response_nonce !== '' && req.response_nonce === w.nonceSent;
    if (isAck) this.recordAck(w, req.response_nonce);
    const namesChanged = this.updateNames(w, req, first);
    if (!isAck) {
      // A new stream or a re-request: the client holds nothing we know of, so send everything.
      w.sent.clear();
      this.answer(w, undefined, true);
    } else if (namesChanged) {
      // LDS/CDS answers are whole: answering even when nothing new exists tells the client a name does not exist.
      this.answer(w, undefined, ALL_RESOURCES_REQUIRED.has(w.typeUrl));
    }
  }

  /** Updates the watch's names; returns true when the subscription changed. */
  private updateNames(w: WatchState, req: DiscoveryRequest, first: boolean): boolean {
    const raw = req.namesBytes;
    // The common case: an ACK listing exactly the names this stream's set was built from, byte for byte.
    if (!first && raw && w.names.wire && !w.wildcard && raw.equals(w.names.wire)) return false;
    const names = req.resource_names;
    const wildcard = names.includes('*') || (names.length === 0 && LEGACY_WILDCARD_TYPES.has(w.typeUrl) && (first || w.wildcard));
    const plain = names.filter((n) => n !== '*');
    const current = w.names.names;
    // Every ACK repeats the full name list (thousands of names): compare without building a set when possible.
    let changed = wildcard !== w.wildcard || plain.length < current.size;
    if (!changed) for (const n of plain) if (!current.has(n)) changed = true;
    if (!changed && plain.length > current.size) changed = new Set(plain).size !== current.size;
    if (!changed) return false;
    const next = internNames(plain);
    // Copied: the request buffer is large and must not be retained.
    if (!next.wire && raw && !wildcard) next.wire = Buffer.from(raw);
    w.wildcard = wildcard;
    w.names = next;
    w.sentSetVersion = undefined;
    // Forget what was sent for names no longer watched, so re-subscribing sends them again.
    if (!wildcard) for (const n of [...w.sent.keys()]) if (!next.names.has(n)) w.sent.delete(n);
    return true;
  }

  protected respond(w: WatchState, push: PushRequest | undefined, only: ReadonlySet<string> | undefined, force = false): void {
    if (!w.wildcard && w.names.names.size === 0 && !ALL_RESOURCES_REQUIRED.has(w.typeUrl)) return;
    const allRequired = ALL_RESOURCES_REQUIRED.has(w.typeUrl);
    // LDS/CDS must be sent whole, so an incremental push regenerates the whole type.
    const set = this.generate(w, allRequired ? undefined : only);
    if (!force && set.version !== undefined && set.version === w.sentSetVersion) return;
    const current = set.resources;
    let out: Resource[];
    if (allRequired) {
      const changed = force || w.sent.changedIn(set).length > 0 || current.size !== w.sent.size;
      if (!changed) {
        w.sentSetVersion = set.version;
        return;
      }
      out = [...current.values()];
      w.sent.replaceAll(current);
    } else {
      out = w.sent.changedIn(set);
      // A whole-set response leaves the stream holding exactly the shared set; a partial one adds to what it holds.
      if (!only) w.sent.replaceAll(current);
      else for (const r of out) w.sent.set(r.name, r.version);
      if (out.length === 0 && !force) {
        if (!only) w.sentSetVersion = set.version;
        return;
      }
    }
    w.sentSetVersion = only ? undefined : set.version;
    const version = push?.version ?? this.deps.currentVersion();
    const nonce = this.nextNonce();
    // The whole set's encoding is shared by every stream sending it; a partial answer is encoded for this stream.
    const whole = !only && out.length === current.size;
    const body = whole ? (set.wire ??= {}).sotw ??= encodeSotwResources(w.typeUrl, current.values()) : encodeSotwResources(w.typeUrl, out);
    const bytes = Buffer.concat([encodeSotwHead(version, w.typeUrl, nonce, this.deps.controlPlaneId), body]);
    w.nonceSent = nonce;
    w.versionSent = version;
    w.sentAt = this.deps.now();
    if (push) w.pushStart ??= push.start;
    this.send(w.typeUrl, bytes, out.length);
  }
}
