/**
 * Envoy sidecars and gateways over the real ADS server (gRPC on loopback, SotW and Delta): the fetch sequence Envoy
 * performs (CDS and LDS wildcard, then the EDS, RDS and SDS they name), every reference resolvable, live edits
 * pushed, secrets served only to the gateway and redacted in the config dump.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/proto/types.ts';
import { AdsClient, type AdsMode } from '../support/ads-client.ts';
import { eventually, expectNoNacks, startMesh, testTokenIssuer, type TestMesh } from '../support/mesh.ts';

const GOLDENS = path.join(import.meta.dirname, '..', 'scenarios', 'goldens');
const files: Record<string, string> = {};
for (const dir of ['envoy-production-sidecar', 'envoy-production-gateway']) {
  for (const f of fs.readdirSync(path.join(GOLDENS, dir))) {
    if (f.endsWith('.yaml') && f !== 'proxy.yaml') files[`${dir}-${f}`] = fs.readFileSync(path.join(GOLDENS, dir, f), 'utf8');
  }
}

type Body = Record<string, any>;

/** What Envoy does after connecting: CDS and LDS wildcard, then EDS for EDS clusters, RDS and SDS the listeners name. */
async function envoyFetch(c: AdsClient): Promise<{ cds: Body[]; lds: Body[]; eds: Body[]; rds: Body[]; sds: Body[] }> {
  const cdsR = await c.fetch(TypeUrl.Cluster);
  c.ack(cdsR);
  const cds = cdsR.resources.map((r) => r.body as Body);
  const edsNames = cds.filter((x) => x.type === 'EDS').map((x) => x.eds_cluster_config.service_name as string);
  const edsR = await c.fetch(TypeUrl.ClusterLoadAssignment, edsNames);
  c.ack(edsR);
  const ldsR = await c.fetch(TypeUrl.Listener);
  c.ack(ldsR);
  const lds = ldsR.resources.map((r) => r.body as Body);
  const rdsNames = new Set<string>();
  const sdsNames = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Body;
      if (o.rds?.route_config_name) rdsNames.add(o.rds.route_config_name);
      if (typeof o.name === 'string' && o.sds_config?.ads) sdsNames.add(o.name);
      Object.values(o).forEach(walk);
    }
  };
  walk([lds, cds]);
  const rdsR = await c.fetch(TypeUrl.RouteConfiguration, [...rdsNames]);
  c.ack(rdsR);
  let sds: Body[] = [];
  if (sdsNames.size > 0) {
    const sdsR = await c.fetch(TypeUrl.Secret, [...sdsNames]);
    c.ack(sdsR);
    sds = sdsR.resources.map((r) => r.body as Body);
  }
  return { cds, lds, eds: edsR.resources.map((r) => r.body as Body), rds: rdsR.resources.map((r) => r.body as Body), sds };
}

function referencedClusters(rds: Body[], lds: Body[]): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown, key?: string) => {
    if (Array.isArray(v)) v.forEach((x) => walk(x, key));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
    else if (typeof v === 'string' && key === 'cluster') out.add(v);
  };
  walk(rds);
  walk(lds);
  for (const r of rds) for (const vh of r.virtual_hosts ?? []) for (const rt of vh.routes ?? []) for (const w of rt.route?.weighted_clusters?.clusters ?? []) out.add(w.name);
  return out;
}

