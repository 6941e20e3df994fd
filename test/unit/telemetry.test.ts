/**
 * The Telemetry API → Envoy access logs and tracing (pilot/pkg/model/telemetry.go, telemetry_logging.go,
 * networking/core/tracing.go): selection and merge precedence, mode filtering, every provider kind, the user's seed
 * Telemetry files, and every produced object through the strict proto + protoc-gen-validate checker and an encode
 * round trip inside a Listener.
 */
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { DEFAULT_MESH, type ExtensionProvider, type MeshConfig } from '../../src/model/mesh.ts';
import { parseProxy } from '../../src/model/proxy.ts';
import { RecordingView } from '../../src/model/proxy-view.ts';
import { PushContext } from '../../src/model/push-context.ts';
import { telemetryFor, type TelemetryMode } from '../../src/model/telemetry.ts';
import { decodeResource, encodeResource } from '../../src/proto/encode.ts';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { protoRoot } from '../../src/proto/root.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import type { Json } from '../../src/xds/builders/common.ts';
import { httpConnectionManager, tcpProxy } from '../../src/xds/builders/http-connection-manager.ts';
import {
  accessLogs,
  hcmTelemetry,
  ISTIO_TEXT_LOG_FORMAT,
  metricsOverrides,
  tcpTelemetry,
  tracing,
  type TelemetryDirection,
} from '../../src/xds/builders/telemetry.ts';

const SEEDS = '/work/shared/fixtures/seeds';
const ACCESS_LOG = 'envoy.config.accesslog.v3.AccessLog';
const HCM_TRACING = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing';

/** Collector services the providers point at. */
const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: zipkin, namespace: istio-system }
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9411, name: http, protocol: HTTP }]
  endpoints: [{ address: 10.9.0.1 }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: otel-collector, namespace: observability }
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 4317, name: grpc, protocol: GRPC }, { number: 4318, name: http, protocol: HTTP }]
  endpoints: [{ address: 10.9.0.2 }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: als, namespace: istio-system }
spec:
  hosts: [als.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9000, name: grpc, protocol: GRPC }]
  endpoints: [{ address: 10.9.0.3 }]
