/**
 * `mizzen iptables`: the rules istio-iptables writes, rule for rule and in order. The expectations restate the facts
 * of istio/istio tools/istio-iptables/pkg/capture/testdata/*.golden (chain creation, the owner RETURN rules, the
 * 127.0.0.6 passthrough, the localhost rules, the TPROXY mangle chains, DNS in nat and raw) for the injector's
 * default invocation and for annotated pods.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureIptablesTools } from '../infra/iptables-tools.ts';
import { runIptables } from '../../src/app/iptables.ts';
import { applyRules, renderPlan, type Exec } from '../../src/iptables/apply.ts';
import { parsePrefix } from '../../src/iptables/cidr.ts';
import { detectIPv6, parseResolvConf, uidOf } from '../../src/iptables/host.ts';
import { completeConfig, flagsFromArgs, istioInitArgs, parseIptablesFlags, type Env, type HostFacts } from '../../src/iptables/options.ts';
import { buildRules, toCommands, toRestore, type RuleSet } from '../../src/iptables/rules.ts';

const V4_HOST: HostFacts = { hasIPv6: false, dnsServers: [] };

/** istio-iptables args → the rule set, for a host without IPv6 unless told otherwise. */
function rules(args: string[], host: Partial<HostFacts> = {}, env: Env = {}): RuleSet {
  const flags = flagsFromArgs(args);
  if (!flags.ok) throw new Error(flags.errors.join('; '));
  const o = parseIptablesFlags(flags.value, env);
  if (!o.ok) throw new Error(o.errors.join('; '));
  return buildRules(completeConfig(o.value, { ...V4_HOST, ...host }));
}
const doc = (...lines: string[]) => `${lines.join('\n')}\n`;
const annotated = (annotations: Record<string, string> = {}) => istioInitArgs(annotations);

// Blocks every nat document starts or ends with.
const NAT_CHAINS = ['* nat', '-N ISTIO_INBOUND', '-N ISTIO_REDIRECT', '-N ISTIO_IN_REDIRECT', '-N ISTIO_OUTPUT'];
const NAT_BASE = ['-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN', '-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001', '-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'];
const inboundAll = (...excluded: string[]) => [
  '-A PREROUTING -p tcp -j ISTIO_INBOUND',
  ...excluded.map((p) => `-A ISTIO_INBOUND -p tcp --dport ${p} -j RETURN`),
  '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
];
const PASSTHROUGH = '-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN';
/** The loop-prevention rules for the proxy uid and gid 1337, IPv4, no DNS capture. */
const OWNER_1337 = [
  '-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
  '-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
  '-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN',
  '-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT',
  '-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
  '-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN',
];
const LOCALHOST = '-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN';

const DEFAULT_ARGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const DEFAULT_NAT = doc(
  ...NAT_CHAINS,
  ...NAT_BASE,
  ...inboundAll('15090', '15021', '15020'),
  '-A OUTPUT -j ISTIO_OUTPUT',
  PASSTHROUGH,
  ...OWNER_1337,
  LOCALHOST,
  '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
  'COMMIT',
);

