/**
 * Every message type `mizzen analyze` can emit. The IST codes, levels and templates are Istio's
 * (pkg/config/analysis/msg/messages.yaml); IST0113 is one Istio has retired (it was written for the old Policy
 * kind) and mizzen revives it for PeerAuthentication with its original meaning and text. MZA codes are mizzen's own
 * analyzers for the anti-patterns in the user's reference docs; docs/analyzers.md explains each one and its fix.
 */
import { list, q, type MessageType } from './message.ts';

const t = (code: string, name: string, level: MessageType['level'], description: string): MessageType => ({ code, name, level, description });

export const T = {
  ReferencedResourceNotFound: t('IST0101', 'ReferencedResourceNotFound', 'Error', 'A resource being referenced does not exist.'),
  NamespaceNotInjected: t('IST0102', 'NamespaceNotInjected', 'Info', 'A namespace is not enabled for Istio injection.'),
  SchemaValidationError: t('IST0106', 'SchemaValidationError', 'Error', 'The resource has a schema validation error.'),
  MisplacedAnnotation: t('IST0107', 'MisplacedAnnotation', 'Warning', 'An Istio annotation is applied to the wrong kind of resource.'),
  UnknownAnnotation: t('IST0108', 'UnknownAnnotation', 'Warning', 'An Istio annotation is not recognized for any kind of resource.'),
  ConflictingMeshGatewayVirtualServiceHosts: t('IST0109', 'ConflictingMeshGatewayVirtualServiceHosts', 'Error', 'Conflicting hosts on VirtualServices associated with mesh gateway.'),
  MTLSPolicyConflict: t('IST0113', 'MTLSPolicyConflict', 'Error', 'A DestinationRule and a PeerAuthentication are in conflict with regards to mTLS.'),
  PortNameIsNotUnderNamingConvention: t('IST0118', 'PortNameIsNotUnderNamingConvention', 'Info', 'Port name is not under naming convention. Protocol detection is applied to the port.'),
  VirtualServiceHostNotFoundInGateway: t('IST0132', 'VirtualServiceHostNotFoundInGateway', 'Warning', 'Host defined in VirtualService not found in Gateway.'),
  DeprecatedAnnotation: t('IST0135', 'DeprecatedAnnotation', 'Info', 'A resource is using a deprecated Istio annotation.'),
  ExternalNameServiceTypeInvalidPortName: t('IST0150', 'ExternalNameServiceTypeInvalidPortName', 'Warning', 'Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly for ExternalName services.'),

  StrictMtlsBeforeMeshComplete: t('MZA0001', 'StrictMtlsBeforeMeshComplete', 'Warning', 'STRICT mTLS is enforced while workloads known to run without a sidecar remain: their plaintext calls are refused.'),
  AllowPolicyWithoutDenyAllBaseline: t('MZA0002', 'AllowPolicyWithoutDenyAllBaseline', 'Warning', 'An ALLOW AuthorizationPolicy selects some workloads, but no deny-all baseline covers the rest of the namespace.'),
  UnusedDestinationRuleSubset: t('MZA0003', 'UnusedDestinationRuleSubset', 'Warning', 'A DestinationRule subset that no VirtualService routes to has no effect.'),
  FaultInjectionWithoutKillSwitch: t('MZA0004', 'FaultInjectionWithoutKillSwitch', 'Warning', 'Fault injection applies to every request of a route: no request header or source condition switches it on or off.'),
  SidecarResourcesMissing: t('MZA0005', 'SidecarResourcesMissing', 'Warning', 'The injected istio-proxy container would get no CPU/memory requests or limits.'),
  OlderIstioApiVersion: t('MZA0006', 'OlderIstioApiVersion', 'Info', 'An Istio resource uses an older API version (or the removed in-cluster IstioOperator): check it before upgrading.'),
} as const;

export type TypeName = keyof typeof T;

/** Message texts, one function per template (Istio's wording for IST codes). */
export const Text = {
  referencedResourceNotFound: (reftype: string, refval: string) => `Referenced ${reftype} not found: ${q(refval)}`,
  namespaceNotInjected: (ns: string) =>
    `The namespace is not enabled for Istio injection. Run 'kubectl label namespace ${ns} istio-injection=enabled' to enable it, or 'kubectl label namespace ${ns} istio-injection=disabled' to explicitly mark it as not needing injection.`,
  schemaValidationError: (err: string) => `Schema validation error: ${err}`,
  misplacedAnnotation: (annotation: string, kinds: string) => `Misplaced annotation: ${annotation} can only be applied to ${kinds}`,
  unknownAnnotation: (annotation: string) => `Unknown annotation: ${annotation}`,
  conflictingMeshGatewayHosts: (virtualServices: string, host: string) =>
    `The VirtualServices ${virtualServices} associated with mesh gateway define the same host ${host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.`,
  mtlsPolicyConflict: (host: string, destinationRule: string, drMtls: boolean, policy: string, policyMode: string) =>
    `A DestinationRule and Policy are in conflict with regards to mTLS for host ${host}. The DestinationRule ${q(destinationRule)} specifies that mTLS must be ${String(drMtls)} but the Policy object ${q(policy)} specifies ${policyMode}.`,
  portNameNotUnderConvention: (portName: string, port: number, targetPort: string) =>
    `Port name ${portName} (port: ${port}, targetPort: ${targetPort}) doesn't follow the naming convention of Istio port.`,
  vsHostNotFoundInGateway: (hosts: readonly string[], virtualService: string, gateway: string) =>
    `one or more host ${list(hosts)} defined in VirtualService ${virtualService} not found in Gateway ${gateway}.`,
  deprecatedAnnotation: (annotation: string, extra: string) => `Annotation ${q(annotation)} has been deprecated${extra} and may not work in future Istio versions.`,
  externalNameInvalidPortName: () =>
    'Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly',
};
