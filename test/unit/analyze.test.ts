/**
 * `mizzen analyze` (src/analyze, src/app/analyze.ts): every seed file of the user's reference configs analysed —
 * together as one configuration and each on its own — with the expected findings per file in a table; focused cases
 * for every IST and MZA analyzer (a finding, and the clean variant without one); a clean configuration with no
 * finding; and the command as users run it (istioctl's output format, -o json|yaml, exit codes 0 / 79 / 65 / 64).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyze, type AnalyzeOptions } from '../../src/analyze/analyze.ts';
import type { AnalysisFile } from '../../src/analyze/context.ts';
import { renderLog, type Message } from '../../src/analyze/message.ts';
import { ANALYZERS } from '../../src/analyze/registry.ts';
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SEEDS = path.resolve(ROOT, '../shared/fixtures/seeds');

function load(file: string, text: string, defaultNamespace = 'default'): AnalysisFile {
  const l = loadYamlText(text, file, allKinds, { defaultNamespace, now: () => new Date(0).toISOString() });
  return { file, text, objects: l.objects, errors: l.errors };
}

function run(files: Record<string, string>, opts: Partial<AnalyzeOptions> = {}) {
  return analyze(
    Object.entries(files).map(([f, t]) => load(f, t)),
    { defaultNamespace: 'default', ...opts },
  );
}

/** `CODE Kind ns/name :line` — compact enough for a table. */
const brief = (m: Message) => {
  const r = m.resource;
  if (!r) return m.code;
  return `${m.code} ${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name} :${r.line}`;
};
const codes = (ms: readonly Message[]) => [...new Set(ms.map((m) => m.code))].sort();
/** Messages except MZA0006 (older API versions), which the focused fixtures below avoid by using v1. */
const findings = (files: Record<string, string>, opts: Partial<AnalyzeOptions> = {}) => run(files, opts).messages;

// ---------------------------------------------------------------------------------------------------------------
// The seeds
// ---------------------------------------------------------------------------------------------------------------

/**
 * Per seed file: the findings when the whole folder is analysed as one configuration (cross-references resolved),
 * and the codes found when the file is analysed alone. Why each is expected:
 * - IST0101 host: the seeds hold no Service or ServiceEntry, so no routed host exists (istioctl says the same);
 * - IST0101 gateway: 045 binds istio-system/main-gateway, which no seed defines;
 * - IST0106: 011's accessLogging[].format is not a Telemetry field;
 * - IST0109: 013/016/022 (myapp) and 029/032/038 (reviews) are alternatives for one host, all bound to the mesh;
 * - IST0132: 001 binds order-api-gateway (012), which serves api.example.com, not order-api(.example.com);
 * - MZA0002: bookinfo (034) and ecommerce (048) have ALLOW policies and no deny-all; production has 006;
 *   alone, 007 and 020 lose 006 too;
 * - MZA0003: alone, the DestinationRules' subsets have no VirtualService (together, every subset is routed);
 * - MZA0004: 009, 010, 038 fault every request; 022 gates its fault behind x-test-fault;
 * - MZA0006: every Istio kind on v1alpha3/v1beta1/v1alpha1, and every IstioOperator;
 * - 000 is a pod-metadata fragment without apiVersion/kind: a parse error, not a finding.
 */
