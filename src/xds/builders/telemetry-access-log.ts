/**
 * Telemetry access logging as Envoy `access_log` entries (pilot/pkg/model/telemetry_logging.go,
 * pilot/pkg/networking/core/accesslog.go): the mesh `accessLogFile`, the built-in `envoy` provider, file and gRPC
 * access-log providers, CEL filters. Some extensions cannot be loaded from the tree (the OpenTelemetry access logger
 * needs opentelemetry/proto/common/v1/common.proto, which it lacks): those are generated only when their type loads.
 */
import type { MeshConfig, ProviderLogFormat } from '../../model/mesh.ts';
import type { EffectiveAccessLog, EffectiveTelemetry, ResolvedProvider } from '../../model/telemetry.ts';
import { compact, struct, type Json } from './common.ts';
import { messageAvailable, typed, type Note } from './telemetry-common.ts';

const FILE_LOG = 'envoy.extensions.access_loggers.file.v3.FileAccessLog';
const HTTP_GRPC_LOG = 'envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig';
const TCP_GRPC_LOG = 'envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig';
const OTEL_LOG = 'envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig';
const CEL_FILTER = 'envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter';
const REQ_WITHOUT_QUERY = 'envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery';


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

