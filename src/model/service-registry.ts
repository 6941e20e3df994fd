/**
 * Builds the service registry from config: ServiceEntry (+ WorkloadEntry/Pod selected by workloadSelector) and
 * Kubernetes Service + EndpointSlice (+ Pod labels, Node locality, WorkloadEntries selected by the Service selector).
 * Pure: a snapshot in, services and endpoints out.
 */
import type { EndpointSlice, K8sService, Pod } from '../config/kinds/kubernetes.ts';
import type { ServiceEntrySpec } from '../config/kinds/service-entry.ts';
import type { WorkloadEntrySpec } from '../config/kinds/workload-entry.ts';
import type { ConfigObject } from '../config/object.ts';
import type { ConfigSnapshot } from './config-store.ts';
import type { MeshConfig } from './mesh.ts';
import { isIp } from './ip.ts';
import {
  labelsMatch,
  normalizeProtocol,
  protocolFromName,
  serviceKey,
  type Endpoint,
  type Resolution,
  type Service,
  type ServicePort,
} from './service.ts';

export interface Registry {
  services: readonly Service[];
  /** hostname → services with that hostname (one per defining namespace), oldest first. */
  byHost: ReadonlyMap<string, readonly Service[]>;
  /** serviceKey → endpoints. */
  endpoints: ReadonlyMap<string, readonly Endpoint[]>;
}

const LOCALITY_LABEL = 'istio-locality';

function exportToFromAnnotation(annotations: Readonly<Record<string, string>>): string[] | undefined {
  const v = annotations['networking.istio.io/exportTo'];
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
}

function origin(o: ConfigObject) {
  return { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, creationTimestamp: o.metadata.creationTimestamp };
}

/** Locality from a workload's labels (`istio-locality: region.zone.subzone`) or from its node's topology labels. */
function localityOf(labels: Readonly<Record<string, string>>, nodeLabels?: Readonly<Record<string, string>>, zone?: string): string {
  const l = labels[LOCALITY_LABEL];
  if (l) return l.replace(/\./g, '/');
  if (nodeLabels) {
    const region = nodeLabels['topology.kubernetes.io/region'] ?? nodeLabels['failure-domain.beta.kubernetes.io/region'] ?? '';
    const z = nodeLabels['topology.kubernetes.io/zone'] ?? nodeLabels['failure-domain.beta.kubernetes.io/zone'] ?? zone ?? '';
    const sub = nodeLabels['topology.istio.io/subzone'] ?? '';
    if (region || z || sub) return `${region}/${z}/${sub}`;
  }
  return zone ? `/${zone}/` : '';
}

function workloadEntryEndpoints(we: ConfigObject<WorkloadEntrySpec>, ports: ServicePort[], dnsOk: boolean): Endpoint[] {
  const s = we.spec;
  if (!s.address) return [];
  if (!dnsOk && !isIp(s.address)) return [];
  const labels = { ...we.metadata.labels, ...(s.labels ?? {}) };
  return ports.map((p) => ({
    address: s.address as string,
    servicePortName: p.name,
    port: s.ports?.[p.name] ?? p.targetPort ?? p.port,
    labels,
    locality: s.locality ?? localityOf(labels),
    weight: s.weight ?? 1,
    healthy: true,
    ...(s.serviceAccount ? { serviceAccount: s.serviceAccount } : {}),
    ...(s.network ? { network: s.network } : {}),
    workload: `WorkloadEntry ${we.metadata.namespace}/${we.metadata.name}`,
  }));
}

/** A DNS service's endpoints: the name itself, resolved by the proxy (ServiceEntry DNS without endpoints, ExternalName). */
function dnsEndpoints(host: string, ports: ServicePort[], portOf: (p: ServicePort) => number): Endpoint[] {
  return ports.map((p) => ({ address: host, servicePortName: p.name, port: portOf(p), labels: {}, locality: '', weight: 1, healthy: true }));
}

