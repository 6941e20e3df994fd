/**
 * Caller authentication (src/ca/authenticate.ts): the authenticator chain, client certificates, locally verified
 * JWTs (jose) and TokenReview, with the abuse cases of reliability-security.md §9 A1-A6.
 */
import crypto, { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as jose from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  authenticateCaller,
  bearerToken,
  ClientCertAuthenticator,
  identityFromClaims,
  JwtAuthenticator,
  TokenReviewAuthenticator,
  type AuthOutcome,
  type CallerContext,
  type TokenReviewer,
  type TokenReviewResult,
} from '../../src/ca/authenticate.ts';
import { CaKeyCertBundle } from '../../src/ca/bundle.ts';
import { createCsr, parseCsr } from '../../src/ca/csr.ts';
import { parseSpiffeId } from '../../src/ca/identity.ts';
import { newSelfSignedMaterial } from '../../src/ca/init.ts';
import { CertificateAuthority } from '../../src/ca/sign.ts';

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const TD = 'cluster.local';

function ctx(options: { token?: string; cert?: Buffer; secure?: boolean; metadata?: Record<string, string> } = {}): CallerContext {
  const md = new grpc.Metadata();
  if (options.token !== undefined) md.set('authorization', `Bearer ${options.token}`);
  for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
  return { secure: options.secure ?? true, metadata: md, peer: 'ipv4:127.0.0.1:1', ...(options.cert ? { peerCertificate: options.cert } : {}) };
}

const k8sClaims = (ns: string, sa: string) => ({ 'kubernetes.io': { namespace: ns, serviceaccount: { name: sa, uid: 'u' }, pod: { name: 'p', uid: 'u' } }, sub: `system:serviceaccount:${ns}:${sa}` });

