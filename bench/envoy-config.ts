/**
 * `npm run bench:envoy`: full Envoy sidecar config per proxy at scale, in-process (no network): the bench mesh
 * (bench/mesh-config.ts: 1,000 services, 10 endpoints each, DR + VS per service) and 2,000 sidecars across 5
 * namespaces with 40 distinct app labels, each fetching what Envoy fetches — LDS and CDS wildcard, then the RDS and
 * EDS they name. Reports ms and bytes per proxy (first proxy of a view vs. the rest), and how many distinct views
 * (distinct generated resource sets) were built: the shared-cache rule says that is far fewer than proxies.
 *
 *   npm run bench:envoy -- [--services 1000] [--endpoints-per-service 10] [--proxies 2000] [--proxy-namespaces 5]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { allKinds } from '../src/config/kinds/all.ts';
import { listYamlFiles } from '../src/config/sources/file-source.ts';
import { loadYamlText } from '../src/config/sources/load-file.ts';
import { ConfigStore } from '../src/model/config-store.ts';
import { DEFAULT_MESH } from '../src/model/mesh.ts';
import { PushContext } from '../src/model/push-context.ts';
import { decodeResource } from '../src/proto/encode.ts';
import type { Resource } from '../src/xds/protocol/provider.ts';
import { TypeUrl } from '../src/proto/types.ts';
import { silentLogger } from '../src/shared/log.ts';
import { MeshResourceProvider, type ProxyState } from '../src/xds/mesh-provider.ts';
import { buildServices, namespacesOf, writeMesh } from './mesh-config.ts';
import { dist } from './report.ts';

const { values: flags } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    'endpoints-per-service': { type: 'string', default: '10' },
    proxies: { type: 'string', default: '2000' },
    'proxy-namespaces': { type: 'string', default: '5' },
  },
});
const spec = { services: Number(flags.services), endpointsPerService: Number(flags['endpoints-per-service']), servicesPerNamespace: 20 };
const proxies = Number(flags.proxies);

async function loadMesh(): Promise<ConfigStore> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-bench-envoy-'));
  try {
    writeMesh(dir, buildServices(spec));
    const store = new ConfigStore();
    for (const f of await listYamlFiles(dir)) {
      const loaded = loadYamlText(fs.readFileSync(f, 'utf8'), f, allKinds, { defaultNamespace: 'default', now: () => new Date(0).toISOString() });
      for (const o of loaded.objects) store.upsert(o);
    }
    return store;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function fetch(provider: MeshResourceProvider, state: ProxyState, typeUrl: string, names?: string[]) {
  const set = provider.resources(state, { typeUrl, wildcard: names === undefined, names: new Set(names ?? []), key: names === undefined ? '*' : [...names].sort().join('\n') });
  return set;
}

/** Route names in an LDS response (decoded once per distinct listener bytes). */
const routeNamesOf = new Map<Resource, string[]>();
function routeNames(l: Resource): string[] {
  let names = routeNamesOf.get(l);
  if (!names) {
    const json = decodeResource(TypeUrl.Listener, l.bytes);
    names = [];
    for (const chain of [...(json.filter_chains ?? []), ...(json.default_filter_chain ? [json.default_filter_chain] : [])]) {
      for (const f of chain.filters ?? []) if (f.typed_config?.rds?.route_config_name) names.push(f.typed_config.rds.route_config_name);
    }
    routeNamesOf.set(l, names);
  }
  return names;
}

const t0 = performance.now();
const store = await loadMesh();
const loadMs = performance.now() - t0;
const namespaces = namespacesOf(buildServices(spec)).slice(0, Number(flags['proxy-namespaces']));
const t1 = performance.now();
const provider = new MeshResourceProvider(new PushContext(store.snapshot(), DEFAULT_MESH), silentLogger);
const pushMs = performance.now() - t1;