const SEED_TABLE: Record<string, { together: string[]; alone: string[] }> = {
  '000-s000-fragment-pod-annotations-sidecar-inject.yaml': { together: [], alone: [] },
  '001-s000-virtualservice-order-api.yaml': {
    together: [
      'IST0101 VirtualService production/order-api :22',
      'IST0101 VirtualService production/order-api :28',
      'IST0101 VirtualService production/order-api :32',
      'IST0132 VirtualService production/order-api :12',
      'MZA0006 VirtualService production/order-api :2',
    ],
    alone: ['IST0101', 'MZA0006'],
  },
  '002-s000-destinationrule-order-api.yaml': { together: ['MZA0006 DestinationRule production/order-api :2'], alone: ['MZA0003', 'MZA0006'] },
  '003-s000-peerauthentication-default-istio-system.yaml': { together: ['MZA0006 PeerAuthentication istio-system/default :4'], alone: ['MZA0006'] },
  '004-s000-peerauthentication-default-legacy-service.yaml': { together: ['MZA0006 PeerAuthentication legacy-service/default :4'], alone: ['MZA0006'] },
  '005-s000-peerauthentication-order-api.yaml': { together: ['MZA0006 PeerAuthentication production/order-api :4'], alone: ['MZA0006'] },
  '006-s000-authorizationpolicy-deny-all.yaml': { together: ['MZA0006 AuthorizationPolicy production/deny-all :4'], alone: ['MZA0006'] },
  '007-s000-authorizationpolicy-order-api-allow.yaml': { together: ['MZA0006 AuthorizationPolicy production/order-api-allow :4'], alone: ['MZA0002', 'MZA0006'] },
  '008-s000-requestauthentication-jwt-auth.yaml': { together: ['MZA0006 RequestAuthentication production/jwt-auth :4'], alone: ['MZA0006'] },
  '009-s000-virtualservice-payment-service-fault.yaml': {
    together: [
      'IST0101 VirtualService production/payment-service-fault :20',
      'MZA0004 VirtualService production/payment-service-fault :13',
      'MZA0006 VirtualService production/payment-service-fault :4',
    ],
    alone: ['IST0101', 'MZA0004', 'MZA0006'],
  },
  '010-s000-virtualservice-database-latency.yaml': {
    together: [
      'IST0101 VirtualService default/database-latency :19',
      'MZA0004 VirtualService default/database-latency :12',
      'MZA0006 VirtualService default/database-latency :4',
    ],
    alone: ['IST0101', 'MZA0004', 'MZA0006'],
  },
  '011-s000-telemetry-custom-access-log.yaml': {
    together: ['IST0106 Telemetry production/custom-access-log :13', 'MZA0006 Telemetry production/custom-access-log :4'],
    alone: ['IST0106', 'MZA0006'],
  },
  '012-s000-gateway-order-api-gateway.yaml': { together: ['MZA0006 Gateway production/order-api-gateway :2'], alone: ['MZA0006'] },
  '013-s001-virtualservice-myapp.yaml': {
    together: [
      'IST0101 VirtualService production/myapp :22',
      'IST0101 VirtualService production/myapp :30',
      'IST0101 VirtualService production/myapp :34',
      'IST0101 VirtualService production/myapp :40',
      'IST0109 VirtualService production/myapp :5',
      'MZA0006 VirtualService production/myapp :2',
    ],
    alone: ['IST0101', 'MZA0006'],
  },
  '014-s001-destinationrule-myapp.yaml': { together: ['MZA0006 DestinationRule production/myapp :2'], alone: ['MZA0003', 'MZA0006'] },
  '015-s001-gateway-myapp-gateway.yaml': { together: ['MZA0006 Gateway production/myapp-gateway :2'], alone: ['MZA0006'] },
  '016-s001-virtualservice-myapp-mirror.yaml': {
    together: [
      'IST0101 VirtualService production/myapp-mirror :13',
      'IST0101 VirtualService production/myapp-mirror :16',
      'IST0109 VirtualService production/myapp-mirror :5',
      'MZA0006 VirtualService production/myapp-mirror :2',
    ],
    alone: ['IST0101', 'MZA0006'],
  },
  '017-s001-peerauthentication-default-production.yaml': { together: ['MZA0006 PeerAuthentication production/default :4'], alone: ['MZA0006'] },
  '018-s001-peerauthentication-legacy-service.yaml': { together: ['MZA0006 PeerAuthentication production/legacy-service :4'], alone: ['MZA0006'] },
  '019-s001-peerauthentication-default-istio-system.yaml': { together: ['MZA0006 PeerAuthentication istio-system/default :4'], alone: ['MZA0006'] },
  '020-s001-authorizationpolicy-myapp-authz.yaml': { together: ['MZA0006 AuthorizationPolicy production/myapp-authz :2'], alone: ['MZA0002', 'MZA0006'] },
  '021-s001-destinationrule-myapp-circuit-breaker.yaml': { together: ['MZA0006 DestinationRule production/myapp-circuit-breaker :2'], alone: ['MZA0006'] },
  '022-s001-virtualservice-myapp-fault.yaml': {
    together: [
      'IST0101 VirtualService production/myapp-fault :26',
      'IST0101 VirtualService production/myapp-fault :29',
      'IST0109 VirtualService production/myapp-fault :5',
      'MZA0006 VirtualService production/myapp-fault :2',
    ],
    alone: ['IST0101', 'MZA0006'],
  },
  '023-s001-serviceprofile-myapp.production.svc.cluster.local.yaml': { together: [], alone: [] },
  '024-s001-trafficsplit-myapp-canary.yaml': { together: [], alone: [] },
  '025-s001-istiooperator-fragment-multicluster.yaml': { together: ['MZA0006 IstioOperator <unnamed> :4'], alone: ['MZA0006'] },
  '026-s002-istiooperator-istio-control-plane.yaml': { together: ['MZA0006 IstioOperator istio-system/istio-control-plane :2'], alone: ['MZA0006'] },
  '027-s002-namespace-bookinfo.yaml': { together: [], alone: [] },
  '028-s002-deployment-reviews.yaml': { together: [], alone: [] },
  '029-s002-virtualservice-reviews-route.yaml': {
    together: [
      'IST0101 VirtualService default/reviews-route :16',
      'IST0101 VirtualService default/reviews-route :20',
      'IST0109 VirtualService default/reviews-route :5',
      'MZA0006 VirtualService default/reviews-route :2',
    ],
    alone: ['IST0101', 'MZA0006'],
  },
  '030-s002-destinationrule-reviews-destination.yaml': { together: ['MZA0006 DestinationRule default/reviews-destination :2'], alone: ['MZA0003', 'MZA0006'] },
  '031-s002-gateway-bookinfo-gateway.yaml': { together: ['MZA0006 Gateway default/bookinfo-gateway :2'], alone: ['MZA0006'] },
  '032-s002-virtualservice-reviews-split.yaml': {
    together: [
      'IST0101 VirtualService default/reviews-split :12',
      'IST0101 VirtualService default/reviews-split :16',
      'IST0109 VirtualService default/reviews-split :5',
      'MZA0006 VirtualService default/reviews-split :2',
    ],
    alone: ['IST0101', 'MZA0006'],
  },
  '033-s002-peerauthentication-default-istio-system.yaml': { together: ['MZA0006 PeerAuthentication istio-system/default :2'], alone: ['MZA0006'] },
  '034-s002-authorizationpolicy-reviews-viewer.yaml': {
    together: ['MZA0002 AuthorizationPolicy bookinfo/reviews-viewer :8', 'MZA0006 AuthorizationPolicy bookinfo/reviews-viewer :2'],
    alone: ['MZA0002', 'MZA0006'],
  },
  '035-s002-telemetry-mesh-default.yaml': { together: ['MZA0006 Telemetry istio-system/mesh-default :2'], alone: ['MZA0006'] },
  '036-s002-telemetry-mesh-metrics.yaml': { together: ['MZA0006 Telemetry istio-system/mesh-metrics :2'], alone: ['MZA0006'] },
  '037-s002-destinationrule-reviews-circuit-breaker.yaml': { together: ['MZA0006 DestinationRule default/reviews-circuit-breaker :2'], alone: ['MZA0006'] },
  '038-s002-virtualservice-reviews-fault.yaml': {
    together: [
      'IST0101 VirtualService default/reviews-fault :17',
      'IST0109 VirtualService default/reviews-fault :5',
      'MZA0004 VirtualService default/reviews-fault :10',
      'MZA0006 VirtualService default/reviews-fault :2',
    ],
    alone: ['IST0101', 'MZA0004', 'MZA0006'],
  },
  '039-s002-envoyfilter-filter-ratelimit.yaml': { together: [], alone: [] },
  '040-s002-istiooperator-fragment-pilot-resources.yaml': { together: ['MZA0006 IstioOperator <unnamed> :3'], alone: ['MZA0006'] },
  '041-s002-servicemonitor-istio-component-monitor.yaml': { together: [], alone: [] },
  '042-s002-istiooperator-fragment-proxy-config.yaml': { together: ['MZA0006 IstioOperator <unnamed> :3'], alone: ['MZA0006'] },
  '043-s002-istiooperator-fragment-resource-optimization.yaml': { together: ['MZA0006 IstioOperator <unnamed> :3'], alone: ['MZA0006'] },
  '044-s003-istiooperator-istio-control-plane.yaml': { together: ['MZA0006 IstioOperator istio-system/istio-control-plane :3'], alone: ['MZA0006'] },
  '045-s003-virtualservice-product-service.yaml': {
    together: [
      'IST0101 VirtualService ecommerce/product-service :15',
      'IST0101 VirtualService ecommerce/product-service :24',
      'IST0101 VirtualService ecommerce/product-service :34',
      'IST0101 VirtualService ecommerce/product-service :39',
      'IST0101 VirtualService ecommerce/product-service :43',
      'MZA0006 VirtualService ecommerce/product-service :4',
    ],
    alone: ['IST0101', 'MZA0006'],
  },
  '046-s003-destinationrule-product-service.yaml': { together: ['MZA0006 DestinationRule ecommerce/product-service :3'], alone: ['MZA0003', 'MZA0006'] },
  '047-s003-peerauthentication-default-istio-system.yaml': { together: ['MZA0006 PeerAuthentication istio-system/default :4'], alone: ['MZA0006'] },
  '048-s003-authorizationpolicy-product-service-authz.yaml': {
    together: ['MZA0002 AuthorizationPolicy ecommerce/product-service-authz :10', 'MZA0006 AuthorizationPolicy ecommerce/product-service-authz :4'],
    alone: ['MZA0002', 'MZA0006'],
  },
  '049-s003-requestauthentication-jwt-auth.yaml': { together: ['MZA0006 RequestAuthentication ecommerce/jwt-auth :4'], alone: ['MZA0006'] },
  '050-s003-envoyfilter-rate-limit.yaml': { together: [], alone: [] },
  '051-s003-telemetry-mesh-default.yaml': { together: ['MZA0006 Telemetry istio-system/mesh-default :4'], alone: ['MZA0006'] },
  '052-s003-deployment-jaeger.yaml': { together: [], alone: [] },
  '053-s003-kiali-kiali.yaml': { together: [], alone: [] },
  '054-s003-canary-product-service.yaml': { together: [], alone: [] },
};

