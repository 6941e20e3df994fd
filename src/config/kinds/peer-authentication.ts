/**
 * PeerAuthentication (security.istio.io): which mutual-TLS mode a workload's inbound traffic gets, optionally per port.
 * Fields follow istio/api security/v1beta1/peer_authentication.proto; rules follow istio/istio ValidatePeerAuthentication
 * and the CRD's CEL rules.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkSelectorLabels, collector, keyPath } from './checks.ts';
import { Enum, MatchLabelsSelector, Obj, Opt } from './common.ts';
import { defineKind } from './kind.ts';

export const MTLS_MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;
export type MutualTLSMode = (typeof MTLS_MODES)[number];

export const MutualTLSSchema = Obj({ mode: Opt(Enum(MTLS_MODES)) });
export type MutualTLS = Static<typeof MutualTLSSchema>;

export const PeerAuthenticationSpecSchema = Obj({
  selector: Opt(MatchLabelsSelector()),
  mtls: Opt(MutualTLSSchema),
  /** Port number (as a string key, which is how YAML map keys arrive) → mode for that port. */
  portLevelMtls: Opt(Type.Record(Type.String(), MutualTLSSchema)),
});
export type PeerAuthenticationSpec = Static<typeof PeerAuthenticationSpecSchema>;

function check(spec: PeerAuthenticationSpec): FieldError[] {
  const { errors, report } = collector();
  checkSelectorLabels(report, 'spec.selector.matchLabels', spec.selector?.matchLabels);
  if (spec.portLevelMtls) {
    const ports = Object.keys(spec.portLevelMtls);
    // Port-level settings only make sense for a selected workload: mesh- and namespace-wide policies cannot know ports.
    if (Object.keys(spec.selector?.matchLabels ?? {}).length === 0) {
      report('spec.portLevelMtls', 'portLevelMtls requires a workload selector (mesh/namespace-wide policies cannot have port-level mTLS)');
    }
    if (ports.length === 0) report('spec.portLevelMtls', 'portLevelMtls, if set, must have at least one port');
    for (const port of ports) {
      const n = /^\d+$/.test(port) ? Number(port) : NaN;
      if (!(n >= 1 && n <= 65535)) report(keyPath('spec.portLevelMtls', port), `port must be a number in 1..65535, got "${port}"`);
    }
  }
  return errors;
}

export const peerAuthentication = defineKind<PeerAuthenticationSpec>({
  group: 'security.istio.io',
  kind: 'PeerAuthentication',
  plural: 'peerauthentications',
  versions: ['v1', 'v1beta1'],
  namespaced: true,
  spec: PeerAuthenticationSpecSchema,
  check,
});
