/**
 * AuthorizationPolicy → Envoy RBAC (istio-xds.md §7; istiod pilot/pkg/security/authz): which policies apply to a
 * workload, the exact JSON for the user's seeds and for each field mapping, the TCP fail-closed asymmetry, CUSTOM
 * failing closed, every filter through the strict proto + PGV checker and an encode round trip, and behaviour through
 * test/support/rbac-eval.ts — including the path/host/header bypass corpus under each mesh pathNormalization.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allKinds } from '../../src/config/kinds/all.ts';
import type { AuthorizationPolicySpec } from '../../src/config/kinds/authorization-policy.ts';
import type { ConfigObject } from '../../src/config/object.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { authorizationPoliciesFor, selectAuthorizationPolicies, type ApplicablePolicies, type AuthorizationView } from '../../src/model/authorization.ts';
import { ConfigStore } from '../../src/model/config-store.ts';
import { DEFAULT_MESH } from '../../src/model/mesh.ts';
import { parseProxy } from '../../src/model/proxy.ts';
import { RecordingView, type ProxyView } from '../../src/model/proxy-view.ts';
import { PushContext } from '../../src/model/push-context.ts';
import { decodeResource, encodeResource } from '../../src/proto/encode.ts';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import type { Json } from '../../src/xds/builders/common.ts';
import { httpConnectionManager, tcpProxy } from '../../src/xds/builders/http-connection-manager.ts';
import { ISTIO_EXACT, type RbacHardening } from '../../src/xds/builders/rbac-match.ts';
import { migrateTrustDomain } from '../../src/xds/builders/rbac-rule.ts';
import { rbacHttpFilters, rbacNetworkFilters, type RbacOptions } from '../../src/xds/builders/rbac.ts';
import { evaluateHttp, evaluateNetwork, hcmPathOptions, normalizePath, type PathNormalization, type RbacRequest } from '../support/rbac-eval.ts';

const SEEDS = '/work/shared/fixtures/seeds';
const HTTP_FILTER = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter';
const NETWORK_FILTER = 'envoy.config.listener.v3.Filter';
const TD: RbacOptions = { trustDomain: 'cluster.local' };
const HTTP_RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const NET_RBAC = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';

function load(yaml: string): Array<ConfigObject<AuthorizationPolicySpec>> {
  const loaded = loadYamlText(yaml, 'x.yaml', allKinds, { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' });
  expect(loaded.errors).toEqual([]);
  return loaded.objects as Array<ConfigObject<AuthorizationPolicySpec>>;
}

function viewOf(namespace: string, labels: Record<string, string> = {}): RecordingView {
  const p = parseProxy({ id: `sidecar~10.0.0.1~app-0.${namespace}~${namespace}.svc.cluster.local`, metadata: { NAMESPACE: namespace, LABELS: labels } });
  if (!p.ok) throw new Error(p.errors);
  return new RecordingView(p.value);
}

/** A workload every selector selects. */
class SelectedByAll implements AuthorizationView {
  private readonly view: ProxyView;
  constructor(view: ProxyView) {
    this.view = view;
  }
  namespace(): string {
    return this.view.namespace();
  }
  selectedBy(): boolean {
    return true;
  }
}

/** Every policy in the YAML, as applied to a workload that all of them select. */
function all(yaml: string): ApplicablePolicies {
  const objs = load(yaml);
  return selectAuthorizationPolicies(objs, 'istio-system', new SelectedByAll(viewOf(objs[0]?.metadata.namespace ?? 'default')));
}

function collect() {
  const notes: string[] = [];
  return { notes, note: (m: string) => notes.push(m) };
}

/** HTTP filters, each checked against Envoy's protos and PGV rules. */
function http(policies: ApplicablePolicies, opts: RbacOptions = TD, note?: (m: string) => void) {
  const f = rbacHttpFilters(policies, opts, note);
  for (const x of [...f.custom, ...f.authz]) expect(checkEnvoyResource(HTTP_FILTER, x)).toEqual([]);
  return f;
}

function tcp(policies: ApplicablePolicies, opts: RbacOptions = TD, note?: (m: string) => void) {
  const f = rbacNetworkFilters(policies, opts, note);
  for (const x of f) expect(checkEnvoyResource(NETWORK_FILTER, x)).toEqual([]);
  return f;
}

const typed = (f: Json) => f.typed_config as Record<string, any>;
const rulesOf = (f: Json) => typed(f).rules as Record<string, any>;

/** An inbound HCM carrying the RBAC filters, as the listener generators will build it. */
function hcmWith(policies: ApplicablePolicies, mode: PathNormalization = 'BASE', opts: RbacOptions = TD) {
  const f = rbacHttpFilters(policies, opts);
  const hcm = httpConnectionManager({ direction: 'inbound', statPrefix: 'inbound_0.0.0.0_8080;', routeConfig: { name: 'inbound|8080||' }, filters: [...f.custom, ...f.authz], pathNormalization: mode });
  return hcm.typed_config as { http_filters: Json[] } & Record<string, any>;
}

const req = (r: RbacRequest): RbacRequest => ({ method: 'GET', host: 'svc.ns.svc.cluster.local', sourceIp: '10.1.0.1', destinationPort: 8080, ...r });

// ---------------------------------------------------------------------------------------------------------------

