/**
 * WorkloadEntry (networking.istio.io): a non-Kubernetes workload (VM, bare metal) with its address, ports and labels.
 * The same message is a ServiceEntry endpoint and a WorkloadGroup template. Fields follow istio/api
 * networking/v1alpha3/workload_entry.proto; rules follow istio/istio validateWorkloadEntry.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkLabels, checkPort, collector, fqdnError, isDns1123Label, isIPAddress, keyPath, unixAddressError, type Report } from './checks.ts';
import { Obj, Opt, StringMap, UInt32 } from './common.ts';
import { defineKind } from './kind.ts';

export const WorkloadEntrySpecSchema = Obj({
  address: Opt(Type.String({ maxLength: 256 })),
  /** Service port name → port on this workload (numbers; YAML map keys are port names). */
  ports: Opt(Type.Record(Type.String(), UInt32())),
  labels: Opt(StringMap()),
  network: Opt(Type.String()),
  locality: Opt(Type.String()),
  weight: Opt(UInt32()),
  serviceAccount: Opt(Type.String()),
});
export type WorkloadEntrySpec = Static<typeof WorkloadEntrySpecSchema>;

export const UNIX_PREFIX = 'unix://';

/**
 * validateWorkloadEntry. `servicePorts` (from a ServiceEntry) restricts the port names; `allowFQDN` is false for STATIC
 * ServiceEntry endpoints, which must be IPs (or unix sockets).
 */
export function checkWorkloadEntry(
  report: Report,
  p: string,
  we: WorkloadEntrySpec,
  servicePorts: ReadonlySet<string> | undefined,
  allowFQDN: boolean,
): void {
  const addr = we.address ?? '';
  if (addr === '' && !we.network) report(`${p}.address`, 'address is required (unless network is set)');
  if (addr.startsWith(UNIX_PREFIX)) {
    const err = unixAddressError(addr.slice(UNIX_PREFIX.length));
    if (err) report(`${p}.address`, err);
    if (we.ports && Object.keys(we.ports).length > 0) report(`${p}.ports`, `unix endpoint ${addr} must not include ports`);
    if (servicePorts && servicePorts.size !== 1) report(`${p}.address`, 'a unix endpoint needs exactly 1 service port');
  } else if (addr !== '' && !isIPAddress(addr)) {
    if (!allowFQDN) report(`${p}.address`, `endpoint address "${addr}" is not a valid IP address (resolution STATIC needs IPs)`);
    else if (fqdnError(addr)) report(`${p}.address`, `endpoint address "${addr}" is not a valid FQDN or an IP address`);
  }
  for (const [name, port] of Object.entries(we.ports ?? {})) {
    const pp = keyPath(`${p}.ports`, name);
    if (servicePorts && !servicePorts.has(name)) report(pp, `endpoint port "${name}" is not defined by the service entry's ports`);
    if (!isDns1123Label(name)) report(pp, `invalid port name "${name}"`);
    checkPort(report, pp, port);
  }
  checkLabels(report, `${p}.labels`, we.labels);
}

function check(spec: WorkloadEntrySpec): FieldError[] {
  const { errors, report } = collector();
  checkWorkloadEntry(report, 'spec', spec, undefined, true);
  return errors;
}

export const workloadEntry = defineKind<WorkloadEntrySpec>({
  group: 'networking.istio.io',
  kind: 'WorkloadEntry',
  plural: 'workloadentries',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  namespaced: true,
  spec: WorkloadEntrySpecSchema,
  check,
});
