/**
 * `mizzen iptables` flags → validated capture options, with istio-iptables' flag names, short flags and defaults
 * (istio/istio tools/istio-iptables/pkg/cmd/root.go, pkg/constants, pkg/config). Like istio-iptables (viper
 * AutomaticEnv), a flag not given falls back to the environment variable named after it (`--istio-inbound-ports` →
 * `ISTIO_INBOUND_PORTS`), then to the default. Unlike istio-iptables, a malformed value is refused, naming the flag,
 * instead of being passed to iptables or silently dropped (istio ignores unparsable CIDRs "for bug compatibility").
 *
 * How the sidecar injector fills the `istio-init` arguments from pod annotations (injection template; see
 * {@link istioInitArgs}, which renders them):
 *
 * | pod annotation                                       | flag | injector default                           |
 * |------------------------------------------------------|------|--------------------------------------------|
 * | `sidecar.istio.io/interceptionMode`                  | `-m` | ProxyConfig.interceptionMode (`REDIRECT`)  |
 * | `traffic.sidecar.istio.io/includeOutboundIPRanges`   | `-i` | `global.proxy.includeIPRanges` (`*`)       |
 * | `traffic.sidecar.istio.io/excludeOutboundIPRanges`   | `-x` | `global.proxy.excludeIPRanges` (``)        |
 * | `traffic.sidecar.istio.io/includeInboundPorts`       | `-b` | `*`                                        |
 * | `traffic.sidecar.istio.io/excludeInboundPorts`       | `-d` | `15090,15021,` + these + the status port   |
 * | `status.sidecar.istio.io/port`                       | `-d` | appended to `-d` unless listed or `0` (15020) |
 * | `traffic.sidecar.istio.io/includeOutboundPorts`      | `-q` | omitted                                    |
 * | `traffic.sidecar.istio.io/excludeOutboundPorts`      | `-o` | omitted                                    |
 * | `istio.io/reroute-virtual-interfaces` (wins)         | `-k` | omitted                                    |
 * | `traffic.sidecar.istio.io/kubevirtInterfaces` (deprecated) | `-k` | omitted                              |
 * | `traffic.sidecar.istio.io/excludeInterfaces`         | `-c` | omitted                                    |
 * | ProxyConfig.proxyMetadata `ISTIO_META_DNS_CAPTURE` (env of istio-init) | `--redirect-dns` default | false |
 * | ProxyConfig.proxyMetadata `INVALID_DROP` (env of istio-init)           | `--drop-invalid` default | false |
 *
 * `-p 15001 -z 15006 -u 1337` are fixed in the template (TPROXY runs the proxy as 1337 too).
 */
import { fail, ok, type Result } from '../shared/errors.ts';
import { parsePrefix, type Prefix } from './cidr.ts';

