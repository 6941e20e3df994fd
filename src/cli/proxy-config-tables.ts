/**
 * The tables of `mizzen proxy-config`, in the shape `istioctl proxy-config` prints them (istioctl/pkg/writer/envoy/
 * configdump and writer/envoy/clusters): same columns, same cell formats, same row order, so people and scripts that
 * read istioctl output can read ours. Pure: decoded Envoy resources (proto3 JSON, snake_case) in, text out.
 */
import { X509Certificate } from 'node:crypto';

type Resource = Record<string, any>;

export interface ProxyFilters {
  /** listeners, endpoints: the address (without port). */
  address?: string;
  /** listeners: the listener port; clusters: `|port|` in the name; endpoints: the endpoint port. */
  port?: number;
  /** clusters: a substring of the cluster name (istioctl: `--fqdn`). */
  fqdn?: string;
  subset?: string;
  /** clusters: inbound or outbound. */
  direction?: string;
  /** routes: the route configuration's name. */
  name?: string;
  /** endpoints: the cluster name. */
  cluster?: string;
  /** endpoints: HEALTHY, UNHEALTHY, DRAINING, … */
  status?: string;
}

/**
 * Go's text/tabwriter as istioctl sets it up (minwidth 0, padding 1 for listeners and 5 for the others, pad with
 * spaces): every column but the last is as wide as its widest cell plus the padding. Trailing blanks are trimmed.
 */
export function formatTable(header: string[], rows: string[][], padding: number): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const lines = all.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + padding)))
      .join('')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

const eqFold = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/* ------------------------------------------------------------------ listeners */

const HCM = 'envoy.filters.network.http_connection_manager';
const TCP_PROXY = 'envoy.filters.network.tcp_proxy';
const isHcm = (f: Resource) => f.name === HCM || String(f.typed_config?.['@type'] ?? '').endsWith('.HttpConnectionManager');
const isTcpProxy = (f: Resource) => f.name === TCP_PROXY || String(f.typed_config?.['@type'] ?? '').endsWith('.TcpProxy');
const tcpProxyClusters = (f: Resource): string[] => {
  const tc = f.typed_config ?? {};
  if (typeof tc.cluster === 'string') return [tc.cluster];
  return (tc.weighted_clusters?.clusters ?? []).map((c: Resource) => String(c.name));
};
/** istioctl leaves out TCP proxies to the BlackHoleCluster when it classifies and describes a chain. */
const isBlackHole = (f: Resource) => tcpProxyClusters(f).includes('BlackHoleCluster');

function listenerAddresses(l: Resource): string[] {
  const one = (a: Resource | undefined): string | undefined => a?.socket_address?.address ?? (a?.pipe?.path ? String(a.pipe.path) : undefined);
  const out = [one(l.address) ?? ''];
  for (const extra of l.additional_addresses ?? []) {
    const a = one(extra.address);
    if (a !== undefined) out.push(a);
  }
  return out;
}

const listenerPort = (l: Resource): number => Number(l.address?.socket_address?.port_value ?? 0);

const filterChains = (l: Resource): Resource[] => [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])];

/** HTTP, TCP, HTTP+TCP or UNKNOWN, as istioctl classifies a listener (used to order listeners on the same port). */
function listenerType(l: Resource): string {
  let http = 0;
  let tcp = 0;
  for (const chain of filterChains(l)) {
    for (const f of chain.filters ?? []) {
      if (isHcm(f)) http++;
      else if (isTcpProxy(f) && !isBlackHole(f)) tcp++;
    }
  }
  if (http > 0) return tcp === 0 ? 'HTTP' : 'HTTP+TCP';
  return tcp > 0 ? 'TCP' : 'UNKNOWN';
}

