/**
 * An immutable snapshot of everything a push needs: config indexes, the service registry, mesh config. Built once
 * per debounced change; generators read it through lookups that take the proxy's view, so what they read of the
 * proxy is recorded.
 */
import type { DestinationRuleSpec } from '../config/kinds/destination-rule.ts';
import type { SidecarSpec } from '../config/kinds/sidecar.ts';
import type { VirtualServiceSpec } from '../config/kinds/virtual-service.ts';
import type { ConfigObject } from '../config/object.ts';
import type { ConfigSnapshot } from './config-store.ts';
import { compareHostSpecificity, hostMatches, resolveShortName } from './hosts.ts';
import type { MeshConfig } from './mesh.ts';
import { MESH_GATEWAY, resolveGatewayName } from './names.ts';
import type { ProxyView } from './proxy-view.ts';
import { buildRegistry, type Registry } from './service-registry.ts';
import { serviceKey, type Endpoint, type Service } from './service.ts';

export interface IndexedVirtualService {
  object: ConfigObject<VirtualServiceSpec>;
  /** Hosts with short names resolved against the VirtualService's namespace. */
  hosts: string[];
  gateways: string[];
  exportTo: string[];
}

export interface IndexedDestinationRule {
  object: ConfigObject<DestinationRuleSpec>;
  host: string;
  exportTo: string[];
}

export function visibleTo(exportTo: readonly string[], ownerNamespace: string, proxyNamespace: string): boolean {
  for (const e of exportTo) {
    if (e === '*') return true;
    if (e === '.' && ownerNamespace === proxyNamespace) return true;
    if (e === proxyNamespace) return true;
  }
  return false;
}

export class PushContext {
  readonly mesh: MeshConfig;
  readonly config: ConfigSnapshot;
  readonly registry: Registry;
  readonly virtualServices: readonly IndexedVirtualService[];
  readonly destinationRules: readonly IndexedDestinationRule[];
  private readonly sidecars: ReadonlyArray<ConfigObject<SidecarSpec>>;
  /** Lookups by host: exact hosts in a map, wildcard hosts in a (short) list scanned after it. */
  private readonly vsByHost = new HostIndex<IndexedVirtualService>();
  private readonly drByHost = new HostIndex<IndexedDestinationRule>();

  /** JWKS documents the control plane fetched, by URI (RequestAuthentication jwksUri); a snapshot per push. */
  readonly jwks: ReadonlyMap<string, string>;

  constructor(config: ConfigSnapshot, mesh: MeshConfig, registry?: Registry, extras: { jwks?: ReadonlyMap<string, string> } = {}) {
    this.jwks = new Map(extras.jwks ?? []);
    this.mesh = mesh;
    this.config = config;
    this.registry = registry ?? buildRegistry(config, mesh);
    this.virtualServices = config.ofKind<VirtualServiceSpec>('VirtualService').map((vs) => ({
      object: vs,
      hosts: (vs.spec.hosts ?? []).map((h) => resolveShortName(h, vs.metadata.namespace, mesh.domainSuffix)),
      gateways: vs.spec.gateways && vs.spec.gateways.length > 0 ? vs.spec.gateways.map((g) => resolveGatewayName(g, vs.metadata.namespace)) : [MESH_GATEWAY],
      exportTo: vs.spec.exportTo ?? mesh.defaultVirtualServiceExportTo,
    }));
    this.destinationRules = mergeDestinationRules(
      config.ofKind<DestinationRuleSpec>('DestinationRule').map((dr) => ({
        object: dr,
        host: resolveShortName(dr.spec.host, dr.metadata.namespace, mesh.domainSuffix),
        exportTo: dr.spec.exportTo ?? mesh.defaultDestinationRuleExportTo,
      })),
    );
    this.sidecars = config.ofKind<SidecarSpec>('Sidecar');
    for (const vs of this.virtualServices) for (const h of vs.hosts) this.vsByHost.add(h, vs);
    for (const dr of this.destinationRules) this.drByHost.add(dr.host, dr);
  }

  endpoints(service: Service): readonly Endpoint[] {
    return this.registry.endpoints.get(serviceKey(service)) ?? [];
  }

