/**
 * Property-based fuzzing (fast-check) of mizzen's hostile-input edges: what to generate, and what must hold.
 * Shared by the fuzz tests (test/fuzz/*.fuzz.test.ts, a few hundred cases per property in `npm test`) and
 * `npm run bench:fuzz` (bench/fuzz.ts, 10,000 cases per property with a table and JSON).
 *
 * Every property is a `FuzzProperty`: an arbitrary and a `run` that answers `refused` or `accepted` and throws when
 * the property does not hold (an exception out of mizzen, a malformed answer, a refusal that does not name the
 * object, a certificate for someone else). Cases are generated from a fixed seed; fast-check prints the seed and
 * path of a failure, and `MIZZEN_FUZZ_SEED` / `MIZZEN_FUZZ_RUNS` change them.
 *
 * Config inputs start from valid objects (the user's seeds under ../shared/fixtures/seeds, examples/bookinfo, and a
 * few hand-written ones for kinds the seeds lack) and are mutated: wrong types, deleted fields, huge strings and
 * numbers, deep nesting, unicode, invalid regexes and durations, duplicated list entries, conflicting hosts, odd keys
 * (`__proto__`), and apiVersions among the served ones.
 */
import crypto, { X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import * as jose from 'jose';
import forge from 'node-forge';
import type { Registry } from 'prom-client';
import { applyPatch, type Operation } from 'rfc6902';
import { parseAllDocuments, stringify } from 'yaml';
import { ClientCertAuthenticator, JwtAuthenticator } from '../../src/ca/authenticate.ts';
import { CaKeyCertBundle } from '../../src/ca/bundle.ts';
import { encodeName } from '../../src/ca/cert-builder.ts';
import { createCsr, CsrError, parseCsr, type ParsedCsr } from '../../src/ca/csr.ts';
import { encodeDer, pemBlocks, Tag, toPem } from '../../src/ca/der.ts';
import { newSelfSignedMaterial, setupCertificateAuthority } from '../../src/ca/init.ts';
import { Oid } from '../../src/ca/keys.ts';
import { CaService, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/ca/service.ts';
import { CertificateAuthority } from '../../src/ca/sign.ts';
import { FileCaStore } from '../../src/ca/root-store.ts';
import { allKinds } from '../../src/config/kinds/all.ts';
import { formatConfigError, type ConfigError, type ConfigObject } from '../../src/config/object.ts';
import { loadYamlText } from '../../src/config/sources/load-file.ts';
import { validateDocument } from '../../src/config/validate.ts';
import { translateOffline } from '../../src/app/offline-translate.ts';
import { createLogger, silentLogger } from '../../src/shared/log.ts';
import { injectPod, resolveInjectorConfig } from '../../src/webhook/inject.ts';
import { reviewAdmission, startWebhookServer } from '../../src/webhook/server.ts';
import { reviewValidation } from '../../src/webhook/validate.ts';
import { grpcProxy, routerProxy, sidecarProxy, type ProxySpec } from '../support/translate.ts';

// ---------------------------------------------------------------------------------------------------------------
// Run settings

export const FUZZ_SEED = Number(process.env.MIZZEN_FUZZ_SEED ?? 20261122);
/** Cases per property: `MIZZEN_FUZZ_RUNS`, else the caller's default. */
export const fuzzRuns = (fallback: number): number => Number(process.env.MIZZEN_FUZZ_RUNS ?? fallback);
/** A case slower than this fails the property (a hang shows up as a failure with its seed and path). */
export const CASE_LIMIT_MS = Number(process.env.MIZZEN_FUZZ_CASE_MS ?? 3000);

export type Outcome = 'refused' | 'accepted';

export interface FuzzProperty<T = any> {
  name: string;
  arb: fc.Arbitrary<T>;
  /** Throws when the property does not hold. */
  run(input: T): Outcome | Promise<Outcome>;
  /** Relative cost: the test and bench run `runs / cost` cases of expensive properties when asked to. */
  async?: boolean;
}

export class PropertyViolation extends Error {}
export const violated = (message: string): never => {
  throw new PropertyViolation(message);
};

/** Runs one case under the time limit; the elapsed time goes to `timing` (bench). */
export async function runCase<T>(p: FuzzProperty<T>, input: T, timing?: (ms: number) => void): Promise<Outcome> {
  const t0 = performance.now();
  const out = await p.run(input);
  const ms = performance.now() - t0;
  timing?.(ms);
  if (ms > CASE_LIMIT_MS) violated(`${p.name}: one case took ${Math.round(ms)} ms (limit ${CASE_LIMIT_MS} ms)`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Base objects

const ROOT = path.resolve(import.meta.dirname, '../..');
const SEEDS = path.resolve(ROOT, '../shared/fixtures/seeds');
const EXAMPLES = path.join(ROOT, 'examples/bookinfo');

type Obj = Record<string, any>;

function yamlObjects(dir: string): Obj[] {
  const out: Obj[] = [];
  for (const f of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    for (const d of parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8'))) {
      if (d.errors.length > 0) continue;
      const v = d.toJS() as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as Obj).kind === 'string') out.push(v as Obj);
    }
  }
  return out;
}

const meta = (name: string, namespace = 'default') => ({ name, namespace });
/** Kinds the seeds lack, and the registry kinds that services come from. */
const HAND_WRITTEN: Obj[] = [
  { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: meta('default'), spec: { egress: [{ hosts: ['./*', 'istio-system/*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } } },
  { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: meta('vm-1'), spec: { address: '10.1.2.3', ports: { http: 8080 }, labels: { app: 'vm' }, serviceAccount: 'sa', weight: 2 } },
  { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadGroup', metadata: meta('vms'), spec: { template: { labels: { app: 'vm' }, serviceAccount: 'sa' }, probe: { httpGet: { port: 8080, path: '/ready' }, periodSeconds: 5 } } },
  { apiVersion: 'networking.istio.io/v1beta1', kind: 'ProxyConfig', metadata: meta('pc'), spec: { concurrency: 2, environmentVariables: { A: 'b' }, image: { imageType: 'distroless' } } },
  { apiVersion: 'extensions.istio.io/v1alpha1', kind: 'WasmPlugin', metadata: meta('wasm'), spec: { url: 'oci://ghcr.io/x/y:1', phase: 'AUTHN', pluginConfig: { a: { nested: true } }, selector: { matchLabels: { app: 'a' } } } },
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: meta('reviews'),
    spec: {
      hosts: ['reviews'],
      http: [
        { name: 'r', match: [{ uri: { regex: '/api/v[0-9]+' }, headers: { 'x-user': { prefix: 'a' } } }], route: [{ destination: { host: 'reviews', subset: 'v1', port: { number: 8080 } }, weight: 100 }], timeout: '2s', retries: { attempts: 3, perTryTimeout: '500ms', retryOn: 'unavailable' } },
        { route: [{ destination: { host: 'reviews', subset: 'v2' } }], fault: { delay: { percentage: { value: 10 }, fixedDelay: '1s' }, abort: { percentage: { value: 5 }, grpcStatus: 'UNAVAILABLE' } }, mirror: { host: 'ratings' } },
      ],
    },
  },
  { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: meta('reviews'), spec: { host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } }, connectionPool: { http: { http2MaxRequests: 10 } }, outlierDetection: { consecutive5xxErrors: 3, interval: '5s', baseEjectionTime: '30s' } }, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } }] } },
  { apiVersion: 'v1', kind: 'Service', metadata: meta('reviews'), spec: { clusterIP: '10.96.0.10', selector: { app: 'reviews' }, ports: [{ name: 'grpc', port: 8080, targetPort: 8080 }] } },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { ...meta('reviews-abc'), labels: { 'kubernetes.io/service-name': 'reviews' } }, addressType: 'IPv4', ports: [{ name: 'grpc', port: 8080 }], endpoints: [{ addresses: ['10.1.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'reviews-0', namespace: 'default' } }] },
  { apiVersion: 'v1', kind: 'Pod', metadata: { ...meta('reviews-0'), labels: { app: 'reviews', version: 'v1' } }, status: { podIP: '10.1.0.1', phase: 'Running' } },
];

/** Every valid-or-nearly-valid object of a kind mizzen reads: seeds, examples, hand-written. */
export const BASE_OBJECTS: readonly Obj[] = [...yamlObjects(SEEDS), ...yamlObjects(EXAMPLES), ...HAND_WRITTEN].filter((o) => {
  const def = allKinds.byKind(o.kind);
  return def !== undefined && typeof o.apiVersion === 'string' && o.apiVersion.startsWith(def.group ? `${def.group}/` : 'v1');
});

/** Every served `group/version` of every kind: a mutation may move an object to another one. */
export const SERVED_API_VERSIONS: readonly string[] = allKinds.all().flatMap((d) => d.versions.map((v) => (d.group ? `${d.group}/${v}` : v)));

// ---------------------------------------------------------------------------------------------------------------
// Hostile values

function nested(depth: number, array: boolean): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = array ? [v] : { a: v };
  return v;
}

export const hugeString = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom('a', '*', '.', '\u00e9', '\u{1F600}', '/', '(', ' ', '0')).map(([e, c]) => c.repeat(10 ** e * 3));
export const bigNumber = fc.constantFrom(2 ** 31, 2 ** 32, 2 ** 53 + 2, 1e21, 1e308, -1e308, Infinity, -Infinity, Number.NaN, -0, 65536, 65535, -1, 0, 1.5, Number.MIN_VALUE, -(2 ** 63));
export const deepValue = fc.tuple(fc.integer({ min: 20, max: 4000 }), fc.boolean()).map(([d, a]) => nested(d, a));
export const unicodeString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('\u202ereviews', 'rev\u0000iews', 'ｒｅｖｉｅｗｓ', 'İstanbul', '\uD800', '\uDFFF\uD800', 'ℌ𝔬𝔰𝔱', '\t\n\r', '\u200b', '🙂.example.com', 'xn--80ak6aa92e.com', 'a\\b', '"\'`', '${x}', '%2F%00'),
);
export const invalidRegex = fc.constantFrom('(', ')', '[a-', '*', '+a', 'a{1001}', 'a{2,1}', '(?<n>a)', '(?=a)', '(?!a)', '\\', '\\1', '(a)\\1', '[[:foo:]]', '\\p{Nope}', '(?P<n', '(a+)+$', '(?i', 'x'.repeat(5000), '(((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))'.repeat(40));
export const invalidDuration = fc.constantFrom('1 minute', '-1s', '1.5.5s', '99999999999999999999h', '1e309s', '0x10s', 's', '', '5', '1h1h', '.5s', '1d', '3600000000000s', '-0s', 'PT1S', '1ms1s', 'NaNs', 'Infinitys', '1µs', '5 s');
export const hostValue = fc.constantFrom('*', '*.svc.cluster.local', '*.default.svc.cluster.local', 'reviews', 'reviews.default.svc.cluster.local', 'Reviews', 'ratings', '10.0.0.1', '::1', '[::1]', 'a..b', '.', '*.*', 'ns/*', './*', '*/reviews', 'reviews:8080', '*reviews', 'r*s', 'example.com', '*.example.com', '0.0.0.0/0', 'mesh', 'istio-system/gw');
const oddKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', ' ', 'spec', 'metadata', '\u0000', '$ref', '0', '-1', 'a.b', 'a/b', '~1');

/** Something to put where a value was. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.string({ maxLength: 10 }), fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.anything({ maxDepth: 1 }), { maxKeys: 3 })), weight: 5 },
  { arbitrary: hugeString, weight: 1 },
  { arbitrary: bigNumber, weight: 2 },
  { arbitrary: deepValue, weight: 1 },
  { arbitrary: unicodeString, weight: 2 },
  { arbitrary: invalidRegex, weight: 2 },
  { arbitrary: invalidDuration, weight: 2 },
  { arbitrary: hostValue, weight: 2 },
  { arbitrary: fc.constantFrom(...SERVED_API_VERSIONS, 'networking.istio.io/v2', 'v1', 'GRPC', 'HTTP', 'ISTIO_MUTUAL', 'DENY', 'STRICT', 'ROUND_ROBIN', 'MESH_INTERNAL', 'DNS'), weight: 1 },
);

// ---------------------------------------------------------------------------------------------------------------
// Mutations

export type Mutation =
  | { op: 'set'; path: number[]; fromRoot: boolean; value: unknown }
  | { op: 'delete'; path: number[]; fromRoot: boolean }
  | { op: 'duplicate'; path: number[]; fromRoot: boolean }
  | { op: 'addKey'; path: number[]; fromRoot: boolean; key: string; value: unknown }
  | { op: 'apiVersion'; value: string }
  | { op: 'name'; value: unknown };

const walkPath = fc.array(fc.nat(), { minLength: 0, maxLength: 8 });
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('set' as const), path: walkPath, fromRoot: fc.boolean(), value: hostileValue }), weight: 8 },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), path: walkPath, fromRoot: fc.boolean() }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('duplicate' as const), path: walkPath, fromRoot: fc.constant(false) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('addKey' as const), path: walkPath, fromRoot: fc.boolean(), key: fc.oneof(oddKey, fc.string({ maxLength: 8 })), value: hostileValue }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('apiVersion' as const), value: fc.constantFrom(...SERVED_API_VERSIONS, 'networking.istio.io/v9', 'security.istio.io/v1alpha1', 'v2', '', '/') }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('name' as const), value: fc.oneof(hostileValue, fc.constantFrom('reviews', 'a', 'A', '-a', 'a-', 'a'.repeat(254), 'a.b', 'default')) }), weight: 1 },
);

/** Follows `path` (indexes into the keys or elements met) from the object or its spec; stops at a leaf. */
function locate(root: Obj, pathIdx: number[], fromRoot: boolean): { parent: any; key: string | number; node: any } {
  let parent: any = root;
  let key: string | number = fromRoot || root.spec === undefined ? '' : 'spec';
  let node: any = key === '' ? root : root.spec;
  for (const p of pathIdx) {
    if (node === null || typeof node !== 'object') break;
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    parent = node;
    key = Array.isArray(node) ? p % node.length : keys[p % keys.length]!;
    node = node[key];
  }
  return { parent, key, node };
}

/** Sets an own property, even `__proto__` (as JSON.parse and YAML would produce it). */
function setOwn(target: any, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

export function applyMutation(obj: Obj, m: Mutation): void {
  if (m.op === 'apiVersion') return void (obj.apiVersion = m.value);
  if (m.op === 'name') {
    if (obj.metadata && typeof obj.metadata === 'object') obj.metadata.name = m.value;
    return;
  }
  const { parent, key, node } = locate(obj, m.path, m.fromRoot);
  if (m.op === 'set') {
    if (key === '') return;
    setOwn(parent, key, m.value);
  } else if (m.op === 'delete') {
    if (key === '') return;
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else if (m.op === 'duplicate') {
    // Duplicate list entries: subsets, routes, servers, ports, rules with the same names.
    // Shared, not copied (as a YAML alias would share it): a deep value cannot be cloned without a deep stack.
    if (Array.isArray(node) && node.length > 0) node.push(node[node.length - 1]);
    else if (Array.isArray(parent)) parent.push(node);
  } else if (m.op === 'addKey') {
    if (node && typeof node === 'object' && !Array.isArray(node)) setOwn(node, m.key, m.value);
  }
}

export const baseObject = fc.constantFrom(...BASE_OBJECTS);

/** A seed-based object with 1–4 mutations. */
export const mutatedObject: fc.Arbitrary<Obj> = fc
  .tuple(baseObject, fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([base, ms]) => {
    const o = structuredClone(base);
    for (const m of ms) applyMutation(o, m);
    return o;
  });

// ---------------------------------------------------------------------------------------------------------------
// Several objects at once: conflicts across objects

const NAMESPACES = ['default', 'bookinfo', 'istio-system', 'other'];
const HOSTS = ['reviews', 'reviews.default.svc.cluster.local', 'reviews.bookinfo.svc.cluster.local', 'ratings.default.svc.cluster.local', '*.default.svc.cluster.local', '*', 'example.com', '*.example.com'];
const SUBSETS = ['v1', 'v2', 'v1', 'canary'];
const ns = fc.constantFrom(...NAMESPACES);
const host = fc.constantFrom(...HOSTS);
const name = fc.constantFrom('a', 'b', 'reviews', 'reviews');

const virtualService = fc
  .record({ name, ns, hosts: fc.array(host, { minLength: 1, maxLength: 3 }), gateways: fc.option(fc.constantFrom(['mesh'], ['istio-system/gw'], ['gw', 'mesh'], ['other/missing']), { nil: undefined }), routes: fc.array(fc.record({ host, subset: fc.option(fc.constantFrom(...SUBSETS), { nil: undefined }), weight: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }), port: fc.option(fc.constantFrom(8080, 9080, 80), { nil: undefined }) }), { minLength: 1, maxLength: 3 }), delegate: fc.option(fc.record({ name, ns }), { nil: undefined }), child: fc.boolean(), prefix: fc.constantFrom('/', '/api', '/reviews/'), tcp: fc.boolean() })
  .map((v) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: meta(v.name, v.ns),
    spec: {
      // A delegate (child) has no hosts; a root may delegate to any VirtualService by name (loops included).
      hosts: v.child ? [] : v.hosts,
      ...(v.gateways && !v.child ? { gateways: v.gateways } : {}),
      http: [
        v.delegate && !v.child
          ? { match: [{ uri: { prefix: v.prefix } }], delegate: { name: v.delegate.name, namespace: v.delegate.ns } }
          : { match: [{ uri: { prefix: v.prefix } }], route: v.routes.map((r) => ({ destination: { host: r.host, ...(r.subset ? { subset: r.subset } : {}), ...(r.port ? { port: { number: r.port } } : {}) }, ...(r.weight !== undefined ? { weight: r.weight } : {}) })) },
      ],
      ...(v.tcp && !v.child ? { tcp: [{ match: [{ port: 9080 }], route: [{ destination: { host: v.hosts[0] } }] }] } : {}),
    },
  }));

