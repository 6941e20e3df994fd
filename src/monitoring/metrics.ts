/**
 * Control-plane metrics under Istio's names (ecosystem.md §3), so existing dashboards and alerts keep working.
 * Names are exactly Istio's: no `_total` added to counters that Istio exports without one.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
  info: Gauge;
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
    info: new Gauge({ name: 'pilot_info', help: 'Pilot version and build information.', labelNames: ['version'], ...r }),
  };
  m.info.set({ version }, 1);
  return m;
}
