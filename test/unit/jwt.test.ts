/**
 * RequestAuthentication → jwt_authn, and the control plane's JWKS fetching (istiod "istiod" mode): keys inlined,
 * unavailable keys reject tokens, the fetcher refuses what a hostile jwksUri could serve.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwksResolver } from '../../src/app/jwks-resolver.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { UNAVAILABLE_JWKS } from '../../src/xds/builders/jwt.ts';
import { sidecarProxy, routerProxy, translate } from '../support/translate.ts';

const seed = (prefix: string) => {
  const dir = '../shared/fixtures/seeds';
  return fs.readFileSync(path.join(dir, fs.readdirSync(dir).find((f) => f.startsWith(prefix))!), 'utf8');
};
const ORDER_API = `
apiVersion: v1
kind: Service
metadata: { name: order-api, namespace: production }
spec:
  clusterIP: 10.96.10.1
  selector: { app: order-api }
  ports: [{ name: http, port: 8080 }]
`;
const inboundHttpFilters = (t: ReturnType<typeof translate>) =>
  t.lds
    .find((l) => l.name === 'virtualInbound')!
    .filter_chains.filter((c: any) => c.filter_chain_match?.destination_port === 8080)
    .map((c: any) => c.filters.find((f: any) => f.name === 'envoy.filters.network.http_connection_manager').typed_config.http_filters);

describe('RequestAuthentication → jwt_authn', () => {
  it('the seed: one provider, missing token passes, invalid rejected; claims to headers; forward', () => {
    const t = translate(`${ORDER_API}\n---\n${seed('008')}`, sidecarProxy('production', { app: 'order-api' }));
    expect(t.refused).toEqual([]);
    expect(t.generationErrors).toBe(0);
    for (const filters of inboundHttpFilters(t)) {
      // After Istio's peer metadata exchange, before authorization (istiod's order).
      expect(filters.map((f: any) => f.name).slice(0, 2)).toEqual(['istio.metadata_exchange', 'envoy.filters.http.jwt_authn']);
      const cfg = filters[1].typed_config;
      expect(cfg.rules).toEqual([{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } } }]);
      expect(cfg.bypass_cors_preflight).toBe(true);
      expect(cfg.providers['origins-0']).toMatchObject({
        issuer: 'https://accounts.google.com',
        audiences: ['your-api-audience'],
        forward: true,
        payload_in_metadata: 'payload',
        claim_to_headers: [{ header_name: 'x-user-id', claim_name: 'sub' }, { header_name: 'x-user-email', claim_name: 'email' }],
        normalize_payload_in_metadata: { space_delimited_claims: ['permission', 'scope'] },
        // Not fetched here: a key set nobody holds, so tokens are rejected rather than trusted.
        local_jwks: { inline_string: UNAVAILABLE_JWKS },
      });
    }
  });

  it('applies only to the selected workload; outbound chains never authenticate', () => {
    const other = translate(`${ORDER_API}\n---\n${seed('008')}`, sidecarProxy('production', { app: 'web' }));
    for (const l of other.lds) expect(JSON.stringify(l)).not.toContain('jwt_authn');
    const t = translate(`${ORDER_API}\n---\n${seed('008')}`, sidecarProxy('production', { app: 'order-api' }));
    expect(JSON.stringify(t.lds.find((l) => l.name === '0.0.0.0_8080'))).not.toContain('jwt_authn');
  });

  it('several rules: any provider alone, or every present token valid', () => {
    const two = seed('008').replace('jwtRules:', `jwtRules:
    - issuer: "https://issuer.example.com"
      jwks: '${UNAVAILABLE_JWKS}'`);
    const t = translate(`${ORDER_API}\n---\n${two}`, sidecarProxy('production', { app: 'order-api' }));
    expect(t.refused).toEqual([]);
    const cfg = inboundHttpFilters(t)[0].find((f: any) => f.name === 'envoy.filters.http.jwt_authn').typed_config;
    expect(Object.keys(cfg.providers).sort()).toEqual(['origins-0', 'origins-1']);
    expect(cfg.rules[0].requires.requires_any.requirements).toEqual([
      { provider_name: 'origins-0' },
      { provider_name: 'origins-1' },
      { requires_all: { requirements: [0, 1].map((i) => ({ requires_any: { requirements: [{ provider_name: `origins-${i}` }, { allow_missing: {} }] } })) } },
    ]);
  });

  it('gateways authenticate too, clearing the route cache', () => {
    const gw = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  jwtRules: [{ issuer: "https://issuer.example.com", jwks: '${UNAVAILABLE_JWKS}' }]
`;
    const t = translate(gw, routerProxy());
    const hcm = t.lds[0]!.filter_chains[0].filters[0].typed_config;
    expect(hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.jwt_authn').typed_config.providers['origins-0'].clear_route_cache).toBe(true);
  });
});

describe('JWKS fetching', () => {
  let server: http.Server;
  let base = '';
  let jwks = '';
  let sign: (sub: string) => Promise<string>;
  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
    sign = (sub) => new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer('https://issuer.test').setSubject(sub).setExpirationTime('5m').sign(privateKey);
    server = http.createServer((req, res) => {
      if (req.url === '/jwks') return res.end(jwks);
      if (req.url === '/huge') return res.end(`{"keys":[${'"x",'.repeat(300_000)}"x"]}`);
      if (req.url === '/redirect') return res.writeHead(302, { location: '/jwks' }).end();
      if (req.url === '/slow') return setTimeout(() => res.end(jwks), 2000);
      if (req.url === '/notjwks') return res.end('{"hello":1}');
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => server.close());

  it('fetches, inlines keys that verify real tokens, and tells the server to push', async () => {
    let changes = 0;
    const r = new JwksResolver({ log: silentLogger, onChange: () => changes++ });
    r.sync([`${base}/jwks`]);
    await r.refresh(`${base}/jwks`);
    expect(changes).toBe(1);
    const keys = r.current.get(`${base}/jwks`)!;
    const token = await sign('alice');
    const verified = await jwtVerify(token, createLocalJWKSet(JSON.parse(keys)));
    expect(verified.payload.sub).toBe('alice');
    await r.refresh(`${base}/jwks`);
    expect(changes).toBe(1); // unchanged keys: no push
    r.sync([]);
    expect(r.current.size).toBe(0);
    r.stop();
  });

  it('refuses oversized bodies, redirects, slow servers and non-JWKS, keeping nothing (tokens rejected)', async () => {
    const r = new JwksResolver({ log: silentLogger, onChange: () => {}, timeoutMs: 300 });
    const uris = ['/huge', '/redirect', '/slow', '/notjwks', '/missing'].map((p) => `${base}${p}`);
    r.sync(uris);
    await Promise.all(uris.map((u) => r.refresh(u)));
    expect(r.current.size).toBe(0);
    r.stop();
  });
});
