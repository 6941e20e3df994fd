import { splitHostPort } from '../../../model/names.ts';
import type { Service, ServicePort } from '../../../model/service.ts';
import type { GenContext } from '../generator.ts';

/**
 * A listener name a gRPC client used (`reviews:9080`, `reviews.default.svc.cluster.local:9080`, `reviews`) → the
 * service and port. Without a port the service must have exactly one.
 */
export function resolveService(ctx: GenContext, name: string): { service: Service; port: ServicePort } | undefined {
  const { host, port } = splitHostPort(name);
  const hostname = ctx.push.resolveHost(ctx.view, host);
  if (!hostname) return undefined;
  const service = ctx.push.serviceFor(ctx.view, hostname);
  if (!service) return undefined;
  if (port === undefined) {
    if (service.ports.length !== 1) {
      ctx.note(`listener ${name}: ${hostname} has ${service.ports.length} ports; name one (${hostname}:<port>)`);
      return undefined;
    }
    return { service, port: service.ports[0]! };
  }
  const sp = service.ports.find((p) => p.port === port);
  return sp ? { service, port: sp } : undefined;
}
