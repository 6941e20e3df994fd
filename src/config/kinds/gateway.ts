/**
 * Gateway (networking.istio.io): the listeners of an edge proxy (ports, hosts, TLS). Fields follow istio/api
 * networking/v1alpha3/gateway.proto; semantic rules follow istio/istio pkg/config/validation ValidateGateway,
 * validateServer and validateTLSOptions.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import {
  checkPort, checkProtocol, collector, isDns1123Label, isHTTPProtocol, isIPAddress, isKnownProtocol, isTLSProtocol,
  namespacedHostErrors, unixAddressError, type Report,
} from './checks.ts';
import { Enum, Obj, Opt, StringMap, UInt32 } from './common.ts';
import { defineKind } from './kind.ts';

export const PortSchema = Obj({
  number: UInt32(),
  protocol: Type.String(),
  name: Type.String(),
  targetPort: Opt(UInt32()), // deprecated; has no effect on gateways
});
export type Port = Static<typeof PortSchema>;

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

export const ServerTLSSettingsSchema = Obj({
  httpsRedirect: Opt(Type.Boolean()),
  mode: Opt(Enum(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'] as const)),
  serverCertificate: Opt(Type.String()),
  privateKey: Opt(Type.String()),
  caCertificates: Opt(Type.String()),
  caCrl: Opt(Type.String()),
  credentialName: Opt(Type.String()),
  credentialNames: Opt(Type.Array(Type.String(), { minItems: 1, maxItems: 2 })),
  tlsCertificates: Opt(Type.Array(
    Obj({ serverCertificate: Opt(Type.String()), privateKey: Opt(Type.String()), caCertificates: Opt(Type.String()) }),
    { minItems: 1, maxItems: 2 },
  )),
  subjectAltNames: Opt(Type.Array(Type.String())),
  verifyCertificateSpki: Opt(Type.Array(Type.String())),
  verifyCertificateHash: Opt(Type.Array(Type.String())),
  minProtocolVersion: Opt(Enum(TLS_VERSIONS)),
  maxProtocolVersion: Opt(Enum(TLS_VERSIONS)),
  cipherSuites: Opt(Type.Array(Type.String())),
  caCertCredentialName: Opt(Type.String()),
});
export type ServerTLSSettings = Static<typeof ServerTLSSettingsSchema>;

export const ServerSchema = Obj({
  port: PortSchema,
  bind: Opt(Type.String()),
  hosts: Type.Array(Type.String()),
  tls: Opt(ServerTLSSettingsSchema),
  defaultEndpoint: Opt(Type.String()),
  name: Opt(Type.String()),
});
export type Server = Static<typeof ServerSchema>;

export const GatewaySpecSchema = Obj({
  servers: Opt(Type.Array(ServerSchema)),
  selector: Opt(StringMap()),
});
export type GatewaySpec = Static<typeof GatewaySpecSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Semantic checks

/**
 * validateTLSOptions. The mode defaults to PASSTHROUGH (enum value 0). SIMPLE/MUTUAL need certificates: a Kubernetes
 * secret (credentialName/credentialNames), inline tlsCertificates, or file paths (serverCertificate + privateKey).
 */
