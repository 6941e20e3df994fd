/**
 * Istio's proxy-extension filters (istio.metadata_exchange HTTP and TCP, istio.alpn, istio.stats): our protos load
 * through the shared root with the upstream field numbers, every builder's exact JSON passes the strict proto + PGV
 * checker inside a real resource and survives an encode/decode round trip, the filters land at istiod's positions,
 * and the user's seed 036 Telemetry turns into the matching stats.PluginConfig.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { DEFAULT_MESH } from '../../src/model/mesh.ts';
import { parseProxy } from '../../src/model/proxy.ts';
import { RecordingView } from '../../src/model/proxy-view.ts';
import { PushContext } from '../../src/model/push-context.ts';
import { telemetryFor } from '../../src/model/telemetry.ts';
import { decodeResource, encodeResource } from '../../src/proto/encode.ts';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { ensureType, messageType } from '../../src/proto/root.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import type { Json } from '../../src/xds/builders/common.ts';
import { httpConnectionManager, tcpProxy } from '../../src/xds/builders/http-connection-manager.ts';
import {
  alpnHttpFilter,
  grpcStatsHttpFilter,
  istioClusterMetadata,
  istioHttpFiltersFor,
  istioNetworkFiltersFor,
  istioStatsFilters,
  metadataExchangeClusterFilter,
  metadataExchangeNetworkFilter,
  peerMetadataHttpFilter,
  statsPluginConfig,
  withIstioHttpFilters,
  withIstioNetworkFilters,
} from '../../src/xds/builders/istio-filters.ts';
import { metricsOverrides, type StatsFilterConfig } from '../../src/xds/builders/telemetry.ts';

const SEEDS = '/work/shared/fixtures/seeds';
const T = (name: string) => `type.googleapis.com/${name}`;
const LISTENER = 'envoy.config.listener.v3.Listener';
const CLUSTER = 'envoy.config.cluster.v3.Cluster';

function expectValid(messageName: string, json: unknown) {
  expect(checkEnvoyResource(messageName, json)).toEqual([]);
}

/** A listener with one chain holding `filters`: checked, encoded and decoded back to proto3 JSON. */
function listenerRoundTrip(filters: Json[], direction: 'INBOUND' | 'OUTBOUND' = 'OUTBOUND'): Record<string, any> {
  const listener = {
    name: '0.0.0.0_9080',
    address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
    traffic_direction: direction,
    filter_chains: [{ filters }],
  };
  expectValid(LISTENER, listener);
  return decodeResource(TypeUrl.Listener, encodeResource(TypeUrl.Listener, listener.name, listener).bytes);
}

/** An HCM holding one extra HTTP filter, through listenerRoundTrip; returns the decoded filter's typed_config. */
function httpFilterRoundTrip(filter: Json): Record<string, any> {
  const hcm = httpConnectionManager({ direction: 'outbound', statPrefix: 'outbound_0.0.0.0_9080;', rds: '9080', filters: [filter] });
  const decoded = listenerRoundTrip([hcm]);
  const httpFilters = decoded.filter_chains[0].filters[0].typed_config.http_filters as Json[];
  return httpFilters.find((f) => f.name === filter.name)!.typed_config as Record<string, any>;
}

function clusterRoundTrip(extra: Json): Record<string, any> {
  const cluster = {
    name: 'outbound|9080||reviews.default.svc.cluster.local',
    type: 'EDS',
    eds_cluster_config: { service_name: 'outbound|9080||reviews.default.svc.cluster.local', eds_config: { ads: {}, resource_api_version: 'V3' } },
    connect_timeout: { seconds: 10, nanos: 0 },
    ...extra,
  };
  expectValid(CLUSTER, cluster);
  return decodeResource(TypeUrl.Cluster, encodeResource(TypeUrl.Cluster, cluster.name, cluster).bytes);
}

/** The bytes of one message, for checking field numbers on the wire. */
function wire(messageName: string, body: Json): string {
  const t = messageType(messageName);
  return Buffer.from(t.encode(t.fromObject(body)).finish()).toString('hex');
}
const hex = (s: string) => Buffer.from(s).toString('hex');

const names = (filters: Json[]) => filters.map((f) => f.name);

