/**
 * The validating webhook as the API server calls it: a real HTTPS server (fastify, port 0) with a serving certificate
 * from mizzen's CA, AdmissionReview JSON POSTed to `/validate` over TLS with that CA trusted. Valid mesh config is
 * allowed, invalid config is denied with the lines `mizzen validate` prints for the same files, DELETE and non-Istio
 * kinds pass, hostile bodies get 400/413/415 and the server keeps serving; istiod's metrics are counted.
 */
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { setupCertificateAuthority } from '../../src/ca/init.ts';
import { FileCaStore } from '../../src/ca/root-store.ts';
import { validatePaths } from '../../src/cli/validate.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { resolveInjectorConfig } from '../../src/webhook/inject.ts';
import { startWebhookServer, type PemPair, type WebhookServer } from '../../src/webhook/server.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SEEDS = path.resolve(ROOT, '../shared/fixtures/seeds');
const seedFile = (prefix: string) => path.join(SEEDS, fs.readdirSync(SEEDS).find((f) => f.startsWith(prefix))!);

let tmp: string;
let roots: string;
let server: WebhookServer;
const registry = new Registry();

interface Reply {
  status: number;
  json: any;
}

function post(body: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let replied = false;
    const req = https.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: '/validate',
        method: 'POST',
        ca: roots,
        agent: false,
        servername: 'localhost',
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (res) => {
        replied = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString());
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', (err) => (replied ? undefined : reject(err)));
    req.end(body);
  });
}

const review = (object: any, request: Record<string, unknown> = {}) => {
  const [group, version] = String(object.apiVersion).split('/');
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '0b5e55ed-0000-4000-8000-000000000001',
      kind: { group, version, kind: object.kind },
      resource: { group, version, resource: `${String(object.kind).toLowerCase()}s` },
      namespace: object.metadata?.namespace ?? 'default',
      name: object.metadata?.name,
      operation: 'CREATE',
      object,
      ...request,
    },
  });
};

/** A counter's value, summed over the label sets that carry these labels. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  // Summed over every label set that matches the given labels.
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((n, v) => n + v.value, 0);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-validate-e2e-'));
  const ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(path.join(tmp, 'ca')), log: silentLogger, keyType: 'ec' });
  const issued = ca.issueServingCertificate({ dnsNames: ['localhost', 'istiod.istio-system.svc'], ttlSec: 3600 });
  roots = issued.roots;
  const serving: PemPair = { key: issued.key, cert: issued.certChain };
  server = await startWebhookServer({ host: '127.0.0.1', port: 0, tls: { getCertificate: () => serving }, registry, config: resolveInjectorConfig(), log: silentLogger, bodyLimitBytes: 256 * 1024 });
});

afterAll(async () => {
  await server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('POST /validate over HTTPS', () => {
  it('gives the same verdict and messages as `mizzen validate` for the Istio seeds', async () => {
    // Single-document seeds of the validated groups: the webhook sees each as the API server would send it.
    const files = fs.readdirSync(SEEDS).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(SEEDS, f));
    let checked = 0;
    let denied = 0;
    for (const file of files) {
      let obj: any;
      try {
        obj = parseYaml(fs.readFileSync(file, 'utf8'));
      } catch {
        continue; // multi-document or not YAML: not one object
      }
      if (!obj || typeof obj.apiVersion !== 'string' || !/^(networking|security|telemetry|extensions)\.istio\.io\//.test(obj.apiVersion)) continue;
      const report = await validatePaths([file]);
      const lines = report.lines.map((l) => l.replace(/^[^:]*\.ya?ml:\d+: /, ''));
      const r = await post(review(obj));
      expect(r.status, file).toBe(200);
      expect(r.json.response.uid).toBe('0b5e55ed-0000-4000-8000-000000000001');
      if (lines.length === 0) expect(r.json.response.allowed, `${file} is accepted by mizzen validate`).toBe(true);
      else {
        denied++;
        expect(r.json.response, file).toMatchObject({ allowed: false, status: { code: 400, message: lines.join('\n') } });
      }
      checked++;
    }
    expect(checked).toBeGreaterThan(5);
    expect(denied).toBeGreaterThan(0); // seed 011 at least
  });

  it('denies seed 011 naming the unknown field, and counts it', async () => {
    const obj = parseYaml(fs.readFileSync(seedFile('011-'), 'utf8'));
    const before = await metric('galley_validation_failed', { reason: 'invalid_resource', resource: 'telemetrys' });
    const r = await post(review(obj));
    expect(r.json.response.allowed).toBe(false);
    expect(r.json.response.status.message).toContain('spec.accessLogging[0].format: unknown field');
    expect(await metric('galley_validation_failed', { reason: 'invalid_resource', resource: 'telemetrys' })).toBe(before + 1);
  });

  it('allows valid config in every served version, DELETE, and non-Istio kinds', async () => {
    const passed = await metric('galley_validation_passed', { group: 'networking.istio.io' });
    for (const v of ['v1alpha3', 'v1beta1', 'v1']) {
      const obj = { apiVersion: `networking.istio.io/${v}`, kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'bookinfo' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] } };
      expect((await post(review(obj))).json.response, v).toEqual({ uid: '0b5e55ed-0000-4000-8000-000000000001', allowed: true });
      const bad = { ...obj, spec: { ...obj.spec, http: [{ route: [{ destination: { host: 'reviews' } }], timeout: '1 minute' }] } };
      expect((await post(review(bad))).json.response.status.message, v).toMatch(/spec\.http\[0\]\.timeout: invalid duration "1 minute"/);
    }
    expect(await metric('galley_validation_passed', { group: 'networking.istio.io' })).toBe(passed + 3);
    const del = await post(review({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' }, spec: { nope: 1 } }, { operation: 'DELETE' }));
    expect(del.json.response.allowed).toBe(true);
    const svc = await post(review({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: 'bad' } }));
    expect(svc.json.response.allowed).toBe(true);
  });

  it('answers hostile bodies with 400/413/415 and keeps serving', async () => {
    expect((await post('{"request": ')).status).toBe(400);
    expect((await post('[]')).status).toBe(400);
    expect((await post(JSON.stringify({ request: { operation: 'CREATE' } }))).status).toBe(400);
    expect((await post('{}', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post(JSON.stringify({ pad: 'x'.repeat(300 * 1024) }))).status).toBe(413);
    let deep = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000);
    deep = review({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'd' }, spec: { hosts: ['r'], x: 0 } }).replace('"x":0', `"x":${deep}`);
    const r = await post(deep);
    expect(r.status).toBe(200);
    expect(r.json.response.allowed).toBe(false);
    const ok = await post(review({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-all', namespace: 'default' }, spec: {} }));
    expect(ok.json.response.allowed).toBe(true);
    expect(await metric('galley_validation_http_error', { status: '400' })).toBeGreaterThanOrEqual(3);
  });
});
