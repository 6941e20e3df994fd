/**
 * ServiceEntry (networking.istio.io): adds services to the mesh's registry — external APIs, VMs, or hosts backed by
 * WorkloadEntries. Fields follow istio/api networking/v1alpha3/service_entry.proto; rules follow istio/istio
 * ValidateServiceEntry.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import {
  checkExportTo, checkPort, checkProtocol, checkSelectorLabels, collector, fqdnError, ipSubnetError, isDns1123Label,
  isHTTPProtocol, isTLSProtocol, wildcardDomainError,
} from './checks.ts';
import { Enum, Obj, Opt, UInt32, WorkloadSelector } from './common.ts';
import { defineKind } from './kind.ts';
import { checkWorkloadEntry, WorkloadEntrySpecSchema } from './workload-entry.ts';

export const ServicePortSchema = Obj({
  number: UInt32(),
  protocol: Opt(Type.String()),
  name: Type.String(),
  targetPort: Opt(UInt32()),
});
export type ServicePort = Static<typeof ServicePortSchema>;

export const SERVICE_ENTRY_RESOLUTIONS = ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS'] as const;
export type ServiceEntryResolution = (typeof SERVICE_ENTRY_RESOLUTIONS)[number];

export const ServiceEntrySpecSchema = Obj({
  hosts: Type.Array(Type.String()),
  addresses: Opt(Type.Array(Type.String())),
  ports: Opt(Type.Array(ServicePortSchema)),
  location: Opt(Enum(['MESH_EXTERNAL', 'MESH_INTERNAL'] as const)),
  resolution: Opt(Enum(SERVICE_ENTRY_RESOLUTIONS)),
  endpoints: Opt(Type.Array(WorkloadEntrySpecSchema)),
  workloadSelector: Opt(WorkloadSelector()),
  exportTo: Opt(Type.Array(Type.String())),
  subjectAltNames: Opt(Type.Array(Type.String())),
});
export type ServiceEntrySpec = Static<typeof ServiceEntrySpecSchema>;

function check(spec: ServiceEntrySpec, meta: { name: string; namespace: string }): FieldError[] {
  const { errors, report } = collector();
  const resolution: ServiceEntryResolution = spec.resolution ?? 'NONE';
  checkSelectorLabels(report, 'spec.workloadSelector.labels', spec.workloadSelector?.labels);
  if (spec.workloadSelector && spec.endpoints) report('spec', 'only one of workloadSelector, endpoints may be set');

  if (spec.hosts.length === 0) report('spec.hosts', 'service entry must have at least one host');
  spec.hosts.forEach((h, i) => {
    const err = h === '*' ? 'the full wildcard "*" is not allowed as a service entry host' : wildcardDomainError(h);
    if (err) report(`spec.hosts[${i}]`, err);
  });

  let cidr = false;
  spec.addresses?.forEach((a, i) => {
    cidr ||= a.includes('/');
    const err = ipSubnetError(a);
    if (err) report(`spec.addresses[${i}]`, err);
  });
  if (cidr && resolution !== 'NONE' && resolution !== 'STATIC') report('spec.addresses', 'CIDR addresses are allowed only with resolution NONE or STATIC');

  const portNames = new Set<string>();
  const portNumbers = new Set<number>();
  spec.ports?.forEach((port, i) => {
    const p = `spec.ports[${i}]`;
    if (portNames.has(port.name)) report(`${p}.name`, `port name "${port.name}" is already defined`);
    if (portNumbers.has(port.number)) report(`${p}.number`, `port ${port.number} is already defined`);
    portNames.add(port.name);
    portNumbers.add(port.number);
    if (!isDns1123Label(port.name)) report(`${p}.name`, `invalid port name "${port.name}"`);
    checkProtocol(report, `${p}.protocol`, port.protocol);
    checkPort(report, `${p}.number`, port.number);
    if (port.targetPort) checkPort(report, `${p}.targetPort`, port.targetPort);
  });

  const endpoints = spec.endpoints ?? [];
  switch (resolution) {
    case 'NONE':
      if (endpoints.length > 0) report('spec.endpoints', 'resolution NONE cannot have endpoints');
      break;
    case 'STATIC':
      // STATIC endpoints are used as-is, so they must be IPs or unix sockets, never hostnames.
      endpoints.forEach((e, i) => checkWorkloadEntry(report, `spec.endpoints[${i}]`, e, portNames, false));
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
    case 'DYNAMIC_DNS':
      // Without endpoints the hosts themselves are resolved, so they must be resolvable names.
      if (endpoints.length === 0 && resolution !== 'DYNAMIC_DNS') {
        spec.hosts.forEach((h, i) => {
          if (h !== '*' && fqdnError(h)) report(`spec.hosts[${i}]`, `hosts must be FQDNs (no wildcards) when resolution ${resolution} has no endpoints`);
        });
      }
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) report('spec.endpoints', 'resolution DNS_ROUND_ROBIN allows at most 1 endpoint');
      endpoints.forEach((e, i) => checkWorkloadEntry(report, `spec.endpoints[${i}]`, e, portNames, true));
      break;
  }

  // Several hosts on one plain-TCP port cannot be told apart (no Host header, no SNI) unless nothing is resolved.
  if (resolution !== 'NONE' && spec.hosts.length > 1) {
    const i = spec.ports?.findIndex((p) => !isHTTPProtocol(p.protocol ?? '') && !isTLSProtocol(p.protocol ?? '')) ?? -1;
    if (i >= 0) report(`spec.ports[${i}].protocol`, 'multiple hosts need HTTP or TLS ports unless resolution is NONE');
  }
  checkExportTo(report, 'spec.exportTo', meta.namespace, spec.exportTo, true);
  return errors;
}

export const serviceEntry = defineKind<ServiceEntrySpec>({
  group: 'networking.istio.io',
  kind: 'ServiceEntry',
  plural: 'serviceentries',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  namespaced: true,
  spec: ServiceEntrySpecSchema,
  check,
});
