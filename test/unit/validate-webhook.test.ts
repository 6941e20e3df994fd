/**
 * The validating webhook (src/webhook/validate.ts, `/validate` in server.ts): an AdmissionReview for a mesh CRD is
 * allowed or denied with exactly the lines `mizzen validate` prints for the same object as YAML (minus `file:line: `),
 * for every served API version; DELETE and non-Istio kinds pass; istiod's metrics; a malformed review is HTTP 400.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { setupCertificateAuthority } from '../../src/ca/init.ts';
import { FileCaStore } from '../../src/ca/root-store.ts';
import { validatePaths } from '../../src/cli/validate.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { resolveInjectorConfig } from '../../src/webhook/inject.ts';
import { startWebhookServer, type WebhookServer } from '../../src/webhook/server.ts';
import { recordValidation, reviewValidation, validationMetrics, type ValidationOutcome } from '../../src/webhook/validate.ts';

const SEEDS = path.resolve(import.meta.dirname, '../../../shared/fixtures/seeds');
const seed = (prefix: string): Record<string, any> => parseYaml(fs.readFileSync(path.join(SEEDS, fs.readdirSync(SEEDS).find((f) => f.startsWith(prefix))!), 'utf8'));

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-validate-webhook-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** What `mizzen validate` prints for this object written as YAML, without the `file:line: ` prefixes. */
async function cliLines(obj: unknown): Promise<string[]> {
  const file = path.join(tmp, `o-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, stringify(obj));
  const report = await validatePaths([file]);
  return report.lines.map((l) => l.replace(/^[^:]*\.yaml:\d+: /, ''));
}

const review = (object: any, request: Record<string, unknown> = {}) => {
  const [group, version] = String(object?.apiVersion ?? 'networking.istio.io/v1').split('/');
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-1',
      kind: { group, version, kind: object?.kind ?? 'VirtualService' },
      resource: { group, version, resource: `${String(object?.kind ?? 'VirtualService').toLowerCase()}s` },
      namespace: object?.metadata?.namespace ?? 'bookinfo',
      name: object?.metadata?.name,
      operation: 'CREATE',
      object,
      ...request,
    },
  };
};
const response = (o: ValidationOutcome) => {
  if (!o.ok) throw new Error(o.error);
  return o.review.response;
};

const vs = (spec: Record<string, unknown>, apiVersion = 'networking.istio.io/v1') => ({
  apiVersion,
  kind: 'VirtualService',
  metadata: { name: 'reviews', namespace: 'bookinfo' },
  spec,
});
const goodSpec = { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }], timeout: '10s' }] };

describe('reviewValidation', () => {
  it('allows a valid VirtualService (and file mode accepts it too)', async () => {
    const obj = vs(goodSpec);
    const out = reviewValidation(review(obj));
    expect(out).toMatchObject({ ok: true, result: 'passed' });
    expect(response(out)).toEqual({ uid: 'u-1', allowed: true });
    expect(await cliLines(obj)).toEqual([]);
  });

  it('accepts every API version users write, and reports the same errors in each', async () => {
    const bad = { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }], timeout: 'soon' }] };
    for (const v of ['v1alpha3', 'v1beta1', 'v1']) {
      const ok = vs(goodSpec, `networking.istio.io/${v}`);
      expect(response(reviewValidation(review(ok))).allowed, v).toBe(true);
      const obj = vs(bad, `networking.istio.io/${v}`);
      expect(response(reviewValidation(review(obj))).status?.message, v).toBe((await cliLines(obj)).join('\n'));
    }
    for (const [apiVersion, kind, spec] of [
      ['security.istio.io/v1beta1', 'AuthorizationPolicy', {}],
      ['security.istio.io/v1', 'PeerAuthentication', { mtls: { mode: 'STRICT' } }],
      ['telemetry.istio.io/v1alpha1', 'Telemetry', { tracing: [{ randomSamplingPercentage: 10 }] }],
      ['telemetry.istio.io/v1', 'Telemetry', {}],
      ['networking.istio.io/v1alpha3', 'DestinationRule', { host: 'reviews' }],
      ['networking.istio.io/v1beta1', 'Gateway', { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] }],
    ] as const) {
      const obj = { apiVersion, kind, metadata: { name: 'x', namespace: 'bookinfo' }, spec };
      expect(await cliLines(obj), `${apiVersion} ${kind}`).toEqual([]);
      expect(response(reviewValidation(review(obj))), `${apiVersion} ${kind}`).toEqual({ uid: 'u-1', allowed: true });
    }
  });

  it('denies an invalid VirtualService with exactly the lines `mizzen validate` prints', async () => {
    const cases = [
      vs({ hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }], timeout: '10 seconds' }] }),
      vs({ hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }], retries: { attempts: 3, perTryTimout: '2s' } }] }),
      vs({ hosts: ['reviews'], htp: [] }),
      vs({ hosts: ['reviews'], http: [{ match: [{ uri: { regex: '(' } }], route: [{ destination: { host: 'reviews' }, weight: -1 }] }] }),
    ];
    for (const obj of cases) {
      const lines = await cliLines(obj);
      expect(lines.length).toBeGreaterThan(0);
      const out = reviewValidation(review(obj));
      expect(out).toMatchObject({ ok: true, result: 'failed', reason: 'invalid_resource' });
      expect(response(out)).toEqual({ uid: 'u-1', allowed: false, status: { code: 400, message: lines.join('\n') } });
    }
    const timeout = response(reviewValidation(review(cases[0])));
    expect(timeout.status!.message).toMatch(/^VirtualService bookinfo\/reviews: spec\.http\[0\]\.timeout: invalid duration "10 seconds"/);
    expect(response(reviewValidation(review(cases[2]))).status!.message).toBe('VirtualService bookinfo/reviews: spec.htp: unknown field');
  });

  it('denies seed 011 (Telemetry with a field the API does not have) naming the field path', async () => {
    const obj = seed('011-');
    const out = response(reviewValidation(review(obj)));
    expect(out.allowed).toBe(false);
    expect(out.status!.message).toContain('Telemetry production/custom-access-log: spec.accessLogging[0].format: unknown field');
    expect(out.status!.message).toBe((await cliLines(obj)).join('\n'));
  });

  it('fills the namespace from the request and reports metadata errors as file mode does', async () => {
    const noNs = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'Bad_Name' }, spec: { host: 'r' } };
    const out = response(reviewValidation(review(noNs, { namespace: 'shop' })));
    expect(out.status!.message).toMatch(/^DestinationRule shop\/Bad_Name: metadata\.name: invalid name/);
  });

  it('allows DELETE (counted as unsupported_operation, as istiod does) and other operations', () => {
    for (const operation of ['DELETE', 'CONNECT']) {
      const out = reviewValidation(review(null, { operation, kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }, oldObject: vs({ htp: 1 }) }));
      expect(out).toMatchObject({ ok: true, result: 'failed', reason: 'unsupported_operation' });
      expect(response(out)).toEqual({ uid: 'u-1', allowed: true });
    }
  });

  it('allows kinds outside the Istio groups untouched, including kinds file mode also reads', () => {
    const objects = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'Not Valid' }, spec: { ports: 'nope' } },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: {} },
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'x' }, spec: { bogus: true } },
      { apiVersion: 'install.istio.io/v1alpha1', kind: 'IstioOperator', metadata: { name: 'x' }, spec: { whatever: 1 } },
    ];
    for (const obj of objects) {
      const out = reviewValidation(review(obj));
      expect(out, obj.kind).toMatchObject({ ok: true, result: 'skipped' });
      expect(response(out)).toEqual({ uid: 'u-1', allowed: true });
    }
  });

  it('denies unknown kinds in Istio groups, the always-reject annotation, unknown top-level keys and a missing object', () => {
    const unknown = reviewValidation(review({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualRoute', metadata: { name: 'x' }, spec: {} }));
    expect(unknown).toMatchObject({ ok: true, result: 'failed', reason: 'unknown_type' });
    expect(response(unknown).status!.message).toMatch(/^VirtualRoute bookinfo\/x: apiVersion: unknown kind "VirtualRoute" in networking.istio.io; known kinds: /);

    const gw = { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'probe', namespace: 'istio-system', annotations: { 'istio.io/alwaysReject': 'true' } }, spec: { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] } };
    expect(response(reviewValidation(review(gw))).status!.message).toBe('Gateway istio-system/probe: metadata.annotations: "istio.io/alwaysReject" annotation found, rejecting');

    const extra = reviewValidation(review({ ...vs(goodSpec), status: {}, spek: {} }));
    expect(response(extra).status!.message).toBe('VirtualService bookinfo/reviews: spek: unknown field');

    const missing = reviewValidation(review(undefined, { kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' } }));
    expect(missing).toMatchObject({ ok: true, result: 'failed', reason: 'yaml_decode_error' });
    expect(response(missing).allowed).toBe(false);
  });

  it('validates a version this build does not list as the kind, with a warning; returns Istio-only warnings', () => {
    const future = response(reviewValidation(review(vs(goodSpec, 'networking.istio.io/v2'))));
    expect(future.allowed).toBe(true);
    expect(future.warnings).toEqual(['VirtualService networking.istio.io/v2 is not known to this control plane; validated as networking.istio.io/v1']);
    const noType = vs({ hosts: ['r'], http: [{ fault: { abort: { percentage: { value: 10 } } }, route: [{ destination: { host: 'r' } }] }] });
    const warned = response(reviewValidation(review(noType)));
    expect(warned.allowed).toBe(true);
    expect(warned.warnings).toEqual([expect.stringMatching(/^VirtualService bookinfo\/reviews: spec\.http\[0\]\.fault\.abort: no error type/)]);
  });

  it('never throws: hostile shapes are denied or refused as not an AdmissionReview', () => {
    for (const body of [null, 1, 'x', [], {}, { request: null }, { request: { uid: '' } }, { request: { uid: 5 } }]) {
      expect(reviewValidation(body)).toMatchObject({ ok: false });
    }
    let deep: any = {};
    const root = deep;
    for (let i = 0; i < 100_000; i++) deep = deep.a = {};
    const out = reviewValidation(review(vs({ hosts: ['r'], http: [{ headers: root }] })));
    expect(out.ok).toBe(true);
    expect(response(out).allowed).toBe(false);
    for (const object of [[], 'str', { apiVersion: 7, kind: {} }, { ...vs(goodSpec), metadata: 'm' }]) {
      expect(() => reviewValidation(review(object, { kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' } }))).not.toThrow();
    }
  });

  it('counts galley_validation_passed and galley_validation_failed{reason} with the request resource', async () => {
    const registry = new Registry();
    const m = validationMetrics(registry);
    expect(validationMetrics(registry).passed).toBe(m.passed);
    recordValidation(m, reviewValidation(review(vs(goodSpec))));
    recordValidation(m, reviewValidation(review(vs({ htp: 1 }))));
    recordValidation(m, reviewValidation(review(null, { operation: 'DELETE', kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' } })));
    recordValidation(m, reviewValidation({}));
    const json = await registry.getMetricsAsJSON();
    const values = (name: string) => json.find((x) => x.name === name)!.values;
    expect(values('galley_validation_passed')).toEqual([{ value: 1, labels: { group: 'networking.istio.io', version: 'v1', resource: 'virtualservices' } }]);
    expect(values('galley_validation_failed')).toEqual(
      expect.arrayContaining([
        { value: 1, labels: { group: 'networking.istio.io', version: 'v1', resource: 'virtualservices', reason: 'invalid_resource' } },
        { value: 1, labels: expect.objectContaining({ reason: 'unsupported_operation' }) },
      ]),
    );
    expect(values('galley_validation_http_error')).toEqual([{ value: 1, labels: { status: '400' } }]);
  });
});

describe('POST /validate through the server', () => {
  let server: WebhookServer;
  const registry = new Registry();
  beforeAll(async () => {
    const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(path.join(tmp, 'ca')), log: silentLogger, keyType: 'ec' });
    const issued = ca.issueServingCertificate({ dnsNames: ['localhost'], ttlSec: 3600 });
    server = await startWebhookServer({ host: '127.0.0.1', port: 0, tls: { key: issued.key, cert: issued.certChain }, registry, config: resolveInjectorConfig(), log: silentLogger, bodyLimitBytes: 64 * 1024 });
  });
  afterAll(async () => server?.close());

  const post = (payload: string, headers: Record<string, string> = { 'content-type': 'application/json' }) => server.app.inject({ method: 'POST', url: '/validate', payload, headers });

  it('answers reviews, and 400/413/415 for malformed ones', async () => {
    const ok = await post(JSON.stringify(review(vs(goodSpec))));
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true } });
    const denied = await post(JSON.stringify(review(seed('011-'))));
    expect(denied.json().response).toMatchObject({ allowed: false, status: { code: 400 } });

    expect((await post('{"request": ')).statusCode).toBe(400);
    expect((await post('{}')).statusCode).toBe(400);
    expect((await post(JSON.stringify({ request: { object: {} } }))).statusCode).toBe(400);
    expect((await post('')).statusCode).toBe(400);
    expect((await post('{}', { 'content-type': 'text/plain' })).statusCode).toBe(415);
    expect((await post(JSON.stringify({ pad: 'x'.repeat(70 * 1024) }))).statusCode).toBe(413);
    const errors = (await registry.getMetricsAsJSON()).find((x) => x.name === 'galley_validation_http_error')!.values;
    expect(errors).toEqual(expect.arrayContaining([{ value: 4, labels: { status: '400' } }, { value: 1, labels: { status: '415' } }, { value: 1, labels: { status: '413' } }]));
    // /inject's counters are not touched by /validate.
    expect((await registry.getMetricsAsJSON()).find((x) => x.name === 'sidecar_injection_failure_total')!.values[0]?.value ?? 0).toBe(0);
  });
});
