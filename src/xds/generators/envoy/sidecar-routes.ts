/**
 * RDS for sidecars (istio-xds.md §3.1, §3.2): route config `<port>` holds one virtual host per HTTP service on that
 * port (`<host>:<port>`, port-less domains since the port is ignored in host matching) plus the catch-all
 * (`allow_any` to PassthroughCluster, or `block_all` 502 under REGISTRY_ONLY); `<host>:<port>` serves one
 * auto-detected service port and has no catch-all.
 */
import type { Service } from '../../../model/service.ts';
import { serviceDomains } from '../outbound-names.ts';
import { TypeUrl } from '../../../proto/types.ts';
import { ZERO_DURATION, type Json } from '../../builders/common.ts';
import { defaultRoute, translateHttpRoute } from '../../builders/route.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { autoRouteName, outboundPlan, outboundTrafficCluster } from './outbound-plan.ts';
import { hostService, routeContext } from './route-context.ts';
import { MESH_GATEWAY } from '../../../model/names.ts';
import { visibleTo } from '../../../model/push-context.ts';

/** The routes for one service port: its VirtualService's HTTP routes, or the default route. */
export function serviceRoutes(ctx: GenContext, service: Service, port: number, gateways?: string[]): Json[] {
  const rc = routeContext(ctx, service, port, gateways);
  const vs = ctx.push.virtualServiceFor(ctx.view, service.hostname);
  if (!vs) return [defaultRoute(rc)];
  const routes: Json[] = [];
  for (const [i, http] of (vs.object.spec.http ?? []).entries()) {
    const r = translateHttpRoute(http, i, vs, rc);
    routes.push(...r.routes);
    if (r.catchAll) break;
  }
  return routes;
}

function virtualHost(ctx: GenContext, service: Service, port: number, used: Set<string>): Json | undefined {
  const domains = serviceDomains(service, ctx.view.namespace(), ctx.push.mesh.domainSuffix, true).filter((d) => !used.has(d));
  if (domains.length === 0) return undefined;
  for (const d of domains) used.add(d);
  return { name: `${service.hostname}:${port}`, domains, routes: serviceRoutes(ctx, service, port), include_request_attempt_count: true };
}

/**
 * VirtualService hosts that name no registry service (an external name routed to mesh services, say) get virtual
 * hosts on port 80, as istiod does ("serviceByPort[80]" when a VirtualService matches no service).
 */
const UNREGISTERED_HOSTS_PORT = 80;

function unregisteredHosts(ctx: GenContext, used: Set<string>): Json[] {
  const out: Json[] = [];
  const ns = ctx.view.namespace();
  for (const vs of ctx.push.virtualServices) {
    if (!vs.gateways.includes(MESH_GATEWAY) || !visibleTo(vs.exportTo, vs.object.metadata.namespace, ns)) continue;
    for (const host of vs.hosts) {
      if (used.has(host) || ctx.push.registry.byHost.has(host) || host.startsWith('*')) continue;
      if (ctx.push.virtualServiceFor(ctx.view, host) !== vs) continue; // another VirtualService owns this host
      const rc = routeContext(ctx, hostService(host, vs.object.metadata.namespace), UNREGISTERED_HOSTS_PORT);
      const routes: Json[] = [];
      for (const [i, http] of (vs.object.spec.http ?? []).entries()) {
        const r = translateHttpRoute(http, i, vs, rc);
        routes.push(...r.routes);
        if (r.catchAll) break;
      }
      if (routes.length === 0) continue;
      used.add(host);
      out.push({ name: `${host}:${UNREGISTERED_HOSTS_PORT}`, domains: [host], routes, include_request_attempt_count: true });
    }
  }
  return out.sort((a, b) => ((a.name as string) < (b.name as string) ? -1 : 1));
}

function catchAllHost(ctx: GenContext): Json {
  const { mode, cluster } = outboundTrafficCluster(ctx);
  if (mode === 'REGISTRY_ONLY') {
    return { name: 'block_all', domains: ['*'], routes: [{ name: 'block_all', match: { prefix: '/' }, direct_response: { status: 502 } }], include_request_attempt_count: true };
  }
  return {
    name: 'allow_any',
    domains: ['*'],
    routes: [{ name: 'allow_any', match: { prefix: '/' }, route: { cluster, timeout: ZERO_DURATION, max_grpc_timeout: ZERO_DURATION } }],
    include_request_attempt_count: true,
  };
}

function routeConfiguration(name: string, virtualHosts: Json[]): Json {
  return {
    name,
    virtual_hosts: virtualHosts,
    validate_clusters: { value: false },
    max_direct_response_body_size_bytes: { value: 1048576 },
    ignore_port_in_host_matching: true,
  };
}

export function sidecarRouteNames(ctx: GenContext): string[] {
  const out: string[] = [];
  for (const plan of outboundPlan(ctx).values()) {
    if (plan.kind === 'http') out.push(String(plan.port));
    else if (plan.kind === 'auto') out.push(autoRouteName(plan.services[0]!.service, plan.port));
  }
  return out;
}

export function sidecarRoute(ctx: GenContext, name: string): Json | undefined {
  const plans = outboundPlan(ctx);
  if (/^\d+$/.test(name)) {
    const plan = [...plans.values()].find((p) => p.kind === 'http' && String(p.port) === name);
    if (!plan) return undefined;
    const used = new Set<string>();
    const hosts: Json[] = [];
    const services = [...plan.services].sort((a, b) => (a.service.hostname < b.service.hostname ? -1 : 1));
    for (const { service } of services) {
      const vh = virtualHost(ctx, service, plan.port, used);
      if (vh) hosts.push(vh);
    }
    if (plan.port === UNREGISTERED_HOSTS_PORT) hosts.push(...unregisteredHosts(ctx, used));
    hosts.push(catchAllHost(ctx));
    return routeConfiguration(name, hosts);
  }
  const plan = [...plans.values()].find((p) => p.kind === 'auto' && autoRouteName(p.services[0]!.service, p.port) === name);
  if (!plan) return undefined;
  const vh = virtualHost(ctx, plan.services[0]!.service, plan.port, new Set());
  return routeConfiguration(name, vh ? [vh] : []);
}

export const sidecarRoutes: ResourceGenerator = {
  typeUrl: TypeUrl.RouteConfiguration,
  names: sidecarRouteNames,
  build: sidecarRoute,
};
