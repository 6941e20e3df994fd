/**
 * The effective Telemetry (model/telemetry.ts) as Envoy config: HCM / tcp_proxy `access_log` entries
 * (pilot/pkg/model/telemetry_logging.go, pilot/pkg/networking/core/accesslog.go), HCM `tracing`
 * (pilot/pkg/networking/core/tracing.go), and the per-metric overrides of Istio's stats filter, which is an Istio
 * proxy extension (`istio.stats`, `stats.PluginConfig`) with no Envoy proto: those are returned as a plain object and
 * reported through `note`, never put into a resource.
 */
import type { CustomTag } from '../../config/kinds/telemetry.ts';
import type { MeshConfig, ProviderHeader, ProviderLogFormat, ProxyTracingCustomTag } from '../../model/mesh.ts';
import type { ProxyView } from '../../model/proxy-view.ts';
import type { PushContext } from '../../model/push-context.ts';
import { telemetryFor, type EffectiveAccessLog, type EffectiveTelemetry, type ResolvedProvider } from '../../model/telemetry.ts';
import { ensureType } from '../../proto/root.ts';
import { compact, duration, struct, type Json } from './common.ts';

type Note = (message: string) => void;
const typed = (name: string, body: Json): Json => ({ '@type': `type.googleapis.com/${name}`, ...body });

// ---------------------------------------------------------------------------------------------------------------
// Message types. Some extensions cannot be loaded from the tree (the OpenTelemetry access logger needs
// opentelemetry/proto/common/v1/common.proto, which it lacks): those are generated only when their type loads.

const FILE_LOG = 'envoy.extensions.access_loggers.file.v3.FileAccessLog';
const HTTP_GRPC_LOG = 'envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig';
const TCP_GRPC_LOG = 'envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig';
const OTEL_LOG = 'envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig';
const CEL_FILTER = 'envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter';
const REQ_WITHOUT_QUERY = 'envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery';
const ENV_DETECTOR = 'envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig';
const DYNATRACE_DETECTOR = 'envoy.extensions.tracers.opentelemetry.resource_detectors.v3.DynatraceResourceDetectorConfig';

/** Whether a typed_config of this message type can be encoded (its proto loads from the pinned tree). */
export const messageAvailable = (name: string): boolean => ensureType(name);

// ---------------------------------------------------------------------------------------------------------------
// Access logs

/** Istio's default text access-log format (telemetry_logging.go EnvoyTextLogFormat). */
export const ISTIO_TEXT_LOG_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% ' +
  '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ' +
  '%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/** Istio's default JSON access-log labels (EnvoyJSONLogFormatIstio). */
export const ISTIO_JSON_LOG_FORMAT: Record<string, string> = {
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
};

/** Filter state the peer-metadata filters write (Istio ≥ 1.24 keys), logged by the gRPC access loggers. */
const PEER_FILTER_STATE = ['upstream_peer', 'downstream_peer'];

/** `%REQ_WITHOUT_QUERY(…)%` needs its formatter extension (accessLogTextFormatters / accessLogJSONFormatters). */
function formatters(texts: readonly string[]): Json[] | undefined {
  if (!texts.some((t) => t.includes('%REQ_WITHOUT_QUERY'))) return undefined;
  return [{ name: 'envoy.formatter.req_without_query', typed_config: typed(REQ_WITHOUT_QUERY, {}) }];
}

/** "Istio will insert a newline on all formats (if missing)". */
const textFormat = (text: string) => (text === '' ? ISTIO_TEXT_LOG_FORMAT : text.endsWith('\n') ? text : `${text}\n`);

function textLogFormat(text: string, omitEmpty = false): Json {
  const format = textFormat(text);
  return compact({ text_format_source: { inline_string: format }, omit_empty_values: omitEmpty || undefined, formatters: formatters([format]) });
}