const destinationRule = fc
  .record({ name, ns, host, subsets: fc.array(fc.constantFrom(...SUBSETS), { maxLength: 4 }), lb: fc.constantFrom({ simple: 'ROUND_ROBIN' }, { simple: 'LEAST_REQUEST' }, { consistentHash: { ringHash: { minimumRingSize: 1024 }, httpHeaderName: 'x' } }, { localityLbSetting: { enabled: true } }), tls: fc.constantFrom('ISTIO_MUTUAL', 'DISABLE', 'SIMPLE', 'MUTUAL'), exportTo: fc.option(fc.constantFrom(['.'], ['*'], ['other']), { nil: undefined }) })
  .map((d) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: meta(d.name, d.ns),
    spec: { host: d.host, ...(d.exportTo ? { exportTo: d.exportTo } : {}), trafficPolicy: { loadBalancer: d.lb, tls: { mode: d.tls } }, subsets: d.subsets.map((s) => ({ name: s, labels: { version: s } })) },
  }));

const gateway = fc
  .record({ name, ns, port: fc.constantFrom(80, 443, 8080), hosts: fc.array(fc.constantFrom('*', '*/reviews.default.svc.cluster.local', 'example.com', './*', 'default/*'), { minLength: 1, maxLength: 2 }), tls: fc.boolean() })
  .map((g) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: meta(g.name === 'a' ? 'gw' : g.name, g.ns),
    spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: g.port, name: `p${g.port}`, protocol: g.tls ? 'HTTPS' : 'HTTP' }, hosts: g.hosts, ...(g.tls ? { tls: { mode: 'SIMPLE', credentialName: 'cert' } } : {}) }] },
  }));