describe('JwtAuthenticator (file mode)', () => {
  let key: jose.CryptoKey;
  let other: jose.CryptoKey;
  let auth: JwtAuthenticator;
  const token = (claims: jose.JWTPayload, o: { aud?: string | string[]; exp?: number | string | null; iss?: string; signWith?: jose.CryptoKey; kid?: string } = {}) => {
    let j = new jose.SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: o.kid ?? 'k1' }).setIssuedAt().setIssuer(o.iss ?? ISSUER).setAudience(o.aud ?? 'istio-ca');
    if (o.exp !== null) j = j.setExpirationTime(o.exp ?? '1h');
    return j.sign(o.signWith ?? key);
  };
  beforeAll(async () => {
    const pair = await jose.generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    other = (await jose.generateKeyPair('ES256')).privateKey;
    const jwk = { ...(await jose.exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    auth = new JwtAuthenticator({ issuer: ISSUER, jwks: { keys: [jwk] }, trustDomain: TD });
  });

  const ok = async (t: string) => {
    const r = await auth.authenticate(ctx({ token: t }));
    expect(r.kind).toBe('ok');
    return (r as Extract<AuthOutcome, { kind: 'ok' }>).caller.identities;
  };
  const fail = async (t: string, label?: string) => {
    const r = await auth.authenticate(ctx({ token: t }));
    expect(r.kind).toBe('fail');
    if (label) expect((r as Extract<AuthOutcome, { kind: 'fail' }>).label).toBe(label);
    return (r as Extract<AuthOutcome, { kind: 'fail' }>).reason;
  };

  it('maps a projected service-account token to the SPIFFE id', async () => {
    expect(await ok(await token(k8sClaims('ns1', 'sa1')))).toEqual(['spiffe://cluster.local/ns/ns1/sa/sa1']);
    expect(await ok(await token({ sub: 'system:serviceaccount:bookinfo:reviews' }, { aud: ['other', 'istio-ca'] }))).toEqual(['spiffe://cluster.local/ns/bookinfo/sa/reviews']);
  });

  it('skips when there is no bearer token', async () => {
    expect(await auth.authenticate(ctx())).toEqual({ kind: 'skip' });
  });

  it('refuses an expired token, a token not yet valid, and one without exp (A4 legacy tokens)', async () => {
    await fail(await token(k8sClaims('ns1', 'sa1'), { exp: Math.floor(Date.now() / 1000) - 120 }), 'token_expired');
    await fail(await new jose.SignJWT(k8sClaims('ns1', 'sa1')).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setAudience('istio-ca').setExpirationTime('2h').setNotBefore('1h').sign(key), 'token_claims');
    expect(await fail(await token(k8sClaims('ns1', 'sa1'), { exp: null }))).toMatch(/exp/);
  });

  it('refuses the wrong audience (e.g. the API server default) and the wrong issuer (A4)', async () => {
    expect(await fail(await token(k8sClaims('ns1', 'sa1'), { aud: 'https://kubernetes.default.svc' }), 'token_claims')).toMatch(/aud/);
    expect(await fail(await token(k8sClaims('ns1', 'sa1'), { iss: 'https://evil' }), 'token_claims')).toMatch(/iss/);
  });

  it('refuses bad signatures, unknown keys, HMAC and unsigned tokens', async () => {
    await fail(await token(k8sClaims('ns1', 'sa1'), { signWith: other }), 'token_signature');
    await fail(await token(k8sClaims('ns1', 'sa1'), { signWith: other, kid: 'nope' }), 'token_signature');
    const hs = await new jose.SignJWT(k8sClaims('ns1', 'sa1')).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setIssuer(ISSUER).setAudience('istio-ca').setExpirationTime('1h').sign(new TextEncoder().encode('secret-secret-secret-secret-secr'));
    await fail(hs);
    const none = new jose.UnsecuredJWT(k8sClaims('ns1', 'sa1')).setIssuer(ISSUER).setAudience('istio-ca').setExpirationTime('1h').encode();
    await fail(none);
    for (const junk of ['x', 'a.b.c', '...', 'eyJ'.repeat(100), 'eyJhbGciOiJub25lIn0.e30.', '%00']) await fail(junk);
  });

  it('refuses oversized tokens unparsed', async () => {
    expect(await fail('a'.repeat(20_000), 'token_too_large')).toMatch(/20000 bytes/);
  });

  it('refuses tokens whose claims are not clean Kubernetes names or disagree (A5)', async () => {
    await fail(await token({ 'kubernetes.io': { namespace: 'ns1/sa/admin', serviceaccount: { name: 'x' } } }), 'token_identity');
    await fail(await token({ 'kubernetes.io': { namespace: 'ns1', serviceaccount: { name: 'x' } }, sub: 'system:serviceaccount:ns2:x' }), 'token_identity');
    await fail(await token({ sub: 'alice@example.com' }), 'token_identity');
    await fail(await token({ sub: 'system:serviceaccount:ns1:sa1:extra' }), 'token_identity');
    await fail(await token({ sub: 'system:serviceaccount:NS1:sa1' }), 'token_identity');
  });

  it('parseSpiffeId', () => {
    expect(parseSpiffeId('spiffe://cluster.local/ns/a/sa/b.c')).toEqual({ trustDomain: 'cluster.local', namespace: 'a', serviceAccount: 'b.c' });
    for (const bad of ['spiffe://td/ns/a/sa/b/extra', 'spiffe://td/ns/A/sa/b', 'https://td/ns/a/sa/b', 'spiffe://td/ns//sa/b', 'spiffe://TD/ns/a/sa/b']) expect(parseSpiffeId(bad)).toBeUndefined();
  });

  it('identityFromClaims', () => {
    expect(identityFromClaims(k8sClaims('a', 'b.c'), 'td')).toEqual({ identity: 'spiffe://td/ns/a/sa/b.c' });
    expect(identityFromClaims({ 'kubernetes.io': { namespace: 'a' } }, 'td')).toHaveProperty('error');
    expect(identityFromClaims({}, 'td')).toHaveProperty('error');
  });

  it('fails closed when a JWKS URL is unreachable', async () => {
    const remote = new JwtAuthenticator({ issuer: ISSUER, jwks: new URL('http://127.0.0.1:9/jwks'), trustDomain: TD });
    const r = await remote.authenticate(ctx({ token: await token(k8sClaims('ns1', 'sa1')) }));
    expect(r.kind).toBe('fail');
  });
});