`;

const PROVIDERS: ExtensionProvider[] = [
  { name: 'zipkin', zipkin: { service: 'zipkin.istio-system.svc.cluster.local', port: 9411 } },
  { name: 'jaeger', zipkin: { service: 'istio-system/zipkin.istio-system.svc.cluster.local', port: 9411, maxTagLength: 256 } },
  { name: 'otel-tracing', opentelemetry: { service: 'otel-collector.observability.svc.cluster.local', port: 4317, grpc: { timeout: '5s', initialMetadata: [{ name: 'x-team', value: 'a' }] }, resourceDetectors: { environment: {} } } },
  { name: 'otel-http', opentelemetry: { service: 'otel-collector.observability.svc.cluster.local', port: 4318, http: { path: '/v1/traces', timeout: '2s', headers: [{ name: 'authorization', value: 'Bearer x' }] } } },
  { name: 'datadog', datadog: { service: 'zipkin.istio-system.svc.cluster.local', port: 9411 } },
  { name: 'skywalking', skywalking: { service: 'zipkin.istio-system.svc.cluster.local', port: 9411 } },
  { name: 'lightstep', lightstep: { service: 'zipkin.istio-system.svc.cluster.local', port: 9411 } },
  { name: 'nowhere', zipkin: { service: 'missing.example.com', port: 9411 } },
  { name: 'file-text', envoyFileAccessLog: { path: '/var/log/access.log', logFormat: { text: '%REQ_WITHOUT_QUERY(:PATH)% %RESPONSE_CODE%' } } },
  { name: 'file-json', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { labels: { code: '%RESPONSE_CODE%', path: '%REQ(:PATH)%' } } } },
  { name: 'http-als', envoyHttpAls: { service: 'als.istio-system.svc.cluster.local', port: 9000, additionalRequestHeadersToLog: ['x-user'] } },
  { name: 'tcp-als', envoyTcpAls: { service: 'als.istio-system.svc.cluster.local', port: 9000, logName: 'tcp-log' } },
  { name: 'otel-als', envoyOtelAls: { service: 'otel-collector.observability.svc.cluster.local', port: 4317, logFormat: { text: '%RESPONSE_CODE%', labels: { method: '%REQ(:METHOD)%' } } } },
];

const MESH: MeshConfig = { ...DEFAULT_MESH, extensionProviders: PROVIDERS };

function pushOf(yaml: string, mesh: Partial<MeshConfig> = {}) {
  const loaded = loadYamlText(`${SERVICES}\n---\n${yaml}`, 'x.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  expect(loaded.errors).toEqual([]);
  const store = new ConfigStore();
  for (const o of loaded.objects) store.upsert(o);
  return new PushContext(store.snapshot(), { ...MESH, ...mesh });
}

function viewOf(namespace: string, labels: Record<string, string> = {}, type: 'sidecar' | 'router' = 'sidecar') {
  const p = parseProxy({ id: `${type}~10.0.0.1~app-0.${namespace}~${namespace}.svc.cluster.local`, metadata: { NAMESPACE: namespace, LABELS: labels } });
  if (!p.ok) throw new Error(p.errors);
  return new RecordingView(p.value);
}

function collect() {
  const notes: string[] = [];
  return { notes, note: (m: string) => notes.push(m) };
}

function expectValid(messageName: string, json: unknown) {
  expect(checkEnvoyResource(messageName, json)).toEqual([]);
}

/** An HCM (or tcp_proxy) listener holding the telemetry, through the checker and an encode/decode round trip. */
function roundTrip(filter: Json): Record<string, any> {
  const listener = { name: '0.0.0.0_9080', address: { socket_address: { address: '0.0.0.0', port_value: 9080 } }, filter_chains: [{ filters: [filter] }] };
  expectValid('envoy.config.listener.v3.Listener', listener);
  const encoded = encodeResource(TypeUrl.Listener, listener.name, listener);
  return decodeResource(TypeUrl.Listener, encoded.bytes).filter_chains[0].filters[0].typed_config;
}

function telemetry(push: PushContext, view: RecordingView, direction: TelemetryDirection) {
  const { notes, note } = collect();
  const t = hcmTelemetry(push, view, direction, note);
  for (const a of t.accessLog) expectValid(ACCESS_LOG, a);
  if (t.tracing) expectValid(HCM_TRACING, t.tracing);
  return { ...t, notes };
}

const typedOf = (a: Json) => a.typed_config as Record<string, any>;

describe('selection and merge precedence', () => {
  const yaml = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: istio-system }
spec:
  tracing: [{ providers: [{ name: zipkin }], randomSamplingPercentage: 10 }]
  accessLogging: [{ providers: [{ name: envoy }] }]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: ns-default, namespace: shop }
spec:
  tracing: [{ randomSamplingPercentage: 20 }]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: reviews, namespace: shop }
spec:
  selector: { matchLabels: { app: reviews } }
  tracing: [{ randomSamplingPercentage: 30, customTags: { team: { literal: { value: shop } } } }]
  accessLogging: [{ providers: [{ name: file-text }] }]
`;
  const push = pushOf(yaml);

  it('root < namespace < workload, each level overriding only what it sets', () => {
    const other = telemetryFor(push, viewOf('other'), 'CLIENT');
    expect(other.applied).toEqual(['istio-system/mesh-default']);
    expect(other.tracing).toMatchObject({ ref: 'zipkin', randomSamplingPercentage: 10, disabled: false });

    const shop = telemetryFor(push, viewOf('shop', { app: 'ratings' }), 'CLIENT');
    expect(shop.applied).toEqual(['istio-system/mesh-default', 'shop/ns-default']);
    expect(shop.tracing).toMatchObject({ ref: 'zipkin', randomSamplingPercentage: 20 });

    const reviews = telemetryFor(push, viewOf('shop', { app: 'reviews', version: 'v1' }), 'CLIENT');
    expect(reviews.applied).toEqual(['istio-system/mesh-default', 'shop/ns-default', 'shop/reviews']);
    expect(reviews.tracing).toMatchObject({ ref: 'zipkin', randomSamplingPercentage: 30, customTags: { team: { literal: { value: 'shop' } } } });
    // Providers lists replace: the workload names file-text, so envoy (root) is out of scope.
    expect(reviews.accessLogging?.map((a) => a.ref)).toEqual(['file-text']);
    expect(shop.accessLogging?.map((a) => a.ref)).toEqual(['envoy']);
  });

  it('the built Envoy config follows the merge', () => {
    const t = telemetry(push, viewOf('shop', { app: 'reviews' }), 'outbound');
    expect(t.tracing?.random_sampling).toEqual({ value: 30 });
    expect((t.tracing?.custom_tags as Json[]).map((x) => x.tag)).toContain('team');
    expect(t.accessLog.map((a) => typedOf(a).path)).toEqual(['/var/log/access.log']);
    const ns = telemetry(push, viewOf('shop'), 'outbound');
    expect(ns.tracing?.random_sampling).toEqual({ value: 20 });
    expect(ns.accessLog.map((a) => typedOf(a).path)).toEqual(['/dev/stdout']);
  });

  it('the proxy is read only through the view: namespace and the selectors asked', () => {
    const view = viewOf('shop', { app: 'reviews' });
    telemetryFor(push, view, 'CLIENT');
    expect([...view.reads.keys()].sort()).toEqual(['ns', 'sel:{"app":"reviews"}']);
  });

  it('the oldest selector-less Telemetry of a namespace is the namespace level; a root-namespace proxy gets the root once', () => {
    const p = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: b-second, namespace: shop, creationTimestamp: "2026-01-02T00:00:00Z" }
spec: { tracing: [{ providers: [{ name: zipkin }], randomSamplingPercentage: 2 }] }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: a-first, namespace: shop, creationTimestamp: "2025-12-01T00:00:00Z" }
spec: { tracing: [{ providers: [{ name: zipkin }], randomSamplingPercentage: 1.5 }] }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec: { tracing: [{ providers: [{ name: zipkin }], randomSamplingPercentage: 7 }] }
`);
    expect(telemetryFor(p, viewOf('shop'), 'CLIENT').tracing?.randomSamplingPercentage).toBe(1.5);
    expect(telemetryFor(p, viewOf('istio-system'), 'CLIENT').applied).toEqual(['istio-system/mesh']);
  });

  it('targetRefs: a Gateway API gateway pod named by the Gateway gets the policy; sidecars do not; waypoint targets are noted', () => {
    const p = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: gw, namespace: edge }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: public }]
  tracing: [{ providers: [{ name: zipkin }], randomSamplingPercentage: 42 }]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: svc, namespace: edge }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  tracing: [{ providers: [{ name: zipkin }], randomSamplingPercentage: 99 }]
`);
    const gw = telemetryFor(p, viewOf('edge', { 'gateway.networking.k8s.io/gateway-name': 'public' }, 'router'), 'CLIENT');
    expect(gw.applied).toEqual(['edge/gw']);
    expect(gw.tracing?.randomSamplingPercentage).toBe(42);
    const sidecar = telemetryFor(p, viewOf('edge', { app: 'api' }), 'CLIENT');
    expect(sidecar.applied).toEqual([]);
    expect(sidecar.tracing).toBeUndefined();
    expect(sidecar.notes.join('\n')).toMatch(/Telemetry edge\/svc: targetRef Service\/api attaches to waypoints only/);
  });
});

