/**
 * DestinationRule (networking.istio.io): policies applied after routing — load balancing, connection pools, outlier
 * detection, client TLS, subsets. Fields follow istio/api networking/v1alpha3/destination_rule.proto; semantic rules
 * follow istio/istio pkg/config/validation ValidateDestinationRule (validateTrafficPolicy and friends).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../../shared/errors.ts';
import {
  checkAtMostOne, checkDuration, checkExportTo, checkLabels, checkNonNegative, checkPort, checkRange, checkSelectorLabels,
  collector, fqdnError, isDns1123Label, isIPAddress, keyPath, wildcardDomainError, type Report,
} from './checks.ts';
import { Duration, Enum, Int32, MatchLabelsSelector, Obj, Opt, PortSelector, StringMap, UInt32 } from './common.ts';
import { defineKind } from './kind.ts';

export const TCPSettingsSchema = Obj({
  maxConnections: Opt(Int32()),
  connectTimeout: Opt(Duration()),
  tcpKeepalive: Opt(Obj({ probes: Opt(UInt32()), time: Opt(Duration()), interval: Opt(Duration()) })),
  maxConnectionDuration: Opt(Duration()),
  idleTimeout: Opt(Duration()),
});
export const HTTPSettingsSchema = Obj({
  http1MaxPendingRequests: Opt(Int32()),
  http2MaxRequests: Opt(Int32()),
  maxRequestsPerConnection: Opt(Int32()),
  maxRetries: Opt(Int32()),
  idleTimeout: Opt(Duration()),
  h2UpgradePolicy: Opt(Enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] as const)),
  useClientProtocol: Opt(Type.Boolean()),
  maxConcurrentStreams: Opt(Int32()),
});
export type TCPSettings = Static<typeof TCPSettingsSchema>;
export type HTTPSettings = Static<typeof HTTPSettingsSchema>;
export const ConnectionPoolSettingsSchema = Obj({ tcp: Opt(TCPSettingsSchema), http: Opt(HTTPSettingsSchema) });
export type ConnectionPoolSettings = Static<typeof ConnectionPoolSettingsSchema>;

/** ConsistentHashLB: hash key is a oneOf (httpHeaderName|httpCookie|useSourceIp|httpQueryParameterName), so is the algorithm. */
export const ConsistentHashLBSchema = Obj({
  httpHeaderName: Opt(Type.String()),
  httpCookie: Opt(Obj({
    name: Type.String(),
    path: Opt(Type.String()),
    ttl: Opt(Duration()),
    attributes: Opt(Type.Array(Obj({ name: Type.String(), value: Opt(Type.String()) }))),
  })),
  useSourceIp: Opt(Type.Boolean()),
  httpQueryParameterName: Opt(Type.String()),
  ringHash: Opt(Obj({ minimumRingSize: Opt(UInt32()) })),
  maglev: Opt(Obj({ tableSize: Opt(UInt32()) })),
  minimumRingSize: Opt(UInt32()), // deprecated
});
export type ConsistentHashLB = Static<typeof ConsistentHashLBSchema>;

export const LocalityLoadBalancerSettingSchema = Obj({
  distribute: Opt(Type.Array(Obj({ from: Opt(Type.String()), to: Opt(Type.Record(Type.String(), UInt32())) }))),
  failover: Opt(Type.Array(Obj({ from: Opt(Type.String()), to: Opt(Type.String()) }))),
  failoverPriority: Opt(Type.Array(Type.String())),
  enabled: Opt(Type.Boolean()),
});
export type LocalityLoadBalancerSetting = Static<typeof LocalityLoadBalancerSettingSchema>;