const serviceEntry = fc
  .record({ name, ns, hosts: fc.array(host, { minLength: 1, maxLength: 2 }), port: fc.constantFrom(8080, 9080, 443), protocol: fc.constantFrom('HTTP', 'GRPC', 'TCP', 'TLS', 'HTTP2'), resolution: fc.constantFrom('STATIC', 'DNS', 'NONE') })
  .map((s) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: meta(`se-${s.name}`, s.ns),
    spec: { hosts: s.hosts, location: 'MESH_INTERNAL', resolution: s.resolution, ports: [{ number: s.port, name: 'p', protocol: s.protocol }], ...(s.resolution === 'STATIC' ? { endpoints: [{ address: '10.2.0.1', labels: { version: 'v1' } }] } : {}) },
  }));

const sidecar = fc.record({ ns, hosts: fc.array(fc.constantFrom('./*', '*/*', 'istio-system/*', 'default/reviews.default.svc.cluster.local', '~/*'), { minLength: 1, maxLength: 2 }) }).map((s) => ({ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: meta('default', s.ns), spec: { egress: [{ hosts: s.hosts }] } }));

const security = fc.record({ ns, action: fc.constantFrom('ALLOW', 'DENY', 'AUDIT'), mode: fc.constantFrom('STRICT', 'PERMISSIVE', 'DISABLE') }).chain((s) =>
  fc.constantFrom(
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('authz', s.ns), spec: { action: s.action, rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/[0]*'] } }], to: [{ operation: { paths: ['/admin*'], methods: ['GET'] } }] }] } },
    { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: meta('default', s.ns), spec: { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: s.mode }, portLevelMtls: { 8080: { mode: 'DISABLE' } } } },
  ),
);