describe('mode filtering', () => {
  const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec:
  accessLogging:
  - providers: [{ name: envoy }]
    match: { mode: CLIENT }
  - providers: [{ name: http-als }]
    match: { mode: SERVER }
  tracing:
  - providers: [{ name: zipkin }]
  - match: { mode: SERVER }
    randomSamplingPercentage: 50
  - match: { mode: CLIENT }
    disableSpanReporting: true
`);
  it('CLIENT (outbound, gateway) and SERVER (inbound) rules apply to their direction only', () => {
    const out = telemetry(push, viewOf('shop'), 'outbound');
    expect(out.accessLog.map((a) => a.name)).toEqual(['envoy.access_loggers.file']);
    expect(out.tracing).toBeUndefined(); // span reporting disabled for CLIENT
    const gw = telemetry(push, viewOf('istio-system', { istio: 'ingressgateway' }, 'router'), 'gateway');
    expect(gw.accessLog.map((a) => a.name)).toEqual(['envoy.access_loggers.file']);
    const inb = telemetry(push, viewOf('shop'), 'inbound');
    expect(inb.accessLog.map((a) => a.name)).toEqual(['envoy.access_loggers.http_grpc']);
    expect(inb.tracing?.random_sampling).toEqual({ value: 50 });
    expect(inb.tracing?.spawn_upstream_span).toBeUndefined();
  });

  it('disabled turns a provider off at a lower level, and then no MeshConfig fallback applies', () => {
    const p = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec: { accessLogging: [{ providers: [{ name: envoy }] }] }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: quiet, namespace: shop }
spec: { accessLogging: [{ disabled: true }] }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: loud, namespace: shop }
spec:
  selector: { matchLabels: { app: loud } }
  accessLogging: [{ disabled: false }]
`, { accessLogFile: '/dev/stdout' });
    expect(telemetry(p, viewOf('shop'), 'outbound').accessLog).toEqual([]);
    expect(telemetry(p, viewOf('shop', { app: 'loud' }), 'outbound').accessLog).toHaveLength(1);
    expect(telemetry(p, viewOf('other'), 'outbound').accessLog).toHaveLength(1);
  });
});