export const LoadBalancerSettingsSchema = Obj({
  simple: Opt(Enum(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'] as const)),
  consistentHash: Opt(ConsistentHashLBSchema),
  localityLbSetting: Opt(LocalityLoadBalancerSettingSchema),
  warmupDurationSecs: Opt(Duration()), // deprecated: use warmup
  warmup: Opt(Obj({
    duration: Duration(),
    minimumPercent: Opt(Type.Number({ minimum: 0, maximum: 100 })),
    aggression: Opt(Type.Number({ minimum: 0 })),
  })),
});
export type LoadBalancerSettings = Static<typeof LoadBalancerSettingsSchema>;

export const OutlierDetectionSchema = Obj({
  consecutiveErrors: Opt(Int32()), // deprecated
  splitExternalLocalOriginErrors: Opt(Type.Boolean()),
  consecutiveLocalOriginFailures: Opt(UInt32()),
  consecutiveGatewayErrors: Opt(UInt32()),
  consecutive5xxErrors: Opt(UInt32()),
  interval: Opt(Duration()),
  baseEjectionTime: Opt(Duration()),
  maxEjectionPercent: Opt(Int32()),
  minHealthPercent: Opt(Int32()),
});
export type OutlierDetection = Static<typeof OutlierDetectionSchema>;

export const ClientTLSSettingsSchema = Obj({
  mode: Opt(Enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] as const)),
  clientCertificate: Opt(Type.String()),
  privateKey: Opt(Type.String()),
  caCertificates: Opt(Type.String()),
  credentialName: Opt(Type.String()),
  subjectAltNames: Opt(Type.Array(Type.String())),
  sni: Opt(Type.String()),
  insecureSkipVerify: Opt(Type.Boolean()),
  caCrl: Opt(Type.String()),
});
export type ClientTLSSettings = Static<typeof ClientTLSSettingsSchema>;

export const PortTrafficPolicySchema = Obj({
  port: Opt(PortSelector()),
  loadBalancer: Opt(LoadBalancerSettingsSchema),
  connectionPool: Opt(ConnectionPoolSettingsSchema),
  outlierDetection: Opt(OutlierDetectionSchema),
  tls: Opt(ClientTLSSettingsSchema),
});
export type PortTrafficPolicy = Static<typeof PortTrafficPolicySchema>;

export const TunnelSettingsSchema = Obj({ protocol: Opt(Type.String()), targetHost: Type.String(), targetPort: UInt32() });
export const ProxyProtocolSchema = Obj({ version: Opt(Enum(['V1', 'V2'] as const)) });
export const RetryBudgetSchema = Obj({ percent: Opt(Type.Number({ minimum: 0, maximum: 100 })), minRetryConcurrency: Opt(UInt32()) });
export type TunnelSettings = Static<typeof TunnelSettingsSchema>;
export type ProxyProtocol = Static<typeof ProxyProtocolSchema>;
export type RetryBudget = Static<typeof RetryBudgetSchema>;

export const TrafficPolicySchema = Obj({
  loadBalancer: Opt(LoadBalancerSettingsSchema),
  connectionPool: Opt(ConnectionPoolSettingsSchema),
  outlierDetection: Opt(OutlierDetectionSchema),
  tls: Opt(ClientTLSSettingsSchema),
  portLevelSettings: Opt(Type.Array(PortTrafficPolicySchema, { maxItems: 4096 })),
  tunnel: Opt(TunnelSettingsSchema),
  proxyProtocol: Opt(ProxyProtocolSchema),
  retryBudget: Opt(RetryBudgetSchema),
});
export type TrafficPolicy = Static<typeof TrafficPolicySchema>;

export const SubsetSchema = Obj({ name: Type.String(), labels: Opt(StringMap()), trafficPolicy: Opt(TrafficPolicySchema) });
export type Subset = Static<typeof SubsetSchema>;

export const DestinationRuleSpecSchema = Obj({
  host: Type.String(),
  trafficPolicy: Opt(TrafficPolicySchema),
  subsets: Opt(Type.Array(SubsetSchema)),
  exportTo: Opt(Type.Array(Type.String())),
  workloadSelector: Opt(MatchLabelsSelector()),
});
export type DestinationRuleSpec = Static<typeof DestinationRuleSpecSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Semantic checks (exported pieces are reused by Sidecar, whose connection pools share the same rules)

