/**
 * VirtualService HTTP routes → Envoy routes for Envoy proxies (sidecars and gateways), as istiod builds them
 * (shared/reference/istio-xds.md §3.3, §3.4). Every route produced here is also encoded as a RouteConfiguration and
 * passed through the strict proto + protoc-gen-validate checker.
 */
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import type { HTTPRoute, VirtualServiceSpec } from '../../src/config/kinds/virtual-service.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { DEFAULT_MESH } from '../../src/model/mesh.ts';
import { parseProxy } from '../../src/model/proxy.ts';
import { RecordingView } from '../../src/model/proxy-view.ts';
import { PushContext } from '../../src/model/push-context.ts';
import { mergeDelegate, mergeHttpRoute } from '../../src/model/virtual-service-delegate.ts';
import { resolveGatewayName } from '../../src/model/names.ts';
import { encodeResource } from '../../src/proto/encode.ts';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { jsonToStruct } from '../../src/proto/struct.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import type { Json } from '../../src/xds/builders/common.ts';
import { defaultRoute, translateHttpRoute, type RouteContext } from '../../src/xds/builders/route.ts';

const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 10.1.0.1, labels: { app: reviews, version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ratings, namespace: default }
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  endpoints: [{ address: 10.1.0.2 }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: multi, namespace: default }
spec:
  hosts: [multi.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }, { number: 9080, name: http-alt, protocol: HTTP }]
  endpoints: [{ address: 10.1.0.3 }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ratings, namespace: other }
spec:
  hosts: [ratings.other.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7070, name: http, protocol: HTTP }]
  endpoints: [{ address: 10.1.0.4 }]
`;

const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';
const RATINGS = 'outbound|8080||ratings.default.svc.cluster.local';
const ZERO = { seconds: 0, nanos: 0 };
const PREVIOUS_HOSTS = [
  { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } },
];
const DEFAULT_RETRY = {
  num_retries: { value: 2 },
  retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
  retry_host_predicate: PREVIOUS_HOSTS,
  host_selection_retry_max_attempts: 5,
};
const meta = (name: string, ns = 'default') => ({
  filter_metadata: { istio: jsonToStruct({ config: `/apis/networking.istio.io/v1/namespaces/${ns}/virtual-service/${name}` }) },
});
const ANY = { prefix: '/', case_sensitive: { value: true } };

interface Options {
  labels?: Record<string, string>;
  gateways?: string[];
  tls?: boolean;
  port?: number;
  proxyless?: boolean;
}

/** Strict checks every produced route list must pass: protobufjs encoding and Envoy's proto + PGV rules. */
function assertValidEnvoy(routes: Json[]): void {
  const rc = { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes }] };
  expect(() => encodeResource(TypeUrl.RouteConfiguration, 'r', rc)).not.toThrow();
  expect(checkEnvoyResource('envoy.config.route.v3.RouteConfiguration', rc)).toEqual([]);
}

function world(yaml: string, opts: Options = {}) {
  const loaded = loadYamlText(`${SERVICES}\n---\n${yaml}`, 'test.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  expect(loaded.errors.flatMap((e) => e.errors.map((x) => `${x.path}: ${x.message}`))).toEqual([]);
  const store = new ConfigStore();
  for (const o of loaded.objects) store.upsert(o);
  const push = new PushContext(store.snapshot(), DEFAULT_MESH);
  const parsed = parseProxy({
    id: 'sidecar~10.0.0.1~app-0.default~default.svc.cluster.local',
    metadata: { NAMESPACE: 'default', LABELS: opts.labels ?? { app: 'productpage' } },
  });
  if (!parsed.ok) throw new Error(parsed.errors);
  const view = new RecordingView(parsed.value);
  const notes: string[] = [];
  const ctx: RouteContext = {
    push,
    view,
    service: push.serviceFor(view, 'reviews.default.svc.cluster.local')!,
    port: opts.port ?? 9080,
    proxyless: opts.proxyless ?? false,
    note: (m) => notes.push(m),
    ...(opts.gateways ? { gateways: opts.gateways } : {}),
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
  };
  const vsNamed = (name: string) => {
    const vs = push.virtualServices.find((v) => v.object.metadata.name === name);
    if (!vs) throw new Error(`no VirtualService ${name}`);
    return vs;
  };
  /** Translates a VirtualService's HTTP routes in order, stopping after a catch-all, as a generator does. */
  const routes = (name: string, override?: (http: HTTPRoute[]) => HTTPRoute[]): Json[] => {
    const vs = vsNamed(name);
    const out: Json[] = [];
    const http = override ? override(vs.object.spec.http ?? []) : (vs.object.spec.http ?? []);
    for (const [i, h] of http.entries()) {
      const r = translateHttpRoute(h, i, vs, ctx);
      out.push(...r.routes);
      if (r.catchAll) break;
    }
    if (!ctx.proxyless) assertValidEnvoy(out);
    return out;
  };
  const translateOne = (name: string, index = 0) => translateHttpRoute(vsNamed(name).object.spec.http![index]!, index, vsNamed(name), ctx);
  return { push, ctx, notes, routes, translateOne };
}

const vs = (name: string, spec: string, ns = 'default') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: ${ns} }
spec:
${spec
  .trim()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}`;

