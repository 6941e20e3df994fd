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
    value = parseYaml(text, { version: '1.1' });
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
    user.push(p as unknown as ExtensionProvider);
  });
  return [...BUILTIN_EXTENSION_PROVIDERS.filter((b) => !names.has(b.name)), ...user];
}