/** The EndpointSlice port serving a Service port: same name ('' on both sides when the Service port is unnamed). */
function slicePortFor(sp: ServicePort, slice: ConfigObject<EndpointSlice>): number | undefined {
  const name = sp.unnamed ? '' : sp.name;
  return (slice.spec.ports ?? []).find((p) => (p.name ?? '') === name)?.port;
}

function podEndpoints(pod: ConfigObject<Pod>, ports: ServicePort[], nodes: Map<string, Readonly<Record<string, string>>>): Endpoint[] {
  const ip = pod.spec.status?.podIP;
  if (!ip) return [];
  const nodeLabels = pod.spec.spec?.nodeName ? nodes.get(pod.spec.spec.nodeName) : undefined;
  return ports.map((p) => ({
    address: ip,
    servicePortName: p.name,
    port: p.targetPort ?? p.port,
    labels: pod.metadata.labels,
    locality: localityOf(pod.metadata.labels, nodeLabels),
    weight: 1,
    healthy: pod.spec.status?.phase === undefined || pod.spec.status.phase === 'Running',
    ...(pod.spec.spec?.serviceAccountName ? { serviceAccount: pod.spec.spec.serviceAccountName } : {}),
    workload: `Pod ${pod.metadata.namespace}/${pod.metadata.name}`,
  }));
}