/** The flags as commander hands them over (camelCase of the long names); `undefined` = not given. */
export interface IptablesFlags {
  envoyPort?: string;
  inboundCapturePort?: string;
  inboundTunnelPort?: string;
  proxyUid?: string;
  proxyGid?: string;
  istioInboundInterceptionMode?: string;
  istioInboundTproxyMark?: string;
  istioInboundTproxyRouteTable?: string;
  istioInboundPorts?: string;
  istioLocalExcludePorts?: string;
  istioExcludeInterfaces?: string;
  istioServiceCidr?: string;
  istioServiceExcludeCidr?: string;
  istioOutboundPorts?: string;
  istioLocalOutboundPortsExclude?: string;
  kubeVirtInterfaces?: string;
  redirectDns?: string | boolean;
  captureAllDns?: string | boolean;
  dropInvalid?: string | boolean;
  dualStack?: string | boolean;
  dryRun?: string | boolean;
  skipRuleApply?: string | boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Validated options. Ports stay strings (`8080` or a range `8000:8100`), exactly as they go into the rules. */
export interface IptablesOptions {
  proxyPort: string;
  inboundCapturePort: string;
  inboundTunnelPort: string;
  /** `undefined`: not given, resolved from ENVOY_USER (istio-proxy) on the host, else 1337. */
  proxyUids: string[] | undefined;
  /** `undefined`: same as the uids. */
  proxyGids: string[] | undefined;
  interceptionMode: 'REDIRECT' | 'TPROXY';
  tproxyMark: string;
  tproxyRouteTable: string;
  /** `*`: every port; `[]`: no inbound capture. */
  inboundPortsInclude: '*' | string[];
  inboundPortsExclude: string[];
  outboundPortsInclude: string[];
  outboundPortsExclude: string[];
  /** `*`: every destination; `[]`: no outbound capture. */
  outboundIpRangesInclude: '*' | Prefix[];
  outboundIpRangesExclude: Prefix[];
  rerouteVirtualInterfaces: string[];
  excludeInterfaces: string[];
  /** Env-only in istio-iptables: ISTIO_OUTBOUND_OWNER_GROUPS (`*`) and ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE. */
  ownerGroupsInclude: '*' | string[];
  ownerGroupsExclude: string[];
  /** Env-only: ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR (127.0.0.1/32). */
  hostIPv4LoopbackCidr: string;
  redirectDns: boolean;
  captureAllDns: boolean;
  dropInvalid: boolean;
  dualStack: boolean;
  dryRun: boolean;
  skipRuleApply: boolean;
}

/** What the host tells us (see host.ts): the options plus these make a complete capture configuration. */
export interface HostFacts {
  /** The uid of ENVOY_USER, when that user exists. */
  envoyUserUid?: string;
  /** Istio enables the ip6tables rules when the pod's (first, or with --dual-stack any) address is IPv6. */
  hasIPv6: boolean;
  /** Nameservers of /etc/resolv.conf, read only when DNS is redirected but not all of it captured. */
  dnsServers: string[];
}

export interface CaptureConfig extends Omit<IptablesOptions, 'proxyUids' | 'proxyGids'> {
  proxyUids: string[];
  proxyGids: string[];
  enableIPv6: boolean;
  dnsServersV4: string[];
  dnsServersV6: string[];
}

interface FlagSpec {
  key: keyof IptablesFlags;
  name: string;
  short?: string;
  env: string;
}

const spec = (key: keyof IptablesFlags, name: string, short?: string): FlagSpec => ({
  key,
  name,
  ...(short ? { short } : {}),
  env: name.toUpperCase().replaceAll('-', '_'),
});

/** istio-iptables' flags (pkg/constants), in `--help` order. */
export const FLAGS = {
  envoyPort: spec('envoyPort', 'envoy-port', 'p'),
  inboundCapturePort: spec('inboundCapturePort', 'inbound-capture-port', 'z'),
  inboundTunnelPort: spec('inboundTunnelPort', 'inbound-tunnel-port', 'e'),
  proxyUid: spec('proxyUid', 'proxy-uid', 'u'),
  proxyGid: spec('proxyGid', 'proxy-gid', 'g'),
  istioInboundInterceptionMode: spec('istioInboundInterceptionMode', 'istio-inbound-interception-mode', 'm'),
  istioInboundTproxyMark: spec('istioInboundTproxyMark', 'istio-inbound-tproxy-mark', 't'),
  istioInboundTproxyRouteTable: spec('istioInboundTproxyRouteTable', 'istio-inbound-tproxy-route-table', 'r'),
  istioInboundPorts: spec('istioInboundPorts', 'istio-inbound-ports', 'b'),
  istioLocalExcludePorts: spec('istioLocalExcludePorts', 'istio-local-exclude-ports', 'd'),
  istioExcludeInterfaces: spec('istioExcludeInterfaces', 'istio-exclude-interfaces', 'c'),
  istioServiceCidr: spec('istioServiceCidr', 'istio-service-cidr', 'i'),
  istioServiceExcludeCidr: spec('istioServiceExcludeCidr', 'istio-service-exclude-cidr', 'x'),
  istioOutboundPorts: spec('istioOutboundPorts', 'istio-outbound-ports', 'q'),
  istioLocalOutboundPortsExclude: spec('istioLocalOutboundPortsExclude', 'istio-local-outbound-ports-exclude', 'o'),
  kubeVirtInterfaces: spec('kubeVirtInterfaces', 'kube-virt-interfaces', 'k'),
  redirectDns: spec('redirectDns', 'redirect-dns'),
  captureAllDns: spec('captureAllDns', 'capture-all-dns'),
  dropInvalid: spec('dropInvalid', 'drop-invalid'),
  dualStack: spec('dualStack', 'dual-stack'),
  dryRun: spec('dryRun', 'dry-run', 'n'),
  skipRuleApply: spec('skipRuleApply', 'skip-rule-apply'),
} satisfies Record<keyof IptablesFlags, FlagSpec>;

const BOOLEAN_FLAGS = new Set<keyof IptablesFlags>(['redirectDns', 'captureAllDns', 'dropInvalid', 'dualStack', 'dryRun', 'skipRuleApply']);
/** Flags the injector may pass that change nothing here. */
const IGNORED_FLAGS = new Set(['log_output_level', 'log_as_json', 'force-apply']);

/**
 * An istio-iptables argument list (`-p 15001 -z 15006 ... -b '*'`, as in an injected pod's `istio-init` args) →
 * flags, without the CLI: for tests and for code that holds injected args. Values are the next argument or
 * `--name=value`; booleans take `=value` only.
 */
export function flagsFromArgs(args: readonly string[]): Result<IptablesFlags, string[]> {
  const byName = new Map<string, FlagSpec>();
  for (const f of Object.values(FLAGS)) {
    byName.set(`--${f.name}`, f);
    if (f.short) byName.set(`-${f.short}`, f);
  }
  const out: Record<string, string | boolean> = {};
  const errors: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (IGNORED_FLAGS.has(name.replace(/^--/, ''))) continue;
    const f = byName.get(name);
    if (!f) {
      errors.push(`unknown option "${arg}"`);
      continue;
    }
    if (eq > 0) out[f.key] = arg.slice(eq + 1);
    else if (BOOLEAN_FLAGS.has(f.key)) out[f.key] = true;
    else if (i + 1 < args.length) out[f.key] = args[++i] ?? '';
    else errors.push(`${flagLabel(f)}: missing value`);
  }
  return errors.length > 0 ? fail(errors) : ok(out as IptablesFlags);
}

