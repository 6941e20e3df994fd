/**
 * `mizzen proxy-config`: istioctl's tables for one proxy, offline from a config folder (bookinfo; a Kubernetes
 * Service + Pod folder; a gateway with a TLS credential) and online from a running server with a real ADS client.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { describeRouteDomains, secretsTable } from '../../src/cli/proxy-config-tables.ts';
import { loadConfig, redactSecrets, resolveNode, runProxyConfig, type ProxyConfigOptions } from '../../src/cli/proxy-config.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import { AdsClient } from '../support/ads-client.ts';
import { startMesh, type TestMesh } from '../support/mesh.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BOOKINFO = path.join(ROOT, 'examples/bookinfo');
const REVIEWS = { config: BOOKINFO, labels: 'app=reviews,version=v1' };

/** A self-signed P-256 test certificate (openssl req -x509 -newkey ec … -days 3650 -subj /CN=test); its key was discarded. */
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBczCCARmgAwIBAgIUIqS6Xt+Ks9AxXt8bZB3scuqiGoswCgYIKoZIzj0EAwIw
DzENMAsGA1UEAwwEdGVzdDAeFw0yNjExMjIwMzM0NTVaFw0zNjExMTkwMzM0NTVa
MA8xDTALBgNVBAMMBHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT4nSAa
K5zgwZaS/1In3fO91wwX8QmQurevwybbMxE6ZV9CNZlxqv1jdpNnvPTY/5CTkPsY
cV/us1UWUUFozC83o1MwUTAdBgNVHQ4EFgQUCN0ACYtbsu42UiiiRAt3TRhfn28w
HwYDVR0jBBgwFoAUCN0ACYtbsu42UiiiRAt3TRhfn28wDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNIADBFAiBI3bKnLHPXJIOUR4uMxIvb6/wBBjAyXz0RkHmb
WkFtvwIhAKF60KhMXWzlkLTbv4o/HXXQoO8vh7ykYg33pewVWICG
-----END CERTIFICATE-----
`;
const TEST_SERIAL = '22a4ba5edf8ab3d0315edf1b641dec72eaa21a8b';
/** Not a key: the secrets table reads only certificates, and this must never be printed. */
const FAKE_KEY_B64 = Buffer.from('fake-private-key-for-tests-only').toString('base64');

async function pc(kind: string, proxy: string, opts: ProxyConfigOptions): Promise<string> {
  const r = await runProxyConfig(kind, proxy, opts);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A table line whose cells are exactly these, in order, separated by column padding (an empty cell = nothing). */
function row(...cells: string[]): RegExp {
  return new RegExp(`^${cells.filter((c) => c !== '').map(esc).join('\\s+')}$`, 'm');
}
const lines = (text: string) => text.trimEnd().split('\n');

function tempDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-pc-'));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

describe('proxy-config offline: bookinfo sidecar (--labels, no Pod object)', () => {
  it('listeners: one row per filter chain, virtualOutbound and virtualInbound included, aligned like tabwriter', async () => {
    const out = await pc('listeners', 'reviews-v1-0.bookinfo', REVIEWS);
    const [header, ...rest] = lines(out);
    expect(header).toMatch(/^ADDRESSES PORT\s+MATCH\s+DESTINATION$/);
    expect(out).toMatch(row('0.0.0.0', '9080', 'App: http/1.1,h2c', 'Route: 9080'));
    expect(out).toMatch(row('0.0.0.0', '9080', 'ALL', 'PassthroughCluster'));
    expect(out).toMatch(row('0.0.0.0', '15001', 'ALL', 'PassthroughCluster'));
    expect(out).toMatch(row('0.0.0.0', '15001', 'Addr: *:15001', 'Non-HTTP/Non-TCP'));
    expect(out).toMatch(row('0.0.0.0', '15006', 'Trans: tls; App: TCP TLS', 'InboundPassthroughCluster'));
    expect(out).toMatch(row('0.0.0.0', '15006', 'Trans: raw_buffer; App: http/1.1,h2c', 'InboundPassthroughCluster'));
    // Sorted by port; every DESTINATION starts in the header's column.
    const ports = rest.map((l) => Number(l.split(/\s+/)[1]));
    expect(ports).toEqual([...ports].sort((a, b) => a - b));
    const col = header!.indexOf('DESTINATION');
    for (const l of rest) expect(l[col - 1]).toBe(' ');
    expect(rest.find((l) => l.includes('Route: 9080'))!.indexOf('Route: 9080')).toBe(col);
  });

  it('listeners --port filters by listener port', async () => {
    const out = await pc('listeners', 'reviews-v1-0.bookinfo', { ...REVIEWS, port: 15001 });
    expect(lines(out).slice(1).every((l) => /^0\.0\.0\.0\s+15001\s/.test(l))).toBe(true);
    expect(lines(out)).toHaveLength(3);
  });

  it('routes: VIRTUAL SERVICE names the VirtualService (name.namespace); --name filters', async () => {
    const out = await pc('routes', 'reviews-v1-0.bookinfo', REVIEWS);
    expect(lines(out)[0]).toMatch(/^NAME\s+VHOST NAME\s+DOMAINS\s+MATCH\s+VIRTUAL SERVICE$/);
    // Domains abbreviated as istioctl does: the short names a same-namespace client uses.
    expect(out).toMatch(row('9080', 'reviews.bookinfo.svc.cluster.local:9080', 'reviews, reviews.bookinfo', '/*', 'reviews.bookinfo'));
    expect(out).toMatch(row('9080', 'ratings.bookinfo.svc.cluster.local:9080', 'ratings, ratings.bookinfo', '/*', 'ratings.bookinfo'));
    // details has no VirtualService: its default route has no config metadata.
    expect(out).toMatch(row('9080', 'details.bookinfo.svc.cluster.local:9080', 'details, details.bookinfo', '/*'));
    expect(lines(await pc('routes', 'reviews-v1-0.bookinfo', { ...REVIEWS, name: 'nope' }))).toHaveLength(1);
  });

  it('clusters: subsets, directions and the DESTINATION RULE column; --fqdn/--subset/--direction/--port filter', async () => {
    const out = await pc('clusters', 'reviews-v1-0.bookinfo', REVIEWS);
    expect(lines(out)[0]).toMatch(/^SERVICE FQDN\s+PORT\s+SUBSET\s+DIRECTION\s+TYPE\s+DESTINATION RULE$/);
    expect(out).toMatch(row('BlackHoleCluster', '-', '-', '-', 'STATIC'));
    expect(out).toMatch(row('PassthroughCluster', '-', '-', '-', 'ORIGINAL_DST'));
    expect(out).toMatch(row('details.bookinfo.svc.cluster.local', '9080', '-', 'outbound', 'EDS'));
    expect(out).toMatch(row('ratings.bookinfo.svc.cluster.local', '9080', '-', 'outbound', 'EDS', 'ratings.bookinfo'));
    for (const s of ['v1', 'v2', 'v3']) expect(out).toMatch(row('reviews.bookinfo.svc.cluster.local', '9080', s, 'outbound', 'EDS', 'reviews.bookinfo'));
    const v2 = lines(await pc('clusters', 'reviews-v1-0.bookinfo', { ...REVIEWS, subset: 'v2' }));
    expect(v2).toHaveLength(2);
    expect(v2[1]).toMatch(row('reviews.bookinfo.svc.cluster.local', '9080', 'v2', 'outbound', 'EDS', 'reviews.bookinfo'));
    expect(lines(await pc('clusters', 'reviews-v1-0.bookinfo', { ...REVIEWS, fqdn: 'ratings' }))).toHaveLength(2);
    expect(lines(await pc('clusters', 'reviews-v1-0.bookinfo', { ...REVIEWS, direction: 'inbound' }))).toHaveLength(1);
    expect(lines(await pc('clusters', 'reviews-v1-0.bookinfo', { ...REVIEWS, port: 9080 }))).toHaveLength(7);
  });

  it('endpoints: address:port, status, outlier check and cluster, sorted by address; --cluster/--port filter', async () => {
    const out = await pc('endpoints', 'reviews-v1-0.bookinfo', REVIEWS);
    expect(lines(out)[0]).toMatch(/^ENDPOINT\s+STATUS\s+OUTLIER CHECK\s+CLUSTER$/);
    expect(out).toMatch(row('127.0.0.1:19081', 'HEALTHY', 'OK', 'outbound|9080|v1|reviews.bookinfo.svc.cluster.local'));
    expect(out).toMatch(row('127.0.0.1:19091', 'HEALTHY', 'OK', 'outbound|9080||ratings.bookinfo.svc.cluster.local'));
    expect(lines(out)).toHaveLength(9);
    const one = lines(await pc('endpoints', 'reviews-v1-0.bookinfo', { ...REVIEWS, cluster: 'outbound|9080||ratings.bookinfo.svc.cluster.local' }));
    expect(one.slice(1)).toEqual([expect.stringMatching(row('127.0.0.1:19091', 'HEALTHY', 'OK', 'outbound|9080||ratings.bookinfo.svc.cluster.local'))]);
    expect(lines(await pc('endpoints', 'reviews-v1-0.bookinfo', { ...REVIEWS, port: 19082 }))).toHaveLength(3);
  });

  it('-o json and -o yaml print the (filtered) resources; all -o json has every section', async () => {
    const clusters = JSON.parse(await pc('clusters', 'reviews-v1-0.bookinfo', { ...REVIEWS, output: 'json', subset: 'v1' }));
    expect(clusters.map((c: { name: string }) => c.name)).toEqual(['outbound|9080|v1|reviews.bookinfo.svc.cluster.local']);
    expect(clusters[0].type).toBe('EDS');
    const listeners = parseYaml(await pc('listeners', 'reviews-v1-0.bookinfo', { ...REVIEWS, output: 'yaml' }));
    expect(listeners.map((l: { name: string }) => l.name).sort()).toEqual(['0.0.0.0_9080', 'virtualInbound', 'virtualOutbound']);
    const all = JSON.parse(await pc('all', 'reviews-v1-0.bookinfo', { ...REVIEWS, output: 'json' }));
    expect(Object.keys(all).sort()).toEqual(['clusters', 'endpoints', 'listeners', 'routes', 'secrets']);
    expect(all.routes.map((r: { name: string }) => r.name)).toEqual(['9080']);
    expect(all.endpoints.length).toBeGreaterThan(0);
  });

  it('all prints every table; bad arguments are refused with exit 1', async () => {
    const all = await pc('all', 'reviews-v1-0.bookinfo', REVIEWS);
    for (const h of ['SERVICE FQDN', 'ADDRESSES', 'VHOST NAME', 'OUTLIER CHECK', 'RESOURCE NAME']) expect(all).toContain(h);
    for (const [kind, opts, msg] of [
      ['bogus', REVIEWS, 'unknown config type'],
      ['clusters', { labels: 'app=x' }, 'exactly one of --config'],
      ['clusters', { ...REVIEWS, output: 'xml' }, '-o must be'],
      ['clusters', { ...REVIEWS, labels: 'novalue' }, '--labels'],
      ['clusters', { ...REVIEWS, type: 'waypoint' }, '--type must be'],
    ] as const) {
      const r = await runProxyConfig(kind, 'reviews-v1-0.bookinfo', opts);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(msg);
    }
  });

  it('runs as a real process (execFileSync), and exits 1 for a pod that is not in the folder', () => {
    const out = execFileSync(process.execPath, ['src/cli/main.ts', 'proxy-config', 'clusters', 'reviews-v1-0.bookinfo', '--config', 'examples/bookinfo', '--labels', 'app=reviews,version=v1'], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toMatch(row('reviews.bookinfo.svc.cluster.local', '9080', 'v3', 'outbound', 'EDS', 'reviews.bookinfo'));
    let failure: { status: number; stderr: string } | undefined;
    try {
      execFileSync(process.execPath, ['src/cli/main.ts', 'pc', 'listeners', 'reviews-v1-0', '-n', 'bookinfo', '--config', 'examples/bookinfo'], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      failure = e as { status: number; stderr: string };
    }
    expect(failure?.status).toBe(1);
    expect(failure?.stderr).toContain('pod reviews-v1-0.bookinfo not found in the config folder');
  });
});

describe('proxy-config offline: a pod from Kubernetes Service + Pod YAML', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir({
      'registry.yaml': `apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  clusterIP: 10.96.0.5
  selector: { app: reviews }
  ports: [{ name: http, port: 9080, targetPort: 8080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: reviews-1, namespace: shop, labels: { kubernetes.io/service-name: reviews } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints:
  - { addresses: [10.1.0.7], conditions: { ready: true }, targetRef: { kind: Pod, name: reviews-v1-0, namespace: shop } }
---
apiVersion: v1
kind: Pod
metadata: { name: reviews-v1-0, namespace: shop, labels: { app: reviews, version: v1, security.istio.io/tlsMode: istio } }
spec: { serviceAccountName: reviews }
status: { podIP: 10.1.0.7, phase: Running }
`,
    });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('builds the node from the Pod: IP, labels, service account, namespace', async () => {
    const { objects } = await loadConfig(dir);
    const node = resolveNode(objects, 'reviews-v1-0.shop', {});
    expect(node.id).toBe('sidecar~10.1.0.7~reviews-v1-0.shop~shop.svc.cluster.local');
    expect(node.metadata).toMatchObject({ NAMESPACE: 'shop', SERVICE_ACCOUNT: 'reviews', LABELS: { app: 'reviews', version: 'v1', 'security.istio.io/tlsMode': 'istio' } });
    expect(resolveNode(objects, 'reviews-v1-0', { namespace: 'shop' })).toEqual(node);
    expect(resolveNode(objects, 'reviews-v1-0', { namespace: 'shop', type: 'router' }).id).toBe('router~10.1.0.7~reviews-v1-0.shop~shop.svc.cluster.local');
  });

  it('the pod gets inbound chains and the inbound cluster for its service port', async () => {
    const listeners = await pc('listeners', 'reviews-v1-0', { config: dir, namespace: 'shop' });
    expect(listeners).toMatch(row('0.0.0.0', '15006', 'Trans: raw_buffer; Addr: *:8080', 'Cluster: inbound|8080||'));
    expect(listeners).toMatch(/^0\.0\.0\.0\s+15006\s+Trans: tls; App: .*; Addr: \*:8080\s+Cluster: inbound\|8080\|\|$/m);
    const clusters = await pc('clusters', 'reviews-v1-0.shop', { config: dir });
    expect(clusters).toMatch(/^\s+8080\s+-\s+inbound\s+ORIGINAL_DST$/m);
    expect(clusters).toMatch(row('reviews.shop.svc.cluster.local', '9080', '-', 'outbound', 'EDS'));
    const routes = await pc('routes', 'reviews-v1-0.shop', { config: dir });
    expect(routes).toMatch(row('9080', 'reviews.shop.svc.cluster.local:9080', 'reviews, reviews.shop + 1 more...', '/*'));
    expect(await pc('endpoints', 'reviews-v1-0.shop', { config: dir })).toMatch(row('10.1.0.7:8080', 'HEALTHY', 'OK', 'outbound|9080||reviews.shop.svc.cluster.local'));
  });

  it('a pod that is not there is a clear error (exit 1)', async () => {
    const r = await runProxyConfig('listeners', 'ratings-0.shop', { config: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('Error: pod ratings-0.shop not found in the config folder (no Pod object there); pass --labels k=v,... to describe a proxy without one\n');
  });
});

describe('proxy-config offline: gateway secrets', () => {
  let dir: string;
  const GW = 'istio-ingressgateway-0.istio-system';
  const opts = (o: ProxyConfigOptions = {}): ProxyConfigOptions => ({ config: dir, type: 'router', labels: 'istio=ingressgateway', ...o });
  beforeAll(() => {
    dir = tempDir({
      'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: web, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 443, name: https, protocol: HTTPS }
      hosts: [web.example.com]
      tls: { mode: SIMPLE, credentialName: web-cert }
---
apiVersion: v1
kind: Secret
metadata: { name: web-cert, namespace: istio-system }
type: kubernetes.io/tls
data:
  tls.crt: ${Buffer.from(TEST_CERT).toString('base64')}
  tls.key: ${FAKE_KEY_B64}
`,
    });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('secrets table: the credential as a Cert Chain with serial and validity, never the key', async () => {
    const out = await pc('secrets', GW, opts());
    expect(lines(out)[0]).toMatch(/^RESOURCE NAME\s+TYPE\s+STATUS\s+VALID CERT\s+SERIAL NUMBER\s+NOT AFTER\s+NOT BEFORE$/);
    expect(out).toMatch(new RegExp(`^kubernetes://web-cert\\s+Cert Chain\\s+ACTIVE\\s+(true|false)\\s+${TEST_SERIAL}\\s+2036-11-19T03:34:55Z\\s+2026-11-22T03:34:55Z$`, 'm'));
    expect(out).not.toContain(FAKE_KEY_B64);
    expect(await pc('listeners', GW, opts())).toMatch(row('0.0.0.0', '443', 'SNI: web.example.com', 'Route: https.443.https.web.istio-system'));
  });

  it('VALID CERT is whether now is inside the certificate validity', () => {
    const secret = { name: 'kubernetes://x', tls_certificate: { certificate_chain: { inline_string: TEST_CERT } }, validation_context: { trusted_ca: { inline_bytes: Buffer.from(TEST_CERT).toString('base64') } } };
    expect(secretsTable([secret], new Date('2030-01-01T00:00:00Z'))).toMatch(row('kubernetes://x', 'Cert Chain', 'ACTIVE', 'true', TEST_SERIAL, '2036-11-19T03:34:55Z', '2026-11-22T03:34:55Z'));
    expect(secretsTable([secret], new Date('2030-01-01T00:00:00Z'))).toMatch(row('kubernetes://x', 'CA', 'ACTIVE', 'true', TEST_SERIAL, '2036-11-19T03:34:55Z', '2026-11-22T03:34:55Z'));
    expect(secretsTable([secret], new Date('2040-01-01T00:00:00Z'))).toMatch(row('kubernetes://x', 'Cert Chain', 'ACTIVE', 'false', TEST_SERIAL, '2036-11-19T03:34:55Z', '2026-11-22T03:34:55Z'));
    expect(secretsTable([{ name: 'broken', tls_certificate: { certificate_chain: { inline_string: 'not a cert' } } }])).toMatch(row('broken', 'Cert Chain', 'ACTIVE', 'false'));
  });

  it('-o json / -o yaml redact the private key and keep the certificate', async () => {
    for (const output of ['json', 'yaml'] as const) {
      const text = await pc('secrets', GW, opts({ output }));
      expect(text).not.toContain(FAKE_KEY_B64);
      const secrets = output === 'json' ? JSON.parse(text) : parseYaml(text);
      expect(secrets).toHaveLength(1);
      expect(secrets[0].tls_certificate.private_key).toEqual({ inline_bytes: '[redacted]' });
      expect(Buffer.from(secrets[0].tls_certificate.certificate_chain.inline_bytes, 'base64').toString()).toBe(TEST_CERT);
    }
    const all = await pc('all', GW, opts({ output: 'json' }));
    expect(all).not.toContain(FAKE_KEY_B64);
    expect(all).toContain('[redacted]');
  });

  it('redaction reaches every kind of key material, wherever it is nested', () => {
    const out = redactSecrets({
      a: [{ private_key: { inline_string: 'k1' }, certificate_chain: { inline_string: 'c' } }],
      session_ticket_keys: { keys: [{ inline_bytes: 'k2' }] },
      generic_secret: { secret: { inline_bytes: 'k3' } },
      password: { inline_string: 'k4' },
    });
    expect(JSON.stringify(out)).not.toMatch(/k[1-4]/);
    expect(out.a[0]!.certificate_chain.inline_string).toBe('c');
  });
});

