/**
 * The sidecar's traffic capture, rule for rule and in the same order as istio-iptables writes it
 * (istio/istio tools/istio-iptables/pkg/capture/run.go `Run`, `SetupDNSRedir`, `addDNSConntrackZones`; the restore
 * document as pkg/builder `buildRestore` renders it; checked against the golden files in pkg/capture/testdata).
 * Pure: configuration in, rules out.
 *
 * The chains: nat ISTIO_INBOUND (inbound, from PREROUTING), ISTIO_IN_REDIRECT (→ the inbound capture port 15006),
 * ISTIO_OUTPUT (outbound, from OUTPUT), ISTIO_REDIRECT (→ the outbound port 15001), ISTIO_OUTPUT_DNS (DNS → the agent
 * on 15053); with TPROXY the inbound side moves to mangle ISTIO_INBOUND / ISTIO_DIVERT / ISTIO_TPROXY; raw
 * ISTIO_OUTPUT_DNS / ISTIO_INBOUND put DNS flows in separate conntrack zones.
 */
import type { Prefix } from './cidr.ts';
import type { CaptureConfig } from './options.ts';

export type Table = 'filter' | 'mangle' | 'nat' | 'raw';

/** One rule: its table and chain, and the iptables arguments starting at `-A CHAIN` or `-I CHAIN n`. */
export interface Rule {
  table: Table;
  chain: string;
  params: string[];
}

export interface RuleSet {
  v4: Rule[];
  /** Empty unless IPv6 is enabled. */
  v6: Rule[];
  /** `ip` commands TPROXY needs (policy routing of marked packets to lo), and the `::6` address for IPv6. */
  routes: string[][];
  /** Things that change the outcome without being errors (e.g. DNS capture turned off). */
  warnings: string[];
}

// pkg/constants
const ISTIO_OUTPUT = 'ISTIO_OUTPUT';
const ISTIO_OUTPUT_DNS = 'ISTIO_OUTPUT_DNS';
const ISTIO_INBOUND = 'ISTIO_INBOUND';
const ISTIO_DIVERT = 'ISTIO_DIVERT';
const ISTIO_TPROXY = 'ISTIO_TPROXY';
const ISTIO_REDIRECT = 'ISTIO_REDIRECT';
const ISTIO_IN_REDIRECT = 'ISTIO_IN_REDIRECT';
const ISTIO_DROP = 'ISTIO_DROP';
/** TPROXY: packets from Envoy's outbound side to the app by pod IP carry this mark so inbound capture skips them. */
const OUTBOUND_MARK = '1338';
/** The agent's DNS proxy. */
const DNS_PORT = '15053';
/** Placeholder replaced by the IPv4 or the IPv6 value in a dual-stack rule (constants.IPVersionSpecific). */
const IP = '\0ip';
/** Chains and targets iptables knows: never created with -N (constants.BuiltInChainsAndTargetsMap). */
const BUILTIN = new Set(['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING', 'ACCEPT', 'RETURN', 'DROP']);

/** pkg/builder IptablesRuleBuilder: rules for iptables and, when IPv6 is on, the same for ip6tables. */
class RuleBuilder {
  readonly v4: Rule[] = [];
  readonly v6: Rule[] = [];
  private readonly ipv6: boolean;
  constructor(ipv6: boolean) {
    this.ipv6 = ipv6;
  }

