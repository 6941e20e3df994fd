/**
 * The Telemetry API (telemetry.istio.io) resolved for one workload and one traffic direction, with istiod's selection
 * and merge rules (pilot/pkg/model/telemetry.go: applicableTelemetries, AccessLogging/mergeLogs, Tracing,
 * mergeMetrics). Levels, later overriding earlier: the root namespace's selector-less Telemetry, the proxy namespace's
 * selector-less Telemetry, then every Telemetry in the proxy's namespace that selects the workload (oldest first).
 * Providers are looked up in MeshConfig.extensionProviders (case-insensitive, as fetchProvider), and providers that
 * report to a service get their outbound cluster here (LookupCluster), so the builders only turn this into JSON.
 * Pure: reads the proxy only through the view.
 */
import type { CustomTag, MetricsOverrides, TelemetrySpec, Tracing, WorkloadMode } from '../config/kinds/telemetry.ts';
import type { ConfigObject } from '../config/object.ts';
import { BUILTIN_EXTENSION_PROVIDERS, type ExtensionProvider, type MeshConfig, type ServiceTarget } from './mesh.ts';
import { clusterName } from './names.ts';
import type { ProxyView } from './proxy-view.ts';
import type { PushContext } from './push-context.ts';

/** CLIENT: sidecar outbound and gateway listeners; SERVER: sidecar inbound (istiod workloadMode(class)). */
export type TelemetryMode = 'CLIENT' | 'SERVER';

export interface ResolvedProvider {
  provider: ExtensionProvider;
  /** Providers with `service`/`port`: the outbound cluster (`outbound|<port>||<host>`) and its host … */
  cluster?: { hostname: string; name: string };
  /** … or why the service could not be found (istiod then leaves the provider out). */
  clusterError?: string;
}

export interface EffectiveAccessLog {
  /** The provider name as referenced by a Telemetry rule or defaultProviders.accessLogging. */
  ref: string;
  /** Undefined when no extension provider has that name (istiod skips it). */
  provider?: ResolvedProvider;
  disabled: boolean;
  /** CEL expression (AccessLogging.filter.expression). */
  filter?: string;
}

export interface EffectiveTracing {
  ref?: string;
  provider?: ResolvedProvider;
  /** No provider found, or disableSpanReporting: no HCM tracing at all (configureTracingFromTelemetry). */
  disabled: boolean;
  randomSamplingPercentage?: number;
  customTags?: Record<string, CustomTag>;
  useRequestIdForTraceSampling: boolean;
  enableIstioTags: boolean;
}

export interface EffectiveTagOverride {
  name: string;
  remove: boolean;
  /** CEL expression for UPSERT. */
  value: string;
}

export interface EffectiveMetricOverride {
  /** An IstioMetric name (REQUEST_COUNT …) or a custom metric name. */
  metric: string;
  disabled: boolean;
  tags: EffectiveTagOverride[];
}

export interface EffectiveMetrics {
  ref: string;
  provider: ExtensionProvider;
  /** ALL_METRICS disabled for this mode: no stats filter. */
  disabled: boolean;
  overrides: EffectiveMetricOverride[];
  reportingInterval?: string;
}

export interface EffectiveTelemetry {
  mode: TelemetryMode;
  namespace: string;
  /** `namespace/name` of the Telemetry objects that applied, root first. */
  applied: string[];
  /** Undefined: neither Telemetry nor defaultProviders configure access logs; MeshConfig accessLogFile decides. */
  accessLogging?: EffectiveAccessLog[];
  /** Undefined: no Telemetry tracing and no default tracing provider; MeshConfig enableTracing decides. */
  tracing?: EffectiveTracing;
  metrics: EffectiveMetrics[];
  /** What could not be applied, for the generator's `note`. */
  notes: string[];
}

type TelemetryObject = ConfigObject<TelemetrySpec>;

