/**
 * Translation without a server: config objects + a proxy's node → the resources `serve` would send it, fetched the way
 * a client fetches (LDS and CDS wildcard, then the RDS, EDS and SDS names those refer to), decoded to proto3 JSON.
 * Goes through the same provider, cache and encoder as `serve`. Used by `mizzen proxy-config --config` and by tests.
 */
import type { ConfigObject } from '../config/object.ts';
import { ConfigStore } from '../model/config-store.ts';
import { DEFAULT_MESH, type MeshConfig } from '../model/mesh.ts';
import { parseProxy } from '../model/proxy.ts';
import { PushContext } from '../model/push-context.ts';
import { decodeResource } from '../proto/encode.ts';
import { TypeUrl } from '../proto/types.ts';
import { silentLogger, type Logger } from '../shared/log.ts';
import { MeshResourceProvider } from '../xds/mesh-provider.ts';
import type { NodeInfo } from '../xds/protocol/messages.ts';

export type { NodeInfo };

type Resource = Record<string, any>;

export interface OfflineTranslation {
  listeners: Resource[];
  routes: Resource[];
  clusters: Resource[];
  endpoints: Resource[];
  secrets: Resource[];
  /** Features left out for this proxy type (as /debug/push_status lists them). */
  notes: string[];
  /** Resources that failed to generate (bugs), left out. */
  generationErrors: number;
}

export interface OfflineOptions {
  mesh?: MeshConfig;
  /** Check every resource against Envoy's schema (tests). */
  verify?: boolean;
  /** Treat the node's claimed namespace and account as proven (what the proxy would see on the secure port). */
  trustClaims?: boolean;
  log?: Logger;
}

/** Thrown when the node is refused (malformed id, no namespace, …). */
export class ProxyRefused extends Error {}

/** The RDS names a listener refers to: each HCM filter's (Envoy) or the api_listener's (proxyless gRPC). */
export function listenerRouteNames(l: Resource): string[] {
  const out: string[] = [];
  const api = l.api_listener?.api_listener?.rds?.route_config_name;
  if (api) out.push(api);
  for (const chain of [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])]) {
    for (const f of chain.filters ?? []) {
      const rds = f.typed_config?.rds?.route_config_name;
      if (rds) out.push(rds);
    }
  }
  return out;
}

/** Secret names served over ADS (`sds_config.ads`) that the given resources refer to. */
export function adsSecretNames(resources: unknown): string[] {
  const names = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Resource;
      if (typeof o.name === 'string' && o.sds_config?.ads) names.add(o.name);
      Object.values(o).forEach(walk);
    }
  };
  walk(resources);
  return [...names].sort();
}

/** `listeners`: names to request instead of the LDS wildcard (proxyless clients name theirs). */
export function translateOffline(objects: Iterable<ConfigObject>, node: NodeInfo, o: OfflineOptions & { listeners?: string[] } = {}): OfflineTranslation {
  const store = new ConfigStore();
  for (const obj of objects) store.upsert(obj);
  const provider = new MeshResourceProvider(new PushContext(store.snapshot(), o.mesh ?? DEFAULT_MESH), o.log ?? silentLogger, () => {}, { verify: o.verify ?? false });
  let state;
  try {
    const claims = o.trustClaims ? parseProxy(node) : undefined;
    const authenticated = claims?.ok ? { namespace: claims.value.namespace, serviceAccount: claims.value.serviceAccount ?? 'default' } : undefined;
    state = provider.connect(node, 'offline', authenticated);
  } catch (err) {
    throw new ProxyRefused(`the proxy is refused: ${err instanceof Error ? err.message : String(err)}`);
  }
  const fetchType = (typeUrl: string, names: string[] | undefined) => {
    const set = provider.resources(state, { typeUrl, wildcard: names === undefined, names: new Set(names ?? []), key: names === undefined ? '*' : [...names].sort().join('\n') });
    return [...set.resources.values()].map((r) => decodeResource(typeUrl, r.bytes));
  };
  const listeners = fetchType(TypeUrl.Listener, o.listeners);
  const routeNames = [...new Set(listeners.flatMap(listenerRouteNames))];
  const routes = routeNames.length > 0 ? fetchType(TypeUrl.RouteConfiguration, routeNames) : [];
  const clusters = fetchType(TypeUrl.Cluster, undefined);
  const endpoints = fetchType(TypeUrl.ClusterLoadAssignment, clusters.filter((c) => c.type === 'EDS').map((c) => String(c.name)));
  const secretNames = adsSecretNames([listeners, clusters]);
  const secrets = secretNames.length > 0 ? fetchType(TypeUrl.Secret, secretNames) : [];
  return { listeners, routes, clusters, endpoints, secrets, notes: provider.currentNotes(), generationErrors: provider.generationErrors };
}