describe('access log providers', () => {
  it('no Telemetry: MeshConfig accessLogFile (empty ⇒ none), TEXT with Istio\'s default format or JSON', () => {
    expect(telemetry(pushOf(''), viewOf('shop'), 'outbound').accessLog).toEqual([]);
    const text = telemetry(pushOf('', { accessLogFile: '/dev/stdout' }), viewOf('shop'), 'outbound').accessLog;
    expect(text).toEqual([
      {
        name: 'envoy.access_loggers.file',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
          path: '/dev/stdout',
          log_format: { text_format_source: { inline_string: ISTIO_TEXT_LOG_FORMAT } },
        },
      },
    ]);
    expect(ISTIO_TEXT_LOG_FORMAT).toBe(
      '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n',
    );
    const custom = telemetry(pushOf('', { accessLogFile: '/tmp/a.log', accessLogFormat: '%RESPONSE_CODE%' }), viewOf('shop'), 'outbound').accessLog;
    expect(typedOf(custom[0]!).log_format.text_format_source.inline_string).toBe('%RESPONSE_CODE%\n');
    const json = telemetry(pushOf('', { accessLogFile: '/dev/stdout', accessLogEncoding: 'JSON' }), viewOf('shop'), 'outbound').accessLog;
    const fmt = typedOf(json[0]!).log_format;
    expect(Object.keys(fmt.json_format.fields)).toContain('upstream_transport_failure_reason');
    expect(fmt.json_format_options).toEqual({ sort_properties: false });
    const jsonCustom = telemetry(pushOf('', { accessLogFile: '/dev/stdout', accessLogEncoding: 'JSON', accessLogFormat: '{"c":"%RESPONSE_CODE%"}' }), viewOf('shop'), 'outbound').accessLog;
    expect(typedOf(jsonCustom[0]!).log_format.json_format).toEqual({ fields: { c: { stringValue: '%RESPONSE_CODE%' } } });
  });

  it('defaultProviders.accessLogging applies without any Telemetry; the built-in envoy provider follows MeshConfig encoding', () => {
    const push = pushOf('', { defaultProviders: { accessLogging: ['envoy'] }, accessLogEncoding: 'JSON', extensionProviders: [] });
    const logs = telemetry(push, viewOf('shop'), 'inbound').accessLog;
    expect(logs).toHaveLength(1);
    expect(typedOf(logs[0]!).path).toBe('/dev/stdout');
    expect(typedOf(logs[0]!).log_format.json_format).toBeDefined();
  });

  it('envFileAccessLog: text (newline added, REQ_WITHOUT_QUERY formatter) and JSON labels', () => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec: { accessLogging: [{ providers: [{ name: file-text }, { name: file-json }] }] }
`);
    const logs = telemetry(push, viewOf('shop'), 'outbound').accessLog;
    expect(logs.map((a) => typedOf(a).path)).toEqual(['/dev/stdout', '/var/log/access.log']); // sorted by provider name
    expect(typedOf(logs[0]!).log_format).toEqual({
      json_format: { fields: { code: { stringValue: '%RESPONSE_CODE%' }, path: { stringValue: '%REQ(:PATH)%' } } },
      json_format_options: { sort_properties: false },
    });
    expect(typedOf(logs[1]!).log_format).toEqual({
      text_format_source: { inline_string: '%REQ_WITHOUT_QUERY(:PATH)% %RESPONSE_CODE%\n' },
      formatters: [{ name: 'envoy.formatter.req_without_query', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery' } }],
    });
  });

  it('envFileAccessLog with an empty logFormat sets no format (Envoy\'s default); omitEmptyValues is kept', () => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec: { accessLogging: [{ providers: [{ name: plain }, { name: sparse }] }] }
`, {
      extensionProviders: [
        { name: 'plain', envoyFileAccessLog: { path: '/tmp/plain.log', logFormat: {} } },
        { name: 'sparse', envoyFileAccessLog: { omitEmptyValues: true, logFormat: { text: '%RESPONSE_CODE%' } } },
      ],
    });
    const logs = telemetry(push, viewOf('shop'), 'outbound').accessLog;
    expect(typedOf(logs[0]!)).toEqual({ '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/tmp/plain.log' });
    expect(typedOf(logs[1]!)).toMatchObject({ path: '/dev/stdout', log_format: { text_format_source: { inline_string: '%RESPONSE_CODE%\n' }, omit_empty_values: true } });
  });

  it('gRPC ALS (HTTP and TCP) point at the outbound cluster of the provider service; a filter expression becomes the CEL filter', () => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec:
  accessLogging:
  - providers: [{ name: http-als }, { name: tcp-als }]
    filter: { expression: "response.code >= 400" }
`);
    const logs = telemetry(push, viewOf('shop'), 'outbound').accessLog;
    expect(logs).toEqual([
      {
        name: 'envoy.access_loggers.http_grpc',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig',
          common_config: {
            log_name: 'http_envoy_accesslog',
            grpc_service: { envoy_grpc: { cluster_name: 'outbound|9000||als.istio-system.svc.cluster.local', authority: 'als.istio-system.svc.cluster.local' } },
            transport_api_version: 'V3',
            filter_state_objects_to_log: ['upstream_peer', 'downstream_peer'],
          },
          additional_request_headers_to_log: ['x-user'],
        },
        filter: {
          extension_filter: {
            name: 'envoy.access_loggers.extension_filters.cel',
            typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter', expression: 'response.code >= 400' },
          },
        },
      },
      expect.objectContaining({ name: 'envoy.tcp_grpc_access_log' }),
    ]);
    expect(typedOf(logs[1]!).common_config.log_name).toBe('tcp-log');
    const tcp = tcpTelemetry(push, viewOf('shop'), 'outbound', () => {});
    expect(tcp.accessLog).toHaveLength(2);
    const decoded = roundTrip(tcpProxy({ statPrefix: 'outbound|3306||db', cluster: 'outbound|3306||db', accessLog: tcp.accessLog }));
    expect(decoded.access_log[1].typed_config.common_config.log_name).toBe('tcp-log');
    expect(decoded.access_log[0].filter.extension_filter.typed_config.expression).toBe('response.code >= 400');
  });

  it('a provider not in MeshConfig is noted and skipped (seed 011 names otel); with nothing left, MeshConfig accessLogFile applies', () => {
    const yaml = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: custom-access-log, namespace: production }
spec: { accessLogging: [{ providers: [{ name: otel }] }] }
`;
    const t = telemetry(pushOf(yaml), viewOf('production'), 'outbound');
    expect(t.accessLog).toEqual([]);
    expect(t.notes).toContain('access log provider "otel" is not defined in MeshConfig extensionProviders: left out, as istiod does');
    expect(telemetry(pushOf(yaml, { accessLogFile: '/dev/stdout' }), viewOf('production'), 'outbound').accessLog).toHaveLength(1);
  });

  it('a gRPC ALS whose service is not in the registry is noted and skipped', () => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec: { accessLogging: [{ providers: [{ name: http-als }] }] }
`, { extensionProviders: [{ name: 'http-als', envoyHttpAls: { service: 'nope.example.com', port: 9000 } }] });
    const t = telemetry(push, viewOf('shop'), 'outbound');
    expect(t.accessLog).toEqual([]);
    expect(t.notes.join('\n')).toMatch(/access log provider "http-als" \(envoyHttpAls\): could not find service nope\.example\.com/);
  });

  it('envoyOtelAls: noted while the OpenTelemetry common proto is missing; valid once it is in the root', () => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec: { accessLogging: [{ providers: [{ name: otel-als }] }] }
`);
    const before = telemetry(push, viewOf('shop'), 'outbound');
    expect(before.accessLog).toEqual([]);
    expect(before.notes.join('\n')).toMatch(/envoyOtelAls.*opentelemetry\/proto\/common\/v1\/common\.proto/);

    installOtelCommonProto();
    const after = telemetry(push, viewOf('shop'), 'outbound');
    expect(after.accessLog).toEqual([
      {
        name: 'envoy.access_loggers.open_telemetry',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig',
          common_config: {
            log_name: 'otel_envoy_accesslog',
            grpc_service: { envoy_grpc: { cluster_name: 'outbound|4317||otel-collector.observability.svc.cluster.local', authority: 'otel-collector.observability.svc.cluster.local' } },
            transport_api_version: 'V3',
            filter_state_objects_to_log: ['upstream_peer', 'downstream_peer'],
          },
          disable_builtin_labels: true,
          body: { string_value: '%RESPONSE_CODE%' },
          attributes: { values: [{ key: 'method', value: { string_value: '%REQ(:METHOD)%' } }] },
        },
      },
    ]);
  });
});