const seedFiles = fs.readdirSync(SEEDS).filter((f) => /\.ya?ml$/.test(f)).sort();
const seedText = (f: string) => fs.readFileSync(path.join(SEEDS, f), 'utf8');

describe('the seeds', () => {
  const together = analyze(seedFiles.map((f) => load(f, seedText(f))), { defaultNamespace: 'default' });

  it('the table names every seed file', () => {
    expect(Object.keys(SEED_TABLE).sort()).toEqual(seedFiles);
  });

  it.each(seedFiles)('%s: findings in the whole folder, and alone', (f) => {
    const expected = SEED_TABLE[f]!;
    expect(together.messages.filter((m) => m.resource?.file === f).map(brief).sort()).toEqual([...expected.together].sort());
    const alone = analyze([load(f, seedText(f))], { defaultNamespace: 'default' });
    expect(codes(alone.messages)).toEqual(expected.alone);
  });

  it('every message of the folder run is about a seed file, and only the fragment is unparseable', () => {
    expect(together.messages.every((m) => m.resource?.file && seedFiles.includes(m.resource.file))).toBe(true);
    expect(together.unparsed).toEqual([{ file: '000-s000-fragment-pod-annotations-sidecar-inject.yaml', line: 4, message: 'apiVersion: required field is missing' }]);
  });

  it('prints istioctl lines with the file and the line of the offending field', () => {
    const log = together.messages.map(renderLog);
    expect(log).toContain(
      'Error [IST0101] (VirtualService ecommerce/product-service 045-s003-virtualservice-product-service.yaml:15) Referenced gateway not found: "istio-system/main-gateway"',
    );
    expect(log).toContain('Error [IST0101] (VirtualService production/myapp-mirror 016-s001-virtualservice-myapp-mirror.yaml:16) Referenced mirror host not found: "myapp"');
    expect(log).toContain(
      'Error [IST0106] (Telemetry production/custom-access-log 011-s000-telemetry-custom-access-log.yaml:13) Schema validation error: spec.accessLogging[0].format: unknown field',
    );
    expect(log).toContain(
      'Error [IST0109] (VirtualService production/myapp 013-s001-virtualservice-myapp.yaml:5) The VirtualServices production/myapp,production/myapp-fault,production/myapp-mirror associated with mesh gateway define the same host */myapp.production.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.',
    );
    expect(log).toContain(
      'Warning [IST0132] (VirtualService production/order-api 001-s000-virtualservice-order-api.yaml:12) one or more host [order-api order-api.example.com] defined in VirtualService production/order-api not found in Gateway production/order-api-gateway.',
    );
    expect(log.find((l) => l.startsWith('Warning [MZA0004] (VirtualService production/payment-service-fault'))).toContain('abort with HTTP 503 on 50%');
  });

  it('seed 003 (mesh-wide STRICT) with a workload that opts out as seed 000 does: MZA0001', () => {
    const optOut = `apiVersion: apps/v1
kind: Deployment
metadata: { name: legacy-batch, namespace: production }
spec:
  selector: { matchLabels: { app: legacy-batch } }
  template:
    metadata:
      labels: { app: legacy-batch }
      annotations: { sidecar.istio.io/inject: "false" }
    spec: { containers: [{ name: batch, image: batch:1 }] }
`;
    const f = '003-s000-peerauthentication-default-istio-system.yaml';
    const ms = findings({ [f]: seedText(f), 'opt-out.yaml': optOut });
    const m = ms.find((x) => x.code === 'MZA0001');
    expect(m && brief(m)).toBe('MZA0001 PeerAuthentication istio-system/default :11');
    expect(m?.message).toContain('STRICT mTLS is enforced mesh-wide while Deployment production/legacy-batch (pod annotation sidecar.istio.io/inject: "false") runs without a sidecar');
  });

  it('seeds 027 + 028 with partial sidecar resource annotations on the reviews pods: MZA0005', () => {
    const deployment = seedText('028-s002-deployment-reviews.yaml').replace(
      '    metadata:\n      labels:\n        app: reviews\n',
      '    metadata:\n      labels:\n        app: reviews\n      annotations:\n        sidecar.istio.io/proxyCPU: 100m\n',
    );
    const ms = findings({ '027.yaml': seedText('027-s002-namespace-bookinfo.yaml'), '028.yaml': deployment });
    expect(ms.map(brief)).toEqual(['MZA0005 Deployment bookinfo/reviews :18']);
    expect(ms[0]?.message).toContain('gets no memory request, CPU limit, memory limit');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Focused cases: each analyzer finds its problem, and says nothing about the fixed version
// ---------------------------------------------------------------------------------------------------------------

const ns = (name: string, labels = 'istio-injection: enabled') => `apiVersion: v1
kind: Namespace
metadata:
  name: ${name}
  labels: { ${labels} }
`;
const svc = (name: string, namespace: string, ports = '[{ name: http, port: 9080 }]') => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  selector: { app: ${name} }
  ports: ${ports}
`;
const dr = (host: string, namespace: string, subsets: string[], extra = '') => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${host}, namespace: ${namespace} }
spec:
  host: ${host}
${extra}  subsets:
${subsets.map((s) => `    - name: ${s}\n      labels: { version: ${s} }`).join('\n')}
`;

describe('IST0101 referenced resources', () => {
  const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: shop }
spec:
  hosts: [reviews]
  gateways: [mesh, shop-gw]
  http:
    - route:
        - destination: { host: reviews, subset: v1 }
          weight: 90
        - destination: { host: reviewz, subset: v2 }
          weight: 10
      mirror: { host: ratings }
`;
  it('host, mirror host, host+subset and gateway not found, each at its field', () => {
    const ms = findings({ 'vs.yaml': vs, 'svc.yaml': svc('reviews', 'shop'), 'dr.yaml': dr('reviews', 'shop', ['v2']) }).filter((m) => m.code === 'IST0101');
    expect(ms.map(renderLog)).toEqual([
      'Error [IST0101] (VirtualService shop/reviews vs.yaml:6) Referenced gateway not found: "shop-gw"',
      'Error [IST0101] (VirtualService shop/reviews vs.yaml:9) Referenced host+subset in destinationrule not found: "reviews+v1"',
      'Error [IST0101] (VirtualService shop/reviews vs.yaml:11) Referenced host not found: "reviewz"',
      'Error [IST0101] (VirtualService shop/reviews vs.yaml:11) Referenced host+subset in destinationrule not found: "reviewz+v2"',
      'Error [IST0101] (VirtualService shop/reviews vs.yaml:13) Referenced mirror host not found: "ratings"',
    ]);
  });
  it('nothing when the Services, ServiceEntry, subsets and Gateway exist (FQDN and short names alike)', () => {
    const fixed = vs.replace('reviewz', 'reviews.shop.svc.cluster.local').replace('gateways: [mesh, shop-gw]', 'gateways: [mesh, shop/shop-gw]');
    const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ratings, namespace: shop }
spec:
  hosts: [ratings.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: DNS
  ports: [{ number: 9080, name: http, protocol: HTTP }]
`;
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: shop-gw, namespace: shop }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
`;
    const ms = findings({ 'vs.yaml': fixed, 'svc.yaml': svc('reviews', 'shop'), 'se.yaml': se, 'gw.yaml': gw, 'dr.yaml': dr('reviews', 'shop', ['v1', 'v2']) });
    expect(ms.filter((m) => m.code.startsWith('IST'))).toEqual([]);
  });
  it('a ServiceEntry wildcard host provides the hosts it covers', () => {
    const ext = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ext, namespace: shop }
spec:
  hosts: [api.example.com]
  http: [{ route: [{ destination: { host: api.example.com } }] }]
`;
    const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: example, namespace: shop }
spec:
  hosts: ["*.example.com"]
  resolution: NONE
  ports: [{ number: 443, name: tls, protocol: TLS }]
`;
    expect(findings({ 'vs.yaml': ext, 'se.yaml': se })).toEqual([]);
    expect(codes(findings({ 'vs.yaml': ext, 'se.yaml': se.replace('*.example.com', '*.example.org') }))).toEqual(['IST0101']);
  });
  it('a Service exported only to its own namespace is not found from another', () => {
    const other = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: r, namespace: web }
spec:
  hosts: [r.example.com]
  http: [{ route: [{ destination: { host: reviews.shop.svc.cluster.local } }] }]
`;
    const hidden = svc('reviews', 'shop').replace('metadata: { name: reviews, namespace: shop }', 'metadata:\n  name: reviews\n  namespace: shop\n  annotations: { networking.istio.io/exportTo: "." }');
    expect(codes(findings({ 'vs.yaml': other, 'svc.yaml': hidden }))).toEqual(['IST0101']);
    expect(codes(findings({ 'vs.yaml': other, 'svc.yaml': svc('reviews', 'shop') }))).toEqual([]);
  });
});