describe('Envoy routes: destinations, names, decorator, metadata', () => {
  it('a single destination: cluster, 0s timeouts, default retries, decorator host:port/*, config metadata', () => {
    const w = world(vs('r', 'hosts: [reviews]\nhttp:\n- route: [{ destination: { host: reviews } }]'));
    expect(w.routes('r')).toEqual([
      {
        match: ANY,
        route: { cluster: REVIEWS, timeout: ZERO, max_grpc_timeout: ZERO, retry_policy: DEFAULT_RETRY },
        metadata: meta('r'),
        decorator: { operation: 'reviews.default.svc.cluster.local:9080/*' },
      },
    ]);
  });

  it('route and match names join with "."; statPrefix; decorator path from the match; timeout also bounds grpc-timeout', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- name: api
  match:
  - { name: exact, uri: { exact: /api/v1 }, statPrefix: api-exact }
  - { name: re, uri: { regex: "/api/v[0-9]+" } }
  - { uri: { prefix: /api }, ignoreUriCase: true }
  route: [{ destination: { host: ratings } }]
  timeout: 1.5s`,
      ),
    );
    const timeout = { seconds: 1, nanos: 500_000_000 };
    const action = { cluster: RATINGS, timeout, max_grpc_timeout: timeout, retry_policy: DEFAULT_RETRY };
    expect(w.routes('r')).toEqual([
      { name: 'api.exact', match: { path: '/api/v1', case_sensitive: { value: true } }, route: action, metadata: meta('r'), stat_prefix: 'api-exact', decorator: { operation: 'ratings.default.svc.cluster.local:8080/api/v1' } },
      { name: 'api.re', match: { safe_regex: { regex: '/api/v[0-9]+' }, case_sensitive: { value: true } }, route: action, metadata: meta('r'), decorator: { operation: 'ratings.default.svc.cluster.local:8080/api/v[0-9]+' } },
      { name: 'api', match: { prefix: '/api', case_sensitive: { value: false } }, route: action, metadata: meta('r'), decorator: { operation: 'ratings.default.svc.cluster.local:8080/api*' } },
    ]);
  });

  it('weighted destinations: weight-0 entries skipped, per-destination headers and authority on the cluster entry, decorator <vs>:<port>', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- route:
  - destination: { host: reviews, subset: v1 }
    weight: 80
    headers:
      request: { set: { x-v: "1", ":authority": v1.example }, remove: [x-drop] }
      response: { add: { x-served-by: v1 } }
  - { destination: { host: reviews, subset: v2 }, weight: 20 }
  - { destination: { host: multi }, weight: 0 }`,
      ),
    );
    const [r] = w.routes('r');
    expect(r!.route).toEqual({
      weighted_clusters: {
        clusters: [
          {
            name: 'outbound|9080|v1|reviews.default.svc.cluster.local',
            weight: { value: 80 },
            request_headers_to_add: [{ header: { key: 'x-v', value: '1' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
            request_headers_to_remove: ['x-drop'],
            response_headers_to_add: [{ header: { key: 'x-served-by', value: 'v1' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' }],
            host_rewrite_literal: 'v1.example',
          },
          { name: 'outbound|9080|v2|reviews.default.svc.cluster.local', weight: { value: 20 } },
        ],
      },
      timeout: ZERO,
      max_grpc_timeout: ZERO,
      retry_policy: DEFAULT_RETRY,
    });
    expect(r!.decorator).toEqual({ operation: 'r:9080/*' });
    expect(r!.request_headers_to_add).toBeUndefined();
  });

  it('a destination without port on a multi-port service uses the listener port; a one-port service its port', () => {
    const w = world(vs('r', 'hosts: [reviews]\nhttp:\n- route: [{ destination: { host: multi }, weight: 50 }, { destination: { host: ratings }, weight: 50 }]'));
    const clusters = (w.routes('r')[0]!.route as any).weighted_clusters.clusters.map((c: Json) => c.name);
    expect(clusters).toEqual(['outbound|9080||multi.default.svc.cluster.local', RATINGS]);
  });

  it('the default route (no VirtualService) carries the decorator and max_grpc_timeout 0s', () => {
    const w = world('');
    const r = defaultRoute(w.ctx);
    expect(r).toEqual({
      name: 'default',
      match: ANY,
      route: { cluster: REVIEWS, timeout: ZERO, max_grpc_timeout: ZERO, retry_policy: DEFAULT_RETRY },
      decorator: { operation: 'reviews.default.svc.cluster.local:9080/*' },
    });
    assertValidEnvoy([r]);
  });

  it('proxyless translation is unchanged: no decorator, no max_grpc_timeout, max_stream_duration from the timeout', () => {
    const w = world(vs('r', 'hosts: [reviews]\nhttp:\n- route: [{ destination: { host: reviews } }]\n  timeout: 2s'), { proxyless: true });
    expect(w.routes('r')).toEqual([
      {
        match: ANY,
        route: { cluster: REVIEWS, timeout: { seconds: 2, nanos: 0 }, max_stream_duration: { max_stream_duration: { seconds: 2, nanos: 0 } }, retry_policy: DEFAULT_RETRY },
        metadata: meta('r'),
      },
    ]);
    expect(defaultRoute(w.ctx)).not.toHaveProperty('decorator');
  });
});

describe('Envoy routes: header operations', () => {
  it('route-level set/add/remove on request and response; keys sorted, set before add; :authority becomes the host rewrite', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- headers:
    request:
      set: { x-b: "2", x-a: "1", ":authority": api.example }
      add: { x-z: z, x-c: c }
      remove: [x-secret, x-other]
    response:
      set: { cache-control: no-store }
      remove: [server]
  route:
  - destination: { host: reviews }
    headers: { request: { set: { x-dest: d } }, response: { remove: [x-internal] } }`,
      ),
    );
    const [r] = w.routes('r');
    const set = (key: string, value: string) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    const add = (key: string, value: string) => ({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' });
    expect(r!.request_headers_to_add).toEqual([set('x-a', '1'), set('x-b', '2'), add('x-c', 'c'), add('x-z', 'z'), set('x-dest', 'd')]);
    expect(r!.request_headers_to_remove).toEqual(['x-secret', 'x-other']);
    expect(r!.response_headers_to_add).toEqual([set('cache-control', 'no-store')]);
    expect(r!.response_headers_to_remove).toEqual(['server', 'x-internal']);
    expect((r!.route as Json).host_rewrite_literal).toBe('api.example');
  });

  it('host in request.add rewrites the host; other pseudo-headers and host are never sent as header operations', () => {
    const w = world(vs('r', 'hosts: [reviews]\nhttp:\n- route: [{ destination: { host: reviews } }]'));
    const [r] = w.routes('r', (http) => [
      { ...http[0]!, headers: { request: { add: { Host: 'h.example', ':path': '/x', 'x-ok': 'y' }, remove: [':method', 'host', 'x-gone'] }, response: { set: { ':status': '200' } } } },
    ]);
    expect(r!.request_headers_to_add).toEqual([{ header: { key: 'x-ok', value: 'y' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' }]);
    expect(r!.request_headers_to_remove).toEqual(['x-gone']);
    expect(r!.response_headers_to_add).toBeUndefined();
    expect((r!.route as Json).host_rewrite_literal).toBe('h.example');
  });

  it('a single destination’s authority applies only when the route sets none', () => {
    const w = world(vs('r', 'hosts: [reviews]\nhttp:\n- route: [{ destination: { host: reviews } }]'));
    const dest = { destination: { host: 'reviews' }, headers: { request: { set: { ':authority': 'dest.example' } } } };
    const [own] = w.routes('r', () => [{ route: [dest] }]);
    expect((own!.route as Json).host_rewrite_literal).toBe('dest.example');
    const [routeWins] = w.routes('r', () => [{ route: [dest], rewrite: { authority: 'route.example' } }]);
    expect((routeWins!.route as Json).host_rewrite_literal).toBe('route.example');
  });
});

describe('Envoy routes: rewrite', () => {
  it('uri → prefix_rewrite (also for exact matches), authority → host_rewrite_literal', () => {
    const w = world(
      vs('r', 'hosts: [reviews]\nhttp:\n- match: [{ uri: { exact: /old } }, { uri: { prefix: /v1/ } }]\n  rewrite: { uri: /new, authority: backend.example }\n  route: [{ destination: { host: reviews } }]'),
    );
    const rs = w.routes('r');
    expect(rs.map((r) => (r.route as Json).prefix_rewrite)).toEqual(['/new', '/new']);
    expect(rs.map((r) => (r.route as Json).host_rewrite_literal)).toEqual(['backend.example', 'backend.example']);
  });

  it('uriRegexRewrite → regex_rewrite {pattern, substitution}; rewrite.authority wins over a header authority', () => {
    const w = world(vs('r', 'hosts: [reviews]\nhttp:\n- rewrite: { uriRegexRewrite: { match: "^/service/([^/]+)(/.*)$", rewrite: "\\\\2/instance/\\\\1" } }\n  route: [{ destination: { host: reviews } }]'));
    const [r] = w.routes('r');
    expect((r!.route as Json).regex_rewrite).toEqual({ pattern: { regex: '^/service/([^/]+)(/.*)$' }, substitution: '\\2/instance/\\1' });
    expect(r!.route).not.toHaveProperty('prefix_rewrite');
    const [both] = w.routes('r', () => [{ route: [{ destination: { host: 'reviews' } }], headers: { request: { add: { host: 'hdr.example' } } }, rewrite: { authority: 'rw.example' } }]);
    expect((both!.route as Json).host_rewrite_literal).toBe('rw.example');
  });
});

describe('Envoy routes: mirrors', () => {
  const policy = (cluster: string, numerator: number, denominator: string) => ({ cluster, runtime_fraction: { default_value: { numerator, denominator } }, trace_sampled: { value: false } });
  const mirrorsOf = (yaml: string) => {
    const w = world(vs('r', `hosts: [reviews]\nhttp:\n- route: [{ destination: { host: reviews } }]\n${yaml}`));
    return (w.routes('r')[0]!.route as Json).request_mirror_policies;
  };

  it('mirrorPercentage (double) → MILLION; legacy mirrorPercent → HUNDRED; absent → 100/HUNDRED; 0 → no mirror', () => {
    expect(mirrorsOf('  mirror: { host: ratings }\n  mirrorPercentage: { value: 12.5 }')).toEqual([policy(RATINGS, 125000, 'MILLION')]);
    expect(mirrorsOf('  mirror: { host: ratings, subset: v2 }\n  mirrorPercent: 30')).toEqual([policy('outbound|8080|v2|ratings.default.svc.cluster.local', 30, 'HUNDRED')]);
    expect(mirrorsOf('  mirror: { host: ratings }')).toEqual([policy(RATINGS, 100, 'HUNDRED')]);
    expect(mirrorsOf('  mirror: { host: ratings }\n  mirrorPercentage: { value: 0 }')).toBeUndefined();
    expect(mirrorsOf('  mirror: { host: ratings }\n  mirrorPercent: 0')).toBeUndefined();
  });

  it('mirrors[] each with its own percentage, after mirror; the cluster via destinationCluster (listener port for multi-port)', () => {
    expect(
      mirrorsOf(`  mirror: { host: ratings }
  mirrorPercentage: { value: 50 }
  mirrors:
  - { destination: { host: multi } }
  - { destination: { host: ratings.other.svc.cluster.local }, percentage: { value: 0.5 } }
  - { destination: { host: ratings, port: { number: 8080 } }, percentage: { value: 0 } }`),
    ).toEqual([
      policy(RATINGS, 500000, 'MILLION'),
      policy('outbound|9080||multi.default.svc.cluster.local', 100, 'HUNDRED'),
      policy('outbound|7070||ratings.other.svc.cluster.local', 5000, 'MILLION'),
    ]);
  });
});

describe('Envoy routes: redirect and direct response', () => {
  const redirectOf = (yaml: string, opts: Options = {}) => {
    const w = world(vs('r', `hosts: [reviews]\nhttp:\n- redirect: ${yaml}`), opts);
    const rs = w.routes('r');
    return { route: rs[0], notes: w.notes };
  };

  it('uri, authority, scheme, port and code; no route action, decorator from the VirtualService name', () => {
    const { route } = redirectOf('{ uri: /v2/login, authority: new.example, scheme: https, port: 8443, redirectCode: 302 }');
    expect(route).toEqual({
      match: ANY,
      redirect: { host_redirect: 'new.example', path_redirect: '/v2/login', scheme_redirect: 'https', port_redirect: 8443, response_code: 'FOUND' },
      metadata: meta('r'),
      decorator: { operation: 'r:9080/*' },
    });
  });

  it('response codes: 301 default, 303, 307, 308; a code Envoy cannot send leaves the route out with a note', () => {
    expect(redirectOf('{ uri: /a }').route!.redirect).toEqual({ path_redirect: '/a', response_code: 'MOVED_PERMANENTLY' });
    expect((redirectOf('{ uri: /a, redirectCode: 303 }').route!.redirect as Json).response_code).toBe('SEE_OTHER');
    expect((redirectOf('{ uri: /a, redirectCode: 307 }').route!.redirect as Json).response_code).toBe('TEMPORARY_REDIRECT');
    expect((redirectOf('{ uri: /a, redirectCode: 308 }').route!.redirect as Json).response_code).toBe('PERMANENT_REDIRECT');
    const bad = redirectOf('{ uri: /a, redirectCode: 304 }');
    expect(bad.route).toBeUndefined();
    expect(bad.notes).toEqual(['VirtualService default/r http[0]: redirect code 304 has no Envoy equivalent (301, 302, 303, 307, 308): route left out']);
  });

  it('derivePort: FROM_REQUEST_PORT is the listener port, FROM_PROTOCOL_DEFAULT sets none; :80 on http and :443 on https dropped', () => {
    expect(redirectOf('{ derivePort: FROM_REQUEST_PORT }').route!.redirect).toEqual({ port_redirect: 9080, response_code: 'MOVED_PERMANENTLY' });
    expect(redirectOf('{ derivePort: FROM_REQUEST_PORT }', { port: 80 }).route!.redirect).toEqual({ response_code: 'MOVED_PERMANENTLY' });
    expect(redirectOf('{ derivePort: FROM_PROTOCOL_DEFAULT, scheme: https }').route!.redirect).toEqual({ scheme_redirect: 'https', response_code: 'MOVED_PERMANENTLY' });
    expect(redirectOf('{ port: 80 }').route!.redirect).toEqual({ response_code: 'MOVED_PERMANENTLY' });
    expect(redirectOf('{ port: 443, scheme: https }').route!.redirect).toEqual({ scheme_redirect: 'https', response_code: 'MOVED_PERMANENTLY' });
    expect(redirectOf('{ port: 443 }').route!.redirect).toEqual({ port_redirect: 443, response_code: 'MOVED_PERMANENTLY' });
    expect(redirectOf('{ port: 443 }', { tls: true }).route!.redirect).toEqual({ response_code: 'MOVED_PERMANENTLY' });
    expect(redirectOf('{ port: 80, scheme: https }').route!.redirect).toEqual({ scheme_redirect: 'https', port_redirect: 80, response_code: 'MOVED_PERMANENTLY' });
  });

  it('directResponse with a string or bytes body, with route-level headers', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- match: [{ uri: { exact: /teapot } }]
  directResponse: { status: 418, body: { string: "short and stout" } }
  headers: { response: { set: { content-type: text/plain } } }
- directResponse: { status: 503, body: { bytes: "AAEC" } }`,
      ),
    );
    const rs = w.routes('r');
    expect(rs[0]).toEqual({
      match: { path: '/teapot', case_sensitive: { value: true } },
      direct_response: { status: 418, body: { inline_string: 'short and stout' } },
      response_headers_to_add: [{ header: { key: 'content-type', value: 'text/plain' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
      metadata: meta('r'),
      decorator: { operation: 'r:9080/teapot' },
    });
    expect(rs[1]!.direct_response).toEqual({ status: 503, body: { inline_bytes: 'AAEC' } });
  });
});

describe('Envoy routes: CORS and fault', () => {
  const CORS = 'envoy.filters.http.cors';
  it('corsPolicy → CorsPolicy per-filter config', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- corsPolicy:
    allowOrigins: [{ exact: "https://a.example" }, { prefix: "https://b." }, { regex: "https://.*\\\\.c\\\\.example" }]
    allowMethods: [GET, POST]
    allowHeaders: [x-a, x-b]
    exposeHeaders: [x-c]
    maxAge: 24h
    allowCredentials: false
    unmatchedPreflights: IGNORE
  route: [{ destination: { host: reviews } }]`,
      ),
    );
    const [r] = w.routes('r');
    expect(r!.typed_per_filter_config).toEqual({
      [CORS]: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
        allow_origin_string_match: [{ exact: 'https://a.example' }, { prefix: 'https://b.' }, { safe_regex: { regex: 'https://.*\\.c\\.example' } }],
        allow_methods: 'GET,POST',
        allow_headers: 'x-a,x-b',
        expose_headers: 'x-c',
        max_age: '86400',
        allow_credentials: { value: false },
        filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
        forward_not_matching_preflights: { value: false },
      },
    });
  });

  it('legacy allowOrigin → exact matchers; preflights forwarded unless IGNORE; fault sits beside CORS', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- corsPolicy: { allowOrigin: ["https://x.example"], unmatchedPreflights: FORWARD, maxAge: 90s }
  fault: { abort: { httpStatus: 503, percentage: { value: 10 } } }
  route: [{ destination: { host: reviews } }]`,
      ),
    );
    const [r] = w.routes('r');
    const tpfc = r!.typed_per_filter_config as Record<string, Json>;
    expect(tpfc[CORS]).toEqual({
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
      allow_origin_string_match: [{ exact: 'https://x.example' }],
      max_age: '90',
      filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
      forward_not_matching_preflights: { value: true },
    });
    expect(tpfc['envoy.filters.http.fault']).toEqual({
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
      abort: { http_status: 503, percentage: { numerator: 100000, denominator: 'MILLION' } },
    });
  });
});

