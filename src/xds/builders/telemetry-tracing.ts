/**
 * Telemetry tracing as the HCM `tracing` block (pilot/pkg/networking/core/tracing.go): provider (zipkin, datadog,
 * skywalking, OpenTelemetry over gRPC or HTTP), sampling, custom tags, Istio's tags.
 */
import type { CustomTag } from '../../config/kinds/telemetry.ts';
import type { MeshConfig, ProviderHeader, ProxyTracingCustomTag } from '../../model/mesh.ts';
import type { EffectiveTelemetry, ResolvedProvider } from '../../model/telemetry.ts';
import { compact, duration, type Json } from './common.ts';
import { messageAvailable, typed, type Note } from './telemetry-common.ts';

const ENV_DETECTOR = 'envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig';
const DYNATRACE_DETECTOR = 'envoy.extensions.tracers.opentelemetry.resource_detectors.v3.DynatraceResourceDetectorConfig';


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

