/**
 * How the xDS ports bound the load of connecting proxies, with istiod's defaults (checked against istiod's sources and
 * logs; reliability-security.md §2.2):
 * - new streams are admitted at PILOT_MAX_REQUESTS_PER_SECOND, which defaults to min(15 + 5 × cores, 100) since
 *   Istio 1.21 (25 before); a stream waits at most 1 s for a token, then gets RESOURCE_EXHAUSTED;
 * - each connection is closed with a GOAWAY after a maximum age (Helm's keepaliveMaxServerConnectionAge, 30m) plus
 *   a grace for its streams (MaxServerConnectionAgeGrace, 10 s), so connections made during a storm, or while one
 *   replica was alone, spread over the replicas a Service now has (istio#11181). grpc-js adds the ±10 % jitter gRFC A9
 *   asks for, so connections made in the same second do not all come back in the same second.
 */
import type * as grpc from '@grpc/grpc-js';
import os from 'node:os';

export const DEFAULT_MAX_CONNECTION_AGE_MS = 30 * 60_000;
export const DEFAULT_MAX_CONNECTION_AGE_GRACE_MS = 10_000;

/** istiod's default new-stream rate for this machine: min(15 + 5 × cores, 100) per second. */
export function defaultNewStreamRate(cores: number = os.availableParallelism()): number {
  return Math.min(15 + 5 * cores, 100);
}

export interface ConnectionLimits {
  /** 0 = connections live as long as their clients keep them. */
  maxConnectionAgeMs?: number;
  maxConnectionAgeGraceMs?: number;
}

/** gRPC server options for an xDS port: message size and keepalive as istiod, and the connection age. */
export function xdsServerOptions(limits: ConnectionLimits): grpc.ServerOptions {
  const age = limits.maxConnectionAgeMs ?? DEFAULT_MAX_CONNECTION_AGE_MS;
  return {
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    ...(age > 0
      ? {
          'grpc.max_connection_age_ms': age,
          // Without a grace the streams on an aged connection would live on after the GOAWAY: ADS streams never end
          // by themselves, so the connection would never close.
          'grpc.max_connection_age_grace_ms': limits.maxConnectionAgeGraceMs ?? DEFAULT_MAX_CONNECTION_AGE_GRACE_MS,
        }
      : {}),
  };
}