/** ALPN lists istioctl names instead of spelling out. */
const KNOWN_ALPNS: Array<[string, string[]]> = [
  ['App: HTTP TLS', ['http/1.0', 'http/1.1', 'h2c', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2']],
  ['App: Istio HTTP Plain', ['istio', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2']],
  ['App: TCP TLS', ['istio-peer-exchange', 'istio']],
  ['App: HTTP', ['http/1.0', 'http/1.1', 'h2c']],
];

function describeChainMatch(m: Resource | undefined): string {
  const match = m ?? {};
  const parts: string[] = [];
  if (match.server_names?.length) parts.push(`SNI: ${match.server_names.join(',')}`);
  if (match.transport_protocol) parts.push(`Trans: ${match.transport_protocol}`);
  const alpn: string[] = match.application_protocols ?? [];
  if (alpn.length > 0) {
    const known = KNOWN_ALPNS.find(([, list]) => list.length === alpn.length && list.every((p, i) => p === alpn[i]));
    parts.push(known ? known[0] : `App: ${alpn.join(',')}`);
  }
  const port = match.destination_port !== undefined ? `:${match.destination_port}` : '';
  if (match.prefix_ranges?.length) {
    parts.push(`Addr: ${match.prefix_ranges.map((p: Resource) => `${p.address_prefix}/${p.prefix_len ?? 0}`).join(',')}${port}`);
  } else if (port) {
    parts.push(`Addr: *${port}`);
  }
  return parts.length > 0 ? parts.join('; ') : 'ALL';
}

const clusterRef = (name: string) => (name.includes('Cluster') ? name : `Cluster: ${name}`);

function describeRouteMatch(match: Resource | undefined): string {
  const m = match ?? {};
  const conds: string[] = [];
  if (m.prefix) conds.push(`${m.prefix}*`);
  if (m.path_separated_prefix) conds.push(`PathPrefix:${m.path_separated_prefix}`);
  if (m.path) conds.push(m.path);
  if (m.safe_regex) conds.push(`regex ${m.safe_regex.regex ?? ''}`);
  // Headers are left out, as istioctl does.
  return conds.join(' ');
}

/** An inline route table (HCM route_config): the cluster when it is one match-all route, else its matches. */
function describeInlineRoutes(rc: Resource): string {
  const vhosts: Resource[] = rc.virtual_hosts ?? [];
  const only = vhosts.length === 1 ? vhosts[0]! : undefined;
  if (only && only.domains?.length === 1 && only.domains[0] === '*' && only.routes?.length === 1) {
    const r = only.routes[0];
    if (r.match?.prefix === '/' && typeof r.route?.cluster === 'string') return clusterRef(r.route.cluster);
  }
  const parts = vhosts.map((vh) => {
    const routes = (vh.routes ?? []).map((r: Resource) => describeRouteMatch(r.match)).join(', ');
    const domains: string[] = vh.domains ?? [];
    return domains.length === 1 && domains[0] === '*' ? routes : `${domains.join('/')} ${routes}`;
  });
  return `Inline Route: ${parts.join('; ')}`;
}

function describeChainDestination(chain: Resource): string {
  for (const f of chain.filters ?? []) {
    if (isHcm(f)) {
      const tc = f.typed_config ?? {};
      if (tc.route_config) return describeInlineRoutes(tc.route_config);
      if (tc.rds?.route_config_name) return `Route: ${tc.rds.route_config_name}`;
      return 'HTTP';
    }
    if (isTcpProxy(f) && !isBlackHole(f)) return clusterRef(tcpProxyClusters(f).join(','));
  }
  return 'Non-HTTP/Non-TCP';
}

export function filterListeners(listeners: Resource[], f: ProxyFilters): Resource[] {
  return listeners.filter((l) => (!f.address || listenerAddresses(l).some((a) => eqFold(a, f.address!))) && (!f.port || listenerPort(l) === f.port));
}

/** ADDRESSES PORT MATCH DESTINATION: one row per filter chain (the default chain included). */
export function listenersTable(listeners: Resource[]): string {
  const sorted = [...listeners].sort((a, b) => {
    const pa = listenerPort(a);
    const pb = listenerPort(b);
    if (pa !== pb) return pa - pb;
    const aa = listenerAddresses(a).join(',');
    const ab = listenerAddresses(b).join(',');
    if (aa !== ab) return aa < ab ? -1 : 1;
    const ta = listenerType(a);
    const tb = listenerType(b);
    return ta < tb ? -1 : ta > tb ? 1 : 0;
  });
  const rows: string[][] = [];
  for (const l of sorted) {
    const addresses = listenerAddresses(l).join(',');
    const port = String(listenerPort(l));
    const chains = filterChains(l).map((c) => ({ match: describeChainMatch(c.filter_chain_match), destination: describeChainDestination(c) }));
    // istioctl orders a listener's chains by destination, descending.
    chains.sort((a, b) => (a.destination > b.destination ? -1 : a.destination < b.destination ? 1 : 0));
    for (const c of chains) rows.push([addresses, port, c.match, c.destination]);
  }
  return formatTable(['ADDRESSES', 'PORT', 'MATCH', 'DESTINATION'], rows, 1);
}

/* ------------------------------------------------------------------ routes */

/**
 * `/apis/<group>/<version>/namespaces/<ns>/<type>/<name>` (filter_metadata.istio.config on routes and clusters) →
 * `name.ns`, the Istio object that produced the resource.
 */
export function describeManagement(metadata: Resource | undefined): string {
  const config = metadata?.filter_metadata?.istio?.config;
  if (typeof config !== 'string' || config === '') return '';
  const p = config.split('/');
  if (p.length === 8 && p[0] === '' && p[1] === 'apis' && p[4] === 'namespaces') return `${p[7]}.${p[5]}`;
  return '<unknown>';
}

/**
 * istioctl's abbreviation: ports dropped, `.svc.cluster.local` / `.svc` expansions of a shorter name dropped, then
 * the first two and `+ N more...`. A trailing-dot (absolute) form of a listed name is dropped too.
 */
export function describeRouteDomains(domains: string[]): string {
  if (domains.length === 0) return '';
  if (domains.length === 1) return domains[0]!;
  // Without port; a bracketed IPv6 address counts as port-less.
  const withoutPort = domains.filter((d) => !d.includes(':') || (d.split(':').length - 1 > 2 && d.endsWith(']')));
  const unique = new Set(withoutPort);
  const expansion = (h: string) =>
    [h.replace(/\.svc\.cluster\.local$/, ''), h.replace(/\.svc$/, ''), h.replace(/\.$/, '')].some((s) => s !== h && unique.has(s));
  const shown = withoutPort.filter((h) => !expansion(h));
  const max = 2;
  if (shown.length > max) return `${shown.slice(0, max).join(', ')} + ${shown.length - max} more...`;
  return shown.join(', ');
}

const isPassthroughRoute = (r: Resource) => r.route?.cluster === 'PassthroughCluster';

export function filterRoutes(routes: Resource[], f: ProxyFilters): Resource[] {
  return routes.filter((r) => !f.name || r.name === f.name);
}

/** NAME VHOST NAME DOMAINS MATCH VIRTUAL SERVICE: one row per route, routes to the PassthroughCluster left out. */
export function routesTable(routes: Resource[]): string {
  const sorted = [...routes].sort((a, b) => {
    const na = Number(a.name);
    const nb = Number(b.name);
    if (Number.isInteger(na) && Number.isInteger(nb)) return na - nb;
    if (Number.isInteger(na) !== Number.isInteger(nb)) return Number.isInteger(na) ? -1 : 1;
    return String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0;
  });
  const rows: string[][] = [];
  for (const rc of sorted) {
    for (const vh of rc.virtual_hosts ?? []) {
      const domains = describeRouteDomains(vh.domains ?? []);
      const vhRoutes: Resource[] = vh.routes ?? [];
      for (const r of vhRoutes) {
        if (!isPassthroughRoute(r)) rows.push([rc.name ?? '', vh.name ?? '', domains, describeRouteMatch(r.match), describeManagement(r.metadata)]);
      }
      if (vhRoutes.length === 0) rows.push([rc.name ?? '', vh.name ?? '', domains, '/*', '404']);
    }
  }
  return formatTable(['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE'], rows, 5);
}

/* ------------------------------------------------------------------ clusters */

interface SubsetKey {
  direction: string;
  port: number;
  subset: string;
  fqdn: string;
  /** A `direction|port|subset|host` name (not BlackHoleCluster, PassthroughCluster, …). */
  parsed: boolean;
}

/** `outbound|9080|v1|reviews.default.svc.cluster.local` (istio-xds.md, cluster names) → its parts. */
export function parseSubsetKey(name: string): SubsetKey {
  const p = name.split('|');
  if (p.length < 4) return { direction: '', port: 0, subset: '', fqdn: name, parsed: false };
  return { direction: p[0]!, port: Number(p[1]) || 0, subset: p[2]!, fqdn: p.slice(3).join('|'), parsed: true };
}

function compareSubsetKeys(a: string, b: string): number {
  const ka = parseSubsetKey(a);
  const kb = parseSubsetKey(b);
  const cmp = (x: string | number, y: string | number) => (x < y ? -1 : x > y ? 1 : 0);
  return cmp(ka.fqdn, kb.fqdn) || cmp(ka.subset, kb.subset) || cmp(ka.port, kb.port) || cmp(ka.direction, kb.direction);
}

export function filterClusters(clusters: Resource[], f: ProxyFilters): Resource[] {
  return clusters.filter((c) => {
    const name = String(c.name ?? '');
    if (f.fqdn && !name.includes(f.fqdn)) return false;
    if (f.direction && !name.includes(f.direction)) return false;
    if (f.subset && !name.includes(f.subset)) return false;
    if (f.port && !name.includes(`|${f.port}|`)) return false;
    return true;
  });
}

/** SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE. */
export function clustersTable(clusters: Resource[]): string {
  const rows = [...clusters]
    .sort((a, b) => compareSubsetKeys(String(a.name ?? ''), String(b.name ?? '')))
    .map((c) => {
      const k = parseSubsetKey(String(c.name ?? ''));
      // proto3 JSON leaves out the default enum value: no `type` (and no cluster_type) means STATIC.
      const type = String(c.type ?? 'STATIC');
      const dr = describeManagement(c.metadata);
      return k.parsed ? [k.fqdn, String(k.port), k.subset || '-', k.direction, type, dr] : [k.fqdn, '-', '-', '-', type, dr];
    });
  return formatTable(['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'DESTINATION RULE'], rows, 5);
}

/* ------------------------------------------------------------------ endpoints */

export interface EndpointRow {
  address: string;
  port: number;
  cluster: string;
  status: string;
}

function endpointAddress(ep: Resource): { address: string; port: number } {
  const a = ep.endpoint?.address ?? {};
  if (a.socket_address) return { address: String(a.socket_address.address ?? ''), port: Number(a.socket_address.port_value ?? 0) };
  if (a.pipe) return { address: `unix://${a.pipe.path ?? ''}`, port: 0 };
  if (a.envoy_internal_address) return { address: `envoy://${a.envoy_internal_address.server_listener_name ?? ''}`, port: 0 };
  return { address: '', port: 0 };
}

/**
 * Every endpoint a proxy was given: EDS assignments, and the inline load_assignment of STATIC / DNS clusters (what
 * Envoy's /clusters lists). EDS health UNKNOWN is shown as HEALTHY, since Envoy treats it so (core.HealthStatus).
 */
export function endpointRows(assignments: Resource[], f: ProxyFilters): EndpointRow[] {
  const rows: EndpointRow[] = [];
  for (const cla of assignments) {
    const cluster = String(cla.cluster_name ?? '');
    for (const locality of cla.endpoints ?? []) {
      for (const ep of locality.lb_endpoints ?? []) {
        const { address, port } = endpointAddress(ep);
        const raw = String(ep.health_status ?? 'UNKNOWN');
        const status = raw === 'UNKNOWN' ? 'HEALTHY' : raw;
        if (f.address && !eqFold(address, f.address)) continue;
        if (f.port && port !== f.port) continue;
        if (f.cluster && !eqFold(cluster, f.cluster)) continue;
        if (f.status && !eqFold(status, f.status)) continue;
        rows.push({ address, port, cluster, status });
      }
    }
  }
  return rows.sort((a, b) => (a.address !== b.address ? (a.address < b.address ? -1 : 1) : a.port !== b.port ? a.port - b.port : a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
}

/** The load assignments of a dump: EDS resources plus clusters' inline ones. */
export function loadAssignments(eds: Resource[], clusters: Resource[]): Resource[] {
  const inline = clusters.filter((c) => c.load_assignment && c.type !== 'EDS').map((c) => ({ cluster_name: c.name, ...c.load_assignment }));
  return [...eds, ...inline];
}

/** The load assignments with only the endpoints that pass the filters (and none left empty by them). */
export function filterAssignments(assignments: Resource[], f: ProxyFilters): Resource[] {
  if (!f.address && !f.port && !f.cluster && !f.status) return assignments;
  const out: Resource[] = [];
  for (const cla of assignments) {
    const keep = new Set(endpointRows([cla], f).map((r) => `${r.address}\0${r.port}`));
    const endpoints = (cla.endpoints ?? [])
      .map((l: Resource) => ({ ...l, lb_endpoints: (l.lb_endpoints ?? []).filter((ep: Resource) => { const a = endpointAddress(ep); return keep.has(`${a.address}\0${a.port}`); }) }))
      .filter((l: Resource) => l.lb_endpoints.length > 0);
    if (endpoints.length > 0) out.push({ ...cla, endpoints });
  }
  return out;
}

/**
 * ENDPOINT STATUS OUTLIER CHECK CLUSTER. OUTLIER CHECK is Envoy's run-time ejection state, which a control plane does
 * not know: it is always OK here.
 */
export function endpointsTable(rows: EndpointRow[]): string {
  return formatTable(
    ['ENDPOINT', 'STATUS', 'OUTLIER CHECK', 'CLUSTER'],
    rows.map((r) => [r.port !== 0 ? `${r.address}:${r.port}` : r.address, r.status, 'OK', r.cluster]),
    5,
  );
}

/* ------------------------------------------------------------------ secrets */

function dataSourceBytes(ds: Resource | undefined): Buffer | undefined {
  if (!ds) return undefined;
  if (typeof ds.inline_bytes === 'string') return Buffer.from(ds.inline_bytes, 'base64');
  if (typeof ds.inline_string === 'string') return Buffer.from(ds.inline_string);
  return undefined;
}

/** The first certificate of a PEM bundle (or DER), or undefined when there is none or it does not parse. */
function firstCertificate(data: Buffer | undefined): X509Certificate | undefined {
  if (!data) return undefined;
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(data.toString('latin1'));
  try {
    return new X509Certificate(pem ? Buffer.from(pem[0]) : data);
  } catch {
    return undefined;
  }
}

/** RFC 3339 in UTC without fractions, as Go prints a time.Time with time.RFC3339. */
const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * RESOURCE NAME TYPE STATUS VALID CERT SERIAL NUMBER NOT AFTER NOT BEFORE: a Secret's tls_certificate is a
 * "Cert Chain", its validation_context a "CA". Only certificates are read: a private key is never decoded or printed.
 * STATUS is ACTIVE: these are the secrets the control plane serves (Envoy's WARMING state is not visible from here).
 */
export function secretsTable(secrets: Resource[], now: Date = new Date()): string {
  const rows: string[][] = [];
  for (const s of [...secrets].sort((a, b) => (String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0))) {
    const name = String(s.name ?? '');
    const entries: Array<[string, Buffer | undefined]> = [];
    if (s.tls_certificate) entries.push(['Cert Chain', dataSourceBytes(s.tls_certificate.certificate_chain)]);
    if (s.validation_context) entries.push(['CA', dataSourceBytes(s.validation_context.trusted_ca)]);
    if (entries.length === 0) rows.push([name, '', 'ACTIVE', 'false', '', '', '']);
    for (const [type, data] of entries) {
      const cert = firstCertificate(data);
      if (!cert) {
        rows.push([name, type, 'ACTIVE', 'false', '', '', '']);
        continue;
      }
      const notBefore = new Date(cert.validFrom);
      const notAfter = new Date(cert.validTo);
      const valid = notBefore.getTime() <= now.getTime() && now.getTime() <= notAfter.getTime();
      // Go prints the serial with %x of a big.Int: lower case, no leading zeros.
      const serial = cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, '');
      rows.push([name, type, 'ACTIVE', String(valid), serial, rfc3339(notAfter), rfc3339(notBefore)]);
    }
  }
  return formatTable(['RESOURCE NAME', 'TYPE', 'STATUS', 'VALID CERT', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE'], rows, 5);
}
