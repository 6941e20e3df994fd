/**
 * The injection webhook as the API server calls it: a real HTTPS server (fastify, port 0) whose serving certificate
 * comes from mizzen's CA, real AdmissionReview JSON over TLS with that CA trusted, and the returned JSON patch applied
 * with the same library to check it yields the injected pod. Hostile bodies get 400/413/415 and the server keeps
 * serving. Then `mizzen kube-inject` as users run it, on a temporary multi-document YAML.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import { applyPatch, type Operation } from 'rfc6902';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { setupCertificateAuthority } from '../../src/ca/init.ts';
import { FileCaStore } from '../../src/ca/root-store.ts';
import type { CertificateAuthority } from '../../src/ca/sign.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { injectPod, resolveInjectorConfig, type Pod } from '../../src/webhook/inject.ts';
import { startWebhookServer, type PemPair, type WebhookServer } from '../../src/webhook/server.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SEEDS = path.resolve(ROOT, '../shared/fixtures/seeds');
const seedText = (prefix: string) => fs.readFileSync(path.join(SEEDS, fs.readdirSync(SEEDS).find((f) => f.startsWith(prefix))!), 'utf8');

let tmp: string;
let ca: CertificateAuthority;
let roots: string;
let serving: PemPair;
let server: WebhookServer;
const registry = new Registry();
const config = resolveInjectorConfig();

interface Reply {
  status: number;
  text: string;
  json: any;
  serial: string;
}

/** POST over TLS, trusting only mizzen's root; `servername` undefined sends no SNI. */
function post(body: string | Buffer, o: { headers?: Record<string, string>; path?: string; servername?: string | null; chunked?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let replied = false;
    const noSni = o.servername === null;
    const req = https.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: o.path ?? '/inject',
        method: 'POST',
        ca: roots,
        agent: false,
        ...(noSni ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity('localhost', cert) } : { servername: o.servername ?? 'localhost' }),
        headers: { 'content-type': 'application/json', ...(o.chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }), ...o.headers },
      },
      (res) => {
        replied = true;
        const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json, serial });
        });
      },
    );
    // The server may answer (413) and close before it has read a large body: that is the point, not an error.
    req.on('error', (err) => (replied ? undefined : reject(err)));
    if (o.chunked) {
      const step = 1024 * 1024;
      for (let i = 0; i < body.length; i += step) req.write(body.slice(i, i + step));
      req.end();
    } else req.end(body);
  });
}

const review = (object: unknown, request: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'c0ffee00-1111-2222-3333-444455556666',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'bookinfo',
      operation: 'CREATE',
      object,
      ...request,
    },
  });

/** Seed 028's pod template as the API server sends it: generated name, owner, defaulted fields, managedFields. */
function reviewsPod(): Pod {
  const deployment = parseYaml(seedText('028-')) as { spec: { template: { metadata: any; spec: Pod['spec'] } } };
  const t = deployment.spec.template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...t.metadata,
      generateName: 'reviews-7c8d9f7b9d-',
      namespace: 'bookinfo',
      labels: { ...t.metadata.labels, 'pod-template-hash': '7c8d9f7b9d' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-7c8d9f7b9d', uid: 'u1', controller: true, blockOwnerDeletion: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': {} } }],
    },
    spec: { ...t.spec, serviceAccountName: 'default', restartPolicy: 'Always', dnsPolicy: 'ClusterFirst' },
  };
}

const decodePatch = (r: Reply): Operation[] => JSON.parse(Buffer.from(r.json.response.patch, 'base64').toString());
const withoutManaged = (p: Pod) => {
  const c = structuredClone(p);
  delete c.metadata.managedFields;
  return c;
};
async function counter(name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values[0]?.value as number | undefined) ?? 0;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-webhook-'));
  ca = await setupCertificateAuthority({ trustDomain: 'cluster.local', store: new FileCaStore(path.join(tmp, 'ca')), log: silentLogger, keyType: 'ec' });
  const issued = ca.issueServingCertificate({ dnsNames: ['localhost', 'istiod.istio-system.svc'], ttlSec: 3600 });
  roots = issued.roots;
  serving = { key: issued.key, cert: issued.certChain };
  // As the composition root wires it: the serving certificate from mizzen's CA, read through a callback.
  server = await startWebhookServer({ host: '127.0.0.1', port: 0, tls: { getCertificate: () => serving }, registry, config, log: silentLogger, bodyLimitBytes: 1024 * 1024 });
});