describe('IST0132 VirtualService host not served by its Gateway', () => {
  const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: shop }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*.example.com"] }]
`;
  const vs = (host: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [${host}]
  gateways: [gw]
  http: [{ route: [{ destination: { host: web } }] }]
`;
  it('reported for a host outside the Gateway hosts, not for one a wildcard covers', () => {
    const bad = findings({ 'gw.yaml': gw, 'vs.yaml': vs('shop.example.org'), 'svc.yaml': svc('web', 'shop') });
    expect(bad.map(renderLog)).toEqual([
      'Warning [IST0132] (VirtualService shop/web vs.yaml:6) one or more host [shop.example.org] defined in VirtualService shop/web not found in Gateway shop/gw.',
    ]);
    expect(findings({ 'gw.yaml': gw, 'vs.yaml': vs('shop.example.com'), 'svc.yaml': svc('web', 'shop') })).toEqual([]);
  });
});

describe('IST0109 conflicting mesh VirtualServices', () => {
  const vs = (name: string, extra = '') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: shop }
spec:
  hosts: [web]
${extra}  http: [{ route: [{ destination: { host: web } }] }]
`;
  it('two mesh VirtualServices for one host are both reported', () => {
    const ms = findings({ 'a.yaml': vs('a'), 'b.yaml': vs('b'), 'svc.yaml': svc('web', 'shop') });
    expect(ms.map(brief)).toEqual(['IST0109 VirtualService shop/a :3', 'IST0109 VirtualService shop/b :3']);
    expect(ms[0]?.message).toContain('The VirtualServices shop/a,shop/b associated with mesh gateway define the same host */web.shop.svc.cluster.local');
  });
  it('not when one is bound only to a Gateway, or they are exported to different namespaces', () => {
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: shop }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
`;
    expect(findings({ 'a.yaml': vs('a'), 'b.yaml': vs('b', '  gateways: [gw]\n'), 'gw.yaml': gw, 'svc.yaml': svc('web', 'shop') })).toEqual([]);
    expect(findings({ 'a.yaml': vs('a', '  exportTo: ["."]\n'), 'b.yaml': vs('b', '  exportTo: [web]\n'), 'svc.yaml': svc('web', 'shop') })).toEqual([]);
  });
});