/** Services the generated routes may point at, in every namespace used. */
const REGISTRY: Obj[] = NAMESPACES.flatMap((n) => [
  { apiVersion: 'v1', kind: 'Service', metadata: meta('reviews', n), spec: { clusterIP: '10.96.0.10', selector: { app: 'reviews' }, ports: [{ name: 'grpc', port: 8080, targetPort: 8080 }, { name: 'http', port: 9080 }] } },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { ...meta('reviews-abc', n), labels: { 'kubernetes.io/service-name': 'reviews' } }, addressType: 'IPv4', ports: [{ name: 'grpc', port: 8080 }, { name: 'http', port: 9080 }], endpoints: [{ addresses: ['10.1.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'reviews-0', namespace: n } }] },
  { apiVersion: 'v1', kind: 'Pod', metadata: { ...meta('reviews-0', n), labels: { app: 'reviews', version: 'v1' } }, status: { podIP: '10.1.0.1', phase: 'Running' } },
]);

/** 2–8 objects that overlap: same hosts, same names, duplicate subsets, delegate loops, sometimes one mutated. */
export const conflictingObjects: fc.Arbitrary<Obj[]> = fc
  .tuple(
    fc.array(fc.oneof({ arbitrary: virtualService, weight: 4 }, { arbitrary: destinationRule, weight: 3 }, gateway, serviceEntry, sidecar, security), { minLength: 2, maxLength: 8 }),
    fc.option(fc.tuple(fc.nat(), mutation), { nil: undefined }),
  )
  .map(([generated, m]) => {
    const objs = structuredClone(generated); // constantFrom hands out shared values: never mutate those
    if (m) applyMutation(objs[m[0] % objs.length]!, m[1]);
    return objs;
  });

// ---------------------------------------------------------------------------------------------------------------
// Config properties

const OPTS = { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' };

/** A refusal must say which object (`Kind ns/name`) and which field. */
export function checkRefusal(e: ConfigError, raw: unknown): void {
  // A document that is not a mapping at all has no object to name: its file and line are the whole story.
  if (e.kind === 'document' && e.errors.length === 1 && e.errors[0]!.message === 'not a YAML mapping' && e.source) return;
  if (!e.kind) violated(`refusal without a kind: ${JSON.stringify(e).slice(0, 300)}`);
  if (e.errors.length === 0) violated(`refusal without errors: ${e.kind}`);
  const rawMeta = raw && typeof raw === 'object' ? (raw as Obj).metadata : undefined;
  const rawName = rawMeta && typeof rawMeta === 'object' && typeof rawMeta.name === 'string' ? rawMeta.name : undefined;
  if (rawName !== undefined && e.name !== rawName) violated(`refusal of ${e.kind} names ${String(e.name)}, not the object's name ${JSON.stringify(rawName).slice(0, 100)}`);
  if (!e.namespace) violated(`refusal of ${e.kind} ${String(e.name)} has no namespace`);
  const who = `${e.kind} ${e.namespace}/${e.name ?? '<unnamed>'}`;
  const lines = formatConfigError(e);
  lines.forEach((line, i) => {
    if (!line.startsWith(`${who}: `)) violated(`refusal line does not name the object as "${who}": ${line.slice(0, 200)}`);
    const fe = e.errors[i]!;
    if (typeof fe.path !== 'string' || fe.path === '') violated(`${who}: refusal without a field path: ${fe.message.slice(0, 200)}`);
    if (typeof fe.message !== 'string' || fe.message === '') violated(`${who}: ${fe.path}: refusal without a message`);
  });
}

interface Translated {
  proxy: string;
  generationErrors: number;
  errors: string[];
}

/** Error lines the provider logs when a resource fails to generate (the reason behind generationErrors). */
const providerErrors: string[] = [];
const providerLog = createLogger({ level: 'error', destination: new Writable({ write: (c, _e, cb) => (providerErrors.push(String(c)), cb()) }) });

/** The objects through the offline translation (same provider, cache, Envoy schema check and encoder as `serve`). */
export function translateFor(objects: ConfigObject[], proxy: ProxySpec): Translated {
  providerErrors.length = 0;
  const node = { id: proxy.id, cluster: '', metadata: proxy.metadata };
  const t = translateOffline(objects, node, { verify: true, trustClaims: true, log: providerLog });
  return { proxy: proxy.id, generationErrors: t.generationErrors, errors: [...providerErrors] };
}

const PROXIES = (namespace: string): ProxySpec[] => [sidecarProxy(namespace, { app: 'reviews', version: 'v1' }), grpcProxy(namespace, { app: 'client' }), routerProxy('istio-system')];

function translateAll(objects: ConfigObject[], namespace: string): void {
  for (const proxy of PROXIES(namespace)) {
    const t = translateFor(objects, proxy);
    if (t.generationErrors > 0) violated(`translation for ${proxy.id} failed for ${t.generationErrors} resource(s): ${t.errors.slice(0, 3).join(' | ').slice(0, 800)}`);
  }
}

/** Validation of one document: never throws; accepted, refused naming the object and field, or not ours. */
function validateOne(raw: unknown): { accepted?: ConfigObject; refused: boolean } {
  const r = validateDocument(raw, allKinds, OPTS);
  if (r === undefined) return { refused: true }; // not a kind mizzen reads (a mutated kind/apiVersion): ignored
  if (!r.ok) {
    checkRefusal(r.errors, raw);
    return { refused: true };
  }
  JSON.stringify(r.value); // what the store and debug endpoints do with it
  return { accepted: r.value, refused: false };
}

export const validateProperty: FuzzProperty<Obj> = {
  name: 'config: validate one mutated object',
  arb: mutatedObject,
  run(raw) {
    return validateOne(raw).accepted ? 'accepted' : 'refused';
  },
};

export const translateProperty: FuzzProperty<Obj> = {
  name: 'config: validate + translate (sidecar, grpc, router)',
  arb: mutatedObject,
  run(raw) {
    const v = validateOne(raw);
    if (!v.accepted) return 'refused';
    const objects = [...REGISTRY.map((o) => validateOne(o).accepted!), v.accepted];
    translateAll(objects, v.accepted.metadata.namespace || 'default');
    return 'accepted';
  },
};

export const conflictsProperty: FuzzProperty<Obj[]> = {
  name: 'config: several conflicting objects → translate',
  arb: conflictingObjects,
  run(raws) {
    const accepted: ConfigObject[] = [];
    let refused = 0;
    for (const raw of raws) {
      const v = validateOne(raw);
      if (v.accepted) accepted.push(v.accepted);
      else refused++;
    }
    const namespace = accepted.find((o) => o.kind === 'VirtualService')?.metadata.namespace ?? 'default';
    translateAll([...REGISTRY.map((o) => validateOne(o).accepted!), ...accepted], namespace);
    return refused > 0 ? 'refused' : 'accepted';
  },
};

/** The deepest bracket nesting of a JSON text. */
function jsonDepth(json: string): number {
  let depth = 0;
  let max = 0;
  for (const c of json) {
    if (c === '{' || c === '[') max = Math.max(max, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return max;
}

/** YAML text of a mutated object, then damaged as text (truncated, duplicate keys, anchors, tabs). */
export const yamlText: fc.Arbitrary<string> = fc
  .tuple(mutatedObject, fc.nat(), fc.constantFrom('', 'truncate', 'dupKey', 'alias', 'tab', 'docs', 'bom'))
  .map(([o, at, how]) => {
    // Large or deep objects as JSON (flow YAML): the yaml library's block output is quadratic in the nesting depth.
    let text = JSON.stringify(o) ?? '{}';
    if (text.length < 20_000 && jsonDepth(text) < 64) {
      try {
        text = stringify(o, { aliasDuplicateObjects: false });
      } catch {
        // keep the JSON
      }
    }
    if (how === 'truncate') return text.slice(0, at % (text.length + 1));
    if (how === 'dupKey') return `${text}\nkind: Other\n`;
    if (how === 'alias') return `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n---\n${text}`;
    if (how === 'tab') return text.replace(/\n {2}/g, '\n\t');
    if (how === 'docs') return `${text}\n---\n${text}\n---\n`;
    if (how === 'bom') return `\uFEFF${text}`;
    return text;
  });

export const yamlProperty: FuzzProperty<string> = {
  name: 'config: damaged YAML text → load',
  arb: yamlText,
  run(text) {
    const r = loadYamlText(text, 'fuzz.yaml', allKinds, OPTS);
    for (const e of r.errors) {
      if (e.kind === 'YAML') {
        if (!e.errors[0]?.message) violated('YAML error without a message');
      } else checkRefusal(e, undefined);
    }
    return r.errors.length > 0 ? 'refused' : 'accepted';
  },
};

export const CONFIG_PROPERTIES: ReadonlyArray<FuzzProperty> = [validateProperty, yamlProperty, translateProperty, conflictsProperty];

// ---------------------------------------------------------------------------------------------------------------
// AdmissionReviews: the validating webhook (reviewValidation) and the injector (reviewAdmission → injectPod)

const UID = '0b5e55ed-0000-4000-8000-00000000f022';
const isRecord = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Mutations of the AdmissionReview envelope itself. */
const envelopeMutation = fc.oneof(
  fc.record({ at: fc.constantFrom('uid', 'operation', 'kind', 'resource', 'namespace', 'name', 'object', 'request', 'apiVersion', 'subResource', 'oldObject', 'dryRun', 'userInfo', 'options'), value: fc.oneof(hostileValue, fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT', 'create', '', UID, { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }, { group: '', version: 'v1', kind: 'Pod' }, { kind: 'Pod' }, 'admission.k8s.io/v1beta1', 'status')) }),
  fc.record({ at: fc.constant('delete'), value: fc.constantFrom('uid', 'operation', 'kind', 'object', 'request', 'namespace', 'resource') }),
);

function review(object: unknown, kind: { group: string; version: string; kind: string }, mutations: Array<{ at: string; value: unknown }>): Obj {
  const body: Obj = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: UID, kind, resource: { group: kind.group, version: kind.version, resource: `${kind.kind.toLowerCase()}s` }, namespace: isRecord(object) && isRecord(object.metadata) ? object.metadata.namespace : 'default', operation: 'CREATE', object },
  };
  for (const m of mutations) {
    if (m.at === 'delete') {
      if (isRecord(body.request)) delete body.request[m.value as string];
    }
    else if (m.at === 'apiVersion') body.apiVersion = m.value;
    else if (m.at === 'request') body.request = isRecord(m.value) ? { ...m.value, uid: UID } : m.value;
    else if (isRecord(body.request)) setOwn(body.request, m.at, m.value);
  }
  return body;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
function kindOf(o: Obj): { group: string; version: string; kind: string } {
  const [group = '', version = ''] = str(o.apiVersion).split('/');
  return { group, version, kind: str(o.kind) };
}

/** What the webhook receives is JSON: no shared subtrees, no undefined, no NaN (a body too deep to encode stays as is). */
function asJson(v: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(v) ?? 'null') as unknown;
  } catch {
    return v;
  }
}

/** A mutated mesh object in a (mutated) AdmissionReview, or any JSON at all. */
export const validationReview: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.tuple(fc.oneof({ arbitrary: mutatedObject, weight: 4 }, baseObject), fc.array(envelopeMutation, { maxLength: 2 })).map(([o, ms]) => review(o, kindOf(o), ms)), weight: 10 },
  { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 1 },
  { arbitrary: fc.anything({ maxDepth: 3 }).map((request) => ({ request })), weight: 1 },
).map(asJson);

/** Pods as the API server sends them, before the injector. */
const BASE_PODS: Obj[] = [
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web', version: 'v1' } }, spec: { containers: [{ name: 'web', image: 'web:1', ports: [{ containerPort: 8080, name: 'http' }], readinessProbe: { httpGet: { path: '/ready', port: 8080 } }, livenessProbe: { tcpSocket: { port: 8080 } } }] } },
  { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'reviews-7d9f-', namespace: 'bookinfo', labels: { app: 'reviews' }, annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090', 'proxy.istio.io/config': 'holdApplicationUntilProxyStarts: true\nconcurrency: 2\n', 'traffic.sidecar.istio.io/excludeOutboundPorts': '5432' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-7d9f', controller: true, uid: 'x' }] }, spec: { serviceAccountName: 'reviews', initContainers: [{ name: 'migrate', image: 'm:1' }], containers: [{ name: 'reviews', image: 'docker.io/istio/examples-bookinfo-reviews-v1:1.16.2', ports: [{ containerPort: 9080 }] }], volumes: [{ name: 'data', emptyDir: {} }] } },
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'grpc-client', namespace: 'default', annotations: { 'inject.istio.io/templates': 'grpc-agent', 'sidecar.istio.io/inject': 'true' } }, spec: { containers: [{ name: 'app', image: 'app:1' }] } },
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'opted-out', namespace: 'default', annotations: { 'sidecar.istio.io/inject': 'false' } }, spec: { containers: [{ name: 'app', image: 'app:1' }] } },
];
const INJECT_ANNOTATIONS = ['sidecar.istio.io/inject', 'sidecar.istio.io/status', 'proxy.istio.io/overrides', 'inject.istio.io/templates', 'proxy.istio.io/config', 'istio.io/rev', 'traffic.sidecar.istio.io/includeOutboundIPRanges', 'traffic.sidecar.istio.io/excludeOutboundIPRanges', 'traffic.sidecar.istio.io/includeInboundPorts', 'traffic.sidecar.istio.io/excludeInboundPorts', 'traffic.sidecar.istio.io/excludeOutboundPorts', 'traffic.sidecar.istio.io/excludeInterfaces', 'sidecar.istio.io/interceptionMode', 'sidecar.istio.io/proxyCPU', 'sidecar.istio.io/proxyMemory', 'sidecar.istio.io/proxyCPULimit', 'sidecar.istio.io/logLevel', 'sidecar.istio.io/componentLogLevel', 'sidecar.istio.io/nativeSidecar', 'sidecar.istio.io/rewriteAppHTTPProbers', 'status.sidecar.istio.io/port', 'readiness.status.sidecar.istio.io/initialDelaySeconds', 'prometheus.io/port', 'prometheus.io/path', 'prometheus.io/scrape', 'kubectl.kubernetes.io/default-container', 'sidecar.istio.io/bootstrapOverride', 'sidecar.istio.io/userVolume', 'sidecar.istio.io/userVolumeMount'];
const annotationValue = fc.oneof(
  fc.constantFrom('true', 'false', '', 'TRUE', ' yes ', '*', '0.0.0.0/0', '10.0.0.0/8,::/0', '10.0.0.0/33', '1,2,3', '65536', '-1', '0', 'a,b', 'REDIRECT', 'TPROXY', 'NONE', '100m', '1Gi', 'x', 'grpc-agent', 'sidecar,grpc-agent', 'nope', 'debug', 'misc:trace', '{}', '[]', 'null', '{"containers":["x"],"initContainers":null}', '{"containers":[{"name":"istio-proxy"}]}', 'holdApplicationUntilProxyStarts: [', 'concurrency: -1', '&a [*a]', '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"imagePullSecrets":null,"revision":"default"}'),
  unicodeString,
  hugeString,
);
const podMutation = fc.oneof(
  { arbitrary: mutation, weight: 3 },
  { arbitrary: fc.record({ key: fc.constantFrom(...INJECT_ANNOTATIONS), value: annotationValue, label: fc.boolean() }), weight: 4 },
);