export function buildRegistry(config: ConfigSnapshot, mesh: MeshConfig): Registry {
  const services: Service[] = [];
  const endpoints = new Map<string, Endpoint[]>();
  const add = (svc: Service, eps: Endpoint[]) => {
    services.push(svc);
    endpoints.set(serviceKey(svc), eps);
  };

  const workloadEntries = config.ofKind<WorkloadEntrySpec>('WorkloadEntry');
  const pods = config.ofKind<Pod>('Pod');
  const nodes = new Map(config.ofKind('Node').map((n) => [n.metadata.name, n.metadata.labels]));
  const podsByName = new Map(pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));

  for (const se of config.ofKind<ServiceEntrySpec>('ServiceEntry')) {
    const s = se.spec;
    const resolution = (s.resolution ?? 'NONE') as Resolution;
    const ports: ServicePort[] = (s.ports ?? []).map((p) => ({
      name: p.name ?? String(p.number),
      port: p.number,
      protocol: normalizeProtocol(p.protocol),
      ...(p.targetPort ? { targetPort: p.targetPort } : {}),
    }));
    const dnsOk = resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN';
    const eps: Endpoint[] = [];
    if (s.endpoints) {
      for (const e of s.endpoints) {
        const we = { ...se, kind: 'ServiceEntry', spec: e } as ConfigObject<WorkloadEntrySpec>;
        eps.push(...workloadEntryEndpoints(we, ports, dnsOk));
      }
    } else if (s.workloadSelector) {
      const sel = s.workloadSelector.labels ?? {};
      for (const we of workloadEntries) {
        if (we.metadata.namespace !== se.metadata.namespace) continue;
        if (!labelsMatch(sel, { ...we.metadata.labels, ...(we.spec.labels ?? {}) })) continue;
        eps.push(...workloadEntryEndpoints(we, ports, dnsOk));
      }
      for (const pod of pods) {
        if (pod.metadata.namespace === se.metadata.namespace && labelsMatch(sel, pod.metadata.labels)) eps.push(...podEndpoints(pod, ports, nodes));
      }
    }
    for (const host of s.hosts) {
      // DNS services without endpoints resolve the host itself (istiod does the same).
      const hostEps = dnsOk && !s.endpoints && !s.workloadSelector
        ? dnsEndpoints(host, ports, (p) => p.targetPort ?? p.port)
        : eps;
      add(
        {
          hostname: host,
          namespace: se.metadata.namespace,
          ports,
          addresses: s.addresses ?? [],
          resolution,
          location: (s.location ?? 'MESH_EXTERNAL') as Service['location'],
          exportTo: s.exportTo ?? mesh.defaultServiceExportTo,
          origin: origin(se),
          ...(s.workloadSelector?.labels ? { selector: s.workloadSelector.labels } : {}),
          kubernetes: false,
        },
        hostEps,
      );
    }
  }

  const slicesByService = new Map<string, Array<ConfigObject<EndpointSlice>>>();
  for (const slice of config.ofKind<EndpointSlice>('EndpointSlice')) {
    const svcName = slice.metadata.labels['kubernetes.io/service-name'];
    if (!svcName) continue;
    const k = `${slice.metadata.namespace}/${svcName}`;
    slicesByService.set(k, [...(slicesByService.get(k) ?? []), slice]);
  }

  for (const svc of config.ofKind<K8sService>('Service')) {
    const spec = svc.spec.spec ?? {};
    const ns = svc.metadata.namespace;
    const hostname = `${svc.metadata.name}.${ns}.svc.${mesh.domainSuffix}`;
    const external = spec.type === 'ExternalName';
    const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({
      name: p.name ?? String(p.port),
      ...(p.name ? {} : { unnamed: true }),
      port: p.port,
      protocol: protocolFromName(p.name, p.appProtocol),
      ...(typeof p.targetPort === 'number' ? { targetPort: p.targetPort } : {}),
      ...(typeof p.targetPort === 'string' ? { targetPortName: p.targetPort } : {}),
    }));
    const vips = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((ip) => ip && ip !== 'None');
    let eps: Endpoint[] = [];
    if (external && spec.externalName) {
      eps = dnsEndpoints(spec.externalName, ports, (p) => p.port);
    } else {
      for (const slice of slicesByService.get(`${ns}/${svc.metadata.name}`) ?? []) {
        for (const e of slice.spec.endpoints ?? []) {
          const pod = e.targetRef?.kind === 'Pod' && e.targetRef.name ? podsByName.get(`${e.targetRef.namespace ?? ns}/${e.targetRef.name}`) : undefined;
          const labels = pod?.metadata.labels ?? {};
          const nodeName = e.nodeName ?? pod?.spec.spec?.nodeName;
          const locality = localityOf(labels, nodeName ? nodes.get(nodeName) : undefined, e.zone);
          for (const sp of ports) {
            const port = slicePortFor(sp, slice);
            if (port === undefined) continue;
            for (const address of e.addresses) {
              eps.push({
                address,
                servicePortName: sp.name,
                port,
                labels,
                locality,
                weight: 1,
                healthy: e.conditions?.ready !== false,
                ...(pod?.spec.spec?.serviceAccountName ? { serviceAccount: pod.spec.spec.serviceAccountName } : {}),
                ...(pod ? { workload: `Pod ${pod.metadata.namespace}/${pod.metadata.name}` } : {}),
              });
            }
          }
        }
      }
      // Istio also routes a Kubernetes Service to WorkloadEntries its selector matches (VMs joining a k8s service).
      if (spec.selector) {
        for (const we of workloadEntries) {
          if (we.metadata.namespace === ns && labelsMatch(spec.selector, { ...we.metadata.labels, ...(we.spec.labels ?? {}) })) {
            eps.push(...workloadEntryEndpoints(we, ports, false));
          }
        }
      }
    }
    add(
      {
        hostname,
        namespace: ns,
        ports,
        addresses: vips,
        // A headless Service (clusterIP None) is reached at its pods' own addresses: Istio's Passthrough resolution.
        resolution: external ? 'DNS' : vips.length === 0 && spec.clusterIP === 'None' ? 'NONE' : 'STATIC',
        location: 'MESH_INTERNAL',
        exportTo: exportToFromAnnotation(svc.metadata.annotations) ?? mesh.defaultServiceExportTo,
        origin: origin(svc),
        ...(spec.selector ? { selector: spec.selector } : {}),
        kubernetes: true,
      },
      eps,
    );
  }

  const byHost = new Map<string, Service[]>();
  for (const s of services) byHost.set(s.hostname, [...(byHost.get(s.hostname) ?? []), s]);
  for (const list of byHost.values()) list.sort((a, b) => (a.origin.creationTimestamp < b.origin.creationTimestamp ? -1 : a.origin.creationTimestamp > b.origin.creationTimestamp ? 1 : 0));
  return { services, byHost, endpoints };
}
