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

/** Sidecar listeners and the special clusters behind them (istio-xds.md §2.1, §4.1). */
export const VIRTUAL_OUTBOUND_LISTENER = 'virtualOutbound';
export const VIRTUAL_INBOUND_LISTENER = 'virtualInbound';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
export const WILDCARD_ADDRESS = '0.0.0.0';

/** `0.0.0.0_9080`, `10.96.0.5_3306` (gateway.go getListenerName). */
export function listenerName(bind: string, port: number): string {
  return `${bind}_${port}`;
}

export function parseListenerName(name: string): { bind: string; port: number } | undefined {
  const i = name.lastIndexOf('_');
  if (i <= 0) return undefined;
  const port = Number(name.slice(i + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { bind: name.slice(0, i), port };
}

/** `inbound|8080||`: the cluster a sidecar forwards inbound traffic for a workload port to. */
export function inboundClusterName(port: number): string {
  return clusterName('inbound', port, '', '');
}

/** Gateway route config names (istio-xds.md §3.1): `http.8080`, `https.443.https.my-gw.istio-system`. */
export function gatewayHttpRouteName(port: number): string {
  return `http.${port}`;
}

export function gatewayHttpsRouteName(port: number, portName: string, gateway: string, gatewayNamespace: string): string {
  return `https.${port}.${portName}.${gateway}.${gatewayNamespace}`;
}

/** SNI of an Istio mTLS upstream connection: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`. */
export function istioSni(port: number, subset: string, host: string): string {
  return `outbound_.${port}_.${subset}_.${host}`;
}

/**
 * `name` → `<ns>/name`, `./name` → `<ns>/name`, legacy `name.ns.svc.cluster.local` → `ns/name`; `mesh` and `ns/name`
 * unchanged (istiod resolveGatewayName), so resolving twice is harmless.
 */
export function resolveGatewayName(gateway: string, namespace: string): string {
  if (gateway === MESH_GATEWAY) return gateway;
  const slash = gateway.indexOf('/');
  if (slash >= 0) return gateway.slice(0, slash) === '.' ? `${namespace}/${gateway.slice(slash + 1)}` : gateway;
  const dot = gateway.indexOf('.');
  if (dot < 0) return `${namespace}/${gateway}`;
  const rest = gateway.slice(dot + 1);
  const next = rest.indexOf('.');
  return `${next < 0 ? rest : rest.slice(0, next)}/${gateway.slice(0, dot)}`;
}
