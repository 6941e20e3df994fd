/** Route translation contexts for Envoy generators (sidecar routes, TCP/TLS routes, gateway routes). */
import { MESH_GATEWAY } from '../../../model/names.ts';
import type { Service } from '../../../model/service.ts';
import type { RouteContext } from '../../builders/route-context.ts';
import type { GenContext } from '../generator.ts';

export function routeContext(ctx: GenContext, service: Service, port: number, gateways: string[] = [MESH_GATEWAY]): RouteContext {
  return { push: ctx.push, view: ctx.view, service, port, proxyless: false, note: ctx.note, gateways };
}

/** A stand-in service for routing a gateway host that is not itself a registry service (`bookinfo.example.com`). */
export function hostService(host: string, namespace: string): Service {
  return {
    hostname: host, namespace, ports: [], addresses: [], resolution: 'STATIC', location: 'MESH_EXTERNAL', exportTo: ['*'],
    origin: { kind: 'Gateway', namespace, name: host, creationTimestamp: '' }, kubernetes: false,
  };
}
