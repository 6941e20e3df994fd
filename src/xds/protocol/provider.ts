import type { NodeInfo } from './messages.ts';

/** A resource as the protocol layer sees it: a name, a content version and the encoded message. */
export interface Resource {
  name: string;
  version: string;
  bytes: Uint8Array;
}

/** What one stream asked for of one type. */
export interface Subscription {
  typeUrl: string;
  /** Wildcard: "everything of this type" (an LDS/CDS first request with no names, or the name `*`). */
  wildcard: boolean;
  names: ReadonlySet<string>;
  /** Content key of (wildcard, names): streams with equal keys subscribe to the same thing. */
  key: string;
}

/** The resources for one subscription. `version` (when given) identifies the whole set: equal version, equal set. */
export interface ResourceSet {
  resources: ReadonlyMap<string, Resource>;
  version?: string;
  /** Memo of the encoded resources field per wire mode, filled by the protocol layer; shared by every stream. */
  wire?: { sotw?: Buffer; delta?: Buffer };
  /** Memo of "what changed since that previous set", filled by the protocol layer (see SentVersions.changedIn). */
  diffs?: WeakMap<ReadonlyMap<string, Resource>, Resource[]>;
}

/** Refuse a stream with a gRPC status code (e.g. 3 INVALID_ARGUMENT for a malformed node id). */
export class StreamRefusal extends Error {
  readonly grpcCode: number;
  constructor(grpcCode: number, message: string) {
    super(message);
    this.grpcCode = grpcCode;
  }
}

/**
 * The protocol layer's only view of the mesh. It asks for the resources of a subscription; it does not know what a
 * Listener is. `P` is whatever the provider keeps per proxy.
 */
export interface ResourceProvider<P> {
  /**
   * Identifies the proxy from the node in its first request; throws StreamRefusal to refuse the stream.
   * `authenticated` is what the server's authenticator established for the stream (undefined on the plaintext port).
   */
  connect(node: NodeInfo, peer: string, authenticated?: unknown): P;
  disconnect(proxy: P): void;
  supports(typeUrl: string): boolean;
  /** Current resources for a subscription; `only` limits generation to those names (incremental pushes). */
  resources(proxy: P, sub: Subscription, only?: ReadonlySet<string>): ResourceSet;
}

/** A push to every stream: a full regeneration, or only some resource names of some types (endpoint updates). */
export interface PushRequest {
  version: string;
  /** When the change that caused this push was first seen (ms, the push clock), for convergence timing. */
  start: number;
  full: boolean;
  /** Incremental: type URL → the names that changed. Streams watching none of them are skipped. */
  names?: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * Hooks for metrics and status tracking; the protocol layer knows nothing of Prometheus. `id` is the connection id,
 * `version` the response's version_info (SotW) / system_version_info (Delta) or the push request's version.
 */
export interface ProtocolObserver {
  connected?(id: string): void;
  disconnected?(id: string): void;
  sent?(typeUrl: string, resources: number, bytes: number, id: string, version: string | undefined): void;
  acked?(typeUrl: string, sinceStartMs: number | undefined, id: string, version: string | undefined): void;
  nacked?(id: string, typeUrl: string, message: string): void;
  expiredNonce?(typeUrl: string): void;
  /** A push was applied to a stream in full (every watched type answered or found unchanged). */
  pushed?(id: string, sinceStartMs: number, version: string): void;
  error?(id: string, err: unknown): void;
  /** A new stream passed admission (after waiting `waitedMs` for the rate limit; 0 = at once, or no limit). */
  admitted?(waitedMs: number): void;
  /** A new stream was refused by the rate limit (RESOURCE_EXHAUSTED): its wait would have been too long. */
  throttled?(): void;
  /** The number of new streams waiting for admission changed. */
  awaitingAdmission?(waiting: number): void;
}
