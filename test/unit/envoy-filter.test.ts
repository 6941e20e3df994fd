import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { allKinds } from '../../src/config/kinds/all.ts';
import type { EnvoyFilterSpec } from '../../src/config/kinds/envoy-filter.ts';
import type { ConfigObject } from '../../src/config/object.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import type { Proxy } from '../../src/model/proxy.ts';
import { RecordingView } from '../../src/model/proxy-view.ts';
import { decodeResource, encodeResource } from '../../src/proto/encode.ts';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import {
  addedClusters,
  addedListeners,
  applyClusterPatches,
  applyListenerPatches,
  applyRouteConfigPatches,
  convertPatchValue,
  envoyFiltersFor,
  patchCluster,
  patchListener,
  SIDECAR_CLUSTERS,
  SIDECAR_LISTENERS,
  type Json,
  type SelectedPatches,
} from '../../src/xds/envoy-filter/index.ts';

const seedsDir = path.resolve(import.meta.dirname, '../../../shared/fixtures/seeds');
const ROOT = 'istio-system';

// ---- config -------------------------------------------------------------------------------------------------------

function load(yaml: string): ConfigObject<EnvoyFilterSpec>[] {
  const r = loadYamlText(yaml, 'x.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  expect(r.errors.flatMap((e) => e.errors.map((x) => `${x.path}: ${x.message}`))).toEqual([]);
  return r.objects as ConfigObject<EnvoyFilterSpec>[];
}

const seed = (file: string) => load(readFileSync(path.join(seedsDir, file), 'utf8'));

/** One EnvoyFilter through the real kind parser. */
function envoyFilter(spec: Json, o: { name?: string; ns?: string; created?: string } = {}): ConfigObject<EnvoyFilterSpec> {
  const metadata = { name: o.name ?? 'ef', namespace: o.ns ?? ROOT, ...(o.created ? { creationTimestamp: o.created } : {}) };
  // Quoted strings: YAML 1.1 would read an unquoted creationTimestamp as a date, which the kind parser ignores.
  const [obj] = load(stringify({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata, spec }, { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' }));
  return obj as ConfigObject<EnvoyFilterSpec>;
}

/** One configPatch. */
const cp = (applyTo: string, match: Json | undefined, operation: string, value?: Json) => ({
  applyTo,
  ...(match ? { match } : {}),
  patch: { operation, ...(value ? { value } : {}) },
});

const patchesOf = (...configPatches: Json[]) => [envoyFilter({ configPatches })];

function proxy(o: { type?: 'sidecar' | 'router'; ns?: string; labels?: Record<string, string>; metadata?: Record<string, unknown> } = {}): Proxy {
  const ns = o.ns ?? 'bookinfo';
  return {
    type: o.type ?? 'sidecar',
    id: `pod.${ns}`,
    nodeId: `${o.type ?? 'sidecar'}~10.0.0.1~pod.${ns}~${ns}.svc.cluster.local`,
    ipAddresses: ['10.0.0.1'],
    dnsDomain: `${ns}.svc.cluster.local`,
    namespace: ns,
    labels: o.labels ?? { app: 'productpage' },
    metadata: o.metadata ?? {},
    locality: '',
    clusterId: 'Kubernetes',
  };
}

function select(filters: ConfigObject<EnvoyFilterSpec>[], p: Proxy = proxy()): { patches: SelectedPatches; notes: string[]; view: RecordingView } {
  const notes: string[] = [];
  const view = new RecordingView(p);
  const patches = envoyFiltersFor(filters, {
    view,
    istioVersion: () => (typeof p.metadata.ISTIO_VERSION === 'string' ? p.metadata.ISTIO_VERSION : undefined),
    metadata: (k) => p.metadata[k],
  }, ROOT, (m) => notes.push(m));
  return { patches, notes, view };
}

// ---- generated resources (builder JSON, as the generators produce it) -----------------------------------------------

const HCM = 'envoy.filters.network.http_connection_manager';
const HCM_URL = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const typed = (name: string, fields: Json = {}) => ({ '@type': `type.googleapis.com/${name}`, ...fields });
const FAULT = { name: 'envoy.filters.http.fault', typed_config: typed('envoy.extensions.filters.http.fault.v3.HTTPFault') };
const ROUTER = { name: 'envoy.filters.http.router', typed_config: typed('envoy.extensions.filters.http.router.v3.Router') };
const ads = { ads: {}, resource_api_version: 'V3' };

function hcm(statPrefix: string, routes: Json): Json {
  return { name: HCM, typed_config: { '@type': HCM_URL, stat_prefix: statPrefix, ...routes, http_filters: [FAULT, ROUTER] } };
}

const tcpProxy = (cluster: string) => ({
  name: 'envoy.filters.network.tcp_proxy',
  typed_config: typed('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: cluster, cluster }),
});

const route = (name: string, cluster: string) => ({ name, match: { prefix: '/' }, route: { cluster } });

const inboundRoutes = (): Json => ({
  name: 'inbound|9080||',
  virtual_hosts: [{ name: 'inbound|http|9080', domains: ['*'], routes: [route('default', 'inbound|9080||')] }],
});

const listenerFilter = (short: string, type: string) => ({
  name: `envoy.filters.listener.${short}`,
  typed_config: typed(`envoy.extensions.filters.listener.${short}.v3.${type}`),
});

function virtualInbound(): Json {
  return {
    name: 'virtualInbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
    traffic_direction: 'INBOUND',
    use_original_dst: { value: true },
    listener_filters: [listenerFilter('original_dst', 'OriginalDst'), listenerFilter('tls_inspector', 'TlsInspector'), listenerFilter('http_inspector', 'HttpInspector')],
    filter_chains: [
      {
        name: '0.0.0.0_9080',
        filter_chain_match: { destination_port: { value: 9080 }, transport_protocol: 'raw_buffer', application_protocols: ['http/1.1', 'h2c'] },
        filters: [hcm('inbound_0.0.0.0_9080', { route_config: inboundRoutes() })],
      },
      { name: '0.0.0.0_3306', filter_chain_match: { destination_port: { value: 3306 } }, filters: [tcpProxy('inbound|3306||')] },
    ],
  };
}

function virtualOutbound(): Json {
  return {
    name: 'virtualOutbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
    use_original_dst: { value: true },
    filter_chains: [{ name: 'virtualOutbound-catchall-tcp', filters: [tcpProxy('PassthroughCluster')] }],
  };
}

function outbound9080(): Json {
  return {
    name: '0.0.0.0_9080',
    address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
    traffic_direction: 'OUTBOUND',
    bind_to_port: { value: false },
    filter_chains: [{ filters: [hcm('outbound_0.0.0.0_9080', { rds: { config_source: ads, route_config_name: '9080' } })] }],
  };
}

function outboundTcp(): Json {
  return {
    name: '10.96.0.5_3306',
    address: { socket_address: { address: '10.96.0.5', port_value: 3306 } },
    traffic_direction: 'OUTBOUND',
    bind_to_port: { value: false },
    filter_chains: [{ filters: [tcpProxy('outbound|3306||mysql.db.svc.cluster.local')] }],
  };
}

function gateway8080(): Json {
  return {
    name: '0.0.0.0_8080',
    address: { socket_address: { address: '0.0.0.0', port_value: 8080 } },
    filter_chains: [{ filters: [hcm('outbound_0.0.0.0_8080', { rds: { config_source: ads, route_config_name: 'http.8080' } })] }],
  };
}

const sidecarListeners = () => [virtualOutbound(), outbound9080(), outboundTcp(), virtualInbound()];

function routeConfig9080(): Json {
  return {
    name: '9080',
    virtual_hosts: [
      {
        name: 'reviews.default.svc.cluster.local:9080',
        domains: ['reviews.default.svc.cluster.local', 'reviews', 'reviews:9080'],
        routes: [
          route('v2-route', 'outbound|9080|v2|reviews.default.svc.cluster.local'),
          { name: 'legacy', match: { prefix: '/legacy' }, direct_response: { status: 410 } },
          route('default', 'outbound|9080|v1|reviews.default.svc.cluster.local'),
        ],
      },
      { name: 'allow_any', domains: ['*'], routes: [route('allow_any', 'PassthroughCluster')] },
    ],
  };
}

function cluster(name: string, extra: Json = {}): Json {
  return { name, type: 'EDS', eds_cluster_config: { service_name: name, eds_config: ads }, connect_timeout: { seconds: 10, nanos: 0 }, ...extra };
}

const clusters = () => [
  cluster('outbound|9080|v1|reviews.default.svc.cluster.local'),
  cluster('outbound|9080|v2|reviews.default.svc.cluster.local'),
  cluster('outbound|9080||ratings.default.svc.cluster.local'),
  { name: 'inbound|9080||', type: 'STATIC', connect_timeout: { seconds: 10, nanos: 0 } },
];

// ---- helpers ------------------------------------------------------------------------------------------------------

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

const byName = (ls: Json[], name: string) => ls.find((l) => l.name === name) as any;
const httpFilterNames = (l: any, chain = 0) => (l.filter_chains[chain].filters[0].typed_config.http_filters as Json[]).map((f) => f.name);
const filterNames = (l: any, chain = 0) => (l.filter_chains[chain].filters as Json[]).map((f) => f.name);

/** Encodes with protobufjs (as the server does), decodes, and runs the strict proto + PGV checker. */
function roundTrip(typeUrl: string, message: string, resources: Json[]): Array<Record<string, any>> {
  return resources.map((r) => {
    expect(checkEnvoyResource(message, r)).toEqual([]);
    return decodeResource(typeUrl, encodeResource(typeUrl, String(r.name), r).bytes);
  });
}
const listenersRoundTrip = (ls: Json[]) => roundTrip(TypeUrl.Listener, 'envoy.config.listener.v3.Listener', ls);

function patchListeners(filters: ConfigObject<EnvoyFilterSpec>[], listeners: Json[], ctx: Parameters<typeof applyListenerPatches>[1] = SIDECAR_LISTENERS, p?: Proxy) {
  const { patches, notes } = select(filters, p);
  deepFreeze(listeners);
  const out = applyListenerPatches(listeners, ctx, patches, (m) => notes.push(m));
  return { out, notes };
}

// ---- the user's two examples --------------------------------------------------------------------------------------

describe('seed 039: rate limit filter for sidecar inbound', () => {
  const filters = seed('039-s002-envoyfilter-filter-ratelimit.yaml');

  it('inserts envoy.filters.http.ratelimit at the head of every inbound HCM, and nowhere else', () => {
    const input = sidecarListeners();
    const before = structuredClone(input);
    const { out, notes } = patchListeners(filters, input);
    expect(notes).toEqual([]);
    const vi = byName(out, 'virtualInbound');
    // No subFilter: INSERT_BEFORE inserts at the head (istiod: "insert before without a filter match is same as insert in the beginning").
    expect(httpFilterNames(vi, 0)).toEqual(['envoy.filters.http.ratelimit', 'envoy.filters.http.fault', 'envoy.filters.http.router']);
    expect(filterNames(vi, 1)).toEqual(['envoy.filters.network.tcp_proxy']);
    // Outbound listeners are SIDECAR_OUTBOUND: untouched, and returned as the very same objects.
    expect(byName(out, '0.0.0.0_9080')).toBe(input[1]);
    expect(byName(out, 'virtualOutbound')).toBe(input[0]);
    expect(input).toEqual(before);
    const inserted = vi.filter_chains[0].filters[0].typed_config.http_filters[0];
    expect(inserted).toEqual({
      name: 'envoy.filters.http.ratelimit',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit',
        domain: 'productpage-ratelimit',
        rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: 'rate_limit_cluster' } }, transport_api_version: 'V3' },
      },
    });
    const [decoded] = listenersRoundTrip([vi]);
    const rl = decoded!.filter_chains[0].filters[0].typed_config.http_filters[0];
    expect(rl.typed_config.rate_limit_service.grpc_service.envoy_grpc.cluster_name).toBe('rate_limit_cluster');
  });

  it('applies to every workload in every namespace (root namespace, no selector), but not to gateways', () => {
    expect(select(filters, proxy({ ns: 'other', labels: {} })).patches.get('HTTP_FILTER')).toHaveLength(1);
    const gw = [gateway8080()];
    const { out } = patchListeners(filters, gw, 'GATEWAY', proxy({ type: 'router', ns: ROOT, labels: { istio: 'ingressgateway' } }));
    expect(out[0]).toBe(gw[0]);
  });
});

describe('seed 050: local rate limit on the ingress gateway', () => {
  const filters = seed('050-s003-envoyfilter-rate-limit.yaml');
  const gatewayProxy = proxy({ type: 'router', ns: ROOT, labels: { istio: 'ingressgateway', app: 'istio-ingressgateway' } });

  it('inserts the TypedStruct local_ratelimit filter right before the router', () => {
    const { out, notes } = patchListeners(filters, [gateway8080()], 'GATEWAY', gatewayProxy);
    expect(notes).toEqual([]);
    expect(httpFilterNames(out[0])).toEqual(['envoy.filters.http.fault', 'envoy.filters.http.local_ratelimit', 'envoy.filters.http.router']);
    const inserted = (out[0] as any).filter_chains[0].filters[0].typed_config.http_filters[1];
    expect(inserted.typed_config['@type']).toBe('type.googleapis.com/udpa.type.v1.TypedStruct');
    expect(inserted.typed_config.type_url).toBe('type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit');
    const [decoded] = listenersRoundTrip(out);
    const ts = decoded!.filter_chains[0].filters[0].typed_config.http_filters[1].typed_config;
    expect(ts.value.token_bucket).toEqual({ max_tokens: 1000, tokens_per_fill: 100, fill_interval: '1s' });
    expect(ts.value.response_headers_to_add[0].header).toEqual({ key: 'x-rate-limit-limit', value: '1000' });
  });

  it('selects only workloads labelled istio=ingressgateway, recording the selector read', () => {
    const { patches, view } = select(filters, proxy({ ns: ROOT, labels: { app: 'productpage' } }));
    expect(patches.size).toBe(0);
    expect([...view.reads.keys()]).toContain('sel:{"istio":"ingressgateway"}');
    expect(select(filters, gatewayProxy).patches.get('HTTP_FILTER')).toHaveLength(1);
  });

  it('is GATEWAY-only: a sidecar carrying the label is not patched', () => {
    const input = sidecarListeners();
    const { out } = patchListeners(filters, input, SIDECAR_LISTENERS, proxy({ ns: 'bookinfo', labels: { istio: 'ingressgateway' } }));
    out.forEach((l, i) => expect(l).toBe(input[i]));
  });
});

// ---- patch values -------------------------------------------------------------------------------------------------

describe('patch values: proto3 JSON → builder JSON', () => {
  it('takes proto and JSON field names, string durations, plain wrappers, enum names, Structs and Anys', () => {
    const r = convertPatchValue('CLUSTER', {
      name: 'x',
      connectTimeout: '3.5s',
      per_connection_buffer_limit_bytes: 1024,
      lb_policy: 'RING_HASH',
      respect_dns_ttl: false, // implicit presence, zero: dropped (proto3 canonical form)
      common_lb_config: { healthy_panic_threshold: { value: 10 } }, // envoy.type.v3.Percent, a message, not a wrapper
      metadata: { filter_metadata: { istio: { owner: 'team-a', weight: 2 } } },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 100 } },
        },
      },
    });
    expect(r).toEqual({
      ok: true,
      value: {
        name: 'x',
        connect_timeout: { seconds: 3, nanos: 500_000_000 },
        per_connection_buffer_limit_bytes: { value: 1024 },
        lb_policy: 'RING_HASH',
        common_lb_config: { healthy_panic_threshold: { value: 10 } },
        metadata: { filter_metadata: { istio: { fields: { owner: { stringValue: 'team-a' }, weight: { numberValue: 2 } } } } },
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: { max_concurrent_streams: { value: 100 } } },
          },
        },
      },
    });
    if (!r.ok) return;
    const [decoded] = roundTrip(TypeUrl.Cluster, 'envoy.config.cluster.v3.Cluster', [{ ...r.value, type: 'STATIC' }]);
    expect(decoded!.connect_timeout).toBe('3.500s');
    expect(decoded!.metadata.filter_metadata.istio).toEqual({ owner: 'team-a', weight: 2 });
  });

  it.each([
    [{ name: 'x', conect_timeout: '1s' }, 'patch.value.conect_timeout: unknown field "conect_timeout" in envoy.config.cluster.v3.Cluster'],
    [{ name: 'x', connect_timeout: 3 }, 'patch.value.connect_timeout: expected a duration like "1s"'],
    [{ name: 'x', per_connection_buffer_limit_bytes: { value: 5 } }, 'expected a plain value for google.protobuf.UInt32Value'],
    [{ name: 'x', lb_policy: 'FASTEST' }, 'unknown value "FASTEST" for enum envoy.config.cluster.v3.Cluster.LbPolicy'],
    [{ name: 'x', type: 'EDS', cluster_type: { name: 'y' } }, 'patch.value.cluster_type: type and cluster_type are both set'],
    [{ name: 7 }, 'patch.value.name: expected a string, got number 7'],
    [{ name: 'x', dns_refresh_rate: '1m' }, 'expected a duration'],
  ])('refuses %j', (value, error) => {
    const r = convertPatchValue('CLUSTER', value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(error);
  });

  it('checks Any types, and a TypedStruct’s inner type and value', () => {
    const filter = (typed_config: Json) => convertPatchValue('HTTP_FILTER', { name: 'f', typed_config });
    expect(filter({ '@type': 'type.googleapis.com/envoy.config.filter.http.lua.v2.Lua', inlineCode: 'x' })).toEqual({
      ok: false,
      error: 'patch.value.typed_config.@type: envoy.config.filter.http.lua.v2.Lua is an Envoy v2 API type, which Envoy no longer accepts; use its v3 type',
    });
    expect(filter({ '@type': 'type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope' })).toEqual({
      ok: false,
      error: 'patch.value.typed_config.@type: unknown message type envoy.extensions.filters.http.nope.v3.Nope',
    });
    const ts = (type_url: string, value: Json) => filter({ '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url, value });
    expect(ts('type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope', {})).toMatchObject({ ok: false, error: expect.stringContaining('unknown message type envoy.extensions.filters.http.nope.v3.Nope') });
    expect(ts('type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', { stat_prefix: 'x', token_bukket: {} })).toMatchObject({
      ok: false,
      error: expect.stringContaining('patch.value.typed_config.value.token_bukket: unknown field "token_bukket"'),
    });
    // camelCase inside a TypedStruct is fine: Envoy parses it as proto3 JSON.
    expect(ts('type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', { statPrefix: 'x' }).ok).toBe(true);
  });
});

// ---- selection ----------------------------------------------------------------------------------------------------

const bufferFilter = (name: string) => ({
  name,
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer', max_request_bytes: 1024 },
});
const addHttpFilter = (name: string) => cp('HTTP_FILTER', { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: HCM } } } }, 'ADD', bufferFilter(name));

