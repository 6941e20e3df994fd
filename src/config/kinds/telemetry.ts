/**
 * Telemetry (telemetry.istio.io): tracing, metrics and access-logging settings per mesh, namespace or workload.
 * Fields follow istio/api telemetry/v1alpha1/telemetry.proto (served as v1 and v1alpha1); rules follow istio/istio
 * ValidateTelemetry and the CRD's CEL rules. Log formats are not a Telemetry field: they live in MeshConfig
 * extensionProviders, so e.g. `accessLogging[].format` is refused as an unknown field.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkDuration, checkPolicySelection, collector, keyPath, type Report } from './checks.ts';
import { Duration, Enum, MatchLabelsSelector, Obj, Opt, PolicyTargetReference } from './common.ts';
import { defineKind } from './kind.ts';

export const ProviderRefSchema = Obj({ name: Type.String() });
export type ProviderRef = Static<typeof ProviderRefSchema>;
const Providers = () => Opt(Type.Array(ProviderRefSchema));

export const WORKLOAD_MODES = ['CLIENT_AND_SERVER', 'CLIENT', 'SERVER'] as const;
export type WorkloadMode = (typeof WORKLOAD_MODES)[number];
const ModeMatch = () => Opt(Obj({ mode: Opt(Enum(WORKLOAD_MODES)) }));

/** A custom tag is a oneOf: literal | environment | header | formatter. */
export const CustomTagSchema = Obj(
  {
    literal: Opt(Obj({ value: Type.String() })),
    environment: Opt(Obj({ name: Type.String(), defaultValue: Opt(Type.String()) })),
    header: Opt(Obj({ name: Type.String(), defaultValue: Opt(Type.String()) })),
    formatter: Opt(Obj({ value: Type.String() })),
  },
  { maxProperties: 1 },
);
export type CustomTag = Static<typeof CustomTagSchema>;

export const TracingSchema = Obj({
  match: ModeMatch(),
  providers: Providers(),
  randomSamplingPercentage: Opt(Type.Number({ minimum: 0, maximum: 100 })),
  disableSpanReporting: Opt(Type.Boolean()),
  customTags: Opt(Type.Record(Type.String(), CustomTagSchema)),
  useRequestIdForTraceSampling: Opt(Type.Boolean()),
  enableIstioTags: Opt(Type.Boolean()),
});
export type Tracing = Static<typeof TracingSchema>;

export const METRICS = [
  'ALL_METRICS', 'REQUEST_COUNT', 'REQUEST_DURATION', 'REQUEST_SIZE', 'RESPONSE_SIZE', 'TCP_OPENED_CONNECTIONS',
  'TCP_CLOSED_CONNECTIONS', 'TCP_SENT_BYTES', 'TCP_RECEIVED_BYTES', 'GRPC_REQUEST_MESSAGES', 'GRPC_RESPONSE_MESSAGES',
] as const;
export type IstioMetric = (typeof METRICS)[number];

/** MetricSelector: `metric` and `customMetric` are a oneOf. */
export const MetricSelectorSchema = Obj({
  metric: Opt(Enum(METRICS)),
  customMetric: Opt(Type.String()),
  mode: Opt(Enum(WORKLOAD_MODES)),
});
export type MetricSelector = Static<typeof MetricSelectorSchema>;
export const TagOverrideSchema = Obj({ operation: Opt(Enum(['UPSERT', 'REMOVE'] as const)), value: Opt(Type.String()) });
export type TagOverride = Static<typeof TagOverrideSchema>;
export const MetricsOverridesSchema = Obj({
  match: Opt(MetricSelectorSchema),
  disabled: Opt(Type.Boolean()),
  tagOverrides: Opt(Type.Record(Type.String(), TagOverrideSchema)),
});
export type MetricsOverrides = Static<typeof MetricsOverridesSchema>;