export const mutatedPod: fc.Arbitrary<Obj> = fc.tuple(fc.constantFrom(...BASE_PODS), fc.array(podMutation, { minLength: 0, maxLength: 5 })).map(([base, ms]) => {
  const pod = structuredClone(base);
  for (const m of ms) {
    if ('op' in m) applyMutation(pod, m);
    else if (isRecord(pod.metadata)) {
      const field = m.label ? 'labels' : 'annotations';
      if (!isRecord(pod.metadata[field])) pod.metadata[field] = {};
      pod.metadata[field][m.key] = m.value;
    }
  }
  return pod;
});

export const injectionReview: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.tuple(mutatedPod, fc.array(envelopeMutation, { maxLength: 2 })).map(([pod, ms]) => review(pod, { group: '', version: 'v1', kind: 'Pod' }, ms)), weight: 10 },
  { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 1 },
  { arbitrary: fc.anything({ maxDepth: 3 }).map((request) => ({ request: isRecord(request) ? { ...request, uid: UID } : request })), weight: 1 },
).map(asJson);

/** The uid the reply must echo, when the body is an AdmissionReview at all. */
const uidOf = (body: unknown): unknown => (isRecord(body) && isRecord(body.request) ? body.request.uid : undefined);

/** A well-formed AdmissionReview answer for `body`: its uid, allowed, and a reason when denied. */
export function checkReviewAnswer(body: unknown, answer: unknown, validating: boolean): Outcome {
  if (!isRecord(answer) || answer.kind !== 'AdmissionReview' || typeof answer.apiVersion !== 'string' || !answer.apiVersion.startsWith('admission.k8s.io/')) violated(`not an AdmissionReview answer: ${JSON.stringify(answer)?.slice(0, 300)}`);
  const a = answer as Obj;
  const r = a.response;
  if (!isRecord(r)) return violated('AdmissionReview answer without a response');
  if (r.uid !== uidOf(body)) violated(`answer uid ${JSON.stringify(r.uid)} is not the request's`);
  if (typeof r.allowed !== 'boolean') violated('answer without allowed');
  if (!r.allowed) {
    if (!isRecord(r.status) || typeof r.status.message !== 'string' || r.status.message === '') violated(`denial without a message: ${JSON.stringify(r)}`);
    if (validating && r.status.code !== 400) violated(`validation denial with code ${String(r.status.code)}`);
    return 'refused';
  }
  if (r.patch !== undefined) {
    if (r.patchType !== 'JSONPatch' || typeof r.patch !== 'string') violated('patch without patchType JSONPatch');
    const ops = JSON.parse(Buffer.from(r.patch, 'base64').toString('utf8')) as unknown;
    if (!Array.isArray(ops) || ops.length === 0) violated('patch is not a non-empty JSON Patch array');
    const pod = structuredClone((body as Obj).request.object) as Obj;
    if (isRecord(pod.metadata)) delete pod.metadata.managedFields;
    const errors = applyPatch(pod, ops as Operation[]).filter((e) => e !== null);
    if (errors.length > 0) violated(`the patch does not apply to the pod: ${String(errors[0])}`);
  }
  return 'accepted';
}

export const reviewValidationProperty: FuzzProperty<unknown> = {
  name: 'webhook: reviewValidation (mesh CRD AdmissionReviews)',
  arb: validationReview,
  run(body) {
    const out = reviewValidation(body);
    if (!out.ok) {
      if (typeof out.error !== 'string' || !out.error) violated('a 400 without a reason');
      if (typeof uidOf(body) === 'string' && uidOf(body) !== '') violated(`an AdmissionReview with a uid answered 400: ${out.error}`);
      return 'refused';
    }
    JSON.stringify(out.review);
    const verdict = checkReviewAnswer(body, out.review, true);
    if (verdict === 'refused' && out.result === 'failed' && (out.reason === 'unknown_type' || out.reason === 'invalid_resource')) {
      // Named the way `mizzen validate` names it: `Kind ns/name: path: message` (names may hold any character, even
      // newlines, so only the start of the message is checked).
      const request = (body as Obj).request as Obj;
      const object = isRecord(request.object) ? request.object : {};
      const kind = str(object.kind) || str(isRecord(request.kind) ? request.kind.kind : undefined) || 'object';
      const message = String(out.review.response.status?.message);
      if (!message.startsWith(`${kind} `) || !message.includes(': ')) violated(`${out.reason} denial does not name the ${kind}: ${message.slice(0, 200)}`);
    }
    return verdict;
  },
};

