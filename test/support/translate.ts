/**
 * Translation without the network: Istio YAML + a proxy description → the xDS resources mizzen would send, decoded.
 * Used by scenario goldens and the seeds table: the app's offline translation (same provider, cache and encoder as
 * `serve`), with every resource checked against Envoy's schema.
 */
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import type { ConfigError } from '../../src/config/object.ts';
import { createLogger } from '../../src/shared/log.ts';
import { translateOffline } from '../../src/app/offline-translate.ts';

export interface ProxySpec {
  id: string;
  metadata: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  /** Listener names to request; omitted = wildcard. RDS/EDS follow from what LDS/CDS name, as a client would. */
  listeners?: string[];
  /** As on the plaintext port: the node's claims are not proven (default: proven, as on the secure port). */
  unverified?: boolean;
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
  const node = { id: proxy.id, cluster: '', metadata: proxy.metadata, ...(proxy.locality ? { locality: proxy.locality } : {}) };
  const t = translateOffline(loaded.objects, node, {
    verify: true,
    trustClaims: !proxy.unverified,
    ...(proxy.listeners ? { listeners: proxy.listeners } : {}),
    ...(process.env.TRANSLATE_LOG ? { log: createLogger({ level: 'warn' }) } : {}),
  });
  return { refused: loaded.errors, notes: t.notes, lds: t.listeners, rds: t.routes, cds: t.clusters, eds: t.endpoints, sds: t.secrets, generationErrors: t.generationErrors };
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
