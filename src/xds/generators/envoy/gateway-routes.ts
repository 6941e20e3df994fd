/**
 * RDS for gateways (istio-xds.md §3.1, §11): `http.<port>` for the plain HTTP servers on a port and
 * `https.<port>.<portName>.<gateway>.<ns>` per terminated server. A virtual host per host a bound VirtualService
 * routes (name `<host>:<serverPort>`, domains `[host]`); several VirtualServices for one host are merged oldest first;
 * an `httpsRedirect` server's hosts redirect to HTTPS; a route config with nothing bound answers 404 from
 * `blackhole:<port>`.
 */
import { boundHost, parseServerHost, virtualServicesForGateway } from '../../../model/gateways.ts';
import { compact, type Json } from '../../builders/common.ts';
import { translateHttpRoute } from '../../builders/route.ts';
import type { GenContext } from '../generator.ts';
import { gatewayPlan, type PlannedServer } from './gateway-plan.ts';
import { hostService, routeContext } from './route-context.ts';

interface HostRoutes {
  host: string;
  port: number;
  routes: Json[];
  redirect: boolean;
}

/** Virtual hosts of one server, keyed by domain so servers sharing a route config merge. */
function collect(ctx: GenContext, s: PlannedServer, into: Map<string, HostRoutes>): void {
  const gwNs = s.gateway.object.metadata.namespace;
  const redirect = s.server.tls?.httpsRedirect === true;
  for (const vs of virtualServicesForGateway(ctx.push, ctx.view, s.gateway.name)) {
    const vsNs = vs.object.metadata.namespace;
    for (const vsHost of vs.hosts) {
      for (const entry of s.server.hosts) {
        const { namespace, host } = parseServerHost(entry, gwNs);
        if (namespace !== '*' && namespace !== vsNs) continue; // the server admits VirtualServices from that namespace only
        const domain = boundHost(host, vsHost);
        if (!domain) continue;
        let hr = into.get(domain);
        if (!hr) {
          hr = { host: domain, port: s.server.port.number, routes: [], redirect };
          into.set(domain, hr);
        }
        if (hr.redirect) break;
        const rc = { ...routeContext(ctx, ctx.push.serviceFor(ctx.view, domain) ?? hostService(domain, vsNs), s.server.port.number, [s.gateway.name]), tls: s.kind === 'https' };
        for (const [i, http] of (vs.object.spec.http ?? []).entries()) {
          const r = translateHttpRoute(http, i, vs, rc);
          hr.routes.push(...r.routes);
          if (r.catchAll) break;
        }
        break;
      }
    }
  }
  // An httpsRedirect server redirects its hosts even when no VirtualService binds them.
  if (redirect) {
    for (const entry of s.server.hosts) {
      const { host } = parseServerHost(entry, gwNs);
      const hr = into.get(host);
      if (hr) hr.redirect = true;
      else into.set(host, { host, port: s.server.port.number, routes: [], redirect: true });
    }
  }
}

function virtualHosts(hosts: Map<string, HostRoutes>, port: number): Json[] {
  const out: Json[] = [];
  for (const hr of [...hosts.values()].sort((a, b) => (a.host < b.host ? -1 : 1))) {
    if (!hr.redirect && hr.routes.length === 0) continue;
    out.push(compact({
      name: `${hr.host}:${hr.port}`,
      domains: [hr.host.toLowerCase()],
      routes: hr.routes,
      // Envoy answers every plain-HTTP request on this host with a redirect to https before matching routes.
      require_tls: hr.redirect ? 'ALL' : undefined,
      include_request_attempt_count: true,
    }));
  }
  if (out.length === 0) out.push({ name: `blackhole:${port}`, domains: ['*'], routes: [] });
  return out;
}

export function gatewayRouteNames(ctx: GenContext): string[] {
  const out = new Set<string>();
  for (const plan of gatewayPlan(ctx).values()) for (const s of plan.servers) if (s.routeName) out.add(s.routeName);
  return [...out];
}

export function gatewayRoute(ctx: GenContext, name: string): Json | undefined {
  const hosts = new Map<string, HostRoutes>();
  let port: number | undefined;
  for (const plan of gatewayPlan(ctx).values()) {
    for (const s of plan.servers) {
      if (s.routeName !== name) continue;
      port ??= s.server.port.number;
      collect(ctx, s, hosts);
    }
  }
  if (port === undefined) return undefined;
  return {
    name,
    virtual_hosts: virtualHosts(hosts, port),
    validate_clusters: { value: false },
    max_direct_response_body_size_bytes: { value: 1048576 },
    ignore_port_in_host_matching: true,
  };
}