/**
 * Envoy's OpenTelemetry access logger imports opentelemetry/proto/common/v1/common.proto, which the proto tree does
 * not ship; this adds the messages it uses (from opentelemetry-proto) to the test's root.
 */
function installOtelCommonProto(): void {
  const root = protoRoot();
  const file = 'opentelemetry/proto/common/v1/common.proto';
  protobuf.parse(
    `syntax = "proto3";
package opentelemetry.proto.common.v1;
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7; } }
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }`,
    root,
    { keepCase: true },
  );
  root.files.push(file);
  root.loadSync(['envoy/extensions/access_loggers/open_telemetry/v3/logs_service.proto'], { keepCase: true });
  root.resolveAll();
}

describe('tracing providers', () => {
  const tracedBy = (provider: string, direction: TelemetryDirection = 'outbound', mesh: Partial<MeshConfig> = {}) => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec: { tracing: [{ providers: [{ name: ${provider} }], randomSamplingPercentage: 5 }] }
`, mesh);
    return telemetry(push, viewOf(direction === 'gateway' ? 'istio-system' : 'shop', {}, direction === 'gateway' ? 'router' : 'sidecar'), direction);
  };

  it('zipkin: collector cluster and host, /api/v2/spans, HTTP_JSON, 128-bit ids, sampling and Istio tags', () => {
    const t = tracedBy('zipkin');
    expect(t.tracing).toMatchObject({
      provider: {
        name: 'envoy.tracers.zipkin',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig',
          collector_cluster: 'outbound|9411||zipkin.istio-system.svc.cluster.local',
          collector_endpoint: '/api/v2/spans',
          collector_endpoint_version: 'HTTP_JSON',
          collector_hostname: 'zipkin.istio-system.svc.cluster.local',
          trace_id_128bit: true,
          shared_span_context: { value: false },
        },
      },
      client_sampling: { value: 100 },
      random_sampling: { value: 5 },
      overall_sampling: { value: 100 },
    });
    expect((t.tracing!.custom_tags as Json[]).map((x) => x.tag)).toEqual([
      'istio.authorization.dry_run.allow_policy.name',
      'istio.authorization.dry_run.allow_policy.result',
      'istio.authorization.dry_run.deny_policy.name',
      'istio.authorization.dry_run.deny_policy.result',
      'istio.namespace',
    ]);
    expect(t.requestIdExtension).toEqual({
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig', use_request_id_for_trace_sampling: { value: true } },
    });
    const decoded = roundTrip(httpConnectionManager({ direction: 'outbound', statPrefix: 'outbound_0.0.0.0_9080', rds: '9080', accessLog: t.accessLog, tracing: t.tracing }));
    expect(decoded.tracing.provider.typed_config.collector_cluster).toBe('outbound|9411||zipkin.istio-system.svc.cluster.local');
    expect(decoded.tracing.random_sampling).toEqual({ value: 5 });
  });

  it('a namespace/hostname service and maxTagLength (jaeger as a zipkin provider); gateways spawn an upstream span', () => {
    const t = tracedBy('jaeger', 'gateway');
    expect(t.tracing).toMatchObject({ max_path_tag_length: { value: 256 }, spawn_upstream_span: { value: true } });
  });

  it('opentelemetry over gRPC (timeout, metadata, environment detector) and over HTTP (uri, headers)', () => {
    const grpc = tracedBy('otel-tracing');
    expect(grpc.tracing!.provider).toEqual({
      name: 'envoy.tracers.opentelemetry',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig',
        grpc_service: {
          envoy_grpc: { cluster_name: 'outbound|4317||otel-collector.observability.svc.cluster.local', authority: 'otel-collector.observability.svc.cluster.local' },
          timeout: { seconds: 5, nanos: 0 },
          initial_metadata: [{ key: 'x-team', value: 'a' }],
        },
        resource_detectors: [
          {
            name: 'envoy.tracers.opentelemetry.resource_detectors.environment',
            typed_config: { '@type': 'type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig' },
          },
        ],
      },
    });
    const http = tracedBy('otel-http');
    expect((http.tracing!.provider as Json).typed_config).toMatchObject({
      http_service: {
        http_uri: { uri: 'otel-collector.observability.svc.cluster.local/v1/traces', cluster: 'outbound|4318||otel-collector.observability.svc.cluster.local', timeout: { seconds: 2, nanos: 0 } },
        request_headers_to_add: [{ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'authorization', value: 'Bearer x' } }],
      },
    });
  });

  it('datadog and skywalking', () => {
    const dd = tracedBy('datadog');
    expect((dd.tracing!.provider as Json).typed_config).toMatchObject({ collector_cluster: 'outbound|9411||zipkin.istio-system.svc.cluster.local', service_name: 'istio-proxy' });
    const sw = tracedBy('skywalking');
    expect(sw.tracing).toMatchObject({ provider: { name: 'envoy.tracers.skywalking' }, spawn_upstream_span: { value: true } });
  });

  it('no tracing when the provider cannot be built (lightstep, missing service) or is not a tracer, noted', () => {
    for (const [p, why] of [['lightstep', /Lightstep tracer is deprecated/], ['nowhere', /could not find service missing\.example\.com/], ['file-text', /does not support tracing/]] as const) {
      const t = tracedBy(p);
      expect(t.tracing).toBeUndefined();
      expect(t.notes.join('\n')).toMatch(why);
    }
  });

  it('custom tags: literal, environment, header (Telemetry replaces defaultConfig tags); formatter noted', () => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec:
  tracing:
  - providers: [{ name: zipkin }]
    enableIstioTags: false
    useRequestIdForTraceSampling: false
    customTags:
      lit: { literal: { value: v } }
      env: { environment: { name: POD_NAME, defaultValue: unknown } }
      hdr: { header: { name: x-user } }
      fmt: { formatter: { value: "%REQ(:PATH)%" } }
`, { defaultConfig: { tracing: { customTags: { mesh: { literal: { value: 'm' } } }, maxPathTagLength: 99 } } });
    const t = telemetry(push, viewOf('shop'), 'outbound');
    expect(t.tracing!.custom_tags).toEqual([
      { tag: 'env', environment: { name: 'POD_NAME', default_value: 'unknown' } },
      { tag: 'hdr', request_header: { name: 'x-user' } },
      { tag: 'lit', literal: { value: 'v' } },
    ]);
    expect(t.tracing!.max_path_tag_length).toEqual({ value: 99 });
    expect(t.notes.join('\n')).toMatch(/custom tag "fmt": formatter tags/);
    expect((t.requestIdExtension!.typed_config as Json).use_request_id_for_trace_sampling).toEqual({ value: false });
  });
});