describe('Envoy routes: retries (§3.4)', () => {
  const retryOf = (yaml: string, extra = '') => {
    const w = world(vs('r', `hosts: [reviews]\nhttp:\n- route: [{ destination: { host: reviews } }]\n  retries: ${yaml}`) + extra);
    return (w.routes('r')[0]!.route as Json).retry_policy;
  };

  it('attempts, retryOn split into codes and policies, perTryTimeout, remote localities, backoff, no previous-hosts', () => {
    expect(retryOf('{ attempts: 3, retryOn: "5xx,503,gateway-error,429", perTryTimeout: 2s, retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 25ms }')).toEqual({
      num_retries: { value: 3 },
      retry_on: '5xx,gateway-error,retriable-status-codes',
      retriable_status_codes: [503, 429],
      host_selection_retry_max_attempts: 5,
      per_try_timeout: { seconds: 2, nanos: 0 },
      retry_priority: {
        name: 'envoy.retry_priorities.previous_priorities',
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 2 },
      },
      retry_back_off: { base_interval: { seconds: 0, nanos: 25_000_000 } },
    });
  });

  it('attempts 0 turns retries off', () => {
    expect(retryOf('{ attempts: 0 }')).toBeUndefined();
  });

  it('consistent hashing drops the previous-hosts predicate for a single destination, unless retryIgnorePreviousHosts is true', () => {
    const dr = `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user } } }`;
    expect(retryOf('{ attempts: 2 }', dr)).toEqual({ num_retries: { value: 2 }, retry_on: DEFAULT_RETRY.retry_on, host_selection_retry_max_attempts: 5 });
    expect(retryOf('{ attempts: 2, retryIgnorePreviousHosts: true }', dr)).toMatchObject({ retry_host_predicate: PREVIOUS_HOSTS });
  });
});

