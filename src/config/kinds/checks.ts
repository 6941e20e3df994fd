/**
 * Semantic-check helpers shared by the Istio kind files: hostnames, ports, durations, label selectors, exportTo.
 * The rules follow istio/istio pkg/config/validation (and its `agent` package); the comments name the Go function a
 * rule comes from so the two can be compared. Checks report through a `Report` callback with a full field path.
 */
import { isIP } from 'node:net';
import { formatPath, type FieldError } from '../../shared/errors.ts';
import { parseDurationMs } from './common.ts';

export type Report = (path: string, message: string) => void;

/** `path` + one map key, spelled the way schema errors spell it (`.user-agent`, `["bad key"]`, `[8080]`). */
export function keyPath(path: string, key: string): string {
  return path + formatPath(['_', /^\d+$/.test(key) ? Number(key) : key]).slice(1);
}

/** A FieldError list plus the `report` function that appends to it. */
export function collector(): { errors: FieldError[]; report: Report } {
  const errors: FieldError[] = [];
  return { errors, report: (path, message) => errors.push({ path, message }) };
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const WILDCARD_DNS1123_LABEL = /^(\*|\*?[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/;

/** labels.IsDNS1123Label: lower-case alphanumerics and '-', at most 63 characters. */
export const isDns1123Label = (s: string): boolean => s.length <= 63 && DNS1123_LABEL.test(s);

export const isIPAddress = (s: string): boolean => isIP(s) !== 0;

/** agent.ValidateIPSubnet: an IP address or a CIDR block. */
export function ipSubnetError(s: string): string | undefined {
  const parts = s.split('/');
  if (parts.length === 1) return isIPAddress(s) ? undefined : `${s} is not a valid IP`;
  const [ip, bits] = parts as [string, string];
  const family = isIP(ip);
  const n = /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
  if (parts.length !== 2 || family === 0 || n < 0 || n > (family === 4 ? 32 : 128)) return `${s} is not a valid CIDR block`;
  return undefined;
}

/** agent.ValidateDNS1123Labels: every dot-separated label valid; the top-level label not all digits. */
function dnsLabelsError(domain: string): string | undefined {
  const parts = domain.split('.');
  const tld = parts[parts.length - 1] as string;
  if (/^\d+$/.test(tld)) return `domain name "${domain}" invalid (top level domain "${tld}" cannot be all-numeric)`;
  for (let i = 0; i < parts.length; i++) {
    const label = parts[i] as string;
    if (i === parts.length - 1 && label === '') return undefined; // `istio.io.` is unambiguous
    if (!isDns1123Label(label)) return `domain name "${domain}" invalid (label "${label}" invalid)`;
  }
  return undefined;
}

function dnsPreconditionError(name: string): string | undefined {
  if (name.length > 255) return `domain name "${name}" too long (max 255)`;
  if (name.length === 0) return 'empty domain name not allowed';
  return undefined;
}

/** agent.ValidateFQDN: a DNS name, no wildcard. */
export function fqdnError(name: string): string | undefined {
  return dnsPreconditionError(name) ?? dnsLabelsError(name);
}

/** agent.ValidateWildcardDomain: a DNS name whose first label may be `*` or start with `*`. */
export function wildcardDomainError(domain: string): string | undefined {
  const pre = dnsPreconditionError(domain);
  if (pre) return pre;
  const dot = domain.indexOf('.');
  const first = dot < 0 ? domain : domain.slice(0, dot);
  if (first.length > 63 || !WILDCARD_DNS1123_LABEL.test(first)) return `domain name "${domain}" invalid (label "${first}" invalid)`;
  return dot < 0 ? undefined : dnsLabelsError(domain.slice(dot + 1));
}

/** agent.ValidatePartialWildCard: `*` only alone or as the whole first label (`*.example.com`). */
export const isPartialWildcard = (host: string): boolean => host.includes('*') && host !== '*' && !host.startsWith('*.');

/**
 * agent.ValidateNamespaceSlashWildcardHostname: Sidecar egress hosts and Gateway server hosts, `namespace/dnsName`.
 * Sidecars require the namespace part (`*`, `.`, `~` or a namespace); gateways also accept a bare host and IPs.
 */
export function namespacedHostErrors(host: string, isGateway: boolean): string[] {
  const out: string[] = [];
  const slash = host.indexOf('/');
  let dnsName = host;
  if (slash < 0) {
    if (!isGateway) return ['host must be of form namespace/dnsName'];
  } else {
    const ns = host.slice(0, slash);
    dnsName = host.slice(slash + 1);
    if (!ns || !dnsName) out.push('config namespace and dnsName in host entry cannot be empty');
    const specials = isGateway ? ['*', '.'] : ['*', '.', '~'];
    if (ns && !specials.includes(ns) && !isDns1123Label(ns)) {
      out.push(`invalid namespace value "${ns}" in ${isGateway ? 'gateway' : 'sidecar'}`);
    }
    if (!dnsName) return out;
  }
  if (dnsName !== '*' && !dnsName.includes('.')) out.push(`short names (non FQDN) are not allowed: "${dnsName}"`);
  const err = wildcardDomainError(dnsName);
  if (err && !(isGateway && isIPAddress(dnsName))) out.push(err);
  if (isPartialWildcard(dnsName)) out.push(`partial wildcard "${dnsName}" not allowed`);
  return out;
}

/** host.Name.Matches: equal, or one side's wildcard covers the other (`*.foo.com` and `a.foo.com`, `*` and anything). */
export function hostsOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  const covers = (w: string, h: string) => w === '*' || (w.startsWith('*') && h.endsWith(w.slice(1)));
  return covers(a, b) || covers(b, a);
}

/** agent.ValidatePort. */
export function checkPort(report: Report, path: string, port: number): void {
  if (!(port >= 1 && port <= 65535)) report(path, `port number ${port} must be in the range 1..65535`);
}

/** agent.ValidateDuration: at least 1ms, millisecond precision (the CRDs say `duration(self) >= duration('1ms')`). */
export function checkDuration(report: Report, path: string, value: string | undefined): void {
  if (value === undefined) return;
  const ms = parseDurationMs(value);
  if (ms === undefined) return; // the schema's `duration` format already reported it
  if (ms < 1) report(path, `duration must be at least 1ms, got "${value}"`);
  else if (Math.abs(ms - Math.round(ms)) > 1e-9) report(path, `only durations to ms precision are supported, got "${value}"`);
}

export function checkRange(report: Report, path: string, value: number | undefined, min: number, max: number): void {
  if (value !== undefined && (value < min || value > max)) report(path, `must be between ${min} and ${max}, got ${value}`);
}

export function checkNonNegative(report: Report, path: string, value: number | undefined): void {
  if (value !== undefined && value < 0) report(path, `must be non-negative, got ${value}`);
}

/** `set at most one of a, b` for Istio oneOfs whose siblings share an object with other fields. */
export function checkAtMostOne(report: Report, path: string, obj: object, keys: readonly string[]): void {
  const set = keys.filter((k) => (obj as Record<string, unknown>)[k] !== undefined);
  if (set.length > 1) report(path, `only one of ${keys.join(', ')} may be set, got ${set.join(' and ')}`);
}

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** labels.Instance.Validate: Kubernetes label keys (optional DNS prefix + name) and values. */
export function checkLabels(report: Report, path: string, labels: Readonly<Record<string, string>> | undefined): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    const slash = k.indexOf('/');
    const prefix = slash < 0 ? '' : k.slice(0, slash);
    const name = slash < 0 ? k : k.slice(slash + 1);
    const keyOk =
      name.length > 0 && name.length <= 63 && LABEL_NAME.test(name) && (slash < 0 || (prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix)));
    if (!keyOk) report(keyPath(path, k), `invalid label key "${k}"`);
    if (v.length > 63 || (v !== '' && !LABEL_NAME.test(v))) report(keyPath(path, k), `invalid label value "${v}"`);
  }
}

