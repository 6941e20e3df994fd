/**
 * DestinationRule consistentHash → route hash_policy (istio-xds.md §4.3). For proxyless gRPC only header hashing and
 * the per-channel `io.grpc.channel_id` filter state exist (gRFC A42); `useSourceIp` maps to the latter — one client
 * channel sticks to one backend, the nearest gRPC meaning of "this source" — and cookie/query hashing is left out.
 */
import type { Destination } from '../../config/kinds/virtual-service.ts';
import { resolveShortName } from '../../model/hosts.ts';
import type { Json } from './common.ts';
import { duration } from './common.ts';
import type { RouteContext } from './route-context.ts';
import { effectivePolicy } from './traffic-policy.ts';

export function hashPolicyFor(d: Destination, vsNamespace: string, ctx: RouteContext): Json[] {
  const host = resolveShortName(d.host, vsNamespace, ctx.push.mesh.domainSuffix);
  const service = ctx.push.serviceFor(ctx.view, host);
  if (!service) return [];
  const dr = ctx.push.destinationRuleFor(ctx.view, service);
  const port = d.port?.number ?? (service.ports.length === 1 ? service.ports[0]!.port : ctx.port);
  const ch = effectivePolicy(dr?.object.spec, port, d.subset ?? '')?.loadBalancer?.consistentHash;
  if (!ch) return [];
  if (ch.httpHeaderName) return [{ header: { header_name: ch.httpHeaderName } }];
  if (ch.useSourceIp) {
    if (ctx.proxyless) return [{ filter_state: { key: 'io.grpc.channel_id' } }];
    return [{ connection_properties: { source_ip: true } }];
  }
  if (ch.httpCookie) {
    if (ctx.proxyless) {
      ctx.note(`DestinationRule ${dr!.object.metadata.namespace}/${dr!.object.metadata.name}: consistentHash.httpCookie is not supported by proxyless gRPC: left out`);
      return [];
    }
    return [{ cookie: { name: ch.httpCookie.name, path: ch.httpCookie.path, ttl: duration(ch.httpCookie.ttl) } }];
  }
  if (ch.httpQueryParameterName) {
    if (ctx.proxyless) {
      ctx.note(`DestinationRule ${dr!.object.metadata.namespace}/${dr!.object.metadata.name}: consistentHash.httpQueryParameterName is not supported by proxyless gRPC: left out`);
      return [];
    }
    return [{ query_parameter: { name: ch.httpQueryParameterName } }];
  }
  return [];
}