describe('Envoy routes: which matches apply to the proxy', () => {
  const spec = `hosts: [reviews]
gateways: [mesh, my-gw, ingress/public]
http:
- name: mesh-only
  match: [{ gateways: [mesh], sourceLabels: { app: nobody } }]
  route: [{ destination: { host: reviews } }]
- name: my-gw
  match: [{ gateways: [my-gw], uri: { prefix: /a } }, { gateways: [ingress/public], uri: { prefix: /b } }]
  route: [{ destination: { host: reviews } }]
- name: labels
  match: [{ sourceLabels: { app: productpage } }]
  route: [{ destination: { host: ratings } }]`;

  it('a sidecar represents mesh: gateways [mesh] applies (sourceLabels then ignored) and is a catch-all', () => {
    const w = world(vs('r', spec));
    expect(w.routes('r').map((r) => r.name)).toEqual(['mesh-only']);
    expect(w.translateOne('r', 0).catchAll).toBe(true);
  });

  it('a gateway represents <ns>/<name>: short and ./ names resolve against the VirtualService namespace', () => {
    const w = world(vs('r', spec), { gateways: ['default/my-gw'] });
    expect(w.routes('r').map((r) => [r.name, (r.match as Json).prefix])).toEqual([
      ['my-gw', '/a'],
      ['labels', '/'],
    ]);
    const pub = world(vs('r', spec), { gateways: ['ingress/public'] });
    expect(pub.routes('r').map((r) => [r.name, (r.match as Json).prefix])).toEqual([
      ['my-gw', '/b'],
      ['labels', '/'],
    ]);
    expect(resolveGatewayName('./gw', 'ns')).toBe('ns/gw');
    expect(resolveGatewayName('gw.team.svc.cluster.local', 'ns')).toBe('team/gw');
    expect(resolveGatewayName('mesh', 'ns')).toBe('mesh');
  });

  it('without gateways: sourceLabels must select the proxy and sourceNamespace be its namespace', () => {
    const rest = `hosts: [reviews]
http:
- name: other-ns
  match: [{ sourceNamespace: other }]
  route: [{ destination: { host: ratings } }]
- name: port
  match: [{ port: 8080 }]
  route: [{ destination: { host: ratings } }]
- name: labels
  match: [{ sourceLabels: { app: productpage }, sourceNamespace: default, headers: { x-a: { exact: "1" } } }]
  route: [{ destination: { host: ratings } }]
- name: last
  route: [{ destination: { host: reviews } }]`;
    expect(world(vs('r', rest)).routes('r').map((r) => r.name)).toEqual(['labels', 'last']);
    expect(world(vs('r', rest), { labels: { app: 'other' } }).routes('r').map((r) => r.name)).toEqual(['last']);
  });

  it('headers and withoutHeaders sort together by name; queryParams; empty or regex "*" means present', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- match:
  - headers: { x-b: { exact: b }, x-d: {} }
    withoutHeaders: { x-a: { prefix: a }, x-c: {} }
    method: { exact: GET }
    queryParams: { q: {}, id: { exact: "7" } }
  route: [{ destination: { host: reviews } }]`,
      ),
    );
    const [r] = w.routes('r');
    // Validation refuses regex "*" (not RE2), but istiod still reads it as "present" (canBeConvertedToPresentMatch).
    const [star] = w.routes('r', (http) => [
      { ...http[0]!, match: [{ ...http[0]!.match![0]!, headers: { 'x-b': { exact: 'b' }, 'x-d': { regex: '*' } }, queryParams: { q: { regex: '*' }, id: { exact: '7' } } }] },
    ]);
    expect(star!.match).toEqual(r!.match);
    expect(r!.match).toEqual({
      prefix: '/',
      case_sensitive: { value: true },
      headers: [
        { name: 'x-a', string_match: { prefix: 'a' }, invert_match: true, treat_missing_header_as_empty: true },
        { name: 'x-b', string_match: { exact: 'b' } },
        { name: 'x-c', present_match: true, invert_match: true },
        { name: 'x-d', present_match: true },
        { name: ':method', string_match: { exact: 'GET' } },
      ],
      query_parameters: [
        { name: 'id', string_match: { exact: '7' } },
        { name: 'q', present_match: true },
      ],
    });
  });

  it('catch-all as istiod decides it: prefix / or regex .* without header conditions ends the list', () => {
    const w = world(
      vs(
        'r',
        `hosts: [reviews]
http:
- match: [{ uri: { regex: ".*" } }]
  route: [{ destination: { host: ratings } }]
- route: [{ destination: { host: reviews } }]`,
      ),
    );
    expect(w.routes('r')).toHaveLength(1);
    expect(w.translateOne('r', 0).catchAll).toBe(true);
  });
});

const DELEGATE_ROOT = vs(
  'root',
  `hosts: [reviews]
http:
- name: api
  match: [{ name: m, uri: { prefix: /api }, headers: { x-root: { exact: "1" } } }]
  delegate: { name: api-routes, namespace: other }
  timeout: 5s
  headers: { request: { set: { x-from: root } } }
  corsPolicy: { allowOrigins: [{ exact: "https://root.example" }] }
  mirror: { host: ratings }
  mirrorPercentage: { value: 25 }
- name: fallback
  route: [{ destination: { host: reviews } }]`,
);

const DELEGATE_API = vs(
  'api-routes',
  `http:
- name: v2
  match: [{ name: d, uri: { prefix: /api/v2 }, headers: { x-leaf: { exact: "2" } } }]
  route: [{ destination: { host: ratings } }]
- name: elsewhere
  match: [{ uri: { prefix: /other } }]
  route: [{ destination: { host: ratings } }]
- match: [{ uri: { exact: /api/ping } }]
  directResponse: { status: 200 }
  timeout: 1s
- name: rest
  route: [{ destination: { host: reviews.default.svc.cluster.local } }]
  headers: { request: { set: { x-from: delegate } } }`,
  'other',
);

describe('Envoy routes: delegate VirtualServices', () => {
  it('delegate routes replace the root route: matches merged, names joined, root settings fill unset fields, conflicts dropped', () => {
    const w = world(`${DELEGATE_ROOT}\n---\n${DELEGATE_API}`);
    const rs = w.routes('root');
    const fromRoot = { header: { key: 'x-from', value: 'root' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
    const cors = {
      'envoy.filters.http.cors': {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
        allow_origin_string_match: [{ exact: 'https://root.example' }],
        filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
        forward_not_matching_preflights: { value: true },
      },
    };
    const mirror = [{ cluster: RATINGS, runtime_fraction: { default_value: { numerator: 250000, denominator: 'MILLION' } }, trace_sampled: { value: false } }];
    const five = { seconds: 5, nanos: 0 };
    const rootHeader = { name: 'x-root', string_match: { exact: '1' } };
    expect(rs).toEqual([
      {
        // delegate's short name `ratings` resolves in the delegate's namespace
        name: 'api-v2.m-d',
        match: { prefix: '/api/v2', case_sensitive: { value: true }, headers: [{ name: 'x-leaf', string_match: { exact: '2' } }, rootHeader] },
        route: { cluster: 'outbound|7070||ratings.other.svc.cluster.local', request_mirror_policies: mirror, timeout: five, max_grpc_timeout: five, retry_policy: DEFAULT_RETRY },
        request_headers_to_add: [fromRoot],
        typed_per_filter_config: cors,
        metadata: meta('root'),
        decorator: { operation: 'ratings.other.svc.cluster.local:7070/api/v2*' },
      },
      {
        name: 'api.m',
        match: { path: '/api/ping', case_sensitive: { value: true }, headers: [rootHeader] },
        direct_response: { status: 200 },
        request_headers_to_add: [fromRoot],
        typed_per_filter_config: cors,
        metadata: meta('root'),
        decorator: { operation: 'root:9080/api/ping' },
      },
      {
        name: 'api-rest.m',
        match: { prefix: '/api', case_sensitive: { value: true }, headers: [rootHeader] },
        route: { cluster: REVIEWS, request_mirror_policies: mirror, timeout: five, max_grpc_timeout: five, retry_policy: DEFAULT_RETRY },
        request_headers_to_add: [{ header: { key: 'x-from', value: 'delegate' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
        typed_per_filter_config: cors,
        metadata: meta('root'),
        decorator: { operation: 'reviews.default.svc.cluster.local:9080/api*' },
      },
      { name: 'fallback', match: ANY, route: { cluster: REVIEWS, timeout: ZERO, max_grpc_timeout: ZERO, retry_policy: DEFAULT_RETRY }, metadata: meta('root'), decorator: { operation: 'reviews.default.svc.cluster.local:9080/*' } },
    ]);
    expect(w.notes).toEqual(["VirtualService default/root http[0]: delegate VirtualService other/api-routes http[1] (elsewhere): its match conflicts with the root's match: left out"]);
  });

  it('a delegate not exported to the root namespace, with hosts, or missing, leaves the route out with a note', () => {
    const hidden = DELEGATE_API.replace('http:\n', 'exportTo: ["."]\n  http:\n');
    const w = world(`${DELEGATE_ROOT}\n---\n${hidden}`);
    expect(w.routes('root').map((r) => r.name)).toEqual(['fallback']);
    expect(w.notes).toEqual(['VirtualService default/root http[0]: delegate VirtualService other/api-routes not found (or it has hosts, or is not exported to namespace default): route left out']);
    const withHosts = world(`${DELEGATE_ROOT}\n---\n${DELEGATE_API.replace('http:\n', 'hosts: [ratings.other.svc.cluster.local]\n  http:\n')}`);
    expect(withHosts.routes('root').map((r) => r.name)).toEqual(['fallback']);
    const exported = world(`${DELEGATE_ROOT}\n---\n${DELEGATE_API.replace('http:\n', 'exportTo: [default]\n  http:\n')}`);
    expect(exported.routes('root').map((r) => r.name)).toEqual(['api-v2.m-d', 'api.m', 'api-rest.m', 'fallback']);
  });

  it('the delegate namespace defaults to the root’s; a catch-all delegate route ends the root list; method conflicts drop', () => {
    const w = world(
      `${vs('root', 'hosts: [reviews]\nhttp:\n- delegate: { name: local }\n- route: [{ destination: { host: ratings } }]')}
---
${vs('local', 'http:\n- match: [{ method: { exact: GET } }]\n  route: [{ destination: { host: ratings } }]\n- route: [{ destination: { host: reviews } }]')}`,
    );
    const rs = w.routes('root');
    expect(rs.map((r) => [(r.route as Json).cluster, (r.match as Json).headers])).toEqual([
      [RATINGS, [{ name: ':method', string_match: { exact: 'GET' } }]],
      [REVIEWS, undefined],
    ]);
    expect(w.translateOne('root', 0).catchAll).toBe(true);
  });
});

describe('delegate merge (pure, model/virtual-service-delegate.ts)', () => {
  const root: HTTPRoute = { name: 'root', match: [{ uri: { prefix: '/a' }, method: { exact: 'GET' } }], retries: { attempts: 5 }, fault: { abort: { httpStatus: 500 } } };
  const spec = (http: HTTPRoute[]): VirtualServiceSpec => ({ http });

  it('conflicts: uri outside the root prefix, another method, regex on either side, ignoreUriCase, port, scheme, authority', () => {
    const conflicting: HTTPRoute[] = [
      { match: [{ uri: { prefix: '/b' } }] },
      { match: [{ method: { exact: 'POST' } }] },
      { match: [{ uri: { regex: '/a.*' } }] },
      { match: [{ ignoreUriCase: true }] },
      { match: [{ uri: { exact: '/ab' }, port: 80 }] },
    ];
    const withPort: HTTPRoute = { match: [{ uri: { prefix: '/a' }, port: 8080, scheme: { exact: 'https' }, authority: { exact: 'a.example' } }] };
    expect(mergeDelegate(root, spec(conflicting)).routes).toEqual([
      { match: [{ uri: { exact: '/ab' }, method: { exact: 'GET' }, port: 80 }], name: 'root', retries: { attempts: 5 }, fault: { abort: { httpStatus: 500 } } },
    ]);
    expect(mergeDelegate(root, spec(conflicting)).dropped).toHaveLength(4);
    expect(mergeHttpRoute(withPort, { match: [{ port: 9090 }] })).toBeUndefined();
    expect(mergeHttpRoute(withPort, { match: [{ scheme: { exact: 'http' } }] })).toBeUndefined();
    expect(mergeHttpRoute(withPort, { match: [{ authority: { prefix: 'a' } }] })).toBeUndefined();
    expect(mergeHttpRoute({ match: [{ uri: { regex: '/x' } }] }, { match: [{ uri: { prefix: '/x' } }] })).toBeUndefined();
  });

  it('each delegate match merges with every root match it fits; it must fit one', () => {
    const twoRoots: HTTPRoute = { match: [{ uri: { prefix: '/a' } }, { uri: { prefix: '/a/b' }, headers: { x: { exact: '1' } } }] };
    expect(mergeHttpRoute(twoRoots, { match: [{ uri: { prefix: '/a/b/c' } }] })!.match).toEqual([
      { uri: { prefix: '/a/b/c' } },
      { uri: { prefix: '/a/b/c' }, headers: { x: { exact: '1' } } },
    ]);
    expect(mergeHttpRoute(twoRoots, { match: [{ uri: { prefix: '/a/c' } }, { uri: { prefix: '/z' } }] })).toBeUndefined();
  });

  it('delegate settings win; root fills the rest; sourceLabels union, gateways and statPrefix inherited; no second-level delegation', () => {
    const r: HTTPRoute = { match: [{ sourceLabels: { app: 'a' }, gateways: ['mesh'], statPrefix: 's' }], timeout: '3s', rewrite: { uri: '/r' }, directResponse: { status: 404 } };
    const merged = mergeHttpRoute(r, { name: 'leaf', match: [{ sourceLabels: { tier: 'x' } }], timeout: '1s', route: [{ destination: { host: 'x' } }] });
    expect(merged).toEqual({
      name: 'leaf',
      match: [{ sourceLabels: { app: 'a', tier: 'x' }, gateways: ['mesh'], statPrefix: 's' }],
      timeout: '1s',
      rewrite: { uri: '/r' },
      directResponse: { status: 404 },
      route: [{ destination: { host: 'x' } }],
    });
    expect(mergeHttpRoute(r, { match: [{ sourceLabels: { app: 'b' } }] })).toBeUndefined();
    // istiod: a root sourceNamespace must be repeated by the delegate match, else the two conflict.
    const fromNs: HTTPRoute = { match: [{ sourceNamespace: 'ns' }] };
    expect(mergeHttpRoute(fromNs, { match: [{ sourceNamespace: 'other' }] })).toBeUndefined();
    expect(mergeHttpRoute(fromNs, { match: [{ uri: { prefix: '/' } }] })).toBeUndefined();
    expect(mergeHttpRoute(fromNs, { match: [{ sourceNamespace: 'ns', uri: { prefix: '/' } }] })!.match).toEqual([{ sourceNamespace: 'ns', uri: { prefix: '/' } }]);
    expect(mergeHttpRoute(r, { match: [{ gateways: ['mesh', 'ns/gw'] }] })).toBeUndefined();
    expect(mergeDelegate(r, spec([{ delegate: { name: 'deeper' } }])).dropped).toEqual(['http[0]: a delegate VirtualService cannot delegate again']);
  });
});
