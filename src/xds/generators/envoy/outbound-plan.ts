/**
 * Which outbound listeners a sidecar gets (istio-xds.md §2.3), shared by LDS (the listeners) and RDS (their route
 * configs): HTTP service ports share one wildcard listener `0.0.0.0_<port>` whose routes are named `<port>`; TCP and
 * auto-detected ports get `<VIP>_<port>` (wildcard for services without a VIP); auto ports also route HTTP by
 * `<host>:<port>`.
 */
import { resolveShortName } from '../../../model/hosts.ts';
import { BLACKHOLE_CLUSTER, clusterName, listenerName, PASSTHROUGH_CLUSTER, WILDCARD_ADDRESS } from '../../../model/names.ts';
import { isHttpProtocol, type Service, type ServicePort } from '../../../model/service.ts';
import type { GenContext } from '../generator.ts';

export type OutboundKind = 'http' | 'tcp' | 'auto';

export interface OutboundListenerPlan {
  name: string;
  bind: string;
  port: number;
  kind: OutboundKind;
  services: Array<{ service: Service; port: ServicePort }>;
}

/** Ports Envoy itself owns on a sidecar; a service port equal to one would loop traffic into the proxy. */
const RESERVED_PORTS = new Set([15000, 15001, 15006, 15008, 15020, 15021, 15090]);

export function outboundPlan(ctx: GenContext): Map<string, OutboundListenerPlan> {
  return ctx.memo('sidecar-outbound-plan', computePlan);
}

function computePlan(ctx: GenContext): Map<string, OutboundListenerPlan> {
  const plans = new Map<string, OutboundListenerPlan>();
  for (const service of ctx.push.visibleServices(ctx.view)) {
    for (const port of service.ports) {
      if (port.protocol === 'UDP' || RESERVED_PORTS.has(port.port)) continue;
      const http = isHttpProtocol(port.protocol);
      if (!http && isHeadless(service)) {
        // A headless service's clients dial pod addresses: one listener per endpoint (istiod does the same for TCP).
        for (const ep of ctx.push.endpoints(service)) {
          if (ep.servicePortName !== port.name || !ep.healthy) continue;
          const name = listenerName(ep.address, ep.port);
          if (!plans.has(name)) plans.set(name, { name, bind: ep.address, port: ep.port, kind: 'tcp', services: [{ service, port }] });
        }
        continue;
      }
      const bind = http ? WILDCARD_ADDRESS : (service.addresses[0] ?? WILDCARD_ADDRESS);
      const kind: OutboundKind = http ? 'http' : port.protocol === 'UNKNOWN' && bind !== WILDCARD_ADDRESS ? 'auto' : 'tcp';
      const name = listenerName(bind, port.port);
      const existing = plans.get(name);
      if (!existing) {
        plans.set(name, { name, bind, port: port.port, kind, services: [{ service, port }] });
        continue;
      }
      if (existing.kind === 'http' && kind === 'http') {
        existing.services.push({ service, port });
        continue;
      }
      // Two services want one wildcard TCP listener, or a TCP service collides with the HTTP listener on its port:
      // istiod keeps the first (HTTP wins on the wildcard) and counts a conflict; the loser is reachable only by VIP.
      ctx.note(`outbound listener ${name}: ${service.hostname}:${port.port} (${port.protocol}) conflicts with ${existing.services[0]!.service.hostname} (${existing.kind}); it is left out of this listener`);
    }
  }
  return plans;
}

/** A Kubernetes Service with clusterIP None: reached at its pods' addresses (Istio's Passthrough resolution). */
export function isHeadless(service: Service): boolean {
  return service.kubernetes && service.resolution === 'NONE' && service.addresses.length === 0;
}

/** Route config name for an auto-detected port's HTTP chain. */
export function autoRouteName(service: Service, port: number): string {
  return `${service.hostname}:${port}`;
}

/** Where traffic to hosts outside the registry goes: the Sidecar's outboundTrafficPolicy, else the mesh's. */
export function outboundTrafficCluster(ctx: GenContext): { mode: 'ALLOW_ANY' | 'REGISTRY_ONLY'; cluster: string } {
  const policy = ctx.push.sidecarFor(ctx.view)?.spec.outboundTrafficPolicy;
  const mode = policy?.mode ?? ctx.push.mesh.outboundTrafficPolicy;
  if (mode === 'REGISTRY_ONLY') return { mode, cluster: BLACKHOLE_CLUSTER };
  const egress = policy?.egressProxy;
  if (egress) {
    const host = resolveShortName(egress.host, ctx.view.namespace(), ctx.push.mesh.domainSuffix);
    return { mode: 'ALLOW_ANY', cluster: clusterName('outbound', egress.port?.number ?? 80, egress.subset ?? '', host) };
  }
  return { mode: 'ALLOW_ANY', cluster: PASSTHROUGH_CLUSTER };
}
