/**
 * The user's reference YAML (../shared/fixtures/seeds): every file of the core kinds (VirtualService,
 * DestinationRule; Gateway for an ingress gateway) is validated and translated for a proxyless gRPC proxy, or refused, with the reason
 * stated in the table. The services the seeds route to are supplied as Kubernetes Service + EndpointSlice + Pod YAML,
 * as a cluster would have them. Other Istio kinds are validated in test/unit/kinds.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { grpcProxy, routerProxy, translate, type Translation } from '../support/translate.ts';

const SEEDS = path.resolve(import.meta.dirname, '../../../shared/fixtures/seeds');
const seed = (prefix: string) => {
  const f = fs.readdirSync(SEEDS).find((n) => n.startsWith(prefix));
  if (!f) throw new Error(`seed ${prefix} missing`);
  return fs.readFileSync(path.join(SEEDS, f), 'utf8');
};

/** A Kubernetes service `name.ns` on port 8080 with one pod per label set (pod labels may carry istio-locality). */
function k8sService(name: string, ns: string, pods: Array<Record<string, string>>): string {
  const docs = [
    `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterIP: 10.96.0.${pods.length + 10}
  selector: { app: ${name} }
  ports: [{ name: grpc, port: 8080, targetPort: 8080 }]`,
    `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-abc, namespace: ${ns}, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: grpc, port: 8080 }]
endpoints:
${pods.map((_, i) => `  - addresses: [10.1.0.${i + 1}]\n    conditions: { ready: true }\n    targetRef: { kind: Pod, name: ${name}-${i}, namespace: ${ns} }`).join('\n')}`,
    ...pods.map(
      (labels, i) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}-${i}, namespace: ${ns}, labels: ${JSON.stringify({ app: name, ...labels })} }
status: { podIP: 10.1.0.${i + 1}, phase: Running }`,
    ),
  ];
  return docs.join('\n---\n');
}

const versions = (...v: string[]) => v.map((version) => ({ version }));
const route = (t: Translation, i = 0) => t.rds[0]?.virtual_hosts[0]?.routes[i];
const cluster = (t: Translation, name: string) => t.cds.find((c) => c.name === name);

interface Row {
  seed: string;
  what: string;
  services: string;
  namespace: string;
  extra?: string[];
  check(t: Translation): void;
}

const orderApi = k8sService('order-api', 'production', versions('v1', 'v2'));
const myapp = k8sService('myapp', 'production', versions('v1', 'v2'));
const reviews = k8sService('reviews', 'default', versions('v1', 'v2'));
const product = k8sService('product-service', 'ecommerce', [
  { version: 'v1', 'istio-locality': 'us-west-1.us-west-1a' },
  { version: 'v2', 'istio-locality': 'us-east-1.us-east-1a' },
  { version: 'v1-mobile', 'istio-locality': 'us-west-1.us-west-1b' },
]);
const payment = k8sService('payment-service', 'production', versions('v1'));
const database = k8sService('database-service', 'default', versions('v1'));

const ROWS: Row[] = [
  {
    seed: '001-',
    what: 'header match → v2; 90/10 split; timeout 30s; retries 3 with HTTP retryOn tokens (ignored by gRPC, accepted)',
    services: orderApi,
    namespace: 'production',
    extra: ['002-'],
    check(t) {
      const [canary, split] = [route(t, 0), route(t, 1)];
      expect(canary.match.headers).toEqual([{ name: 'x-canary', string_match: { exact: 'true' } }]);
      expect(canary.route.cluster).toBe('outbound|8080|v2|order-api.production.svc.cluster.local');
      expect(split.route.weighted_clusters.clusters.map((c: any) => [c.name.split('|')[2], c.weight])).toEqual([['v1', 90], ['v2', 10]]);
      expect(split.route.max_stream_duration.max_stream_duration).toBe('30s');
      expect(split.route.retry_policy).toMatchObject({ num_retries: 3, retry_on: '5xx,gateway-error,reset,connect-failure,retriable-4xx', per_try_timeout: '10s' });
    },
  },
  {
    seed: '002-',
    what: 'consistentHash header → RING_HASH + hash policy; http2MaxRequests → max_requests; outlierDetection; subsets v1/v2',
    services: orderApi,
    namespace: 'production',
    check(t) {
      const c = cluster(t, 'outbound|8080||order-api.production.svc.cluster.local')!;
      expect(c.lb_policy).toBe('RING_HASH');
      expect(c.circuit_breakers.thresholds[0].max_requests).toBe(1000);
      expect(c.outlier_detection).toMatchObject({ consecutive_5xx: 5, interval: '30s', base_ejection_time: '30s', max_ejection_percent: 50 });
      expect(cluster(t, 'outbound|8080|v1|order-api.production.svc.cluster.local')!.circuit_breakers.thresholds[0].max_requests).toBe(1000);
      expect(t.eds.find((e) => e.cluster_name.includes('|v2|'))!.endpoints[0].lb_endpoints).toHaveLength(1);
      expect(route(t).route.hash_policy).toEqual([{ header: { header_name: 'x-user-id' } }]);
    },
  },
  {
    seed: '009-',
    what: 'fault abort 50% with httpStatus 503 → per-route fault config (MILLION denominator)',
    services: payment,
    namespace: 'production',
    check(t) {
      const f = route(t).typed_per_filter_config['envoy.filters.http.fault'];
      expect(f.abort).toEqual({ http_status: 503, percentage: { numerator: 500000, denominator: 'MILLION' } });
    },
  },
  {
    seed: '010-',
    what: 'no namespace → default; fault delay 10% fixedDelay 2s',
    services: database,
    namespace: 'default',
    check(t) {
      const f = route(t).typed_per_filter_config['envoy.filters.http.fault'];
      expect(f.delay).toEqual({ fixed_delay: '2s', percentage: { numerator: 100000, denominator: 'MILLION' } });
    },
  },
  {
    seed: '013-',
    what: 'header → v2; uri prefix /api → 90/10; default v1 with timeout and retries (503 → retriable_status_codes)',
    services: myapp,
    namespace: 'production',
    extra: ['014-'],
    check(t) {
      expect(route(t, 1).match.prefix).toBe('/api');
      const def = route(t, 2);
      expect(def.route.cluster).toBe('outbound|8080|v1|myapp.production.svc.cluster.local');
      expect(def.route.retry_policy.retriable_status_codes).toEqual([503]);
      expect(def.route.retry_policy.retry_on).toBe('connect-failure,refused-stream,retriable-status-codes');
    },
  },
  {
    seed: '014-',
    what: 'LEAST_REQUEST is not a gRPC policy → round robin with a note (istiod would send LEAST_REQUEST, which grpc-js NACKs)',
    services: myapp,
    namespace: 'production',
    check(t) {
      expect(cluster(t, 'outbound|8080||myapp.production.svc.cluster.local')!.lb_policy).toBeUndefined();
      expect(t.notes.some((n) => n.includes('LEAST_REQUEST is not supported by proxyless gRPC'))).toBe(true);
    },
  },
  {
    seed: '016-',
    what: 'mirror → left out for gRPC with a note; the route itself is kept',
    services: myapp,
    namespace: 'production',
    extra: ['014-'],
    check(t) {
      expect(route(t).route.cluster).toBe('outbound|8080|v1|myapp.production.svc.cluster.local');
      expect(route(t).route.request_mirror_policies).toBeUndefined();
      expect(t.notes.some((n) => n.includes('mirror is not supported by proxyless gRPC clients'))).toBe(true);
    },
  },
  {
    seed: '021-',
    what: 'circuit breaker: http2MaxRequests 100 → max_requests; consecutive5xxErrors 3 → outlier detection',
    services: myapp,
    namespace: 'production',
    check(t) {
      const c = cluster(t, 'outbound|8080||myapp.production.svc.cluster.local')!;
      expect(c.circuit_breakers.thresholds[0].max_requests).toBe(100);
      expect(c.outlier_detection.consecutive_5xx).toBe(3);
      expect(c.outlier_detection.failure_percentage_request_volume).toBe(3);
    },
  },
  {
    seed: '022-',
    what: 'header-matched fault: delay 50% 5s + abort 10% 503; catch-all route after it',
    services: myapp,
    namespace: 'production',
    check(t) {
      const f = route(t).typed_per_filter_config['envoy.filters.http.fault'];
      expect(f.delay.percentage.numerator).toBe(500000);
      expect(f.abort.percentage.numerator).toBe(100000);
      expect(route(t, 1).typed_per_filter_config?.['envoy.filters.http.fault']).toBeUndefined();
    },
  },
  {
    seed: '029-',
    what: 'v1alpha3, no namespace: header end-user: jason → v2, else v1',
    services: reviews,
    namespace: 'default',
    extra: ['030-'],
    check(t) {
      expect(route(t).match.headers[0]).toEqual({ name: 'end-user', string_match: { exact: 'jason' } });
      expect(route(t).route.cluster).toBe('outbound|8080|v2|reviews.default.svc.cluster.local');
      expect(route(t, 1).route.cluster).toBe('outbound|8080|v1|reviews.default.svc.cluster.local');
    },
  },
  {
    seed: '030-',
    what: 'RANDOM is not a gRPC policy → round robin with a note; subsets v1/v2',
    services: reviews,
    namespace: 'default',
    check(t) {
      expect(cluster(t, 'outbound|8080|v2|reviews.default.svc.cluster.local')).toBeDefined();
      expect(t.notes.some((n) => n.includes('RANDOM is not supported by proxyless gRPC'))).toBe(true);
    },
  },
  {
    seed: '032-',
    what: 'weighted split 80/20 between subsets',
    services: reviews,
    namespace: 'default',
    extra: ['030-'],
    check(t) {
      expect(route(t).route.weighted_clusters.clusters.map((c: any) => c.weight)).toEqual([80, 20]);
    },
  },
  {
    seed: '037-',
    what: 'outlierDetection only: 1 error, interval 1s, base ejection 3m',
    services: reviews,
    namespace: 'default',
    check(t) {
      expect(cluster(t, 'outbound|8080||reviews.default.svc.cluster.local')!.outlier_detection).toMatchObject({ consecutive_5xx: 1, interval: '1s', base_ejection_time: '180s' });
    },
  },
  {
    seed: '038-',
    what: 'delay 10% of 5s on the route to subset v1',
    services: reviews,
    namespace: 'default',
    extra: ['030-'],
    check(t) {
      expect(route(t).typed_per_filter_config['envoy.filters.http.fault'].delay).toEqual({ fixed_delay: '5s', percentage: { numerator: 100000, denominator: 'MILLION' } });
    },
  },
  {
    seed: '045-',
    what: 'canary header, regex user-agent → mobile-optimized, 90/10, retryOn with gRPC codes, timeout 10s',
    services: product,
    namespace: 'ecommerce',
    extra: ['046-'],
    check(t) {
      expect(route(t, 1).match.headers[0]).toEqual({ name: 'user-agent', string_match: { safe_regex: { regex: '.*Mobile.*' } } });
      expect(route(t, 1).route.cluster).toBe('outbound|8080|mobile-optimized|product-service.ecommerce.svc.cluster.local');
      expect(route(t, 2).route.retry_policy.retry_on).toBe('connect-failure,refused-stream,unavailable,cancelled,retriable-4xx');
      expect(route(t, 2).route.max_stream_duration.max_stream_duration).toBe('10s');
    },
  },
  {
    seed: '046-',
    what: 'locality failover us-west-1 → us-east-1 (with outlier detection) → EDS priorities; per-subset max_requests',
    services: product,
    namespace: 'ecommerce',
    check(t) {
      const cla = t.eds.find((e) => e.cluster_name === 'outbound|8080||product-service.ecommerce.svc.cluster.local')!;
      const prio = Object.fromEntries(cla.endpoints.map((g: any) => [`${g.locality.region}/${g.locality.zone}`, g.priority ?? 0]));
      expect(prio).toEqual({ 'us-west-1/us-west-1a': 0, 'us-west-1/us-west-1b': 1, 'us-east-1/us-east-1a': 2 });
      expect(cluster(t, 'outbound|8080|canary|product-service.ecommerce.svc.cluster.local')!.circuit_breakers.thresholds[0].max_requests).toBe(100);
    },
  },
];

/**
 * Gateways configure gateway (router) proxies: each seed alone on an ingress gateway pod (no gateway Service, so the
 * server ports are the listen ports). With no VirtualService bound, HTTPS answers 404 from `blackhole:443` until one
 * is; httpsRedirect hosts redirect.
 */
const GATEWAYS: Array<{ seed: string; lds: string[]; rds: Record<string, string[]> }> = [
  { seed: '012-', lds: ['0.0.0.0_443', '0.0.0.0_80'], rds: { 'http.80': ['api.example.com:80'], 'https.443.https.order-api-gateway.production': ['blackhole:443'] } },
  { seed: '015-', lds: ['0.0.0.0_443', '0.0.0.0_80'], rds: { 'http.80': ['myapp.example.com:80'], 'https.443.https.myapp-gateway.production': ['blackhole:443'] } },
  { seed: '031-', lds: ['0.0.0.0_80'], rds: { 'http.80': ['blackhole:80'] } },
];

describe('seed YAML: validated and translated', () => {
  for (const row of ROWS) {
    it(`${row.seed} ${row.what}`, () => {
      const yaml = [seed(row.seed), ...(row.extra ?? []).map(seed), row.services].join('\n---\n');
      const proxy = grpcProxy(row.namespace);
      if (row.namespace === 'ecommerce') Object.assign(proxy, { locality: { region: 'us-west-1', zone: 'us-west-1a' } });
      const t = translate(yaml, proxy);
      expect(t.refused).toEqual([]);
      expect(t.generationErrors).toBe(0);
      expect(t.lds.length).toBeGreaterThan(0);
      row.check(t);
    });
  }
  for (const g of GATEWAYS) {
    it(`${g} Gateway: listeners ${g.lds.join(', ')} on an ingress gateway`, () => {
      const t = translate(seed(g.seed), routerProxy());
      expect(t.refused).toEqual([]);
      expect(t.generationErrors).toBe(0);
      expect(t.lds.map((l) => l.name).sort()).toEqual(g.lds);
      expect(Object.fromEntries(t.rds.map((r) => [r.name, r.virtual_hosts.map((v: any) => v.name)]))).toEqual(g.rds);
    });
  }
  it('every core-kind seed is covered by this table', () => {
    const covered = new Set([...ROWS.map((r) => r.seed), ...GATEWAYS.map((g) => g.seed)]);
    const core = fs.readdirSync(SEEDS).filter((f) => /-(virtualservice|destinationrule|gateway)-/.test(f));
    expect(core.filter((f) => ![...covered].some((p) => f.startsWith(p)))).toEqual([]);
  });
});
