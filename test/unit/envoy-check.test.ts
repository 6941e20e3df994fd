/**
 * The strict Envoy resource checker: realistic builder-shaped resources pass, planted mistakes are reported with
 * their JSON path, and PGV rules follow PGV's semantics (unset values, wrappers, oneofs, exclusive ranges). Running it
 * over the generators' output belongs to the scenario tests, which see every resource before it is encoded.
 */
import protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { checkValue, type Rules } from '../../src/proto/pgv-rules.ts';
import { protoRoot } from '../../src/proto/root.ts';
import { jsonToStruct } from '../../src/proto/struct.ts';

type Json = Record<string, any>;
const LISTENER = 'envoy.config.listener.v3.Listener';
const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const ROUTES = 'envoy.config.route.v3.RouteConfiguration';
const CLA = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const T = (name: string) => `type.googleapis.com/${name}`;
const HCM = T('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
const FAULT = T('envoy.extensions.filters.http.fault.v3.HTTPFault');
const ZERO = { seconds: 0, nanos: 0 };
const ads = () => ({ ads: {}, initial_fetch_timeout: ZERO, resource_api_version: 'V3' });
const sds = (name: string) => ({
  name,
  sds_config: {
    api_config_source: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }], set_node_on_first_message_only: true },
    initial_fetch_timeout: ZERO,
    resource_api_version: 'V3',
  },
});