describe('selection and order', () => {
  it('orders by priority, then root namespace first, then creation time, then name', () => {
    const filters = [
      envoyFilter({ configPatches: [addHttpFilter('root-late')] }, { name: 'a', created: '2026-01-02T00:00:00Z' }),
      envoyFilter({ priority: -1, configPatches: [addHttpFilter('local-early')] }, { name: 'b', ns: 'bookinfo' }),
      envoyFilter({ priority: 10, configPatches: [addHttpFilter('root-last')] }, { name: 'c' }),
      envoyFilter({ configPatches: [addHttpFilter('root-first')] }, { name: 'd', created: '2025-12-01T00:00:00Z' }),
      envoyFilter({ configPatches: [addHttpFilter('local-0')] }, { name: 'e', ns: 'bookinfo', created: '2025-01-01T00:00:00Z' }),
      envoyFilter({ configPatches: [addHttpFilter('elsewhere')] }, { name: 'f', ns: 'other' }),
    ];
    const { out, notes } = patchListeners(filters, [virtualInbound()]);
    expect(notes).toEqual([]);
    expect(httpFilterNames(out[0])).toEqual([
      'envoy.filters.http.fault', 'envoy.filters.http.router', 'local-early', 'root-first', 'root-late', 'local-0', 'root-last',
    ]);
    listenersRoundTrip(out);
  });

  it('matches proxyVersion (a regex on ISTIO_VERSION) and node metadata', () => {
    const filters = patchesOf(
      { ...addHttpFilter('v122'), match: { ...addHttpFilter('').match, proxy: { proxyVersion: '^1\\.22.*' } } },
      { ...addHttpFilter('v121'), match: { ...addHttpFilter('').match, proxy: { proxyVersion: '^1\\.21.*' } } },
      { ...addHttpFilter('edge'), match: { ...addHttpFilter('').match, proxy: { metadata: { ROLE: 'edge' } } } },
    );
    const names = (md: Record<string, unknown>) => (select(filters, proxy({ metadata: md })).patches.get('HTTP_FILTER') ?? []).map((p) => p.value?.name);
    expect(names({ ISTIO_VERSION: '1.22.3', ROLE: 'edge' })).toEqual(['v122', 'edge']);
    expect(names({ ISTIO_VERSION: '1.21.0', ROLE: 'core' })).toEqual(['v121']);
    expect(names({})).toEqual([]); // no version: a proxyVersion match fails (istiod)
  });

  it('never selects a targetRefs filter for a sidecar or gateway, and says so', () => {
    const filters = [envoyFilter({ targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'gw' }], configPatches: [addHttpFilter('x')] }, { ns: 'bookinfo', name: 'tr' })];
    const { patches, notes } = select(filters);
    expect(patches.size).toBe(0);
    expect(notes).toEqual(['EnvoyFilter bookinfo/tr: targetRefs never selects a sidecar or gateway (as in Istio); not applied']);
  });
});

