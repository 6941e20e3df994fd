/**
 * Sidecar (networking.istio.io): narrows what a sidecar listens on (ingress) and which services it can reach (egress).
 * Fields follow istio/api networking/v1alpha3/sidecar.proto; rules follow istio/istio ValidateSidecar.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import {
  checkDestination, checkPort, checkProtocol, checkSelectorLabels, collector, fqdnError, isDns1123Label, isIPAddress,
  namespacedHostErrors, unixAddressError, type Report,
} from './checks.ts';
import { Enum, Obj, Opt, UInt32, WorkloadSelector } from './common.ts';
import { checkConnectionPool, ConnectionPoolSettingsSchema } from './destination-rule.ts';
import { checkServerTLS, ServerTLSSettingsSchema } from './gateway.ts';
import { defineKind } from './kind.ts';
import { DestinationSchema } from './virtual-service.ts';

export const SidecarPortSchema = Obj({
  number: Opt(UInt32()),
  protocol: Opt(Type.String()),
  name: Opt(Type.String()),
  targetPort: Opt(UInt32()), // deprecated; has no effect
});
export type SidecarPort = Static<typeof SidecarPortSchema>;

const CaptureMode = Enum(['DEFAULT', 'IPTABLES', 'NONE'] as const);

export const IstioIngressListenerSchema = Obj({
  port: SidecarPortSchema,
  bind: Opt(Type.String()),
  captureMode: Opt(CaptureMode),
  defaultEndpoint: Opt(Type.String()),
  tls: Opt(ServerTLSSettingsSchema),
  connectionPool: Opt(ConnectionPoolSettingsSchema),
});
export type IstioIngressListener = Static<typeof IstioIngressListenerSchema>;

export const IstioEgressListenerSchema = Obj({
  port: Opt(SidecarPortSchema),
  bind: Opt(Type.String()),
  captureMode: Opt(CaptureMode),
  hosts: Type.Array(Type.String()),
});
export type IstioEgressListener = Static<typeof IstioEgressListenerSchema>;

export const OutboundTrafficPolicySchema = Obj({
  mode: Opt(Enum(['REGISTRY_ONLY', 'ALLOW_ANY'] as const)),
  egressProxy: Opt(DestinationSchema),
});
export type OutboundTrafficPolicy = Static<typeof OutboundTrafficPolicySchema>;

export const SidecarSpecSchema = Obj({
  workloadSelector: Opt(WorkloadSelector()),
  ingress: Opt(Type.Array(IstioIngressListenerSchema)),
  egress: Opt(Type.Array(IstioEgressListenerSchema)),
  inboundConnectionPool: Opt(ConnectionPoolSettingsSchema),
  outboundTrafficPolicy: Opt(OutboundTrafficPolicySchema),
});
export type SidecarSpec = Static<typeof SidecarSpecSchema>;

function checkPortAndBind(report: Report, p: string, port: SidecarPort, bind: string | undefined, allowUnix: boolean): void {
  if (port.name && !isDns1123Label(port.name)) report(`${p}.port.name`, `invalid port name "${port.name}"`);
  checkProtocol(report, `${p}.port.protocol`, port.protocol);
  if ((port.targetPort ?? 0) > 0) report(`${p}.port.targetPort`, 'targetPort has no effect on sidecars; remove it');
  if (allowUnix && (port.number ?? 0) === 0) {
    // Port 0 means a unix domain socket listener.
    if (!bind?.startsWith('unix://')) report(`${p}.bind`, 'a listener with port 0 needs a unix:// bind address');
    else {
      const err = unixAddressError(bind.slice('unix://'.length));
      if (err) report(`${p}.bind`, err);
    }
    return;
  }
  checkPort(report, `${p}.port.number`, port.number ?? 0);
  if (bind && !isIPAddress(bind)) report(`${p}.bind`, `${bind} is not a valid IP`);
}

/** defaultEndpoint: `127.0.0.1:<port>`, `0.0.0.0:<port>`, `[::1]:<port>`, `[::]:<port>`, `:<port>` or `unix://path`. */
function checkDefaultEndpoint(report: Report, p: string, ep: string): void {
  if (ep.startsWith('unix://')) {
    const err = unixAddressError(ep.slice('unix://'.length));
    if (err) report(p, err);
    return;
  }
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(ep);
  const host = m ? (m[1] ?? m[2] ?? '') : '';
  if (!m) report(p, `defaultEndpoint "${ep}" must be host:port`);
  else if (!['', '127.0.0.1', '0.0.0.0', '::1', '::'].includes(host)) {
    report(p, 'defaultEndpoint must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>');
  }
  if (m) {
    const port = m[3] as string;
    if (!/^\d+$/.test(port)) report(p, `defaultEndpoint port "${port}" is not a number`);
    else checkPort(report, p, Number(port));
  }
}