const perProxyMs: number[] = [];
const perProxyBytes: number[] = [];
const distinct: Record<string, Set<unknown>> = { lds: new Set(), rds: new Set(), cds: new Set(), eds: new Set() };
const firstOfView: number[] = [];
const heap0 = process.memoryUsage().heapUsed;
const started = performance.now();
for (let i = 0; i < proxies; i++) {
  const ns = namespaces[i % namespaces.length]!;
  const app = `app-${i % 40}`;
  const ip = `10.200.${(i >> 8) & 255}.${i & 255}`;
  const state = provider.connect({ cluster: 'bench', id: `sidecar~${ip}~${app}-${i}.${ns}~${ns}.svc.cluster.local`, metadata: { NAMESPACE: ns, LABELS: { app, version: 'v1' }, INTERCEPTION_MODE: 'REDIRECT' } });
  const p0 = performance.now();
  const lds = fetch(provider, state, TypeUrl.Listener);
  const cds = fetch(provider, state, TypeUrl.Cluster);
  const rdsNames = [...new Set([...lds.resources.values()].flatMap(routeNames))];
  const rds = fetch(provider, state, TypeUrl.RouteConfiguration, rdsNames);
  const edsNames = [...cds.resources.keys()].filter((n) => n.startsWith('outbound|'));
  const eds = fetch(provider, state, TypeUrl.ClusterLoadAssignment, edsNames);
  const ms = performance.now() - p0;
  let bytes = 0;
  for (const set of [lds, cds, rds, eds]) for (const r of set.resources.values()) bytes += r.bytes.length;
  const fresh = !distinct.lds!.has(lds) || !distinct.cds!.has(cds);
  distinct.lds!.add(lds);
  distinct.cds!.add(cds);
  distinct.rds!.add(rds.resources.get(rdsNames[0] ?? '') ?? rds);
  distinct.eds!.add(eds.resources.values().next().value ?? eds);
  perProxyMs.push(ms);
  perProxyBytes.push(bytes);
  if (fresh) firstOfView.push(ms);
}
const totalMs = performance.now() - started;
const result = {
  scale: { services: spec.services, endpoints: spec.services * spec.endpointsPerService, proxies, proxyNamespaces: namespaces.length, node: process.version, cores: os.cpus().length },
  loadConfigMs: Math.round(loadMs),
  pushContextMs: Math.round(pushMs),
  allProxiesMs: Math.round(totalMs),
  perProxyMs: dist(perProxyMs),
  firstProxyOfViewMs: dist(firstOfView),
  bytesPerProxy: dist(perProxyBytes),
  distinctViews: Object.fromEntries(Object.entries(distinct).map(([k, v]) => [k, v.size])),
  cache: provider.cacheStats(),
  heapGrowthMB: Math.round((process.memoryUsage().heapUsed - heap0) / 2 ** 20),
  generationErrors: provider.generationErrors,
};
const r = (x: number) => (x >= 100 ? Math.round(x) : Math.round(x * 100) / 100);
console.log(`Envoy sidecar full config — ${spec.services} services, ${spec.services * spec.endpointsPerService} endpoints, ${proxies} proxies in ${namespaces.length} namespaces`);
console.log(`  all proxies                 ${r(totalMs)} ms (push context ${r(pushMs)} ms)`);
console.log(`  per proxy                   p50 ${r(result.perProxyMs.p50)} ms, p99 ${r(result.perProxyMs.p99)} ms, max ${r(result.perProxyMs.max)} ms`);
console.log(`  first proxy of a view       p50 ${r(result.firstProxyOfViewMs.p50)} ms, max ${r(result.firstProxyOfViewMs.max)} ms (${firstOfView.length} views)`);
console.log(`  bytes per proxy             ${Math.round(result.bytesPerProxy.p50 / 1024)} KiB (LDS+RDS+CDS+EDS)`);
console.log(`  distinct views built        LDS ${result.distinctViews.lds}, RDS ${result.distinctViews.rds}, CDS ${result.distinctViews.cds}, EDS ${result.distinctViews.eds} (for ${proxies} proxies)`);
console.log(`  cache                       ${result.cache.entries} keys, ${Math.round(result.cache.bytes / 2 ** 20)} MiB encoded, hit rate ${Math.round((100 * result.cache.hits) / (result.cache.hits + result.cache.misses))}%`);
console.log(`  generation errors           ${result.generationErrors}`);
const dir = path.join(import.meta.dirname, 'results');
fs.mkdirSync(dir, { recursive: true });
const file = path.join(dir, `envoy-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`  results: ${path.relative(process.cwd(), file)}`);