class FakeReviewer implements TokenReviewer {
  calls: Array<{ token: string; audiences: string[] }> = [];
  result: TokenReviewResult | Error;
  constructor(result: TokenReviewResult | Error) {
    this.result = result;
  }
  async review(token: string, audiences: string[]): Promise<TokenReviewResult> {
    this.calls.push({ token, audiences });
    if (this.result instanceof Error) throw this.result;
    return this.result;
  }
}

describe('TokenReviewAuthenticator (kube mode)', () => {
  const good: TokenReviewResult = { authenticated: true, user: { username: 'system:serviceaccount:ns1:sa1', groups: ['system:serviceaccounts', 'system:serviceaccounts:ns1', 'system:authenticated'] }, audiences: ['istio-ca'] };
  const run = async (result: TokenReviewResult | Error, metadata: Record<string, string> = {}, clusters = ['Kubernetes']) => {
    const reviewer = new FakeReviewer(result);
    const a = new TokenReviewAuthenticator({ trustDomain: TD, reviewerFor: (c) => (clusters.includes(c ?? 'Kubernetes') ? reviewer : undefined) });
    return { outcome: await a.authenticate(ctx({ token: 'tok', metadata })), reviewer };
  };

  it('accepts a reviewed service-account token, asking for audience istio-ca', async () => {
    const { outcome, reviewer } = await run(good);
    expect(outcome).toEqual({ kind: 'ok', caller: { identities: ['spiffe://cluster.local/ns/ns1/sa/sa1'], authenticator: 'TokenReviewAuthenticator' } });
    expect(reviewer.calls).toEqual([{ token: 'tok', audiences: ['istio-ca'] }]);
  });

  it('refuses when status.audiences is empty or lacks istio-ca, even if authenticated (A4)', async () => {
    for (const audiences of [[], ['https://kubernetes.default.svc']]) {
      const { outcome } = await run({ ...good, audiences });
      expect(outcome).toMatchObject({ kind: 'fail', label: 'token_audience' });
    }
  });

  it('refuses unauthenticated, non-service-account users and malformed usernames (A5)', async () => {
    expect((await run({ ...good, authenticated: false })).outcome).toMatchObject({ kind: 'fail', label: 'token_invalid' });
    expect((await run({ ...good, user: { username: 'alice', groups: ['system:authenticated'] } })).outcome).toMatchObject({ kind: 'fail', label: 'token_identity' });
    expect((await run({ ...good, user: { username: 'system:serviceaccount:ns1', groups: ['system:serviceaccounts'] } })).outcome).toMatchObject({ kind: 'fail', label: 'token_identity' });
    expect((await run({ ...good, user: { username: 'system:serviceaccount:ns1:sa1:x', groups: ['system:serviceaccounts'] } })).outcome).toMatchObject({ kind: 'fail' });
  });

  it('refuses unknown clusters and reviewer errors', async () => {
    expect((await run(good, { clusterid: 'other' })).outcome).toMatchObject({ kind: 'fail', label: 'unknown_cluster' });
    expect((await run(good, { clusterid: 'Kubernetes' })).outcome.kind).toBe('ok');
    expect((await run(new Error('connection refused'))).outcome).toMatchObject({ kind: 'fail', label: 'tokenreview_error' });
  });
});