describe('describeRouteDomains (istioctl abbreviation)', () => {
  it('drops ports and expansions, shows two and counts the rest', () => {
    expect(describeRouteDomains(['reviews.default.svc.cluster.local', 'reviews', 'reviews.default.svc', 'reviews.default', '10.96.0.5', 'reviews:9080', 'reviews.default.svc.cluster.local:9080'])).toBe('reviews, reviews.default + 1 more...');
    expect(describeRouteDomains(['a.example.com', 'a.example.com.'])).toBe('a.example.com');
    expect(describeRouteDomains(['*'])).toBe('*');
  });
});

describe('proxy-config online: a running mizzen serve and a connected sidecar', () => {
  let mesh: TestMesh;
  let client: AdsClient;
  let server: string;
  beforeAll(async () => {
    const files = Object.fromEntries(fs.readdirSync(BOOKINFO).map((f) => [f, fs.readFileSync(path.join(BOOKINFO, f), 'utf8')]));
    mesh = await startMesh(files);
    server = `http://127.0.0.1:${mesh.monitoringPort}`;
    // An Envoy sidecar (no GENERATOR=grpc), as the offline tests describe it with --labels.
    client = new AdsClient('sotw', mesh.xdsPort, { pod: 'reviews-v1-0', namespace: 'bookinfo', ip: '10.0.0.1', labels: { app: 'reviews', version: 'v1' }, metadata: { GENERATOR: '', INTERCEPTION_MODE: 'REDIRECT' } });
    const cds = await client.fetch(TypeUrl.Cluster);
    client.ack(cds);
    const eds = cds.resources.filter((r) => r.body.type === 'EDS').map((r) => r.name);
    client.ack(await client.fetch(TypeUrl.ClusterLoadAssignment, eds));
    const lds = await client.fetch(TypeUrl.Listener);
    client.ack(lds);
    client.ack(await client.fetch(TypeUrl.RouteConfiguration, ['9080']));
  });
  afterAll(async () => {
    client?.close();
    await mesh?.stop();
  });

  it('shows what the connected proxy is sent: the same tables as offline', async () => {
    for (const kind of ['clusters', 'listeners', 'routes', 'endpoints']) {
      const online = await pc(kind, 'reviews-v1-0.bookinfo', { server });
      expect(online).toBe(await pc(kind, 'reviews-v1-0.bookinfo', REVIEWS));
    }
    expect(await pc('clusters', 'reviews-v1-0', { server, namespace: 'bookinfo' })).toMatch(row('reviews.bookinfo.svc.cluster.local', '9080', 'v2', 'outbound', 'EDS', 'reviews.bookinfo'));
    expect(await pc('clusters', 'sidecar~10.0.0.1~reviews-v1-0.bookinfo~bookinfo.svc.cluster.local', { server, subset: 'v1' })).toMatch(row('reviews.bookinfo.svc.cluster.local', '9080', 'v1', 'outbound', 'EDS', 'reviews.bookinfo'));
  });

  it('runs as a real process with --server', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['src/cli/main.ts', 'proxy-config', 'listeners', 'reviews-v1-0.bookinfo', '--server', server, '--port', '15006'], { cwd: ROOT });
    expect(stdout).toMatch(row('0.0.0.0', '15006', 'Trans: tls; App: TCP TLS', 'InboundPassthroughCluster'));
    expect(stdout).not.toContain('15001');
  });

  it('a proxy that is not connected, or a server that is not there, is an error (exit 1)', async () => {
    const missing = await runProxyConfig('clusters', 'ratings-v1-0.bookinfo', { server });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no connected proxy matches "ratings-v1-0.bookinfo"');
    const down = await runProxyConfig('clusters', 'reviews-v1-0.bookinfo', { server: 'http://127.0.0.1:1' });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot reach http://127.0.0.1:1');
  });
});
