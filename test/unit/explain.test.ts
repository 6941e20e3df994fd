/**
 * `mizzen explain` on the user's seed scenarios, with Kubernetes Services, EndpointSlices and Pods for the services
 * (test/scenarios/goldens/envoy-production-sidecar/registry.yaml plus the sources): canary 90/10 with a header
 * override (013 + 014/021), fault injection (009, 022), JWT + authorization (008 + 007) under STRICT mTLS (017).
 * Every decision printed is read from the config translated for the source and the destination proxies.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { explain, runExplain, type ExplainOptions } from '../../src/app/explain.ts';
import { allKinds } from '../../src/config/kinds/all.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { renderText, type Explanation } from '../../src/explain/explain.ts';
import { walk } from '../../src/explain/simulate.ts';
import { grpcProxy, translate } from '../support/translate.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SEEDS = path.join(ROOT, '../shared/fixtures/seeds');
const seed = (prefix: string) => fs.readFileSync(path.join(SEEDS, fs.readdirSync(SEEDS).find((f) => f.startsWith(prefix))!), 'utf8');
const REGISTRY = fs.readFileSync(path.join(ROOT, 'test/scenarios/goldens/envoy-production-sidecar/registry.yaml'), 'utf8');

/** The sources, and endpoints for payment-service (the registry has its Service only). */
const SOURCES = `
apiVersion: v1
kind: Pod
metadata: { name: frontend-0, namespace: production, labels: { app: frontend, security.istio.io/tlsMode: istio } }
spec: { serviceAccountName: frontend }
status: { podIP: 10.20.9.1, phase: Running }
---
apiVersion: v1
kind: Pod
metadata: { name: payment-service-0, namespace: production, labels: { app: payment-service, security.istio.io/tlsMode: istio } }
spec: { serviceAccountName: payment-service }
status: { podIP: 10.20.3.1, phase: Running }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: payment-service-1, namespace: production, labels: { kubernetes.io/service-name: payment-service } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints:
  - { addresses: [10.20.3.1], conditions: { ready: true }, targetRef: { kind: Pod, name: payment-service-0, namespace: production } }
---
apiVersion: v1
kind: Pod
metadata: { name: istio-ingressgateway-0, namespace: istio-system, labels: { istio: ingressgateway, security.istio.io/tlsMode: istio } }
spec: { serviceAccountName: istio-ingressgateway-service-account }
status: { podIP: 10.20.8.1, phase: Running }
`;

const NOW = Date.parse('2026-01-01T00:00:00Z') / 1000;

