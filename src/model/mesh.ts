/** The subset of Istio's MeshConfig that mizzen reads, with Istio's defaults (pkg/config/mesh DefaultMeshConfig). */
export interface MeshConfig {
  rootNamespace: string;
  trustDomain: string;
  /** Kubernetes cluster domain: services are `<name>.<ns>.svc.<domainSuffix>`. */
  domainSuffix: string;
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  connectTimeoutMs: number;
  enableAutoMtls: boolean;
  localityLbEnabled: boolean;
  defaultServiceExportTo: string[];
  defaultVirtualServiceExportTo: string[];
  defaultDestinationRuleExportTo: string[];
  // Telemetry (istio/api mesh/v1alpha1/config.proto; consumed by model/telemetry.ts and xds/builders/telemetry.ts).
  /** Legacy access log: a file path (`/dev/stdout`); empty = no access log unless the Telemetry API configures one. */
  accessLogFile: string;
  accessLogEncoding: 'TEXT' | 'JSON';
  /** Text format string, or for JSON encoding a JSON object text; empty = Istio's default format. */
  accessLogFormat: string;
  /** Legacy tracing: HCM tracing (sampling, tags; the tracer from the bootstrap) when no Telemetry selects tracing. */
  enableTracing: boolean;
  /** Providers used where a Telemetry rule names none (and, when set, even without any Telemetry). */
  defaultProviders: TelemetryDefaultProviders;
  /** Named telemetry providers. Istio's built-in `prometheus`, `stackdriver` and `envoy` always exist unless redefined. */
  extensionProviders: ExtensionProvider[];
  /**
   * How proxies normalise request paths before routing and authorization (MeshConfig pathNormalization). mizzen's
   * default is MERGE_SLASHES, not Istio's BASE: `//admin` must not slip past an AuthorizationPolicy on `/admin`.
   */
  pathNormalization: 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';
  /** The mesh-wide ProxyConfig (only what telemetry reads). */
  defaultConfig: MeshProxyConfig;
}

/**
 * The providers istiod's DefaultMeshConfig defines; user providers with the same name replace them, others are
 * added (ApplyMeshConfig), so these exist in every mesh.
 */
export const BUILTIN_EXTENSION_PROVIDERS: ExtensionProvider[] = [
  { name: 'prometheus', prometheus: {} },
  { name: 'stackdriver', stackdriver: {} },
  { name: 'envoy', envoyFileAccessLog: { path: '/dev/stdout' } },
];

export const DEFAULT_MESH: MeshConfig = {
  rootNamespace: 'istio-system',
  trustDomain: 'cluster.local',
  domainSuffix: 'cluster.local',
  outboundTrafficPolicy: 'ALLOW_ANY',
  connectTimeoutMs: 10_000,
  enableAutoMtls: true,
  localityLbEnabled: true,
  defaultServiceExportTo: ['*'],
  defaultVirtualServiceExportTo: ['*'],
  defaultDestinationRuleExportTo: ['*'],
  accessLogFile: '',
  accessLogEncoding: 'TEXT',
  accessLogFormat: '',
  enableTracing: true,
  // Istio's install sets prometheus as the default metrics provider (the standard istio_* metrics).
  defaultProviders: { metrics: ['prometheus'] },
  extensionProviders: BUILTIN_EXTENSION_PROVIDERS,
  pathNormalization: 'MERGE_SLASHES',
  defaultConfig: {},
};

export interface TelemetryDefaultProviders {
  tracing?: string[];
  metrics?: string[];
  accessLogging?: string[];
}

/** MeshConfig.ExtensionProvider.HttpHeader: a literal value or one read from istiod's environment. */
export interface ProviderHeader {
  name: string;
  value?: string;
  envName?: string;
}

/** Access-log formats of the file and OpenTelemetry log providers: a text line or JSON labels (Struct). */
export interface ProviderLogFormat {
  text?: string;
  labels?: Record<string, unknown>;
}

/** A provider that reports to a service in the registry: `service` is `[<namespace>/]<hostname>`. */
export interface ServiceTarget {
  service: string;
  port: number;
}