  /** The Sidecar resource that scopes this proxy: its own by selector, else its namespace's default, else the mesh's. */
  sidecarFor(view: ProxyView): ConfigObject<SidecarSpec> | undefined {
    const ns = view.namespace();
    const own = this.sidecars.filter((s) => s.metadata.namespace === ns);
    const selected = own.find((s) => s.spec.workloadSelector?.labels && view.selectedBy(s.spec.workloadSelector.labels));
    if (selected) return selected;
    const nsDefault = own.find((s) => !s.spec.workloadSelector);
    if (nsDefault) return nsDefault;
    return this.sidecars.find((s) => s.metadata.namespace === this.mesh.rootNamespace && !s.spec.workloadSelector);
  }

  /** Is the service inside the proxy's Sidecar egress scope (`ns/host` entries)? No Sidecar: everything visible. */
  private inEgressScope(service: Service, sidecar: ConfigObject<SidecarSpec> | undefined, proxyNs: string): boolean {
    if (!sidecar?.spec.egress || sidecar.spec.egress.length === 0) return true;
    for (const listener of sidecar.spec.egress) {
      for (const entry of listener.hosts) {
        const slash = entry.indexOf('/');
        const ns = slash < 0 ? '*' : entry.slice(0, slash);
        const host = slash < 0 ? entry : entry.slice(slash + 1);
        const nsOk = ns === '*' || (ns === '.' ? service.namespace === proxyNs : ns === service.namespace);
        if (nsOk && (host === '*' || hostMatches(host, service.hostname))) return true;
      }
    }
    return false;
  }

  /**
   * Services this proxy can reach, one per hostname: exported to its namespace and inside its Sidecar's egress.
   * Where several namespaces define a host, the proxy's own namespace wins, then the oldest.
   */
  visibleServices(view: ProxyView): Service[] {
    const ns = view.namespace();
    const sidecar = this.sidecarFor(view);
    const out: Service[] = [];
    for (const [, candidates] of this.registry.byHost) {
      const visible = candidates.filter((s) => visibleTo(s.exportTo, s.namespace, ns) && this.inEgressScope(s, sidecar, ns));
      const pick = visible.find((s) => s.namespace === ns) ?? visible[0];
      if (pick) out.push(pick);
    }
    return out.sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
  }

  /** The visible service for a hostname, or undefined. */
  serviceFor(view: ProxyView, hostname: string): Service | undefined {
    const candidates = this.registry.byHost.get(hostname);
    if (!candidates) return undefined;
    const ns = view.namespace();
    const sidecar = this.sidecarFor(view);
    const visible = candidates.filter((s) => visibleTo(s.exportTo, s.namespace, ns) && this.inEgressScope(s, sidecar, ns));
    return visible.find((s) => s.namespace === ns) ?? visible[0];
  }

  /**
   * Expands the names a client may use for a service to its hostname: `reviews`, `reviews.default`,
   * `reviews.default.svc` (relative to the proxy's namespace for the bare name), or the hostname itself.
   */
  resolveHost(view: ProxyView, name: string): string | undefined {
    if (this.registry.byHost.has(name)) return name;
    const suffix = this.mesh.domainSuffix;
    const parts = name.split('.');
    const candidates =
      parts.length === 1
        ? [`${name}.${view.namespace()}.svc.${suffix}`]
        : parts.length === 2
          ? [`${name}.svc.${suffix}`]
          : parts.length === 3 && parts[2] === 'svc'
            ? [`${name}.${suffix}`]
            : [];
    return candidates.find((c) => this.registry.byHost.has(c));
  }

  /**
   * The VirtualService that routes `hostname` for this proxy (bound to `gateway`, exported to the proxy's
   * namespace): an exact host match beats a wildcard; among equals the oldest wins, as in istiod.
   */
  virtualServiceFor(view: ProxyView, hostname: string, gateway = MESH_GATEWAY): IndexedVirtualService | undefined {
    const ns = view.namespace();
    let best: { vs: IndexedVirtualService; host: string } | undefined;
    for (const [h, vs] of this.vsByHost.matching(hostname)) {
      if (!vs.gateways.includes(gateway)) continue;
      if (!visibleTo(vs.exportTo, vs.object.metadata.namespace, ns)) continue;
      // Candidates come oldest first, so on equal specificity the oldest wins.
      if (!best || compareHostSpecificity(h, best.host) < 0) best = { vs, host: h };
    }
    return best?.vs;
  }