describe('which policies apply to a workload', () => {
  const yaml = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: mesh-deny, namespace: istio-system }
spec: { action: DENY, rules: [{ from: [{ source: { notNamespaces: [prod] } }] }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: mesh-web, namespace: istio-system }
spec: { selector: { matchLabels: { app: web } }, action: AUDIT, rules: [{}] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ns-allow, namespace: prod }
spec: { rules: [{}] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web-only, namespace: prod, annotations: { istio.io/dry-run: "true" } }
spec: { selector: { matchLabels: { app: web } }, action: DENY, rules: [{}] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: other-ns, namespace: dev }
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ext, namespace: prod }
spec: { action: CUSTOM, provider: { name: opa }, rules: [{}] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: for-gateway, namespace: prod }
spec: { targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: edge }], action: DENY, rules: [{}] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: for-waypoint, namespace: prod }
spec: { targetRefs: [{ kind: Service, group: "", name: web }], rules: [{}] }
`;
  const store = new ConfigStore();
  for (const o of load(yaml)) store.upsert(o);
  const push = new PushContext(store.snapshot(), DEFAULT_MESH);
  const names = (p: ApplicablePolicies) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, (v as Array<{ namespace: string; name: string; dryRun: boolean }>).map((x) => `${x.namespace}/${x.name}${x.dryRun ? ' (dry-run)' : ''}`)]));

  it('root namespace mesh-wide, namespace policies to their namespace, selectors by labels, grouped by action', () => {
    const { notes, note } = collect();
    expect(names(authorizationPoliciesFor(push, viewOf('prod', { app: 'web' }), note))).toEqual({
      custom: ['prod/ext'],
      deny: ['istio-system/mesh-deny', 'prod/web-only (dry-run)'],
      allow: ['prod/ns-allow'],
      audit: ['istio-system/mesh-web'],
    });
    expect(notes).toEqual(['AuthorizationPolicy prod/for-waypoint: targetRef Service/web attaches to waypoints only, which mizzen does not serve; the policy applies to no sidecar or gateway']);
    expect(names(authorizationPoliciesFor(push, viewOf('prod', { app: 'api' })))).toEqual({ custom: ['prod/ext'], deny: ['istio-system/mesh-deny'], allow: ['prod/ns-allow'], audit: [] });
    expect(names(authorizationPoliciesFor(push, viewOf('dev', { app: 'web' })))).toEqual({ custom: [], deny: ['istio-system/mesh-deny'], allow: ['dev/other-ns'], audit: ['istio-system/mesh-web'] });
  });

  it('targetRefs attach only to the named Gateway API gateway pod of the same namespace', () => {
    const gw = names(authorizationPoliciesFor(push, viewOf('prod', { 'gateway.networking.k8s.io/gateway-name': 'edge' })));
    expect(gw.deny).toEqual(['istio-system/mesh-deny', 'prod/for-gateway']);
    expect(names(authorizationPoliciesFor(push, viewOf('prod', { 'gateway.networking.k8s.io/gateway-name': 'other' }))).deny).toEqual(['istio-system/mesh-deny']);
  });

  it('reads the proxy only through the view: its namespace and the selectors asked', () => {
    const view = viewOf('prod', { app: 'web' });
    authorizationPoliciesFor(push, view);
    expect([...view.reads.keys()].sort()).toEqual(['ns', 'sel:{"app":"web"}', 'sel:{"gateway.networking.k8s.io/gateway-name":"edge"}']);
  });

  it('dry-run follows Go ParseBool; an unparsable value is enforced, with a note', () => {
    const { notes, note } = collect();
    const objs = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: a, namespace: x, annotations: { istio.io/dry-run: "True" } }
spec: { rules: [{}] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: b, namespace: x, annotations: { istio.io/dry-run: "yes" } }
spec: { rules: [{}] }
`);
    const p = selectAuthorizationPolicies(objs, 'istio-system', viewOf('x'), note);
    expect(p.allow.map((a) => [a.name, a.dryRun])).toEqual([['a', true], ['b', false]]);
    expect(notes).toEqual(['AuthorizationPolicy x/b: cannot parse istio.io/dry-run value "yes"; the policy is enforced']);
  });
});

// ---------------------------------------------------------------------------------------------------------------

const principal = (exact: string) => ({ authenticated: { principal_name: { exact } } });
const orIds = (...ids: Json[]) => ({ or_ids: { ids } });
const orRules = (...rules: Json[]) => ({ or_rules: { rules } });
const andIds = (...ids: Json[]) => ({ and_ids: { ids } });
const andRules = (...rules: Json[]) => ({ and_rules: { rules } });
const method = (m: string) => ({ header: { name: ':method', string_match: { exact: m } } });
const regex = (r: string) => ({ safe_regex: { regex: r } });