afterAll(async () => {
  await server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('POST /inject over HTTPS', () => {
  it('answers the AdmissionReview with a JSON patch that turns the pod into the injected pod', async () => {
    const pod = reviewsPod();
    const r = await post(review(pod));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'c0ffee00-1111-2222-3333-444455556666', allowed: true, patchType: 'JSONPatch' } });
    const ops = decodePatch(r);
    expect(ops.some((op) => op.path.startsWith('/metadata/managedFields'))).toBe(false);
    const patched = structuredClone(pod);
    expect(applyPatch(patched, ops).every((e) => e === null)).toBe(true);
    const expected = injectPod({ pod, namespace: 'bookinfo', config });
    expect(expected.kind).toBe('injected');
    expect(withoutManaged(patched)).toEqual((expected as { pod: Pod }).pod);
    expect(patched.metadata.managedFields).toEqual(pod.metadata.managedFields);
    expect(patched.spec.containers.map((c) => c.name)).toEqual(['reviews', 'istio-proxy']);
    expect(patched.spec.initContainers!.map((c) => c.name)).toEqual(['istio-init']);
    // The annotation keys with '/' are escaped in the pointers (~1), and the patch applied cleanly.
    expect(patched.metadata.annotations!['sidecar.istio.io/status']).toContain('"revision":"default"');

    // Re-sent once injected (reinvocation): allowed with no patch.
    const again = await post(review(patched));
    expect(again.json.response).toEqual({ uid: 'c0ffee00-1111-2222-3333-444455556666', allowed: true });
  });

  it('skips with allowed and no patch: opted-out pods, other kinds, other operations, no object', async () => {
    const optOut = reviewsPod();
    optOut.metadata.labels!['sidecar.istio.io/inject'] = 'false';
    for (const body of [
      review(optOut),
      review(reviewsPod(), { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }),
      review(reviewsPod(), { operation: 'UPDATE' }),
      review(undefined),
      review({ ...reviewsPod(), spec: { ...reviewsPod().spec, hostNetwork: true } }),
    ]) {
      const r = await post(body);
      expect(r.status).toBe(200);
      expect(r.json.response).toEqual({ uid: 'c0ffee00-1111-2222-3333-444455556666', allowed: true });
    }
  });

  it('refuses the pod (allowed: false, status.message) when the template fails', async () => {
    const pod = reviewsPod();
    pod.metadata.annotations = { 'sidecar.istio.io/proxyMemory': 'a lot', 'inject.istio.io/templates': 'sidecar' };
    const r = await post(review(pod));
    expect(r.status).toBe(200);
    expect(r.json.response.allowed).toBe(false);
    expect(r.json.response.status.message).toMatch(/^Pod injection failed: annotation sidecar\.istio\.io\/proxyMemory="a lot"/);
    pod.metadata.annotations = { 'inject.istio.io/templates': 'nope' };
    const unknown = await post(review(pod));
    expect(unknown.json.response).toMatchObject({ allowed: false, status: { message: expect.stringContaining('requested template "nope" not found') } });
  });

  it('answers hostile bodies with 400/413/415 and keeps serving', async () => {
    const cases: Array<[string, Promise<Reply>, number]> = [
      ['not JSON', post('{"request": '), 400],
      ['empty', post(''), 400],
      ['JSON but no request', post('{}'), 400],
      ['no uid', post(JSON.stringify({ request: { object: reviewsPod() } })), 400],
      ['a JSON array', post('[1,2,3]'), 400],
      ['text/plain', post(review(reviewsPod()), { headers: { 'content-type': 'text/plain' } }), 415],
      ['oversized (content-length)', post(Buffer.alloc(2 * 1024 * 1024, 0x20)), 413],
      ['oversized (chunked)', post(Buffer.alloc(3 * 1024 * 1024, 0x20), { chunked: true }), 413],
      ['prototype poisoning', post('{"__proto__": {"polluted": true}, "request": {"uid": "x"}}'), 400],
    ];
    for (const [name, pending, status] of cases) {
      const r = await pending;
      expect({ name, status: r.status }).toEqual({ name, status });
      expect(typeof r.json?.error).toBe('string');
    }
    // Deeply nested JSON: refused or answered, never a crash.
    const deep = await post(`{"request":{"uid":"u","object":{"spec":{"containers":[]},"x":${'['.repeat(50_000)}${']'.repeat(50_000)}}}}`);
    expect([200, 400]).toContain(deep.status);
    if (deep.status === 200) expect(deep.json.response).toMatchObject({ uid: 'u', allowed: false, status: { message: expect.stringMatching(/^Pod injection failed/) } });
    expect(({}) as Record<string, unknown>).not.toHaveProperty('polluted');
    const alive = await post(review(reviewsPod()));
    expect(alive.json.response.allowed).toBe(true);
  });

  it('counts requests, successes, skips and failures under Istio metric names', async () => {
    expect(await counter('sidecar_injection_requests_total')).toBeGreaterThanOrEqual(15);
    expect(await counter('sidecar_injection_success_total')).toBeGreaterThanOrEqual(2);
    expect(await counter('sidecar_injection_skip_total')).toBeGreaterThanOrEqual(5);
    expect(await counter('sidecar_injection_failure_total')).toBeGreaterThanOrEqual(10);
  });

  it('serves a renewed certificate from the callback, with and without SNI', async () => {
    const before = await post(review(reviewsPod()));
    const renewed = ca.issueServingCertificate({ dnsNames: ['localhost'], ttlSec: 3600 });
    serving = { key: renewed.key, cert: renewed.certChain };
    const sni = await post(review(reviewsPod()));
    expect(sni.serial).not.toBe(before.serial);
    server.refreshCertificate();
    const noSni = await post(review(reviewsPod()), { servername: null });
    expect(noSni.status).toBe(200);
    expect(noSni.serial).toBe(sni.serial);
  });
});