describe('IST0102, IST0106, IST0107/IST0108/IST0135, IST0118', () => {
  it('IST0102: a namespace without an injection label (not the root namespace, not kube-system)', () => {
    const ms = findings({ 'ns.yaml': [ns('shop', 'team: a'), ns('web'), ns('istio-system', 'x: z'), ns('kube-system', 'x: z'), ns('amb', 'istio.io/dataplane-mode: ambient')].join('---\n') });
    expect(ms.map(renderLog)).toEqual([
      "Info [IST0102] (Namespace shop ns.yaml:4) The namespace is not enabled for Istio injection. Run 'kubectl label namespace shop istio-injection=enabled' to enable it, or 'kubectl label namespace shop istio-injection=disabled' to explicitly mark it as not needing injection.",
    ]);
  });
  it('IST0106: every refused field, at its line; a document without apiVersion is a parse error instead', () => {
    const r = run({
      'bad.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  trafficPolicy:
    loadBalancer: { simple: FASTEST }
---
metadata: { name: fragment }
`,
    });
    expect(r.messages.map(renderLog)).toEqual([
      'Error [IST0106] (DestinationRule shop/web bad.yaml:7) Schema validation error: spec.trafficPolicy.loadBalancer.simple: invalid value "FASTEST"; must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST',
    ]);
    expect(r.unparsed).toEqual([{ file: 'bad.yaml', line: 9, message: 'apiVersion: required field is missing' }]);
  });
  it('IST0108 unknown, IST0107 misplaced, IST0135 deprecated annotations; pod templates are checked as Pods', () => {
    const deploy = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations:
    sidecar.istio.io/proxyCPU: 100m
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata:
      labels: { app: web }
      annotations:
        sidecar.istio.io/inject: "true"
        sidecar.istio.io/proxyCPUs: 200m
        readiness.status.sidecar.istio.io/periodSeconds: "10"
    spec: { containers: [{ name: web, image: web:1 }] }
`;
    const ms = findings({ 'ns.yaml': ns('shop'), 'deploy.yaml': deploy });
    expect(ms.map(renderLog)).toEqual([
      'Warning [IST0107] (Deployment shop/web deploy.yaml:7) Misplaced annotation: sidecar.istio.io/proxyCPU can only be applied to Pod',
      'Warning [IST0108] (Deployment shop/web deploy.yaml:15) Unknown annotation: sidecar.istio.io/proxyCPUs',
      'Info [IST0135] (Deployment shop/web deploy.yaml:14) Annotation "sidecar.istio.io/inject" has been deprecated in favor of the "sidecar.istio.io/inject" label and may not work in future Istio versions.',
    ]);
    // The label form is the current one; a non-Istio annotation is none of Istio's business.
    const fixed = deploy
      .replace('  annotations:\n    sidecar.istio.io/proxyCPU: 100m\n', '  annotations:\n    example.com/owner: team-a\n')
      .replace('labels: { app: web }', 'labels: { app: web, sidecar.istio.io/inject: "true" }')
      .replace('        sidecar.istio.io/inject: "true"\n        sidecar.istio.io/proxyCPUs: 200m\n', '');
    expect(findings({ 'ns.yaml': ns('shop'), 'deploy.yaml': fixed })).toEqual([]);
  });
  it('IST0118: a port whose protocol Istio cannot tell; named, appProtocol, UDP and well-known ports are fine', () => {
    const ports = `
    - { name: web, port: 8080, targetPort: 9090 }
    - { name: http-web, port: 80 }
    - { name: api, port: 81, appProtocol: grpc }
    - { name: dns, port: 53, protocol: UDP }
    - { name: db, port: 3306 }
    - { port: 9000 }`;
    const ms = findings({ 'svc.yaml': svc('web', 'shop', ports) });
    expect(ms.map(renderLog)).toEqual([
      "Info [IST0118] (Service shop/web svc.yaml:7) Port name web (port: 8080, targetPort: 9090) doesn't follow the naming convention of Istio port.",
      "Info [IST0118] (Service shop/web svc.yaml:12) Port name  (port: 9000, targetPort: 0) doesn't follow the naming convention of Istio port.",
    ]);
  });
});

describe('IST0113 mTLS conflict', () => {
  const pa = (namespace: string, mode: string) => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${namespace} }
spec: { mtls: { mode: ${mode} } }
`;
  const drTls = (mode: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  trafficPolicy:
    tls:
      mode: ${mode}
`;
  it('plaintext to a STRICT namespace, and ISTIO_MUTUAL to a DISABLE one', () => {
    const a = findings({ 'pa.yaml': pa('shop', 'STRICT'), 'dr.yaml': drTls('DISABLE') });
    expect(a.map(renderLog)).toEqual([
      'Error [IST0113] (DestinationRule shop/web dr.yaml:8) A DestinationRule and Policy are in conflict with regards to mTLS for host web.shop.svc.cluster.local. The DestinationRule "shop/web" specifies that mTLS must be false but the Policy object "shop/default" specifies STRICT.',
    ]);
    const b = findings({ 'pa.yaml': pa('istio-system', 'DISABLE'), 'dr.yaml': drTls('ISTIO_MUTUAL') });
    expect(b.map(brief)).toEqual(['IST0113 DestinationRule shop/web :8']);
    expect(b[0]?.message).toContain('mTLS must be true but the Policy object "istio-system/default" specifies DISABLE');
  });
  it('none when the modes agree or the server is PERMISSIVE', () => {
    expect(findings({ 'pa.yaml': pa('shop', 'STRICT'), 'dr.yaml': drTls('ISTIO_MUTUAL') })).toEqual([]);
    expect(findings({ 'pa.yaml': pa('shop', 'PERMISSIVE'), 'dr.yaml': drTls('DISABLE') })).toEqual([]);
  });
});

describe('MZA0001 STRICT mTLS before every workload is in the mesh', () => {
  const strict = (namespace: string) => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${namespace} }
spec:
  mtls:
    mode: STRICT
`;
  const deploy = (name: string, namespace: string, podAnnotations = '') => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata:
      labels: { app: ${name} }
${podAnnotations}    spec: { containers: [{ name: ${name}, image: ${name}:1 }] }
`;
  it('a namespace STRICT policy next to a workload in a namespace that is not injected', () => {
    const ms = findings({ 'ns.yaml': ns('legacy', 'team: a'), 'pa.yaml': strict('legacy'), 'd.yaml': deploy('billing', 'legacy') }).filter((m) => m.code === 'MZA0001');
    expect(ms.map(brief)).toEqual(['MZA0001 PeerAuthentication legacy/default :6']);
    expect(ms[0]?.message).toContain('in namespace legacy while Deployment legacy/billing (namespace legacy has no istio-injection=enabled or istio.io/rev label) runs without a sidecar');
  });
  it('none once the workloads are injected, or when the policy stays PERMISSIVE', () => {
    expect(findings({ 'ns.yaml': ns('legacy'), 'pa.yaml': strict('legacy'), 'd.yaml': deploy('billing', 'legacy') })).toEqual([]);
    expect(findings({ 'ns.yaml': ns('shop'), 'pa.yaml': strict('istio-system').replace('STRICT', 'PERMISSIVE'), 'd.yaml': deploy('b', 'shop', '      annotations: { sidecar.istio.io/inject: "false" }\n') }).filter((m) => m.code === 'MZA0001')).toEqual([]);
  });
  it('a workload in a namespace the files do not describe is not assumed to be outside the mesh', () => {
    expect(findings({ 'pa.yaml': strict('istio-system'), 'd.yaml': deploy('billing', 'unknown') })).toEqual([]);
  });
});