describe('translation: the seeds', () => {
  const seed = (prefix: string) => fs.readFileSync(`${SEEDS}/${fs.readdirSync(SEEDS).find((f) => f.startsWith(prefix))}`, 'utf8');

  it('006 deny-all (`spec: {}`): an ALLOW filter whose only policy never matches', () => {
    expect(http(all(seed('006-')))).toEqual({
      custom: [],
      authz: [
        {
          name: 'envoy.filters.http.rbac',
          typed_config: {
            '@type': HTTP_RBAC,
            rules: { action: 'ALLOW', policies: { 'ns[production]-policy[deny-all]-rule[0]': { permissions: [{ not_rule: { any: true } }], principals: [{ not_id: { any: true } }] } } },
            shadow_rules_stat_prefix: 'istio_dry_run_allow_',
          },
        },
      ],
    });
  });

  it('034 reviews-viewer (no action = ALLOW): GET from the productpage identity', () => {
    expect(rulesOf(http(all(seed('034-'))).authz[0]!)).toEqual({
      action: 'ALLOW',
      policies: {
        'ns[bookinfo]-policy[reviews-viewer]-rule[0]': {
          permissions: [andRules(orRules(method('GET')))],
          principals: [andIds(orIds(principal('spiffe://cluster.local/ns/default/sa/bookinfo-productpage')))],
        },
      },
    });
  });

  it('007 order-api-allow: principals, namespaces, methods and paths per rule; `*` inside a path is literal', () => {
    const { notes, note } = collect();
    const policies = rulesOf(http(all(seed('007-')), TD, note).authz[0]!).policies;
    expect(notes).toEqual(['AuthorizationPolicy production/order-api-allow rule 0: path "/api/orders/*/payment" has a "*" inside, which Istio matches literally; use "{*}" (one segment) or "{**}" for a wildcard']);
    expect(Object.keys(policies)).toEqual(['ns[production]-policy[order-api-allow]-rule[0]', 'ns[production]-policy[order-api-allow]-rule[1]', 'ns[production]-policy[order-api-allow]-rule[2]']);
    expect(policies['ns[production]-policy[order-api-allow]-rule[0]']).toEqual({
      permissions: [andRules(orRules(method('POST')), orRules({ url_path: { path: { exact: '/api/orders/*/payment' } } }))],
      principals: [andIds(orIds(principal('spiffe://cluster.local/ns/production/sa/payment-service')))],
    });
    expect(policies['ns[production]-policy[order-api-allow]-rule[1]']).toEqual({
      permissions: [andRules(orRules(method('GET'), method('POST'), method('PUT')), orRules({ url_path: { path: { prefix: '/api/' } } }))],
      principals: [andIds(orIds({ authenticated: { principal_name: regex('.*/ns/istio-system/.*') } }))],
    });
  });

  it('020 and 048: behaviour as written', () => {
    const myapp = hcmWith(all(seed('020-')));
    const frontend = 'spiffe://cluster.local/ns/production/sa/frontend';
    expect(evaluateHttp(myapp, req({ path: '/api/x', method: 'POST', sourcePrincipal: frontend })).allowed).toBe(true);
    expect(evaluateHttp(myapp, req({ path: '/api/x', method: 'DELETE', sourcePrincipal: frontend })).allowed).toBe(false);
    expect(evaluateHttp(myapp, req({ path: '/health' })).allowed).toBe(true); // anyone, plaintext too
    expect(evaluateHttp(myapp, req({ path: '/api/x' })).allowed).toBe(false);
    const product = hcmWith(all(seed('048-')));
    const order = 'spiffe://cluster.local/ns/ecommerce/sa/order-service';
    // namespaces AND principals inside one source.
    expect(evaluateHttp(product, req({ path: '/api/products/1', sourcePrincipal: order })).allowed).toBe(true);
    expect(evaluateHttp(product, req({ path: '/api/products/1', sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/order-service' })).allowed).toBe(false);
    expect(evaluateHttp(product, req({ path: '/api/products/1', method: 'POST', sourcePrincipal: order })).allowed).toBe(false);
  });
});

describe('translation: field mapping', () => {
  const one = (spec: string, opts?: RbacOptions) =>
    rulesOf(http(all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: foo }\nspec: ${spec}`), opts).authz[0]!);
  const rule0 = (spec: string, opts?: RbacOptions) => one(spec, opts).policies['ns[foo]-policy[p]-rule[0]'];

  it('principals: exact, prefix, suffix (regex, quoted), `*`; namespaces and serviceAccounts as quoted regexes', () => {
    expect(rule0(`{ rules: [{ from: [{ source: { principals: ["td/ns/a/sa/b", "td/ns/a/*", "*/sa/x.y", "*"], notNamespaces: ["a.b", "pre-*"] } }] }] }`)).toEqual({
      permissions: [andRules({ any: true })],
      principals: [
        andIds(
          orIds(principal('spiffe://td/ns/a/sa/b'), { authenticated: { principal_name: { prefix: 'spiffe://td/ns/a/' } } }, { authenticated: { principal_name: regex('spiffe://.*/sa/x\\.y') } }, { authenticated: { principal_name: regex('.+') } }),
          { not_id: orIds({ authenticated: { principal_name: regex('.*/ns/a\\.b/.*') } }, { authenticated: { principal_name: regex('.*/ns/pre-.*/.*') } }) },
        ),
      ],
    });
    expect(rule0(`{ rules: [{ from: [{ source: { serviceAccounts: ["x[0]", "other/sa.1"] } }] }] }`).principals).toEqual([
      andIds(orIds({ authenticated: { principal_name: regex('spiffe://.+/ns/foo/(.+/|)sa/x\\[0\\](/.+)?') } }, { authenticated: { principal_name: regex('spiffe://.+/ns/other/(.+/|)sa/sa\\.1(/.+)?') } })),
    ]);
  });

  it('ipBlocks → direct_remote_ip, remoteIpBlocks → remote_ip; requestPrincipals → jwt_authn payload iss AND sub', () => {
    expect(rule0(`{ action: DENY, rules: [{ from: [{ source: { requestPrincipals: ["https://issuer.example/alice"], remoteIpBlocks: ["1.2.3.0/24"], notIpBlocks: ["10.0.0.1", "fd00::/8"] } }] }] }`).principals).toEqual([
      andIds(
        andIds(
          { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'iss' }], value: { string_match: { exact: 'https://issuer.example' } } } },
          { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'sub' }], value: { string_match: { exact: 'alice' } } } },
        ),
        orIds({ remote_ip: { address_prefix: '1.2.3.0', prefix_len: { value: 24 } } }),
        { not_id: orIds({ direct_remote_ip: { address_prefix: '10.0.0.1', prefix_len: { value: 32 } } }, { direct_remote_ip: { address_prefix: 'fd00::', prefix_len: { value: 8 } } }) },
      ),
    ]);
  });

  it('operation: hosts (case-insensitive), methods, paths (incl. templates), ports, in istiod order', () => {
    expect(rule0(`{ rules: [{ to: [{ operation: { ports: ["8080"], paths: ["/exact", "/pre/*", "*.js", "/api/{*}/x/{**}"], methods: ["GET"], hosts: ["a.example.com", "*.example.org", "*"] } }] }] }`).permissions).toEqual([
      andRules(
        orRules(
          { header: { name: ':authority', string_match: { exact: 'a.example.com', ignore_case: true } } },
          { header: { name: ':authority', string_match: { suffix: '.example.org', ignore_case: true } } },
          { header: { name: ':authority', present_match: true } },
        ),
        orRules(method('GET')),
        orRules(
          { url_path: { path: { exact: '/exact' } } },
          { url_path: { path: { prefix: '/pre/' } } },
          { url_path: { path: { suffix: '.js' } } },
          { uri_template: { name: 'envoy.path.match.uri_template.uri_template_matcher', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig', path_template: '/api/*/x/**' } } },
        ),
        orRules({ destination_port: 8080 }),
      ),
    ]);
  });

  it('when: every attribute on its side, after the source/operation fields', () => {
    const p = rule0(`{ action: DENY, rules: [{ to: [{ operation: { methods: ["POST"] } }], when: [
      { key: "request.headers[X-Tenant]", values: ["a.*b"] },
      { key: destination.port, notValues: ["15000"] },
      { key: source.principal, values: ["cluster.local/ns/a/sa/b"] },
      { key: connection.sni, values: ["*.example.com"] },
      { key: "request.auth.claims[groups]", values: ["admins", "ops"] },
      { key: request.auth.audiences, values: ["api"] },
      { key: destination.ip, values: ["10.0.0.0/8"] },
      { key: source.namespace, values: ["ns1"] },
      { key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: ["[update]"] } ] }] }`, { ...TD, hardening: ISTIO_EXACT });
    expect(p).toEqual({
      permissions: [
        andRules(
          orRules(method('POST')),
          { not_rule: orRules({ destination_port: 15000 }) },
          orRules({ requested_server_name: { suffix: '.example.com' } }),
          orRules({ destination_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 8 } } }),
          { metadata: { filter: 'envoy.filters.network.mysql_proxy', path: [{ key: 'db.table' }], value: { list_match: { one_of: { string_match: { exact: 'update' } } } } } },
        ),
      ],
      principals: [
        andIds(
          orIds({ header: { name: 'X-Tenant', string_match: { exact: 'a.*b' } } }),
          orIds(principal('spiffe://cluster.local/ns/a/sa/b')),
          {
            metadata: {
              filter: 'envoy.filters.http.jwt_authn',
              path: [{ key: 'payload' }, { key: 'groups' }],
              value: { or_match: { value_matchers: [{ list_match: { one_of: { or_match: { value_matchers: [{ string_match: { exact: 'admins' } }, { string_match: { exact: 'ops' } }] } } } }, { or_match: { value_matchers: [{ string_match: { exact: 'admins' } }, { string_match: { exact: 'ops' } }] } }] } },
            },
          },
          { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'aud' }], value: { or_match: { value_matchers: [{ list_match: { one_of: { string_match: { exact: 'api' } } } }, { string_match: { exact: 'api' } }] } } } },
          orIds({ authenticated: { principal_name: regex('.*/ns/ns1/.*') } }),
        ),
      ],
    });
  });

  it('trust domain: `cluster.local` means the mesh trust domain; aliases add principals', () => {
    expect(migrateTrustDomain(['cluster.local/ns/a/sa/b', 'other.td/ns/a/sa/b', '*/ns/a/sa/b', 'sa/b'], { trustDomains: ['example.org', 'old.org'] })).toEqual([
      'example.org/ns/a/sa/b',
      'old.org/ns/a/sa/b',
      'other.td/ns/a/sa/b',
      '*/ns/a/sa/b',
      'sa/b',
    ]);
    expect(rule0(`{ rules: [{ from: [{ source: { principals: ["old.org/ns/a/sa/b"] } }] }] }`, { trustDomain: 'example.org', trustDomainAliases: ['old.org'] }).principals).toEqual([
      andIds(orIds(principal('spiffe://example.org/ns/a/sa/b'), principal('spiffe://old.org/ns/a/sa/b'))),
    ]);
  });

  it('notes values that Istio translates literally but that are almost certainly mistakes', () => {
    const { notes, note } = collect();
    http(all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: foo }\nspec: { rules: [{ from: [{ source: { principals: ["spiffe://cluster.local/ns/a/sa/b"] } }] }] }`), TD, note);
    expect(notes).toEqual(['AuthorizationPolicy foo/p rule 0: principal "spiffe://cluster.local/ns/a/sa/b" never matches: Istio adds "spiffe://" itself; write "cluster.local/ns/a/sa/b"']);
  });

  it('mizzen hardening adds alternatives only to widening matchers (DENY values, ALLOW notValues)', () => {
    const deny = rule0(`{ action: DENY, rules: [{ to: [{ operation: { hosts: ["a.com"], notHosts: ["b.com"] } }], when: [{ key: "request.headers[x-role]", values: ["admin"] }] }] }`);
    expect(deny.permissions).toEqual([
      andRules(
        orRules({ header: { name: ':authority', string_match: { exact: 'a.com', ignore_case: true } } }, { header: { name: ':authority', string_match: regex('(?i)a\\.com\\.?(:[0-9]*)?') } }),
        { not_rule: orRules({ header: { name: ':authority', string_match: { exact: 'b.com', ignore_case: true } } }) },
      ),
    ]);
    expect(deny.principals).toEqual([andIds(orIds({ header: { name: 'x-role', string_match: { exact: 'admin' } } }, { header: { name: 'x-role', string_match: regex('(.*,)?[ \\t]*admin[ \\t]*(,.*)?') } }))]);
    const allow = rule0(`{ rules: [{ to: [{ operation: { hosts: ["a.com"], notHosts: ["b.com"] } }] }] }`);
    expect(allow.permissions[0].and_rules.rules[0].or_rules.rules).toHaveLength(1);
    expect(allow.permissions[0].and_rules.rules[1].not_rule.or_rules.rules).toHaveLength(2);
  });

  it('a rule `{}` matches everything; AUDIT is action LOG; dry-run goes to shadow_rules', () => {
    expect(one(`{ action: AUDIT, rules: [{}] }`)).toEqual({ action: 'LOG', policies: { 'ns[foo]-policy[p]-rule[0]': { permissions: [andRules({ any: true })], principals: [andIds({ any: true })] } } });
    const dry = http(all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: foo, annotations: { istio.io/dry-run: "true" } }\nspec: { action: DENY, rules: [{}] }`));
    expect(typed(dry.authz[0]!)).toEqual({
      '@type': HTTP_RBAC,
      shadow_rules: { action: 'DENY', policies: { 'ns[foo]-policy[p]-rule[0]': { permissions: [andRules({ any: true })], principals: [andIds({ any: true })] } } },
      shadow_rules_stat_prefix: 'istio_dry_run_deny_',
    });
    expect(evaluateHttp(hcmWith(all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: foo, annotations: { istio.io/dry-run: "true" } }\nspec: { action: DENY, rules: [{}] }`)), req({ path: '/' }))).toMatchObject({ allowed: true, shadow: [{ action: 'DENY', matched: 'ns[foo]-policy[p]-rule[0]' }] });
  });

  it('filters come in istiod order: CUSTOM apart, then AUDIT, DENY, ALLOW; no ALLOW policy, no ALLOW filter', () => {
    const p = all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: d, namespace: foo }\nspec: { action: DENY, rules: [{}] }\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: a, namespace: foo }\nspec: { action: AUDIT, rules: [{}] }`);
    expect(http(p).authz.map((f) => rulesOf(f).action)).toEqual(['LOG', 'DENY']);
    expect(http({ custom: [], deny: [], allow: [], audit: [] })).toEqual({ custom: [], authz: [] });
  });
});

describe('fail closed', () => {
  const custom = all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: ext, namespace: foo }\nspec: { action: CUSTOM, provider: { name: opa }, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }`);

  it('CUSTOM with a provider mizzen cannot call: the requests it selects are denied (HTTP)', () => {
    const { notes, note } = collect();
    const f = http(custom, TD, note);
    expect(f.authz).toEqual([]);
    expect(f.custom).toEqual([
      {
        name: 'envoy.filters.http.rbac',
        typed_config: {
          '@type': HTTP_RBAC,
          rules: { action: 'DENY', policies: { 'istio-ext-authz-opa-ns[foo]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action': { permissions: [andRules(orRules({ url_path: { path: { prefix: '/admin' } } }))], principals: [andIds({ any: true })] } } },
        },
      },
    ]);
    expect(notes[0]).toContain('provider "opa" cannot be used (no such extension provider in the mesh config)');
    const hcm = hcmWith(custom);
    expect(evaluateHttp(hcm, req({ path: '/admin/x' })).allowed).toBe(false);
    expect(evaluateHttp(hcm, req({ path: '/public' })).allowed).toBe(true);
  });

  it('CUSTOM on TCP: the HTTP-only condition is dropped, so every connection is denied', () => {
    const f = tcp(custom);
    expect(f).toHaveLength(1);
    expect(evaluateNetwork(f, req({}))).toMatchObject({ allowed: false });
  });

  it('ALLOW with an HTTP-only field on TCP drops the rule (narrower); DENY drops only the field (wider)', () => {
    const { notes, note } = collect();
    const p = all(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow, namespace: foo }
spec: { rules: [{ to: [{ operation: { paths: ["/public*"] } }] }, { from: [{ source: { namespaces: [trusted] } }] }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny, namespace: foo }
spec: { action: DENY, rules: [{ from: [{ source: { namespaces: [bad] } }], to: [{ operation: { methods: [DELETE], ports: ["9000"] } }] }] }`);
    const f = tcp(p, TD, note);
    expect(f.map((x) => typed(x).stat_prefix)).toEqual(['tcp.', 'tcp.']);
    expect(rulesOf(f[0]!).policies['ns[foo]-policy[deny]-rule[0]'].permissions).toEqual([andRules(orRules({ destination_port: 9000 }))]);
    expect(Object.keys(rulesOf(f[1]!).policies)).toEqual(['ns[foo]-policy[allow]-rule[1]']);
    expect(notes).toEqual([
      'AuthorizationPolicy foo/deny rule 0 (DENY) on a TCP chain ignores: methods is HTTP only (the rule matches more requests, as istiod does)',
      'AuthorizationPolicy foo/allow rule 0 (ALLOW) skipped on a TCP chain: paths is HTTP only (fewer requests are allowed, as istiod does)',
    ]);
    const trusted = 'spiffe://cluster.local/ns/trusted/sa/x';
    expect(evaluateNetwork(f, req({ sourcePrincipal: trusted })).allowed).toBe(true);
    expect(evaluateNetwork(f, req({ sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/x' })).allowed).toBe(false);
    expect(evaluateNetwork(f, req({ sourcePrincipal: 'spiffe://cluster.local/ns/bad/sa/x', destinationPort: 9000 })).allowed).toBe(false);
  });

  it('an ALLOW whose every rule is dropped denies every connection; an empty ALLOW policy denies every request', () => {
    const f = tcp(all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: foo }\nspec: { rules: [{ to: [{ operation: { hosts: [a.com] } }] }] }`));
    expect(f).toEqual([{ name: 'envoy.filters.network.rbac', typed_config: { '@type': NET_RBAC, rules: { action: 'ALLOW', policies: {} }, stat_prefix: 'tcp.', shadow_rules_stat_prefix: 'istio_dry_run_allow_' } }]);
    expect(evaluateNetwork(f, req({})).allowed).toBe(false);
    expect(evaluateHttp(hcmWith(all(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: p, namespace: foo }\nspec: {}`)), req({ path: '/' })).allowed).toBe(false);
  });
});

describe('schema and encoding', () => {
  // istiod's allow-full-rule test input, adapted to our schema: every field and `when` key at once.
  const full = (action: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: full, namespace: foo }
spec:
  action: ${action}
  rules:
  - from: [{ source: { serviceAccounts: ["my-ns/my-sa", "sa-only"], notServiceAccounts: ["x[0]"] } }]
  - from:
    - source:
        principals: ["principal", "principal-prefix-*", "*-suffix-principal", "*"]
        requestPrincipals: ["requestPrincipals", "requestPrincipals-prefix-*", "*-suffix-requestPrincipals", "*", "iss/*", "*/sub"]
        namespaces: ["ns", "ns-prefix-*", "*-ns-suffix", "*"]
        ipBlocks: ["1.2.3.4", "5.6.0.0/16", "2001:db8::/32"]
        remoteIpBlocks: ["1.2.3.4", "5.6.0.0/16"]
        notPrincipals: ["not-principal"]
        notRequestPrincipals: ["not-requestPrincipals"]
        notNamespaces: ["not-ns"]
        notIpBlocks: ["9.0.0.1"]
        notRemoteIpBlocks: ["9.2.0.0/16"]
    to:
    - operation:
        methods: ["method", "method-prefix-*", "*-suffix-method", "*"]
        hosts: ["exact.com", "*.suffix.com", "prefix.*", "*"]
        ports: ["80", "90"]
        paths: ["/exact", "/prefix/*", "*/suffix", "*", "/path/template/{*}", "/{**}/path/template"]
        notMethods: ["not-method"]
        notHosts: ["not-exact.com", "*.not-suffix.com"]
        notPorts: ["8000"]
        notPaths: ["/not-exact", "/not-prefix/*"]
    when:
    - { key: "request.headers[X-header]", values: ["header", "header-prefix-*", "*-suffix-header", "*"], notValues: ["not-header"] }
    - { key: "request.experimental.inline.headers[X-inline]", values: ["header", "*-suffix"], notValues: ["*"] }
    - { key: source.ip, values: ["10.10.10.10", "192.168.10.0/24"], notValues: ["90.10.10.10"] }
    - { key: remote.ip, values: ["10.10.10.10"], notValues: ["90.168.10.0/24"] }
    - { key: source.namespace, values: ["ns"], notValues: ["not-ns"] }
    - { key: source.principal, values: ["principal"], notValues: ["not-principal"] }
    - { key: source.serviceAccount, values: ["ns/sa"] }
    - { key: request.auth.principal, values: ["requestPrincipals", "https://example.com/*"], notValues: ["*"] }
    - { key: request.auth.audiences, values: ["audiences", "*"], notValues: ["not-audiences"] }
    - { key: request.auth.presenter, values: ["presenter"], notValues: ["not-presenter"] }
    - { key: "request.auth.claims[iss]", values: ["iss", "iss-prefix-*"], notValues: ["not-iss"] }
    - { key: "request.auth.claims[nested1][nested2]", values: ["nested"] }
    - { key: destination.ip, values: ["10.10.10.10", "192.168.10.0/24"], notValues: ["90.10.10.10"] }
    - { key: destination.port, values: ["91", "92"], notValues: ["9001"] }
    - { key: connection.sni, values: ["exact.com", "*.suffix.com", "prefix.*", "*"], notValues: ["not-exact.com"] }
    - { key: "experimental.envoy.filters.a.b[c]", values: ["exact", "[list]", "*"], notValues: ["not-exact"] }
`;

  for (const action of ['ALLOW', 'DENY', 'AUDIT']) {
    it(`every ${action} field mapping passes the proto + PGV checker and encodes, on HTTP and TCP chains`, () => {
      const p = all(full(action));
      const h = http(p);
      const t = tcp(p);
      expect(h.authz).toHaveLength(1);
      expect(t).toHaveLength(1);
      const hcm = httpConnectionManager({ direction: 'inbound', statPrefix: 'inbound_0.0.0.0_80;', routeConfig: { name: 'inbound|80||' }, filters: h.authz });
      const listener = {
        name: 'virtualInbound',
        address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
        filter_chains: [{ name: 'http', filters: [hcm] }, { name: 'tcp', filters: [...t, tcpProxy({ statPrefix: 'inbound|81||', cluster: 'inbound|81||' })] }],
      };
      expect(checkEnvoyResource('envoy.config.listener.v3.Listener', listener)).toEqual([]);
      const decoded = decodeResource(TypeUrl.Listener, encodeResource(TypeUrl.Listener, listener.name, listener).bytes);
      const rbac = decoded.filter_chains[0].filters[0].typed_config.http_filters[0].typed_config;
      expect(Object.keys(rbac.rules.policies)).toEqual(['ns[foo]-policy[full]-rule[0]', 'ns[foo]-policy[full]-rule[1]']);
      // On TCP, ALLOW keeps only the rule without HTTP-only fields; DENY/AUDIT keep both, widened.
      expect(Object.keys(rulesOf(t[0]!).policies)).toEqual(action === 'ALLOW' ? ['ns[foo]-policy[full]-rule[0]'] : ['ns[foo]-policy[full]-rule[0]', 'ns[foo]-policy[full]-rule[1]']);
    });
  }

  it('CUSTOM (fail-closed) and every hardening alternative pass the checker too', () => {
    const p = all(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ext, namespace: foo }
spec:
  action: CUSTOM
  provider: { name: opa }
  rules:
  - from: [{ source: { ipBlocks: ["10.0.0.0/8"], serviceAccounts: ["sa"] } }]
    to: [{ operation: { hosts: ["a.com", "*.b.com"], paths: ["/x", "/y*", "*.z"], notPaths: ["/n"], methods: ["GET"] } }]
    when: [{ key: "request.headers[x-a]", values: ["v", "p*", "*s"] }, { key: connection.sni, values: ["a.com"] }]
`);
    expect(http(p, { ...TD, hardening: { pathCase: true } }).custom).toHaveLength(1);
    expect(tcp(p)).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('behaviour', () => {
  const policy = (spec: string, name = 'p') => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: ${name}, namespace: foo }\nspec: ${spec}\n---\n`;
  const allowed = (yaml: string, r: RbacRequest, opts?: RbacOptions) => evaluateHttp(hcmWith(all(yaml), 'BASE', opts), req(r)).allowed;

  it('principals need a peer certificate; notPrincipals in a DENY catch plaintext callers', () => {
    const y = policy(`{ action: DENY, rules: [{ from: [{ source: { notPrincipals: ["cluster.local/ns/prod/*"] } }] }] }`);
    expect(allowed(y, { path: '/' })).toBe(false);
    expect(allowed(y, { path: '/', sourcePrincipal: 'spiffe://cluster.local/ns/prod/sa/a' })).toBe(true);
    expect(allowed(y, { path: '/', sourcePrincipal: 'spiffe://cluster.local/ns/dev/sa/a' })).toBe(false);
  });

  it('serviceAccounts match the SA exactly, with optional extra SPIFFE path segments', () => {
    const y = policy(`{ rules: [{ from: [{ source: { serviceAccounts: ["web"] } }] }] }`);
    expect(allowed(y, { sourcePrincipal: 'spiffe://cluster.local/ns/foo/sa/web' })).toBe(true);
    expect(allowed(y, { sourcePrincipal: 'spiffe://cluster.local/ns/foo/sa/web-admin' })).toBe(false);
    expect(allowed(y, { sourcePrincipal: 'spiffe://cluster.local/ns/bar/sa/web' })).toBe(false);
  });

  it('ipBlocks match the connection peer; remoteIpBlocks the original client', () => {
    const y = policy(`{ rules: [{ from: [{ source: { ipBlocks: ["10.1.0.0/16"], remoteIpBlocks: ["203.0.113.7"] } }] }] }`);
    expect(allowed(y, { sourceIp: '10.1.2.3', remoteIp: '203.0.113.7' })).toBe(true);
    expect(allowed(y, { sourceIp: '10.1.2.3', remoteIp: '203.0.113.8' })).toBe(false);
    expect(allowed(y, { sourceIp: '10.2.2.3', remoteIp: '203.0.113.7' })).toBe(false);
  });

  it('requestPrincipals ["*"] requires a verified JWT; claims match list and scalar values', () => {
    const y = policy(`{ rules: [{ from: [{ source: { requestPrincipals: ["*"] } }], when: [{ key: "request.auth.claims[groups]", values: ["admin"] }] }] }`);
    expect(allowed(y, {})).toBe(false);
    expect(allowed(y, { jwtPayload: { iss: 'https://idp', sub: 'u', groups: ['dev', 'admin'] } })).toBe(true);
    expect(allowed(y, { jwtPayload: { iss: 'https://idp', sub: 'u', groups: 'admin' } })).toBe(true);
    expect(allowed(y, { jwtPayload: { iss: 'https://idp', sub: 'u', groups: ['dev'] } })).toBe(false);
  });

  it('regex metacharacters in user values are literal', () => {
    expect(allowed(policy(`{ rules: [{ to: [{ operation: { paths: ["/a.b"] } }] }] }`), { path: '/aXb' })).toBe(false);
    expect(allowed(policy(`{ rules: [{ to: [{ operation: { paths: ["/a.b"] } }] }] }`), { path: '/a.b' })).toBe(true);
    const header = policy(`{ action: DENY, rules: [{ when: [{ key: "request.headers[x-user]", values: ["a.*b", "x[0]*"] }] }] }`);
    expect(allowed(header, { headers: { 'x-user': 'aZZb' } })).toBe(true);
    expect(allowed(header, { headers: { 'x-user': 'a.*b' } })).toBe(false);
    expect(allowed(header, { headers: { 'x-user': 'x0y' } })).toBe(true);
    expect(allowed(header, { headers: { 'x-user': 'x[0]y' } })).toBe(false);
    const sa = policy(`{ rules: [{ from: [{ source: { principals: ["*/sa/a.b"], namespaces: ["n.s"] } }] }] }`);
    expect(allowed(sa, { sourcePrincipal: 'spiffe://cluster.local/ns/n.s/sa/a.b' })).toBe(true);
    expect(allowed(sa, { sourcePrincipal: 'spiffe://cluster.local/ns/nXs/sa/a.b' })).toBe(false);
    expect(allowed(sa, { sourcePrincipal: 'spiffe://cluster.local/ns/n.s/sa/aXb' })).toBe(false);
  });

  it('path templates: {*} one segment, {**} any', () => {
    const y = policy(`{ rules: [{ to: [{ operation: { paths: ["/api/{*}/items", "/files/{**}"] } }] }] }`);
    expect(allowed(y, { path: '/api/v1/items' })).toBe(true);
    expect(allowed(y, { path: '/api/v1/v2/items' })).toBe(false);
    expect(allowed(y, { path: '/files/a/b/c.txt?x=1' })).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('the evaluator models the HCM path handling', () => {
  it('follows Istio\'s documented normalisation table', () => {
    const n = (p: string, m: PathNormalization) => {
      const r = normalizePath(p, hcmPathOptions(m));
      return r.ok ? r.path : r.status;
    };
    expect(n('/some%2fdata/%61%62%63', 'DECODE_AND_MERGE_SLASHES')).toBe('/some/data/abc');
    expect(n('/some%2fdata/%61%62%63', 'BASE')).toBe('/some%2fdata/abc');
    expect(n('/some\\data', 'BASE')).toBe('/some/data');
    expect(n('/some//data///abc', 'MERGE_SLASHES')).toBe('/some/data/abc');
    expect(n('/public/./data/abc/../xyz', 'BASE')).toBe('/public/data/xyz');
    expect(n('/public/./data/abc/../xyz', 'NONE')).toBe('/public/./data/abc/../xyz');
    expect(n('/a/%2e%2E/b?q=/../x', 'BASE')).toBe('/b?q=/../x');
    expect(n('/a%00b', 'BASE')).toBe(400);
    expect(n('admin', 'BASE')).toBe(404);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The bypass corpus: a DENY on /admin* and an ALLOW of /public* only, under each mesh pathNormalization.

const MODES: PathNormalization[] = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'];
const DENY_ADMIN = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: deny-admin, namespace: foo }\nspec: { action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }\n`;
const ALLOW_PUBLIC = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: allow-public, namespace: foo }\nspec: { rules: [{ to: [{ operation: { paths: ["/public*"] } }] }] }\n`;

/** One cell: `D` denied by the DENY filter, `A` denied by the ALLOW filter (no allow matched), `ok`, or the HCM status. */
function outcome(yaml: string, mode: PathNormalization, path: string, hardening?: Partial<RbacHardening>): string {
  const d = evaluateHttp(hcmWith(all(yaml), mode, { ...TD, ...(hardening ? { hardening } : {}) }), req({ path }));
  if (d.allowed) return 'ok';
  if (d.status !== 403) return String(d.status);
  return d.reason?.includes(':DENY:') ? 'D' : 'A';
}

function table(yaml: string, paths: readonly string[], hardening?: Partial<RbacHardening>): Record<string, string> {
  return Object.fromEntries(paths.map((p) => [p, MODES.map((m) => outcome(yaml, m, p, hardening)).join(' ')]));
}

describe('bypass corpus (columns: NONE BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES)', () => {
  const paths = ['/admin', '/admin?x=1', '//admin', '/admin/../admin', '/public/../admin', '/public/%2e%2e/admin', '/%61dmin', '/%2Fadmin', '/%2fadmin', '/%5Cadmin', '/\\admin', '/public/..%2Fadmin', '%2Fadmin', '%2fadmin', '/ADMIN', '/Admin', '/public/x'];

  it('DENY /admin* alone: what the DENY filter catches', () => {
    expect(table(DENY_ADMIN, paths)).toEqual({
      '/admin': 'D D D D',
      '/admin?x=1': 'D D D D',
      '//admin': 'ok ok D D',
      '/admin/../admin': 'D D D D',
      '/public/../admin': 'ok D D D',
      '/public/%2e%2e/admin': 'ok D D D',
      '/%61dmin': 'ok D D D',
      '/%2Fadmin': 'ok ok ok D',
      '/%2fadmin': 'ok ok ok D',
      '/%5Cadmin': 'ok ok ok D',
      '/\\admin': 'ok ok D D',
      '/public/..%2Fadmin': 'ok ok ok D',
      '%2Fadmin': '404 404 404 404',
      '%2fadmin': '404 404 404 404',
      '/ADMIN': 'ok ok ok ok',
      '/Admin': 'ok ok ok ok',
      '/public/x': 'ok ok ok ok',
    });
  });

  it('DENY /admin* with mizzen\'s opt-in case-insensitive DENY paths', () => {
    const t = table(DENY_ADMIN, ['/ADMIN', '/Admin', '/%2FADMIN', '/public/x'], { pathCase: true });
    expect(t).toEqual({ '/ADMIN': 'D D D D', '/Admin': 'D D D D', '/%2FADMIN': 'ok ok ok D', '/public/x': 'ok ok ok ok' });
  });

  it('ALLOW /public* alone: the allow-list denies what it does not recognise, except dot segments it never sees resolved', () => {
    expect(table(ALLOW_PUBLIC, paths)).toEqual({
      '/admin': 'A A A A',
      '/admin?x=1': 'A A A A',
      '//admin': 'A A A A',
      '/admin/../admin': 'A A A A',
      '/public/../admin': 'ok A A A',
      '/public/%2e%2e/admin': 'ok A A A',
      '/%61dmin': 'A A A A',
      '/%2Fadmin': 'A A A A',
      '/%2fadmin': 'A A A A',
      '/%5Cadmin': 'A A A A',
      '/\\admin': 'A A A A',
      '/public/..%2Fadmin': 'ok ok ok A',
      '%2Fadmin': '404 404 404 404',
      '%2fadmin': '404 404 404 404',
      '/ADMIN': 'A A A A',
      '/Admin': 'A A A A',
      '/public/x': 'ok ok ok ok',
    });
  });

  it('DENY /admin* and ALLOW /public* together: only NONE (and BASE/MERGE for ..%2F) let an /admin variant through', () => {
    const t = table(DENY_ADMIN + '---\n' + ALLOW_PUBLIC, paths);
    const through = Object.entries(t).filter(([p, v]) => p !== '/public/x' && v.includes('ok'));
    expect(Object.fromEntries(through)).toEqual({ '/public/../admin': 'ok D D D', '/public/%2e%2e/admin': 'ok D D D', '/public/..%2Fadmin': 'ok ok ok D' });
  });

  it('hosts: case-insensitive; with a port or a trailing dot only with mizzen\'s host hardening (DENY) — ALLOW stays exact', () => {
    const deny = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: h, namespace: foo }\nspec: { action: DENY, rules: [{ to: [{ operation: { hosts: ["example.com", "*.example.org"] } }] }] }\n`;
    const allow = deny.replace('action: DENY, ', '');
    const hosts = ['example.com', 'Example.COM', 'example.com:8080', 'EXAMPLE.com:80', 'example.com.', 'a.Example.org:443', 'example.com.evil.io', 'evil.com'];
    const run = (yaml: string, opts: RbacOptions) => Object.fromEntries(hosts.map((host) => [host, evaluateHttp(hcmWith(all(yaml), 'BASE', opts), req({ path: '/', host })).allowed ? 'ok' : 'denied']));
    expect(run(deny, TD)).toEqual({ 'example.com': 'denied', 'Example.COM': 'denied', 'example.com:8080': 'denied', 'EXAMPLE.com:80': 'denied', 'example.com.': 'denied', 'a.Example.org:443': 'denied', 'example.com.evil.io': 'ok', 'evil.com': 'ok' });
    expect(run(deny, { ...TD, hardening: ISTIO_EXACT })).toEqual({ 'example.com': 'denied', 'Example.COM': 'denied', 'example.com:8080': 'ok', 'EXAMPLE.com:80': 'ok', 'example.com.': 'ok', 'a.Example.org:443': 'ok', 'example.com.evil.io': 'ok', 'evil.com': 'ok' });
    expect(run(allow, TD)).toEqual({ 'example.com': 'ok', 'Example.COM': 'ok', 'example.com:8080': 'denied', 'EXAMPLE.com:80': 'denied', 'example.com.': 'denied', 'a.Example.org:443': 'denied', 'example.com.evil.io': 'denied', 'evil.com': 'denied' });
  });

  it('headers: a DENY value is caught in a repeated or comma-joined header (mizzen hardening); Istio\'s exact match is not', () => {
    const deny = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: h, namespace: foo }\nspec: { action: DENY, rules: [{ when: [{ key: "request.headers[x-role]", values: ["admin"] }] }] }\n`;
    const cases: Record<string, string | string[]> = { single: 'admin', repeated: ['user', 'admin'], joined: 'user,admin', spaced: 'user, admin', longer: 'administrator', other: 'user' };
    const run = (opts: RbacOptions) => Object.fromEntries(Object.entries(cases).map(([k, v]) => [k, evaluateHttp(hcmWith(all(deny), 'BASE', opts), req({ path: '/', headers: { 'X-Role': v } })).allowed ? 'ok' : 'denied']));
    expect(run(TD)).toEqual({ single: 'denied', repeated: 'denied', joined: 'denied', spaced: 'denied', longer: 'ok', other: 'ok' });
    expect(run({ ...TD, hardening: ISTIO_EXACT })).toEqual({ single: 'denied', repeated: 'ok', joined: 'ok', spaced: 'ok', longer: 'ok', other: 'ok' });
  });
});