/** MeshConfig.ExtensionProvider: a name and exactly one provider kind. */
export interface ExtensionProvider {
  name: string;
  envoyFileAccessLog?: { path?: string; logFormat?: ProviderLogFormat; omitEmptyValues?: boolean };
  envoyHttpAls?: ServiceTarget & {
    logName?: string;
    filterStateObjectsToLog?: string[];
    additionalRequestHeadersToLog?: string[];
    additionalResponseHeadersToLog?: string[];
    additionalResponseTrailersToLog?: string[];
  };
  envoyTcpAls?: ServiceTarget & { logName?: string; filterStateObjectsToLog?: string[] };
  envoyOtelAls?: ServiceTarget & { logName?: string; logFormat?: ProviderLogFormat };
  zipkin?: ServiceTarget & { maxTagLength?: number; enable64bitTraceId?: boolean; path?: string };
  datadog?: ServiceTarget & { maxTagLength?: number };
  lightstep?: ServiceTarget & { accessToken?: string; maxTagLength?: number };
  skywalking?: ServiceTarget & { accessToken?: string };
  opentelemetry?: ServiceTarget & {
    maxTagLength?: number;
    http?: { path?: string; timeout?: string; headers?: ProviderHeader[] };
    grpc?: { timeout?: string; initialMetadata?: ProviderHeader[] };
    resourceDetectors?: { environment?: Record<string, never>; dynatrace?: Record<string, never> };
    /** Any sampler set here makes Envoy sample 100% and leaves the decision to it (tracing.go). */
    dynatraceSampler?: Record<string, unknown>;
  };
  opencensus?: ServiceTarget & { maxTagLength?: number; context?: string[] };
  prometheus?: Record<string, never>;
  stackdriver?: Record<string, unknown>;
  /** CUSTOM AuthorizationPolicy providers (xds/builders/ext-authz.ts); not read by telemetry. */
  envoyExtAuthzHttp?: EnvoyExtAuthzHttpProvider;
  envoyExtAuthzGrpc?: EnvoyExtAuthzGrpcProvider;
}

/** MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationRequestBody: buffer the request body into the check. */
export interface ExtAuthzRequestBody {
  maxRequestBytes?: number;
  allowPartialMessage?: boolean;
  /** gRPC providers only: the body goes in `raw_body` as bytes instead of `body` as UTF-8. */
  packAsBytes?: boolean;
}

/**
 * MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationHttpProvider (istio/api mesh/v1alpha1/config.proto). Header
 * lists take exact, `prefix*` and `*suffix` names (a lone `*` is refused).
 */
export interface EnvoyExtAuthzHttpProvider extends ServiceTarget {
  /** Duration text (`0.5s`); default 600s. */
  timeout?: string;
  /** Must start with `/`; prepended to the checked request's path. */
  pathPrefix?: string;
  /** Allow the request when the authorizer cannot be reached or answers 5xx (default false: deny). */
  failOpen?: boolean;
  /** An HTTP status code as text (`"500"`), sent when the authorizer cannot be reached; Envoy's default is 403. */
  statusOnError?: string;
  /** Deprecated by includeRequestHeadersInCheck, read only when that is unset. */
  includeHeadersInCheck?: string[];
  includeRequestHeadersInCheck?: string[];
  includeAdditionalHeadersInCheck?: Record<string, string>;
  includeRequestBodyInCheck?: ExtAuthzRequestBody;
  headersToUpstreamOnAllow?: string[];
  headersToDownstreamOnDeny?: string[];
  headersToDownstreamOnAllow?: string[];
}

/** MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider: also checks TCP connections. */
export interface EnvoyExtAuthzGrpcProvider extends ServiceTarget {
  timeout?: string;
  failOpen?: boolean;
  statusOnError?: string;
  includeRequestBodyInCheck?: ExtAuthzRequestBody;
}

/** ProxyConfig.tracing custom tags (meshconfig.Tracing.CustomTag): literal, environment or request header. */
export interface ProxyTracingCustomTag {
  literal?: { value: string };
  environment?: { name: string; defaultValue?: string };
  header?: { name: string; defaultValue?: string };
}

export interface MeshProxyConfig {
  tracing?: {
    /** Percent, 0–100; 0/unset = istiod's PILOT_TRACE_SAMPLING (1.0). */
    sampling?: number;
    customTags?: Record<string, ProxyTracingCustomTag>;
    maxPathTagLength?: number;
    /** Default true. */
    enableIstioTags?: boolean;
  };
}
