/**
 * Envoy resource names, in istiod's exact formats (istio-xds.md §3.1, §4.1; injection-and-proxyless.md B4).
 * Everything that names a cluster, route or listener goes through here.
 */
export type TrafficDirection = 'outbound' | 'inbound';

export interface ClusterKey {
  direction: TrafficDirection;
  port: number;
  subset: string;
  host: string;
}

/** `outbound|9080|v1|reviews.default.svc.cluster.local`, `inbound|8080||`. */
export function clusterName(direction: TrafficDirection, port: number, subset: string, host: string): string {
  return `${direction}|${port}|${subset}|${host}`;
}

export function parseClusterName(name: string): ClusterKey | undefined {
  const parts = name.split('|');
  if (parts.length !== 4) return undefined;
  const [direction, port, subset, host] = parts as [string, string, string, string];
  if (direction !== 'outbound' && direction !== 'inbound') return undefined;
  const p = Number(port);
  if (!Number.isInteger(p) || p <= 0 || p > 65535) return undefined;
  return { direction, port: p, subset, host };
}

/** `host:port`, bracketing IPv6 literals (Go's net.JoinHostPort). */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function splitHostPort(s: string): { host: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { host: v6[1] as string, ...(v6[2] ? { port: Number(v6[2]) } : {}) };
  const i = s.lastIndexOf(':');
  if (i > 0 && /^\d+$/.test(s.slice(i + 1))) return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
  return { host: s };
}

/** The listener-name template a proxyless gRPC server fills in with its `ip:port` (gRFC A36, Istio's grpc bootstrap). */
export const GRPC_INBOUND_LISTENER_PREFIX = 'xds.istio.io/grpc/lds/inbound/';

export const MESH_GATEWAY = 'mesh';