// ---- listener-class patches ---------------------------------------------------------------------------------------

describe('LISTENER', () => {
  it('MERGE by port, REMOVE by name, ADD once per context (ANY: outbound and gateway only), INSERT_* meaning ADD', () => {
    const newListener = (name: string, port: number) => ({
      name,
      address: { socket_address: { address: '0.0.0.0', port_value: port } },
      filter_chains: [{ filters: [tcpProxy('BlackHoleCluster')] }],
    });
    const filters = patchesOf(
      cp('LISTENER', { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9080 } }, 'MERGE', { perConnectionBufferLimitBytes: 32768, listener_filters_timeout: '1s' }),
      cp('LISTENER', { listener: { name: '10.96.0.5_3306' } }, 'REMOVE'),
      cp('LISTENER', { context: 'SIDECAR_INBOUND' }, 'ADD', newListener('extra-in', 7001)),
      cp('LISTENER', undefined, 'INSERT_FIRST', newListener('extra-any', 7002)),
      cp('LISTENER', { context: 'SIDECAR_OUTBOUND' }, 'ADD', newListener('virtualOutbound', 7003)),
    );
    const { out, notes } = patchListeners(filters, sidecarListeners());
    expect(out.map((l) => l.name)).toEqual(['virtualOutbound', '0.0.0.0_9080', 'virtualInbound', 'extra-in', 'extra-any']);
    expect(byName(out, '0.0.0.0_9080')).toMatchObject({ per_connection_buffer_limit_bytes: { value: 32768 }, listener_filters_timeout: { seconds: 1, nanos: 0 } });
    expect(byName(out, 'virtualInbound').per_connection_buffer_limit_bytes).toBeUndefined();
    expect(notes).toEqual(['EnvoyFilter istio-system/ef configPatches[4]: a listener named "virtualOutbound" already exists; ADD not applied']);
    listenersRoundTrip(out);
    // A gateway gets the context-ANY add, not the SIDECAR_INBOUND one.
    expect(patchListeners(filters, [gateway8080()], 'GATEWAY').out.map((l) => l.name)).toEqual(['0.0.0.0_8080', 'extra-any']);
  });
});