/** Telemetry objects by namespace, oldest first; built once per push context. */
const byNamespaceCache = new WeakMap<PushContext, Map<string, TelemetryObject[]>>();

function telemetriesIn(push: PushContext, namespace: string): readonly TelemetryObject[] {
  let index = byNamespaceCache.get(push);
  if (!index) {
    index = new Map();
    for (const t of push.config.ofKind<TelemetrySpec>('Telemetry')) {
      const list = index.get(t.metadata.namespace);
      if (list) list.push(t);
      else index.set(t.metadata.namespace, [t]);
    }
    byNamespaceCache.set(push, index);
  }
  return index.get(namespace) ?? [];
}

const describe = (t: TelemetryObject) => `${t.metadata.namespace}/${t.metadata.name}`;
const hasSelector = (s: TelemetrySpec) => Object.keys(s.selector?.matchLabels ?? {}).length > 0;
const targetRefsOf = (s: TelemetrySpec) => (s.targetRefs?.length ? s.targetRefs : s.targetRef ? [s.targetRef] : []);

const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/**
 * Policy attachment for a workload-level Telemetry (WorkloadPolicyMatcher.ShouldAttachPolicy): a selector matches
 * the workload's labels; targetRefs attach only to a Gateway API gateway pod (label gateway-name = the Gateway) in
 * the policy's namespace. Service/ServiceEntry/GatewayClass targets are for waypoints, which mizzen does not serve.
 */
function attaches(t: TelemetryObject, view: ProxyView, namespace: string, notes: string[]): boolean {
  const refs = targetRefsOf(t.spec);
  if (refs.length === 0) return view.selectedBy(t.spec.selector?.matchLabels);
  for (const ref of refs) {
    if (ref.group === GATEWAY_API_GROUP && ref.kind === 'Gateway') {
      if ((!ref.namespace || ref.namespace === namespace) && view.selectedBy({ [GATEWAY_NAME_LABEL]: ref.name })) return true;
    } else {
      notes.push(`Telemetry ${describe(t)}: targetRef ${ref.kind}/${ref.name} attaches to waypoints only, which mizzen does not serve; the policy does not apply to sidecars or gateways`);
    }
  }
  return false;
}

/** The Telemetry objects that apply to the proxy, in override order. */
function applicable(push: PushContext, view: ProxyView, notes: string[]): TelemetryObject[] {
  const root = push.mesh.rootNamespace;
  const namespace = view.namespace();
  // istiod takes the oldest selector-less (and targetRef-less) Telemetry of a namespace; others are ignored.
  const namespaceWide = (ns: string) => telemetriesIn(push, ns).find((t) => !hasSelector(t.spec) && targetRefsOf(t.spec).length === 0);
  const out: TelemetryObject[] = [];
  const rootLevel = root ? namespaceWide(root) : undefined;
  if (rootLevel) out.push(rootLevel);
  if (namespace !== root) {
    const nsLevel = namespaceWide(namespace);
    if (nsLevel) out.push(nsLevel);
  }
  for (const t of telemetriesIn(push, namespace)) {
    if (!hasSelector(t.spec) && targetRefsOf(t.spec).length === 0) continue;
    if (attaches(t, view, namespace, notes)) out.push(t);
  }
  return out;
}

/** MeshConfig.extensionProviders by name, case-insensitive; the built-in ones unless redefined (ApplyMeshConfig). */
export function findProvider(mesh: MeshConfig, name: string): ExtensionProvider | undefined {
  const lower = name.toLowerCase();
  return (
    mesh.extensionProviders.find((p) => p.name.toLowerCase() === lower) ??
    BUILTIN_EXTENSION_PROVIDERS.find((p) => p.name.toLowerCase() === lower && !mesh.extensionProviders.some((u) => u.name === p.name))
  );
}