function jsonLogFormat(labels: Record<string, unknown> | undefined, omitEmpty = false): Json {
  const fields = labels && Object.keys(labels).length > 0 ? labels : ISTIO_JSON_LOG_FORMAT;
  const texts = Object.values(fields).filter((v): v is string => typeof v === 'string');
  return compact({
    json_format: struct(fields),
    json_format_options: { sort_properties: false },
    omit_empty_values: omitEmpty || undefined,
    formatters: formatters(texts),
  });
}

const fileLog = (path: string, logFormat: Json): Json => ({ name: 'envoy.access_loggers.file', typed_config: typed(FILE_LOG, { path, log_format: logFormat }) });

/** FileAccessLogFromMeshConfig: MeshConfig accessLogEncoding / accessLogFormat. */
function meshFileLog(path: string, mesh: MeshConfig, note: Note): Json {
  if (mesh.accessLogEncoding !== 'JSON') return fileLog(path, textLogFormat(mesh.accessLogFormat));
  let labels: Record<string, unknown> | undefined;
  if (mesh.accessLogFormat) {
    try {
      const parsed: unknown = JSON.parse(mesh.accessLogFormat);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) labels = parsed as Record<string, unknown>;
      else throw new Error('not a JSON object');
    } catch (e) {
      note(`MeshConfig accessLogFormat is not a JSON object (${(e as Error).message}): Istio's default JSON log format is used`);
    }
  }
  return fileLog(path, jsonLogFormat(labels));
}

const envoyGrpc = (p: ResolvedProvider) => ({ envoy_grpc: { cluster_name: p.cluster!.name, authority: p.cluster!.hostname } });

function commonGrpc(p: ResolvedProvider, logName: string, filterState: string[] | undefined): Json {
  return {
    log_name: logName,
    grpc_service: envoyGrpc(p),
    transport_api_version: 'V3',
    filter_state_objects_to_log: filterState?.length ? filterState : PEER_FILTER_STATE,
  };
}

