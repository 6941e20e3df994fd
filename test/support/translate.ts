/**
 * Translation without the network: Istio YAML + a proxy description → the xDS resources mizzen would send, decoded.
 * Used by scenario goldens and the seeds table. Goes through the same provider, cache and encoder as `serve`.
 */
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import type { ConfigError } from '../../src/config/object.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { DEFAULT_MESH } from '../../src/model/mesh.ts';
import { PushContext } from '../../src/model/push-context.ts';
import { decodeResource } from '../../src/proto/encode.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import { silentLogger, createLogger } from '../../src/shared/log.ts';
import { MeshResourceProvider } from '../../src/xds/mesh-provider.ts';

export interface ProxySpec {
  id: string;
  metadata: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  /** Listener names to request; omitted = wildcard. RDS/EDS follow from what LDS/CDS name, as a client would. */
  listeners?: string[];
}

export interface Translation {
  refused: ConfigError[];
  notes: string[];
  lds: Array<Record<string, any>>;
  rds: Array<Record<string, any>>;
  cds: Array<Record<string, any>>;
  eds: Array<Record<string, any>>;
  /** Secrets the control plane serves over ADS (`sds_config.ads`) that listeners and clusters name. */
  sds: Array<Record<string, any>>;
  generationErrors: number;
}

export function translate(yaml: string, proxy: ProxySpec): Translation {
  const loaded = loadYamlText(yaml, 'config.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  const store = new ConfigStore();
  for (const o of loaded.objects) store.upsert(o);
  const provider = new MeshResourceProvider(new PushContext(store.snapshot(), DEFAULT_MESH), process.env.TRANSLATE_LOG ? createLogger({ level: 'warn' }) : silentLogger, () => {}, { verify: true });
  const state = provider.connect({ id: proxy.id, cluster: '', metadata: proxy.metadata, ...(proxy.locality ? { locality: proxy.locality } : {}) });
  const fetch = (typeUrl: string, names: string[] | undefined) => {
    const set = provider.resources(state, { typeUrl, wildcard: names === undefined, names: new Set(names ?? []), key: names === undefined ? '*' : [...names].sort().join('\n') });
    return [...set.resources.values()].map((r) => decodeResource(typeUrl, r.bytes));
  };
  const lds = fetch(TypeUrl.Listener, proxy.listeners);
  const routeNames = [...new Set(lds.flatMap(listenerRouteNames))];
  const rds = routeNames.length > 0 ? fetch(TypeUrl.RouteConfiguration, routeNames) : [];
  const cds = fetch(TypeUrl.Cluster, undefined);
  const eds = fetch(TypeUrl.ClusterLoadAssignment, cds.filter((c: any) => c.type === 'EDS').map((c: any) => c.name));
  const secretNames = new Set<string>();
  const findSecrets = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(findSecrets);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, any>;
      if (typeof o.name === 'string' && o.sds_config?.ads) secretNames.add(o.name);
      Object.values(o).forEach(findSecrets);
    }
  };
  findSecrets([lds, cds]);
  const sds = secretNames.size > 0 ? fetch(TypeUrl.Secret, [...secretNames]) : [];
  return { refused: loaded.errors, notes: provider.currentNotes(), lds, rds, cds, eds, sds, generationErrors: provider.generationErrors };
}

/** RDS names a listener refers to: the api_listener's (proxyless gRPC) or each HCM filter's (Envoy). */
function listenerRouteNames(l: any): string[] {
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

/** An Envoy sidecar in `namespace` with `labels` (as the injector would start it). */
export function sidecarProxy(namespace: string, labels: Record<string, string> = {}, ip = '10.0.0.1'): ProxySpec {
  return {
    id: `sidecar~${ip}~app-0.${namespace}~${namespace}.svc.cluster.local`,
    metadata: { NAMESPACE: namespace, LABELS: labels, INTERCEPTION_MODE: 'REDIRECT' },
  };
}

/** An ingress gateway pod in `namespace`. */
export function routerProxy(namespace = 'istio-system', labels: Record<string, string> = { istio: 'ingressgateway' }, ip = '10.0.0.9'): ProxySpec {
  return {
    id: `router~${ip}~istio-ingressgateway-0.${namespace}~${namespace}.svc.cluster.local`,
    metadata: { NAMESPACE: namespace, LABELS: labels },
  };
}

export function grpcProxy(namespace: string, labels: Record<string, string> = {}, listeners?: string[]): ProxySpec {
  return {
    id: `sidecar~10.0.0.1~client-0.${namespace}~${namespace}.svc.cluster.local`,
    metadata: { GENERATOR: 'grpc', NAMESPACE: namespace, LABELS: labels },
    ...(listeners ? { listeners } : {}),
  };
}
