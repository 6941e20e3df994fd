/**
 * Gateways: which Gateway objects configure a gateway proxy (their selector matches its labels, in any namespace, as
 * istiod does by default), how their server ports map to the ports the pod listens on, and which VirtualServices bind
 * to them.
 */
import type { GatewaySpec, Server } from '../config/kinds/gateway.ts';
import type { ConfigObject } from '../config/object.ts';
import { hostMatches } from './hosts.ts';
import type { PushContext, IndexedVirtualService } from './push-context.ts';
import { visibleTo } from './push-context.ts';
import type { ProxyView } from './proxy-view.ts';
import { servicesOfProxy } from './workload-services.ts';

export interface BoundGateway {
  /** `<ns>/<name>`, the name VirtualServices bind to. */
  name: string;
  object: ConfigObject<GatewaySpec>;
}

export interface GatewayServer {
  gateway: BoundGateway;
  server: Server;
  index: number;
  /** The port the pod listens on: the gateway Service's targetPort for the server port, else the port itself. */
  listenPort: number;
}

export function gatewaysForProxy(push: PushContext, view: ProxyView): BoundGateway[] {
  return push.config
    .ofKind<GatewaySpec>('Gateway')
    .filter((g) => view.selectedBy(g.spec.selector))
    .map((object) => ({ name: `${object.metadata.namespace}/${object.metadata.name}`, object }));
}

/** Every server of every gateway selecting this proxy, with its resolved listen port (istiod resolvePorts). */
export function gatewayServers(push: PushContext, view: ProxyView): GatewayServer[] {
  const services = servicesOfProxy(push, view);
  const out: GatewayServer[] = [];
  for (const gateway of gatewaysForProxy(push, view)) {
    for (const [index, server] of (gateway.object.spec.servers ?? []).entries()) {
      let listenPort = server.port.number;
      for (const s of services) {
        const sp = s.ports.find((p) => p.port === server.port.number);
        if (sp?.targetPort !== undefined) {
          listenPort = sp.targetPort;
          break;
        }
      }
      out.push({ gateway, server, index, listenPort });
    }
  }
  return out;
}

/** A server host `ns/host`, `./host`, `*\/host` or `host` → the namespace filter and host pattern. */
export function parseServerHost(entry: string, gatewayNamespace: string): { namespace: string; host: string } {
  const slash = entry.indexOf('/');
  if (slash < 0) return { namespace: '*', host: entry };
  const ns = entry.slice(0, slash);
  return { namespace: ns === '.' ? gatewayNamespace : ns, host: entry.slice(slash + 1) };
}

/**
 * The vhost domain a VirtualService host gets on a server: the VirtualService host when the server's host covers it,
 * the server host when the VirtualService host is the wider wildcard, else none.
 */
export function boundHost(serverHost: string, vsHost: string): string | undefined {
  if (hostMatches(serverHost, vsHost)) return vsHost;
  if (hostMatches(vsHost, serverHost)) return serverHost;
  return undefined;
}

/** VirtualServices bound to a gateway, visible to the gateway proxy, oldest first. */
export function virtualServicesForGateway(push: PushContext, view: ProxyView, gatewayName: string): IndexedVirtualService[] {
  const ns = view.namespace();
  return push.virtualServices.filter((vs) => vs.gateways.includes(gatewayName) && visibleTo(vs.exportTo, vs.object.metadata.namespace, ns));
}