/** The service a provider reports to: its `ServiceTarget`, whichever kind it is. */
function serviceTargetOf(p: ExtensionProvider): ServiceTarget | undefined {
  return p.envoyHttpAls ?? p.envoyTcpAls ?? p.envoyOtelAls ?? p.zipkin ?? p.datadog ?? p.lightstep ?? p.skywalking ?? p.opentelemetry ?? p.opencensus;
}

/**
 * istiod's LookupCluster: `namespace/hostname`, or a bare hostname defined in exactly one namespace, → the outbound
 * cluster for the port. Not a proxy read: the same for every proxy.
 */
export function lookupCluster(push: PushContext, service: string, port: number): { hostname: string; name: string } | { error: string } {
  if (!service) return { error: 'service must not be empty' };
  const parts = service.split('/');
  const candidates = push.registry.byHost.get(parts.length === 2 ? (parts[1] as string) : service) ?? [];
  const found = parts.length === 2 ? candidates.filter((s) => s.namespace === parts[0]) : candidates;
  if (found.length > 1) {
    const namespaces = found.map((s) => s.namespace).join(', ');
    return { error: `found ${service} in multiple namespaces (${namespaces}); name it as <namespace>/<hostname>` };
  }
  const svc = found[0];
  if (!svc) return { error: `could not find service ${service} in the service registry` };
  return { hostname: svc.hostname, name: clusterName('outbound', port, '', svc.hostname) };
}

function resolve(push: PushContext, p: ExtensionProvider): ResolvedProvider {
  const target = serviceTargetOf(p);
  if (!target) return { provider: p };
  const c = lookupCluster(push, target.service, target.port);
  return 'error' in c ? { provider: p, clusterError: c.error } : { provider: p, cluster: c };
}

const names = (refs: ReadonlyArray<{ name: string }> | undefined) => (refs ?? []).map((r) => r.name);
const modeMatches = (m: WorkloadMode | undefined, mode: TelemetryMode) => m === undefined || m === 'CLIENT_AND_SERVER' || m === mode;

/**
 * mergeLogs: the providers in scope are those named by the deepest level that names any (else the defaults); each
 * rule applies to its providers (or its parent's) when its match.mode fits; `disabled` turns a provider off, a later
 * rule can turn it on again. The filter of a provider is the last one any rule naming it set.
 */
