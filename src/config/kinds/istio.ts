/** Every Istio config kind mizzen understands, for a KindRegistry. */
import { authorizationPolicy } from './authorization-policy.ts';
import { destinationRule } from './destination-rule.ts';
import { envoyFilter } from './envoy-filter.ts';
import { gateway } from './gateway.ts';
import { peerAuthentication } from './peer-authentication.ts';
import { proxyConfig } from './proxy-config.ts';
import { requestAuthentication } from './request-authentication.ts';
import { serviceEntry } from './service-entry.ts';
import { sidecar } from './sidecar.ts';
import { telemetry } from './telemetry.ts';
import { virtualService } from './virtual-service.ts';
import { wasmPlugin } from './wasm-plugin.ts';
import { workloadEntry } from './workload-entry.ts';
import { workloadGroup } from './workload-group.ts';

export const istioKinds = [
  virtualService,
  destinationRule,
  gateway,
  serviceEntry,
  workloadEntry,
  workloadGroup,
  sidecar,
  envoyFilter,
  proxyConfig,
  peerAuthentication,
  authorizationPolicy,
  requestAuthentication,
  telemetry,
  wasmPlugin,
] as const;
