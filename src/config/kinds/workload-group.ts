/**
 * WorkloadGroup (networking.istio.io): a template for auto-registered WorkloadEntries plus their readiness probe.
 * Fields follow istio/api networking/v1alpha3/workload_group.proto; rules follow istio/istio ValidateWorkloadGroup and
 * validateReadinessProbe.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import { checkLabels, checkNonNegative, checkPort, collector, headerNameError } from './checks.ts';
import { Int32, Obj, Opt, StringMap, UInt32 } from './common.ts';
import { defineKind } from './kind.ts';
import { WorkloadEntrySpecSchema } from './workload-entry.ts';

export const HTTPHeaderSchema = Obj({ name: Opt(Type.String({ pattern: '^[-_A-Za-z0-9]+$' })), value: Opt(Type.String()) });
export const HTTPHealthCheckConfigSchema = Obj({
  path: Opt(Type.String()),
  port: UInt32(),
  host: Opt(Type.String()),
  scheme: Opt(Type.String()),
  httpHeaders: Opt(Type.Array(HTTPHeaderSchema)),
});
export const TCPHealthCheckConfigSchema = Obj({ host: Opt(Type.String()), port: UInt32() });
export const ExecHealthCheckConfigSchema = Obj({ command: Type.Array(Type.String({ minLength: 1 })) });
export const GrpcHealthCheckConfigSchema = Obj({ port: Opt(UInt32()), service: Opt(Type.String()) });

/** The health check method is a oneOf: httpGet | tcpSocket | exec | grpc. */
export const ReadinessProbeSchema = Obj({
  initialDelaySeconds: Opt(Int32()),
  timeoutSeconds: Opt(Int32()),
  periodSeconds: Opt(Int32()),
  successThreshold: Opt(Int32()),
  failureThreshold: Opt(Int32()),
  httpGet: Opt(HTTPHealthCheckConfigSchema),
  tcpSocket: Opt(TCPHealthCheckConfigSchema),
  exec: Opt(ExecHealthCheckConfigSchema),
  grpc: Opt(GrpcHealthCheckConfigSchema),
});
export type ReadinessProbe = Static<typeof ReadinessProbeSchema>;

export const WorkloadGroupSpecSchema = Obj({
  metadata: Opt(Obj({ labels: Opt(StringMap()), annotations: Opt(StringMap()) })),
  template: WorkloadEntrySpecSchema,
  probe: Opt(ReadinessProbeSchema),
});
export type WorkloadGroupSpec = Static<typeof WorkloadGroupSpecSchema>;

function check(spec: WorkloadGroupSpec): FieldError[] {
  const { errors, report } = collector();
  // The template is not validated as a full WorkloadEntry: address and the like are filled in at registration.
  checkLabels(report, 'spec.metadata.labels', spec.metadata?.labels);
  const probe = spec.probe;
  if (probe) {
    const p = 'spec.probe';
    for (const f of ['periodSeconds', 'initialDelaySeconds', 'timeoutSeconds', 'successThreshold', 'failureThreshold'] as const) {
      checkNonNegative(report, `${p}.${f}`, probe[f]);
    }
    const methods = (['httpGet', 'tcpSocket', 'exec', 'grpc'] as const).filter((m) => probe[m] !== undefined);
    if (methods.length !== 1) report(p, `probe needs exactly one of httpGet, tcpSocket, exec, grpc, got ${methods.length ? methods.join(' and ') : 'none'}`);
    if (probe.httpGet) {
      const h = probe.httpGet;
      checkPort(report, `${p}.httpGet.port`, h.port);
      if (h.scheme && h.scheme !== 'HTTP' && h.scheme !== 'HTTPS') report(`${p}.httpGet.scheme`, `scheme must be HTTP or HTTPS, got "${h.scheme}"`);
      h.httpHeaders?.forEach((hd, i) => {
        const err = headerNameError(hd.name ?? '');
        if (err) report(`${p}.httpGet.httpHeaders[${i}].name`, err);
      });
    }
    if (probe.tcpSocket) checkPort(report, `${p}.tcpSocket.port`, probe.tcpSocket.port);
    if (probe.grpc?.port !== undefined) checkPort(report, `${p}.grpc.port`, probe.grpc.port);
    if (probe.exec && probe.exec.command.length === 0) report(`${p}.exec.command`, 'exec.command is required');
  }
  return errors;
}

export const workloadGroup = defineKind<WorkloadGroupSpec>({
  group: 'networking.istio.io',
  kind: 'WorkloadGroup',
  plural: 'workloadgroups',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  namespaced: true,
  spec: WorkloadGroupSpecSchema,
  check,
});