describe('mizzen kube-inject', () => {
  const NODE = process.execPath;
  const CLI = path.join(ROOT, 'src/cli/main.ts');
  const input = [
    '# a Service: not a workload, written back unchanged\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  ports: [{port: 9080, name: http}]\n',
    seedText('027-'),
    seedText('028-'),
    // Seed 000's opt-out annotation on a Pod: left as it is.
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: tool\n${seedText('000-').split('\n').filter((l) => !l.startsWith('#') && !l.startsWith('metadata:')).join('\n')}\nspec:\n  containers: [{name: tool, image: busybox}]\n`,
    'apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup, namespace: ops}\nspec:\n  schedule: "@daily"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{name: backup, image: backup:1}]\n',
  ].join('---\n');

  it('injects the workloads of a multi-document file and leaves the rest byte for byte', () => {
    const file = path.join(tmp, 'in.yaml');
    fs.writeFileSync(file, input);
    const out = execFileSync(NODE, [CLI, 'kube-inject', '-f', file], { cwd: ROOT, encoding: 'utf8' });
    const docs = parseAllDocuments(out).map((d) => d.toJS());
    expect(docs.map((d) => d.kind)).toEqual(['Service', 'Namespace', 'Deployment', 'Pod', 'CronJob']);
    // Unchanged documents keep their exact text (comments and flow style included).
    const pieces = input.split('---\n');
    expect(out.startsWith(pieces[0]!)).toBe(true);
    expect(out).toContain(pieces[1]!);
    expect(out).toContain(pieces[3]!);
    const deployment = docs[2].spec.template;
    expect(deployment.spec.containers.map((c: { name: string }) => c.name)).toEqual(['reviews', 'istio-proxy']);
    expect(deployment.spec.initContainers.map((c: { name: string }) => c.name)).toEqual(['istio-init']);
    const env = Object.fromEntries(deployment.spec.containers[1].env.map((e: { name: string; value?: string }) => [e.name, e.value]));
    expect(env.ISTIO_META_OWNER).toBe('kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews');
    expect(deployment.spec.containers[1].image).toMatch(/^mizzen\/proxy:/);
    expect(deployment.metadata.labels['service.istio.io/canonical-name']).toBe('reviews');
    expect(docs[2].spec.replicas).toBe(3);
    const cron = docs[4].spec.jobTemplate.spec.template;
    expect(cron.spec.containers.map((c: { name: string }) => c.name)).toEqual(['backup', 'istio-proxy']);
    expect(Object.fromEntries(cron.spec.containers[1].env.map((e: { name: string; value?: string }) => [e.name, e.value])).ISTIO_META_OWNER).toBe(
      'kubernetes://apis/batch/v1/namespaces/ops/cronjobs/backup',
    );

    // -o, and injecting the output again changes nothing.
    const outFile = path.join(tmp, 'out.yaml');
    const again = spawnSync(NODE, [CLI, 'kube-inject', '-f', '-', '-o', outFile, '--native-sidecars'], { cwd: ROOT, input: out, encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stderr).toContain('not injected: Pod/tool: annotation sidecar.istio.io/inject=false');
    const reinjected = parseAllDocuments(fs.readFileSync(outFile, 'utf8')).map((d) => d.toJS());
    // --native-sidecars on an already injected file re-renders the proxy as a native sidecar, once.
    expect(reinjected[2].spec.template.spec.initContainers.map((c: { name: string }) => c.name)).toEqual(['istio-init', 'istio-proxy']);
    expect(reinjected[2].spec.template.spec.containers.map((c: { name: string }) => c.name)).toEqual(['reviews']);
    const same = execFileSync(NODE, [CLI, 'kube-inject', '-f', '-'], { cwd: ROOT, input: out, encoding: 'utf8' });
    expect(same).toBe(out);
  });

  it('exits 1 with the reason when a template fails', () => {
    const file = path.join(tmp, 'bad.yaml');
    fs.writeFileSync(file, 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {inject.istio.io/templates: nope}\nspec:\n  containers: [{name: a, image: a}]\n');
    const r = spawnSync(NODE, [CLI, 'kube-inject', '-f', file], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('Pod/p: Pod injection failed: requested template "nope" not found');
  });
});
