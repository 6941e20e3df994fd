/**
 * VirtualService `tcp` and `tls` routes → outbound filter chains (istio-xds.md §2.3): TLS routes become chains matched
 * by SNI (`server_names`, transport `tls`) in front of the service's default chain; the first `tcp` route whose match
 * applies to this proxy picks the default chain's clusters; with neither, traffic goes to `outbound|<port>||<host>`.
 */
import type { L4MatchAttributes, RouteDestination, TLSMatchAttributes } from '../../../config/kinds/virtual-service.ts';
import { clusterName, MESH_GATEWAY } from '../../../model/names.ts';
import type { Service } from '../../../model/service.ts';
import type { Json } from '../../builders/common.ts';
import { tcpProxy } from '../../builders/http-connection-manager.ts';
import { destinationCluster } from '../../builders/route.ts';
import { routeContext } from './route-context.ts';
import type { RouteContext } from '../../builders/route-context.ts';
import type { GenContext } from '../generator.ts';

function l4Applies(m: L4MatchAttributes | TLSMatchAttributes, rc: RouteContext, gateways: string[]): boolean {
  if (m.port !== undefined && m.port !== rc.port) return false;
  if (m.gateways && m.gateways.length > 0) return m.gateways.some((g) => gateways.includes(g));
  if (m.sourceNamespace && m.sourceNamespace !== rc.view.namespace()) return false;
  if (m.sourceLabels && !rc.view.selectedBy(m.sourceLabels)) return false;
  return true;
}

function proxyFor(dests: RouteDestination[], vsNamespace: string, rc: RouteContext, statPrefix: string): Json {
  const usable = dests.filter((d) => (d.weight ?? 1) > 0 || dests.length === 1);
  if (usable.length === 1) {
    const cluster = destinationCluster(usable[0]!.destination, vsNamespace, rc);
    return tcpProxy({ statPrefix: cluster, cluster });
  }
  return tcpProxy({ statPrefix, weighted: usable.map((d) => ({ name: destinationCluster(d.destination, vsNamespace, rc), weight: d.weight ?? 0 })) });
}

export interface TcpChains {
  /** SNI-matched chains (need tls_inspector). */
  tls: Json[];
  /** The match-all chain's filters. */
  defaultFilters: Json[];
}

/** `gateways`: names the proxy represents (`mesh` for sidecars, `<ns>/<name>` for gateways). */
export function tcpChainsFor(ctx: GenContext, service: Service, port: number, gateways: string[] = [MESH_GATEWAY]): TcpChains {
  const rc = routeContext(ctx, service, port, gateways);
  const fallback = clusterName('outbound', port, '', service.hostname);
  const vs = gateways.map((g) => ctx.push.virtualServiceFor(ctx.view, service.hostname, g)).find(Boolean);
  const tls: Json[] = [];
  let defaultFilters = [tcpProxy({ statPrefix: fallback, cluster: fallback })];
  if (!vs) return { tls, defaultFilters };
  const vsNs = vs.object.metadata.namespace;
  for (const [i, route] of (vs.object.spec.tls ?? []).entries()) {
    for (const m of route.match ?? []) {
      if (!l4Applies(m, rc, gateways)) continue;
      if (m.destinationSubnets?.length) ctx.note(`VirtualService ${vsNs}/${vs.object.metadata.name} tls[${i}]: destinationSubnets are not supported yet; matching on SNI only`);
      tls.push({
        filter_chain_match: { server_names: [...m.sniHosts].sort(), transport_protocol: 'tls' },
        filters: [proxyFor(route.route ?? [], vsNs, rc, fallback)],
      });
    }
  }
  for (const route of vs.object.spec.tcp ?? []) {
    const matches = route.match && route.match.length > 0 ? route.match : [undefined];
    if (matches.some((m) => !m || l4Applies(m, rc, gateways))) {
      defaultFilters = [proxyFor(route.route ?? [], vsNs, rc, fallback)];
      break;
    }
  }
  return { tls, defaultFilters };
}