  appendV4(chain: string, table: Table, ...params: string[]): void {
    this.v4.push({ table, chain, params: ['-A', chain, ...params] });
  }
  appendV6(chain: string, table: Table, ...params: string[]): void {
    if (this.ipv6) this.v6.push({ table, chain, params: ['-A', chain, ...params] });
  }
  append(chain: string, table: Table, ...params: string[]): void {
    this.appendV4(chain, table, ...params);
    this.appendV6(chain, table, ...params);
  }
  insertV4(chain: string, table: Table, position: number, ...params: string[]): void {
    this.v4.push({ table, chain, params: ['-I', chain, String(position), ...params] });
  }
  insertV6(chain: string, table: Table, position: number, ...params: string[]): void {
    if (this.ipv6) this.v6.push({ table, chain, params: ['-I', chain, String(position), ...params] });
  }
  insert(chain: string, table: Table, position: number, ...params: string[]): void {
    this.insertV4(chain, table, position, ...params);
    this.insertV6(chain, table, position, ...params);
  }
  /** A dual-stack rule with one address-family specific value (AppendVersionedRule). */
  appendVersioned(v4: string, v6: string, chain: string, table: Table, ...params: string[]): void {
    this.appendV4(chain, table, ...params.map((p) => (p === IP ? v4 : p)));
    this.appendV6(chain, table, ...params.map((p) => (p === IP ? v6 : p)));
  }
}

interface NetworkRange {
  wildcard: boolean;
  cidrs: string[];
  hasLoopback: boolean;
}

/** separateV4V6: `*` is a wildcard for both families. */
function separate(list: '*' | Prefix[]): { v4: NetworkRange; v6: NetworkRange } {
  if (list === '*') return { v4: { wildcard: true, cidrs: [], hasLoopback: false }, v6: { wildcard: true, cidrs: [], hasLoopback: false } };
  const pick = (family: 4 | 6): NetworkRange => {
    const ps = list.filter((p) => p.family === family);
    return { wildcard: false, cidrs: ps.map((p) => p.text), hasLoopback: ps.some((p) => p.loopback) };
  };
  return { v4: pick(4), v6: pick(6) };
}