describe('MZA0002 ALLOW policies without a deny-all baseline', () => {
  const allow = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-web, namespace: shop }
spec:
  selector:
    matchLabels: { app: web }
  action: ALLOW
  rules: [{ to: [{ operation: { methods: [GET] } }] }]
`;
  const allowNothing = (namespace: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-nothing, namespace: ${namespace} }
spec: {}
`;
  it('reported at the selector', () => {
    const ms = findings({ 'ap.yaml': allow });
    expect(ms.map(brief)).toEqual(['MZA0002 AuthorizationPolicy shop/allow-web :5']);
    expect(ms[0]?.message).toBe(
      'ALLOW policy without a deny-all baseline: workloads in namespace shop that no ALLOW policy selects still accept every request (implicit allow). Add an allow-nothing policy (spec: {}) in shop or istio-system.',
    );
  });
  it('an allow-nothing policy in the namespace or the root namespace, or a match-all DENY, is a baseline', () => {
    expect(findings({ 'ap.yaml': allow, 'base.yaml': allowNothing('shop') })).toEqual([]);
    expect(findings({ 'ap.yaml': allow, 'base.yaml': allowNothing('istio-system') })).toEqual([]);
    const denyAll = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-all, namespace: shop }
spec: { action: DENY, rules: [{}] }
`;
    expect(findings({ 'ap.yaml': allow, 'base.yaml': denyAll })).toEqual([]);
    // A baseline in another namespace does not cover this one.
    expect(codes(findings({ 'ap.yaml': allow, 'base.yaml': allowNothing('web') }))).toEqual(['MZA0002']);
  });
});

describe('MZA0003 DestinationRule subsets no VirtualService uses', () => {
  const vs = (subsets: string[]) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http:
    - route:
${subsets.map((s, i) => `        - destination: { host: ${i === 0 ? 'web' : 'web.shop.svc.cluster.local'}, subset: ${s} }\n          weight: ${i === 0 ? 100 - (subsets.length - 1) * 10 : 10}`).join('\n')}
`;
  it('without any VirtualService, every subset; with one, the subsets it never names', () => {
    const alone = findings({ 'svc.yaml': svc('web', 'shop'), 'dr.yaml': dr('web', 'shop', ['v1', 'v2']) });
    expect(alone.map(brief)).toEqual(['MZA0003 DestinationRule shop/web :7', 'MZA0003 DestinationRule shop/web :9']);
    expect(alone[0]?.message).toBe(
      'Subset "v1" is never used: no VirtualService routes to web at all. Subsets only take effect when a VirtualService route sends traffic to them; add the route, or remove the subset.',
    );
    const partly = findings({ 'svc.yaml': svc('web', 'shop'), 'dr.yaml': dr('web', 'shop', ['v1', 'v2', 'v3']), 'vs.yaml': vs(['v1', 'v2']) });
    expect(partly.map(brief)).toEqual(['MZA0003 DestinationRule shop/web :11']);
    expect(partly[0]?.message).toContain('no VirtualService route or mirror names subset "v3" of web');
  });
  it('none when every subset is routed (short and full names alike)', () => {
    expect(findings({ 'svc.yaml': svc('web', 'shop'), 'dr.yaml': dr('web', 'shop', ['v1', 'v2']), 'vs.yaml': vs(['v1', 'v2']) })).toEqual([]);
  });
});

describe('MZA0004 fault injection without a kill switch', () => {
  const vs = (match: string, extraRoute = '') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: pay, namespace: shop }
spec:
  hosts: [pay]
  http:
    - ${match}fault:
        delay: { fixedDelay: 2s, percentage: { value: 10 } }
        abort: { httpStatus: 503 }
      route: [{ destination: { host: pay } }]
${extraRoute}`;
  it('a fault every request takes; the message says when deleting the VirtualService would drop other routes too', () => {
    const dedicated = findings({ 'svc.yaml': svc('pay', 'shop'), 'vs.yaml': vs('') });
    expect(dedicated.map(brief)).toEqual(['MZA0004 VirtualService shop/pay :7']);
    expect(dedicated[0]?.message).toContain('Fault injection (delay 2s on 10% and abort with HTTP 503 on 100%) applies to every request of http[0] for pay: only deleting this VirtualService turns it off');
    const mixed = findings({ 'svc.yaml': svc('pay', 'shop'), 'vs.yaml': vs('match: [{ uri: { prefix: /api } }]\n      ', '    - route: [{ destination: { host: pay } }]\n') });
    expect(mixed[0]?.message).toContain('deleting this VirtualService would also drop its 1 other route, so there is no clean kill switch');
    // One ungated match entry is enough: entries are ORed.
    expect(codes(findings({ 'svc.yaml': svc('pay', 'shop'), 'vs.yaml': vs('match: [{ headers: { x-chaos: { exact: "on" } } }, { uri: { prefix: / } }]\n      ') }))).toEqual(['MZA0004']);
  });
  it('none when a header (or query, or source) match gates it', () => {
    expect(findings({ 'svc.yaml': svc('pay', 'shop'), 'vs.yaml': vs('match: [{ headers: { x-chaos: { exact: "on" } } }]\n      ') })).toEqual([]);
    expect(findings({ 'svc.yaml': svc('pay', 'shop'), 'vs.yaml': vs('match: [{ sourceLabels: { app: chaos-client } }]\n      ') })).toEqual([]);
  });
});

describe('MZA0005 sidecars without resource requests and limits', () => {
  const deploy = (annotations: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata:
      labels: { app: web }
      annotations: { ${annotations} }
    spec: { containers: [{ name: web, image: web:1 }] }
`;
  const iop = (resources: string) => `apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: { name: control-plane, namespace: istio-system }
spec:
  values:
    global:
      proxy:
        resources: ${resources}
`;
  it('partial pod annotations leave the rest unset', () => {
    const ms = findings({ 'ns.yaml': ns('shop'), 'd.yaml': deploy('sidecar.istio.io/proxyCPU: 100m, sidecar.istio.io/proxyMemory: 128Mi') });
    expect(ms.map(brief)).toEqual(['MZA0005 Deployment shop/web :9']);
    expect(ms[0]?.message).toBe(
      'The istio-proxy sidecar gets no CPU limit, memory limit: once any sidecar.istio.io/proxy* resource annotation is set, injection uses only the annotated values. Add sidecar.istio.io/proxyCPULimit, sidecar.istio.io/proxyMemoryLimit.',
    );
  });
  it('an install whose global proxy resources lack a value', () => {
    const ms = run({ 'iop.yaml': iop('{ limits: { cpu: 500m, memory: 256Mi } }') }).messages.filter((m) => m.code === 'MZA0005');
    expect(ms.map(brief)).toEqual(['MZA0005 IstioOperator istio-system/control-plane :8']);
    expect(ms[0]?.message).toContain('sets no CPU request, memory request');
  });
  it('none with all four annotations, none at all (the defaults), outside the mesh, or a complete install', () => {
    const all4 = 'sidecar.istio.io/proxyCPU: 100m, sidecar.istio.io/proxyMemory: 128Mi, sidecar.istio.io/proxyCPULimit: "1", sidecar.istio.io/proxyMemoryLimit: 512Mi';
    expect(findings({ 'ns.yaml': ns('shop'), 'd.yaml': deploy(all4) })).toEqual([]);
    expect(findings({ 'ns.yaml': ns('shop'), 'd.yaml': deploy('example.com/x: y') })).toEqual([]);
    expect(findings({ 'ns.yaml': ns('shop', 'istio-injection: disabled'), 'd.yaml': deploy('sidecar.istio.io/proxyCPU: 100m') })).toEqual([]);
    const complete = run({ 'iop.yaml': iop('{ requests: { cpu: 100m, memory: 128Mi }, limits: { cpu: 500m, memory: 256Mi } }') }).messages;
    expect(codes(complete)).toEqual(['MZA0006']);
  });
});