/** `-z/--inbound-capture-port`: how errors name a flag. */
export const flagLabel = (f: FlagSpec): string => (f.short ? `-${f.short}/--${f.name}` : `--${f.name}`);

/** istio's config.Split: comma separated, empty items dropped (we also trim spaces). */
export const splitList = (s: string): string[] =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');

const PORT_RE = /^\d{1,5}$/;
const isPort = (s: string): boolean => PORT_RE.test(s) && Number(s) >= 1 && Number(s) <= 65535;
/** A port or an iptables port range `first:last`, as `--dport` and multiport accept. */
const isPortOrRange = (s: string): boolean => {
  const [a, b, ...rest] = s.split(':');
  if (rest.length > 0 || a === undefined) return false;
  if (b === undefined) return isPort(a);
  return isPort(a) && isPort(b) && Number(a) <= Number(b);
};
/** `--uid-owner`/`--gid-owner` take a number or a user/group name. */
const isOwner = (s: string): boolean => (/^\d+$/.test(s) ? Number(s) < 4294967295 : /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(s));
/** Interface names: at most 15 bytes (IFNAMSIZ - 1), no blanks or slashes; iptables allows a trailing `+` wildcard. */
const isInterface = (s: string): boolean => /^[^\s/,]{1,15}$/.test(s);

/** Go strconv.ParseBool, which viper's GetBool accepts. */
function parseBool(v: string | boolean): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/**
 * Flags + environment → options, or every problem found (each naming its flag). Pure: the environment is passed in.
 */
