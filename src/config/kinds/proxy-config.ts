/**
 * ProxyConfig (networking.istio.io v1beta1): per-workload proxy settings (worker threads, environment, image type).
 * Fields follow istio/api networking/v1beta1/proxy_config.proto; rules follow istio/istio ValidateProxyConfig.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkNonNegative, checkSelectorLabels, collector } from './checks.ts';
import { Int32, MatchLabelsSelector, Obj, Opt } from './common.ts';
import { defineKind } from './kind.ts';

export const ProxyConfigSpecSchema = Obj({
  selector: Opt(MatchLabelsSelector()),
  /** Worker threads; 0 means one per core. */
  concurrency: Opt(Int32()),
  environmentVariables: Opt(Type.Record(Type.String(), Type.String({ maxLength: 2048 }))),
  /** `imageType` is e.g. `default`, `debug` or `distroless`. */
  image: Opt(Obj({ imageType: Opt(Type.String()) })),
});
export type ProxyConfigSpec = Static<typeof ProxyConfigSpecSchema>;

function check(spec: ProxyConfigSpec): FieldError[] {
  const { errors, report } = collector();
  checkSelectorLabels(report, 'spec.selector.matchLabels', spec.selector?.matchLabels);
  checkNonNegative(report, 'spec.concurrency', spec.concurrency);
  return errors;
}

export const proxyConfig = defineKind<ProxyConfigSpec>({
  group: 'networking.istio.io',
  kind: 'ProxyConfig',
  plural: 'proxyconfigs',
  versions: ['v1beta1'],
  namespaced: true,
  spec: ProxyConfigSpecSchema,
  check,
});