function mergeAccessLogging(push: PushContext, levels: TelemetryObject[], mode: TelemetryMode, notes: string[]): EffectiveAccessLog[] | undefined {
  const mesh = push.mesh;
  const defaults = mesh.defaultProviders.accessLogging ?? [];
  const withLogs = levels.filter((t) => (t.spec.accessLogging?.length ?? 0) > 0);
  if (withLogs.length === 0 && defaults.length === 0) return undefined;
  const chosen = new Map<string, { disabled: boolean; filter?: string }>();
  if (withLogs.length === 0) {
    for (const d of defaults) chosen.set(d, { disabled: false });
  } else {
    let inScope = defaults;
    const filters = new Map<string, string | undefined>();
    for (const level of withLogs) {
      const named = new Set<string>();
      for (const rule of level.spec.accessLogging ?? []) {
        if (!modeMatches(rule.match?.mode, mode)) continue;
        for (const n of names(rule.providers)) {
          named.add(n);
          filters.set(n, rule.filter?.expression);
        }
      }
      if (named.size > 0) inScope = [...named];
    }
    const scope = new Set(inScope);
    let parent = defaults;
    for (const level of withLogs) {
      for (const rule of level.spec.accessLogging ?? []) {
        const own = names(rule.providers);
        const providers = own.length > 0 ? own : parent;
        parent = providers;
        for (const p of providers) {
          if (!scope.has(p) || !modeMatches(rule.match?.mode, mode)) continue;
          if (rule.disabled) chosen.set(p, { disabled: true });
          else {
            const filter = filters.get(p);
            chosen.set(p, filter ? { disabled: false, filter } : { disabled: false });
          }
        }
      }
    }
  }
  const out: EffectiveAccessLog[] = [];
  for (const [ref, spec] of chosen) {
    const p = findProvider(mesh, ref);
    if (!p) notes.push(`access log provider "${ref}" is not defined in MeshConfig extensionProviders: left out, as istiod does`);
    out.push({ ref, ...(p ? { provider: resolve(push, p) } : {}), ...spec });
  }
  return out.sort((a, b) => cmp(a.provider?.provider.name ?? a.ref, b.provider?.provider.name ?? b.ref));
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Telemetries.Tracing for one mode: the first default provider, then each rule in order overrides what it sets. */
function mergeTracing(push: PushContext, levels: TelemetryObject[], mode: TelemetryMode, notes: string[]): EffectiveTracing | undefined {
  const mesh = push.mesh;
  const rules: Array<{ rule: Tracing; from: TelemetryObject }> = levels.flatMap((t) => (t.spec.tracing ?? []).map((rule) => ({ rule, from: t })));
  const defaults = mesh.defaultProviders.tracing ?? [];
  if (rules.length === 0 && defaults.length === 0) return undefined;
  const spec: EffectiveTracing = { disabled: false, useRequestIdForTraceSampling: true, enableIstioTags: true };
  let source = 'MeshConfig defaultProviders.tracing';
  if (defaults.length > 0) spec.ref = defaults[0];
  for (const { rule, from } of rules) {
    // A rule without match, or CLIENT_AND_SERVER, applies to both modes.
    if (!modeMatches(rule.match?.mode, mode)) continue;
    const own = names(rule.providers);
    if (own.length > 0) {
      spec.ref = own[0];
      source = `Telemetry ${describe(from)}`;
      if (own.length > 1) notes.push(`Telemetry ${describe(from)}: only one tracing provider per mode is supported; using "${own[0]}"`);
    }
    if (rule.disableSpanReporting !== undefined) spec.disabled = rule.disableSpanReporting;
    if (rule.customTags !== undefined) spec.customTags = rule.customTags;
    if (rule.randomSamplingPercentage !== undefined) spec.randomSamplingPercentage = rule.randomSamplingPercentage;
    if (rule.useRequestIdForTraceSampling !== undefined) spec.useRequestIdForTraceSampling = rule.useRequestIdForTraceSampling;
    if (rule.enableIstioTags !== undefined) spec.enableIstioTags = rule.enableIstioTags;
  }
  const provider = spec.ref !== undefined ? findProvider(mesh, spec.ref) : undefined;
  if (provider) spec.provider = resolve(push, provider);
  else {
    // istiod: no provider found for the mode ⇒ the mode's tracing is disabled (no HCM tracing at all).
    spec.disabled = true;
    notes.push(
      spec.ref === undefined
        ? `Telemetry tracing (${levels.map(describe).join(', ')}) names no provider for ${mode} traffic and MeshConfig defaultProviders.tracing is empty: no tracing, as istiod does`
        : `tracing provider "${spec.ref}" (${source}) is not defined in MeshConfig extensionProviders: no tracing, as istiod does`,
    );
  }
  return spec;
}

/** Every IstioMetric but ALL_METRICS, sorted (what ALL_METRICS and a match-less override expand to). */
const ALL_METRICS = [
  'GRPC_REQUEST_MESSAGES', 'GRPC_RESPONSE_MESSAGES', 'REQUEST_COUNT', 'REQUEST_DURATION', 'REQUEST_SIZE', 'RESPONSE_SIZE',
  'TCP_CLOSED_CONNECTIONS', 'TCP_OPENED_CONNECTIONS', 'TCP_RECEIVED_BYTES', 'TCP_SENT_BYTES',
];

const isAllMetrics = (o: MetricsOverrides) => o.match?.customMetric === undefined && (o.match?.metric === undefined || o.match.metric === 'ALL_METRICS');
function matchedMetrics(o: MetricsOverrides): string[] {
  if (o.match?.customMetric !== undefined) return [o.match.customMetric];
  return isAllMetrics(o) ? ALL_METRICS : [o.match!.metric as string];
}

/**
 * mergeMetrics for one mode: the providers in scope are the deepest level's (else the defaults); overrides apply in
 * order, a later one replacing `disabled` and upserting tags; ALL_METRICS disabled drops the provider's filter until
 * a later override for the mode turns a metric on again.
 */
function mergeMetrics(push: PushContext, levels: TelemetryObject[], mode: TelemetryMode, notes: string[]): EffectiveMetrics[] {
  const mesh = push.mesh;
  const rules = levels.flatMap((t) => t.spec.metrics ?? []);
  const defaults = mesh.defaultProviders.metrics ?? [];
  type Override = { disabled?: boolean; tags: Map<string, { remove: boolean; value: string }> };
  const providers = new Map<string, Map<string, Override>>();
  const disabledAll = new Set<string>();
  const intervals = new Map<string, string>();
  if (rules.length === 0) for (const d of defaults) providers.set(d, new Map());
  let inScope = defaults;
  for (const m of rules) if (names(m.providers).length > 0) inScope = names(m.providers);
  const scope = new Set(inScope);
  let parent = defaults;
  for (const m of rules) {
    const own = names(m.providers);
    const list = own.length > 0 ? own : parent;
    parent = list;
    for (const p of list) {
      if (!scope.has(p)) continue;
      if (m.reportingInterval !== undefined) intervals.set(p, m.reportingInterval);
      let metrics = providers.get(p);
      if (!metrics) providers.set(p, (metrics = new Map()));
      for (const o of m.overrides ?? []) {
        if (!modeMatches(o.match?.mode, mode)) continue;
        if (isAllMetrics(o) && o.disabled === true) {
          disabledAll.add(p);
          continue;
        }
        disabledAll.delete(p);
        for (const name of matchedMetrics(o)) {
          let ov = metrics.get(name);
          if (!ov) metrics.set(name, (ov = { tags: new Map() }));
          if (o.disabled !== undefined) ov.disabled = o.disabled;
          for (const [tag, to] of Object.entries(o.tagOverrides ?? {})) {
            ov.tags.set(tag, to.operation === 'REMOVE' ? { remove: true, value: '' } : { remove: false, value: to.value ?? '' });
          }
        }
      }
    }
  }
  const out: EffectiveMetrics[] = [];
  for (const [ref, metrics] of [...providers].sort((a, b) => cmp(a[0], b[0]))) {
    const provider = findProvider(mesh, ref);
    if (!provider) {
      notes.push(`metrics provider "${ref}" is not defined in MeshConfig extensionProviders: left out, as istiod does`);
      continue;
    }
    const disabled = disabledAll.has(ref);
    const overrides = disabled
      ? []
      : [...metrics]
          .sort((a, b) => cmp(a[0], b[0]))
          .map(([metric, ov]) => ({
            metric,
            disabled: ov.disabled ?? false,
            tags: [...ov.tags].sort((a, b) => cmp(a[0], b[0])).map(([name, t]) => ({ name, ...t })),
          }));
    const interval = intervals.get(ref);
    out.push({ ref, provider, disabled, overrides, ...(interval !== undefined ? { reportingInterval: interval } : {}) });
  }
  return out;
}

/** The Telemetry configuration in effect for the proxy's workload in one direction. */
export function telemetryFor(push: PushContext, view: ProxyView, mode: TelemetryMode): EffectiveTelemetry {
  const notes: string[] = [];
  const levels = applicable(push, view, notes);
  const accessLogging = mergeAccessLogging(push, levels, mode, notes);
  const tracing = mergeTracing(push, levels, mode, notes);
  return {
    mode,
    namespace: view.namespace(),
    applied: levels.map(describe),
    ...(accessLogging ? { accessLogging } : {}),
    ...(tracing ? { tracing } : {}),
    metrics: mergeMetrics(push, levels, mode, notes),
    notes,
  };
}
