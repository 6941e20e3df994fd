/**
 * WasmPlugin (extensions.istio.io v1alpha1): a WebAssembly filter fetched from a URL/OCI image and inserted into the
 * proxies a selector or targetRef picks. Fields follow istio/api extensions/v1alpha1/wasm.proto; rules follow
 * istio/istio ValidateWasmPlugin and the CRD's CEL rules. `pluginConfig` is free-form (a protobuf Struct).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkPolicySelection, collector } from './checks.ts';
import { Enum, Int32, MatchLabelsSelector, Obj, Opt, PolicyTargetReference, PortNumber } from './common.ts';
import { defineKind } from './kind.ts';

export const WASM_PHASES = ['UNSPECIFIED_PHASE', 'AUTHN', 'AUTHZ', 'STATS'] as const;
export type PluginPhase = (typeof WASM_PHASES)[number];

export const EnvVarSchema = Obj({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  valueFrom: Opt(Enum(['INLINE', 'HOST'] as const)),
  value: Opt(Type.String({ maxLength: 2048 })),
});
export type EnvVar = Static<typeof EnvVarSchema>;
export const VmConfigSchema = Obj({ env: Opt(Type.Array(EnvVarSchema, { maxItems: 256 })) });
export type VmConfig = Static<typeof VmConfigSchema>;

export const WasmPluginTrafficSelectorSchema = Obj({
  mode: Opt(Enum(['UNDEFINED', 'CLIENT', 'SERVER', 'CLIENT_AND_SERVER'] as const)),
  ports: Opt(Type.Array(Obj({ number: PortNumber() }))),
});
export type WasmPluginTrafficSelector = Static<typeof WasmPluginTrafficSelectorSchema>;

export const WasmPluginSpecSchema = Obj({
  selector: Opt(MatchLabelsSelector()),
  targetRef: Opt(PolicyTargetReference()),
  targetRefs: Opt(Type.Array(PolicyTargetReference(), { maxItems: 16 })),
  url: Type.String(),
  sha256: Opt(Type.String()),
  imagePullPolicy: Opt(Enum(['UNSPECIFIED_POLICY', 'IfNotPresent', 'Always'] as const)),
  imagePullSecret: Opt(Type.String({ maxLength: 253 })),
  pluginConfig: Opt(Type.Record(Type.String(), Type.Unknown())),
  pluginName: Opt(Type.String({ maxLength: 256 })),
  phase: Opt(Enum(WASM_PHASES)),
  priority: Opt(Int32()),
  failStrategy: Opt(Enum(['FAIL_CLOSE', 'FAIL_OPEN', 'FAIL_RELOAD'] as const)),
  vmConfig: Opt(VmConfigSchema),
  match: Opt(Type.Array(WasmPluginTrafficSelectorSchema)),
  type: Opt(Enum(['UNSPECIFIED_PLUGIN_TYPE', 'HTTP', 'NETWORK'] as const)),
  verificationKey: Opt(Type.String()),
});
export type WasmPluginSpec = Static<typeof WasmPluginSpecSchema>;

/** validateWasmPluginURL: `oci://`, `http(s)://`, `file://`, or a bare image reference (treated as OCI). */
function urlError(url: string): string | undefined {
  if (url === '') return 'url must be set';
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (m && !['http', 'https', 'oci', 'file'].includes((m[1] as string).toLowerCase())) return `url scheme must be one of http, https, oci, file, got "${m[1]}"`;
  try {
    new URL(m ? url : `oci://${url}`);
  } catch {
    return `url "${url}" cannot be parsed`;
  }
  return undefined;
}

function check(spec: WasmPluginSpec): FieldError[] {
  const { errors, report } = collector();
  checkPolicySelection(report, spec);
  const err = urlError(spec.url);
  if (err) report('spec.url', err);
  if (spec.sha256 && !/^[a-f0-9]{64}$/.test(spec.sha256)) report('spec.sha256', 'sha256 must be 64 lower-case hex characters');
  const names = new Set<string>();
  spec.vmConfig?.env?.forEach((e, i) => {
    const p = `spec.vmConfig.env[${i}]`;
    if (names.has(e.name)) report(`${p}.name`, `duplicate env name "${e.name}"`);
    names.add(e.name);
    // A HOST variable takes its value from the proxy's environment; an inline value would be ignored.
    if (e.valueFrom === 'HOST' && e.value !== undefined) report(`${p}.value`, 'value may only be set when valueFrom is INLINE');
  });
  spec.match?.forEach((m, i) => {
    m.ports?.forEach((port, j) => {
      if (port.number < 1) report(`spec.match[${i}].ports[${j}].number`, `port number ${port.number} must be in the range 1..65535`);
    });
  });
  return errors;
}

export const wasmPlugin = defineKind<WasmPluginSpec>({
  group: 'extensions.istio.io',
  kind: 'WasmPlugin',
  plural: 'wasmplugins',
  versions: ['v1alpha1'],
  namespaced: true,
  spec: WasmPluginSpecSchema,
  check,
});
