/**
 * A gateway proxy's servers grouped by the port it listens on (istio-xds.md §11), and what each becomes: plain HTTP
 * servers share one HCM chain (routes `http.<port>`), terminated TLS servers get a chain each (routes
 * `https.<port>.<portName>.<gateway>.<ns>`), PASSTHROUGH / AUTO_PASSTHROUGH / TCP servers forward connections.
 */
import { gatewayHttpRouteName, gatewayHttpsRouteName, listenerName, WILDCARD_ADDRESS } from '../../../model/names.ts';
import { gatewayServers, parseServerHost, type GatewayServer } from '../../../model/gateways.ts';
import type { GenContext } from '../generator.ts';

export type ServerKind = 'http' | 'https' | 'passthrough' | 'auto-passthrough' | 'tcp';

export interface PlannedServer extends GatewayServer {
  kind: ServerKind;
  /** RDS name for http/https servers. */
  routeName?: string;
  /** Host patterns without their namespace part. */
  hosts: string[];
}

export interface GatewayListenerPlan {
  name: string;
  port: number;
  servers: PlannedServer[];
}

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

function kindOf(s: GatewayServer): ServerKind | undefined {
  const protocol = s.server.port.protocol.toUpperCase();
  const mode = s.server.tls?.mode;
  if (HTTP_PROTOCOLS.has(protocol)) return 'http';
  if (protocol === 'HTTPS' || protocol === 'TLS') {
    if (mode === 'PASSTHROUGH') return 'passthrough';
    if (mode === 'AUTO_PASSTHROUGH') return 'auto-passthrough';
    return protocol === 'HTTPS' ? 'https' : 'passthrough';
  }
  if (protocol === 'TCP' || protocol === 'MONGO' || protocol === 'MYSQL' || protocol === 'REDIS') return 'tcp';
  return undefined;
}

export function gatewayPlan(ctx: GenContext): Map<string, GatewayListenerPlan> {
  return ctx.memo('gateway-plan', computePlan);
}

function computePlan(ctx: GenContext): Map<string, GatewayListenerPlan> {
  const plans = new Map<string, GatewayListenerPlan>();
  for (const s of gatewayServers(ctx.push, ctx.view)) {
    const where = `Gateway ${s.gateway.name} servers[${s.index}]`;
    const kind = kindOf(s);
    if (!kind) {
      ctx.note(`${where}: protocol ${s.server.port.protocol} is not supported on gateways; server left out`);
      continue;
    }
    const ns = s.gateway.object.metadata.namespace;
    const hosts = s.server.hosts.map((h) => parseServerHost(h, ns).host);
    const name = listenerName(s.server.bind ?? WILDCARD_ADDRESS, s.listenPort);
    let plan = plans.get(name);
    if (!plan) {
      plan = { name, port: s.listenPort, servers: [] };
      plans.set(name, plan);
    }
    const mixesHttp = plan.servers.some((p) => (p.kind === 'http') !== (kind === 'http'));
    if (mixesHttp) {
      ctx.note(`${where}: port ${s.listenPort} already serves ${kind === 'http' ? 'TLS/TCP' : 'plain HTTP'}; a port carries one or the other; server left out`);
      continue;
    }
    const routeName =
      kind === 'http'
        ? gatewayHttpRouteName(s.listenPort)
        : kind === 'https'
          ? gatewayHttpsRouteName(s.server.port.number, s.server.port.name, s.gateway.object.metadata.name, ns)
          : undefined;
    plan.servers.push({ ...s, kind, hosts, ...(routeName ? { routeName } : {}) });
  }
  return plans;
}