const injectorConfig = resolveInjectorConfig();
export const reviewInjectionProperty: FuzzProperty<unknown> = {
  name: 'webhook: reviewAdmission + injectPod (Pod AdmissionReviews)',
  arb: injectionReview,
  run(body) {
    if (isRecord(body) && isRecord(body.request)) {
      const o = injectPod({ pod: body.request.object, config: injectorConfig, namespace: 'default' });
      if (!['injected', 'skipped', 'failed'].includes(o.kind)) violated(`injectPod answered ${JSON.stringify(o).slice(0, 200)}`);
    }
    const out = reviewAdmission(body, { config: injectorConfig });
    if (!out.ok) {
      if (typeof uidOf(body) === 'string' && uidOf(body) !== '') violated(`an AdmissionReview with a uid answered 400: ${out.error}`);
      return 'refused';
    }
    return checkReviewAnswer(body, JSON.parse(JSON.stringify(out.review)), false);
  },
};

export const WEBHOOK_PROPERTIES: ReadonlyArray<FuzzProperty> = [reviewValidationProperty, reviewInjectionProperty];

/** A request to the HTTPS webhook server: a body (JSON of a review, damaged, or bytes), its path and content type. */
export interface WireRequest {
  path: string;
  contentType: string;
  body: string;
}

export const wireRequest: fc.Arbitrary<WireRequest> = fc.record({
  path: fc.constantFrom('/inject', '/validate', '/inject/cluster/k/net/n', '/validate/', '/nope'),
  contentType: fc.constantFrom('application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', ''),
  body: fc.oneof(
    { arbitrary: fc.oneof(injectionReview, validationReview).map((b) => JSON.stringify(b) ?? 'null'), weight: 6 },
    { arbitrary: fc.tuple(fc.oneof(injectionReview, validationReview), fc.nat()).map(([b, at]) => { const s = JSON.stringify(b) ?? ''; return s.slice(0, at % (s.length + 1)); }), weight: 2 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 1 },
    { arbitrary: fc.constantFrom('', '{}', '[]', 'null', '{"request":', '{"a":'.repeat(20000) + '1' + '}'.repeat(20000), `{"request":{"uid":"x","object":${'['.repeat(50000)}${']'.repeat(50000)}}}`, JSON.stringify({ request: { uid: 'x', kind: { kind: 'Pod' }, object: { metadata: { annotations: { a: 'x'.repeat(300 * 1024) } } } } })), weight: 1 },
  ),
});

/** The HTTPS server's answer to one wire request: a status it may give, and a well-formed body. */
export function checkWireAnswer(req: WireRequest, status: number, text: string, bodyLimit: number): Outcome {
  if (![200, 400, 404, 413, 415].includes(status)) violated(`HTTP ${status} for ${req.path} (${req.contentType}): ${text.slice(0, 300)}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return violated(`HTTP ${status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  if (status === 413 && Buffer.byteLength(req.body) <= bodyLimit) violated('413 for a body under the limit');
  if (status !== 200) {
    if (!isRecord(json) || (status !== 404 && typeof json.error !== 'string')) violated(`HTTP ${status} without an error: ${text.slice(0, 200)}`);
    return 'refused';
  }
  const body = JSON.parse(req.body) as unknown;
  return checkReviewAnswer(body, json, req.path.startsWith('/validate'));
}

export interface FuzzWebhookServer {
  port: number;
  bodyLimit: number;
  post(req: WireRequest): Promise<{ status: number; text: string }>;
  /** A valid review still gets a valid answer. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/** The webhook server as `mizzen serve` runs it: HTTPS on loopback, serving certificate from a fresh mizzen CA. */
export async function startFuzzWebhookServer(dir: string, registry: Registry): Promise<FuzzWebhookServer> {
  const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(path.join(dir, 'ca')), log: silentLogger, keyType: 'ec' });
  const issued = ca.issueServingCertificate({ dnsNames: ['localhost'], ttlSec: 3600 });
  const bodyLimit = 256 * 1024;
  const server = await startWebhookServer({ host: '127.0.0.1', port: 0, tls: { key: issued.key, cert: issued.certChain }, registry, config: injectorConfig, log: silentLogger, bodyLimitBytes: bodyLimit });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: issued.roots, servername: 'localhost' });
  const post = (req: WireRequest) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const headers: Record<string, string> = { 'content-length': String(Buffer.byteLength(req.body)) };
      if (req.contentType) headers['content-type'] = req.contentType;
      const r = https.request({ host: '127.0.0.1', port: server.port, path: req.path, method: 'POST', agent, headers, timeout: CASE_LIMIT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      r.on('timeout', () => r.destroy(new Error(`no answer within ${CASE_LIMIT_MS} ms`)));
      r.on('error', reject);
      r.end(req.body);
    });
  const good: WireRequest = { path: '/validate', contentType: 'application/json', body: JSON.stringify(review(structuredClone(HAND_WRITTEN[5]), { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }, [])) };
  return {
    port: server.port,
    bodyLimit,
    post,
    healthy: async () => {
      const r = await post(good);
      return r.status === 200 && (JSON.parse(r.text) as Obj).response?.allowed === true;
    },
    close: async () => {
      agent.destroy();
      await server.close();
    },
  };
}