describe('legacy tracing (no Telemetry tracing, no default provider)', () => {
  it('enableTracing (Istio default): sampling from defaultConfig.tracing.sampling, else PILOT_TRACE_SAMPLING 1%; no provider', () => {
    const t = telemetry(pushOf(''), viewOf('shop'), 'outbound');
    expect(t.tracing).toMatchObject({ client_sampling: { value: 100 }, random_sampling: { value: 1 }, overall_sampling: { value: 100 } });
    expect(t.tracing!.provider).toBeUndefined();
    expect(t.requestIdExtension).toBeUndefined();
    const sampled = telemetry(pushOf('', { defaultConfig: { tracing: { sampling: 25, enableIstioTags: false, customTags: { a: { header: { name: 'x-a' } } } } } }), viewOf('shop'), 'inbound');
    expect(sampled.tracing).toEqual({
      client_sampling: { value: 100 },
      random_sampling: { value: 25 },
      overall_sampling: { value: 100 },
      custom_tags: [{ tag: 'a', request_header: { name: 'x-a' } }],
    });
    expect(telemetry(pushOf('', { enableTracing: false }), viewOf('shop'), 'outbound').tracing).toBeUndefined();
  });

  it('defaultProviders.tracing turns on the provider without any Telemetry', () => {
    const t = telemetry(pushOf('', { defaultProviders: { tracing: ['zipkin'] } }), viewOf('shop'), 'inbound');
    expect(t.tracing).toMatchObject({ provider: { name: 'envoy.tracers.zipkin' }, random_sampling: { value: 1 } });
  });
});

