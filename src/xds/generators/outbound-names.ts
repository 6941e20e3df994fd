/**
 * Names shared by the generators of every proxy type: the outbound clusters `outbound|<port>|<subset>|<host>` a
 * proxy can reach, and the domains a client may use for a service.
 */
import { clusterName } from '../../model/names.ts';
import type { Service } from '../../model/service.ts';
import type { GenContext } from './generator.ts';

/** One cluster per visible service port, plus one per DestinationRule subset. */
export function outboundClusterNames(ctx: GenContext): string[] {
  const out: string[] = [];
  for (const s of ctx.push.visibleServices(ctx.view)) {
    const subsets = ctx.push.destinationRuleFor(ctx.view, s)?.object.spec.subsets ?? [];
    for (const p of s.ports) {
      out.push(clusterName('outbound', p.port, '', s.hostname));
      for (const sub of subsets) out.push(clusterName('outbound', p.port, sub.name, s.hostname));
    }
  }
  return out;
}

/**
 * The names a client may use for a service, as istiod lists them (istio-xds.md §3.2): the hostname, for Envoy its
 * absolute form `host.`, the short names of `<name>.<ns>.svc.<suffix>` hosts (the bare name only from that namespace),
 * the VIPs.
 */
export function serviceDomains(service: Service, proxyNamespace: string, domainSuffix: string, absoluteFqdn: boolean): string[] {
  const names = [service.hostname];
  if (absoluteFqdn && !service.hostname.startsWith('*')) names.push(`${service.hostname}.`);
  // Short forms come from the hostname itself, for any registry (istiod GenerateAltVirtualHosts): a ServiceEntry for
  // `reviews.bookinfo.svc.cluster.local` answers to `reviews.bookinfo` as a Kubernetes Service would.
  const svcSuffix = `.svc.${domainSuffix}`;
  const short = service.hostname.endsWith(svcSuffix) ? service.hostname.slice(0, -svcSuffix.length) : ''; // name.ns
  const parts = short.split('.');
  if (parts.length === 2 && parts[0] && parts[1]) {
    if (parts[1] === proxyNamespace) names.push(parts[0]);
    names.push(`${short}.svc`, short);
  }
  // Headless services are addressed by pod name (`web-0.web.ns.svc.cluster.local`): wildcard variants of each name.
  if (service.kubernetes && service.resolution === 'NONE' && service.addresses.length === 0) names.push(...names.map((n) => `*.${n}`));
  names.push(...service.addresses);
  return names;
}