describe('the injector default invocation', () => {
  it('is what the injection template renders for a pod without annotations', () => {
    expect(annotated()).toEqual(DEFAULT_ARGS);
  });

  it('captures all inbound but the agent ports and all outbound, in istio-iptables order', () => {
    const r = rules(DEFAULT_ARGS);
    expect(toRestore(r.v4)).toBe(DEFAULT_NAT);
    expect(r.v6).toEqual([]);
    expect(r.routes).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  it('writes the same rules for ip6tables when the pod is IPv6, with ::6 and ::1, and adds ::6 to lo', () => {
    const r = rules(DEFAULT_ARGS, { hasIPv6: true });
    expect(toRestore(r.v4)).toBe(DEFAULT_NAT);
    expect(toRestore(r.v6)).toBe(
      DEFAULT_NAT.replace('-s 127.0.0.6/32', '-s ::6/128').replaceAll('127.0.0.1/32', '::1/128'),
    );
    expect(r.routes).toEqual([['ip', '-6', 'addr', 'add', '::6/128', 'dev', 'lo']]);
  });

  it('also renders as individual iptables commands (chains first)', () => {
    const cmds = toCommands(rules(DEFAULT_ARGS).v4, 'iptables');
    expect(cmds.slice(0, 5)).toEqual([
      'iptables -t nat -N ISTIO_INBOUND',
      'iptables -t nat -N ISTIO_REDIRECT',
      'iptables -t nat -N ISTIO_IN_REDIRECT',
      'iptables -t nat -N ISTIO_OUTPUT',
      'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN',
    ]);
    expect(cmds.at(-1)).toBe('iptables -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT');
  });

  it('uses ENVOY_USER\'s uid when -u is not given, 1337 otherwise, and the uid as gid', () => {
    const o = parseIptablesFlags({});
    expect(o.ok).toBe(true);
    if (!o.ok) return;
    expect(completeConfig(o.value, { ...V4_HOST, envoyUserUid: '101' })).toMatchObject({ proxyUids: ['101'], proxyGids: ['101'] });
    expect(completeConfig(o.value, V4_HOST)).toMatchObject({ proxyUids: ['1337'], proxyGids: ['1337'], proxyPort: '15001', inboundCapturePort: '15006' });
    expect(uidOf('root:x:0:0::/root:/bin/sh\nistio-proxy:x:1337:1337::/home:/bin/false\n', 'istio-proxy')).toBe('1337');
  });

  it('with no arguments at all writes only the loop and localhost rules (istio-iptables "empty" golden)', () => {
    expect(toRestore(rules([]).v4)).toBe(doc(...NAT_CHAINS, ...NAT_BASE, '-A OUTPUT -j ISTIO_OUTPUT', PASSTHROUGH, ...OWNER_1337, LOCALHOST, 'COMMIT'));
  });
});

describe('annotated pods', () => {
  it('includeInboundPorts: only the listed ports are captured, the -d exclusions do not apply', () => {
    const args = annotated({ 'traffic.sidecar.istio.io/includeInboundPorts': '8080,9090' });
    expect(args).toContain('8080,9090');
    expect(toRestore(rules(args).v4)).toBe(
      doc(
        ...NAT_CHAINS,
        ...NAT_BASE,
        '-A PREROUTING -p tcp -j ISTIO_INBOUND',
        '-A ISTIO_INBOUND -p tcp --dport 8080 -j ISTIO_IN_REDIRECT',
        '-A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_IN_REDIRECT',
        '-A OUTPUT -j ISTIO_OUTPUT',
        PASSTHROUGH,
        ...OWNER_1337,
        LOCALHOST,
        '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
        'COMMIT',
      ),
    );
  });

  it('includeInboundPorts "": no inbound capture at all', () => {
    const r = toRestore(rules(annotated({ 'traffic.sidecar.istio.io/includeInboundPorts': '' })).v4);
    expect(r).not.toContain('PREROUTING');
    expect(r).toContain('-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN');
  });

  it('excludeInboundPorts: after 15090,15021 and before the status port; a custom status port replaces 15020', () => {
    const args = annotated({ 'traffic.sidecar.istio.io/excludeInboundPorts': '8443,9000' });
    expect(args.slice(-2)).toEqual(['-d', '15090,15021,8443,9000,15020']);
    expect(toRestore(rules(args).v4)).toBe(
      doc(
        ...NAT_CHAINS,
        ...NAT_BASE,
        ...inboundAll('15090', '15021', '8443', '9000', '15020'),
        '-A OUTPUT -j ISTIO_OUTPUT',
        PASSTHROUGH,
        ...OWNER_1337,
        LOCALHOST,
        '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
        'COMMIT',
      ),
    );
    expect(annotated({ 'status.sidecar.istio.io/port': '16000' }).slice(-1)).toEqual(['15090,15021,16000']);
    expect(annotated({ 'status.sidecar.istio.io/port': '0' }).slice(-1)).toEqual(['15090,15021,']);
    expect(annotated({ 'traffic.sidecar.istio.io/excludeInboundPorts': '15020,80' }).slice(-1)).toEqual(['15090,15021,15020,80']);
  });

  it('excludeOutboundPorts: TCP and UDP RETURN right after the OUTPUT jump, before the loop rules', () => {
    const args = annotated({ 'traffic.sidecar.istio.io/excludeOutboundPorts': '5432,6379' });
    expect(args.slice(-2)).toEqual(['-o', '5432,6379']);
    expect(toRestore(rules(args).v4)).toBe(
      doc(
        ...NAT_CHAINS,
        ...NAT_BASE,
        ...inboundAll('15090', '15021', '15020'),
        '-A OUTPUT -j ISTIO_OUTPUT',
        '-A ISTIO_OUTPUT -p tcp --dport 5432 -j RETURN',
        '-A ISTIO_OUTPUT -p udp --dport 5432 -j RETURN',
        '-A ISTIO_OUTPUT -p tcp --dport 6379 -j RETURN',
        '-A ISTIO_OUTPUT -p udp --dport 6379 -j RETURN',
        PASSTHROUGH,
        ...OWNER_1337,
        LOCALHOST,
        '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
        'COMMIT',
      ),
    );
  });

  it('include/excludeOutboundIPRanges: exclusions first, then each included range; other destinations go direct', () => {
    const args = annotated({
      'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.96.0.0/12,192.168.0.0/16,fd00::/8',
      'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.96.0.10/32',
    });
    const r = rules(args);
    const tail = [LOCALHOST, '-A ISTIO_OUTPUT -d 10.96.0.10/32 -j RETURN', '-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT', '-A ISTIO_OUTPUT -d 192.168.0.0/16 -j ISTIO_REDIRECT', 'COMMIT'];
    expect(toRestore(r.v4)).toBe(doc(...NAT_CHAINS, ...NAT_BASE, ...inboundAll('15090', '15021', '15020'), '-A OUTPUT -j ISTIO_OUTPUT', PASSTHROUGH, ...OWNER_1337, ...tail));
    // The IPv6 range only goes to ip6tables.
    expect(toRestore(r.v4)).not.toContain('fd00');
    const v6 = toRestore(rules(args, { hasIPv6: true }).v6);
    expect(v6).toContain('-A ISTIO_OUTPUT -d ::1/128 -j RETURN\n-A ISTIO_OUTPUT -d fd00::/8 -j ISTIO_REDIRECT\nCOMMIT\n');
    expect(v6).not.toContain('10.96');
  });

  it('an included loopback range keeps app → app over lo captured (no "-o lo ! --uid-owner" RETURN)', () => {
    const r = toRestore(rules(annotated({ 'traffic.sidecar.istio.io/includeOutboundIPRanges': '127.1.2.3/32' })).v4);
    expect(r).not.toContain('-o lo -m owner !');
    expect(r).toContain('-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN');
    expect(r.endsWith(`${LOCALHOST}\n-A ISTIO_OUTPUT -d 127.1.2.3/32 -j ISTIO_REDIRECT\nCOMMIT\n`)).toBe(true);
  });

  it('includeOutboundPorts: redirected whatever the destination (istio-iptables "outbound-ports-include" golden)', () => {
    const r = toRestore(rules(['-q', '32000,31000']).v4);
    expect(r).toBe(
      doc(...NAT_CHAINS, ...NAT_BASE, '-A OUTPUT -j ISTIO_OUTPUT', PASSTHROUGH, ...OWNER_1337, LOCALHOST, '-A ISTIO_OUTPUT -p tcp --dport 32000 -j ISTIO_REDIRECT', '-A ISTIO_OUTPUT -p tcp --dport 31000 -j ISTIO_REDIRECT', 'COMMIT'),
    );
    expect(annotated({ 'traffic.sidecar.istio.io/includeOutboundPorts': '3306' })).toEqual([...DEFAULT_ARGS, '-q', '3306']);
  });

  it('kubevirtInterfaces: inbound of the VM interfaces skips inbound capture and goes to the outbound port', () => {
    const args = annotated({ 'traffic.sidecar.istio.io/kubevirtInterfaces': 'eth1,eth2' });
    expect(args.slice(-2)).toEqual(['-k', 'eth1,eth2']);
    expect(toRestore(rules(args).v4)).toBe(
      doc(
        ...NAT_CHAINS,
        '-I PREROUTING 1 -i eth1 -j RETURN',
        '-I PREROUTING 1 -i eth2 -j RETURN',
        ...NAT_BASE,
        ...inboundAll('15090', '15021', '15020'),
        '-A OUTPUT -j ISTIO_OUTPUT',
        PASSTHROUGH,
        ...OWNER_1337,
        LOCALHOST,
        '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
        '-I PREROUTING 1 -i eth1 -j ISTIO_REDIRECT',
        '-I PREROUTING 1 -i eth2 -j ISTIO_REDIRECT',
        'COMMIT',
      ),
    );
    // With ranges, per range and interface ("ipnets-with-kube-virt-interfaces" golden).
    expect(toRestore(rules(['-k', 'eth1,eth2', '-i', '10.0.0.0/8']).v4)).toContain(
      '-I PREROUTING 1 -i eth1 -d 10.0.0.0/8 -j ISTIO_REDIRECT\n-I PREROUTING 1 -i eth2 -d 10.0.0.0/8 -j ISTIO_REDIRECT\n-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT\nCOMMIT\n',
    );
    // The newer annotation wins over the deprecated one.
    expect(annotated({ 'traffic.sidecar.istio.io/kubevirtInterfaces': 'eth1', 'istio.io/reroute-virtual-interfaces': 'net1' }).slice(-2)).toEqual(['-k', 'net1']);
  });

  it('excludeInterfaces: neither direction of that interface is captured ("basic-exclude-nic" golden)', () => {
    const args = annotated({ 'traffic.sidecar.istio.io/excludeInterfaces': 'not-istio-nic' });
    expect(args.slice(-2)).toEqual(['-c', 'not-istio-nic']);
    expect(toRestore(rules(args).v4)).toMatch(/^\* nat\n(-N \S+\n){4}-A PREROUTING -i not-istio-nic -j RETURN\n-A OUTPUT -o not-istio-nic -j RETURN\n-A ISTIO_INBOUND -p tcp --dport 15008/);
  });
});

describe('TPROXY interception', () => {
  const MANGLE_HEAD = ['* mangle', '-N ISTIO_DIVERT', '-N ISTIO_TPROXY', '-N ISTIO_INBOUND', '-A ISTIO_DIVERT -j MARK --set-mark 1337', '-A ISTIO_DIVERT -j ACCEPT', '-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006', '-A PREROUTING -p tcp -j ISTIO_INBOUND'];
  const MANGLE_TAIL = [
    '-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark',
    '-A OUTPUT -p tcp -o lo -m mark --mark 1337 -j RETURN',
    '-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --uid-owner 1337 -j MARK --set-mark 1338',
    '-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --gid-owner 1337 -j MARK --set-mark 1338',
    '-A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark',
    '-I ISTIO_INBOUND 1 -p tcp -m mark --mark 1337 -j RETURN',
    '-I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN',
    '-I ISTIO_INBOUND 3 -p tcp -i lo -m mark ! --mark 1338 -j RETURN',
    'COMMIT',
  ];

  it('sidecar.istio.io/interceptionMode TPROXY: inbound moves to mangle (DIVERT/TPROXY), outbound stays in nat', () => {
    const args = annotated({ 'sidecar.istio.io/interceptionMode': 'TPROXY' });
    expect(args.slice(6, 8)).toEqual(['-m', 'TPROXY']);
    const r = rules(args);
    expect(toRestore(r.v4)).toBe(
      doc(
        ...MANGLE_HEAD,
        '-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN',
        '-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN',
        '-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN',
        '-A ISTIO_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT',
        '-A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY',
        ...MANGLE_TAIL,
        ...NAT_CHAINS,
        ...NAT_BASE,
        '-A OUTPUT -j ISTIO_OUTPUT',
        PASSTHROUGH,
        ...OWNER_1337,
        LOCALHOST,
        '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
        'COMMIT',
      ),
    );
    // Marked packets are delivered locally through routing table 133.
    expect(r.routes).toEqual([
      ['ip', '-f', 'inet', 'rule', 'add', 'fwmark', '1337', 'lookup', '133'],
      ['ip', '-f', 'inet', 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', '133'],
    ]);
  });

  it('with listed inbound ports: DIVERT and TPROXY per port ("inbound-ports-tproxy" golden)', () => {
    expect(toRestore(rules(['-b', '32000,31000', '-m', 'TPROXY']).v4)).toBe(
      doc(
        ...MANGLE_HEAD,
        '-A ISTIO_INBOUND -p tcp --dport 32000 -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT',
        '-A ISTIO_INBOUND -p tcp --dport 32000 -j ISTIO_TPROXY',
        '-A ISTIO_INBOUND -p tcp --dport 31000 -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT',
        '-A ISTIO_INBOUND -p tcp --dport 31000 -j ISTIO_TPROXY',
        ...MANGLE_TAIL,
        ...NAT_CHAINS,
        ...NAT_BASE,
        '-A OUTPUT -j ISTIO_OUTPUT',
        PASSTHROUGH,
        ...OWNER_1337,
        LOCALHOST,
        'COMMIT',
      ),
    );
  });

  it('honours -t/-r and excluded interfaces in mangle too; IPv6 gets ::6 and inet6 routes', () => {
    const r = rules(['-b', '*', '-m', 'TPROXY', '-t', '7', '-r', '77', '-c', 'eth9'], { hasIPv6: true });
    const v4 = toRestore(r.v4);
    expect(v4.startsWith('* mangle\n-N ISTIO_DIVERT\n-N ISTIO_TPROXY\n-N ISTIO_INBOUND\n-A PREROUTING -i eth9 -j RETURN\n-A OUTPUT -o eth9 -j RETURN\n-A ISTIO_DIVERT -j MARK --set-mark 7\n')).toBe(true);
    expect(v4).toContain('-j TPROXY --tproxy-mark 7/0xffffffff --on-port 15006');
    expect(toRestore(r.v6)).toContain('-I ISTIO_INBOUND 2 -p tcp -s ::6/128 -i lo -j RETURN');
    expect(r.routes).toEqual([
      ['ip', '-6', 'addr', 'add', '::6/128', 'dev', 'lo'],
      ['ip', '-f', 'inet', 'rule', 'add', 'fwmark', '7', 'lookup', '77'],
      ['ip', '-f', 'inet6', 'rule', 'add', 'fwmark', '7', 'lookup', '77'],
      ['ip', '-f', 'inet', 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', '77'],
      ['ip', '-f', 'inet6', 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', '77'],
    ]);
  });
});

describe('DNS capture', () => {
  it('redirects DNS to the resolv.conf servers to the agent on 15053, with conntrack zones in raw ("ip-range" golden)', () => {
    // The agent's proxyMetadata ISTIO_META_DNS_CAPTURE=true reaches istio-init as env: the --redirect-dns default.
    const r = rules(['-i', '9.9.0.0/16', '-x', '1.1.0.0/16', '-u', '3,4', '-g', '1,2'], { dnsServers: ['127.0.0.53'] }, { ISTIO_META_DNS_CAPTURE: 'true' });
    const owner = (kind: 'uid' | 'gid', id: string) =>
      kind === 'uid'
        ? [
            `-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner ${id} -j ISTIO_IN_REDIRECT`,
            `-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --uid-owner ${id} -j RETURN`,
            `-A ISTIO_OUTPUT -m owner --uid-owner ${id} -j RETURN`,
          ]
        : [
            `-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner ${id} -j ISTIO_IN_REDIRECT`,
            `-A ISTIO_OUTPUT -o lo -p tcp ! --dport 53 -m owner ! --gid-owner ${id} -j RETURN`,
            `-A ISTIO_OUTPUT -m owner --gid-owner ${id} -j RETURN`,
          ];
    const zones = (kind: 'uid' | 'gid', id: string) => [
      `-A ISTIO_OUTPUT_DNS -p udp --dport 53 -m owner --${kind}-owner ${id} -j CT --zone 1`,
      `-A ISTIO_OUTPUT_DNS -p udp --sport 15053 -m owner --${kind}-owner ${id} -j CT --zone 2`,
    ];
    expect(toRestore(r.v4)).toBe(
      doc(
        ...NAT_CHAINS,
        '-N ISTIO_OUTPUT_DNS',
        ...NAT_BASE,
        '-A OUTPUT -j ISTIO_OUTPUT',
        PASSTHROUGH,
        ...owner('uid', '3'),
        ...owner('uid', '4'),
        ...owner('gid', '1'),
        ...owner('gid', '2'),
        '-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS',
        '-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -d 127.0.0.53/32 -j REDIRECT --to-ports 15053',
        '-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d 127.0.0.53/32 -j REDIRECT --to-port 15053',
        LOCALHOST,
        '-A ISTIO_OUTPUT -d 1.1.0.0/16 -j RETURN',
        '-A ISTIO_OUTPUT -d 9.9.0.0/16 -j ISTIO_REDIRECT',
        'COMMIT',
        '* raw',
        '-N ISTIO_OUTPUT_DNS',
        '-N ISTIO_INBOUND',
        '-A OUTPUT -j ISTIO_OUTPUT_DNS',
        ...zones('uid', '3'),
        ...zones('uid', '4'),
        ...zones('gid', '1'),
        ...zones('gid', '2'),
        '-A PREROUTING -j ISTIO_INBOUND',
        '-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d 127.0.0.53/32 -j CT --zone 2',
        '-A ISTIO_INBOUND -p udp --sport 53 -s 127.0.0.53/32 -j CT --zone 1',
        'COMMIT',
      ),
    );
  });

  it('--capture-all-dns captures all of port 53 whatever the server', () => {
    const r = toRestore(rules([...DEFAULT_ARGS, '--redirect-dns', '--capture-all-dns']).v4);
    expect(r).toContain(
      '-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS\n-A ISTIO_OUTPUT_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053\n-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j REDIRECT --to-port 15053\n' + LOCALHOST,
    );
    expect(r).toContain('-A PREROUTING -j ISTIO_INBOUND\n-A ISTIO_OUTPUT_DNS -p udp --dport 53 -j CT --zone 2\n-A ISTIO_INBOUND -p udp --sport 53 -j CT --zone 1\nCOMMIT\n');
  });

  it('an IPv6 server only in ip6tables; no server and no --capture-all-dns turns DNS capture off with a warning', () => {
    const both = rules(['--redirect-dns'], { hasIPv6: true, dnsServers: ['10.0.0.10', 'fd00::10'] });
    expect(toRestore(both.v4)).toContain('-d 10.0.0.10/32 -j REDIRECT');
    expect(toRestore(both.v4)).not.toContain('fd00');
    expect(toRestore(both.v6)).toContain('-A ISTIO_OUTPUT_DNS -p udp --dport 53 -d fd00::10/128 -j REDIRECT --to-port 15053');
    const none = rules(['--redirect-dns'], { dnsServers: [] });
    expect(toRestore(none.v4)).not.toContain('DNS');
    expect(none.warnings[0]).toMatch(/DNS capture disabled/);
    expect(parseResolvConf('# x\nnameserver 10.96.0.10\nsearch default.svc\nnameserver fe80::1%eth0\n')).toEqual(['10.96.0.10', 'fe80::1']);
  });
});

describe('other istio-iptables inputs', () => {
  it('--drop-invalid (INVALID_DROP) drops conntrack-INVALID packets in mangle', () => {
    for (const r of [rules(['--drop-invalid']), rules([], {}, { INVALID_DROP: 'true' })]) {
      expect(toRestore(r.v4).startsWith('* mangle\n-N ISTIO_DROP\n-A PREROUTING -m conntrack --ctstate INVALID -j ISTIO_DROP\n-A ISTIO_DROP -j DROP\nCOMMIT\n* nat\n')).toBe(true);
    }
  });

  it('owner groups from ISTIO_OUTBOUND_OWNER_GROUPS(_EXCLUDE) ("outbound-owner-groups" goldens)', () => {
    expect(toRestore(rules([], {}, { ISTIO_OUTBOUND_OWNER_GROUPS: 'java,202' }).v4)).toContain(
      '-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN\n-A ISTIO_OUTPUT -m owner ! --gid-owner java -m owner ! --gid-owner 202 -j RETURN\n' + LOCALHOST,
    );
    expect(toRestore(rules([], {}, { ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: '888,ftp' }).v4)).toContain(
      '-A ISTIO_OUTPUT -m owner --gid-owner 888 -j RETURN\n-A ISTIO_OUTPUT -m owner --gid-owner ftp -j RETURN\n' + LOCALHOST,
    );
  });

  it('flags fall back to the environment variable named after them, then to the defaults', () => {
    const r = toRestore(rules([], {}, { ISTIO_INBOUND_PORTS: '*', ISTIO_SERVICE_CIDR: '*', ISTIO_LOCAL_EXCLUDE_PORTS: '15090,15021,15020' }).v4);
    expect(r).toBe(DEFAULT_NAT);
    // A flag wins over the environment.
    expect(toRestore(rules(['-b', ''], {}, { ISTIO_INBOUND_PORTS: '*' }).v4)).not.toContain('PREROUTING');
    // ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR widens the localhost rules.
    expect(toRestore(rules([], {}, { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '127.0.0.1/8' }).v4)).toContain('-A ISTIO_OUTPUT -d 127.0.0.1/8 -j RETURN');
  });

  it('writes CIDRs as istio-iptables does (netip: address kept, IPv6 in RFC 5952 form)', () => {
    expect(parsePrefix('10.96.0.2/24')?.text).toBe('10.96.0.2/24');
    expect(parsePrefix('2001:DB8:0:0::/32')?.text).toBe('2001:db8::/32');
    expect(parsePrefix('2001:db8:0:0:1:0:0:1/128')?.text).toBe('2001:db8::1:0:0:1/128');
    expect(parsePrefix('::ffff:1.2.3.4/128')?.text).toBe('::ffff:1.2.3.4/128');
    expect(parsePrefix('::1/128')).toMatchObject({ family: 6, loopback: true });
    for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.256/8', '010.0.0.0/8', 'fe80::1%eth0/64', '1:2:3:4:5:6:7:8:9/64', 'x/8']) expect(parsePrefix(bad)).toBeUndefined();
  });

  it('decides IPv6 as istio getLocalIP does: the first non-loopback, non-link-local address, any IPv6 with --dual-stack', () => {
    const ifs = (...addrs: Array<[string, 'IPv4' | 'IPv6']>) => ({ eth0: addrs.map(([address, family]) => ({ address, family })) }) as unknown as NodeJS.Dict<os.NetworkInterfaceInfo[]>;
    expect(detectIPv6(false, ifs(['127.0.0.1', 'IPv4'], ['fe80::1', 'IPv6'], ['10.0.0.5', 'IPv4'], ['fd00::5', 'IPv6']))).toEqual({ ipv6: false, found: true });
    expect(detectIPv6(true, ifs(['10.0.0.5', 'IPv4'], ['fd00::5', 'IPv6']))).toEqual({ ipv6: true, found: true });
    expect(detectIPv6(false, ifs(['fd00::5', 'IPv6']))).toEqual({ ipv6: true, found: true });
    expect(detectIPv6(false, ifs(['127.0.0.1', 'IPv4']))).toEqual({ ipv6: false, found: false });
  });
});

describe('invalid flags', () => {
  const errors = (args: string[], env: Env = {}) => {
    const f = flagsFromArgs(args);
    if (!f.ok) return f.errors;
    const o = parseIptablesFlags(f.value, env);
    return o.ok ? [] : o.errors;
  };

  it('names the flag and the value', () => {
    expect(errors(['-z', '70000'])).toEqual(['-z/--inbound-capture-port: "70000" is not a port (1-65535)']);
    expect(errors(['-i', '10.0.0.0/33'])).toEqual(['-i/--istio-service-cidr: "10.0.0.0/33" is not a CIDR (address/prefix-length, e.g. 10.0.0.0/8 or fd00::/64)']);
    expect(errors(['-x', '*'])[0]).toMatch(/^-x\/--istio-service-exclude-cidr: "\*" is not allowed/);
    expect(errors(['-m', 'NONE'])).toEqual(['-m/--istio-inbound-interception-mode: "NONE" must be REDIRECT or TPROXY']);
    expect(errors(['-d', '15090,abc', '-o', '10:5'])).toEqual([
      '-d/--istio-local-exclude-ports: "abc" is not a port (1-65535) or a port range (first:last)',
      '-o/--istio-local-outbound-ports-exclude: "10:5" is not a port (1-65535) or a port range (first:last)',
    ]);
    expect(errors(['-u', '1337;rm'])).toEqual(['-u/--proxy-uid: "1337;rm" is neither a numeric id nor a user/group name']);
    expect(errors(['--redirect-dns=maybe'])).toEqual(['--redirect-dns: "maybe" is not a boolean (true or false)']);
    expect(errors([], { ENVOY_PORT: '0' })).toEqual(['-p/--envoy-port: "0" is not a port (1-65535)']);
    expect(errors(['--bogus'])).toEqual(['unknown option "--bogus"']);
  });

  it('accepts port ranges and what the injector adds (--log_output_level)', () => {
    expect(errors(['-o', '8000:8100', '--log_output_level=default:info'])).toEqual([]);
  });
});

describe('applying', () => {
  const calls: Array<{ file: string; args: string[]; input?: string }> = [];
  const recorder =
    (fail?: (file: string, args: string[]) => Partial<ReturnType<Exec>> | undefined): Exec =>
    (file, args, input) => {
      calls.push({ file, args, ...(input !== undefined ? { input } : {}) });
      return { status: 0, stdout: '', stderr: '', ...fail?.(file, args) };
    };

  it('runs iptables-restore --noflush per family, then the ip commands; "File exists" on a re-run is fine', () => {
    calls.length = 0;
    const r = rules([...DEFAULT_ARGS.slice(0, 6), '-m', 'TPROXY', '-b', '*'], { hasIPv6: true });
    const res = applyRules(r, recorder((file, args) => (file === 'ip' && args.includes('addr') ? { status: 2, stderr: 'RTNETLINK answers: File exists' } : undefined)));
    expect(res.ok).toBe(true);
    expect(calls.map((c) => [c.file, ...c.args].join(' '))).toEqual([
      'iptables-restore --noflush',
      'ip6tables-restore --noflush',
      'ip -6 addr add ::6/128 dev lo',
      'ip -f inet rule add fwmark 1337 lookup 133',
      'ip -f inet6 rule add fwmark 1337 lookup 133',
      'ip -f inet route add local default dev lo table 133',
      'ip -f inet6 route add local default dev lo table 133',
    ]);
    expect(calls[0]?.input).toBe(toRestore(r.v4));
    expect(calls[1]?.input).toBe(toRestore(r.v6));
  });

  it('fails clearly when iptables-restore is missing or refuses the rules', () => {
    const missing = applyRules(rules(DEFAULT_ARGS), () => ({ status: null, stdout: '', stderr: '', error: Object.assign(new Error('spawnSync iptables-restore ENOENT'), { code: 'ENOENT' }) }));
    expect(missing).toEqual({ ok: false, errors: 'iptables-restore not found on PATH: install iptables (the istio-init image ships it), or use --dry-run to only print the rules' });
    const refused = applyRules(rules(DEFAULT_ARGS), () => ({ status: 1, stdout: '', stderr: 'iptables-restore: line 2 failed\n' }));
    expect(refused).toEqual({ ok: false, errors: 'iptables-restore --noflush failed (exit 1): iptables-restore: line 2 failed' });
  });

  it('prints the rules in any case, and applies nothing with --dry-run', () => {
    const exec = recorder(() => ({ status: 4, stderr: 'iptables-restore v1.8.9 (legacy): Chain already exists' }));
    calls.length = 0;
    const flags = flagsFromArgs(DEFAULT_ARGS);
    if (!flags.ok) throw new Error('flags');
    const failed = runIptables(flags.value, {}, { exec, paths: { resolvConf: '/nonexistent', passwd: '/nonexistent' } });
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain(DEFAULT_NAT);
    expect(failed.stderr).toContain('error: iptables-restore --noflush failed (exit 4): iptables-restore v1.8.9 (legacy): Chain already exists');
    calls.length = 0;
    const dry = runIptables({ ...flags.value, dryRun: true }, {}, { exec });
    expect(dry.code).toBe(0);
    expect(calls).toEqual([]);
    expect(renderPlan(rules(DEFAULT_ARGS))).toBe(`# iptables-restore --noflush\n${DEFAULT_NAT}`);
  });
});

describe('mizzen iptables (the command)', () => {
  const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    spawnSync(process.execPath, ['src/cli/main.ts', 'iptables', ...args], { encoding: 'utf8', env });

  it('--dry-run prints the rules of the injector default invocation', () => {
    const out = execFileSync(process.execPath, ['src/cli/main.ts', 'iptables', '--dry-run', ...DEFAULT_ARGS, '--log_output_level=default:info'], { encoding: 'utf8' });
    expect(out.startsWith(`# iptables-restore --noflush\n${DEFAULT_NAT}`)).toBe(true);
  });

  it('refuses invalid flags with exit 1, naming the flag', () => {
    const r = cli(['--dry-run', '-z', '70000', '-i', '10.0.0.0/99']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('error: -z/--inbound-capture-port: "70000" is not a port (1-65535)');
    expect(r.stderr).toContain('error: -i/--istio-service-cidr: "10.0.0.0/99" is not a CIDR');
  });

  it('without iptables-restore: prints the rules, then exits 1 saying what is missing', () => {
    const r = cli(DEFAULT_ARGS, { ...process.env, PATH: path.join(os.tmpdir(), 'mizzen-no-such-dir') });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(DEFAULT_NAT);
    expect(r.stderr).toContain('error: iptables-restore not found on PATH');
  });
});

/** Where a real test can run: a fresh network namespace, real iptables, root for a uid map that holds uid 1337. */
function netnsSupport(): string | undefined {
  // Machines without iptables get it unpacked into a cache outside the repo (test/infra/iptables-tools.ts).
  const tools = ensureIptablesTools();
  if (tools.binDir) process.env.PATH = `${tools.binDir}${path.delimiter}${process.env.PATH ?? ''}`;
  else if (tools.reason) return tools.reason;
  const iptablesRestore = (process.env.PATH ?? '').split(path.delimiter).some((d) => d !== '' && fs.existsSync(path.join(d, 'iptables-restore')));
  if (spawnSync('unshare', ['-rn', 'true']).status !== 0) return 'unshare -rn does not work here';
  if (!iptablesRestore) return 'no iptables-restore on PATH';
  // Under `unshare -r` only uid 0 is mapped, so `--uid-owner 1337` is refused (EINVAL) and newuidmap is needed to map
  // more; as root a plain `unshare -n` keeps the host's uids.
  if (process.getuid?.() !== 0) return 'not root: the user namespace of unshare -r cannot map the proxy uid 1337';
  return undefined;
}
const skipReason = netnsSupport();
if (skipReason) console.info(`iptables.test: skipping the network-namespace test: ${skipReason}`);

describe('in a fresh network namespace', () => {
  it.skipIf(skipReason !== undefined)(`applies the rules; an app's outbound connection arrives at 15001, the proxy's does not${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-iptables-'));
    const script = path.join(dir, 'inside.mjs');
    fs.writeFileSync(
      script,
      `
import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
const sh = (...a) => execFileSync(a[0], a.slice(1), { stdio: 'pipe' });
sh('ip', 'link', 'set', 'lo', 'up');
sh('ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
sh('ip', 'addr', 'add', '10.99.0.2/24', 'dev', 'v0');
sh('ip', 'link', 'set', 'v0', 'up');
sh('ip', 'link', 'set', 'v1', 'up');
const apply = spawnSync(process.execPath, ['src/cli/main.ts', 'iptables', ...${JSON.stringify(DEFAULT_ARGS)}], { encoding: 'utf8' });
const accepted = [];
const server = net.createServer((s) => { accepted.push(s.localPort); s.end('captured'); });
await new Promise((r) => server.listen(15001, '0.0.0.0', r));
const connect = () => new Promise((resolve) => {
  const c = net.connect({ host: '10.99.0.1', port: 9080 });
  let data = '';
  c.setTimeout(3000, () => { c.destroy(); resolve('timeout'); });
  c.on('data', (d) => (data += d));
  c.on('end', () => resolve(data));
  c.on('error', (e) => resolve(e.code));
});
const app = await connect();
// The same connection from the proxy's uid must leave uncaptured (the owner RETURN rules).
const proxy = spawnSync(process.execPath, ['-e', "const c=require('net').connect({host:'10.99.0.1',port:9080});c.setTimeout(1500,()=>{console.log('timeout');process.exit(0)});c.on('data',d=>{console.log(String(d));process.exit(0)});c.on('error',e=>{console.log(e.code);process.exit(0)})"], { uid: 1337, gid: 1337, encoding: 'utf8' });
server.close();
const saved = spawnSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).stdout;
console.log(JSON.stringify({ apply: { status: apply.status, stderr: apply.stderr }, app, proxy: proxy.stdout.trim() || proxy.stderr, accepted, saved }));
`,
    );
    try {
      const r = spawnSync('unshare', ['-n', process.execPath, script], { encoding: 'utf8', cwd: process.cwd(), timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
      expect(out.apply, JSON.stringify(out.apply)).toMatchObject({ status: 0 });
      expect(out.app).toBe('captured');
      expect(out.accepted).toEqual([15001]);
      expect(['timeout', 'EHOSTUNREACH', 'ETIMEDOUT'], `proxy uid connection: ${out.proxy}`).toContain(out.proxy);
      expect(out.saved).toContain('-A ISTIO_OUTPUT -j ISTIO_REDIRECT');
      expect(out.saved).toContain('-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(skipReason !== undefined)(`the kernel accepts every variant (TPROXY, DNS, IPv6, interfaces, ranges)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-iptables-'));
    const variants: Array<[string, RuleSet]> = [
      ['tproxy', rules([...annotated({ 'sidecar.istio.io/interceptionMode': 'TPROXY', 'traffic.sidecar.istio.io/excludeInterfaces': 'eth9' }), '--drop-invalid', '--redirect-dns', '--capture-all-dns'], { hasIPv6: true })],
      ['tproxy-ports', rules(['-b', '8080,9000:9100', '-m', 'TPROXY', '-u', '1337,101', '-g', '1337'], { hasIPv6: true })],
      ['dns', rules(['-i', '9.9.0.0/16,fd00::/8', '-x', '1.1.0.0/16,fd00:1::/64', '--redirect-dns'], { hasIPv6: true, dnsServers: ['127.0.0.53', 'fd00::53'] })],
      ['redirect', rules([...annotated({ 'traffic.sidecar.istio.io/kubevirtInterfaces': 'eth1', 'traffic.sidecar.istio.io/excludeOutboundPorts': '5432', 'traffic.sidecar.istio.io/includeOutboundPorts': '3306' })], { hasIPv6: true }, { ISTIO_OUTBOUND_OWNER_GROUPS: '202,0' })],
    ];
    try {
      for (const [name, r] of variants) {
        fs.writeFileSync(path.join(dir, `${name}.v4`), toRestore(r.v4));
        fs.writeFileSync(path.join(dir, `${name}.v6`), toRestore(r.v6));
        const res = spawnSync('unshare', ['-n', 'sh', '-c', 'iptables-restore --noflush < "$1" && ip6tables-restore --noflush < "$2"', 'sh', path.join(dir, `${name}.v4`), path.join(dir, `${name}.v6`)], { encoding: 'utf8' });
        expect(res.status, `${name}: ${res.stderr}`).toBe(0);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
