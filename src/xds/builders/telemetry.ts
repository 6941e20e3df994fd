/**
 * The effective Telemetry (model/telemetry.ts) as Envoy config: HCM / tcp_proxy `access_log` entries
 * (pilot/pkg/model/telemetry_logging.go, pilot/pkg/networking/core/accesslog.go), HCM `tracing`
 * (pilot/pkg/networking/core/tracing.go), and the per-metric overrides of Istio's stats filter (`istio.stats`,
 * `stats.PluginConfig`, an Istio proxy extension whose proto lives in protos/), built by istio-filters.ts.
 */
import type { ProxyView } from '../../model/proxy-view.ts';
import type { PushContext } from '../../model/push-context.ts';
import { telemetryFor, type EffectiveTelemetry } from '../../model/telemetry.ts';
import { compact, type Json } from './common.ts';
import { accessLogs } from './telemetry-access-log.ts';
import { typed, type Note } from './telemetry-common.ts';
import { tracing } from './telemetry-tracing.ts';

export { accessLogs, ISTIO_JSON_LOG_FORMAT, ISTIO_TEXT_LOG_FORMAT } from './telemetry-access-log.ts';
export { messageAvailable } from './telemetry-common.ts';
export { DEFAULT_TRACE_SAMPLING, tracing } from './telemetry-tracing.ts';

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
 * The Prometheus stats-filter config istiod generates for this direction (generateStatsConfig), one per prometheus
 * provider with metrics on; istio-filters.ts turns it into the `istio.stats` filters.
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

/** Access logs and tracing for one HTTP connection manager. */
export function hcmTelemetry(push: PushContext, view: ProxyView, direction: TelemetryDirection, note: Note): HcmTelemetry {
  const effective = telemetryFor(push, view, modeOf(direction));
  for (const n of effective.notes) note(n);
  const accessLog = accessLogs(effective, push.mesh, note);
  const t = tracing(effective, push.mesh, note, { gateway: direction === 'gateway' });
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
  return { accessLog: accessLogs(effective, push.mesh, note) };
}

/** The istio.stats configs (one per prometheus metrics provider) for one direction's filters. */
export function statsConfigs(push: PushContext, view: ProxyView, direction: TelemetryDirection, note: Note): StatsFilterConfig[] {
  return metricsOverrides(telemetryFor(push, view, modeOf(direction)), note, { inbound: direction === 'inbound', gateway: direction === 'gateway' });
}