function objects(...yaml: string[]) {
  const loaded = loadYamlText([REGISTRY, SOURCES, ...yaml].join('\n---\n'), 'config.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  expect(loaded.errors).toEqual([]);
  return loaded.objects;
}

function run(config: ReturnType<typeof objects>, o: ExplainOptions): { e: Explanation; text: string; lines: string[] } {
  const e = explain(config, o, { now: () => NOW });
  expect(e.warnings).toEqual([]);
  const text = renderText(e);
  return { e, text, lines: text.trimEnd().split('\n') };
}

/** The numbered decision line `n.` */
const step = (lines: string[], n: number) => lines.find((l) => l.startsWith(`${n}. `)) ?? '';

describe('canary 90/10 with a header override (seeds 013, 014, 021, 017)', () => {
  const config = objects(seed('013'), seed('014'), seed('021'), seed('017'));
  const FROM = { from: 'frontend-0.production' };

  it('x-version: v2 always goes to v2, by http[0]', () => {
    const { e, lines } = run(config, { ...FROM, to: 'myapp:80', header: ['x-version: v2'] });
    expect(lines[0]).toBe("explain GET myapp:80/ -H 'x-version: v2' from Pod production/frontend-0 (sidecar, spiffe://cluster.local/ns/production/sa/frontend, 10.20.9.1); myapp resolves to Service production/myapp VIP 10.96.10.2");
    expect(step(lines, 1)).toBe('1. listener 0.0.0.0_80 (HTTP, filter chain 0; virtualOutbound hands the connection over by its original destination 10.96.10.2:80)');
    expect(step(lines, 2)).toBe('2. route config 80 → virtual host myapp.production.svc.cluster.local:80 (domain myapp)');
    expect(step(lines, 3)).toBe('3. VirtualService production/myapp http[0] (match headers x-version=v2) → outbound|80|v2|myapp.production.svc.cluster.local (100%)');
    // istiod's default retry policy, since http[0] sets none; no timeout (0s).
    expect(step(lines, 4)).toBe('4. no timeout, retries 2× on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes, no fault');
    // Two DestinationRules for one host: the first (by creation time, then name) supplies the policy — 014, not 021.
    expect(step(lines, 5)).toBe(
      '5. cluster outbound|80|v2|myapp.production.svc.cluster.local: EDS, LEAST_REQUEST, DestinationRule production/myapp subset v2, connect timeout 5s, ' +
        'circuit breakers 100 connections, 100 pending, 1000 requests, unlimited retries, ' +
        'outlier detection: eject after 5 consecutive 5xx, checked every 10s, for 30s, at most 50% of hosts, panic mode off, HTTP/2 upstream, 100 requests per connection; ' +
        'TLS: auto-mTLS (ISTIO_MUTUAL to workloads labelled tlsMode=istio, plaintext to others); 1 endpoint (1 healthy)',
    );
    expect(step(lines, 6)).toBe(
      '6. destination Pod production/myapp-v2-0 (10.20.0.2:8080), found by the endpoint metadata (istio.workload): the source sends mTLS (ISTIO_MUTUAL, SNI outbound_.80_.v2_.myapp.production.svc.cluster.local, expects spiffe://cluster.local/ns/production/sa/myapp); ' +
        'inbound mTLS STRICT on port 8080 (chain 0.0.0.0_8080): mTLS: the source presents spiffe://cluster.local/ns/production/sa/frontend → inbound|8080||',
    );
    expect(step(lines, 7)).toBe('7. authorization: allowed: no AuthorizationPolicy applies to this workload');
    expect(step(lines, 8)).toBe('8. JWT: no RequestAuthentication applies (no jwt_authn filter)');
    expect(lines.at(-1)).toBe('=> reaches Pod production/myapp-v2-0 (10.20.0.2:8080)');
    expect(e.outbound.destinations.map((d) => [d.cluster, d.percent])).toEqual([['outbound|80|v2|myapp.production.svc.cluster.local', 100]]);
  });

  it('/api without the header splits 90/10 by http[1]; each subset has its own load balancer and workload', () => {
    const { e, lines } = run(config, { ...FROM, to: 'myapp', path: '/api/orders' });
    expect(step(lines, 3)).toBe('3. VirtualService production/myapp http[1] (match prefix /api) → outbound|80|v1|myapp.production.svc.cluster.local (90%), outbound|80|v2|myapp.production.svc.cluster.local (10%)');
    expect(step(lines, 5)).toMatch(/^5\. cluster outbound\|80\|v1\|myapp\.production\.svc\.cluster\.local \(90%\): EDS, ROUND_ROBIN, DestinationRule production\/myapp subset v1,/);
    expect(step(lines, 6)).toMatch(/^6\. destination Pod production\/myapp-v1-0 \(10\.20\.0\.1:8080\)/);
    expect(step(lines, 9)).toMatch(/^9\. cluster outbound\|80\|v2\|myapp\.production\.svc\.cluster\.local \(10%\): EDS, LEAST_REQUEST,/);
    expect(step(lines, 10)).toMatch(/^10\. destination Pod production\/myapp-v2-0 \(10\.20\.0\.2:8080\)/);
    expect(lines.slice(-2)).toEqual(['=> 90% → reaches Pod production/myapp-v1-0 (10.20.0.1:8080)', '=> 10% → reaches Pod production/myapp-v2-0 (10.20.0.2:8080)']);
    expect(e.outbound.destinations.map((d) => [d.info.subset, d.weight, d.percent, d.endpoint?.address])).toEqual([
      ['v1', 90, 90, '10.20.0.1'],
      ['v2', 10, 10, '10.20.0.2'],
    ]);
    expect(e.destinations.map((d) => [d?.workload, d?.inbound?.mtlsMode, d?.inbound?.status])).toEqual([
      ['Pod production/myapp-v1-0', 'STRICT', 200],
      ['Pod production/myapp-v2-0', 'STRICT', 200],
    ]);
  });

  it('everything else takes http[2] with its timeout and retries', () => {
    const { lines } = run(config, { ...FROM, to: 'myapp.production.svc.cluster.local:80', path: '/web' });
    expect(step(lines, 2)).toBe('2. route config 80 → virtual host myapp.production.svc.cluster.local:80 (domain myapp.production.svc.cluster.local)');
    expect(step(lines, 3)).toBe('3. VirtualService production/myapp http[2] (match any request) → outbound|80|v1|myapp.production.svc.cluster.local (100%)');
    expect(step(lines, 4)).toBe('4. timeout 30s, retries 3× on connect-failure,refused-stream,retriable-status-codes (status 503), 10s per try, no fault');
  });

  it('prints the same decisions as JSON', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-explain-'));
    fs.writeFileSync(path.join(dir, 'all.yaml'), [REGISTRY, SOURCES, seed('013'), seed('014'), seed('017')].join('\n---\n'));
    const r = await runExplain(dir, { ...FROM, to: 'myapp:80', header: ['x-version: v2'], output: 'json' });
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout) as Explanation;
    expect(j.outbound.route).toMatchObject({ virtualService: { kind: 'VirtualService', namespace: 'production', name: 'myapp', rule: 0 }, match: 'headers x-version=v2' });
    expect(j.outbound.destinations[0]).toMatchObject({
      cluster: 'outbound|80|v2|myapp.production.svc.cluster.local',
      percent: 100,
      info: { lb: 'LEAST_REQUEST', destinationRule: { namespace: 'production', name: 'myapp' }, circuitBreakers: { maxConnections: 100, maxPendingRequests: 100, maxRequests: 1000 }, outlierDetection: { consecutive5xx: 5, interval: '10s' } },
      tls: { mode: 'ISTIO_MUTUAL', via: 'auto-mTLS' },
    });
    expect(j.destinations[0]).toMatchObject({ workload: 'Pod production/myapp-v2-0', serviceAccount: 'myapp', inbound: { mtlsMode: 'STRICT', connection: { accepted: true, mtls: true }, status: 200 } });
    expect(j.result).toEqual(['reaches Pod production/myapp-v2-0 (10.20.0.2:8080)']);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('fault injection (seeds 009, 022)', () => {
  it('009 aborts half the calls to payment-service with 503 at the source proxy', () => {
    const { e, lines } = run(objects(seed('009')), { from: 'frontend-0.production', to: 'payment-service' });
    expect(step(lines, 3)).toBe('3. VirtualService production/payment-service-fault http[0] (match any request) → outbound|80||payment-service.production.svc.cluster.local (100%)');
    expect(step(lines, 4)).toBe('4. no timeout, retries 2× on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes, fault: abort 50% HTTP 503');
    // No DestinationRule: the cluster is mizzen's defaults.
    expect(step(lines, 5)).toMatch(/^5\. cluster outbound\|80\|\|payment-service\.production\.svc\.cluster\.local: EDS, LEAST_REQUEST, connect timeout 10s, circuit breakers unlimited connections, unlimited pending, unlimited requests, unlimited retries, no outlier detection;/);
    // No PeerAuthentication: PERMISSIVE.
    expect(step(lines, 6)).toMatch(/inbound mTLS PERMISSIVE on port 8080 \(chain 0\.0\.0\.0_8080\): mTLS: the source presents spiffe:\/\/cluster\.local\/ns\/production\/sa\/frontend/);
    expect(lines.slice(-2)).toEqual(['=> fault injected by the source proxy: abort 50% HTTP 503 — otherwise:', '=> reaches Pod production/payment-service-0 (10.20.3.1:8080)']);
    expect(e.outbound.route?.policy?.fault).toEqual({ abort: { percent: 50, httpStatus: 503 } });
  });

  it('022 delays and aborts only requests with x-test-fault: inject', () => {
    const config = objects(seed('022'));
    const faulty = run(config, { from: 'frontend-0.production', to: 'myapp', header: ['x-test-fault: inject'] });
    expect(step(faulty.lines, 3)).toBe('3. VirtualService production/myapp-fault http[0] (match headers x-test-fault=inject) → outbound|80||myapp.production.svc.cluster.local (100%)');
    expect(step(faulty.lines, 4)).toBe('4. no timeout, retries 2× on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes, fault: delay 5s on 50%, abort 10% HTTP 503');
    expect(faulty.e.outbound.route?.policy?.fault).toEqual({ delay: { fixed: '5s', percent: 50 }, abort: { percent: 10, httpStatus: 503 } });
    const plain = run(config, { from: 'frontend-0.production', to: 'myapp', header: ['x-test-fault: no'] });
    expect(step(plain.lines, 3)).toBe('3. VirtualService production/myapp-fault http[1] (match any request) → outbound|80||myapp.production.svc.cluster.local (100%)');
    expect(plain.e.outbound.route?.policy?.fault).toBeUndefined();
  });
});

describe('JWT + authorization (seeds 008, 007) under STRICT mTLS (017)', () => {
  const config = objects(seed('007'), seed('008'), seed('017'));
  const ORDERS = { to: 'order-api:8080', method: 'POST' };
  const JWT_LINE = 'JWT: provider origins-0 (issuer https://accounts.google.com, audiences your-api-audience, token from header Authorization "Bearer …" or query access_token, keys: jwksUri not fetched (offline translation; `serve` fetches it): tokens would be rejected until it is, token forwarded upstream); requirement: a token, if present, must verify against origins-0; a request without one passes (allow_missing)';
  const token = (claims: Record<string, unknown>) => `Bearer ${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

  it('payment-service may POST the payment path: ALLOW by rule 0', () => {
    const { e, lines } = run(config, { ...ORDERS, from: 'payment-service-0.production', path: '/api/orders/*/payment' });
    expect(step(lines, 6)).toMatch(/inbound mTLS STRICT on port 8080 \(chain 0\.0\.0\.0_8080\): mTLS: the source presents spiffe:\/\/cluster\.local\/ns\/production\/sa\/payment-service → inbound\|8080\|\|$/);
    expect(step(lines, 7)).toBe('7. authorization: ALLOW by ns[production]-policy[order-api-allow]-rule[0] (AuthorizationPolicy production/order-api-allow rules[0])');
    expect(step(lines, 8)).toBe(`8. ${JWT_LINE}; passes: no token in the request: passes (allow_missing); an AuthorizationPolicy with requestPrincipals decides whether one is needed`);
    expect(e.destinations[0]?.inbound?.authz?.by).toMatchObject({ namespace: 'production', name: 'order-api-allow', rule: 0, action: 'ALLOW' });
    expect(lines.at(-1)).toBe('=> reaches Pod production/order-api-v1-0 (10.20.1.1:8080)');
  });

  it('shows that Istio reads the seed\'s `/api/orders/*/payment` as an exact path: a real order id is denied', () => {
    const { lines } = run(config, { ...ORDERS, from: 'payment-service-0.production', path: '/api/orders/42/payment' });
    expect(step(lines, 7)).toBe(
      '7. authorization: 403 denied: no ALLOW policy matched (ALLOW policies here: ns[production]-policy[order-api-allow]-rule[0], ns[production]-policy[order-api-allow]-rule[1], ns[production]-policy[order-api-allow]-rule[2])',
    );
    expect(lines.at(-1)).toBe("=> 403 from Pod production/order-api-v1-0's proxy");
  });

  it('the ingress gateway (namespace istio-system) may GET /api/*: ALLOW by rule 1; another workload may not', () => {
    const gw = run(config, { to: 'order-api.production:8080', from: 'istio-ingressgateway-0.istio-system', path: '/api/orders' });
    expect(step(gw.lines, 7)).toBe('7. authorization: ALLOW by ns[production]-policy[order-api-allow]-rule[1] (AuthorizationPolicy production/order-api-allow rules[1])');
    const other = run(config, { to: 'order-api:8080', from: 'frontend-0.production', path: '/api/orders' });
    expect(other.e.destinations[0]?.inbound).toMatchObject({ status: 403, authz: { allowed: false, reason: expect.stringMatching(/^no ALLOW policy matched/) } });
  });

  it('a token is checked against the RequestAuthentication: claims pass to authorization, a wrong issuer is 401', () => {
    const good = run(config, { ...ORDERS, from: 'payment-service-0.production', path: '/api/orders/*/payment', header: [`Authorization: ${token({ iss: 'https://accounts.google.com', aud: 'your-api-audience', sub: 'u1' })}`] });
    expect(step(good.lines, 8)).toBe(
      `8. ${JWT_LINE}; passes: token from header Authorization, issuer https://accounts.google.com (provider origins-0); signature not checked offline — assumed valid, so its claims reach authorization; claims copied to headers: sub → x-user-id, email → x-user-email`,
    );
    expect(good.e.destinations[0]?.inbound?.jwt?.payload).toEqual({ iss: 'https://accounts.google.com', aud: 'your-api-audience', sub: 'u1' });
    // The caller's credentials are not printed back.
    expect(good.lines[0]).toContain("-H 'authorization: Bearer [redacted]'");
    expect(JSON.stringify(good.e)).not.toContain('.sig');
    const wrongIssuer = run(config, { ...ORDERS, from: 'payment-service-0.production', path: '/api/orders/*/payment', header: [`Authorization: ${token({ iss: 'https://evil.example', aud: 'your-api-audience' })}`] });
    expect(step(wrongIssuer.lines, 8)).toBe(`8. ${JWT_LINE}; rejected: 401: Jwt issuer "https://evil.example" is not configured`);
    expect(step(wrongIssuer.lines, 7)).toMatch(/\(not reached: the JWT check rejects the request first\)$/);
    expect(wrongIssuer.lines.at(-1)).toBe("=> 401 from Pod production/order-api-v1-0's proxy");
    const wrongAudience = run(config, { ...ORDERS, from: 'payment-service-0.production', path: '/api/orders/*/payment', header: [`Authorization: ${token({ iss: 'https://accounts.google.com', aud: 'other' })}`] });
    expect(wrongAudience.e.destinations[0]?.inbound).toMatchObject({ status: 401, jwt: { allowed: false, reason: '401: Audiences in Jwt are not allowed' } });
    const expired = run(config, { ...ORDERS, from: 'payment-service-0.production', path: '/api/orders/*/payment', header: [`Authorization: ${token({ iss: 'https://accounts.google.com', aud: 'your-api-audience', exp: NOW - 60 })}`] });
    expect(expired.e.destinations[0]?.inbound?.jwt?.reason).toBe('401: Jwt is expired');
  });

  it('requestPrincipals make the token required: ALLOW with one, 403 without', () => {
    const requireJwt = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require-jwt, namespace: production }
spec:
  selector: { matchLabels: { app: order-api } }
  action: ALLOW
  rules:
  - from: [{ source: { requestPrincipals: ["https://accounts.google.com/*"] } }]
    to: [{ operation: { paths: ["/reports/*"] } }]
`;
    const c = objects(seed('007'), seed('008'), seed('017'), requireJwt);
    const withToken = run(c, { from: 'frontend-0.production', to: 'order-api:8080', path: '/reports/daily', header: [`Authorization: ${token({ iss: 'https://accounts.google.com', aud: 'your-api-audience', sub: 'alice' })}`] });
    expect(step(withToken.lines, 7)).toBe('7. authorization: ALLOW by ns[production]-policy[require-jwt]-rule[0] (AuthorizationPolicy production/require-jwt rules[0])');
    const without = run(c, { from: 'frontend-0.production', to: 'order-api:8080', path: '/reports/daily' });
    expect(without.e.destinations[0]?.inbound).toMatchObject({ status: 403, jwt: { allowed: true } });
  });

  it('both sides of mTLS: a DestinationRule that disables TLS meets STRICT and the connection is refused', () => {
    const disable = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: order-api-plaintext, namespace: production }
spec:
  host: order-api
  trafficPolicy: { tls: { mode: DISABLE } }
`;
    const { lines } = run(objects(seed('007'), seed('008'), seed('017'), disable), { ...ORDERS, from: 'payment-service-0.production', path: '/api/orders/*/payment' });
    expect(step(lines, 5)).toMatch(/DestinationRule production\/order-api-plaintext, .*; TLS: plaintext; 1 endpoint \(1 healthy\)$/);
    expect(step(lines, 6)).toMatch(/the source sends plaintext; inbound mTLS STRICT on port 8080: connection refused: STRICT mTLS: a plaintext connection matches no filter chain and is closed$/);
    expect(lines.at(-1)).toBe("=> connection refused by Pod production/order-api-v1-0's proxy (Envoy answers 503 to the app)");
  });
});