describe.each<AdsMode>(['sotw', 'delta'])('Envoy proxies over ADS (%s)', (mode) => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startMesh(files);
  });
  afterAll(async () => {
    await expectNoNacks(mesh);
    await mesh.stop();
  });

  it('a sidecar gets a complete, self-consistent config and live route edits', async () => {
    const c = new AdsClient(mode, mesh.xdsPort, { kind: 'envoy', pod: 'myapp-v1-0', namespace: 'production', ip: '10.20.0.1', labels: { app: 'myapp', version: 'v1' } });
    try {
      const { cds, lds, eds, rds } = await envoyFetch(c);
      expect(lds.map((l) => l.name)).toEqual(expect.arrayContaining(['virtualOutbound', 'virtualInbound', '0.0.0.0_80']));
      expect(eds.length).toBe(cds.filter((x) => x.type === 'EDS').length);
      const known = new Set(cds.map((x) => x.name));
      expect([...referencedClusters(rds, lds)].filter((n) => !known.has(n))).toEqual([]);
      const myapp = rds.find((r) => r.name === '80')!.virtual_hosts.find((v: Body) => v.name === 'myapp.production.svc.cluster.local:80');
      expect(myapp.routes[0].route.cluster).toBe('outbound|80|v2|myapp.production.svc.cluster.local');

      // A live edit: the header route now goes to v1.
      const vsFile = Object.keys(files).find((f) => f.includes('envoy-production-sidecar-013'))!;
      mesh.write(vsFile, files[vsFile]!.replace(/subset: v2\n(\s+)# No weight/, 'subset: v1\n$1# No weight').replace('subset: v2', 'subset: v1'));
      await eventually(async () => {
        const r = await c.next(TypeUrl.RouteConfiguration, 5000);
        c.ack(r);
        const vh = (r.resources.find((x) => x.name === "80")?.body as Body | undefined)?.virtual_hosts.find((v: Body) => v.name === 'myapp.production.svc.cluster.local:80');
        return vh?.routes[0].route.cluster === 'outbound|80|v1|myapp.production.svc.cluster.local';
      }, 10_000, 'the edited route');
      mesh.write(vsFile, files[vsFile]!);
    } finally {
      c.close();
    }
  });

  it('a gateway on the plaintext port gets its listeners and routes, but no credentials (nothing proves its namespace)', async () => {
    const c = new AdsClient(mode, mesh.xdsPort, { kind: 'envoy', type: 'router', pod: 'istio-ingressgateway-0', namespace: 'istio-system', ip: '10.20.9.9', labels: { istio: 'ingressgateway' } });
    try {
      const { lds, rds, sds } = await envoyFetch(c);
      expect(lds.map((l) => l.name).sort()).toEqual(['0.0.0.0_8080', '0.0.0.0_8443']);
      expect(rds.map((r) => r.name)).toContain('https.443.https.myapp-gateway.production');
      expect(sds).toEqual([]);
      const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/debug/config_dump?proxyID=istio-ingressgateway-0`);
      expect(JSON.stringify(await res.json())).not.toContain('LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==');
    } finally {
      c.close();
    }
  });

  it('a sidecar asking for a gateway secret gets nothing', async () => {
    const c = new AdsClient(mode, mesh.xdsPort, { kind: 'envoy', pod: 'sneaky-0', namespace: 'istio-system', labels: { istio: 'ingressgateway' } });
    try {
      c.subscribe(TypeUrl.Secret, ['kubernetes://myapp-tls-secret']);
      // SotW answers with an empty set; Delta says the name does not exist (removed).
      const r = await c.next(TypeUrl.Secret);
      expect(r.resources).toEqual([]);
    } finally {
      c.close();
    }
  });
});

describe('RequestAuthentication jwksUri, fetched by the control plane', () => {
  it('pushes the fetched keys inline once they arrive', async () => {
    const jwks = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'fetched-key' }] });
    const http = await import('node:http');
    const srv = http.createServer((_req, res) => res.end(jwks));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    const mesh = await startMesh({
      'svc.yaml': 'apiVersion: v1\nkind: Service\nmetadata: { name: api, namespace: shop }\nspec:\n  clusterIP: 10.96.0.9\n  selector: { app: api }\n  ports: [{ name: http, port: 8080 }]\n',
      'ra.yaml': `apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: { name: api, namespace: shop }\nspec:\n  jwtRules: [{ issuer: "https://issuer.test", jwksUri: "http://127.0.0.1:${port}/jwks" }]\n`,
    });
    const c = new AdsClient('sotw', mesh.xdsPort, { kind: 'envoy', pod: 'api-0', namespace: 'shop', labels: { app: 'api' } });
    try {
      let r = await c.fetch(TypeUrl.Listener);
      c.ack(r);
      await eventually(async () => {
        if (JSON.stringify(r.resources).includes('fetched-key')) return true;
        r = await c.next(TypeUrl.Listener, 5000);
        c.ack(r);
        return JSON.stringify(r.resources).includes('fetched-key');
      }, 10_000, 'the fetched JWKS in virtualInbound');
    } finally {
      c.close();
      await mesh.stop();
      srv.close();
    }
  });
});

describe('the secure port (ADS over TLS, identity checked)', () => {
  it('a gateway that proves its namespace gets its credentialName secret; a proxy claiming another identity is refused', async () => {
    const issuer = await testTokenIssuer();
    const mesh = await startMesh(files, { ca: issuer });
    const tls = async (ns: string, sa: string) => ({ rootPem: mesh.rootPem(), token: await issuer.token(ns, sa) });
    const gateway = { kind: 'envoy' as const, type: 'router' as const, pod: 'istio-ingressgateway-0', namespace: 'istio-system', ip: '10.20.9.9', labels: { istio: 'ingressgateway' }, metadata: { SERVICE_ACCOUNT: 'istio-ingressgateway' } };
    const ok = new AdsClient('delta', mesh.secureXdsPort, gateway, await tls('istio-system', 'istio-ingressgateway'));
    const imposter = new AdsClient('sotw', mesh.secureXdsPort, gateway, await tls('production', 'myapp'));
    try {
      const { sds } = await envoyFetch(ok);
      expect(sds.map((s) => s.name)).toEqual(['kubernetes://myapp-tls-secret']);
      expect(sds[0]!.tls_certificate.private_key.inline_bytes).toBe('LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==');
      const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/debug/config_dump?proxyID=istio-ingressgateway-0`);
      const dump = JSON.stringify(await res.json());
      expect(dump).toContain('[redacted]');
      expect(dump).not.toContain('LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==');
      imposter.subscribe(TypeUrl.Cluster);
      expect((await imposter.ended).code).toBe(7); // PERMISSION_DENIED
      const anonymous = new AdsClient('sotw', mesh.secureXdsPort, gateway, { rootPem: mesh.rootPem() });
      anonymous.subscribe(TypeUrl.Cluster);
      expect((await anonymous.ended).code).toBe(16); // UNAUTHENTICATED
      anonymous.close();

      // The injection webhook runs beside it on HTTPS, with the same serving certificate from mizzen's CA.
      const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1', namespace: 'shop', operation: 'CREATE', object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [{ name: 'app', image: 'app' }] } } } };
      const https = await import('node:https');
      const answer = await new Promise<Body>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: mesh.webhookPort, path: '/inject', method: 'POST', ca: mesh.rootPem(), servername: 'istiod.istio-system.svc', headers: { 'content-type': 'application/json' } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(JSON.parse(body) as Body));
        });
        req.on('error', reject);
        req.end(JSON.stringify(review));
      });
      expect(answer.response).toMatchObject({ uid: 'u1', allowed: true });
    } finally {
      ok.close();
      imposter.close();
      await mesh.stop();
    }
  });
});
