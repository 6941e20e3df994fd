import { readFileSync } from 'node:fs';
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createCaMetrics } from '../../src/ca/metrics.ts';
import type { ConfigObject } from '../../src/config/object.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { DEFAULT_MESH } from '../../src/model/mesh.ts';
import { PushContext } from '../../src/model/push-context.ts';
import { clustersWithoutInstances, createMetrics, duplicateSubsetHosts, queueTimer, recordPushContext, timeGeneration } from '../../src/monitoring/metrics.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import type { PushRequest, ResourceProvider } from '../../src/xds/protocol/provider.ts';
import { PushQueue } from '../../src/xds/push/push-queue.ts';
import { injectionMetrics } from '../../src/webhook/server.ts';
import { validationMetrics } from '../../src/webhook/validate.ts';

const root = new URL('../../', import.meta.url);
const dashboard = JSON.parse(readFileSync(new URL('manifests/grafana/mizzen-dashboard.json', root), 'utf8')) as {
  schemaVersion: number;
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
  panels: Array<{ type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string }> }>;
};
const docs = readFileSync(new URL('docs/metrics.md', root), 'utf8');

/** Every metric mizzen registers: the monitoring registry plus the CA's and the injector's on it, as `serve` does. */
function allMetrics(): { registry: Registry; names: Set<string> } {
  const m = createMetrics('test');
  createCaMetrics(m.registry);
  injectionMetrics(m.registry);
  validationMetrics(m.registry);
  return { registry: m.registry, names: new Set(m.registry.getMetricsAsArray().map((x) => x.name)) };
}

const PROMQL_WORDS = new Set(['sum', 'by', 'without', 'rate', 'increase', 'irate', 'histogram_quantile', 'max', 'min', 'avg', 'count', 'time', 'le', 'on', 'ignoring', 'and', 'or', 'unless', 'offset', 'bool']);

/** Metric names in a PromQL expression: identifiers not inside label matchers, [ranges], strings, or followed by `(`. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/"[^"]*"/g, ' ')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ');
  const out: string[] = [];
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\(?))/g)) {
    const name = m[0];
    if (m[1] === '(' || PROMQL_WORDS.has(name) || /^\d/.test(name)) continue;
    out.push(name);
  }
  return out;
}

/** A histogram's series (`x_bucket`, `x_sum`, `x_count`) belong to the registered metric `x`. */
function baseName(series: string, registered: Set<string>): string {
  if (registered.has(series)) return series;
  const base = series.replace(/_(bucket|sum|count)$/, '');
  return base;
}

describe('metricNames', () => {
  it('extracts metric names from PromQL and skips functions, labels and ranges', () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le, type) (rate(pilot_xds_push_time_bucket{job=~"$job"}[$__rate_interval])))')).toEqual(['pilot_xds_push_time_bucket']);
    expect(metricNames('min(citadel_server_root_cert_expiry_timestamp{job="x"}) - time()')).toEqual(['citadel_server_root_cert_expiry_timestamp']);
    expect(metricNames('a_total / on (instance) b')).toEqual(['a_total', 'b']);
  });
});

describe('Grafana dashboard', () => {
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const queried = new Set(exprs.flatMap(metricNames));

  it('is schemaVersion 39+ with a ${datasource} Prometheus variable used by every panel', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const ds = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) expect(p.datasource?.uid, p.title).toBe('${datasource}');
  });

  it('queries only metrics mizzen registers', () => {
    const { registry, names } = allMetrics();
    expect(queried.size).toBeGreaterThan(30);
    for (const series of queried) {
      const name = baseName(series, names);
      expect(names, `${series} (panel expr) is not registered`).toContain(name);
      if (series !== name) expect(registry.getSingleMetric(name)?.constructor.name, series).toBe('Histogram');
    }
  });

  it('has the panels the issue asks for', () => {
    for (const n of [
      'pilot_xds',
      'pilot_xds_pushes',
      'pilot_xds_push_time_bucket',
      'pilot_proxy_convergence_time_bucket',
      'pilot_total_xds_rejects',
      'pilot_xds_expired_nonce',
      'pilot_total_xds_internal_errors',
      'mizzen_config_rejected',
      'pilot_push_triggers',
      'citadel_server_csr_count',
      'citadel_server_success_cert_issuance_count',
      'citadel_server_csr_sign_err_count',
      'sidecar_injection_requests_total',
      'sidecar_injection_success_total',
      'sidecar_injection_skip_total',
      'sidecar_injection_failure_total',
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
    ]) expect(queried, n).toContain(n);
  });
});

describe('docs/metrics.md', () => {
  it('lists every metric mizzen registers', () => {
    const { names } = allMetrics();
    for (const n of names) {
      // prom-client's default process_*/nodejs_* collectors are documented as a group.
      if (/^(process|nodejs)_/.test(n)) continue;
      expect(docs, n).toContain(`\`${n}\``);
    }
    expect(docs).toContain('process_');
    expect(docs).toContain('nodejs_');
  });
});