export function parseIptablesFlags(flags: IptablesFlags, env: Env = {}): Result<IptablesOptions, string[]> {
  const errors: string[] = [];
  /** flag, else the env variable named after it (viper AutomaticEnv), else the default. */
  const raw = (f: FlagSpec, def: string): string => {
    const v = flags[f.key];
    if (typeof v === 'string') return v;
    return env[f.env] ?? def;
  };
  const bool = (f: FlagSpec, def: boolean): boolean => {
    const v = flags[f.key] ?? env[f.env];
    if (v === undefined || v === '') return def;
    const b = parseBool(v);
    if (b === undefined) errors.push(`${flagLabel(f)}: "${String(v)}" is not a boolean (true or false)`);
    return b ?? def;
  };
  const port = (f: FlagSpec, def: string): string => {
    const v = raw(f, def).trim();
    if (!isPort(v)) errors.push(`${flagLabel(f)}: "${v}" is not a port (1-65535)`);
    return v;
  };
  const ports = (f: FlagSpec): string[] => {
    const list = splitList(raw(f, ''));
    for (const p of list) if (!isPortOrRange(p)) errors.push(`${flagLabel(f)}: "${p}" is not a port (1-65535) or a port range (first:last)`);
    return list;
  };
  const owners = (f: FlagSpec): string[] | undefined => {
    const v = raw(f, '');
    if (v.trim() === '') return undefined;
    const list = splitList(v);
    for (const o of list) if (!isOwner(o)) errors.push(`${flagLabel(f)}: "${o}" is neither a numeric id nor a user/group name`);
    return list;
  };
  const interfaces = (f: FlagSpec): string[] => {
    const list = splitList(raw(f, ''));
    for (const i of list) if (!isInterface(i)) errors.push(`${flagLabel(f)}: "${i}" is not an interface name`);
    return list;
  };
  const cidrs = (f: FlagSpec, allowWildcard: boolean): '*' | Prefix[] => {
    const v = raw(f, '').trim();
    if (v === '*') {
      if (allowWildcard) return '*';
      errors.push(`${flagLabel(f)}: "*" is not allowed here (istio-iptables: invalid value for OUTBOUND_IP_RANGES_EXCLUDE)`);
      return [];
    }
    const out: Prefix[] = [];
    for (const item of splitList(v)) {
      const p = parsePrefix(item);
      if (p) out.push(p);
      else errors.push(`${flagLabel(f)}: "${item}" is not a CIDR (address/prefix-length, e.g. 10.0.0.0/8 or fd00::/64)`);
    }
    return out;
  };
  const integer = (f: FlagSpec, def: string): string => {
    const v = raw(f, def).trim();
    if (!/^\d+$/.test(v) || Number(v) > 4294967295) errors.push(`${flagLabel(f)}: "${v}" is not a non-negative integer`);
    return v;
  };

  const modeRaw = raw(FLAGS.istioInboundInterceptionMode, '').trim();
  // istio-iptables tests `mode == "TPROXY"`; anything else redirects. We refuse what is neither.
  if (modeRaw !== '' && modeRaw !== 'REDIRECT' && modeRaw !== 'TPROXY') {
    errors.push(`${flagLabel(FLAGS.istioInboundInterceptionMode)}: "${modeRaw}" must be REDIRECT or TPROXY`);
  }
  const inboundRaw = raw(FLAGS.istioInboundPorts, '').trim();
  const inboundPortsInclude = inboundRaw === '*' ? ('*' as const) : ports(FLAGS.istioInboundPorts);

  const groupsInclude = (env.ISTIO_OUTBOUND_OWNER_GROUPS || '*').trim();
  const loopback = (env.ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR || '127.0.0.1/32').trim();
  const loopbackPrefix = parsePrefix(loopback);
  if (!loopbackPrefix || loopbackPrefix.family !== 4 || !loopbackPrefix.loopback || loopbackPrefix.bits < 8) {
    errors.push(`ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: "${loopback}" must be an IPv4 CIDR inside 127.0.0.0/8 with a prefix length of 8 to 32`);
  }

  const o: IptablesOptions = {
    proxyPort: port(FLAGS.envoyPort, '15001'),
    inboundCapturePort: port(FLAGS.inboundCapturePort, '15006'),
    inboundTunnelPort: port(FLAGS.inboundTunnelPort, '15008'),
    proxyUids: owners(FLAGS.proxyUid),
    proxyGids: owners(FLAGS.proxyGid),
    interceptionMode: modeRaw === 'TPROXY' ? 'TPROXY' : 'REDIRECT',
    tproxyMark: integer(FLAGS.istioInboundTproxyMark, '1337'),
    tproxyRouteTable: integer(FLAGS.istioInboundTproxyRouteTable, '133'),
    inboundPortsInclude,
    inboundPortsExclude: ports(FLAGS.istioLocalExcludePorts),
    outboundPortsInclude: ports(FLAGS.istioOutboundPorts),
    outboundPortsExclude: ports(FLAGS.istioLocalOutboundPortsExclude),
    outboundIpRangesInclude: cidrs(FLAGS.istioServiceCidr, true),
    outboundIpRangesExclude: cidrs(FLAGS.istioServiceExcludeCidr, false) as Prefix[],
    rerouteVirtualInterfaces: interfaces(FLAGS.kubeVirtInterfaces),
    excludeInterfaces: interfaces(FLAGS.istioExcludeInterfaces),
    ownerGroupsInclude: groupsInclude === '*' ? '*' : splitList(groupsInclude),
    ownerGroupsExclude: splitList(env.ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE ?? ''),
    hostIPv4LoopbackCidr: loopbackPrefix?.text ?? loopback,
    // The injector carries proxyMetadata into istio-init's environment; istio-iptables defaults these flags from it.
    redirectDns: bool(FLAGS.redirectDns, parseBool(env.ISTIO_META_DNS_CAPTURE ?? '') ?? false),
    captureAllDns: bool(FLAGS.captureAllDns, false),
    dropInvalid: bool(FLAGS.dropInvalid, parseBool(env.INVALID_DROP ?? '') ?? false),
    dualStack: bool(FLAGS.dualStack, parseBool(env.ISTIO_AGENT_DUAL_STACK ?? '') ?? false),
    dryRun: bool(FLAGS.dryRun, false),
    skipRuleApply: bool(FLAGS.skipRuleApply, false),
  };
  // istio-iptables' config.ValidateOwnerGroups: the include list becomes one rule of N matches.
  if (o.ownerGroupsInclude !== '*' && o.ownerGroupsInclude.length > 64) {
    errors.push(`ISTIO_OUTBOUND_OWNER_GROUPS: at most 64 groups, got ${o.ownerGroupsInclude.length}`);
  }
  return errors.length > 0 ? fail(errors) : ok(o);
}