function otelLog(p: ResolvedProvider, cfg: NonNullable<ResolvedProvider['provider']['envoyOtelAls']>): Json {
  const format: ProviderLogFormat = cfg.logFormat ?? {};
  const body = format.text || ISTIO_TEXT_LOG_FORMAT;
  const labels = Object.entries(format.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const texts = [body, ...labels.map(([, v]) => String(v))];
  return {
    name: 'envoy.access_loggers.open_telemetry',
    typed_config: typed(
      OTEL_LOG,
      compact({
        common_config: commonGrpc(p, cfg.logName || 'otel_envoy_accesslog', undefined),
        disable_builtin_labels: true,
        body: { string_value: body },
        // ConvertStructToAttributeKeyValues keeps string values only (GetStringValue).
        attributes: labels.length > 0 ? { values: labels.map(([key, v]) => ({ key, value: { string_value: typeof v === 'string' ? v : '' } })) } : undefined,
        formatters: formatters(texts),
      }),
    ),
  };
}

/** telemetryAccessLog: one provider → an AccessLog, or undefined when it logs nothing here (noted when unexpected). */
function providerLog(entry: EffectiveAccessLog & { provider: ResolvedProvider }, mesh: MeshConfig, note: Note): Json | undefined {
  const rp = entry.provider;
  const p = rp.provider;
  const needsCluster = (kind: string) => {
    if (rp.cluster) return false;
    note(`access log provider "${p.name}" (${kind}): ${rp.clusterError ?? 'no service'}; left out, as istiod does`);
    return true;
  };
  if (p.envoyFileAccessLog) {
    const f = p.envoyFileAccessLog;
    if (p.name === 'envoy' && !f.logFormat && !f.omitEmptyValues) return meshFileLog(f.path || '/dev/stdout', mesh, note);
    const lf = f.logFormat;
    const path = f.path || '/dev/stdout';
    if (lf && lf.text === undefined && lf.labels === undefined) {
      // A logFormat with neither member: istiod sets no format, so Envoy's own default applies.
      return { name: 'envoy.access_loggers.file', typed_config: typed(FILE_LOG, { path }) };
    }
    return fileLog(path, lf?.labels !== undefined ? jsonLogFormat(lf.labels, f.omitEmptyValues) : textLogFormat(lf?.text ?? '', f.omitEmptyValues));
  }
  if (p.envoyHttpAls) {
    const a = p.envoyHttpAls;
    if (needsCluster('envoyHttpAls')) return undefined;
    return {
      name: 'envoy.access_loggers.http_grpc',
      typed_config: typed(
        HTTP_GRPC_LOG,
        compact({
          common_config: commonGrpc(rp, a.logName || 'http_envoy_accesslog', a.filterStateObjectsToLog),
          additional_request_headers_to_log: a.additionalRequestHeadersToLog,
          additional_response_headers_to_log: a.additionalResponseHeadersToLog,
          additional_response_trailers_to_log: a.additionalResponseTrailersToLog,
        }),
      ),
    };
  }
  if (p.envoyTcpAls) {
    const a = p.envoyTcpAls;
    if (needsCluster('envoyTcpAls')) return undefined;
    // istiod names it envoy.tcp_grpc_access_log (TCPEnvoyALSName); Envoy picks the logger by the typed_config type.
    return { name: 'envoy.tcp_grpc_access_log', typed_config: typed(TCP_GRPC_LOG, { common_config: commonGrpc(rp, a.logName || 'tcp_envoy_accesslog', a.filterStateObjectsToLog) }) };
  }
  if (p.envoyOtelAls) {
    if (needsCluster('envoyOtelAls')) return undefined;
    if (!messageAvailable(OTEL_LOG)) {
      note(`access log provider "${p.name}" (envoyOtelAls): Envoy's OpenTelemetry access logger needs opentelemetry/proto/common/v1/common.proto, which mizzen's proto tree does not ship; left out`);
      return undefined;
    }
    return otelLog(rp, p.envoyOtelAls);
  }
  if (p.stackdriver) note(`access log provider "${p.name}" (stackdriver): Stackdriver logging lives in Istio's own filter; not generated`);
  else if (p.lightstep || p.zipkin || p.datadog || p.skywalking || p.opentelemetry || p.opencensus || p.prometheus || p.envoyExtAuthzHttp || p.envoyExtAuthzGrpc)
    note(`access log provider "${p.name}" is not an access-log provider: left out, as istiod does`);
  else note(`access log provider "${p.name}" has no provider kind mizzen knows: left out`);
  return undefined;
}

/** AccessLogging.filter.expression → the CEL extension filter (buildAccessLogFilterFromTelemetry). */
function celFilter(expression: string, providerName: string, note: Note): Json | undefined {
  if (messageAvailable(CEL_FILTER)) {
    return { extension_filter: { name: 'envoy.access_loggers.extension_filters.cel', typed_config: typed(CEL_FILTER, { expression }) } };
  }
  note(`access log provider "${providerName}": the CEL access-log filter proto could not be loaded; logging unfiltered`);
  return undefined;
}

/**
 * The access_log list for an HCM or tcp_proxy. No Telemetry logging (nor default providers): MeshConfig accessLogFile
 * (empty ⇒ none). Otherwise the Telemetry providers, sorted by provider name, without the disabled ones; if none of
 * them could be built at all, istiod falls back to the MeshConfig setting too.
 */
export function accessLogs(effective: EffectiveTelemetry, mesh: MeshConfig, note: Note): Json[] {
  const legacy = () => (mesh.accessLogFile ? [meshFileLog(mesh.accessLogFile, mesh, note)] : []);
  if (!effective.accessLogging) return legacy();
  const built: Array<{ entry: EffectiveAccessLog; log: Json }> = [];
  for (const entry of effective.accessLogging) {
    if (!entry.provider) continue; // noted by the model
    const log = providerLog({ ...entry, provider: entry.provider }, mesh, note);
    if (log) built.push({ entry, log });
  }
  if (built.length === 0) return legacy();
  const out: Json[] = [];
  for (const { entry, log } of built) {
    if (entry.disabled) continue;
    const filter = entry.filter ? celFilter(entry.filter, entry.provider!.provider.name, note) : undefined;
    out.push(filter ? { ...log, filter } : log);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Tracing

/** istiod's PILOT_TRACE_SAMPLING default: 1%. */
export const DEFAULT_TRACE_SAMPLING = 1.0;

/** proxyConfigSamplingValue: defaultConfig.tracing.sampling when set (over 100 ⇒ 1.0), else PILOT_TRACE_SAMPLING. */
function proxyConfigSampling(mesh: MeshConfig): number {
  const s = mesh.defaultConfig.tracing?.sampling;
  if (!s) return DEFAULT_TRACE_SAMPLING;
  return s > 100 ? 1.0 : s;
}

const dryRunTag = (tag: string, key: string): Json => ({
  tag,
  metadata: { kind: { request: {} }, metadata_key: { key: 'envoy.filters.http.rbac', path: [{ key }] } },
});

/**
 * The tags istiod adds when enableIstioTags (buildServiceTags + optionalPolicyTags). istio.canonical_service,
 * istio.canonical_revision, istio.mesh_id and istio.cluster_id need the workload's label values and node metadata,
 * which would make every proxy's HCM different (no sharing): left out, a documented gap rather than a per-push note.
 */
function istioTags(namespace: string): Json[] {
  return [
    dryRunTag('istio.authorization.dry_run.allow_policy.name', 'istio_dry_run_allow_shadow_effective_policy_id'),
    dryRunTag('istio.authorization.dry_run.allow_policy.result', 'istio_dry_run_allow_shadow_engine_result'),
    dryRunTag('istio.authorization.dry_run.deny_policy.name', 'istio_dry_run_deny_shadow_effective_policy_id'),
    dryRunTag('istio.authorization.dry_run.deny_policy.result', 'istio_dry_run_deny_shadow_engine_result'),
    { tag: 'istio.namespace', literal: { value: namespace || 'default' } },
  ];
}

function customTag(tag: string, t: CustomTag | ProxyTracingCustomTag, note: Note): Json | undefined {
  if (t.literal) return { tag, literal: { value: t.literal.value } };
  if (t.environment) return { tag, environment: compact({ name: t.environment.name, default_value: t.environment.defaultValue }) };
  if (t.header) return { tag, request_header: compact({ name: t.header.name, default_value: t.header.defaultValue }) };
  if ('formatter' in t && t.formatter) note(`tracing custom tag "${tag}": formatter tags need Envoy's CustomTag.value, which mizzen's Envoy proto tree lacks; left out`);
  return undefined;
}

function tagsFrom(source: Record<string, CustomTag | ProxyTracingCustomTag> | undefined, note: Note): Json[] {
  return Object.entries(source ?? {}).flatMap(([tag, t]): Json[] => {
    const built = customTag(tag, t, note);
    return built ? [built] : [];
  });
}

const percent = (value: number) => ({ value });

function headerValue(h: ProviderHeader, provider: string, note: Note): string | undefined {
  if (h.value !== undefined) return h.value;
  if (h.envName) note(`tracing provider "${provider}": header ${h.name} takes its value from istiod's environment (${h.envName}), which builders cannot read; left out`);
  return undefined;
}

/** Go's url.JoinPath(hostname, path) on a scheme-less host: `host/path`. */
const joinPath = (host: string, path: string | undefined) => (path ? `${host}/${path.replace(/^\/+/, '')}` : host);

/** configureFromProviderConfig: the Tracing.Http provider, or an error string (istiod then configures no tracing). */
function tracingProvider(rp: ResolvedProvider, note: Note): { provider: Json; maxTagLength?: number; spawnUpstreamSpan?: boolean } | string {
  const p = rp.provider;
  const cluster = () => rp.cluster ?? `could not find cluster for tracing provider "${p.name}": ${rp.clusterError ?? 'no service'}`;
  const http = (name: string, type: string, body: Json) =>
    messageAvailable(type) ? { name, typed_config: typed(type, compact(body)) } : `the ${type} proto could not be loaded`;
  if (p.zipkin) {
    const c = cluster();
    if (typeof c === 'string') return c;
    const provider = http('envoy.tracers.zipkin', 'envoy.config.trace.v3.ZipkinConfig', {
      collector_cluster: c.name,
      collector_endpoint: p.zipkin.path || '/api/v2/spans',
      collector_endpoint_version: 'HTTP_JSON',
      collector_hostname: c.hostname,
      trace_id_128bit: !p.zipkin.enable64bitTraceId,
      shared_span_context: { value: false },
    });
    return typeof provider === 'string' ? provider : compact({ provider, maxTagLength: p.zipkin.maxTagLength });
  }
  if (p.datadog) {
    const c = cluster();
    if (typeof c === 'string') return c;
    // istiod uses the node's service cluster (<canonical service>.<namespace>); the ProxyView has no such read yet.
    note(`tracing provider "${p.name}" (datadog): service_name is "istio-proxy" (ProxyConfig serviceCluster default); the per-workload service cluster needs a ProxyView read`);
    const provider = http('envoy.tracers.datadog', 'envoy.config.trace.v3.DatadogConfig', { collector_cluster: c.name, service_name: 'istio-proxy', collector_hostname: c.hostname });
    return typeof provider === 'string' ? provider : compact({ provider, maxTagLength: p.datadog.maxTagLength });
  }
  if (p.skywalking) {
    const c = cluster();
    if (typeof c === 'string') return c;
    const provider = http('envoy.tracers.skywalking', 'envoy.config.trace.v3.SkyWalkingConfig', { grpc_service: { envoy_grpc: { cluster_name: c.name, authority: c.hostname } } });
    return typeof provider === 'string' ? provider : { provider, spawnUpstreamSpan: true };
  }
  if (p.opentelemetry) {
    const o = p.opentelemetry;
    const c = cluster();
    if (typeof c === 'string') return c;
    const headers = (list: ProviderHeader[] | undefined) => (list ?? []).flatMap((h) => {
      const value = headerValue(h, p.name, note);
      return value === undefined ? [] : [{ key: h.name, value }];
    });
    const exporter = o.http
      ? {
          http_service: compact({
            // HttpUri.timeout is required by Envoy; istiod passes the provider's (possibly unset) timeout.
            http_uri: { uri: joinPath(c.hostname, o.http.path), cluster: c.name, timeout: duration(o.http.timeout) ?? { seconds: 0, nanos: 0 } },
            request_headers_to_add: o.http.headers?.length ? headers(o.http.headers).map((header) => ({ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header })) : undefined,
          }),
        }
      : {
          grpc_service: compact({
            envoy_grpc: { cluster_name: c.name, authority: c.hostname },
            timeout: duration(o.grpc?.timeout),
            initial_metadata: o.grpc?.initialMetadata?.length ? headers(o.grpc.initialMetadata) : undefined,
          }),
        };
    const detectors: Json[] = [];
    const detector = (kind: string, type: string) => {
      if (messageAvailable(type)) detectors.push({ name: `envoy.tracers.opentelemetry.resource_detectors.${kind}`, typed_config: typed(type, {}) });
      else note(`tracing provider "${p.name}": the ${kind} resource detector proto could not be loaded; left out`);
    };
    if (o.resourceDetectors?.environment) detector('environment', ENV_DETECTOR);
    if (o.resourceDetectors?.dynatrace) detector('dynatrace', DYNATRACE_DETECTOR);
    // istiod samples 100% and leaves the decision to a provider sampler; mizzen does not build the Dynatrace one.
    if (o.dynatraceSampler) note(`tracing provider "${p.name}": the Dynatrace sampler is not generated; sampling follows randomSamplingPercentage`);
    const provider = http('envoy.tracers.opentelemetry', 'envoy.config.trace.v3.OpenTelemetryConfig', {
      ...exporter,
      resource_detectors: detectors.length > 0 ? detectors : undefined,
    });
    return typeof provider === 'string' ? provider : compact({ provider, maxTagLength: o.maxTagLength });
  }
  if (p.lightstep) return 'the Lightstep tracer is deprecated in Istio (use OpenTelemetry) and not generated';
  if (p.opencensus) return 'OpenCensus tracing was removed from Envoy and istiod; not generated';
  return `provider "${p.name}" does not support tracing`;
}

/**
 * The HCM `tracing` block, or undefined for none. No Telemetry tracing (nor default provider): MeshConfig
 * enableTracing gives sampling and tags with no provider (the bootstrap's tracer). Otherwise the mode's spec: none
 * when disabled or its provider cannot be built, else provider + sampling (provider sampler > Telemetry
 * randomSamplingPercentage > defaultConfig.tracing.sampling > PILOT_TRACE_SAMPLING) + custom tags.
 */
export function tracing(effective: EffectiveTelemetry, mesh: MeshConfig, note: Note, options: { gateway?: boolean } = {}): Json | undefined {
  const pc = mesh.defaultConfig.tracing;
  const finish = (base: Json, sampling: number, tags: Json[], maxTagLength: number | undefined): Json =>
    compact({
      ...base,
      client_sampling: percent(100),
      random_sampling: percent(sampling),
      overall_sampling: percent(100),
      custom_tags: tags.length > 0 ? tags.sort((a, b) => ((a.tag as string) < (b.tag as string) ? -1 : (a.tag as string) > (b.tag as string) ? 1 : 0)) : undefined,
      max_path_tag_length: maxTagLength ? { value: maxTagLength } : pc?.maxPathTagLength ? { value: pc.maxPathTagLength } : undefined,
    });
  const spec = effective.tracing;
  if (!spec) {
    if (!mesh.enableTracing) return undefined;
    const tags = [...(pc?.enableIstioTags === false ? [] : istioTags(effective.namespace)), ...tagsFrom(pc?.customTags, note)];
    return finish({}, proxyConfigSampling(mesh), tags, undefined);
  }
  if (spec.disabled || !spec.provider) return undefined;
  const built = tracingProvider(spec.provider, note);
  if (typeof built === 'string') {
    note(`tracing provider "${spec.provider.provider.name}": ${built}; no tracing, as istiod does`);
    return undefined;
  }
  const sampling = spec.randomSamplingPercentage ?? proxyConfigSampling(mesh);
  const own = spec.customTags && Object.keys(spec.customTags).length > 0 ? tagsFrom(spec.customTags, note) : tagsFrom(pc?.customTags, note);
  const tags = [...(spec.enableIstioTags ? istioTags(effective.namespace) : []), ...own];
  const spawn = options.gateway || built.spawnUpstreamSpan;
  return finish({ provider: built.provider, spawn_upstream_span: spawn ? { value: true } : undefined }, sampling, tags, built.maxTagLength);
}

// ---------------------------------------------------------------------------------------------------------------
// Metrics

/** Istio metric → the Prometheus metric name the stats filter uses (metricToPrometheusMetric). */
const PROMETHEUS_METRIC: Record<string, string> = {
  REQUEST_COUNT: 'requests_total',
  REQUEST_DURATION: 'request_duration_milliseconds',
  REQUEST_SIZE: 'request_bytes',
  RESPONSE_SIZE: 'response_bytes',
  TCP_OPENED_CONNECTIONS: 'tcp_connections_opened_total',
  TCP_CLOSED_CONNECTIONS: 'tcp_connections_closed_total',
  TCP_SENT_BYTES: 'tcp_sent_bytes_total',
  TCP_RECEIVED_BYTES: 'tcp_received_bytes_total',
  GRPC_REQUEST_MESSAGES: 'request_messages_total',
  GRPC_RESPONSE_MESSAGES: 'response_messages_total',
};

export interface StatsFilterConfig {
  /** `istio.stats`; the filter is part of Istio's proxy build, not Envoy, and has no proto in mizzen's tree. */
  filterName: 'istio.stats';
  typeUrl: 'type.googleapis.com/stats.PluginConfig';
  provider: string;
  /** stats.PluginConfig in proto3 JSON (generateStatsConfig). */
  config: Json;
}

/**
 * The Prometheus stats-filter config istiod would generate for this direction (generateStatsConfig), one per
 * prometheus provider with metrics on. Not an Envoy resource: nothing here may be put into a listener.
 */
export function metricsOverrides(effective: EffectiveTelemetry, note: Note, options: { inbound?: boolean; gateway?: boolean } = {}): StatsFilterConfig[] {
  const out: StatsFilterConfig[] = [];
  for (const m of effective.metrics) {
    if (!m.provider.prometheus) {
      if (m.provider.stackdriver) note(`metrics provider "${m.provider.name}" (stackdriver): not generated`);
      continue;
    }
    if (m.disabled) continue;
    const metrics = m.overrides.map((o) => {
      const dimensions: Record<string, string> = {};
      const remove: string[] = [];
      for (const t of o.tags) {
        if (t.remove) remove.push(t.name);
        else dimensions[t.name] = t.value;
      }
      return compact({ name: PROMETHEUS_METRIC[o.metric] ?? o.metric, dimensions, tags_to_remove: remove.length > 0 ? remove : undefined, drop: o.disabled || undefined });
    });
    out.push({
      filterName: 'istio.stats',
      typeUrl: 'type.googleapis.com/stats.PluginConfig',
      provider: m.provider.name,
      config: compact({
        disable_host_header_fallback: options.inbound || options.gateway || undefined,
        tcp_reporting_duration: m.reportingInterval,
        metrics: metrics.length > 0 ? metrics : undefined,
      }),
    });
  }
  if (out.length > 0) {
    const summary = out
      .map((s) => `${s.provider}: ${((s.config.metrics as Json[] | undefined) ?? []).map((x) => x.name).join(', ') || 'defaults'}`)
      .join('; ');
    note(`Telemetry metrics (${summary}) are not generated: Istio's istio.stats filter is an Istio proxy extension, not an Envoy one`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points for the listener generators

export type TelemetryDirection = 'outbound' | 'inbound' | 'gateway';

export interface HcmTelemetry {
  accessLog: Json[];
  tracing?: Json;
  /**
   * The HCM request_id_extension istiod sets with Telemetry tracing (UuidRequestIdConfig with
   * use_request_id_for_trace_sampling); undefined = the default UUID extension.
   */
  requestIdExtension?: Json;
}

const modeOf = (d: TelemetryDirection) => (d === 'inbound' ? 'SERVER' : 'CLIENT');

/** Access logs, tracing (and the metrics note) for one HTTP connection manager. */
export function hcmTelemetry(push: PushContext, view: ProxyView, direction: TelemetryDirection, note: Note): HcmTelemetry {
  const effective = telemetryFor(push, view, modeOf(direction));
  for (const n of effective.notes) note(n);
  const accessLog = accessLogs(effective, push.mesh, note);
  const t = tracing(effective, push.mesh, note, { gateway: direction === 'gateway' });
  metricsOverrides(effective, note, { inbound: direction === 'inbound', gateway: direction === 'gateway' });
  const out: HcmTelemetry = { accessLog };
  if (t) out.tracing = t;
  if (t && effective.tracing) {
    out.requestIdExtension = {
      typed_config: typed('envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig', { use_request_id_for_trace_sampling: { value: effective.tracing.useRequestIdForTraceSampling } }),
    };
  }
  return out;
}

/** Access logs for a tcp_proxy (setTCPAccessLog: the same providers as HTTP). */
export function tcpTelemetry(push: PushContext, view: ProxyView, direction: TelemetryDirection, note: Note): { accessLog: Json[] } {
  const effective = telemetryFor(push, view, modeOf(direction));
  for (const n of effective.notes) note(n);
  metricsOverrides(effective, note, { inbound: direction === 'inbound', gateway: direction === 'gateway' });
  return { accessLog: accessLogs(effective, push.mesh, note) };
}