describe('our Istio extension protos', () => {
  it('load on demand from protos/ by package path, with the upstream field names and numbers', () => {
    const fields = (n: string) => {
      expect(ensureType(n)).toBe(true);
      return Object.fromEntries(messageType(n).fieldsArray.map((f) => [f.name, f.id]));
    };
    expect(fields('istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig')).toEqual({ alpn_override: 1 });
    expect(fields('istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig.AlpnOverride')).toEqual({ upstream_protocol: 1, alpn_override: 2 });
    expect(fields('io.istio.http.peer_metadata.Config')).toEqual({
      downstream_discovery: 1,
      upstream_discovery: 2,
      downstream_propagation: 3,
      upstream_propagation: 4,
      shared_with_upstream: 5,
      additional_labels: 6,
    });
    expect(fields('io.istio.http.peer_metadata.Config.DiscoveryMethod')).toEqual({ baggage: 1, workload_discovery: 2, istio_headers: 3 });
    expect(fields('io.istio.http.peer_metadata.Config.PropagationMethod')).toEqual({ istio_headers: 1 });
    expect(fields('io.istio.http.peer_metadata.Config.IstioHeaders')).toEqual({ skip_external_clusters: 1 });
    expect(fields('envoy.tcp.metadataexchange.config.MetadataExchange')).toEqual({ protocol: 1, enable_discovery: 2, additional_labels: 3 });
    expect(fields('stats.PluginConfig')).toEqual({
      disable_host_header_fallback: 6,
      tcp_reporting_duration: 7,
      metrics: 8,
      definitions: 9,
      reporter: 10,
      rotation_interval: 11,
      graceful_deletion_interval: 12,
    });
    expect(fields('stats.MetricConfig')).toEqual({ dimensions: 1, name: 2, tags_to_remove: 3, match: 4, drop: 5 });
    expect(fields('stats.MetricDefinition')).toEqual({ name: 1, value: 2, type: 3 });
  });

  it('encode as istiod does: stats {disable_host_header_fallback} is "MAE=" (istiod telemetry_test), MX and ALPN bytes per field number', () => {
    expect(Buffer.from(wire('stats.PluginConfig', { disable_host_header_fallback: true }), 'hex').toString('base64')).toBe('MAE=');
    expect(wire('stats.PluginConfig', { reporter: 'SERVER_GATEWAY' })).toBe('5001');
    expect(wire('envoy.tcp.metadataexchange.config.MetadataExchange', { protocol: 'istio-peer-exchange', enable_discovery: true })).toBe(`0a13${hex('istio-peer-exchange')}1001`);
    // FilterConfig.alpn_override (1) ⊃ AlpnOverride { upstream_protocol (1) = HTTP2 (2), alpn_override (2) = "h2" }.
    expect(wire('istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig', { alpn_override: [{ upstream_protocol: 'HTTP2', alpn_override: ['h2'] }] })).toBe(
      `0a06080212${hex('\u0002h2')}`,
    );
    // Config.upstream_discovery (2) ⊃ DiscoveryMethod.istio_headers (3), empty.
    expect(wire('io.istio.http.peer_metadata.Config', { upstream_discovery: [{ istio_headers: {} }] })).toBe('12021a00');
  });
  it('are walked by the strict checker: a typo, a wrong enum, a wrong kind and a doubled oneof are reported', () => {
    const chain = (typed_config: Json) => ({
      name: '0.0.0.0_9080',
      address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
      filter_chains: [{ filters: [{ name: 'istio.stats', typed_config }, tcpProxy({ statPrefix: 'a', cluster: 'a' })] }],
    });
    const check = (typed_config: Json) => checkEnvoyResource(LISTENER, chain(typed_config));
    expect(check({ '@type': T('stats.PluginConfig'), disable_host_header_fallbak: true })).toEqual([
      'filter_chains[0].filters[0].typed_config.disable_host_header_fallbak: unknown field of stats.PluginConfig',
    ]);
    expect(check({ '@type': T('stats.PluginConfig'), reporter: 'CLIENT' })[0]).toMatch(/unknown enum value "CLIENT" for stats.Reporter/);
    expect(check({ '@type': T('envoy.tcp.metadataexchange.config.MetadataExchange'), protocol: 1 })[0]).toMatch(/protocol: expected a string/);
    expect(check({ '@type': T('io.istio.http.peer_metadata.Config'), upstream_discovery: [{ istio_headers: {}, workload_discovery: {} }] })[0]).toMatch(
      /more than one member of oneof method_specifier/,
    );
  });
});