export function checkServerTLS(report: Report, p: string, tls: ServerTLSSettings): void {
  const mode = tls.mode ?? 'PASSTHROUGH';
  const set = (['credentialName', 'credentialNames', 'tlsCertificates'] as const).filter((k) => tls[k] !== undefined);
  if (set.length > 1) report(p, `only one of credentialName, credentialNames, tlsCertificates may be set, got ${set.join(' and ')}`);
  if (mode === 'ISTIO_MUTUAL') {
    for (const f of ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const) {
      if (tls[f]) report(`${p}.${f}`, `ISTIO_MUTUAL TLS cannot have ${f}; the workload certificate is used`);
    }
    return;
  }
  const fromSecret = set.length > 0;
  if ((mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && !fromSecret) {
    if (!tls.serverCertificate) report(`${p}.serverCertificate`, `${mode} TLS needs credentialName or serverCertificate and privateKey`);
    if (!tls.privateKey) report(`${p}.privateKey`, `${mode} TLS needs credentialName or serverCertificate and privateKey`);
    if (mode !== 'SIMPLE' && !tls.caCertificates) report(`${p}.caCertificates`, `${mode} TLS needs caCertificates (or credentialName)`);
  }
  if (tls.caCrl) {
    if (tls.credentialName) report(`${p}.caCrl`, 'caCrl is not supported with credentialName; put the CRL in the secret');
    if (mode === 'SIMPLE') report(`${p}.caCrl`, 'caCrl is not supported with SIMPLE TLS');
  }
}

function checkServer(report: Report, p: string, s: Server): void {
  if (s.hosts.length === 0) report(`${p}.hosts`, 'server must have at least one host');
  s.hosts.forEach((h, i) => {
    for (const msg of namespacedHostErrors(h, true)) report(`${p}.hosts[${i}]`, msg);
  });
  const port = s.port;
  const unix = s.bind?.startsWith('unix://') ?? false;
  if (!port.protocol) report(`${p}.port.protocol`, 'port protocol must be set');
  else checkProtocol(report, `${p}.port.protocol`, port.protocol);
  if (port.number > 0 || !unix) checkPort(report, `${p}.port.number`, port.number);
  if ((port.targetPort ?? 0) > 0) report(`${p}.port.targetPort`, 'targetPort has no effect on gateways; remove it');
  if (!port.name) report(`${p}.port.name`, 'port name must be set');
  if (unix) {
    const err = unixAddressError((s.bind as string).slice('unix://'.length));
    if (err) report(`${p}.bind`, err);
    if (port.number !== 0) report(`${p}.port.number`, 'port number must be 0 for a unix domain socket bind');
  } else if (s.bind && !isIPAddress(s.bind)) {
    report(`${p}.bind`, `${s.bind} is not a valid IP`);
  }
  if (s.tls) checkServerTLS(report, `${p}.tls`, s.tls);
  if (!isKnownProtocol(port.protocol)) return;
  if (isTLSProtocol(port.protocol) && !s.tls) {
    report(`${p}.tls`, `server on ${port.protocol} port needs tls settings`);
  } else if (!isTLSProtocol(port.protocol) && s.tls) {
    // A plain-text HTTP server may only carry `httpsRedirect` (a passthrough-mode TLS block without certificates).
    const t = s.tls;
    const onlyRedirect = (t.mode ?? 'PASSTHROUGH') === 'PASSTHROUGH' && !t.caCertificates && !t.privateKey && !t.serverCertificate;
    if (!isHTTPProtocol(port.protocol)) report(`${p}.tls`, `server on ${port.protocol} port cannot have tls settings`);
    else if (!onlyRedirect) report(`${p}.tls`, 'server on a plain-text HTTP port can only set tls.httpsRedirect');
  }
}

function check(spec: GatewaySpec, meta: { name: string; namespace: string }): FieldError[] {
  const { errors, report } = collector();
  // Gateway names are referenced as `namespace/name` and must be DNS labels (no dots).
  if (meta.name && !isDns1123Label(meta.name)) report('metadata.name', `invalid gateway name "${meta.name}": must be a DNS-1123 label (no dots)`);
  const servers = spec.servers ?? [];
  if (servers.length === 0) report('spec.servers', 'gateway must have at least one server');
  const portNames = new Map<string, number>();
  const serverNames = new Map<string, number>();
  servers.forEach((s, i) => {
    checkServer(report, `spec.servers[${i}]`, s);
    const dup = portNames.get(s.port.name);
    if (dup !== undefined && s.port.name) report(`spec.servers[${i}].port.name`, `port names in servers must be unique: "${s.port.name}" is also used by servers[${dup}]`);
    portNames.set(s.port.name, i);
    if (s.name !== undefined) {
      const d = serverNames.get(s.name);
      if (d !== undefined) report(`spec.servers[${i}].name`, `server names must be unique: "${s.name}" is also used by servers[${d}]`);
      serverNames.set(s.name, i);
    }
  });
  return errors;
}

export const gateway = defineKind<GatewaySpec>({
  group: 'networking.istio.io',
  kind: 'Gateway',
  plural: 'gateways',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  namespaced: true,
  spec: GatewaySpecSchema,
  check,
});