function check(spec: SidecarSpec): FieldError[] {
  const { errors, report } = collector();
  checkSelectorLabels(report, 'spec.workloadSelector.labels', spec.workloadSelector?.labels);
  if (!spec.egress?.length && !spec.ingress?.length && !spec.outboundTrafficPolicy && !spec.inboundConnectionPool) {
    report('spec', 'sidecar configuration is empty: set ingress, egress, outboundTrafficPolicy or inboundConnectionPool');
  }

  const ingressPorts = new Set<number>();
  spec.ingress?.forEach((l, i) => {
    const p = `spec.ingress[${i}]`;
    checkPortAndBind(report, p, l.port, l.bind, false);
    const n = l.port.number ?? 0;
    if (ingressPorts.has(n)) report(`${p}.port.number`, `ingress ports must be unique, ${n} is repeated`);
    ingressPorts.add(n);
    if (l.defaultEndpoint) checkDefaultEndpoint(report, `${p}.defaultEndpoint`, l.defaultEndpoint);
    if (l.tls) {
      // Sidecar ingress TLS terminates with files on the workload; gateway-only features are refused.
      if (l.tls.subjectAltNames?.length) report(`${p}.tls.subjectAltNames`, 'subjectAltNames is not supported in sidecar ingress tls');
      if (l.tls.httpsRedirect) report(`${p}.tls.httpsRedirect`, 'httpsRedirect is not supported in sidecar ingress tls');
      if (l.tls.credentialName) report(`${p}.tls.credentialName`, 'credentialName is not supported in sidecar ingress tls');
      if (l.tls.mode === 'ISTIO_MUTUAL' || l.tls.mode === 'AUTO_PASSTHROUGH') report(`${p}.tls.mode`, `mode ${l.tls.mode} is not allowed in sidecar ingress tls`);
      checkServerTLS(report, `${p}.tls`, l.tls);
    }
    // (HTTP pool settings on a non-HTTP port only draw a warning in Istio, so they are not refused here.)
    checkConnectionPool(report, `${p}.connectionPool`, l.connectionPool);
  });
  checkConnectionPool(report, 'spec.inboundConnectionPool', spec.inboundConnectionPool);

  const egressPorts = new Set<number>();
  const unixBinds = new Set<string>();
  let catchAll = false;
  const egress = spec.egress ?? [];
  egress.forEach((l, i) => {
    const p = `spec.egress[${i}]`;
    if (!l.port) {
      // At most one listener without a port (the catch-all), and it must come last.
      if (catchAll) report(`${p}.port`, 'egress can have only one listener without a port');
      else if (i !== egress.length - 1) report(`${p}.port`, 'the egress listener without a port must be the last one');
      catchAll = true;
    } else {
      checkPortAndBind(report, p, l.port, l.bind, true);
      const n = l.port.number ?? 0;
      if (n === 0 && l.captureMode && l.captureMode !== 'DEFAULT' && l.captureMode !== 'NONE') {
        report(`${p}.captureMode`, 'captureMode must be DEFAULT or NONE for unix domain socket listeners');
      }
      if (n === 0) {
        if (unixBinds.has(l.bind ?? '')) report(`${p}.bind`, 'unix domain socket binds must be unique');
        unixBinds.add(l.bind ?? '');
      } else {
        if (egressPorts.has(n)) report(`${p}.port.number`, `egress ports must be unique, ${n} is repeated`);
        egressPorts.add(n);
      }
    }
    if (l.hosts.length === 0) report(`${p}.hosts`, 'egress listener must have at least one host');
    l.hosts.forEach((h, j) => {
      for (const msg of namespacedHostErrors(h, false)) report(`${p}.hosts[${j}]`, msg);
    });
  });

  const otp = spec.outboundTrafficPolicy;
  if (otp?.egressProxy) {
    const p = 'spec.outboundTrafficPolicy.egressProxy';
    if (otp.mode !== 'ALLOW_ANY') report(p, 'egressProxy can only be set with mode ALLOW_ANY');
    const err = fqdnError(otp.egressProxy.host);
    if (err) report(`${p}.host`, err);
    if (!otp.egressProxy.port) report(`${p}.port`, 'egressProxy needs a port');
    checkDestination(report, p, otp.egressProxy);
  }
  return errors;
}

export const sidecar = defineKind<SidecarSpec>({
  group: 'networking.istio.io',
  kind: 'Sidecar',
  plural: 'sidecars',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  namespaced: true,
  spec: SidecarSpecSchema,
  check,
});