export const WIRE_PROPERTY = 'webhook: HTTPS POST /inject, /validate (random bodies)';
export function wireProperty(server: FuzzWebhookServer): FuzzProperty<WireRequest> {
  return {
    name: WIRE_PROPERTY,
    arb: wireRequest,
    async: true,
    async run(req) {
      let reply: { status: number; text: string };
      try {
        reply = await server.post(req);
      } catch (err) {
        // The server may close the connection on a body over the limit before reading it all (that is a 413 too).
        if (Buffer.byteLength(req.body) > server.bodyLimit && /ECONNRESET|EPIPE|socket hang up/.test(String(err))) return 'refused';
        return violated(`no HTTP answer for ${req.path}: ${String(err)}`);
      }
      return checkWireAnswer(req, reply.status, reply.text, server.bodyLimit);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// CSRs at the CA: parseCsr and CreateCertificate

const oidDer = (oid: string): Buffer => encodeDer(Tag.Oid, Buffer.from(forge.asn1.oidToDer(oid).getBytes(), 'binary'));

/** Keys a CSR may carry: the accepted ones and the ones that must be refused (size, curve, algorithm). */
export interface CsrMaterial {
  keys: Array<{ label: string; key: KeyObject; accepted: boolean }>;
}

let material: CsrMaterial | undefined;
export function csrMaterial(): CsrMaterial {
  material ??= {
    keys: [
      { label: 'ec-p256', key: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, accepted: true },
      { label: 'ec-p384', key: crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, accepted: true },
      { label: 'rsa-2048', key: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, accepted: true },
      { label: 'rsa-1024', key: crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey, accepted: false },
      { label: 'rsa-2048-e3', key: crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).privateKey, accepted: false },
      { label: 'ec-p521', key: crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey, accepted: false },
      { label: 'ec-secp256k1', key: crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey, accepted: false },
      { label: 'ed25519', key: crypto.generateKeyPairSync('ed25519').privateKey, accepted: false },
      { label: 'rsa-pss', key: crypto.generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey, accepted: false },
      { label: 'dsa', key: crypto.generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).privateKey, accepted: false },
    ],
  };
  return material;
}

const SIG_ALGS: Array<{ oid: string; hash: string | null; params: boolean }> = [
  { oid: '1.2.840.113549.1.1.11', hash: 'sha256', params: true }, // sha256WithRSA
  { oid: '1.2.840.113549.1.1.12', hash: 'sha384', params: true },
  { oid: '1.2.840.113549.1.1.13', hash: 'sha512', params: true },
  { oid: '1.2.840.113549.1.1.5', hash: 'sha1', params: true }, // sha1WithRSA: refused
  { oid: '1.2.840.113549.1.1.4', hash: 'md5', params: true }, // md5WithRSA: refused
  { oid: '1.2.840.113549.1.1.10', hash: 'sha256', params: true }, // RSASSA-PSS
  { oid: '1.2.840.10045.4.3.2', hash: 'sha256', params: false }, // ecdsa-with-SHA256
  { oid: '1.2.840.10045.4.3.3', hash: 'sha384', params: false },
  { oid: '1.2.840.10045.4.3.4', hash: 'sha512', params: false },
  { oid: '1.2.840.10045.4.1', hash: 'sha1', params: false }, // ecdsa-with-SHA1: refused
  { oid: '1.3.101.112', hash: null, params: false }, // Ed25519
  { oid: '2.16.840.1.101.3.4.3.2', hash: 'sha256', params: false }, // dsa-with-sha256
];

/** The algorithm a key would honestly sign with. */
function honestAlg(key: KeyObject): (typeof SIG_ALGS)[number] {
  const t = key.asymmetricKeyType;
  if (t === 'ed25519') return SIG_ALGS[10]!;
  if (t === 'dsa') return SIG_ALGS[11]!;
  if (t === 'ec') return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? SIG_ALGS[7]! : SIG_ALGS[6]!;
  return SIG_ALGS[0]!;
}

export interface CsrSpec {
  key: number;
  /** undefined: the key's own algorithm; else an index into SIG_ALGS (often a mismatch). */
  alg: number | undefined;
  cn: string | undefined;
  /** Identities the CSR asks for (the CA must ignore them). */
  sans: string[];
  der: Array<{ op: 'truncate' | 'flip' | 'insert' | 'length' | 'append' | 'wrap' | 'random'; at: number; bytes: Uint8Array }>;
  pem: 'plain' | 'label' | 'noEnd' | 'twice' | 'garbage' | 'crlf' | 'huge' | 'bare' | 'latin1' | 'empty' | 'spaces';
}

const FOREIGN_IDS = ['spiffe://cluster.local/ns/kube-system/sa/admin', 'spiffe://evil.example/ns/ns1/sa/sa1', 'spiffe://cluster.local/ns/istio-system/sa/istiod', 'https://example.com', 'spiffe://cluster.local/ns/ns1/sa/sa1/../../kube-system'];

export const csrSpec: fc.Arbitrary<CsrSpec> = fc.record({
  key: fc.nat(9),
  alg: fc.option(fc.nat(SIG_ALGS.length - 1), { nil: undefined, freq: 2 }),
  cn: fc.option(fc.oneof(fc.constantFrom('admin', 'spiffe://cluster.local/ns/kube-system/sa/admin', 'x'.repeat(65)), unicodeString), { nil: undefined }),
  sans: fc.array(fc.constantFrom(...FOREIGN_IDS), { maxLength: 2 }),
  der: fc.oneof(
    { arbitrary: fc.constant([] as CsrSpec['der']), weight: 3 },
    { arbitrary: fc.array(fc.record({ op: fc.constantFrom('truncate' as const, 'flip' as const, 'insert' as const, 'length' as const, 'append' as const, 'wrap' as const, 'random' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }), { minLength: 1, maxLength: 3 }), weight: 2 },
  ),
  pem: fc.oneof({ arbitrary: fc.constant('plain' as const), weight: 6 }, fc.constantFrom('label' as const, 'noEnd' as const, 'twice' as const, 'garbage' as const, 'crlf' as const, 'huge' as const, 'bare' as const, 'latin1' as const, 'empty' as const, 'spaces' as const)),
});

function buildCsrDer(key: KeyObject, alg: (typeof SIG_ALGS)[number], cn: string | undefined): Buffer {
  const spki = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  const name = encodeName(cn !== undefined ? [{ oid: Oid.commonName, value: cn }] : []);
  const info = encodeDer(Tag.Sequence, encodeDer(Tag.Integer, Buffer.from([0])), name, spki, Buffer.from([0xa0, 0]));
  let signature: Buffer;
  try {
    signature = crypto.sign(key.asymmetricKeyType === 'ed25519' ? null : (alg.hash ?? 'sha256'), info, key);
  } catch {
    signature = crypto.randomBytes(64); // the key cannot sign with that hash: a signature that cannot verify
  }
  const algId = encodeDer(Tag.Sequence, oidDer(alg.oid), ...(alg.params ? [encodeDer(Tag.Null, Buffer.alloc(0))] : []));
  return encodeDer(Tag.Sequence, info, algId, encodeDer(Tag.BitString, Buffer.from([0]), signature));
}

/** The CSR text a spec describes (deterministic apart from the signature's randomness). */
export function renderCsr(input: CsrSpec): string {
  // A UTF8String cannot hold a lone surrogate: such a subject cannot be encoded at all.
  const spec = { ...input, cn: input.cn?.toWellFormed() };
  const { key } = csrMaterial().keys[spec.key % csrMaterial().keys.length]!;
  let der: Buffer;
  if (spec.alg === undefined && (spec.sans.length > 0 || key.asymmetricKeyType !== 'dsa') && key.asymmetricKeyType !== 'rsa-pss') {
    try {
      der = pemBlocks(createCsr(key, { ...(spec.cn !== undefined ? { subject: [{ oid: Oid.commonName, value: spec.cn }] } : {}), uris: spec.sans }), ['CERTIFICATE REQUEST'])[0]!;
    } catch {
      der = buildCsrDer(key, honestAlg(key), spec.cn);
    }
  } else der = buildCsrDer(key, spec.alg === undefined ? honestAlg(key) : SIG_ALGS[spec.alg]!, spec.cn);
  for (const m of spec.der) {
    const at = der.length === 0 ? 0 : m.at % der.length;
    const b = Buffer.from(m.bytes);
    if (m.op === 'truncate') der = der.subarray(0, at);
    else if (m.op === 'flip') der = Buffer.from(der.map((x, i) => (i === at ? x ^ (b[0] || 1) : x)));
    else if (m.op === 'insert') der = Buffer.concat([der.subarray(0, at), b, der.subarray(at)]);
    else if (m.op === 'length') der = Buffer.concat([der.subarray(0, at), Buffer.from([0x80 | (b[0]! % 9)]), b.subarray(1), der.subarray(at + 1)]);
    else if (m.op === 'append') der = Buffer.concat([der, b]);
    else if (m.op === 'wrap') der = encodeDer(Tag.Sequence, der);
    else der = Buffer.from(crypto.createHash('sha512').update(b).digest()); // random bytes in valid armor
  }
  switch (spec.pem) {
    case 'plain':
      return toPem('CERTIFICATE REQUEST', der);
    case 'label':
      return toPem('CERTIFICATE', der);
    case 'noEnd':
      return toPem('CERTIFICATE REQUEST', der).replace(/-----END[^\n]*\n$/, '');
    case 'twice':
      return toPem('CERTIFICATE REQUEST', der) + toPem('NEW CERTIFICATE REQUEST', der);
    case 'garbage':
      return toPem('CERTIFICATE REQUEST', der).replace(/\n(.)/, '\n!@#$%^&*\u00e9$1');
    case 'crlf':
      return `junk before\r\n${toPem('CERTIFICATE REQUEST', der).replace(/\n/g, '\r\n')}junk after`;
    case 'huge':
      return toPem('CERTIFICATE REQUEST', Buffer.concat([der, Buffer.alloc(70 * 1024, 0x41)]));
    case 'bare':
      return der.toString('base64');
    case 'latin1':
      return der.toString('latin1');
    case 'empty':
      return '-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n';
    case 'spaces':
      return toPem('CERTIFICATE REQUEST', der).replace(/\n/g, '\n \t ');
  }
}

export const csrText: fc.Arbitrary<{ spec: CsrSpec; text: string }> = csrSpec.map((spec) => ({ spec, text: renderCsr(spec) }));

export const parseCsrProperty: FuzzProperty<{ spec: CsrSpec; text: string }> = {
  name: 'ca: parseCsr (mutated PEM/DER, wrong algorithms, huge)',
  arb: csrText,
  run({ spec, text }) {
    let parsed: ParsedCsr;
    try {
      parsed = parseCsr(text);
    } catch (err) {
      if (!(err instanceof CsrError)) violated(`parseCsr threw ${String(err)}, not a CsrError`);
      if (!(err as CsrError).reason) violated('CsrError without a reason');
      return 'refused';
    }
    const k = csrMaterial().keys[spec.key % csrMaterial().keys.length]!;
    if (!k.accepted) violated(`a ${k.label} CSR was accepted`);
    const spki = crypto.createPublicKey(k.key).export({ type: 'spki', format: 'der' });
    if (!parsed.spkiDer.equals(spki)) violated('an accepted CSR carries a key other than the one that signed it');
    return 'accepted';
  },
};

/** Callers: a proven identity (a token our JWKS signed), a token that must not authenticate, or no credential. */
export interface CaCall {
  csr: { spec: CsrSpec; text: string };
  caller: number;
  ttl: string;
  impersonate: string | undefined;
}

const CALLERS: Array<{ ns: string; sa: string; valid: boolean } | { token: 'garbage' | 'expired' | 'audience' | 'none' | 'huge' }> = [
  { ns: 'ns1', sa: 'sa1', valid: true },
  { ns: 'default', sa: 'default', valid: true },
  { ns: 'bookinfo', sa: 'reviews', valid: true },
  { token: 'garbage' },
  { token: 'expired' },
  { token: 'audience' },
  { token: 'none' },
  { token: 'huge' },
];

/** An honest CSR of an accepted key (asking for other identities, maybe): the CA must sign it, for the caller only. */
const honestCsr = fc.record({ key: fc.nat(2), cn: csrSpec.map((c) => c.cn), sans: csrSpec.map((c) => c.sans) }).map(({ key, cn, sans }) => {
  const spec: CsrSpec = { key, alg: undefined, cn, sans, der: [], pem: 'plain' };
  return { spec, text: renderCsr(spec) };
});

export const caCall: fc.Arbitrary<CaCall> = fc.record({
  csr: fc.oneof(csrText, honestCsr),
  caller: fc.oneof(fc.nat(2), fc.nat(CALLERS.length - 1)),
  ttl: fc.constantFrom('3600', '0', '-5', 'abc', '1e30', '99999999999999999999', '', '7776000', '7776001', '86400', 'NaN', '0x10'),
  impersonate: fc.option(fc.constantFrom('spiffe://cluster.local/ns/kube-system/sa/admin', '', 'x'), { nil: undefined, freq: 8 }),
});

const ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface CaHarness {
  service: CaService;
  tokens: string[];
  call(c: CaCall): Promise<{ err: grpc.ServiceError | null; res: IstioCertificateResponse | undefined }>;
}

/** A CA (EC key) behind CreateCertificate with a JWT authenticator, called as grpc-js calls the handler. */
export async function caHarness(): Promise<CaHarness> {
  const ca = new CertificateAuthority(CaKeyCertBundle.load(newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: 'ec' })));
  const pair = await jose.generateKeyPair('ES256', { extractable: true });
  const jwks = { keys: [{ ...(await jose.exportJWK(pair.publicKey)), kid: 'fuzz', alg: 'ES256' }] };
  const service = new CaService({ ca, authenticators: [new ClientCertAuthenticator(() => ca.bundle), new JwtAuthenticator({ issuer: ISSUER, jwks, trustDomain: 'cluster.local' })], log: silentLogger, allowPlaintext: true });
  const sign = (ns: string, sa: string, o: { aud?: string; exp?: string | number } = {}) =>
    new jose.SignJWT({ 'kubernetes.io': { namespace: ns, serviceaccount: { name: sa } } }).setProtectedHeader({ alg: 'ES256', kid: 'fuzz' }).setIssuer(ISSUER).setAudience(o.aud ?? 'istio-ca').setExpirationTime(o.exp ?? '2h').sign(pair.privateKey);
  const tokens: string[] = [];
  for (const c of CALLERS) {
    if ('ns' in c) tokens.push(await sign(c.ns, c.sa));
    else if (c.token === 'expired') tokens.push(await sign('ns1', 'sa1', { exp: Math.floor(Date.now() / 1000) - 3600 }));
    else if (c.token === 'audience') tokens.push(await sign('ns1', 'sa1', { aud: 'kube-apiserver' }));
    else if (c.token === 'huge') tokens.push('e'.repeat(20_000));
    else tokens.push(c.token === 'garbage' ? 'eyJhbGciOiJub25lIn0.e30.' : '');
  }
  const call = (c: CaCall) => {
    const metadata = new grpc.Metadata();
    const tok = tokens[c.caller]!;
    if (tok) metadata.set('authorization', `Bearer ${tok}`);
    const request: IstioCertificateRequest = { csr: c.csr.text, validity_duration: c.ttl, metadata: c.impersonate !== undefined ? { fields: { ImpersonatedIdentity: { stringValue: c.impersonate } } } : null };
    const fake = { request, metadata, getAuthContext: () => ({}), getPeer: () => 'ipv4:127.0.0.1:5000' };
    return new Promise<{ err: grpc.ServiceError | null; res: IstioCertificateResponse | undefined }>((resolve) => {
      (service.implementation.CreateCertificate as (c: unknown, cb: (e: grpc.ServiceError | null, r?: IstioCertificateResponse) => void) => void)(fake, (err, res) => resolve({ err, res }));
    });
  };
  return { service, tokens, call };
}

