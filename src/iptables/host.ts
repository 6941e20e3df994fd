/**
 * The host facts istio-iptables looks up before building rules (config.FillConfigFromEnvironment): the proxy user's
 * uid, whether the pod is IPv6, and the DNS servers to capture.
 */
import fs from 'node:fs';
import os from 'node:os';
import { fail, ok, type Result } from '../shared/errors.ts';
import type { Env, HostFacts, IptablesOptions } from './options.ts';

export interface HostPaths {
  resolvConf: string;
  passwd: string;
}

const DEFAULT_PATHS: HostPaths = { resolvConf: '/etc/resolv.conf', passwd: '/etc/passwd' };

/** `nameserver` lines of a resolv.conf. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    // A link-local IPv6 server may carry a zone; the rule needs the bare address.
    if (m?.[1]) out.push(m[1].replace(/%.*$/, ''));
  }
  return out;
}

/** The uid of `user` in a passwd file, if listed. */
export function uidOf(passwd: string, user: string): string | undefined {
  for (const line of passwd.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name === user && uid && /^\d+$/.test(uid)) return uid;
  }
  return undefined;
}

const isLoopbackOrLinkLocal = (address: string, family: string): boolean => {
  if (family === 'IPv4') return address.startsWith('127.') || address.startsWith('169.254.');
  const a = address.toLowerCase();
  return a === '::1' || /^fe[89ab]/.test(a) || /^ff[0-9a-f]2:/.test(a);
};

/**
 * istio config.getLocalIP: the first address that is not loopback or link-local decides; with --dual-stack, any IPv6
 * address turns IPv6 on. Without any such address istio-iptables fails; we go on with IPv4 only and say so.
 */
export function detectIPv6(dualStack: boolean, interfaces = os.networkInterfaces()): { ipv6: boolean; found: boolean } {
  let first: string | undefined;
  for (const addrs of Object.values(interfaces)) {
    for (const a of addrs ?? []) {
      const mapped = a.address.toLowerCase().startsWith('::ffff:') && a.address.includes('.');
      const family = mapped ? 'IPv4' : a.family;
      const address = mapped ? a.address.slice(7) : a.address;
      if (isLoopbackOrLinkLocal(address, family)) continue;
      first ??= family;
      if (!dualStack) return { ipv6: family === 'IPv6', found: true };
      if (family === 'IPv6') return { ipv6: true, found: true };
    }
  }
  return { ipv6: first === 'IPv6', found: first !== undefined };
}

/** Reads what the options leave to the host. Errors name the file that could not be read. */
export function probeHost(o: IptablesOptions, env: Env, paths: HostPaths = DEFAULT_PATHS): Result<HostFacts & { warnings: string[] }, string[]> {
  const warnings: string[] = [];
  let envoyUserUid: string | undefined;
  if (o.proxyUids === undefined) {
    try {
      envoyUserUid = uidOf(fs.readFileSync(paths.passwd, 'utf8'), env.ENVOY_USER || 'istio-proxy');
    } catch {
      // No passwd: istio-iptables falls back to 1337 too.
    }
  }
  const ip = detectIPv6(o.dualStack);
  if (!ip.found) warnings.push('no non-loopback address found on this host: writing IPv4 rules only');
  let dnsServers: string[] = [];
  if (o.redirectDns && !o.captureAllDns) {
    try {
      dnsServers = parseResolvConf(fs.readFileSync(paths.resolvConf, 'utf8'));
    } catch (err) {
      return fail([`--redirect-dns: failed to load ${paths.resolvConf}: ${(err as Error).message}`]);
    }
  }
  return ok({ ...(envoyUserUid ? { envoyUserUid } : {}), hasIPv6: ip.ipv6, dnsServers, warnings });
}