describe('metadata exchange', () => {
  const peerType = T('io.istio.http.peer_metadata.Config');

  it('HTTP, inbound: discover the caller from Istio headers, then workload discovery; answer with our metadata', () => {
    const f = peerMetadataHttpFilter('inbound');
    expect(f).toEqual({
      name: 'istio.metadata_exchange',
      typed_config: {
        '@type': peerType,
        downstream_discovery: [{ istio_headers: {} }, { workload_discovery: {} }],
        downstream_propagation: [{ istio_headers: {} }],
      },
    });
    expect(httpFilterRoundTrip(f)).toEqual(f.typed_config);
  });

  it('HTTP, outbound and gateways: the upstream side; IN_MESH headers mode skips external clusters', () => {
    const out = {
      name: 'istio.metadata_exchange',
      typed_config: { '@type': peerType, upstream_discovery: [{ istio_headers: {} }, { workload_discovery: {} }], upstream_propagation: [{ istio_headers: {} }] },
    };
    expect(peerMetadataHttpFilter('outbound')).toEqual(out);
    expect(peerMetadataHttpFilter('gateway')).toEqual(out);
    const skip = peerMetadataHttpFilter('outbound', { skipExternalClusters: true });
    expect((skip.typed_config as Json).upstream_propagation).toEqual([{ istio_headers: { skip_external_clusters: true } }]);
    expect(httpFilterRoundTrip(skip)).toEqual(skip.typed_config);
  });

  it('TCP: the listener filter (protocol istio-peer-exchange, discovery on) and the same config as a cluster filter', () => {
    const mx = {
      name: 'istio.metadata_exchange',
      typed_config: { '@type': T('envoy.tcp.metadataexchange.config.MetadataExchange'), protocol: 'istio-peer-exchange', enable_discovery: true },
    };
    expect(metadataExchangeNetworkFilter()).toEqual(mx);
    expect(metadataExchangeClusterFilter()).toEqual(mx);
    const decoded = listenerRoundTrip([metadataExchangeNetworkFilter(), tcpProxy({ statPrefix: 'inbound|9080||', cluster: 'inbound|9080||' })], 'INBOUND');
    expect(decoded.filter_chains[0].filters[0]).toEqual(mx);
    const cluster = clusterRoundTrip({ filters: [metadataExchangeClusterFilter()] });
    expect(cluster.filters).toEqual([mx]);
  });
});

describe('istio.alpn and grpc_stats', () => {
  it('ALPN override per upstream protocol, istiod\'s lists (istio-* first, then istio, then the standard ALPN)', () => {
    const f = alpnHttpFilter();
    expect(f).toEqual({
      name: 'istio.alpn',
      typed_config: {
        '@type': T('istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig'),
        alpn_override: [
          { upstream_protocol: 'HTTP10', alpn_override: ['istio-http/1.0', 'istio', 'http/1.0'] },
          { upstream_protocol: 'HTTP11', alpn_override: ['istio-http/1.1', 'istio', 'http/1.1'] },
          { upstream_protocol: 'HTTP2', alpn_override: ['istio-h2', 'istio', 'h2'] },
        ],
      },
    });
    expect(httpFilterRoundTrip(f)).toEqual(f.typed_config);
  });

  it('grpc_stats emits filter state (istio.stats reads message counts from it), per-method stats off', () => {
    const f = grpcStatsHttpFilter();
    expect(f).toEqual({
      name: 'envoy.filters.http.grpc_stats',
      typed_config: { '@type': T('envoy.extensions.filters.http.grpc_stats.v3.FilterConfig'), emit_filter_state: true, stats_for_all_methods: { value: false } },
    });
    expect(httpFilterRoundTrip(f)).toEqual({ '@type': T('envoy.extensions.filters.http.grpc_stats.v3.FilterConfig'), emit_filter_state: true, stats_for_all_methods: false });
  });
});