describe('LISTENER_FILTER', () => {
  const vi = { context: 'SIDECAR_INBOUND', listener: { name: 'virtualInbound' } };
  const named = (listenerFilter: string) => ({ ...vi, listener: { ...vi.listener, listenerFilter } });
  const proxyProtocol = listenerFilter('proxy_protocol', 'ProxyProtocol');
  const lfNames = (l: any) => (l.listener_filters as Json[]).map((f) => String(f.name).replace('envoy.filters.listener.', ''));

  it('INSERT_FIRST puts the filter first', () => {
    const { out } = patchListeners(patchesOf(cp('LISTENER_FILTER', vi, 'INSERT_FIRST', proxyProtocol)), [virtualInbound()]);
    expect(lfNames(out[0])).toEqual(['proxy_protocol', 'original_dst', 'tls_inspector', 'http_inspector']);
    listenersRoundTrip(out);
  });

  it('INSERT_BEFORE / INSERT_AFTER a named filter, ADD, REPLACE, REMOVE (deprecated name), MERGE', () => {
    const filters = patchesOf(
      cp('LISTENER_FILTER', named('envoy.filters.listener.tls_inspector'), 'INSERT_BEFORE', proxyProtocol),
      cp('LISTENER_FILTER', named('envoy.filters.listener.original_dst'), 'INSERT_AFTER', { ...listenerFilter('original_src', 'OriginalSrc'), typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc', mark: 7 } }),
      cp('LISTENER_FILTER', named('envoy.listener.http_inspector'), 'REMOVE'),
      cp('LISTENER_FILTER', vi, 'ADD', { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector' } }),
      cp('LISTENER_FILTER', named('envoy.filters.listener.tls_inspector'), 'MERGE', { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', enable_ja3_fingerprinting: true } }),
      cp('LISTENER_FILTER', named('envoy.filters.listener.original_dst'), 'REPLACE', { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst' } }),
    );
    const { out, notes } = patchListeners(filters, [virtualInbound(), virtualOutbound()]);
    expect(notes).toEqual([]);
    expect(lfNames(out[0])).toEqual(['original_dst', 'original_src', 'proxy_protocol', 'tls_inspector', 'http_inspector']);
    const tls = (out[0] as any).listener_filters[3];
    expect(tls.typed_config.enable_ja3_fingerprinting).toEqual({ value: true });
    expect(out[1]).toEqual(virtualOutbound());
    listenersRoundTrip(out);
  });

  it('REMOVE without a listenerFilter name is noted and ignored', () => {
    const { out, notes } = patchListeners(patchesOf(cp('LISTENER_FILTER', vi, 'REMOVE')), [virtualInbound()]);
    expect(notes).toEqual(['EnvoyFilter istio-system/ef configPatches[0]: REMOVE of a LISTENER_FILTER needs match.listener.listenerFilter; patch not applied']);
    expect(lfNames(out[0])).toHaveLength(3);
  });
});

describe('FILTER_CHAIN', () => {
  it('REMOVE by destination port, MERGE via the virtual listener’s port, ADD', () => {
    const filters = patchesOf(
      cp('FILTER_CHAIN', { context: 'SIDECAR_INBOUND', listener: { filterChain: { destinationPort: 3306 } } }, 'REMOVE'),
      cp('FILTER_CHAIN', { context: 'SIDECAR_INBOUND', listener: { portNumber: 9080 } }, 'MERGE', { transport_socket_connect_timeout: '5s', filter_chain_match: { server_names: ['a.example.com'] } }),
      cp('FILTER_CHAIN', { context: 'GATEWAY', listener: { portNumber: 8080 } }, 'ADD', { name: 'extra', filter_chain_match: { server_names: ['b.example.com'] }, filters: [tcpProxy('BlackHoleCluster')] }),
    );
    const { out } = patchListeners(filters, [virtualInbound()]);
    const chains = (out[0] as any).filter_chains;
    expect(chains.map((c: Json) => c.name)).toEqual(['0.0.0.0_9080']);
    expect(chains[0].transport_socket_connect_timeout).toEqual({ seconds: 5, nanos: 0 });
    expect(chains[0].filter_chain_match.server_names).toEqual(['a.example.com']);
    expect(chains[0].filter_chain_match.destination_port).toEqual({ value: 9080 });
    listenersRoundTrip(out);
    const gw = patchListeners(filters, [gateway8080()], 'GATEWAY').out[0] as any;
    expect(gw.filter_chains.map((c: Json) => c.name)).toEqual([undefined, 'extra']);
  });

  it('MERGE of a same-named transport_socket merges its typed_config (and only that)', () => {
    const tlsChain = (): Json => {
      const l = gateway8080() as any;
      l.filter_chains[0].transport_socket = {
        name: 'envoy.transport_sockets.tls',
        typed_config: typed('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', { require_client_certificate: { value: true }, common_tls_context: { alpn_protocols: ['h2'] } }),
      };
      return l;
    };
    const filters = patchesOf(cp('FILTER_CHAIN', { context: 'GATEWAY' }, 'MERGE', {
      name: 'ignored',
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', common_tls_context: { alpn_protocols: ['http/1.1'] } },
      },
    }));
    const { out } = patchListeners(filters, [tlsChain()], 'GATEWAY');
    const fc = (out[0] as any).filter_chains[0];
    expect(fc.name).toBeUndefined();
    expect(fc.transport_socket.typed_config).toMatchObject({ require_client_certificate: { value: true }, common_tls_context: { alpn_protocols: ['h2', 'http/1.1'] } });
    listenersRoundTrip(out);
  });
});

describe('NETWORK_FILTER', () => {
  const rbac = (stat: string) => ({ name: 'envoy.filters.network.rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC', stat_prefix: stat } });
  const tcpMatch = (extra: Json = {}) => ({ context: 'SIDECAR_OUTBOUND', listener: { name: '10.96.0.5_3306', filterChain: { filter: { name: 'envoy.tcp_proxy' }, ...extra } } });

  it('INSERT_BEFORE / INSERT_AFTER / INSERT_FIRST / ADD around tcp_proxy (matched by its deprecated name)', () => {
    const filters = patchesOf(
      cp('NETWORK_FILTER', tcpMatch(), 'INSERT_BEFORE', rbac('before')),
      cp('NETWORK_FILTER', tcpMatch(), 'INSERT_AFTER', rbac('after')),
      cp('NETWORK_FILTER', { context: 'SIDECAR_OUTBOUND', listener: { name: '10.96.0.5_3306' } }, 'INSERT_FIRST', rbac('first')),
      cp('NETWORK_FILTER', { context: 'SIDECAR_OUTBOUND', listener: { name: '10.96.0.5_3306' } }, 'ADD', rbac('last')),
    );
    const { out } = patchListeners(filters, sidecarListeners());
    const fs = byName(out, '10.96.0.5_3306').filter_chains[0].filters as any[];
    expect(fs.map((f) => f.typed_config.stat_prefix)).toEqual(['first', 'before', 'outbound|3306||mysql.db.svc.cluster.local', 'after', 'last']);
    expect(byName(out, 'virtualOutbound')).toEqual(virtualOutbound());
    listenersRoundTrip(out);
  });

  it('REPLACE and REMOVE a named filter, MERGE into tcp_proxy', () => {
    const replace = patchListeners(patchesOf(cp('NETWORK_FILTER', tcpMatch(), 'REPLACE', tcpProxy('outbound|3306||mysql-b.db.svc.cluster.local'))), [outboundTcp()]);
    expect((replace.out[0] as any).filter_chains[0].filters[0].typed_config.cluster).toBe('outbound|3306||mysql-b.db.svc.cluster.local');
    const remove = patchListeners(patchesOf(cp('NETWORK_FILTER', tcpMatch(), 'REMOVE')), [outboundTcp()]);
    expect((remove.out[0] as any).filter_chains[0].filters).toEqual([]);
    const merge = patchListeners(patchesOf(cp('NETWORK_FILTER', tcpMatch(), 'MERGE', {
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', idle_timeout: '30s' },
    })), [outboundTcp()]);
    expect((merge.out[0] as any).filter_chains[0].filters[0].typed_config).toMatchObject({ cluster: 'outbound|3306||mysql.db.svc.cluster.local', idle_timeout: { seconds: 30, nanos: 0 } });
    listenersRoundTrip([...replace.out, ...merge.out]);
  });

  it('MERGE into the HTTP connection manager (deprecated name) merges the typed message; another type is noted and skipped', () => {
    const filters = patchesOf(
      cp('NETWORK_FILTER', { context: 'GATEWAY', listener: { filterChain: { filter: { name: 'envoy.http_connection_manager' } } } }, 'MERGE', {
        typed_config: { '@type': HCM_URL, common_http_protocol_options: { idle_timeout: '30s' }, stream_idle_timeout: '300s', http_filters: [bufferFilter('merged-in')] },
      }),
      cp('NETWORK_FILTER', { context: 'GATEWAY', listener: { filterChain: { filter: { name: HCM } } } }, 'MERGE', {
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'x' },
      }),
    );
    const { out, notes } = patchListeners(filters, [gateway8080()], 'GATEWAY');
    const tc = (out[0] as any).filter_chains[0].filters[0].typed_config;
    expect(tc.common_http_protocol_options).toEqual({ idle_timeout: { seconds: 30, nanos: 0 } });
    expect(tc.stream_idle_timeout).toEqual({ seconds: 300, nanos: 0 });
    expect(tc.stat_prefix).toBe('outbound_0.0.0.0_8080');
    expect(tc.http_filters.map((f: Json) => f.name)).toEqual(['envoy.filters.http.fault', 'envoy.filters.http.router', 'merged-in']); // lists append
    expect(notes).toEqual([
      'EnvoyFilter istio-system/ef configPatches[1]: filter envoy.filters.network.http_connection_manager: typed_config is envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy but the generated one is envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager: only the same type can be merged; MERGE not applied',
    ]);
  });
});

describe('MERGE semantics', () => {
  it('a wrapper set to its zero value overwrites; a plain field set to its zero value does not (proto3, as Istio)', () => {
    const l = gateway8080() as any;
    Object.assign(l.filter_chains[0].filters[0].typed_config, { use_remote_address: { value: true }, proxy_100_continue: true });
    const { out } = patchListeners(patchesOf(cp('NETWORK_FILTER', { context: 'GATEWAY', listener: { filterChain: { filter: { name: HCM } } } }, 'MERGE', {
      typed_config: { '@type': HCM_URL, use_remote_address: false, proxy_100_continue: false, codec_type: 'HTTP2' },
    })), [l], 'GATEWAY');
    const tc = (out[0] as any).filter_chains[0].filters[0].typed_config;
    expect(tc).toMatchObject({ use_remote_address: { value: false }, proxy_100_continue: true, codec_type: 'HTTP2' });
    listenersRoundTrip(out);
  });
});

describe('HTTP_FILTER', () => {
  const sub = (name: string) => ({ context: 'GATEWAY', listener: { filterChain: { filter: { name: HCM, subFilter: { name } } } } });
  const gw = (...configPatches: Json[]) => patchListeners([envoyFilter({ configPatches })], [gateway8080()], 'GATEWAY');

  it.each([
    ['REMOVE', sub('envoy.fault'), undefined, ['envoy.filters.http.router']],
    ['REPLACE', sub('envoy.filters.http.fault'), bufferFilter('buffer'), ['buffer', 'envoy.filters.http.router']],
    ['INSERT_AFTER', sub('envoy.filters.http.fault'), bufferFilter('buffer'), ['envoy.filters.http.fault', 'buffer', 'envoy.filters.http.router']],
    ['INSERT_AFTER', { context: 'GATEWAY' }, bufferFilter('buffer'), ['envoy.filters.http.fault', 'envoy.filters.http.router', 'buffer']],
    ['INSERT_BEFORE', sub('envoy.filters.http.absent'), bufferFilter('buffer'), ['envoy.filters.http.fault', 'envoy.filters.http.router']],
    ['INSERT_FIRST', sub('envoy.filters.http.router'), bufferFilter('buffer'), ['buffer', 'envoy.filters.http.fault', 'envoy.filters.http.router']],
    ['ADD', { context: 'ANY' }, bufferFilter('buffer'), ['envoy.filters.http.fault', 'envoy.filters.http.router', 'buffer']],
  ])('%s', (operation, match, value, expected) => {
    const { out, notes } = gw(cp('HTTP_FILTER', match, operation, value));
    expect(notes).toEqual([]);
    expect(httpFilterNames(out[0])).toEqual(expected);
    listenersRoundTrip(out);
  });

  it('MERGE into the named filter’s typed_config; without a subFilter or across types it is noted', () => {
    const { out, notes } = gw(
      cp('HTTP_FILTER', sub('envoy.router'), 'MERGE', { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', suppress_envoy_headers: true } }),
      cp('HTTP_FILTER', { context: 'GATEWAY' }, 'MERGE', { name: 'renamed' }),
      cp('HTTP_FILTER', sub('envoy.filters.http.fault'), 'MERGE', { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }),
    );
    const router = (out[0] as any).filter_chains[0].filters[0].typed_config.http_filters[1];
    expect(router).toEqual({ name: 'envoy.filters.http.router', typed_config: { ...ROUTER.typed_config, suppress_envoy_headers: true } });
    expect(notes).toEqual([
      'EnvoyFilter istio-system/ef configPatches[1]: MERGE of an HTTP_FILTER needs match.listener.filterChain.filter.subFilter.name; patch not applied',
      'EnvoyFilter istio-system/ef configPatches[2]: filter envoy.filters.http.fault: typed_config is envoy.extensions.filters.http.router.v3.Router but the generated one is envoy.extensions.filters.http.fault.v3.HTTPFault: only the same type can be merged; MERGE not applied',
    ]);
    expect(httpFilterNames(out[0])).toEqual(['envoy.filters.http.fault', 'envoy.filters.http.router']);
  });
});

// ---- routes -------------------------------------------------------------------------------------------------------

function patchRoutes(filters: ConfigObject<EnvoyFilterSpec>[], rc: Json, ctx: Parameters<typeof applyRouteConfigPatches>[1] = 'SIDECAR_OUTBOUND') {
  const { patches, notes } = select(filters);
  deepFreeze(rc);
  const out = applyRouteConfigPatches(rc, ctx, patches, (m) => notes.push(m));
  if (out !== rc) roundTrip(TypeUrl.RouteConfiguration, 'envoy.config.route.v3.RouteConfiguration', [out]);
  return { out: out as any, notes };
}

describe('ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE', () => {
  const rc9080 = { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 9080 } };
  const reviews = { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: 'reviews.default.svc.cluster.local:9080' } } };
  const reviewsRoute = (name: string, action?: string) => ({ ...reviews, routeConfiguration: { vhost: { ...reviews.routeConfiguration.vhost, route: { name, ...(action ? { action } : {}) } } } });
  const newRoute = (name: string) => ({ name, match: { prefix: `/${name}` }, route: { cluster: 'outbound|9080|v3|reviews.default.svc.cluster.local' } });
  const routeNames = (rc: any) => (rc.virtual_hosts[0].routes as Json[]).map((r) => r.name);

  it('ROUTE_CONFIGURATION MERGE matches by port; other operations are noted', () => {
    const { out, notes } = patchRoutes(patchesOf(
      cp('ROUTE_CONFIGURATION', rc9080, 'MERGE', { max_direct_response_body_size_bytes: 2048, request_headers_to_add: [{ header: { key: 'x-a', value: '1' } }] }),
      cp('ROUTE_CONFIGURATION', rc9080, 'ADD', { name: 'x' }),
      cp('ROUTE_CONFIGURATION', { context: 'SIDECAR_OUTBOUND', routeConfiguration: { portNumber: 8080 } }, 'MERGE', { validate_clusters: true }),
    ), routeConfig9080());
    expect(out.max_direct_response_body_size_bytes).toEqual({ value: 2048 });
    expect(out.validate_clusters).toBeUndefined();
    expect(notes).toEqual(['EnvoyFilter istio-system/ef configPatches[1]: operation ADD is not supported for applyTo ROUTE_CONFIGURATION (as in Istio); patch not applied']);
  });

  it('VIRTUAL_HOST REPLACE, MERGE, REMOVE, ADD', () => {
    const gone = { name: 'gone', domains: ['gone.example.com'], routes: [{ name: 'gone', match: { prefix: '/' }, direct_response: { status: 410 } }] };
    const { out } = patchRoutes(patchesOf(
      cp('VIRTUAL_HOST', { context: 'SIDECAR_OUTBOUND', routeConfiguration: { name: '9080', vhost: { name: 'allow_any' } } }, 'REPLACE', { ...gone, name: 'allow_any', domains: ['*'] }),
      cp('VIRTUAL_HOST', { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { domainName: 'reviews' } } }, 'MERGE', { domains: ['reviews.default'], include_request_attempt_count: true }),
      cp('VIRTUAL_HOST', { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: 'nope' } } }, 'REMOVE'),
      cp('VIRTUAL_HOST', rc9080, 'ADD', gone),
    ), routeConfig9080());
    expect(out.virtual_hosts.map((v: Json) => v.name)).toEqual(['reviews.default.svc.cluster.local:9080', 'allow_any', 'gone']);
    expect(out.virtual_hosts[0].domains).toEqual(['reviews.default.svc.cluster.local', 'reviews', 'reviews:9080', 'reviews.default']);
    expect(out.virtual_hosts[0].include_request_attempt_count).toBe(true);
    expect(out.virtual_hosts[1].routes[0].direct_response).toEqual({ status: 410 });
    const removed = patchRoutes(patchesOf(cp('VIRTUAL_HOST', { context: 'ANY', routeConfiguration: { vhost: { name: 'allow_any' } } }, 'REMOVE')), routeConfig9080()).out;
    expect(removed.virtual_hosts.map((v: Json) => v.name)).toEqual(['reviews.default.svc.cluster.local:9080']);
  });

  it('HTTP_ROUTE MERGE, REMOVE, INSERT_BEFORE/AFTER/FIRST, ADD, and action matching', () => {
    const { out, notes } = patchRoutes(patchesOf(
      cp('HTTP_ROUTE', reviewsRoute('default'), 'MERGE', { route: { timeout: '5s' }, decorator: { operation: 'reviews-default' } }),
      cp('HTTP_ROUTE', reviewsRoute('', 'DIRECT_RESPONSE'), 'REMOVE'),
      cp('HTTP_ROUTE', reviewsRoute('default'), 'INSERT_BEFORE', newRoute('before-default')),
      cp('HTTP_ROUTE', reviewsRoute('v2-route'), 'INSERT_AFTER', newRoute('after-v2')),
      cp('HTTP_ROUTE', reviewsRoute('absent'), 'INSERT_FIRST', newRoute('never')),
      cp('HTTP_ROUTE', reviewsRoute('v2-route', 'ROUTE'), 'INSERT_FIRST', newRoute('first')),
      cp('HTTP_ROUTE', reviews, 'ADD', newRoute('last')),
      cp('HTTP_ROUTE', reviewsRoute('default', 'REDIRECT'), 'MERGE', { route: { timeout: '9s' } }),
    ), routeConfig9080());
    expect(notes).toEqual([]);
    expect(routeNames(out)).toEqual(['first', 'v2-route', 'after-v2', 'before-default', 'default', 'last']);
    const def = out.virtual_hosts[0].routes[4];
    expect(def.route).toEqual({ cluster: 'outbound|9080|v1|reviews.default.svc.cluster.local', timeout: { seconds: 5, nanos: 0 } });
    expect(def.decorator).toEqual({ operation: 'reviews-default' });
    expect(out.virtual_hosts[1]).toEqual((routeConfig9080().virtual_hosts as Json[])[1]);
  });

  it('gateway routes match gateway (namespace/name), portName and portNumber through the port map', () => {
    const https = { name: 'https.443.https-443.my-gw.istio-system', virtual_hosts: [{ name: 'a.example.com:443', domains: ['a.example.com'], routes: [route('r', 'outbound|80||a.default.svc.cluster.local')] }] };
    const http = { ...https, name: 'http.8080' };
    const filters = patchesOf(
      cp('VIRTUAL_HOST', { context: 'GATEWAY', routeConfiguration: { gateway: 'istio-system/my-gw', portName: 'https-443' } }, 'MERGE', { domains: ['b.example.com'] }),
      cp('VIRTUAL_HOST', { context: 'GATEWAY', routeConfiguration: { portNumber: 80 } }, 'MERGE', { domains: ['c.example.com'] }),
    );
    expect(patchRoutes(filters, structuredClone(https), 'GATEWAY').out.virtual_hosts[0].domains).toEqual(['a.example.com', 'b.example.com']);
    expect(patchRoutes(filters, structuredClone(http), { context: 'GATEWAY', portMap: new Map([[8080, [80]]]) }).out.virtual_hosts[0].domains).toEqual(['a.example.com', 'c.example.com']);
    const untouched = structuredClone(http);
    expect(patchRoutes(filters, untouched, 'GATEWAY').out).toBe(untouched);
    expect(patchRoutes(filters, untouched, 'SIDECAR_OUTBOUND').out).toBe(untouched);
  });

  it('inline route configurations of inbound HCMs are patched in the listener’s context', () => {
    const filters = patchesOf(
      cp('HTTP_ROUTE', { context: 'SIDECAR_INBOUND', routeConfiguration: { portNumber: 9080, vhost: { route: { name: 'default' } } } }, 'MERGE', { route: { timeout: '15s' } }),
    );
    const { out } = patchListeners(filters, sidecarListeners());
    const rc = byName(out, 'virtualInbound').filter_chains[0].filters[0].typed_config.route_config;
    expect(rc.virtual_hosts[0].routes[0].route).toEqual({ cluster: 'inbound|9080||', timeout: { seconds: 15, nanos: 0 } });
    expect(byName(out, '0.0.0.0_9080')).toEqual(outbound9080());
    listenersRoundTrip(out);
  });
});

// ---- clusters -----------------------------------------------------------------------------------------------------

describe('CLUSTER', () => {
  function patchClusters(filters: ConfigObject<EnvoyFilterSpec>[], input: Json[], ctx: Parameters<typeof applyClusterPatches>[1] = SIDECAR_CLUSTERS) {
    const { patches, notes } = select(filters);
    deepFreeze(input);
    const out = applyClusterPatches(input, ctx, patches, (m) => notes.push(m));
    roundTrip(TypeUrl.Cluster, 'envoy.config.cluster.v3.Cluster', out);
    return { out: out as any[], notes };
  }

  it('MERGE connect_timeout into the matching subset, REMOVE by name, ADD once', () => {
    const input = clusters();
    const { out, notes } = patchClusters(patchesOf(
      cp('CLUSTER', { context: 'SIDECAR_OUTBOUND', cluster: { service: 'reviews.default.svc.cluster.local', subset: 'v1', portNumber: 9080 } }, 'MERGE', { connect_timeout: '3s' }),
      cp('CLUSTER', { cluster: { name: 'outbound|9080||ratings.default.svc.cluster.local' } }, 'REMOVE'),
      cp('CLUSTER', undefined, 'ADD', { name: 'rate_limit_cluster', type: 'STRICT_DNS', connect_timeout: '1s', load_assignment: { cluster_name: 'rate_limit_cluster', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'ratelimit.default.svc.cluster.local', port_value: 8081 } } } }] }] } }),
      cp('CLUSTER', undefined, 'ADD', { name: 'inbound|9080||', type: 'STATIC' }),
    ), input);
    expect(out.map((c) => c.name)).toEqual(['outbound|9080|v1|reviews.default.svc.cluster.local', 'outbound|9080|v2|reviews.default.svc.cluster.local', 'inbound|9080||', 'rate_limit_cluster']);
    expect(out[0].connect_timeout).toEqual({ seconds: 3, nanos: 0 });
    expect(out[1]).toBe(input[1]);
    expect(notes).toEqual(['EnvoyFilter istio-system/ef configPatches[3]: a cluster named "inbound|9080||" already exists; ADD not applied']);
  });

  it('inbound clusters are SIDECAR_INBOUND and match service through the hosts the generator passes', () => {
    const filters = patchesOf(cp('CLUSTER', { context: 'SIDECAR_INBOUND', cluster: { service: 'productpage.bookinfo.svc.cluster.local', portNumber: 9080 } }, 'MERGE', { per_connection_buffer_limit_bytes: 1 }));
    const { out } = patchClusters(filters, clusters(), { ...SIDECAR_CLUSTERS, hostsOf: () => ['productpage.bookinfo.svc.cluster.local'] });
    expect(out.map((c) => c.per_connection_buffer_limit_bytes?.value)).toEqual([undefined, undefined, undefined, 1]);
    expect(patchClusters(filters, clusters()).out[3].per_connection_buffer_limit_bytes).toBeUndefined();
  });

  it('a transport_socket MERGE replaces a differently named socket and merges a same-named one', () => {
    const tls = (sni: string) => ({ name: 'envoy.transport_sockets.tls', typed_config: typed('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', { sni }) });
    const input = [cluster('outbound|443||a.example.com', { transport_socket: tls('a.example.com') }), cluster('outbound|443||b.example.com')];
    const { out, notes } = patchClusters(patchesOf(cp('CLUSTER', { context: 'SIDECAR_OUTBOUND', cluster: { portNumber: 443 } }, 'MERGE', {
      transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', allow_renegotiation: true } },
    })), input);
    expect(notes).toEqual([]);
    expect(out[0].transport_socket.typed_config).toMatchObject({ sni: 'a.example.com', allow_renegotiation: true });
    expect(out[1].transport_socket.typed_config).toEqual({ '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', allow_renegotiation: true });
  });
});

