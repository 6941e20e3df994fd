/**
 * MeshConfig from YAML (`serve --mesh-config`, istiod's `--meshConfig`): the mesh-wide settings of the `istio`
 * ConfigMap's `mesh` key, or that whole ConfigMap. Only the fields mizzen reads are typed and checked; every other
 * MeshConfig field is accepted and listed as not used, so an istiod mesh config works unchanged. A field of the wrong
 * type or value is refused with its path — a bad mesh config stops `serve` at start instead of half-applying.
 */
import { parse as parseYaml } from 'yaml';
import { BUILTIN_EXTENSION_PROVIDERS, type ExtensionProvider, type MeshConfig, type MeshProxyConfig, type TelemetryDefaultProviders } from '../model/mesh.ts';
import { fail, ok, type FieldError, type Result } from '../shared/errors.ts';
import { parseDurationMs } from './kinds/common.ts';

export interface ParsedMeshConfig {
  mesh: Partial<MeshConfig>;
  /** Top-level MeshConfig fields present but not used by mizzen. */
  unused: string[];
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const READ = new Set([
  'rootNamespace', 'trustDomain', 'outboundTrafficPolicy', 'connectTimeout', 'enableAutoMtls', 'localityLbSetting',
  'defaultServiceExportTo', 'defaultVirtualServiceExportTo', 'defaultDestinationRuleExportTo', 'accessLogFile',
  'accessLogEncoding', 'accessLogFormat', 'enableTracing', 'defaultProviders', 'extensionProviders', 'pathNormalization',
  'defaultConfig',
]);

export function parseMeshConfig(text: string): Result<ParsedMeshConfig, FieldError[]> {
  let value: unknown;
  try {
    value = parseYaml(text, { version: '1.1', logLevel: 'error' });
  } catch (err) {
    return fail([{ path: '', message: `not YAML: ${(err as Error).message.split('\n')[0]}` }]);
  }
  // The whole `istio` ConfigMap is accepted too: its `mesh` key holds the MeshConfig.
  if (isRecord(value) && value.kind === 'ConfigMap' && isRecord(value.data) && typeof value.data.mesh === 'string') return parseMeshConfig(value.data.mesh);
  if (value === null || value === undefined) return ok({ mesh: {}, unused: [] });
  if (!isRecord(value)) return fail([{ path: '', message: 'a MeshConfig must be a YAML mapping' }]);

  const errors: FieldError[] = [];
  const v = value;
  const mesh: Partial<MeshConfig> = {};
  const str = (key: string): string | undefined => {
    const x = v[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string') errors.push({ path: key, message: `must be a string, got ${typeof x}` });
    return typeof x === 'string' ? x : undefined;
  };
  const bool = (x: unknown, path: string): boolean | undefined => {
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'boolean') errors.push({ path, message: `must be true or false, got ${JSON.stringify(x)}` });
    return typeof x === 'boolean' ? x : undefined;
  };
  const strings = (x: unknown, path: string): string[] | undefined => {
    if (x === undefined || x === null) return undefined;
    if (!Array.isArray(x) || x.some((s) => typeof s !== 'string')) {
      errors.push({ path, message: 'must be a list of strings' });
      return undefined;
    }
    return x as string[];
  };
  const oneOf = <T extends string>(x: unknown, path: string, allowed: readonly T[]): T | undefined => {
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' || !allowed.includes(x as T)) errors.push({ path, message: `must be one of ${allowed.join(', ')}, got ${JSON.stringify(x)}` });
    return allowed.includes(x as T) ? (x as T) : undefined;
  };
  const set = <K extends keyof MeshConfig>(key: K, x: MeshConfig[K] | undefined) => {
    if (x !== undefined) mesh[key] = x;
  };

  set('rootNamespace', str('rootNamespace'));
  set('trustDomain', str('trustDomain'));
  set('accessLogFile', str('accessLogFile'));
  set('accessLogFormat', str('accessLogFormat'));
  set('accessLogEncoding', oneOf(v.accessLogEncoding, 'accessLogEncoding', ['TEXT', 'JSON'] as const));
  set('enableAutoMtls', bool(v.enableAutoMtls, 'enableAutoMtls'));
  set('enableTracing', bool(v.enableTracing, 'enableTracing'));
  for (const key of ['defaultServiceExportTo', 'defaultVirtualServiceExportTo', 'defaultDestinationRuleExportTo'] as const) set(key, strings(v[key], key));

  if (v.outboundTrafficPolicy !== undefined) {
    if (!isRecord(v.outboundTrafficPolicy)) errors.push({ path: 'outboundTrafficPolicy', message: 'must be a mapping ({ mode: ALLOW_ANY | REGISTRY_ONLY })' });
    else set('outboundTrafficPolicy', oneOf(v.outboundTrafficPolicy.mode, 'outboundTrafficPolicy.mode', ['ALLOW_ANY', 'REGISTRY_ONLY'] as const));
  }
  const timeout = str('connectTimeout');
  if (timeout !== undefined) {
    const ms = parseDurationMs(timeout);
    if (ms === undefined || ms <= 0) errors.push({ path: 'connectTimeout', message: `invalid duration ${JSON.stringify(timeout)} (e.g. 10s, 500ms)` });
    else mesh.connectTimeoutMs = ms;
  }
  if (v.localityLbSetting !== undefined) {
    if (!isRecord(v.localityLbSetting)) errors.push({ path: 'localityLbSetting', message: 'must be a mapping' });
    else set('localityLbEnabled', bool(v.localityLbSetting.enabled, 'localityLbSetting.enabled'));
  }
  if (v.pathNormalization !== undefined) {
    if (!isRecord(v.pathNormalization)) errors.push({ path: 'pathNormalization', message: 'must be a mapping ({ normalization: … })' });
    else set('pathNormalization', oneOf(v.pathNormalization.normalization, 'pathNormalization.normalization', ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const));
  }
  if (v.defaultProviders !== undefined) {
    if (!isRecord(v.defaultProviders)) errors.push({ path: 'defaultProviders', message: 'must be a mapping' });
    else {
      const p: TelemetryDefaultProviders = {};
      for (const k of ['tracing', 'metrics', 'accessLogging'] as const) {
        const list = strings(v.defaultProviders[k], `defaultProviders.${k}`);
        if (list) p[k] = list;
      }
      mesh.defaultProviders = p;
    }
  }
  if (v.extensionProviders !== undefined) {
    const providers = extensionProviders(v.extensionProviders, errors);
    if (providers) mesh.extensionProviders = providers;
  }
  if (v.defaultConfig !== undefined) {
    if (!isRecord(v.defaultConfig)) errors.push({ path: 'defaultConfig', message: 'must be a mapping (ProxyConfig)' });
    else mesh.defaultConfig = v.defaultConfig as MeshProxyConfig;
  }

  if (errors.length > 0) return fail(errors);
  return ok({ mesh, unused: Object.keys(v).filter((k) => !READ.has(k)).sort() });
}

/** User providers replace built-ins of the same name and add to the rest (istiod's ApplyMeshConfig). */
function extensionProviders(x: unknown, errors: FieldError[]): ExtensionProvider[] | undefined {
  if (!Array.isArray(x)) {
    errors.push({ path: 'extensionProviders', message: 'must be a list' });
    return undefined;
  }
  const names = new Set<string>();
  const user: ExtensionProvider[] = [];
  x.forEach((p: unknown, i) => {
    const path = `extensionProviders[${i}]`;
    if (!isRecord(p) || typeof p.name !== 'string' || !p.name) {
      errors.push({ path: `${path}.name`, message: 'every provider needs a name' });
      return;
    }
    if (names.has(p.name)) errors.push({ path: `${path}.name`, message: `duplicate provider name ${JSON.stringify(p.name)}` });
    names.add(p.name);
    const kinds = Object.keys(p).filter((k) => k !== 'name');
    if (kinds.length !== 1) errors.push({ path, message: `a provider has exactly one kind (envoyFileAccessLog, opentelemetry, zipkin, …), got ${kinds.length}` });
    const provider = { ...p } as unknown as ExtensionProvider;
    for (const kind of ['envoyExtAuthzHttp', 'envoyExtAuthzGrpc'] as const) {
      if (p[kind] !== undefined) {
        const checked = extAuthzProvider(kind, p[kind], `${path}.${kind}`, errors);
        if (checked) (provider as unknown as Record<string, unknown>)[kind] = checked;
      }
    }
    user.push(provider);
  });
  return [...BUILTIN_EXTENSION_PROVIDERS.filter((b) => !names.has(b.name)), ...user];
}

const EXT_AUTHZ_COMMON = ['service', 'port', 'timeout', 'failOpen', 'statusOnError', 'includeRequestBodyInCheck'];
const EXT_AUTHZ_HTTP_ONLY = [
  'pathPrefix', 'includeHeadersInCheck', 'includeRequestHeadersInCheck', 'includeAdditionalHeadersInCheck', 'headersToUpstreamOnAllow',
  'headersToDownstreamOnDeny', 'headersToDownstreamOnAllow',
];
const HEADER_LISTS = ['includeHeadersInCheck', 'includeRequestHeadersInCheck', 'headersToUpstreamOnAllow', 'headersToDownstreamOnDeny', 'headersToDownstreamOnAllow'];

/**
 * MeshConfig.ExtensionProvider envoyExtAuthzHttp / envoyExtAuthzGrpc (istio/api mesh/v1alpha1/config.proto), with the
 * checks istiod makes before building the ext_authz filter (builder/extauthz.go): service and port required, port in
 * [1, 65535] (a number, or its text as proto JSON allows), timeout a duration, statusOnError an HTTP status code as
 * text, pathPrefix starting with `/`, no lone `*` in header lists, maxRequestBytes > 0. Unknown fields are refused, as
 * istiod's strict MeshConfig parsing does. Returns the provider with `port` as a number and `statusOnError` as text.
 */
function extAuthzProvider(kind: 'envoyExtAuthzHttp' | 'envoyExtAuthzGrpc', x: unknown, path: string, errors: FieldError[]): Record<string, unknown> | undefined {
  if (!isRecord(x)) {
    errors.push({ path, message: 'must be a mapping' });
    return undefined;
  }
  const before = errors.length;
  const err = (field: string, message: string) => errors.push({ path: `${path}.${field}`, message });
  const known = kind === 'envoyExtAuthzHttp' ? [...EXT_AUTHZ_COMMON, ...EXT_AUTHZ_HTTP_ONLY] : EXT_AUTHZ_COMMON;
  for (const k of Object.keys(x)) if (!known.includes(k)) err(k, `unknown field for ${kind}${EXT_AUTHZ_HTTP_ONLY.includes(k) ? ' (HTTP providers only)' : ''}`);
  const out: Record<string, unknown> = { ...x };

  if (typeof x.service !== 'string' || x.service === '') err('service', 'required: the authorizer service, [<namespace>/]<hostname>');
  const port = typeof x.port === 'string' && /^\d+$/.test(x.port) ? Number(x.port) : x.port;
  if (x.port === undefined || x.port === null) err('port', 'required: the authorizer service port');
  else if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) err('port', `must be in the range [1, 65535], got ${JSON.stringify(x.port)}`);
  else out.port = port;
  if (x.timeout !== undefined) {
    const ms = typeof x.timeout === 'string' ? parseDurationMs(x.timeout) : undefined;
    if (ms === undefined) err('timeout', `invalid duration ${JSON.stringify(x.timeout)} (e.g. 10s, 500ms)`);
  }
  if (x.failOpen !== undefined && typeof x.failOpen !== 'boolean') err('failOpen', `must be true or false, got ${JSON.stringify(x.failOpen)}`);
  if (x.statusOnError !== undefined) {
    const text = typeof x.statusOnError === 'number' ? String(x.statusOnError) : x.statusOnError;
    if (typeof text !== 'string' || !/^[1-5]\d\d$/.test(text)) err('statusOnError', `must be an HTTP status code such as "503", got ${JSON.stringify(x.statusOnError)}`);
    else out.statusOnError = text;
  }
  if (x.includeRequestBodyInCheck !== undefined) {
    const b = x.includeRequestBodyInCheck;
    const bp = 'includeRequestBodyInCheck';
    if (!isRecord(b)) err(bp, 'must be a mapping ({ maxRequestBytes, allowPartialMessage, packAsBytes })');
    else {
      for (const k of Object.keys(b)) if (!['maxRequestBytes', 'allowPartialMessage', 'packAsBytes'].includes(k)) err(`${bp}.${k}`, 'unknown field');
      if (typeof b.maxRequestBytes !== 'number' || !Number.isInteger(b.maxRequestBytes) || b.maxRequestBytes < 1 || b.maxRequestBytes > 0xffffffff) {
        err(`${bp}.maxRequestBytes`, `required, an integer greater than 0 (Envoy refuses 0), got ${JSON.stringify(b.maxRequestBytes)}`);
      }
      for (const k of ['allowPartialMessage', 'packAsBytes']) if (b[k] !== undefined && typeof b[k] !== 'boolean') err(`${bp}.${k}`, `must be true or false, got ${JSON.stringify(b[k])}`);
    }
  }
  if (kind === 'envoyExtAuthzHttp') {
    if (x.pathPrefix !== undefined && (typeof x.pathPrefix !== 'string' || (x.pathPrefix !== '' && !x.pathPrefix.startsWith('/')))) {
      err('pathPrefix', `must begin with /, got ${JSON.stringify(x.pathPrefix)}`);
    }
    for (const k of HEADER_LISTS) {
      const list = x[k];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.some((h) => typeof h !== 'string' || h === '')) err(k, 'must be a list of header names');
      else if (list.includes('*')) err(k, 'a single wildcard ("*") is not supported, use a prefix (x-*) or suffix (*-id) match');
    }
    const extra = x.includeAdditionalHeadersInCheck;
    if (extra !== undefined && (!isRecord(extra) || Object.entries(extra).some(([k, v]) => k === '' || typeof v !== 'string'))) {
      err('includeAdditionalHeadersInCheck', 'must be a mapping of header name to value (strings)');
    }
  }
  return errors.length === before ? out : undefined;
}