describe('istio.stats', () => {
  const statsType = T('stats.PluginConfig');
  const cfg = (config: Json): StatsFilterConfig => ({ filterName: 'istio.stats', typeUrl: 'type.googleapis.com/stats.PluginConfig', provider: 'prometheus', config });

  it('a stats config becomes a stats.PluginConfig: reporting interval as a Duration, overrides kept', () => {
    const s = cfg({
      disable_host_header_fallback: true,
      tcp_reporting_duration: '15s',
      metrics: [
        { name: 'requests_total', dimensions: { team: "'shop'" }, tags_to_remove: ['request_protocol'] },
        { name: 'tcp_sent_bytes_total', dimensions: {}, drop: true },
      ],
    });
    expect(statsPluginConfig(s)).toEqual({
      '@type': statsType,
      disable_host_header_fallback: true,
      tcp_reporting_duration: { seconds: 15, nanos: 0 },
      metrics: [
        { name: 'requests_total', dimensions: { team: "'shop'" }, tags_to_remove: ['request_protocol'] },
        { name: 'tcp_sent_bytes_total', dimensions: {}, drop: true },
      ],
    });
    const [filter] = istioStatsFilters([s]);
    expect(filter).toEqual({ name: 'istio.stats', typed_config: statsPluginConfig(s) });
    expect(httpFilterRoundTrip(filter!)).toEqual({
      '@type': statsType,
      disable_host_header_fallback: true,
      tcp_reporting_duration: '15s',
      metrics: [
        { name: 'requests_total', dimensions: { team: "'shop'" }, tags_to_remove: ['request_protocol'] },
        { name: 'tcp_sent_bytes_total', dimensions: {}, drop: true },
      ],
    });
    // The same filter is a network filter before tcp_proxy.
    const tcp = listenerRoundTrip([filter!, tcpProxy({ statPrefix: 'PassthroughCluster', cluster: 'PassthroughCluster' })]);
    expect(tcp.filter_chains[0].filters[0]).toMatchObject({ name: 'istio.stats', typed_config: { '@type': statsType, disable_host_header_fallback: true } });
  });

  it('an outbound config with no overrides is an empty PluginConfig', () => {
    expect(istioStatsFilters([cfg({})])).toEqual([{ name: 'istio.stats', typed_config: { '@type': statsType } }]);
    expect(istioStatsFilters([])).toEqual([]);
  });
});