/** The rules istio-iptables would write for this configuration, in its order. */
export function buildRules(cfg: CaptureConfig): RuleSet {
  const b = new RuleBuilder(cfg.enableIPv6);
  const warnings: string[] = [];
  const tproxy = cfg.interceptionMode === 'TPROXY';
  const loopback = cfg.hostIPv4LoopbackCidr;
  const exclude = separate(cfg.outboundIpRangesExclude);
  const include = separate(cfg.outboundIpRangesInclude);

  let redirectDns = cfg.redirectDns;
  if (redirectDns && !cfg.captureAllDns && cfg.dnsServersV4.length === 0 && cfg.dnsServersV6.length === 0) {
    warnings.push('--redirect-dns is set, but --capture-all-dns is not and no DNS servers were found (/etc/resolv.conf): DNS capture disabled');
    redirectDns = false;
  }

  // Neither inbound nor outbound traffic of excluded interfaces is captured.
  for (const nic of cfg.excludeInterfaces) {
    b.append('PREROUTING', 'nat', '-i', nic, '-j', 'RETURN');
    b.append('OUTPUT', 'nat', '-o', nic, '-j', 'RETURN');
  }
  if (tproxy) {
    for (const nic of cfg.excludeInterfaces) {
      b.append('PREROUTING', 'mangle', '-i', nic, '-j', 'RETURN');
      b.append('OUTPUT', 'mangle', '-o', nic, '-j', 'RETURN');
    }
  }
  // Inbound traffic of virtual interfaces (KubeVirt VMs) is not inbound: skip the inbound capture...
  for (const nic of cfg.rerouteVirtualInterfaces) b.insert('PREROUTING', 'nat', 1, '-i', nic, '-j', 'RETURN');

  if (cfg.dropInvalid) {
    // Drop out-of-window packets instead of letting conntrack reset the connection.
    b.append('PREROUTING', 'mangle', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', ISTIO_DROP);
    b.append(ISTIO_DROP, 'mangle', '-j', 'DROP');
  }

  // The HBONE tunnel port is reached directly.
  b.append(ISTIO_INBOUND, 'nat', '-p', 'tcp', '--dport', cfg.inboundTunnelPort, '-j', 'RETURN');
  b.append(ISTIO_REDIRECT, 'nat', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', cfg.proxyPort);
  b.append(ISTIO_IN_REDIRECT, 'nat', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', cfg.inboundCapturePort);

  inbound(b, cfg, loopback);

  // Every outbound packet (UDP too: DNS is sorted out inside ISTIO_OUTPUT) goes through ISTIO_OUTPUT.
  b.append('OUTPUT', 'nat', '-j', ISTIO_OUTPUT);
  // Port exclusions come before connections back to self are redirected.
  for (const port of cfg.outboundPortsExclude) {
    b.append(ISTIO_OUTPUT, 'nat', '-p', 'tcp', '--dport', port, '-j', 'RETURN');
    b.append(ISTIO_OUTPUT, 'nat', '-p', 'udp', '--dport', port, '-j', 'RETURN');
  }
  // 127.0.0.6 (::6) is the source the inbound passthrough cluster binds to: Envoy → app, not captured again.
  b.appendVersioned('127.0.0.6/32', '::6/128', ISTIO_OUTPUT, 'nat', '-o', 'lo', '-s', IP, '-j', 'RETURN');

  const loopbackIncluded = include.v4.hasLoopback || include.v6.hasLoopback;
  for (const uid of cfg.proxyUids) {
    // Envoy calling its own pod through a service VIP (app → Envoy → Envoy inbound → app) goes back in inbound.
    if (redirectDns) {
      // ...except DNS: app → agent → DNS server must not go through Envoy inbound.
      b.appendVersioned(loopback, '::1/128', ISTIO_OUTPUT, 'nat', '-o', 'lo', '!', '-d', IP, '-p', 'tcp', '-m', 'multiport', '!', '--dports', `53,${cfg.inboundTunnelPort}`, '-m', 'owner', '--uid-owner', uid, '-j', ISTIO_IN_REDIRECT);
    } else {
      b.appendVersioned(loopback, '::1/128', ISTIO_OUTPUT, 'nat', '-o', 'lo', '!', '-d', IP, '-p', 'tcp', '!', '--dport', cfg.inboundTunnelPort, '-m', 'owner', '--uid-owner', uid, '-j', ISTIO_IN_REDIRECT);
    }
    // An app calling itself over lo by endpoint address is not captured, unless loopback was explicitly included.
    if (!loopbackIncluded) {
      if (redirectDns) {
        // TCP DNS to a resolver on localhost is still captured below.
        b.append(ISTIO_OUTPUT, 'nat', '-o', 'lo', '-p', 'tcp', '!', '--dport', '53', '-m', 'owner', '!', '--uid-owner', uid, '-j', 'RETURN');
      } else {
        b.append(ISTIO_OUTPUT, 'nat', '-o', 'lo', '-m', 'owner', '!', '--uid-owner', uid, '-j', 'RETURN');
      }
    }
    // No loops: whatever Envoy itself sends (TCP or UDP, any destination) leaves uncaptured.
    b.append(ISTIO_OUTPUT, 'nat', '-m', 'owner', '--uid-owner', uid, '-j', 'RETURN');
  }
  for (const gid of cfg.proxyGids) {
    b.appendVersioned(loopback, '::1/128', ISTIO_OUTPUT, 'nat', '-o', 'lo', '!', '-d', IP, '-p', 'tcp', '!', '--dport', cfg.inboundTunnelPort, '-m', 'owner', '--gid-owner', gid, '-j', ISTIO_IN_REDIRECT);
    if (!loopbackIncluded) {
      if (redirectDns) {
        b.append(ISTIO_OUTPUT, 'nat', '-o', 'lo', '-p', 'tcp', '!', '--dport', '53', '-m', 'owner', '!', '--gid-owner', gid, '-j', 'RETURN');
      } else {
        b.append(ISTIO_OUTPUT, 'nat', '-o', 'lo', '-m', 'owner', '!', '--gid-owner', gid, '-j', 'RETURN');
      }
    }
    b.append(ISTIO_OUTPUT, 'nat', '-m', 'owner', '--gid-owner', gid, '-j', 'RETURN');
  }

  // Capture by owner group (env ISTIO_OUTBOUND_OWNER_GROUPS / _EXCLUDE): handleCaptureByOwnerGroup.
  if (cfg.ownerGroupsInclude === '*') {
    for (const group of cfg.ownerGroupsExclude) b.append(ISTIO_OUTPUT, 'nat', '-m', 'owner', '--gid-owner', group, '-j', 'RETURN');
  } else {
    b.append(ISTIO_OUTPUT, 'nat', ...cfg.ownerGroupsInclude.flatMap((g) => ['-m', 'owner', '!', '--gid-owner', g]), '-j', 'RETURN');
  }

  if (redirectDns) dns(b, cfg);

  // Envoy-aware apps and container-to-container traffic use localhost explicitly: not captured.
  b.appendVersioned(loopback, '::1/128', ISTIO_OUTPUT, 'nat', '-d', IP, '-j', 'RETURN');
  // Excluded ranges come before included ones.
  for (const cidr of exclude.v4.cidrs) b.appendV4(ISTIO_OUTPUT, 'nat', '-d', cidr, '-j', 'RETURN');
  for (const cidr of exclude.v6.cidrs) b.appendV6(ISTIO_OUTPUT, 'nat', '-d', cidr, '-j', 'RETURN');
  // Included ports go to Envoy whatever the destination.
  for (const port of cfg.outboundPortsInclude) b.append(ISTIO_OUTPUT, 'nat', '-p', 'tcp', '--dport', port, '-j', ISTIO_REDIRECT);

  outboundInclude(include.v4, cfg.rerouteVirtualInterfaces, (...p) => b.appendV4(...p), (...p) => b.insertV4(...p));
  outboundInclude(include.v6, cfg.rerouteVirtualInterfaces, (...p) => b.appendV6(...p), (...p) => b.insertV6(...p));

  if (tproxy) {
    // Keep the mark set by envoy.filters.listener.original_src as the connection mark.
    b.append('PREROUTING', 'mangle', '-p', 'tcp', '-m', 'mark', '--mark', cfg.tproxyMark, '-j', 'CONNMARK', '--save-mark');
    // Already marked (Envoy → app): do not mark again.
    b.append('OUTPUT', 'mangle', '-p', 'tcp', '-o', 'lo', '-m', 'mark', '--mark', cfg.tproxyMark, '-j', 'RETURN');
    // Envoy outbound → the app by pod IP (app → VIP → Envoy outbound → Envoy inbound → app) is marked 1338.
    for (const uid of cfg.proxyUids) {
      b.appendVersioned(loopback, '::1/128', 'OUTPUT', 'mangle', '!', '-d', IP, '-p', 'tcp', '-o', 'lo', '-m', 'owner', '--uid-owner', uid, '-j', 'MARK', '--set-mark', OUTBOUND_MARK);
    }
    for (const gid of cfg.proxyGids) {
      b.appendVersioned(loopback, '::1/128', 'OUTPUT', 'mangle', '!', '-d', IP, '-p', 'tcp', '-o', 'lo', '-m', 'owner', '--gid-owner', gid, '-j', 'MARK', '--set-mark', OUTBOUND_MARK);
    }
    // The app's replies take the policy route set up for TPROXY.
    b.append('OUTPUT', 'mangle', '-p', 'tcp', '-m', 'connmark', '--mark', cfg.tproxyMark, '-j', 'CONNMARK', '--restore-mark');
    // No infinite redirect; no capture of Envoy/agent → app from 127.0.0.6, nor of app → app by pod IP.
    b.insert(ISTIO_INBOUND, 'mangle', 1, '-p', 'tcp', '-m', 'mark', '--mark', cfg.tproxyMark, '-j', 'RETURN');
    b.insertV4(ISTIO_INBOUND, 'mangle', 2, '-p', 'tcp', '-s', '127.0.0.6/32', '-i', 'lo', '-j', 'RETURN');
    b.insertV6(ISTIO_INBOUND, 'mangle', 2, '-p', 'tcp', '-s', '::6/128', '-i', 'lo', '-j', 'RETURN');
    b.insert(ISTIO_INBOUND, 'mangle', 3, '-p', 'tcp', '-i', 'lo', '-m', 'mark', '!', '--mark', OUTBOUND_MARK, '-j', 'RETURN');
  }

  return { v4: b.v4, v6: b.v6, routes: routeCommands(cfg), warnings };
}

/** handleInboundPortsInclude: nothing when no inbound port is captured. */
function inbound(b: RuleBuilder, cfg: CaptureConfig, loopback: string): void {
  const include = cfg.inboundPortsInclude;
  if (include !== '*' && include.length === 0) return;
  const tproxy = cfg.interceptionMode === 'TPROXY';
  let table: Table = 'nat';
  if (tproxy) {
    // Marked packets are routed to lo (see routeCommands), where the TPROXY'd socket of Envoy picks them up.
    b.append(ISTIO_DIVERT, 'mangle', '-j', 'MARK', '--set-mark', cfg.tproxyMark);
    b.append(ISTIO_DIVERT, 'mangle', '-j', 'ACCEPT');
    b.appendVersioned(loopback, '::1/128', ISTIO_TPROXY, 'mangle', '!', '-d', IP, '-p', 'tcp', '-j', 'TPROXY', '--tproxy-mark', `${cfg.tproxyMark}/0xffffffff`, '--on-port', cfg.inboundCapturePort);
    table = 'mangle';
  }
  b.append('PREROUTING', table, '-p', 'tcp', '-j', ISTIO_INBOUND);
  if (include === '*') {
    for (const port of cfg.inboundPortsExclude) b.append(ISTIO_INBOUND, table, '-p', 'tcp', '--dport', port, '-j', 'RETURN');
    if (tproxy) {
      // Packets of established sockets are routed to lo; new connections are TPROXY'd.
      b.append(ISTIO_INBOUND, 'mangle', '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', ISTIO_DIVERT);
      b.append(ISTIO_INBOUND, 'mangle', '-p', 'tcp', '-j', ISTIO_TPROXY);
    } else {
      b.append(ISTIO_INBOUND, 'nat', '-p', 'tcp', '-j', ISTIO_IN_REDIRECT);
    }
    return;
  }
  // Only the listed ports (the exclusions only apply to `*`).
  for (const port of include) {
    if (tproxy) {
      b.append(ISTIO_INBOUND, 'mangle', '-p', 'tcp', '--dport', port, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', ISTIO_DIVERT);
      b.append(ISTIO_INBOUND, 'mangle', '-p', 'tcp', '--dport', port, '-j', ISTIO_TPROXY);
    } else {
      b.append(ISTIO_INBOUND, 'nat', '-p', 'tcp', '--dport', port, '-j', ISTIO_IN_REDIRECT);
    }
  }
}

type Append = (chain: string, table: Table, ...params: string[]) => void;
type Insert = (chain: string, table: Table, position: number, ...params: string[]) => void;

/** handleOutboundIncludeRules: the rest of the outbound traffic (or the included ranges) to Envoy. */
function outboundInclude(range: NetworkRange, virtualInterfaces: string[], append: Append, insert: Insert): void {
  if (range.wildcard) {
    append(ISTIO_OUTPUT, 'nat', '-j', ISTIO_REDIRECT);
    // ...and inbound traffic of virtual interfaces is treated as outbound.
    for (const nic of virtualInterfaces) insert('PREROUTING', 'nat', 1, '-i', nic, '-j', ISTIO_REDIRECT);
    return;
  }
  for (const cidr of range.cidrs) {
    for (const nic of virtualInterfaces) insert('PREROUTING', 'nat', 1, '-i', nic, '-d', cidr, '-j', ISTIO_REDIRECT);
    append(ISTIO_OUTPUT, 'nat', '-d', cidr, '-j', ISTIO_REDIRECT);
  }
}

/** SetupDNSRedir + addDNSConntrackZones: DNS to the agent's resolver on 15053, and conntrack zones for UDP. */
function dns(b: RuleBuilder, cfg: CaptureConfig): void {
  const all = cfg.captureAllDns;
  const v4 = cfg.dnsServersV4;
  const v6 = cfg.dnsServersV6;
  b.append('OUTPUT', 'raw', '-j', ISTIO_OUTPUT_DNS);
  // Jump only for the families that have something to capture.
  if (all || v4.length > 0) b.appendV4(ISTIO_OUTPUT, 'nat', '-j', ISTIO_OUTPUT_DNS);
  if (all || v6.length > 0) b.appendV6(ISTIO_OUTPUT, 'nat', '-j', ISTIO_OUTPUT_DNS);
  // TCP, then UDP: all of port 53 (when the resolver is unknown, e.g. CNI), or only to the resolv.conf servers, so a
  // local resolver chain (app → agent → dnsmasq → upstream) cannot loop.
  if (all) {
    b.append(ISTIO_OUTPUT_DNS, 'nat', '-p', 'tcp', '--dport', '53', '-j', 'REDIRECT', '--to-ports', DNS_PORT);
  } else {
    for (const s of v4) b.appendV4(ISTIO_OUTPUT_DNS, 'nat', '-p', 'tcp', '--dport', '53', '-d', `${s}/32`, '-j', 'REDIRECT', '--to-ports', DNS_PORT);
    for (const s of v6) b.appendV6(ISTIO_OUTPUT_DNS, 'nat', '-p', 'tcp', '--dport', '53', '-d', `${s}/128`, '-j', 'REDIRECT', '--to-ports', DNS_PORT);
  }
  if (all) {
    b.append(ISTIO_OUTPUT_DNS, 'nat', '-p', 'udp', '--dport', '53', '-j', 'REDIRECT', '--to-port', DNS_PORT);
  } else {
    for (const s of v4) b.appendV4(ISTIO_OUTPUT_DNS, 'nat', '-p', 'udp', '--dport', '53', '-d', `${s}/32`, '-j', 'REDIRECT', '--to-port', DNS_PORT);
    for (const s of v6) b.appendV6(ISTIO_OUTPUT_DNS, 'nat', '-p', 'udp', '--dport', '53', '-d', `${s}/128`, '-j', 'REDIRECT', '--to-port', DNS_PORT);
  }
  // Conntrack zones: agent ↔ upstream resolvers in zone 1, app ↔ agent in zone 2 (UDP conntrack races otherwise).
  for (const uid of cfg.proxyUids) {
    b.append(ISTIO_OUTPUT_DNS, 'raw', '-p', 'udp', '--dport', '53', '-m', 'owner', '--uid-owner', uid, '-j', 'CT', '--zone', '1');
    b.append(ISTIO_OUTPUT_DNS, 'raw', '-p', 'udp', '--sport', DNS_PORT, '-m', 'owner', '--uid-owner', uid, '-j', 'CT', '--zone', '2');
  }
  for (const gid of cfg.proxyGids) {
    b.append(ISTIO_OUTPUT_DNS, 'raw', '-p', 'udp', '--dport', '53', '-m', 'owner', '--gid-owner', gid, '-j', 'CT', '--zone', '1');
    b.append(ISTIO_OUTPUT_DNS, 'raw', '-p', 'udp', '--sport', DNS_PORT, '-m', 'owner', '--gid-owner', gid, '-j', 'CT', '--zone', '2');
  }
  if (all) {
    b.append('PREROUTING', 'raw', '-j', ISTIO_INBOUND);
    b.append(ISTIO_OUTPUT_DNS, 'raw', '-p', 'udp', '--dport', '53', '-j', 'CT', '--zone', '2');
    b.append(ISTIO_INBOUND, 'raw', '-p', 'udp', '--sport', '53', '-j', 'CT', '--zone', '1');
    return;
  }
  if (v4.length > 0) b.appendV4('PREROUTING', 'raw', '-j', ISTIO_INBOUND);
  for (const s of v4) {
    b.appendV4(ISTIO_OUTPUT_DNS, 'raw', '-p', 'udp', '--dport', '53', '-d', `${s}/32`, '-j', 'CT', '--zone', '2');
    b.appendV4(ISTIO_INBOUND, 'raw', '-p', 'udp', '--sport', '53', '-s', `${s}/32`, '-j', 'CT', '--zone', '1');
  }
  if (v6.length > 0) b.appendV6('PREROUTING', 'raw', '-j', ISTIO_INBOUND);
  for (const s of v6) {
    b.appendV6(ISTIO_OUTPUT_DNS, 'raw', '-p', 'udp', '--dport', '53', '-d', `${s}/128`, '-j', 'CT', '--zone', '2');
    b.appendV6(ISTIO_INBOUND, 'raw', '-p', 'udp', '--sport', '53', '-s', `${s}/128`, '-j', 'CT', '--zone', '1');
  }
}

/**
 * capture.ConfigureRoutes: with IPv6, `::6` on lo (IPv6 lo only holds ::1/128, unlike 127.0.0.0/8); with TPROXY,
 * packets carrying the mark are looked up in a table that delivers everything locally on lo.
 */
export function routeCommands(cfg: CaptureConfig): string[][] {
  const out: string[][] = [];
  if (cfg.enableIPv6) out.push(['ip', '-6', 'addr', 'add', '::6/128', 'dev', 'lo']);
  const inbound = cfg.inboundPortsInclude === '*' || cfg.inboundPortsInclude.length > 0;
  if (inbound && cfg.interceptionMode === 'TPROXY') {
    const families = cfg.enableIPv6 ? ['inet', 'inet6'] : ['inet'];
    for (const f of families) out.push(['ip', '-f', f, 'rule', 'add', 'fwmark', cfg.tproxyMark, 'lookup', cfg.tproxyRouteTable]);
    for (const f of families) out.push(['ip', '-f', f, 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', cfg.tproxyRouteTable]);
  }
  return out;
}

/**
 * The iptables-restore document (pkg/builder buildRestore): per table, in name order, `-N` for every non-built-in
 * chain that has rules or is jumped to, then the rules in the order they were made; tables without rules are left out.
 */
export function toRestore(rules: readonly Rule[]): string {
  const tables = new Map<Table, string[]>([
    ['filter', []],
    ['nat', []],
    ['mangle', []],
  ]);
  const lines = (t: Table): string[] => {
    let l = tables.get(t);
    if (!l) tables.set(t, (l = []));
    return l;
  };
  const seen = new Set<string>();
  const declare = (chain: string, table: Table) => {
    const key = `${chain}:${table}`;
    if (seen.has(key)) return;
    seen.add(key);
    if (!BUILTIN.has(chain)) lines(table).push(`-N ${chain}`);
  };
  for (const r of rules) declare(r.chain, r.table);
  // Also the chains jumped to, even when they hold no rules.
  for (const r of rules) if (r.params.at(-2) === '-j') declare(r.params.at(-1) ?? '', r.table);
  for (const r of rules) lines(r.table).push(r.params.join(' '));
  let out = '';
  for (const t of [...tables.keys()].sort()) {
    const l = tables.get(t) ?? [];
    if (l.length === 0) continue;
    out += `* ${t}\n${l.join('\n')}\nCOMMIT\n`;
  }
  return out;
}

/** The same rules as individual commands (`iptables -t nat -N X`, then `iptables -t nat -A ...`), as pkg/builder BuildV4. */
export function toCommands(rules: readonly Rule[], binary: 'iptables' | 'ip6tables'): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const r of rules) {
    const key = `${r.chain}:${r.table}`;
    if (seen.has(key) || BUILTIN.has(r.chain)) continue;
    seen.add(key);
    out.push(`${binary} -t ${r.table} -N ${r.chain}`);
  }
  for (const r of rules) out.push(`${binary} -t ${r.table} ${r.params.join(' ')}`);
  return out;
}