describe('MZA0006 older API versions', () => {
  it('v1alpha3 / v1beta1 / v1alpha1 of kinds that have v1, and IstioOperator; not EnvoyFilter (v1alpha3 is its newest)', () => {
    const docs = `apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: { name: gw, namespace: shop }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: { name: ef, namespace: shop }
spec: { configPatches: [] }
`;
    const ms = findings({ 'a.yaml': docs });
    expect(ms.map(renderLog)).toEqual([
      'Info [MZA0006] (Gateway shop/gw a.yaml:1) networking.istio.io/v1alpha3 is an older API version of Gateway: use networking.istio.io/v1 (served since Istio 1.22; older versions may be removed later) and test the upgrade in staging.',
    ]);
    expect(findings({ 'a.yaml': docs.replace('v1alpha3\nkind: Gateway', 'v1\nkind: Gateway') })).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Clean configurations, suppression and scoping
// ---------------------------------------------------------------------------------------------------------------

const CLEAN = {
  'namespace.yaml': ns('shop'),
  'services.yaml': [svc('web', 'shop'), svc('pay', 'shop', '[{ name: grpc-pay, port: 9090 }]')].join('---\n'),
  'workloads.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata:
      labels: { app: web, version: v1 }
      annotations: { proxy.istio.io/config: '{ "holdApplicationUntilProxyStarts": true }' }
    spec: { containers: [{ name: web, image: web:1 }] }
`,
  'routing.yaml': `${dr('web', 'shop', ['v1', 'v2'])}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts: [web]
  http:
    - match: [{ headers: { x-chaos-test: { exact: "on" } } }]
      fault: { abort: { httpStatus: 503, percentage: { value: 100 } } }
      route: [{ destination: { host: web, subset: v2 } }]
    - route:
        - { destination: { host: web, subset: v1 }, weight: 90 }
        - { destination: { host: web, subset: v2 }, weight: 10 }
`,
  'security.yaml': `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-nothing, namespace: shop }
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web-viewer, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  rules: [{ from: [{ source: { principals: [cluster.local/ns/shop/sa/frontend] } }] }]
`,
};

describe('clean configurations', () => {
  it('a consistent mesh (injected namespace, services, routed subsets, gated fault, baseline, STRICT with everyone injected) has no finding', () => {
    const r = run(CLEAN);
    expect(r.messages).toEqual([]);
    expect(r.unparsed).toEqual([]);
  });
  it('the bundled example has no finding', () => {
    const dir = path.join(ROOT, 'examples/bookinfo');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(analyze(files.map((f) => load(f, fs.readFileSync(path.join(dir, f), 'utf8'))), { defaultNamespace: 'default' }).messages).toEqual([]);
  });
  it('every analyzer reports only the codes it declares', () => {
    const declared = new Set(ANALYZERS.flatMap((a) => a.types.map((t) => t.code)));
    const seen = analyze(seedFiles.map((f) => load(f, seedText(f))), { defaultNamespace: 'default' }).messages.map((m) => m.code);
    expect(seen.every((c) => declared.has(c))).toBe(true);
  });
});

describe('suppression and namespace scope', () => {
  const faulty = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pay
  namespace: shop
  annotations: { galley.istio.io/analyze-suppress: "MZA0004" }
spec:
  hosts: [pay]
  http: [{ fault: { abort: { httpStatus: 503 } }, route: [{ destination: { host: pay } }] }]
`;
  it('the galley.istio.io/analyze-suppress annotation silences its codes on that resource', () => {
    expect(codes(findings({ 'vs.yaml': faulty }))).toEqual(['IST0101']);
    expect(codes(findings({ 'vs.yaml': faulty.replace('"MZA0004"', '"*"') }))).toEqual([]);
  });
  it('-S CODE=Kind ns/name (and istioctl\'s Kind name.ns), with wildcards', () => {
    const bare = faulty.replace('  annotations: { galley.istio.io/analyze-suppress: "MZA0004" }\n', '');
    expect(codes(findings({ 'vs.yaml': bare }, { suppress: [{ code: 'MZA0004', resource: 'VirtualService shop/pay' }] }))).toEqual(['IST0101']);
    expect(codes(findings({ 'vs.yaml': bare }, { suppress: [{ code: 'IST0101', resource: 'VirtualService pay.shop' }] }))).toEqual(['MZA0004']);
    expect(codes(findings({ 'vs.yaml': bare }, { suppress: [{ code: 'IST0101', resource: 'VirtualService *' }, { code: 'MZA0004', resource: '*' }] }))).toEqual([]);
  });
  it('-n keeps messages about that namespace only', () => {
    const two = { 'a.yaml': faulty.replace('  annotations: { galley.istio.io/analyze-suppress: "MZA0004" }\n', ''), 'b.yaml': ns('other', 'x: z') };
    expect(codes(findings(two))).toEqual(['IST0101', 'IST0102', 'MZA0004']);
    expect(codes(findings(two, { namespace: 'shop' }))).toEqual(['IST0101', 'MZA0004']);
    expect(codes(findings(two, { namespace: 'other' }))).toEqual(['IST0102']);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------------------------

describe('mizzen analyze (the command)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-analyze-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const dirWith = (name: string, files: Record<string, string>) => {
    const d = path.join(tmp, name);
    fs.mkdirSync(d, { recursive: true });
    for (const [f, t] of Object.entries(files)) fs.writeFileSync(path.join(d, f), t);
    return d;
  };
  const cli = (...args: string[]) => {
    try {
      const stdout = execFileSync(process.execPath, ['src/cli/main.ts', 'analyze', ...args], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { code: 0, stdout, stderr: '' };
    } catch (e: any) {
      return { code: e.status as number, stdout: String(e.stdout), stderr: String(e.stderr) };
    }
  };

  it('exits 79 on the seeds, printing istioctl lines and the summary', () => {
    const r = cli(SEEDS);
    expect(r.code).toBe(79);
    const rel = path.join(SEEDS, '045-s003-virtualservice-product-service.yaml');
    expect(r.stdout).toContain(`Error [IST0101] (VirtualService ecommerce/product-service ${rel}:15) Referenced gateway not found: "istio-system/main-gateway"`);
    expect(r.stdout.split('\n')[0]).toMatch(/^Error \[IST0101\]/);
    expect(r.stderr).toContain('000-s000-fragment-pod-annotations-sidecar-inject.yaml:4: apiVersion: required field is missing');
    expect(r.stderr).toContain(`Error: Analyzers found issues when analyzing ${SEEDS}.`);
  });

  it('exits 0 on a clean folder', () => {
    const r = cli(dirWith('clean', CLEAN));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });

  it('warnings alone exit 0, unless --failure-threshold Warning; --output-threshold hides Info', () => {
    const d = dirWith('warn', { ...CLEAN, 'ns.yaml': ns('quiet', 'team: a'), 'routing.yaml': CLEAN['routing.yaml'].replace('    - match: [{ headers: { x-chaos-test: { exact: "on" } } }]\n      fault', '    - fault') });
    const r = cli(d);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Warning \[MZA0004\] \(VirtualService shop\/web .*routing\.yaml:\d+\)/);
    expect(r.stdout).toContain('Info [IST0102] (Namespace quiet');
    expect(cli('--failure-threshold', 'Warning', d).code).toBe(79);
    expect(cli('--output-threshold', 'Warning', d).stdout).not.toContain('IST0102');
  });

  it('-o json: istioctl records, and exit 79 on errors as in every format', () => {
    const r = cli('-o', 'json', SEEDS);
    expect(r.code).toBe(79);
    const records = JSON.parse(r.stdout) as Array<Record<string, string>>;
    const rel = path.join(SEEDS, '011-s000-telemetry-custom-access-log.yaml');
    expect(records).toContainEqual({
      code: 'IST0106',
      documentationUrl: 'https://istio.io/latest/docs/reference/config/analysis/ist0106/?ref=mizzen-analyze',
      level: 'Error',
      message: 'Schema validation error: spec.accessLogging[0].format: unknown field',
      origin: 'Telemetry production/custom-access-log',
      reference: `${rel}:13`,
    });
    expect(records.find((x) => x.code === 'MZA0002')?.documentationUrl).toBe('docs/analyzers.md#mza0002');
    expect(Object.keys(records[0]!)).toEqual(['code', 'documentationUrl', 'level', 'message', 'origin', 'reference']);
  });

  it('-o yaml, and an empty list on a clean folder', async () => {
    const { parse } = await import('yaml');
    const records = parse(cli('-o', 'yaml', SEEDS).stdout) as Array<Record<string, string>>;
    expect(records.filter((x) => x.code === 'MZA0004').map((x) => x.origin)).toEqual([
      'VirtualService default/database-latency',
      'VirtualService default/reviews-fault',
      'VirtualService production/payment-service-fault',
    ]);
    expect(cli('-o', 'json', dirWith('clean2', CLEAN)).stdout.trim()).toBe('[]');
  });

  it('exits 65 when the only problem is a document that is not a Kubernetes object (0 with --ignore-unknown)', () => {
    const f = path.join(SEEDS, '000-s000-fragment-pod-annotations-sidecar-inject.yaml');
    const r = cli(f);
    expect(r.code).toBe(65);
    expect(r.stderr).toContain('(but 1 file could not be parsed)');
    expect(cli('--ignore-unknown', f).code).toBe(0);
  });

  it('usage errors exit 64; an unreadable kubeconfig is a clear error; -L lists the codes', () => {
    expect(cli('-o', 'xml', SEEDS).code).toBe(64);
    expect(cli('--failure-threshold', 'Fatal', SEEDS).code).toBe(64);
    expect(cli('-S', 'IST0101', SEEDS).code).toBe(64);
    expect(cli().code).toBe(64);
    const kube = cli('--kubeconfig', '/nonexistent');
    expect(kube.code).toBe(1);
    expect(kube.stderr).toContain('Error: reading the cluster:');
    expect(cli('--kubeconfig', '/nonexistent', SEEDS).code).toBe(64);
    expect(cli('--use-kube=false', dirWith('clean3', CLEAN)).code).toBe(0);
    const list = cli('-L');
    expect(list.code).toBe(0);
    for (const c of ['IST0101', 'IST0102', 'IST0106', 'IST0108', 'IST0109', 'IST0113', 'IST0118', 'MZA0001', 'MZA0002', 'MZA0003', 'MZA0004', 'MZA0005', 'MZA0006']) expect(list.stdout).toContain(c);
  });

  it('--help names both modes', () => {
    const r = cli('--help');
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('in files or a live cluster (--kubeconfig)');
    expect(r.stdout).toContain('--kubeconfig');
  });
});
