/**
 * The services a proxy's own workload serves (istiod's "service targets"): services in the proxy's namespace whose
 * selector (Kubernetes Service selector, ServiceEntry workloadSelector) matches the proxy's labels. They decide the
 * sidecar's inbound ports and clusters.
 */
import type { PushContext } from './push-context.ts';
import type { ProxyView } from './proxy-view.ts';
import { normalizeProtocol, type Protocol, type Service } from './service.ts';

export interface InboundPort {
  /** The port the workload listens on (the Service targetPort). */
  port: number;
  protocol: Protocol;
  /** The service ports it serves (several services may select one workload port). */
  services: Array<{ service: Service; servicePort: number; portName: string }>;
  /** Sidecar ingress `defaultEndpoint`: where inbound traffic for the port goes instead of its original destination. */
  defaultEndpoint?: string;
}

export function servicesOfProxy(push: PushContext, view: ProxyView): Service[] {
  const ns = view.namespace();
  return push.registry.services.filter((s) => s.namespace === ns && s.selector !== undefined && Object.keys(s.selector).length > 0 && view.selectedBy(s.selector));
}

/**
 * Workload ports by target port. A named targetPort is resolved from this proxy's own endpoint, when the registry has
 * one (that reads the proxy's IPs, so such resources are not shared between pods).
 */
export function inboundPorts(push: PushContext, view: ProxyView): InboundPort[] {
  const fromServices = servicePorts(push, view);
  // A Sidecar with ingress listeners replaces the service-derived ports (istio Sidecar.ingress).
  const ingress = push.sidecarFor(view)?.spec.ingress;
  if (!ingress || ingress.length === 0) return fromServices;
  return ingress
    .filter((l) => l.port.number !== undefined && l.port.number > 0) // port 0 is a unix-socket listener
    .map((l) => ({
      port: l.port.number!,
      protocol: normalizeProtocol(l.port.protocol),
      services: fromServices.find((p) => p.port === l.port.number)?.services ?? [],
      ...(l.defaultEndpoint ? { defaultEndpoint: l.defaultEndpoint } : {}),
    }))
    .sort((a, b) => a.port - b.port);
}

function servicePorts(push: PushContext, view: ProxyView): InboundPort[] {
  const byPort = new Map<number, InboundPort>();
  for (const service of servicesOfProxy(push, view)) {
    for (const sp of service.ports) {
      let target = sp.targetPort ?? (sp.targetPortName ? undefined : sp.port);
      if (target === undefined) {
        const ips = new Set(view.ipAddresses());
        target = push.endpoints(service).find((e) => e.servicePortName === sp.name && ips.has(e.address))?.port;
        if (target === undefined) continue;
      }
      let entry = byPort.get(target);
      if (!entry) {
        entry = { port: target, protocol: sp.protocol, services: [] };
        byPort.set(target, entry);
      } else if (entry.protocol === 'UNKNOWN' || (entry.protocol !== sp.protocol && sp.protocol !== 'UNKNOWN')) {
        // Conflicting declarations of one workload port: the most specific wins; HTTP-family over TCP.
        if (entry.protocol === 'UNKNOWN' || ['HTTP', 'HTTP2', 'GRPC'].includes(sp.protocol)) entry.protocol = sp.protocol;
      }
      entry.services.push({ service, servicePort: sp.port, portName: sp.name });
    }
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}
