/**
 * Control-plane metrics under Istio's names (ecosystem.md §3), so existing dashboards and alerts keep working.
 * Names are exactly Istio's: no `_total` added to counters that Istio exports without one.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DestinationRuleSpec } from '../config/kinds/destination-rule.ts';
import { resolveShortName } from '../model/hosts.ts';
import type { PushContext } from '../model/push-context.ts';
import { serviceKey } from '../model/service.ts';
import { shortTypeName } from '../proto/types.ts';
import type { ResourceProvider } from '../xds/protocol/provider.ts';
import type { Pushable } from '../xds/push/push-queue.ts';

export interface Metrics {
  registry: Registry;
  xdsClients: Gauge;
  xdsPushes: Counter;
  xdsRejects: Counter;
  expiredNonce: Counter;
  internalErrors: Counter;
  configSize: Histogram;
  convergence: Histogram;
  pushTime: Histogram;
  pushTriggers: Counter;
  inboundUpdates: Counter;
  configRejected: Counter;
  pushContextInit: Histogram;
  debounceTime: Histogram;
  services: Gauge;
  virtualServices: Gauge;
  destinationRuleSubsets: Gauge;
  edsNoInstances: Gauge;
  proxyQueueTime: Histogram;
  uptime: Gauge;
  startupDuration: Gauge;
  info: Gauge;
  streamsAdmitted: Counter;
  streamsThrottled: Counter;
  streamsAwaitingAdmission: Gauge;
  admissionWait: Histogram;
}

export function createMetrics(version: string): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = { registers: [registry] };
  const m: Metrics = {
    registry,
    xdsClients: new Gauge({ name: 'pilot_xds', help: 'Number of endpoints connected to this pilot using XDS.', labelNames: ['version'], ...r }),
    xdsPushes: new Counter({ name: 'pilot_xds_pushes', help: 'Pilot build and send errors for lds, rds, cds and eds.', labelNames: ['type'], ...r }),
    xdsRejects: new Counter({ name: 'pilot_total_xds_rejects', help: 'Total number of XDS responses from pilot rejected by proxy.', labelNames: ['type'], ...r }),
    expiredNonce: new Counter({ name: 'pilot_xds_expired_nonce', help: 'Total number of XDS requests with an expired nonce.', labelNames: ['type'], ...r }),
    internalErrors: new Counter({ name: 'pilot_total_xds_internal_errors', help: 'Total number of internal XDS errors in pilot.', ...r }),
    configSize: new Histogram({
      name: 'pilot_xds_config_size_bytes',
      help: 'Distribution of configuration sizes pushed to clients',
      labelNames: ['type'],
      buckets: [1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000],
      ...r,
    }),
    convergence: new Histogram({
      name: 'pilot_proxy_convergence_time',
      help: 'Delay in seconds between config change and a proxy receiving all required configuration.',
      buckets: [0.1, 0.5, 1, 3, 5, 10, 20, 30],
      ...r,
    }),
    pushTime: new Histogram({
      name: 'pilot_xds_push_time',
      help: 'Total time in seconds Pilot takes to push lds, rds, cds and eds.',
      labelNames: ['type'],
      buckets: [0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 30],
      ...r,
    }),
    pushTriggers: new Counter({ name: 'pilot_push_triggers', help: 'Total number of times a push was triggered, labeled by reason for the push.', labelNames: ['type'], ...r }),
    inboundUpdates: new Counter({ name: 'pilot_inbound_updates', help: 'Total number of updates received by pilot.', labelNames: ['type'], ...r }),
    configRejected: new Counter({ name: 'mizzen_config_rejected', help: 'Config objects refused by validation; the last good version keeps serving.', labelNames: ['kind'], ...r }),
    pushContextInit: new Histogram({ name: 'pilot_pushcontext_init_seconds', help: 'Total time in seconds Pilot takes to init pushContext.', ...r }),
    debounceTime: new Histogram({ name: 'pilot_debounce_time', help: 'Delay in seconds between the first config enters debouncing and the merged push request is pushed into the push queue.', buckets: [0.01, 0.1, 1, 3, 5, 10, 20, 30], ...r }),
    services: new Gauge({ name: 'pilot_services', help: 'Total services known to pilot.', ...r }),
    virtualServices: new Gauge({ name: 'pilot_virt_services', help: 'Total virtual services known to pilot.', ...r }),
    destinationRuleSubsets: new Gauge({ name: 'pilot_destrule_subsets', help: 'Duplicate subsets across destination rules for same host', ...r }),
    edsNoInstances: new Gauge({ name: 'pilot_eds_no_instances', help: 'Number of clusters without instances.', ...r }),
    proxyQueueTime: new Histogram({
      name: 'pilot_proxy_queue_time',
      help: 'Time in seconds, a proxy is in the push queue before being dequeued.',
      buckets: [0.1, 0.5, 1, 3, 5, 10, 20, 30],
      ...r,
    }),
    uptime: new Gauge({
      name: 'istiod_uptime_seconds',
      help: 'Current istiod server uptime in seconds',
      ...r,
      collect() {
        this.set(process.uptime());
      },
    }),
    startupDuration: new Gauge({ name: 'startup_duration_seconds', help: 'The time from the process starting to being marked ready.', ...r }),
    info: new Gauge({ name: 'pilot_info', help: 'Pilot version and build information.', labelNames: ['version'], ...r }),
    // istiod exports nothing for its request limiter; these are ours (a storm's shape is read from them).
    streamsAdmitted: new Counter({ name: 'mizzen_xds_streams_admitted', help: 'New xDS streams admitted by the new-stream rate limit (all streams when it is off).', ...r }),
    streamsThrottled: new Counter({ name: 'mizzen_xds_streams_throttled', help: 'New xDS streams refused with RESOURCE_EXHAUSTED: their wait for admission would have been too long.', ...r }),
    streamsAwaitingAdmission: new Gauge({ name: 'mizzen_xds_streams_awaiting_admission', help: 'New xDS streams waiting for the new-stream rate limit; their requests are queued.', ...r }),
    admissionWait: new Histogram({ name: 'mizzen_xds_stream_admission_wait_seconds', help: 'How long new xDS streams waited for admission.', buckets: [0.01, 0.1, 0.25, 0.5, 1, 2], ...r }),
  };
  m.info.set({ version }, 1);
  return m;
}

/** The config-health gauges istiod sets per push context: services, virtual services, duplicate subsets, empty EDS clusters. */
export function recordPushContext(m: Metrics, push: PushContext): void {
  m.services.set(push.registry.services.length);
  m.virtualServices.set(push.virtualServices.length);
  m.destinationRuleSubsets.set(duplicateSubsetHosts(push));
  m.edsNoInstances.set(clustersWithoutInstances(push));
}