describe('the user\'s seed 036 (REQUEST_COUNT tagOverrides response_code for prometheus)', () => {
  const file = fs.readdirSync(SEEDS).find((f) => f.startsWith('036-'));
  const yaml = fs.readFileSync(path.join(SEEDS, file!), 'utf8');
  const loaded = loadYamlText(yaml, file!, allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  const store = new ConfigStore();
  for (const o of loaded.objects) store.upsert(o);
  const push = new PushContext(store.snapshot(), DEFAULT_MESH);
  const view = (type: 'sidecar' | 'router') => {
    const p = parseProxy({ id: `${type}~10.0.0.1~app-0.default~default.svc.cluster.local`, metadata: { NAMESPACE: 'default', LABELS: { app: 'app' } } });
    if (!p.ok) throw new Error(p.errors);
    return new RecordingView(p.value);
  };
  const stats = (direction: 'outbound' | 'inbound' | 'gateway') => {
    const eff = telemetryFor(push, view(direction === 'gateway' ? 'router' : 'sidecar'), direction === 'inbound' ? 'SERVER' : 'CLIENT');
    return metricsOverrides(eff, () => {}, { inbound: direction === 'inbound', gateway: direction === 'gateway' });
  };
  const requestCount = [{ name: 'requests_total', dimensions: { response_code: 'response.code' } }];

  it('loads', () => {
    expect(loaded.errors).toEqual([]);
    expect(loaded.objects).toHaveLength(1);
  });

  it('gives istio.stats with the response_code dimension in every direction; host-header fallback off inbound and at gateways', () => {
    const statsType = T('stats.PluginConfig');
    expect(istioStatsFilters(stats('outbound'))).toEqual([{ name: 'istio.stats', typed_config: { '@type': statsType, metrics: requestCount } }]);
    expect(istioStatsFilters(stats('inbound'))).toEqual([{ name: 'istio.stats', typed_config: { '@type': statsType, disable_host_header_fallback: true, metrics: requestCount } }]);
    expect(istioStatsFilters(stats('gateway'))).toEqual([{ name: 'istio.stats', typed_config: { '@type': statsType, disable_host_header_fallback: true, metrics: requestCount } }]);
  });

  it('a full sidecar outbound HCM: MX, authz, grpc_stats, alpn, fault, cors, istio.stats, router — checked and encoded', () => {
    const rbac = { name: 'envoy.filters.http.rbac', typed_config: { '@type': T('envoy.extensions.filters.http.rbac.v3.RBAC') } };
    const hcm = httpConnectionManager({
      direction: 'outbound',
      statPrefix: 'outbound_0.0.0.0_9080;',
      rds: '9080',
      filters: [rbac],
      istio: istioHttpFiltersFor('outbound', { stats: stats('outbound') }),
    });
    const filters = (hcm.typed_config as Json).http_filters as Json[];
    expect(names(filters)).toEqual([
      'istio.metadata_exchange',
      'envoy.filters.http.rbac',
      'envoy.filters.http.grpc_stats',
      'istio.alpn',
      'envoy.filters.http.fault',
      'envoy.filters.http.cors',
      'istio.stats',
      'envoy.filters.http.router',
    ]);
    const decoded = listenerRoundTrip([hcm]);
    const dFilters = decoded.filter_chains[0].filters[0].typed_config.http_filters as Json[];
    expect(dFilters.find((f) => f.name === 'istio.stats')!.typed_config).toEqual({
      '@type': T('stats.PluginConfig'),
      metrics: [{ name: 'requests_total', dimensions: { response_code: 'response.code' } }],
    });
  });

  it('a sidecar inbound HTTP chain: MX network filter, then an HCM with the inbound MX, no ALPN', () => {
    const hcm = httpConnectionManager({
      direction: 'inbound',
      statPrefix: 'inbound_0.0.0.0_9080;',
      routeConfig: { name: 'inbound|9080||' },
      istio: istioHttpFiltersFor('inbound', { stats: stats('inbound') }),
    });
    const chain = withIstioNetworkFilters([hcm], istioNetworkFiltersFor('inbound', 'http', { stats: stats('inbound') }));
    expect(names(chain)).toEqual(['istio.metadata_exchange', 'envoy.filters.network.http_connection_manager']);
    expect(names((hcm.typed_config as Json).http_filters as Json[])).toEqual([
      'istio.metadata_exchange',
      'envoy.filters.http.grpc_stats',
      'envoy.filters.http.fault',
      'envoy.filters.http.cors',
      'istio.stats',
      'envoy.filters.http.router',
    ]);
    const decoded = listenerRoundTrip(chain, 'INBOUND');
    const http = decoded.filter_chains[0].filters[1].typed_config.http_filters as Array<Record<string, any>>;
    expect(http[0]!.typed_config.downstream_discovery).toHaveLength(2);
    expect(http.find((f) => f.name === 'istio.stats')!.typed_config.disable_host_header_fallback).toBe(true);
  });

  it('a gateway HCM: client-side MX and ALPN like outbound, stats without host-header fallback', () => {
    const hcm = httpConnectionManager({ direction: 'gateway', statPrefix: 'outbound_0.0.0.0_8080;', rds: 'http.8080', grpcWeb: true, istio: istioHttpFiltersFor('gateway', { stats: stats('gateway') }) });
    const filters = (hcm.typed_config as Json).http_filters as Json[];
    expect(names(filters)).toEqual([
      'istio.metadata_exchange',
      'envoy.filters.http.grpc_web',
      'envoy.filters.http.grpc_stats',
      'istio.alpn',
      'envoy.filters.http.fault',
      'envoy.filters.http.cors',
      'istio.stats',
      'envoy.filters.http.router',
    ]);
    expect(filters[0]).toEqual(peerMetadataHttpFilter('outbound'));
    listenerRoundTrip([hcm]);
    expect(istioNetworkFiltersFor('gateway', 'http', { stats: stats('gateway') })).toEqual({});
  });

  it('TCP chains: inbound MX, RBAC, stats, tcp_proxy; outbound stats only (its MX is the cluster filter)', () => {
    const rbac = { name: 'envoy.filters.network.rbac', typed_config: { '@type': T('envoy.extensions.filters.network.rbac.v3.RBAC'), stat_prefix: 'tcp.' } };
    const inbound = withIstioNetworkFilters([rbac, tcpProxy({ statPrefix: 'inbound|9080||', cluster: 'inbound|9080||' })], istioNetworkFiltersFor('inbound', 'tcp', { stats: stats('inbound') }));
    expect(names(inbound)).toEqual(['istio.metadata_exchange', 'envoy.filters.network.rbac', 'istio.stats', 'envoy.filters.network.tcp_proxy']);
    listenerRoundTrip(inbound, 'INBOUND');
    const outbound = withIstioNetworkFilters([tcpProxy({ statPrefix: 'PassthroughCluster', cluster: 'PassthroughCluster' })], istioNetworkFiltersFor('outbound', 'tcp', { stats: stats('outbound') }));
    expect(names(outbound)).toEqual(['istio.stats', 'envoy.filters.network.tcp_proxy']);
    listenerRoundTrip(outbound);
    const gw = istioNetworkFiltersFor('gateway', 'tcp', { stats: stats('gateway') });
    expect(gw.metadataExchange).toBeUndefined();
    expect(istioNetworkFiltersFor('gateway', 'tcp', { istioMutualGateway: true }).metadataExchange).toEqual(metadataExchangeNetworkFilter());
  });
});

describe('placement helpers', () => {
  const f = (name: string): Json => ({ name });

  it('withIstioHttpFilters: MX first; grpc_stats, alpn before fault; stats after cors; a missing anchor falls back', () => {
    const istio = { metadataExchange: f('mx'), grpcStats: f('gs'), alpn: f('alpn'), stats: [f('s1'), f('s2')] };
    expect(names(withIstioHttpFilters([f('jwt'), f('envoy.filters.http.fault'), f('envoy.filters.http.cors'), f('envoy.filters.http.router')], istio))).toEqual([
      'mx', 'jwt', 'gs', 'alpn', 'envoy.filters.http.fault', 'envoy.filters.http.cors', 's1', 's2', 'envoy.filters.http.router',
    ]);
    // No fault/cors: before the stateful session filter and the router.
    expect(names(withIstioHttpFilters([f('envoy.filters.http.stateful_session'), f('envoy.filters.http.router')], istio))).toEqual([
      'mx', 'gs', 'alpn', 's1', 's2', 'envoy.filters.http.stateful_session', 'envoy.filters.http.router',
    ]);
    expect(names(withIstioHttpFilters([f('x')], {}))).toEqual(['x']);
  });

  it('withIstioNetworkFilters: stats after MX/ext_authz/RBAC, before the terminal filter', () => {
    const chain = [f('envoy.filters.network.ext_authz'), f('envoy.filters.network.rbac'), f('envoy.filters.network.tcp_proxy')];
    expect(names(withIstioNetworkFilters(chain, { metadataExchange: f('mx'), stats: [f('s')] }))).toEqual([
      'mx', 'envoy.filters.network.ext_authz', 'envoy.filters.network.rbac', 's', 'envoy.filters.network.tcp_proxy',
    ]);
    expect(names(withIstioNetworkFilters([], { stats: [f('s')] }))).toEqual(['s']);
  });

  it('istioHttpFiltersFor honours the feature switches', () => {
    expect(istioHttpFiltersFor('outbound', { metadataExchange: false, alpn: false, grpcStats: false })).toEqual({});
    expect(Object.keys(istioHttpFiltersFor('inbound'))).toEqual(['metadataExchange', 'grpcStats']);
    expect(istioNetworkFiltersFor('inbound', 'tcp', { metadataExchange: false })).toEqual({});
  });
});

describe('cluster metadata the Istio filters read', () => {
  it('services, default port, subset, DestinationRule, external, alpn_override as istiod writes them', () => {
    const md = istioClusterMetadata({
      services: [{ host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' }],
      defaultOriginalPort: 9080,
      subset: 'v1',
      config: '/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews',
      external: true,
      disableAlpnOverride: true,
    });
    expect(md).toEqual({
      filter_metadata: {
        istio: {
          fields: {
            services: {
              listValue: {
                values: [
                  {
                    structValue: {
                      fields: { host: { stringValue: 'reviews.default.svc.cluster.local' }, name: { stringValue: 'reviews' }, namespace: { stringValue: 'default' } },
                    },
                  },
                ],
              },
            },
            default_original_port: { numberValue: 9080 },
            subset: { stringValue: 'v1' },
            config: { stringValue: '/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews' },
            external: { boolValue: true },
            alpn_override: { stringValue: 'false' },
          },
        },
      },
    });
    const decoded = clusterRoundTrip({ metadata: md, filters: [metadataExchangeClusterFilter()] });
    expect(decoded.metadata.filter_metadata.istio).toEqual({
      services: [{ host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' }],
      default_original_port: 9080,
      subset: 'v1',
      config: '/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews',
      external: true,
      alpn_override: 'false',
    });
    expect(istioClusterMetadata({})).toBeUndefined();
    expect(istioClusterMetadata({ external: false })).toBeUndefined();
  });
});