/** validateConnectionPool. */
export function checkConnectionPool(report: Report, p: string, cp: ConnectionPoolSettings | undefined): void {
  if (!cp) return;
  if (!cp.http && !cp.tcp) report(p, 'connection pool must have at least one of tcp, http');
  if (cp.http) {
    const h = cp.http;
    for (const f of ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'maxConcurrentStreams'] as const) {
      checkNonNegative(report, `${p}.http.${f}`, h[f]);
    }
    checkDuration(report, `${p}.http.idleTimeout`, h.idleTimeout);
    if (h.h2UpgradePolicy === 'UPGRADE' && h.useClientProtocol) report(`${p}.http.useClientProtocol`, 'useClientProtocol must not be true when h2UpgradePolicy is UPGRADE');
  }
  if (cp.tcp) {
    const t = cp.tcp;
    checkNonNegative(report, `${p}.tcp.maxConnections`, t.maxConnections);
    for (const f of ['connectTimeout', 'maxConnectionDuration', 'idleTimeout'] as const) checkDuration(report, `${p}.tcp.${f}`, t[f]);
    checkDuration(report, `${p}.tcp.tcpKeepalive.time`, t.tcpKeepalive?.time);
    checkDuration(report, `${p}.tcp.tcpKeepalive.interval`, t.tcpKeepalive?.interval);
  }
}

function checkOutlier(report: Report, p: string, o: OutlierDetection | undefined): void {
  if (!o) return;
  checkDuration(report, `${p}.baseEjectionTime`, o.baseEjectionTime);
  checkDuration(report, `${p}.interval`, o.interval);
  if (!o.splitExternalLocalOriginErrors && (o.consecutiveLocalOriginFailures ?? 0) > 0) {
    report(`${p}.consecutiveLocalOriginFailures`, 'consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true');
  }
  checkRange(report, `${p}.maxEjectionPercent`, o.maxEjectionPercent, 0, 100);
  checkRange(report, `${p}.minHealthPercent`, o.minHealthPercent, 0, 100);
}

/** Envoy's own primality test for maglev table sizes (isPrime in validation.go). */
function isPrime(x: number): boolean {
  if (x !== 0 && x < 4) return true;
  if (x % 2 === 0) return false;
  for (let f = 3; f * f <= x; f += 2) if (x % f === 0) return false;
  return true;
}

/** validateLocalities: `region[/zone[/subzone]]`, no empty parts, `*` only once and last. */
function localityError(locality: string): string | undefined {
  const stars = locality.split('*').length - 1;
  if (stars > 1 || (stars === 1 && !locality.endsWith('*'))) return `locality ${locality}: wildcard '*' may appear once, at the end`;
  if (locality.split('/', 3).some((part) => part === '')) return `locality ${locality} must not contain empty region/zone/subzone`;
  return undefined;
}

const TOPOLOGY_LABELS = ['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone'];

/** agent.ValidateLocalityLbSetting. */
function checkLocalityLb(report: Report, p: string, lb: LocalityLoadBalancerSetting): void {
  if (lb.distribute?.length && lb.failover?.length) {
    report(p, 'only one of distribute, failover may be set');
    return;
  }
  if (lb.failover?.length) {
    const topo = lb.failoverPriority?.find((l) => TOPOLOGY_LABELS.includes(l));
    if (topo) report(`${p}.failoverPriority`, `cannot set both failover and topology label "${topo}" in failoverPriority`);
  }
  lb.distribute?.forEach((d, i) => {
    const dp = `${p}.distribute[${i}]`;
    let total = 0;
    for (const [loc, w] of Object.entries(d.to ?? {})) {
      if (w < 1 || w > 100) report(keyPath(`${dp}.to`, loc), `locality weight must be between 1 and 100, got ${w}`);
      const err = localityError(loc);
      if (err) report(`${dp}.to`, err);
      total += w;
    }
    if (total !== 100) report(`${dp}.to`, `locality weights must add up to 100, got ${total}`);
    const err = localityError(d.from ?? '');
    if (err) report(`${dp}.from`, err);
  });
  lb.failover?.forEach((f, i) => {
    const fp = `${p}.failover[${i}]`;
    if (f.from === f.to) report(fp, 'failover from and to must be different regions');
    if (`${f.from ?? ''}${f.to ?? ''}`.includes('/')) report(fp, 'failover from and to must be regions, not zones');
    if (`${f.from ?? ''}${f.to ?? ''}`.includes('*')) report(fp, 'failover regions must not contain the wildcard *');
  });
}