/**
 * Hosts where DestinationRules merged into one (same namespace, host and exportTo, no workload selector, as
 * istiod's MergeDestinationRule) define a subset of the same name more than once: the later subset is ignored.
 */
export function duplicateSubsetHosts(push: PushContext): number {
  const seen = new Map<string, Set<string>>();
  const hosts = new Set<string>();
  for (const dr of push.config.ofKind<DestinationRuleSpec>('DestinationRule')) {
    if (dr.spec.workloadSelector) continue;
    const host = resolveShortName(dr.spec.host, dr.metadata.namespace, push.mesh.domainSuffix);
    const exportTo = [...(dr.spec.exportTo ?? push.mesh.defaultDestinationRuleExportTo)].sort().join(',');
    const key = `${dr.metadata.namespace}\0${host}\0${exportTo}`;
    let names = seen.get(key);
    if (!names) seen.set(key, (names = new Set()));
    for (const s of dr.spec.subsets ?? []) {
      if (names.has(s.name)) hosts.add(host);
      names.add(s.name);
    }
  }
  return hosts.size;
}

/** Outbound EDS clusters (`outbound|port||host` of a STATIC-resolution service) with no endpoint for their port. */
export function clustersWithoutInstances(push: PushContext): number {
  let n = 0;
  for (const svc of push.registry.services) {
    if (svc.resolution !== 'STATIC') continue;
    const eps = push.registry.endpoints.get(serviceKey(svc)) ?? [];
    for (const port of svc.ports) if (!eps.some((e) => e.servicePortName === port.name)) n++;
  }
  return n;
}

/**
 * pilot_xds_push_time: the provider wrapped so each generation of one type for one stream (a push or a request's
 * answer) is timed, labelled by type. The response write is asynchronous in mizzen and not part of it.
 */
export function timeGeneration<P>(provider: ResourceProvider<P>, pushTime: Histogram): ResourceProvider<P> {
  return {
    connect: (node, peer, authenticated) => provider.connect(node, peer, authenticated),
    disconnect: (proxy) => provider.disconnect(proxy),
    supports: (typeUrl) => provider.supports(typeUrl),
    resources: (proxy, sub, only) => {
      const t0 = performance.now();
      try {
        return provider.resources(proxy, sub, only);
      } finally {
        pushTime.observe({ type: shortTypeName(sub.typeUrl) }, (performance.now() - t0) / 1000);
      }
    },
  };
}

/**
 * pilot_proxy_queue_time: connections handed to the PushQueue through stable per-connection wrappers (so the queue
 * still merges a connection queued twice), timing from the first enqueue until the queue hands it its push.
 */
export function queueTimer<C extends Pushable>(queueTime: Histogram, now: () => number = () => performance.now()): (connections: Iterable<C>) => Pushable[] {
  const wrappers = new WeakMap<C, Pushable>();
  const queuedAt = new WeakMap<C, number>();
  return (connections) => {
    const t = now();
    const out: Pushable[] = [];
    for (const c of connections) {
      if (!queuedAt.has(c)) queuedAt.set(c, t);
      let w = wrappers.get(c);
      if (!w) {
        w = {
          get closed() {
            return c.closed;
          },
          push(req) {
            const at = queuedAt.get(c);
            queuedAt.delete(c);
            if (at !== undefined) queueTime.observe((now() - at) / 1000);
            c.push(req);
          },
        };
        wrappers.set(c, w);
      }
      out.push(w);
    }
    return out;
  };
}
