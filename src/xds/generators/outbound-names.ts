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
 * absolute form `host.`, the Kubernetes short names (the bare name only from the service's own namespace), the VIPs.
 */
export function serviceDomains(service: Service, proxyNamespace: string, domainSuffix: string, absoluteFqdn: boolean): string[] {
  const names = [service.hostname];
  if (absoluteFqdn && !service.hostname.startsWith('*')) names.push(`${service.hostname}.`);
  if (service.kubernetes) {
    const svcSuffix = `.svc.${domainSuffix}`;
    if (service.hostname.endsWith(svcSuffix)) {
      const short = service.hostname.slice(0, -svcSuffix.length); // name.ns
      const [name] = short.split('.');
      if (service.namespace === proxyNamespace && name) names.push(name);
      names.push(`${short}.svc`, short);
    }
  }
  // Headless services are addressed by pod name (`web-0.web.ns.svc.cluster.local`): wildcard variants of each name.
  if (service.kubernetes && service.resolution === 'NONE' && service.addresses.length === 0) names.push(...names.map((n) => `*.${n}`));
  names.push(...service.addresses);
  return names;
}