  /**
   * The DestinationRule for a service as seen from this proxy (istiod's lookup order): a workload-selected rule in the
   * proxy's namespace, then the proxy's namespace, the service's namespace, the root namespace, then any exported
   * rule; within a tier the most specific host, then the oldest.
   */
  destinationRuleFor(view: ProxyView, service: Service): IndexedDestinationRule | undefined {
    const ns = view.namespace();
    const matching = [...this.drByHost.matching(service.hostname)]
      .map(([, d]) => d)
      .filter((d) => visibleTo(d.exportTo, d.object.metadata.namespace, ns));
    if (matching.length === 0) return undefined;
    const tier = (d: IndexedDestinationRule): number => {
      const drNs = d.object.metadata.namespace;
      const selector = d.object.spec.workloadSelector?.matchLabels;
      if (selector) return drNs === ns && view.selectedBy(selector) ? 0 : 99;
      if (drNs === ns) return 1;
      if (drNs === service.namespace) return 2;
      if (drNs === this.mesh.rootNamespace) return 3;
      return 4;
    };
    const ranked = matching
      .map((d) => ({ d, t: tier(d) }))
      .filter((x) => x.t < 99)
      .sort((a, b) => a.t - b.t || compareHostSpecificity(a.d.host, b.d.host));
    return ranked[0]?.d;
  }

  /**
   * The delegate VirtualService `namespace/name` for a root route (istiod mergeVirtualServicesIfNeeded): it must have
   * no hosts and be exported to the root VirtualService's namespace (its own exportTo, else the mesh default). Not a
   * proxy read: the visibility asked is the root's, not the proxy's.
   */
  delegateVirtualService(name: string, namespace: string, rootNamespace: string): ConfigObject<VirtualServiceSpec> | undefined {
    const vs = this.config.get<VirtualServiceSpec>('VirtualService', namespace, name);
    if (!vs || (vs.spec.hosts?.length ?? 0) > 0) return undefined;
    const exportTo = vs.spec.exportTo?.length ? vs.spec.exportTo : this.mesh.defaultVirtualServiceExportTo;
    return visibleTo(exportTo, namespace, rootNamespace) ? vs : undefined;
  }
}

/**
 * Several DestinationRules for one host in one namespace (without workload selectors) act as one, as istiod merges
 * them (MergeDestinationRule): the oldest keeps its traffic policy (a later one fills it only when it has none), and
 * subsets are appended unless a subset of that name already exists. exportTo must agree, else they stay apart.
 */
function mergeDestinationRules(rules: IndexedDestinationRule[]): IndexedDestinationRule[] {
  const out: IndexedDestinationRule[] = [];
  const byKey = new Map<string, IndexedDestinationRule>();
  const sorted = [...rules].sort((a, b) => a.object.metadata.creationTimestamp.localeCompare(b.object.metadata.creationTimestamp));
  for (const dr of sorted) {
    if (dr.object.spec.workloadSelector) {
      out.push(dr);
      continue;
    }
    const key = `${dr.object.metadata.namespace}\0${dr.host}\0${[...dr.exportTo].sort().join(',')}`;
    const first = byKey.get(key);
    if (!first) {
      byKey.set(key, dr);
      out.push(dr);
      continue;
    }
    const spec = { ...first.object.spec };
    const names = new Set((spec.subsets ?? []).map((x) => x.name));
    const extra = (dr.object.spec.subsets ?? []).filter((x) => !names.has(x.name));
    if (extra.length > 0) spec.subsets = [...(spec.subsets ?? []), ...extra];
    if (!spec.trafficPolicy && dr.object.spec.trafficPolicy) spec.trafficPolicy = dr.object.spec.trafficPolicy;
    first.object = { ...first.object, spec };
  }
  return out;
}

/**
 * Objects indexed by the host they name. `matching(host)` yields the objects whose host pattern matches a concrete
 * host, in insertion (age) order: exact names first, then wildcard patterns.
 */
class HostIndex<T> {
  private readonly exact = new Map<string, Array<[string, T]>>();
  private readonly wildcard: Array<[string, T]> = [];

  add(host: string, value: T): void {
    if (host.startsWith('*')) this.wildcard.push([host, value]);
    else {
      const list = this.exact.get(host);
      if (list) list.push([host, value]);
      else this.exact.set(host, [[host, value]]);
    }
  }

  *matching(host: string): IterableIterator<[string, T]> {
    yield* this.exact.get(host) ?? [];
    for (const entry of this.wildcard) if (hostMatches(entry[0], host)) yield entry;
  }
}