const CLIENT_CODES = new Set([grpc.status.UNAUTHENTICATED, grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED]);

export const CREATE_CERTIFICATE_PROPERTY = 'ca: CreateCertificate (mutated CSRs, callers, TTLs)';
export function createCertificateProperty(h: CaHarness): FuzzProperty<CaCall> {
  return {
    name: CREATE_CERTIFICATE_PROPERTY,
    arb: caCall,
    async: true,
    async run(c) {
      const { err, res } = await h.call(c);
      const who = CALLERS[c.caller]!;
      if (err) {
        if (!CLIENT_CODES.has(err.code)) violated(`CreateCertificate answered ${grpc.status[err.code]} "${err.details}" (an unexpected failure inside the CA)`);
        if ('ns' in who && !c.impersonate && err.code === grpc.status.UNAUTHENTICATED) violated('a valid caller was refused as unauthenticated');
        return 'refused';
      }
      if (!('ns' in who)) violated(`a certificate was issued to a caller with ${who.token} credentials`);
      if (c.impersonate) violated('a certificate was issued for an impersonation request');
      const chain = res?.cert_chain ?? [];
      if (chain.length < 2) violated(`a chain of ${chain.length} element(s)`);
      const leaf = new X509Certificate(chain[0]!);
      const id = `spiffe://cluster.local/ns/${(who as { ns: string }).ns}/sa/${(who as { sa: string }).sa}`;
      if (leaf.subjectAltName !== `URI:${id}`) violated(`issued for ${leaf.subjectAltName}, not the caller's ${id}`);
      if (leaf.subject && leaf.subject !== `CN=${id}`) violated(`issued with subject ${leaf.subject}`);
      const spki = crypto.createPublicKey(csrMaterial().keys[c.csr.spec.key % csrMaterial().keys.length]!.key).export({ type: 'spki', format: 'der' });
      if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)) violated('the certificate carries a key other than the CSR signer\'s');
      return 'accepted';
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Running a property in a test

/** fast-check's own report stringifies the counterexample recursively, which a 4,000-deep value overflows. */
function describeCase(v: unknown): string {
  try {
    return fc.stringify(v).slice(0, 4000);
  } catch {
    try {
      return `${(JSON.stringify(v) ?? String(v)).slice(0, 4000)} (JSON)`;
    } catch {
      return '<too deep to print; replay it with the seed and path>';
    }
  }
}

/**
 * Runs `runs` cases of `p` from the fixed seed and throws on the first failure, with the seed and path to replay it
 * (`fc.assert(..., { seed, path })`) and the case. Returns how many cases were refused and accepted.
 */
export async function assertProperty<T>(p: FuzzProperty<T>, runs: number, seed = FUZZ_SEED): Promise<Record<Outcome, number>> {
  const outcomes: Record<Outcome, number> = { refused: 0, accepted: 0 };
  const details = await fc.check(
    fc.asyncProperty(p.arb, async (input) => {
      outcomes[await runCase(p, input)]++;
    }),
    { seed, numRuns: runs, endOnFailure: true },
  );
  if (details.failed) {
    const err = details.errorInstance;
    throw new Error(
      `${p.name}: property failed after ${details.numRuns} case(s)\n{ seed: ${details.seed}, path: "${details.counterexamplePath ?? ''}" }\n` +
        `case: ${describeCase(details.counterexample?.[0])}\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
  }
  return outcomes;
}