function checkLoadBalancer(report: Report, p: string, lb: LoadBalancerSettings | undefined): void {
  if (!lb) return;
  // LoadBalancerSettings.lb_policy is a oneOf: simple or consistentHash.
  if (lb.simple !== undefined && lb.consistentHash !== undefined) report(p, 'only one of simple, consistentHash may be set');
  const ch = lb.consistentHash;
  if (ch) {
    const keys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const;
    const set = keys.filter((k) => ch[k] !== undefined);
    // A oneOf: at most one hash key. None is accepted as Istio's CRD does (the ring then hashes nothing stable).
    if (set.length > 1) report(`${p}.consistentHash`, `only one of ${keys.join(', ')} may be set, got ${set.join(' and ')}`);
    checkAtMostOne(report, `${p}.consistentHash`, ch, ['ringHash', 'maglev']);
    if ((ch.minimumRingSize ?? 0) !== 0 && (ch.ringHash || ch.maglev)) report(`${p}.consistentHash.minimumRingSize`, 'only one of minimumRingSize or ringHash/maglev may be set');
    if (ch.httpCookie && !ch.httpCookie.name) report(`${p}.consistentHash.httpCookie.name`, 'cookie name is required');
    if (ch.maglev) {
      const size = ch.maglev.tableSize ?? 0;
      if (size === 0) report(`${p}.consistentHash.maglev.tableSize`, 'tableSize must be set for maglev');
      else if (size >= 5000011) report(`${p}.consistentHash.maglev.tableSize`, `tableSize must be less than 5000011, got ${size}`);
      else if (!isPrime(size)) report(`${p}.consistentHash.maglev.tableSize`, `tableSize must be a prime number, got ${size}`);
    }
  }
  if (lb.localityLbSetting) checkLocalityLb(report, `${p}.localityLbSetting`, lb.localityLbSetting);
  checkDuration(report, `${p}.warmupDurationSecs`, lb.warmupDurationSecs);
  checkDuration(report, `${p}.warmup.duration`, lb.warmup?.duration);
}