export const MetricsSchema = Obj({
  providers: Providers(),
  overrides: Opt(Type.Array(MetricsOverridesSchema)),
  reportingInterval: Opt(Duration()),
});
export type Metrics = Static<typeof MetricsSchema>;

export const AccessLoggingSchema = Obj({
  match: ModeMatch(),
  providers: Providers(),
  disabled: Opt(Type.Boolean()),
  filter: Opt(Obj({ expression: Opt(Type.String()) })),
});
export type AccessLogging = Static<typeof AccessLoggingSchema>;

export const TelemetrySpecSchema = Obj({
  selector: Opt(MatchLabelsSelector()),
  targetRef: Opt(PolicyTargetReference()),
  targetRefs: Opt(Type.Array(PolicyTargetReference(), { maxItems: 16 })),
  tracing: Opt(Type.Array(TracingSchema)),
  metrics: Opt(Type.Array(MetricsSchema)),
  accessLogging: Opt(Type.Array(AccessLoggingSchema)),
});
export type TelemetrySpec = Static<typeof TelemetrySpecSchema>;

function checkProviders(report: Report, p: string, providers: readonly ProviderRef[] | undefined): void {
  providers?.forEach((pr, i) => {
    if (!pr.name) report(`${p}[${i}].name`, 'provider name may not be empty');
  });
}

function check(spec: TelemetrySpec): FieldError[] {
  const { errors, report } = collector();
  checkPolicySelection(report, spec);
  spec.tracing?.forEach((t, i) => {
    const p = `spec.tracing[${i}]`;
    checkProviders(report, `${p}.providers`, t.providers);
    for (const [name, tag] of Object.entries(t.customTags ?? {})) {
      const tp = keyPath(`${p}.customTags`, name);
      if (name === '') report(`${p}.customTags`, 'tag name may not be empty');
      if (Object.keys(tag).length === 0) report(tp, 'custom tag needs one of literal, environment, header, formatter');
      if (tag.literal && !tag.literal.value) report(`${tp}.literal.value`, 'literal tag value may not be empty');
      if (tag.header && !tag.header.name) report(`${tp}.header.name`, 'header tag name may not be empty');
      if (tag.environment && !tag.environment.name) report(`${tp}.environment.name`, 'environment tag name may not be empty');
      if (tag.formatter && !tag.formatter.value) report(`${tp}.formatter.value`, 'formatter tag value may not be empty');
    }
  });
  spec.metrics?.forEach((m, i) => {
    const p = `spec.metrics[${i}]`;
    checkProviders(report, `${p}.providers`, m.providers);
    checkDuration(report, `${p}.reportingInterval`, m.reportingInterval);
    m.overrides?.forEach((o, j) => {
      const op = `${p}.overrides[${j}]`;
      if (o.match?.metric !== undefined && o.match.customMetric !== undefined) report(`${op}.match`, 'only one of metric, customMetric may be set');
      if (o.match?.customMetric === '') report(`${op}.match.customMetric`, 'customMetric may not be empty');
      for (const [tag, to] of Object.entries(o.tagOverrides ?? {})) {
        const tp = keyPath(`${op}.tagOverrides`, tag);
        // The operation defaults to UPSERT, which needs a value (an expression); REMOVE takes none.
        if ((to.operation ?? 'UPSERT') === 'UPSERT' && !to.value) report(`${tp}.value`, 'value must be set when operation is UPSERT');
        if (to.operation === 'REMOVE' && to.value) report(`${tp}.value`, 'value may only be set when operation is UPSERT');
      }
    });
  });
  spec.accessLogging?.forEach((a, i) => checkProviders(report, `spec.accessLogging[${i}].providers`, a.providers));
  return errors;
}

export const telemetry = defineKind<TelemetrySpec>({
  group: 'telemetry.istio.io',
  kind: 'Telemetry',
  plural: 'telemetries',
  versions: ['v1', 'v1alpha1'],
  namespaced: true,
  spec: TelemetrySpecSchema,
  check,
});