describe('metrics', () => {
  it('overrides merge per mode; ALL_METRICS disabled drops the provider', () => {
    const push = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec:
  metrics:
  - providers: [{ name: prometheus }]
    overrides:
    - match: { metric: REQUEST_COUNT }
      tagOverrides: { request_protocol: { operation: REMOVE } }
    - match: { metric: ALL_METRICS, mode: SERVER }
      disabled: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: ns, namespace: shop }
spec:
  metrics:
  - overrides:
    - match: { customMetric: my_metric, mode: CLIENT }
      disabled: true
    - match: { metric: REQUEST_COUNT, mode: CLIENT }
      tagOverrides: { team: { value: "'shop'" } }
`);
    const client = telemetryFor(push, viewOf('shop'), 'CLIENT');
    expect(client.metrics).toEqual([
      {
        ref: 'prometheus',
        provider: { name: 'prometheus', prometheus: {} },
        disabled: false,
        overrides: [
          { metric: 'REQUEST_COUNT', disabled: false, tags: [{ name: 'request_protocol', remove: true, value: '' }, { name: 'team', remove: false, value: "'shop'" }] },
          { metric: 'my_metric', disabled: true, tags: [] },
        ],
      },
    ]);
    const server = telemetryFor(push, viewOf('shop'), 'SERVER');
    expect(server.metrics[0]).toMatchObject({ disabled: true, overrides: [] });
    const stats = metricsOverrides(client, () => {});
    expect(stats[0]!.config.metrics).toEqual([
      { name: 'requests_total', dimensions: { team: "'shop'" }, tags_to_remove: ['request_protocol'] },
      { name: 'my_metric', dimensions: {}, drop: true },
    ]);
    expect(metricsOverrides(server, () => {})).toEqual([]);

    // A later override that matches the mode turns the provider back on (istiod: disabledAllMetricsProviders.Delete).
    const reenabled = pushOf(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh, namespace: istio-system }
spec:
  metrics:
  - providers: [{ name: prometheus }]
    overrides: [{ disabled: true }]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: ns, namespace: shop }
spec: { metrics: [{ overrides: [{ match: { metric: REQUEST_SIZE, mode: SERVER }, disabled: false }] }] }
`);
    expect(telemetryFor(reenabled, viewOf('other'), 'SERVER').metrics[0]!.disabled).toBe(true);
    expect(telemetryFor(reenabled, viewOf('shop'), 'SERVER').metrics[0]).toMatchObject({ disabled: false, overrides: [{ metric: 'REQUEST_SIZE', disabled: false }] });
    expect(telemetryFor(reenabled, viewOf('shop'), 'CLIENT').metrics[0]!.disabled).toBe(true);
  });
});