describe('other paths through the config', () => {
  it('TCP to a workload without a sidecar: tcp_proxy, plaintext, nothing checked there', () => {
    const { lines } = run(objects(seed('017')), { from: 'frontend-0.production', to: 'legacy-db:3306' });
    expect(step(lines, 1)).toBe('1. listener 10.96.10.4_3306 (TCP, default filter chain; virtualOutbound hands the connection over by its original destination 10.96.10.4:3306)');
    expect(step(lines, 2)).toBe('2. TCP proxy → outbound|3306||legacy-db.production.svc.cluster.local (100%)');
    expect(step(lines, 4)).toBe(
      "4. destination selector app=legacy-db (10.20.2.1:3306), found by Service production/legacy-db's selector (no Pod object): no proxy runs beside it (not injected), so nothing checks mTLS, JWT or authorization there; the source sends plaintext (auto-mTLS: endpoint not labelled tlsMode=istio)",
    );
  });

  it('a mirror (016 with 014\'s subsets) and a source pod without a sidecar', () => {
    const config = objects(seed('016'), seed('014'), 'apiVersion: v1\nkind: Pod\nmetadata: { name: batch-0, namespace: production, labels: { app: batch } }\nstatus: { podIP: 10.20.7.1 }');
    const { lines } = run(config, { from: 'frontend-0.production', to: 'myapp' });
    expect(step(lines, 3)).toBe('3. VirtualService production/myapp-mirror http[0] (match any request) → outbound|80|v1|myapp.production.svc.cluster.local (100%)');
    expect(step(lines, 4)).toMatch(/, mirror 100% to outbound\|80\|v2\|myapp\.production\.svc\.cluster\.local$/);
    const e = explain(config, { from: 'batch-0.production', to: 'myapp' }, { now: () => NOW });
    expect(e.warnings).toEqual(['Pod production/batch-0 does not look injected (no security.istio.io/tlsMode=istio label or sidecar.istio.io/status annotation): without a sidecar its traffic takes none of these outbound decisions']);
  });

  it('an unknown host passes through under ALLOW_ANY', () => {
    const { lines } = run(objects(), { from: 'frontend-0.production', to: 'example.com' });
    expect(step(lines, 2)).toBe('2. route config 80 → virtual host allow_any (domain *)');
    expect(step(lines, 3)).toMatch(/^3\. no service with this host and port: passed through to the original destination \(outboundTrafficPolicy ALLOW_ANY\) \(match any request\) → PassthroughCluster \(100%\)$/);
  });

  it('walks a proxyless gRPC client through its api_listener (bookinfo: jason → v2)', () => {
    const bookinfo = fs.readdirSync(path.join(ROOT, 'examples/bookinfo')).map((f) => fs.readFileSync(path.join(ROOT, 'examples/bookinfo', f), 'utf8')).join('\n---\n');
    const t = translate(bookinfo, grpcProxy('bookinfo', {}, ['reviews.bookinfo.svc.cluster.local:9080']));
    const cfg = { listeners: t.lds, routes: t.rds, clusters: t.cds, endpoints: t.eds };
    const w = walk(cfg, { port: 9080, listenerName: 'reviews.bookinfo.svc.cluster.local:9080', host: 'reviews.bookinfo.svc.cluster.local:9080', path: '/x.Y/Z', method: 'POST', headers: { 'end-user': 'jason' } });
    expect(w.route?.route?.cluster).toBe('outbound|9080|v2|reviews.bookinfo.svc.cluster.local');
    expect(w.domain).toBe('reviews.bookinfo.svc.cluster.local:9080');
  });

  it('refuses bad input with a clear message', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-explain-'));
    fs.writeFileSync(path.join(dir, 'all.yaml'), [REGISTRY, SOURCES].join('\n---\n'));
    expect(await runExplain(dir, { from: 'nope.production', to: 'myapp:80' })).toMatchObject({ code: 1, stderr: expect.stringContaining('pod nope.production not found in the config folder') });
    expect(await runExplain(dir, { to: 'myapp:80' })).toMatchObject({ code: 1, stderr: expect.stringContaining('give the source') });
    expect(await runExplain(dir, { fromNamespace: 'production', to: 'myapp:http' })).toMatchObject({ code: 1, stderr: expect.stringContaining('--to must be host:port') });
    expect(await runExplain(dir, { fromNamespace: 'production', to: 'myapp', header: ['nocolon'] })).toMatchObject({ code: 1, stderr: expect.stringContaining("-H must be 'name: value'") });
    expect(await runExplain(path.join(dir, 'missing'), { fromNamespace: 'production', to: 'myapp' })).toMatchObject({ code: 1, stderr: expect.stringContaining('does not exist') });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is wired into the mizzen command', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-explain-'));
    fs.writeFileSync(path.join(dir, 'all.yaml'), [REGISTRY, SOURCES, seed('013'), seed('014')].join('\n---\n'));
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'explain', '--config', dir, '--from', 'frontend-0.production', '--to', 'myapp:80', '-H', 'x-version: v2']);
    expect(stdout).toContain('3. VirtualService production/myapp http[0] (match headers x-version=v2) → outbound|80|v2|myapp.production.svc.cluster.local (100%)');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