function listener(): Json {
  return {
    name: '0.0.0.0_9080',
    address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
    traffic_direction: 'OUTBOUND',
    listener_filters: [
      { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': T('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector') } },
      { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': T('envoy.extensions.filters.listener.http_inspector.v3.HttpInspector') } },
    ],
    listener_filters_timeout: ZERO,
    continue_on_listener_filters_timeout: true,
    filter_chains: [
      {
        filter_chain_match: { transport_protocol: 'raw_buffer', application_protocols: ['http/1.1', 'h2c'] },
        filters: [
          {
            name: 'envoy.filters.network.rbac',
            typed_config: {
              '@type': T('envoy.extensions.filters.network.rbac.v3.RBAC'),
              stat_prefix: 'tcp.',
              rules: {
                action: 'DENY',
                policies: {
                  'ns[default]-policy[deny-bad]-rule[0]': {
                    permissions: [{ any: true }],
                    principals: [{ authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/bad' } } }],
                  },
                },
              },
            },
          },
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'outbound_0.0.0.0_9080',
              rds: { config_source: ads(), route_config_name: '9080' },
              http_filters: [
                {
                  // An EnvoyFilter-style TypedStruct, with proto3 JSON names in both spellings.
                  name: 'envoy.filters.http.fault',
                  typed_config: {
                    '@type': T('xds.type.v3.TypedStruct'),
                    type_url: FAULT,
                    value: jsonToStruct({ maxActiveFaults: 10, delay: { fixed_delay: '1.5s', percentage: { numerator: 5, denominator: 'HUNDRED' } } }),
                  },
                },
                { name: 'envoy.filters.http.router', typed_config: { '@type': T('envoy.extensions.filters.http.router.v3.Router'), suppress_envoy_headers: true } },
              ],
              use_remote_address: { value: false },
              normalize_path: { value: true },
              path_with_escaped_slashes_action: 'KEEP_UNCHANGED',
              stream_idle_timeout: ZERO,
              max_request_headers_kb: { value: 96 },
              common_http_protocol_options: { idle_timeout: { seconds: 3600, nanos: 0 } },
              upgrade_configs: [{ upgrade_type: 'websocket' }],
              access_log: [{ name: 'envoy.access_loggers.file', typed_config: { '@type': T('envoy.extensions.access_loggers.file.v3.FileAccessLog'), path: '/dev/stdout' } }],
            },
          },
        ],
      },
    ],
  };
}

function cluster(): Json {
  const name = 'outbound|9080|v1|reviews.default.svc.cluster.local';
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { service_name: name, eds_config: ads() },
    connect_timeout: { seconds: 10, nanos: 0 },
    lb_policy: 'LEAST_REQUEST',
    least_request_lb_config: { choice_count: { value: 2 } },
    circuit_breakers: {
      thresholds: [{ max_connections: { value: 4294967295 }, max_pending_requests: { value: 1024 }, max_requests: { value: 4294967295 }, max_retries: { value: 4294967295 }, track_remaining: true }],
    },
    outlier_detection: { consecutive_5xx: { value: 5 }, interval: { seconds: 30, nanos: 0 }, base_ejection_time: { seconds: 30, nanos: 0 }, max_ejection_percent: { value: 50 } },
    common_lb_config: { healthy_panic_threshold: { value: 0 } },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': T('envoy.extensions.upstreams.http.v3.HttpProtocolOptions'),
        common_http_protocol_options: { idle_timeout: { seconds: 3600, nanos: 0 } },
        use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
      },
    },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': T('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'),
        sni: 'outbound_.9080_.v1_.reviews.default.svc.cluster.local',
        common_tls_context: {
          alpn_protocols: ['istio-peer-exchange', 'istio'],
          tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
          tls_certificate_sds_secret_configs: [sds('default')],
          combined_validation_context: {
            default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/reviews' } }] },
            validation_context_sds_secret_config: sds('ROOTCA'),
          },
        },
      },
    },
    metadata: { filter_metadata: { istio: jsonToStruct({ services: [{ host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' }], default_original_port: 9080 }) } },
  };
}

const retryHosts = [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': T('envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate') } }];

function routeConfig(): Json {
  return {
    name: '9080',
    validate_clusters: { value: false },
    ignore_port_in_host_matching: true,
    virtual_hosts: [
      {
        name: 'reviews.default.svc.cluster.local:9080',
        domains: ['reviews.default.svc.cluster.local', 'reviews', 'reviews.default', '10.96.0.10'],
        include_request_attempt_count: true,
        routes: [
          {
            name: 'canary',
            match: { prefix: '/', case_sensitive: { value: true }, headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] },
            route: {
              cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
              timeout: ZERO,
              retry_policy: { num_retries: { value: 2 }, retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes', retry_host_predicate: retryHosts, host_selection_retry_max_attempts: 5 },
            },
            metadata: { filter_metadata: { istio: jsonToStruct({ config: '/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews' }) } },
            typed_per_filter_config: {
              'envoy.filters.http.fault': {
                '@type': FAULT,
                delay: { fixed_delay: { seconds: 5, nanos: 0 }, percentage: { numerator: 100000, denominator: 'MILLION' } },
                abort: { http_status: 503, percentage: { numerator: 500000, denominator: 'MILLION' } },
              },
            },
          },
          {
            name: 'split',
            match: { safe_regex: { regex: '/api/v[0-9]+/.*' } },
            route: {
              weighted_clusters: { clusters: [{ name: 'outbound|9080|v1|reviews.default.svc.cluster.local', weight: { value: 90 } }, { name: 'outbound|9080|v3|reviews.default.svc.cluster.local', weight: { value: 10 } }] },
              timeout: { seconds: 30, nanos: 0 },
              retry_policy: {
                num_retries: { value: 3 },
                retry_on: '5xx,connect-failure,retriable-status-codes',
                retriable_status_codes: [503],
                per_try_timeout: { seconds: 10, nanos: 0 },
                retry_back_off: { base_interval: { seconds: 0, nanos: 25_000_000 } },
                retry_host_predicate: retryHosts,
                host_selection_retry_max_attempts: 5,
                retry_priority: { name: 'envoy.retry_priorities.previous_priorities', typed_config: { '@type': T('envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig'), update_frequency: 2 } },
              },
              hash_policy: [{ header: { header_name: 'x-user' } }, { cookie: { name: 'session', ttl: { seconds: 60, nanos: 0 } } }],
            },
          },
          { name: 'moved', match: { path: '/old' }, redirect: { path_redirect: '/new', response_code: 'PERMANENT_REDIRECT' } },
          { match: { prefix: '/' }, direct_response: { status: 404, body: { inline_string: 'not found' } } },
        ],
      },
    ],
  };
}

function loadAssignment(): Json {
  const ep = (address: string, weight: number) => ({
    endpoint: { address: { socket_address: { address, port_value: 9080 } } },
    health_status: 'HEALTHY',
    load_balancing_weight: { value: weight },
    metadata: { filter_metadata: { 'envoy.transport_socket_match': jsonToStruct({ tlsMode: 'istio' }) } },
  });
  return {
    cluster_name: 'outbound|9080||reviews.default.svc.cluster.local',
    endpoints: [
      { locality: { region: 'us-east1', zone: 'us-east1-b', sub_zone: '' }, load_balancing_weight: { value: 2 }, lb_endpoints: [ep('10.1.0.1', 1), ep('10.1.0.2', 1)] },
      { locality: { region: 'us-west1', zone: 'us-west1-a', sub_zone: '' }, load_balancing_weight: { value: 1 }, lb_endpoints: [ep('10.2.0.1', 1)], priority: 1 },
    ],
    policy: { overprovisioning_factor: { value: 140 } },
  };
}

/** The HCM of the test listener (filters[1]). */
const hcmOf = (l: Json) => l.filter_chains[0].filters[1].typed_config;

describe('checkEnvoyResource: valid resources', () => {
  it('accepts a Listener with an HCM over RDS, a TypedStruct filter and the router', () => {
    expect(checkEnvoyResource(LISTENER, listener())).toEqual([]);
  });
  it('accepts an EDS Cluster with circuit breakers and an UpstreamTlsContext', () => {
    expect(checkEnvoyResource(CLUSTER, cluster())).toEqual([]);
  });
  it('accepts a RouteConfiguration with weighted clusters, retries and a per-route fault', () => {
    expect(checkEnvoyResource(ROUTES, routeConfig())).toEqual([]);
  });
  it('accepts a ClusterLoadAssignment', () => {
    expect(checkEnvoyResource(CLA, loadAssignment())).toEqual([]);
  });
  it('names an unknown resource type', () => {
    expect(checkEnvoyResource('envoy.config.nope.v3.Nope', {})).toEqual(['(root): unknown message type envoy.config.nope.v3.Nope']);
  });
});

describe('checkEnvoyResource: planted violations', () => {
  const one = (name: string, json: Json) => expect(checkEnvoyResource(name, json));

  it('an unknown field', () => {
    const c = cluster();
    c.circuit_breakers.thresholds[0].max_connection = { value: 1 };
    one(CLUSTER, c).toEqual(['circuit_breakers.thresholds[0].max_connection: unknown field of envoy.config.cluster.v3.CircuitBreakers.Thresholds']);
  });
  it('an unknown nested @type', () => {
    const l = listener();
    hcmOf(l).http_filters[1].typed_config['@type'] = T('envoy.extensions.filters.http.routr.v3.Router');
    one(LISTENER, l).toEqual([
      `filter_chains[0].filters[1].typed_config.http_filters[1].typed_config: cannot resolve @type ${T('envoy.extensions.filters.http.routr.v3.Router')}`,
    ]);
  });
  it('two members of a oneof', () => {
    const l = listener();
    hcmOf(l).route_config = { name: 'inline', virtual_hosts: [{ name: 'all', domains: ['*'] }] };
    one(LISTENER, l).toEqual(['filter_chains[0].filters[1].typed_config: more than one member of oneof route_specifier set: rds, route_config']);
  });
  it('a virtual host without domains', () => {
    const l = listener();
    delete hcmOf(l).rds;
    hcmOf(l).route_config = { name: 'inline', virtual_hosts: [{ name: 'all', domains: [] }] };
    one(LISTENER, l).toEqual(['filter_chains[0].filters[1].typed_config.route_config.virtual_hosts[0].domains: at least 1 item required (validate.rules repeated.min_items)']);
  });
  it('an empty cluster name, and a missing one (proto3 default "")', () => {
    one(CLUSTER, { ...cluster(), name: '' }).toEqual(['name: at least 1 character required (validate.rules string.min_len)']);
    const { name: _name, ...unnamed } = cluster();
    one(CLUSTER, unnamed).toEqual(['name: at least 1 character required (validate.rules string.min_len)']);
  });
  it('a connect_timeout of 0 (duration gt 0s); an absent one is fine (unset durations are not checked)', () => {
    one(CLUSTER, { ...cluster(), connect_timeout: ZERO }).toEqual(['connect_timeout: must be greater than 0s, got 0s (validate.rules duration.gt)']);
    const { connect_timeout: _t, ...noTimeout } = cluster();
    one(CLUSTER, noTimeout).toEqual([]);
  });
  it('a header name with a newline (HTTP_HEADER_NAME, strict: false)', () => {
    const r = routeConfig();
    r.virtual_hosts[0].routes[0].match.headers[0].name = 'end-user\nx';
    one(ROUTES, r).toEqual(['virtual_hosts[0].routes[0].match.headers[0].name: "end-user\\nx" is not a valid HTTP header name (no NUL, CR or LF) (validate.rules string.well_known_regex)']);
  });
  it('an unknown enum name, and an undefined enum number', () => {
    one(CLUSTER, { ...cluster(), lb_policy: 'LEAST_CONN' }).toEqual(['lb_policy: unknown enum value "LEAST_CONN" for envoy.config.cluster.v3.Cluster.LbPolicy']);
    one(CLUSTER, { ...cluster(), lb_policy: 42 }).toEqual([
      'lb_policy: 42 is not a defined value of enum envoy.config.cluster.v3.Cluster.LbPolicy',
      'lb_policy: 42 is not a defined value of envoy.config.cluster.v3.Cluster.LbPolicy (validate.rules enum.defined_only)',
    ]);
  });
  it('required oneofs left unset: RouteMatch.path_specifier, and Route.action (required too, in this Envoy tree)', () => {
    const r = routeConfig();
    r.virtual_hosts[0].routes[2].match = {};
    one(ROUTES, r).toEqual([
      'virtual_hosts[0].routes[2].match: one of prefix, path, safe_regex, connect_matcher, path_separated_prefix, path_match_policy must be set (validate.required oneof path_specifier)',
    ]);
    delete r.virtual_hosts[0].routes[2].redirect;
    r.virtual_hosts[0].routes[2].match = { path: '/old' };
    one(ROUTES, r).toEqual(['virtual_hosts[0].routes[2]: one of route, redirect, direct_response, filter_action, non_forwarding_action must be set (validate.required oneof action)']);
  });
  it('a TypedStruct with an unknown inner field', () => {
    const l = listener();
    hcmOf(l).http_filters[0].typed_config.value = jsonToStruct({ maxActiveFaults: 10, delay_percent: 5 });
    one(LISTENER, l).toEqual(['filter_chains[0].filters[1].typed_config.http_filters[0].typed_config.value.delay_percent: unknown field of envoy.extensions.filters.http.fault.v3.HTTPFault']);
  });
  it('TypedStruct payloads are proto3 JSON: wrong kinds, rules and unresolvable type URLs are reported', () => {
    const l = listener();
    const ts = hcmOf(l).http_filters[0].typed_config;
    ts['@type'] = T('udpa.type.v1.TypedStruct');
    ts.value = jsonToStruct({ maxActiveFaults: 'ten', delay: { fixedDelay: '0s', percentage: { numerator: 5 } }, abort: { httpStatus: 99, percentage: {} } });
    one(LISTENER, l).toEqual([
      'filter_chains[0].filters[1].typed_config.http_filters[0].typed_config.value.delay.fixed_delay: must be greater than 0s, got 0s (validate.rules duration.gt)',
      'filter_chains[0].filters[1].typed_config.http_filters[0].typed_config.value.abort.http_status: must be inside range [200, 600), got 99 (validate.rules uint32.gte/lt)',
      'filter_chains[0].filters[1].typed_config.http_filters[0].typed_config.value.max_active_faults: expected an integer (uint32), got string "ten"',
    ]);
    ts.type_url = T('envoy.extensions.filters.http.nope.v3.Nope');
    one(LISTENER, l).toEqual([`filter_chains[0].filters[1].typed_config.http_filters[0].typed_config.type_url: cannot resolve ${T('envoy.extensions.filters.http.nope.v3.Nope')}`]);
  });
  it('wrong JSON kinds, which protobufjs would coerce or throw on', () => {
    const c = cluster();
    c.eds_cluster_config.service_name = 7;
    c.circuit_breakers.thresholds[0].max_requests = 1000;
    c.outlier_detection.consecutive_5xx = { value: -1 };
    c.typed_extension_protocol_options = [];
    c.transport_socket.typed_config.common_tls_context.alpn_protocols = 'istio';
    one(CLUSTER, c).toEqual([
      'eds_cluster_config.service_name: expected a string, got number 7',
      'circuit_breakers.thresholds[0].max_requests: expected an object (google.protobuf.UInt32Value), got number 1000',
      'typed_extension_protocol_options: expected an object (map<string, Any>), got a list',
      'outlier_detection.consecutive_5xx.value: -1 is out of range for uint32',
      'transport_socket.typed_config.common_tls_context.alpn_protocols: expected a list, got string "istio"',
    ]);
  });
  it('Struct spellings protobufjs would drop: snake_case Value fields and plain JSON', () => {
    const e = loadAssignment();
    e.endpoints[0].lb_endpoints[0].metadata.filter_metadata.istio = { fields: { workload: { string_value: 'reviews-v1' } } };
    e.endpoints[0].lb_endpoints[1].metadata.filter_metadata.istio = { workload: 'reviews-v1' };
    one(CLA, e).toEqual([
      'endpoints[0].lb_endpoints[0].metadata.filter_metadata["istio"].fields["workload"].string_value: unknown field of google.protobuf.Value (the field is spelled stringValue)',
      'endpoints[0].lb_endpoints[1].metadata.filter_metadata["istio"]: google.protobuf.Struct must be written as {fields: {key: {stringValue: …}}}; plain keys are dropped: workload',
    ]);
  });
  it('an Any without @type, a negative duration', () => {
    const r = routeConfig();
    r.virtual_hosts[0].routes[0].typed_per_filter_config['envoy.filters.http.fault'] = { abort: {} };
    r.virtual_hosts[0].routes[1].route.timeout = { seconds: -1, nanos: 0 };
    one(ROUTES, r).toEqual([
      'virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.fault"]: Any has no @type',
      'virtual_hosts[0].routes[1].route.timeout: Envoy expects a positive duration',
    ]);
  });
  it('wrapper rules apply to .value when the wrapper is set, and not when it is unset', () => {
    const c = cluster();
    c.least_request_lb_config.choice_count = { value: 1 };
    one(CLUSTER, c).toEqual(['least_request_lb_config.choice_count: must be greater than or equal to 2, got 1 (validate.rules uint32.gte)']);
    c.least_request_lb_config.choice_count = {}; // set, holding the default 0
    one(CLUSTER, c).toEqual(['least_request_lb_config.choice_count: must be greater than or equal to 2, got 0 (validate.rules uint32.gte)']);
    delete c.least_request_lb_config.choice_count;
    one(CLUSTER, c).toEqual([]);
    const l = listener();
    hcmOf(l).max_request_headers_kb = { value: 9000 };
    one(LISTENER, l).toEqual(['filter_chains[0].filters[1].typed_config.max_request_headers_kb: must be inside range (0, 8192], got 9000 (validate.rules uint32.gt/lte)']);
  });
  it('a oneof member is checked only when it is the member set', () => {
    const r = routeConfig();
    r.virtual_hosts[0].routes[1].match = { path_separated_prefix: '/api/' }; // pattern forbids a trailing slash
    one(ROUTES, r).toEqual(['virtual_hosts[0].routes[1].match.path_separated_prefix: "/api/" does not match pattern "^[^?#]+[^?#/]$" (validate.rules string.pattern)']);
    r.virtual_hosts[0].routes[1].match = { prefix: '/api' }; // path_separated_prefix unset: its pattern is not applied to ""
    one(ROUTES, r).toEqual([]);
  });
  it('enum not_in on a real field (SubjectAltNameMatcher.san_type must not be SAN_TYPE_UNSPECIFIED)', () => {
    const c = cluster();
    delete c.transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].san_type;
    one(CLUSTER, c).toEqual([
      'transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].san_type: must not be one of [SAN_TYPE_UNSPECIFIED], got SAN_TYPE_UNSPECIFIED (validate.rules enum.not_in)',
    ]);
  });
});

describe('PGV rules on a synthetic message', () => {
  beforeAll(() => {
    // Added to the shared root only in this test process: covers rule kinds Envoy's protos use rarely or never.
    protobuf.parse(
      `syntax = "proto3";
      package mizzen.checktest;
      message Inner { string name = 1 [(validate.rules).string.min_len = 1]; }
      message Off { option (validate.disabled) = true; string name = 1 [(validate.rules).string.min_len = 1]; Inner inner = 2; }
      message Rules {
        enum Status { UNKNOWN = 0; OK = 1; }
        int32 outside = 1 [(validate.rules).int32 = {lt: 10, gt: 20}];
        repeated string hosts = 2 [(validate.rules).repeated = {min_items: 1, max_items: 3, unique: true, items: {string: {hostname: true}}}];
        map<string, google.protobuf.Duration> timeouts = 3 [(validate.rules).map = {min_pairs: 1, keys: {string: {prefix: "t-"}}, values: {duration: {gte: {seconds: 1}}}}];
        google.protobuf.Any config = 4 [(validate.rules).any = {required: true, in: ["type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"]}];
        google.protobuf.Timestamp at = 5 [(validate.rules).timestamp = {gt: {seconds: 0}}];
        bytes key = 6 [(validate.rules).bytes = {min_len: 2, max_len: 4}];
        Inner skipped = 7 [(validate.rules).message.skip = true];
        Inner inner = 8 [(validate.rules).message.required = true];
        optional string opt = 9 [(validate.rules).string.min_len = 3];
        oneof choice { option (validate.required) = true; string a = 10; uint32 b = 11 [(validate.rules).uint32.gt = 5]; }
        google.protobuf.UInt32Value wrapped = 12 [(validate.rules).uint32 = {in: [1, 2]}];
        Status status = 13 [(validate.rules).enum = {defined_only: true, not_in: [0]}];
        Off off = 14;
      }`,
      protoRoot(),
      { keepCase: true },
    );
    protoRoot().resolveAll();
  });
  const RULES = 'mizzen.checktest.Rules';
  const valid = (): Json => ({
    outside: 25,
    hosts: ['a.example.com', 'b'],
    timeouts: { 't-read': { seconds: 1, nanos: 0 } },
    config: { '@type': T('envoy.extensions.filters.http.router.v3.Router') },
    at: { seconds: 1_700_000_000, nanos: 0 },
    key: Buffer.from('abc').toString('base64'),
    skipped: {},
    inner: { name: 'x' },
    a: '',
    wrapped: { value: 2 },
    status: 'OK',
    off: { inner: {} },
  });

  it('a valid message passes; validate.disabled and message.skip turn the rules off below them', () => {
    expect(checkEnvoyResource(RULES, valid())).toEqual([]);
  });
  it('every rule kind reports', () => {
    const v = {
      ...valid(),
      outside: 15,
      hosts: ['a', 'a', 'bad_host', 'd'],
      timeouts: { read: { seconds: 0, nanos: 500_000_000 } },
      config: { '@type': T('envoy.extensions.filters.http.fault.v3.HTTPFault') },
      at: { seconds: 0, nanos: 0 },
      key: new Uint8Array(5),
      inner: undefined,
      opt: 'ab',
      a: undefined,
      wrapped: { value: 3 },
      status: 'UNKNOWN',
    };
    expect(checkEnvoyResource(RULES, v)).toEqual([
      'outside: must be outside range [10, 20], got 15 (validate.rules int32.gt/lt)',
      'hosts: at most 3 items allowed, got 4 (validate.rules repeated.max_items)',
      'hosts: items must be unique, "a" repeats (validate.rules repeated.unique)',
      'hosts[2]: "bad_host" is not a hostname (validate.rules string.hostname)',
      'timeouts["read"]: must start with "t-", got "read" (validate.rules string.prefix)',
      'timeouts["read"]: must be greater than or equal to 1s, got 0.5s (validate.rules duration.gte)',
      `config: type must be one of ["${T('envoy.extensions.filters.http.router.v3.Router')}"], got "${FAULT}" (validate.rules any.in)`,
      'at: must be greater than 1970-01-01T00:00:00.000Z, got 1970-01-01T00:00:00.000Z (validate.rules timestamp.gt)',
      'key: at most 4 bytes allowed, got 5 (validate.rules bytes.max_len)',
      'inner: value is required (validate.rules message.required)',
      'opt: at least 3 characters required (validate.rules string.min_len)',
      'wrapped: must be one of [1, 2], got 3 (validate.rules uint32.in)',
      'status: must not be one of [UNKNOWN], got UNKNOWN (validate.rules enum.not_in)',
      '(root): one of a, b must be set (validate.required oneof choice)',
    ]);
  });
  it('absent containers count as empty; a oneof member rule applies once set; Any required', () => {
    const { hosts: _h, timeouts: _t, config: _c, a: _a, ...rest } = valid();
    expect(checkEnvoyResource(RULES, { ...rest, b: 3 })).toEqual([
      'hosts: at least 1 item required (validate.rules repeated.min_items)',
      'timeouts: at least 1 pair required (validate.rules map.min_pairs)',
      'config: value is required (validate.rules any.required)',
      'b: must be greater than 5, got 3 (validate.rules uint32.gt)',
    ]);
  });
});

describe('pgv-rules checkValue', () => {
  const run = (kind: string, r: Rules, v: unknown) => {
    const out: string[] = [];
    checkValue(kind, r, v, (m, rule) => out.push(`${m} (${rule})`));
    return out;
  };
  it('numeric ranges: inclusive edges, exclusive (reversed) ranges, const, in, not_in, ignore_empty', () => {
    expect(run('uint32', { gte: 1, lte: 5 }, 5)).toEqual([]);
    expect(run('uint32', { gte: 1, lte: 5 }, 6)).toEqual(['must be inside range [1, 5], got 6 (uint32.gte/lte)']);
    expect(run('int64', { lte: 10, gte: 20 }, 10)).toEqual([]);
    expect(run('int64', { lte: 10, gte: 20 }, 20)).toEqual([]);
    expect(run('int64', { lte: 10, gte: 20 }, 11)).toEqual(['must be outside range (10, 20), got 11 (int64.gte/lte)']);
    expect(run('double', { lt: 1 }, 1)).toEqual(['must be less than 1, got 1 (double.lt)']);
    expect(run('double', { lte: 1 }, 1.5)).toEqual(['must be less than or equal to 1, got 1.5 (double.lte)']);
    expect(run('int32', { const: 3 }, 4)).toEqual(['must equal 3, got 4 (int32.const)']);
    expect(run('int32', { not_in: [0, 4] }, 4)).toEqual(['must not be one of [0, 4], got 4 (int32.not_in)']);
    expect(run('int32', { gt: 5, ignore_empty: true }, 0)).toEqual([]);
  });
  it('strings: runes vs bytes, affixes, in/not_in, well-known formats', () => {
    expect(run('string', { max_len: 2 }, '😀😀')).toEqual([]);
    expect(run('string', { max_bytes: 4 }, '😀😀')).toEqual(['at most 4 bytes allowed, got 8 (string.max_bytes)']);
    expect(run('string', { len: 3 }, 'ab')).toEqual(['must be exactly 3 characters long (string.len)']);
    expect(run('string', { suffix: '.local', contains: 'svc', not_contains: 'x' }, 'a.svc.localx')).toEqual([
      'must end with ".local", got "a.svc.localx" (string.suffix)',
      'must not contain "x", got "a.svc.localx" (string.not_contains)',
    ]);
    expect(run('string', { in: ['http', 'https'] }, 'ftp')).toEqual(['must be one of ["http","https"], got "ftp" (string.in)']);
    expect(run('string', { ip: true }, '10.0.0.1')).toEqual([]);
    expect(run('string', { ipv6: true }, '10.0.0.1')).toEqual(['"10.0.0.1" is not an IPv6 address (string.ipv6)']);
    expect(run('string', { email: true }, 'a@b.example')).toEqual([]);
    expect(run('string', { uri: true }, '/relative')).toEqual(['"/relative" is not an absolute URI (string.uri)']);
    expect(run('string', { address: true }, 'reviews.default')).toEqual([]);
    expect(run('string', { uuid: true }, 'nope')).toEqual(['"nope" is not a UUID (string.uuid)']);
    expect(run('string', { min_len: 1, ignore_empty: true }, '')).toEqual([]);
  });
  it('HTTP header regexes: strict by default (RFC 7230 token / no control characters), loose with strict: false', () => {
    expect(run('string', { well_known_regex: 'HTTP_HEADER_NAME' }, ':authority')).toEqual([]);
    expect(run('string', { well_known_regex: 'HTTP_HEADER_NAME' }, 'a b')).toEqual(['"a b" is not a valid HTTP header name (RFC 7230 token) (string.well_known_regex)']);
    expect(run('string', { well_known_regex: 'HTTP_HEADER_NAME', strict: false }, 'a b')).toEqual([]);
    expect(run('string', { well_known_regex: 'HTTP_HEADER_VALUE' }, 'a\tb')).toEqual([]);
    expect(run('string', { well_known_regex: 'HTTP_HEADER_VALUE' }, 'a\u0001b')).toEqual(['"a\\u0001b" is not a valid HTTP header value (no control characters) (string.well_known_regex)']);
    expect(run('string', { well_known_regex: 'HTTP_HEADER_VALUE', strict: false }, 'a\u0001b')).toEqual([]);
    expect(run('string', { well_known_regex: 'HTTP_HEADER_VALUE', strict: false }, 'a\rb')).toEqual(['"a\\rb" is not a valid HTTP header value (no NUL, CR or LF) (string.well_known_regex)']);
  });
  it('durations, bools, bytes', () => {
    expect(run('duration', { lt: { seconds: 9000000000 }, gte: { nanos: 1000000 } }, 999_999n)).toEqual(['must be inside range [0.001s, 9000000000s), got 0.000999999s (duration.gte/lt)']);
    expect(run('duration', { in: [{ seconds: 1 }, { seconds: 2 }] }, 1_000_000_000n)).toEqual([]);
    expect(run('bool', { const: true }, false)).toEqual(['must equal true, got false (bool.const)']);
    expect(run('bytes', { prefix: 'ab', ipv4: true }, new Uint8Array([0x61, 0x62, 1]))).toEqual(['must be an IPv4 address (4 bytes) (bytes.ipv4)']);
  });
});