describe('the user\'s seed Telemetry files', () => {
  const seed = (prefix: string) => {
    const file = fs.readdirSync(SEEDS).find((f) => f.startsWith(prefix));
    if (!file) throw new Error(`no seed ${prefix}`);
    return fs.readFileSync(path.join(SEEDS, file), 'utf8');
  };

  it('011 is refused: accessLogging[].format is not a Telemetry field', () => {
    const loaded = loadYamlText(seed('011-'), '011.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
    expect(loaded.objects).toEqual([]);
    expect(loaded.errors[0]!.errors.map((e) => e.path)).toContain('spec.accessLogging[0].format');
  });

  it('035 (mesh-wide sampling 100% and a literal tag, no provider): tracing only with a default provider', () => {
    const noProvider = telemetry(pushOf(seed('035-')), viewOf('default'), 'outbound');
    expect(noProvider.tracing).toBeUndefined();
    expect(noProvider.notes.join('\n')).toMatch(/names no provider for CLIENT traffic and MeshConfig defaultProviders\.tracing is empty/);
    const t = telemetry(pushOf(seed('035-'), { defaultProviders: { tracing: ['zipkin'] } }), viewOf('default'), 'inbound');
    expect(t.tracing).toMatchObject({ provider: { name: 'envoy.tracers.zipkin' }, random_sampling: { value: 100 } });
    expect(t.tracing!.custom_tags).toContainEqual({ tag: 'my-tag', literal: { value: '123' } });
  });

  it('036 (REQUEST_COUNT tag override for prometheus): the istio.stats config', () => {
    const push = pushOf(seed('036-'));
    for (const mode of ['CLIENT', 'SERVER'] as TelemetryMode[]) {
      const eff = telemetryFor(push, viewOf('default'), mode);
      expect(eff.metrics).toEqual([
        { ref: 'prometheus', provider: { name: 'prometheus', prometheus: {} }, disabled: false, overrides: [{ metric: 'REQUEST_COUNT', disabled: false, tags: [{ name: 'response_code', remove: false, value: 'response.code' }] }] },
      ]);
      expect(metricsOverrides(eff, () => {}, { inbound: mode === 'SERVER' })[0]!.config).toEqual({
        ...(mode === 'SERVER' ? { disable_host_header_fallback: true } : {}),
        metrics: [{ name: 'requests_total', dimensions: { response_code: 'response.code' } }],
      });
    }
  });

  it('051 (jaeger, 100%, two literal tags): a jaeger provider in MeshConfig gives zipkin tracing; without one, a note', () => {
    const missing = telemetry(pushOf(seed('051-'), { extensionProviders: [] }), viewOf('default'), 'outbound');
    expect(missing.tracing).toBeUndefined();
    expect(missing.notes).toContain('tracing provider "jaeger" (Telemetry istio-system/mesh-default) is not defined in MeshConfig extensionProviders: no tracing, as istiod does');
    const t = telemetry(pushOf(seed('051-')), viewOf('default'), 'outbound');
    expect(t.tracing).toMatchObject({ provider: { name: 'envoy.tracers.zipkin' }, random_sampling: { value: 100 }, max_path_tag_length: { value: 256 } });
    expect(t.tracing!.custom_tags).toEqual(
      expect.arrayContaining([
        { tag: 'cluster', literal: { value: 'primary' } },
        { tag: 'environment', literal: { value: 'production' } },
      ]),
    );
    const decoded = roundTrip(httpConnectionManager({ direction: 'inbound', statPrefix: 'inbound_0.0.0.0_9080', routeConfig: { name: 'inbound|9080||' }, accessLog: t.accessLog, tracing: t.tracing }));
    expect(decoded.tracing.custom_tags.map((x: Json) => x.tag)).toContain('environment');
  });
});

describe('builders taken one at a time', () => {
  it('accessLogs and tracing work on an effective config directly', () => {
    const push = pushOf('', { accessLogFile: '/dev/stdout', defaultProviders: { tracing: ['zipkin'] } });
    const eff = telemetryFor(push, viewOf('shop'), 'SERVER');
    const { note } = collect();
    expect(accessLogs(eff, push.mesh, note)).toHaveLength(1);
    const tr = tracing(eff, push.mesh, note);
    expectValid(HCM_TRACING, tr);
    expect(tr).toMatchObject({ provider: { name: 'envoy.tracers.zipkin' } });
  });
});
