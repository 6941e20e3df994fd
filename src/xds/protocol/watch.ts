/** Per-stream, per-type state: what the client subscribed to, what it was sent, what it acknowledged. */
import { EMPTY_NAMES, type NameSet } from './name-sets.ts';
import { SentVersions } from './sent-versions.ts';

export interface WatchState {
  typeUrl: string;
  wildcard: boolean;
  /** Subscribed names, interned (shared by streams subscribing to the same names; never mutated). */
  names: NameSet;
  /** Version of the complete set last sent, when a response sent the whole set. */
  sentSetVersion?: string;
  /** name → version of what the client has been sent (it holds it, or rejected it and kept its older copy). */
  sent: SentVersions;
  nonceSent?: string;
  versionSent?: string;
  sentAt?: number;
  nonceAcked?: string;
  versionAcked?: string;
  ackedAt?: number;
  /** Start time of the push whose response is awaiting an ACK, for convergence metrics. */
  pushStart?: number;
  lastNack?: { nonce: string; message: string; at: number };
}

export function newWatch(typeUrl: string): WatchState {
  return { typeUrl, wildcard: false, names: EMPTY_NAMES, sent: new SentVersions() };
}

/** LDS and CDS responses must hold every resource in SotW: a missing name means "deleted" (xDS protocol spec). */
export const ALL_RESOURCES_REQUIRED = new Set([
  'type.googleapis.com/envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
]);

/** Types where an empty first request means wildcard (the "legacy wildcard" of the xDS spec). */
export const LEGACY_WILDCARD_TYPES = ALL_RESOURCES_REQUIRED;

export interface WatchStatus {
  typeUrl: string;
  wildcard: boolean;
  subscribed: number;
  sent: number;
  versionSent?: string;
  nonceSent?: string;
  versionAcked?: string;
  nonceAcked?: string;
  synced: boolean;
  /** The last NACK; `nonce` equal to nonceSent means the newest response was rejected. */
  lastNack?: { message: string; at: string; nonce: string };
}

export function watchStatus(w: WatchState): WatchStatus {
  return {
    typeUrl: w.typeUrl,
    wildcard: w.wildcard,
    subscribed: w.names.names.size,
    sent: w.sent.size,
    versionSent: w.versionSent,
    nonceSent: w.nonceSent,
    versionAcked: w.versionAcked,
    nonceAcked: w.nonceAcked,
    synced: w.nonceSent === undefined || w.nonceSent === w.nonceAcked,
    ...(w.lastNack ? { lastNack: { message: w.lastNack.message, at: new Date(w.lastNack.at).toISOString(), nonce: w.lastNack.nonce } } : {}),
  };
}