function obj(kind: string, ns: string, name: string, spec: unknown, ts = '2024-01-01T00:00:00Z'): ConfigObject {
  return { apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace: ns, creationTimestamp: ts }, spec } as unknown as ConfigObject;
}

function pushOf(objects: ConfigObject[]): PushContext {
  const store = new ConfigStore();
  for (const o of objects) store.upsert(o);
  return new PushContext(store.snapshot(), DEFAULT_MESH);
}

describe('push-context gauges', () => {
  it('pilot_destrule_subsets counts hosts whose merged DestinationRules repeat a subset name', () => {
    const push = pushOf([
      obj('DestinationRule', 'default', 'a', { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] }),
      obj('DestinationRule', 'default', 'b', { host: 'reviews.default.svc.cluster.local', subsets: [{ name: 'v1', labels: { version: 'v9' } }, { name: 'v2', labels: { version: 'v2' } }] }, '2024-01-02T00:00:00Z'),
      obj('DestinationRule', 'default', 'c', { host: 'ratings', subsets: [{ name: 'v1', labels: { version: 'v1' } }] }),
      obj('DestinationRule', 'other', 'd', { host: 'ratings.default.svc.cluster.local', subsets: [{ name: 'v1', labels: { version: 'v1' } }] }),
    ]);
    expect(duplicateSubsetHosts(push)).toBe(1);
  });

  it('pilot_eds_no_instances counts STATIC service ports without endpoints; recordPushContext sets the gauges', async () => {
    const push = pushOf([
      obj('ServiceEntry', 'default', 'empty', { hosts: ['empty.example.com'], addresses: ['10.0.0.1'], resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 81, name: 'tcp', protocol: 'TCP' }] }),
      obj('ServiceEntry', 'default', 'full', { hosts: ['full.example.com'], addresses: ['10.0.0.2'], resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '1.1.1.1' }] }),
      obj('ServiceEntry', 'default', 'dns', { hosts: ['dns.example.com'], resolution: 'DNS', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }] }),
    ]);
    expect(clustersWithoutInstances(push)).toBe(2);
    const m = createMetrics('test');
    recordPushContext(m, push);
    expect((await m.edsNoInstances.get()).values[0]?.value).toBe(2);
    expect((await m.services.get()).values[0]?.value).toBe(3);
  });
});

describe('timing wrappers', () => {
  it('pilot_xds_push_time observes each generation by type', async () => {
    const h = new Histogram({ name: 'push_time', help: 'x', labelNames: ['type'], registers: [] });
    const provider: ResourceProvider<number> = { connect: () => 1, disconnect: () => {}, supports: () => true, resources: () => ({ resources: new Map() }) };
    const timed = timeGeneration(provider, h);
    timed.resources(1, { typeUrl: TypeUrl.Cluster, wildcard: true, names: new Set(), key: '*' });
    timed.resources(1, { typeUrl: TypeUrl.Listener, wildcard: true, names: new Set(), key: '*' });
    timed.resources(1, { typeUrl: TypeUrl.Listener, wildcard: true, names: new Set(), key: '*' });
    const counts = (await h.get()).values.filter((v) => v.metricName === 'push_time_count').map((v) => [v.labels.type, v.value]);
    expect(counts).toEqual(expect.arrayContaining([['cds', 1], ['lds', 2]]));
  });

  it('pilot_proxy_queue_time: stable wrappers, timed from the first enqueue to the dequeue, once per enqueue', async () => {
    const h = new Histogram({ name: 'queue_time', help: 'x', buckets: [1, 5], registers: [] });
    let t = 0;
    const wrap = queueTimer(h, () => t);
    const pushed: PushRequest[] = [];
    const conn = { closed: false, push: (r: PushRequest) => pushed.push(r) };
    const [w1] = wrap([conn]);
    t = 2000;
    const [w2] = wrap([conn]);
    // The same wrapper each time, so the PushQueue still merges a connection queued twice.
    expect(w2).toBe(w1);
    t = 3000;
    w1!.push({ version: '2', start: 0, full: true });
    w1!.push({ version: '3', start: 0, full: true }); // not enqueued again: no observation
    expect(pushed.map((r) => r.version)).toEqual(['2', '3']);
    let v = (await h.get()).values;
    expect(v.find((x) => x.metricName === 'queue_time_count')?.value).toBe(1);
    expect(v.find((x) => x.metricName === 'queue_time_sum')?.value).toBe(3);
    // Through the real queue.
    await new PushQueue().enqueue(wrap([conn]), { version: '4', start: 0, full: true });
    v = (await h.get()).values;
    expect(v.find((x) => x.metricName === 'queue_time_count')?.value).toBe(2);
    expect(pushed.at(-1)?.version).toBe('4');
    expect(w1!.closed).toBe(false);
  });
});