describe('ClientCertAuthenticator', () => {
  const material = newSelfSignedMaterial({ trustDomain: TD, keyType: 'ec' });
  const bundle = CaKeyCertBundle.load(material);
  const ca = new CertificateAuthority(bundle);
  const key = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const leafDer = (c: CertificateAuthority, ids = ['spiffe://cluster.local/ns/ns1/sa/sa1'], ttl = 0) => new X509Certificate(c.signCsr(parseCsr(createCsr(key())), ids, ttl).leaf).raw;
  const auth = new ClientCertAuthenticator(() => bundle);

  it("a workload's current certificate: identities are its URI SANs (A6)", () => {
    expect(auth.authenticate(ctx({ cert: leafDer(ca) }))).toEqual({ kind: 'ok', caller: { identities: ['spiffe://cluster.local/ns/ns1/sa/sa1'], authenticator: 'ClientCertAuthenticator' } });
  });

  it('skips without a certificate', () => {
    expect(auth.authenticate(ctx())).toEqual({ kind: 'skip' });
  });

  it('refuses certificates from another root, expired ones, CA certificates and ones without URI SANs (A6)', () => {
    const otherCa = new CertificateAuthority(CaKeyCertBundle.load(newSelfSignedMaterial({ trustDomain: TD, keyType: 'ec' })));
    expect(auth.authenticate(ctx({ cert: leafDer(otherCa) }))).toMatchObject({ kind: 'fail', reason: 'client certificate refused: certificate not issued by this CA' });
    const expiredLeaf = leafDer(ca, undefined, 60);
    const later = new ClientCertAuthenticator(() => bundle, () => Date.now() + 3600_000);
    expect(later.authenticate(ctx({ cert: expiredLeaf }))).toMatchObject({ kind: 'fail', reason: 'client certificate refused: certificate expired' });
    expect(auth.authenticate(ctx({ cert: bundle.signingCert.raw }))).toMatchObject({ kind: 'fail', label: 'cert_invalid' });
    const serving = new X509Certificate(ca.issueServingCertificate({ dnsNames: ['mizzen.istio-system.svc'] }).certChain).raw;
    expect(auth.authenticate(ctx({ cert: serving }))).toMatchObject({ kind: 'fail', label: 'cert_no_san' });
    expect(auth.authenticate(ctx({ cert: Buffer.from('garbage') }))).toMatchObject({ kind: 'fail', label: 'cert_invalid' });
  });
});

describe('authenticateCaller', () => {
  const okAuth = (name: string) => ({ name, authenticate: (): AuthOutcome => ({ kind: 'ok', caller: { identities: [name], authenticator: name } }) });
  const failAuth = (name: string) => ({ name, authenticate: (): AuthOutcome => ({ kind: 'fail', label: `${name}_label`, reason: 'nope' }) });
  const skipAuth = (name: string) => ({ name, authenticate: (): AuthOutcome => ({ kind: 'skip' }) });

  it('first success wins, in order', async () => {
    expect(await authenticateCaller([skipAuth('a'), failAuth('b'), okAuth('c'), okAuth('d')], ctx())).toEqual({ ok: true, caller: { identities: ['c'], authenticator: 'c' } });
  });

  it('no credential at all → no_credential (A1)', async () => {
    expect(await authenticateCaller([skipAuth('a'), skipAuth('b')], ctx())).toMatchObject({ ok: false, label: 'no_credential' });
  });

  it('reports the first refusal and every reason', async () => {
    expect(await authenticateCaller([failAuth('a'), failAuth('b')], ctx())).toEqual({ ok: false, label: 'a_label', reasons: ['a: nope', 'b: nope'] });
  });

  it('refuses plaintext callers unless allowed (A2)', async () => {
    expect(await authenticateCaller([okAuth('a')], ctx({ secure: false }))).toMatchObject({ ok: false, label: 'plaintext' });
    expect(await authenticateCaller([okAuth('a')], ctx({ secure: false }), { allowPlaintext: true })).toMatchObject({ ok: true });
  });

  it('an authenticator that throws is a refusal, not a crash', async () => {
    const boom = { name: 'boom', authenticate: (): AuthOutcome => { throw new Error('bug'); } };
    expect(await authenticateCaller([boom, okAuth('b')], ctx())).toMatchObject({ ok: true, caller: { authenticator: 'b' } });
  });

  it('bearerToken reads authorization: Bearer only', () => {
    const md = new grpc.Metadata();
    md.set('authorization', 'Basic abc');
    expect(bearerToken(md)).toBeUndefined();
    md.add('authorization', 'bearer t0k');
    expect(bearerToken(md)).toBe('t0k');
  });
});