/**
 * Options + host facts → the complete configuration the rules are built from (pure). The proxy uid defaults to
 * ENVOY_USER's uid, else 1337, and the gid to the uid (istio-iptables config.FillConfigFromEnvironment).
 */
export function completeConfig(o: IptablesOptions, host: HostFacts): CaptureConfig {
  const proxyUids = o.proxyUids ?? [host.envoyUserUid ?? '1337'];
  const servers = o.redirectDns && !o.captureAllDns ? host.dnsServers : [];
  return {
    ...o,
    proxyUids,
    proxyGids: o.proxyGids ?? proxyUids,
    enableIPv6: host.hasIPv6,
    dnsServersV4: servers.filter((s) => !s.includes(':')),
    dnsServersV6: servers.filter((s) => s.includes(':')),
  };
}

/**
 * The `istio-init` arguments the sidecar injector renders for a pod's annotations (after `istio-iptables`), using the
 * chart defaults: see the table at the top of this file. `defaults` stand for mesh-wide values (values.yaml
 * global.proxy.*). The log flag the template adds (`--log_output_level=...`) is left out.
 */
export function istioInitArgs(
  annotations: Readonly<Record<string, string>> = {},
  defaults: { interceptionMode?: string; includeIPRanges?: string; excludeIPRanges?: string; excludeInboundPorts?: string; statusPort?: string } = {},
): string[] {
  const a = (name: string, def: string): string => annotations[name] ?? def;
  const args = [
    '-p', '15001',
    '-z', '15006',
    '-u', '1337',
    '-m', a('sidecar.istio.io/interceptionMode', defaults.interceptionMode ?? 'REDIRECT'),
    '-i', a('traffic.sidecar.istio.io/includeOutboundIPRanges', defaults.includeIPRanges ?? '*'),
    '-x', a('traffic.sidecar.istio.io/excludeOutboundIPRanges', defaults.excludeIPRanges ?? ''),
    '-b', a('traffic.sidecar.istio.io/includeInboundPorts', '*'),
    '-d', `15090,15021,${excludeInboundPort(a('status.sidecar.istio.io/port', defaults.statusPort ?? '15020'), a('traffic.sidecar.istio.io/excludeInboundPorts', defaults.excludeInboundPorts ?? ''))}`,
  ];
  const includeOutboundPorts = annotations['traffic.sidecar.istio.io/includeOutboundPorts'];
  if (includeOutboundPorts !== undefined) args.push('-q', includeOutboundPorts);
  const excludeOutboundPorts = annotations['traffic.sidecar.istio.io/excludeOutboundPorts'];
  if (excludeOutboundPorts !== undefined) args.push('-o', excludeOutboundPorts);
  // The newer annotation takes precedence over the deprecated one (Istio 1.28 release notes, issue #57662).
  const reroute = annotations['istio.io/reroute-virtual-interfaces'] ?? annotations['traffic.sidecar.istio.io/kubevirtInterfaces'];
  if (reroute !== undefined) args.push('-k', reroute);
  const excludeInterfaces = annotations['traffic.sidecar.istio.io/excludeInterfaces'];
  if (excludeInterfaces !== undefined) args.push('-c', excludeInterfaces);
  return args;
}

/** The injector's excludeInboundPort template function: append the status port unless it is 0 or already listed. */
function excludeInboundPort(port: string, excluded: string): string {
  const p = port.trim();
  if (p === '' || p === '0') return excluded;
  const out: string[] = [];
  for (const item of excluded.split(',')) {
    if (item === p) return excluded;
    if (item.trim() !== '') out.push(item.trim());
  }
  out.push(p);
  return out.join(',');
}