// ---- bad patches --------------------------------------------------------------------------------------------------

describe('bad patches never break generation', () => {
  it('a value that does not parse is noted and skipped; the rest of the filter still applies; inputs are untouched', () => {
    const filters = patchesOf(
      cp('HTTP_FILTER', { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: HCM } } } }, 'INSERT_FIRST', {
        name: 'envoy.filters.http.ratelimit',
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit', domian: 'x' },
      }),
      cp('HTTP_FILTER', { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: HCM } } } }, 'INSERT_FIRST', bufferFilter('ok')),
      cp('EXTENSION_CONFIG', undefined, 'ADD', { name: 'x' }),
    );
    const input = sidecarListeners();
    const before = structuredClone(input);
    const { out, notes } = patchListeners(filters, input);
    expect(notes).toEqual([
      'EnvoyFilter istio-system/ef configPatches[0]: patch.value.typed_config.domian: unknown field "domian" in envoy.extensions.filters.http.ratelimit.v3.RateLimit; patch not applied',
      'EnvoyFilter istio-system/ef configPatches[2]: applyTo EXTENSION_CONFIG is not supported by mizzen; patch not applied',
    ]);
    expect(httpFilterNames(byName(out, 'virtualInbound'))).toEqual(['ok', 'envoy.filters.http.fault', 'envoy.filters.http.router']);
    expect(input).toEqual(before);
  });

  it('a filter without typed_config (Envoy finds no extension by name any more) is noted and skipped', () => {
    const { patches, notes } = select(patchesOf(
      cp('LISTENER', { context: 'GATEWAY' }, 'MERGE', { listener_filters: [{ name: 'envoy.listener.proxy_protocol' }] }),
      cp('HTTP_FILTER', { context: 'GATEWAY' }, 'INSERT_FIRST', { name: 'envoy.lua' }),
      cp('HTTP_FILTER', { context: 'GATEWAY', listener: { filterChain: { filter: { name: HCM, subFilter: { name: 'envoy.router' } } } } }, 'MERGE', { name: 'renamed-router' }),
    ));
    expect(notes).toEqual([
      'EnvoyFilter istio-system/ef configPatches[0]: filter "envoy.listener.proxy_protocol" has no typed_config; Envoy no longer finds extensions by name and would reject the listener; patch not applied',
      'EnvoyFilter istio-system/ef configPatches[1]: filter "envoy.lua" has no typed_config; Envoy no longer finds extensions by name and would reject the listener; patch not applied',
    ]);
    expect(patches.get('HTTP_FILTER')?.map((p) => p.operation)).toEqual(['MERGE']);
  });

  it('HTTP filter patches on an HCM that is not a typed HttpConnectionManager are noted, not thrown', () => {
    const l = gateway8080() as any;
    l.filter_chains[0].filters[0].typed_config = { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: HCM_URL, value: { fields: {} } };
    const { out, notes } = patchListeners(patchesOf(cp('HTTP_FILTER', { context: 'GATEWAY' }, 'ADD', bufferFilter('b'))), [l], 'GATEWAY');
    expect(notes[0]).toContain('the HTTP connection manager\'s typed_config is udpa.type.v1.TypedStruct');
    expect((out[0] as any).filter_chains[0].filters[0].typed_config).toEqual(l.filter_chains[0].filters[0].typed_config);
  });

  it.each([
    ['LISTENER', 'REPLACE'],
    ['FILTER_CHAIN', 'REPLACE'],
    ['VIRTUAL_HOST', 'INSERT_BEFORE'], // INSERT_* mean ADD outside ordered lists; REPLACE / REMOVE do not
    ['HTTP_ROUTE', 'REPLACE'],
    ['CLUSTER', 'REPLACE'],
  ])('%s %s is not an Istio operation: noted', (applyTo, operation) => {
    const filters = patchesOf(cp(applyTo, undefined, operation, { name: 'x' }));
    const { patches, notes } = select(filters);
    if (operation === 'INSERT_BEFORE') {
      expect(notes).toEqual([]);
      expect(patches.get('VIRTUAL_HOST')?.[0]?.operation).toBe('ADD');
    } else {
      expect(notes).toEqual([`EnvoyFilter istio-system/ef configPatches[0]: operation ${operation} is not supported for applyTo ${applyTo} (as in Istio); patch not applied`]);
      expect(patches.size).toBe(0);
    }
  });
});

