/**
 * `serve --inject-dir DIR`: the injector settings of an installed control plane, from the `istio-sidecar-injector`
 * ConfigMap mounted as files (istiod reads /var/lib/istio/inject/{values,config}): `values` is the chart's values as
 * JSON (global.hub/tag/proxy.*, revision, …), `config` the injection policy and selectors. Without this the webhook
 * would inject default image names and control-plane addresses that do not exist in the cluster.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { InjectorConfigInput, InjectorValues, ProxyConfigJson } from '../webhook/injector-config.ts';
import type { LabelSelector } from '../webhook/kube-types.ts';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Istio's image naming: a full reference is used as is, a bare name gets `<hub>/<name>:<tag>`. */
function image(name: string | undefined, hub: string | undefined, tag: string | undefined): string | undefined {
  if (!name) return undefined;
  if (name.includes('/') || name.includes(':') || !hub) return name;
  return `${hub}/${name}${tag ? `:${tag}` : ''}`;
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * `discoveryAddress` is the mesh's control-plane address for proxies (`mizzen.istio-system.svc:15012`): the CA is
 * there too, and proxyless gRPC reaches plaintext xDS on the same host at 15010.
 */
export function injectorInput(valuesJson: string | undefined, configYaml: string | undefined, meshDefaultConfig: ProxyConfigJson | undefined): InjectorConfigInput {
  const values = rec(valuesJson ? JSON.parse(valuesJson) : {});
  const config = rec(configYaml ? parseYaml(configYaml, { logLevel: 'error' }) : {});
  const g = rec(values.global);
  const proxy = rec(g.proxy);
  const proxyInit = rec(g.proxy_init);
  const hub = str(g.hub);
  const tag = g.tag === undefined ? undefined : String(g.tag);
  const proxyImage = image(str(proxy.image), hub, tag);
  const discovery = str(meshDefaultConfig?.discoveryAddress);
  const host = discovery?.replace(/:\d+$/, '');
  const v: Partial<InjectorValues> = {
    ...(proxyImage ? { proxyImage } : {}),
    ...((image(str(proxyInit.image), hub, tag) ?? proxyImage) ? { proxyInitImage: image(str(proxyInit.image), hub, tag) ?? proxyImage } : {}),
    ...(str(g.imagePullPolicy) ? { imagePullPolicy: str(g.imagePullPolicy) } : {}),
    ...(Array.isArray(g.imagePullSecrets) ? { imagePullSecrets: g.imagePullSecrets.map(String) } : {}),
    ...(str(proxy.clusterDomain) ? { clusterDomain: str(proxy.clusterDomain) } : {}),
    ...(str(rec(g.multiCluster).clusterName) ? { clusterId: str(rec(g.multiCluster).clusterName) } : {}),
    ...(str(g.network) ? { network: str(g.network) } : {}),
    ...((str(g.istioNamespace) ?? str(values.istioNamespace)) ? { istioNamespace: str(g.istioNamespace) ?? str(values.istioNamespace) } : {}),
    ...((str(g.caAddress) ?? discovery) ? { caAddress: str(g.caAddress) ?? discovery } : {}),
    ...(host ? { xdsAddress: `${host}:15010` } : {}),
    ...(str(proxy.logLevel) ? { logLevel: str(proxy.logLevel) } : {}),
    ...(str(proxy.componentLogLevel) ? { componentLogLevel: str(proxy.componentLogLevel) } : {}),
    ...(typeof proxy.includeIPRanges === 'string' ? { includeIPRanges: proxy.includeIPRanges } : {}),
    ...(typeof proxy.excludeIPRanges === 'string' ? { excludeIPRanges: proxy.excludeIPRanges } : {}),
    ...(typeof proxy.excludeInboundPorts === 'string' ? { excludeInboundPorts: proxy.excludeInboundPorts } : {}),
    ...(typeof proxy.privileged === 'boolean' ? { privileged: proxy.privileged } : {}),
    ...(typeof proxy.holdApplicationUntilProxyStarts === 'boolean' ? { holdApplicationUntilProxyStarts: proxy.holdApplicationUntilProxyStarts } : {}),
    ...(isRecord(proxy.resources) ? { resources: proxy.resources as InjectorValues['resources'] } : {}),
  };
  const selectors = (x: unknown): LabelSelector[] | undefined => (Array.isArray(x) ? (x as LabelSelector[]) : undefined);
  const revision = str(values.revision);
  return {
    ...(revision ? { revision } : {}),
    ...(str(config.policy) ? { policy: str(config.policy) } : {}),
    ...(selectors(config.alwaysInjectSelector) ? { alwaysInjectSelector: selectors(config.alwaysInjectSelector) } : {}),
    ...(selectors(config.neverInjectSelector) ? { neverInjectSelector: selectors(config.neverInjectSelector) } : {}),
    ...(isRecord(config.injectedAnnotations) ? { injectedAnnotations: config.injectedAnnotations as Record<string, string> } : {}),
    ...(Array.isArray(config.defaultTemplates) ? { defaultTemplates: config.defaultTemplates.map(String) } : {}),
    ...(typeof rec(values.sidecarInjectorWebhook).enableNamespacesByDefault === 'boolean' ? { enableNamespacesByDefault: rec(values.sidecarInjectorWebhook).enableNamespacesByDefault as boolean } : {}),
    values: v,
  };
}

export function readInjectorDir(dir: string, meshDefaultConfig: ProxyConfigJson | undefined): InjectorConfigInput {
  const values = readIfExists(path.join(dir, 'values'));
  const config = readIfExists(path.join(dir, 'config'));
  if (values === undefined && config === undefined) throw new Error(`injector config ${dir}: neither "values" nor "config" found`);
  try {
    return injectorInput(values, config, meshDefaultConfig);
  } catch (err) {
    throw new Error(`injector config ${dir}: ${(err as Error).message}`);
  }
}
