/**
 * RDS for proxyless gRPC (istiod grpcgen rds.go): the route config is named after the cluster key
 * `outbound|<port>||<host>` and holds the one virtual host for that service and port. Domains keep the port (gRPC
 * matches the authority it dialled, `reviews:9080`), and the port-less spelling is added for clients that dial
 * without one.
 */
import { joinHostPort, parseClusterName } from '../../../model/names.ts';
import { TypeUrl } from '../../../proto/types.ts';
import { defaultRoute, translateHttpRoute, type RouteContext } from '../../builders/route.ts';
import type { Json } from '../../builders/common.ts';
import type { GenContext, ResourceGenerator } from '../generator.ts';
import { serviceDomains } from '../outbound-names.ts';

export const grpcRoutes: ResourceGenerator = {
  typeUrl: TypeUrl.RouteConfiguration,
  names(ctx) {
    return ctx.push.visibleServices(ctx.view).flatMap((s) => s.ports.map((p) => `outbound|${p.port}||${s.hostname}`));
  },
  build(ctx: GenContext, name: string): Json | undefined {
    const key = parseClusterName(name);
    if (!key || key.direction !== 'outbound') return undefined;
    const service = ctx.push.serviceFor(ctx.view, key.host);
    if (!service || !service.ports.some((p) => p.port === key.port)) return undefined;
    const rc: RouteContext = { push: ctx.push, view: ctx.view, service, port: key.port, proxyless: true, note: ctx.note };
    const vs = ctx.push.virtualServiceFor(ctx.view, service.hostname);
    let routes: Json[] = [];
    if (vs) {
      for (const [i, http] of (vs.object.spec.http ?? []).entries()) {
        const r = translateHttpRoute(http, i, vs, rc);
        routes.push(...r.routes);
        if (r.catchAll) break;
      }
    } else {
      routes = [defaultRoute(rc)];
    }
    const domains: string[] = [];
    for (const d of serviceDomains(service, ctx.view.namespace(), ctx.push.mesh.domainSuffix, false)) {
      domains.push(joinHostPort(d, key.port), d);
    }
    return {
      name,
      virtual_hosts: [{ name: joinHostPort(service.hostname, key.port), domains: [...new Set(domains)], routes }],
    };
  },
};