// ---- one resource at a time -----------------------------------------------------------------------------------------

describe('per-resource use (generators that build one listener or cluster by name)', () => {
  it('patchListener / patchCluster never add; addedListeners / addedClusters give the ADDs, once, with unique names', () => {
    const filters = patchesOf(
      cp('LISTENER', { context: 'SIDECAR_OUTBOUND' }, 'ADD', { name: 'extra', address: { socket_address: { address: '0.0.0.0', port_value: 7000 } } }),
      cp('LISTENER', { listener: { name: '10.96.0.5_3306' } }, 'REMOVE'),
      cp('CLUSTER', undefined, 'ADD', { name: 'extra-cluster', type: 'STATIC' }),
      cp('CLUSTER', { cluster: { subset: 'v2' } }, 'MERGE', { connect_timeout: '1s' }),
    );
    const { patches, notes } = select(filters);
    const note = (m: string) => notes.push(m);
    const tcp = deepFreeze(outboundTcp());
    expect(patchListener(tcp, 'SIDECAR_OUTBOUND', patches, note)).toBeUndefined();
    const vo = deepFreeze(virtualOutbound());
    expect(patchListener(vo, 'SIDECAR_OUTBOUND', patches, note)).toBe(vo);
    expect(addedListeners(patches, SIDECAR_LISTENERS.adds, note).map((l) => l.name)).toEqual(['extra']);
    expect(addedListeners(patches, ['GATEWAY'], note)).toEqual([]);
    expect(addedListeners(patches, SIDECAR_LISTENERS.adds, note, new Set(['extra']))).toEqual([]);
    const v2 = deepFreeze(clusters()[1]!);
    expect(patchCluster(v2, 'SIDECAR_OUTBOUND', patches, note)).toMatchObject({ connect_timeout: { seconds: 1, nanos: 0 } });
    expect(addedClusters(patches, SIDECAR_CLUSTERS.adds, note).map((c) => c.name)).toEqual(['extra-cluster']);
    expect(notes).toEqual(['EnvoyFilter istio-system/ef configPatches[0]: a listener named "extra" already exists; ADD not applied']);
  });

  it('compiled patch values are shared and frozen; every use gets its own copy', () => {
    const filters = patchesOf(cp('LISTENER_FILTER', { context: 'SIDECAR_INBOUND' }, 'INSERT_FIRST', listenerFilter('proxy_protocol', 'ProxyProtocol')));
    const { patches } = select(filters);
    const value = patches.get('LISTENER_FILTER')![0]!.value!;
    expect(Object.isFrozen(value) && Object.isFrozen(value.typed_config)).toBe(true);
    const a = patchListener(virtualInbound(), 'SIDECAR_INBOUND', patches, () => {}) as any;
    const b = patchListener(virtualInbound(), 'SIDECAR_INBOUND', select(filters).patches, () => {}) as any;
    expect(a.listener_filters[0]).toEqual(value);
    expect(a.listener_filters[0]).not.toBe(value);
    expect(a.listener_filters[0]).not.toBe(b.listener_filters[0]);
  });
});