/** agent.ValidateTLS (client side). */
export function checkClientTLS(report: Report, p: string, tls: ClientTLSSettings | undefined): void {
  if (!tls) return;
  if (tls.insecureSkipVerify) {
    if (tls.mode === 'SIMPLE' && (tls.caCertificates || tls.credentialName || tls.subjectAltNames)) {
      report(p, 'cannot set caCertificates, credentialName or subjectAltNames with insecureSkipVerify');
    }
    if (tls.mode === 'MUTUAL' && (tls.caCertificates || tls.subjectAltNames)) report(p, 'cannot set caCertificates or subjectAltNames with insecureSkipVerify');
  }
  if ((tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL') && tls.credentialName) {
    // Certificates come from the secret; file paths alongside it would be ignored.
    if (tls.clientCertificate || tls.caCertificates || tls.privateKey || tls.caCrl) report(p, 'cannot set clientCertificate, privateKey, caCertificates or caCrl with credentialName');
    return;
  }
  if (tls.mode === 'MUTUAL') {
    if (!tls.clientCertificate) report(`${p}.clientCertificate`, 'MUTUAL TLS needs clientCertificate (or credentialName)');
    if (!tls.privateKey) report(`${p}.privateKey`, 'MUTUAL TLS needs privateKey (or credentialName)');
  }
}

function checkTrafficPolicy(report: Report, p: string, tp: TrafficPolicy | undefined): void {
  if (!tp) return;
  if (Object.keys(tp).length === 0) report(p, 'traffic policy must have at least one field');
  if (tp.tunnel && tp.proxyProtocol) report(p, 'only one of tunnel, proxyProtocol may be set');
  checkOutlier(report, `${p}.outlierDetection`, tp.outlierDetection);
  checkConnectionPool(report, `${p}.connectionPool`, tp.connectionPool);
  checkLoadBalancer(report, `${p}.loadBalancer`, tp.loadBalancer);
  checkClientTLS(report, `${p}.tls`, tp.tls);
  tp.portLevelSettings?.forEach((pl, i) => {
    const pp = `${p}.portLevelSettings[${i}]`;
    if (pl.port?.number === undefined) report(`${pp}.port`, 'port traffic policy needs port.number');
    else checkPort(report, `${pp}.port.number`, pl.port.number);
    if (!pl.outlierDetection && !pl.connectionPool && !pl.loadBalancer && !pl.tls) report(pp, 'port traffic policy must have at least one field');
    checkOutlier(report, `${pp}.outlierDetection`, pl.outlierDetection);
    checkConnectionPool(report, `${pp}.connectionPool`, pl.connectionPool);
    checkLoadBalancer(report, `${pp}.loadBalancer`, pl.loadBalancer);
    checkClientTLS(report, `${pp}.tls`, pl.tls);
  });
  if (tp.tunnel) {
    const t = tp.tunnel;
    if (t.protocol && t.protocol !== 'CONNECT' && t.protocol !== 'POST') report(`${p}.tunnel.protocol`, `tunnel protocol must be "CONNECT" or "POST", got "${t.protocol}"`);
    if (fqdnError(t.targetHost) && !isIPAddress(t.targetHost)) report(`${p}.tunnel.targetHost`, `tunnel target host must be a valid FQDN or IP address, got "${t.targetHost}"`);
    checkPort(report, `${p}.tunnel.targetPort`, t.targetPort);
  }
}

function check(spec: DestinationRuleSpec, meta: { name: string; namespace: string }): FieldError[] {
  const { errors, report } = collector();
  const hostErr = wildcardDomainError(spec.host);
  if (hostErr) report('spec.host', hostErr);
  checkTrafficPolicy(report, 'spec.trafficPolicy', spec.trafficPolicy);
  const names = new Set<string>();
  spec.subsets?.forEach((s, i) => {
    const p = `spec.subsets[${i}]`;
    if (names.has(s.name)) report(`${p}.name`, `duplicate subset name "${s.name}"`);
    names.add(s.name);
    if (!s.name) report(`${p}.name`, 'subset name cannot be empty');
    else if (!isDns1123Label(s.name)) report(`${p}.name`, `invalid subset name "${s.name}": must be a DNS-1123 label`);
    checkLabels(report, `${p}.labels`, s.labels);
    checkTrafficPolicy(report, `${p}.trafficPolicy`, s.trafficPolicy);
  });
  checkExportTo(report, 'spec.exportTo', meta.namespace, spec.exportTo, false);
  if (spec.workloadSelector && spec.exportTo?.some((e) => e !== '.' && e !== meta.namespace)) {
    report('spec.exportTo', 'a destination rule with workloadSelector cannot be exported beyond its own namespace');
  }
  checkSelectorLabels(report, 'spec.workloadSelector.matchLabels', spec.workloadSelector?.matchLabels);
  return errors;
}

export const destinationRule = defineKind<DestinationRuleSpec>({
  group: 'networking.istio.io',
  kind: 'DestinationRule',
  plural: 'destinationrules',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  namespaced: true,
  spec: DestinationRuleSpecSchema,
  check,
});