/** validateWorkloadSelector / ValidateAlphaWorkloadSelector: no empty keys, no wildcards. */
export function checkSelectorLabels(report: Report, path: string, labels: Readonly<Record<string, string>> | undefined): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (k === '') report(path, 'empty key is not supported in selector');
    if (k.includes('*') || v.includes('*')) report(path, `wildcard is not supported in selector: "${k}=${v}"`);
  }
}

interface TargetRef {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** validatePolicyTargetReference: Service, ServiceEntry or Gateway API Gateway, in the policy's own namespace. */
export function checkTargetRef(report: Report, path: string, ref: TargetRef): void {
  if (!ref.name) report(`${path}.name`, 'targetRef name must be set');
  if (ref.namespace) report(`${path}.namespace`, 'cross namespace referencing is not supported');
  const group = ref.group ?? '';
  const allowed =
    (group === '' && ref.kind === 'Service') ||
    (group === 'networking.istio.io' && ref.kind === 'ServiceEntry') ||
    (group === 'gateway.networking.k8s.io' && ref.kind === 'Gateway');
  if (!allowed) report(path, `targetRef must be a core Service, networking.istio.io ServiceEntry or gateway.networking.k8s.io Gateway, got ${group || 'core'}/${ref.kind}`);
}

/** validateOneOfSelectorType + selector/targetRef checks shared by the security, telemetry and extension kinds. */
export function checkPolicySelection(
  report: Report,
  spec: { selector?: { matchLabels?: Record<string, string> }; targetRef?: TargetRef; targetRefs?: TargetRef[] },
): void {
  const set = [spec.selector && 'selector', spec.targetRef && 'targetRef', spec.targetRefs?.length && 'targetRefs'].filter(Boolean);
  if (set.length > 1) report('spec', `only one of selector, targetRef or targetRefs may be set, got ${set.join(' and ')}`);
  checkSelectorLabels(report, 'spec.selector.matchLabels', spec.selector?.matchLabels);
  if (spec.targetRef) checkTargetRef(report, 'spec.targetRef', spec.targetRef);
  spec.targetRefs?.forEach((r, i) => checkTargetRef(report, `spec.targetRefs[${i}]`, r));
}

/** validateExportTo: `.`, `*`, a namespace (or `~` for ServiceEntry); no duplicates; `*` and `~` only alone. */
export function checkExportTo(report: Report, path: string, namespace: string, exportTo: readonly string[] | undefined, isServiceEntry: boolean): void {
  if (!exportTo?.length) return;
  const seen = new Set<string>();
  exportTo.forEach((e, i) => {
    const key = e === '.' ? namespace : e;
    if (seen.has(key)) report(`${path}[${i}]`, `duplicate entry "${e}" in exportTo`);
    seen.add(key);
    const ok = e === '.' || e === '*' || (e === '~' && isServiceEntry) || isDns1123Label(e);
    if (!ok) report(`${path}[${i}]`, `invalid exportTo value "${e}"`);
  });
  if (exportTo.length > 1 && seen.has('*')) report(path, 'cannot have both public (*) and non-public exportTo values');
  if (exportTo.length > 1 && seen.has('~')) report(path, 'cannot export to no one (~) and someone');
}

/** ValidateProtocol: the protocols protocol.Parse knows (case-insensitive); empty means "sniff". */
const PROTOCOLS = new Set(['tcp', 'udp', 'grpc', 'grpc-web', 'http', 'http_proxy', 'http2', 'https', 'tls', 'mongo', 'redis', 'mysql']);
export const isKnownProtocol = (p: string): boolean => PROTOCOLS.has(p.toLowerCase());
export const isHTTPProtocol = (p: string): boolean => ['http', 'http2', 'http_proxy', 'grpc', 'grpc-web'].includes(p.toLowerCase());
export const isTLSProtocol = (p: string): boolean => ['https', 'tls'].includes(p.toLowerCase());

export function checkProtocol(report: Report, path: string, protocol: string | undefined): void {
  if (protocol && !isKnownProtocol(protocol)) {
    report(path, `unsupported protocol "${protocol}"; use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, REDIS, MYSQL or HTTP_PROXY`);
  }
}

/** ValidateUnixAddress: an absolute file path (not a directory) or an abstract socket `@name`. */
export function unixAddressError(addr: string): string | undefined {
  if (addr.length === 0) return 'unix address must not be empty';
  if (addr.startsWith('@')) return undefined;
  if (!addr.startsWith('/') || addr.endsWith('/')) return `${addr} is not an absolute path to a file`;
  return undefined;
}

const HEADER_NAME = /^[-_A-Za-z0-9]+$/;
/** ValidateHTTPHeaderName: Istio accepts `[-_A-Za-z0-9]+` (Envoy lower-cases; upper case is not refused). */
export function headerNameError(name: string): string | undefined {
  if (name === '') return 'header name cannot be empty';
  return HEADER_NAME.test(name) ? undefined : `header name "${name}" is not a valid header name`;
}

/** validateGatewayNames: `mesh`, `name` (or legacy `name.namespace…`), or `namespace/name`. */
export function checkGatewayNames(report: Report, path: string, names: readonly string[] | undefined): void {
  names?.forEach((g, i) => {
    const slash = g.indexOf('/');
    if (slash < 0) {
      const err = fqdnError(g);
      if (err) report(`${path}[${i}]`, err);
      return;
    }
    const [ns, name] = [g.slice(0, slash), g.slice(slash + 1)];
    if (!isDns1123Label(ns)) report(`${path}[${i}]`, `invalid namespace "${ns}" in gateway reference "${g}"`);
    if (!isDns1123Label(name)) report(`${path}[${i}]`, `invalid gateway name "${name}" in gateway reference "${g}"`);
  });
}

/** validateDestination: a host that is not `*`, a DNS-label subset, a valid port. */
export function checkDestination(report: Report, path: string, d: { host: string; subset?: string; port?: { number?: number } } | undefined): void {
  if (!d) return;
  if (d.host === '*') report(`${path}.host`, 'invalid destination host "*"');
  else {
    const err = wildcardDomainError(d.host);
    if (err) report(`${path}.host`, err);
  }
  if (d.subset !== undefined && !isDns1123Label(d.subset)) report(`${path}.subset`, `invalid subset name "${d.subset}"`);
  if (d.port?.number !== undefined) checkPort(report, `${path}.port.number`, d.port.number);
}
