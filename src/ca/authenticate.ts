/**
 * Who is asking for a certificate (reliability-security.md §1.2; Istio security/pkg/server/ca/authenticate/*). An
 * ordered list of authenticators runs and the first success wins:
 *   1. ClientCertAuthenticator: the caller's TLS client certificate, already verified by the TLS layer against our
 *      trust bundle and checked again here (chain through our intermediates to a current root, validity, not a CA);
 *      identities = its URI SANs. This is how a workload renews with its current certificate.
 *   2. JwtAuthenticator (file mode): `authorization: Bearer <jwt>` verified locally with jose against a configured
 *      issuer's JWKS, audience `istio-ca`, exp/nbf; Kubernetes service-account claims → SPIFFE id.
 *   3. TokenReviewAuthenticator (kube mode): the same bearer token reviewed by the API server, and, unlike istiod, the
 *      returned `status.audiences` must contain our audience: an empty list means the authenticator ignored the
 *      requested audiences and the token may only be valid for the API server itself (k8s authentication/v1 docs).
 * Identity never comes from the CSR. Callers get one opaque answer; the reason is logged and counted.
 */
import { X509Certificate } from 'node:crypto';
import * as jose from 'jose';
import { uriSans } from './cert-builder.ts';
import type { CaKeyCertBundle } from './bundle.ts';
import { isNamespaceName, isServiceAccountName, parseServiceAccountUsername, spiffeId } from './identity.ts';

/** Istio's TOKEN_AUDIENCES default. */
export const DEFAULT_TOKEN_AUDIENCES = ['istio-ca'];
/** Tokens larger than this are refused unparsed (projected service-account tokens are ~1 KiB). */
export const MAX_TOKEN_BYTES = 16 * 1024;

/** The slice of grpc.Metadata the authenticators read. */
export interface MetadataReader {
  get(key: string): Array<string | Buffer>;
}

export interface CallerContext {
  /** The call arrived over TLS (see service.ts: secureServerCredentials marks such calls). */
  secure: boolean;
  /** DER of the client certificate, present only when the TLS layer verified it against our trust bundle. */
  peerCertificate?: Buffer;
  metadata: MetadataReader;
  /** For logs: `ipv4:10.0.0.1:5555`. */
  peer: string;
}

export interface Caller {
  identities: string[];
  /** Which authenticator vouched: `ClientCertAuthenticator`, `JwtAuthenticator`, `TokenReviewAuthenticator`. */
  authenticator: string;
}

export type AuthOutcome =
  | { kind: 'ok'; caller: Caller }
  /** No credential of this authenticator's kind: the next one is tried. */
  | { kind: 'skip' }
  /** A credential of this kind was presented and refused. `label` is the metric's `error` label, `reason` for the log. */
  | { kind: 'fail'; label: string; reason: string };

export interface Authenticator {
  readonly name: string;
  authenticate(ctx: CallerContext): Promise<AuthOutcome> | AuthOutcome;
}

export type AuthResult = { ok: true; caller: Caller } | { ok: false; label: string; reasons: string[] };

/** Runs the authenticators in order; plaintext calls are refused unless explicitly allowed (XDS_AUTH_PLAINTEXT). */
export async function authenticateCaller(authenticators: readonly Authenticator[], ctx: CallerContext, options: { allowPlaintext?: boolean } = {}): Promise<AuthResult> {
  if (!ctx.secure && !options.allowPlaintext) return { ok: false, label: 'plaintext', reasons: ['plaintext connection: the CA only answers over TLS'] };
  const reasons: string[] = [];
  let label: string | undefined;
  for (const a of authenticators) {
    let outcome: AuthOutcome;
    try {
      outcome = await a.authenticate(ctx);
    } catch (err) {
      outcome = { kind: 'fail', label: 'internal', reason: `authenticator error: ${(err as Error).message}` };
    }
    if (outcome.kind === 'ok') return { ok: true, caller: outcome.caller };
    if (outcome.kind === 'fail') {
      label ??= outcome.label;
      reasons.push(`${a.name}: ${outcome.reason}`);
    }
  }
  if (reasons.length === 0) reasons.push('no credential: neither a client certificate nor a bearer token');
  return { ok: false, label: label ?? 'no_credential', reasons };
}

/** The bearer token of `authorization: Bearer <token>`, if any. */
export function bearerToken(metadata: MetadataReader): string | undefined {
  for (const v of metadata.get('authorization')) {
    if (typeof v !== 'string') continue;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(v);
    if (m) return m[1];
  }
  return undefined;
}

function firstString(metadata: MetadataReader, key: string): string | undefined {
  const v = metadata.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/** Client-certificate authentication: a workload renewing with its current (valid, ours) certificate. */
export class ClientCertAuthenticator implements Authenticator {
  readonly name = 'ClientCertAuthenticator';
  private readonly bundle: () => CaKeyCertBundle;
  private readonly now: () => number;

  constructor(bundle: () => CaKeyCertBundle, now: () => number = Date.now) {
    this.bundle = bundle;
    this.now = now;
  }

  authenticate(ctx: CallerContext): AuthOutcome {
    if (!ctx.peerCertificate) return { kind: 'skip' };
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(ctx.peerCertificate);
    } catch {
      return { kind: 'fail', label: 'cert_invalid', reason: 'client certificate does not parse' };
    }
    const problem = this.bundle().verifyLeaf(cert, new Date(this.now()));
    if (problem) return { kind: 'fail', label: 'cert_invalid', reason: `client certificate refused: ${problem}` };
    const identities = uriSans(cert.raw);
    if (identities.length === 0) return { kind: 'fail', label: 'cert_no_san', reason: 'client certificate has no URI SAN' };
    return { kind: 'ok', caller: { identities, authenticator: this.name } };
  }
}

/** Maps verified Kubernetes service-account token claims to a SPIFFE id, or says why not. */
export function identityFromClaims(claims: jose.JWTPayload, trustDomain: string): { identity: string } | { error: string } {
  const k8s = claims['kubernetes.io'];
  let ns: unknown;
  let sa: unknown;
  if (k8s && typeof k8s === 'object') {
    const o = k8s as { namespace?: unknown; serviceaccount?: { name?: unknown } };
    ns = o.namespace;
    sa = o.serviceaccount?.name;
  }
  const fromSub = parseServiceAccountUsername(claims.sub);
  if (ns === undefined && sa === undefined) {
    if (!fromSub) return { error: 'token has neither kubernetes.io claims nor a system:serviceaccount:<ns>:<sa> subject' };
    return { identity: spiffeId(trustDomain, fromSub.namespace, fromSub.serviceAccount) };
  }
  if (!isNamespaceName(ns) || !isServiceAccountName(sa)) return { error: 'token kubernetes.io namespace/serviceaccount claims are missing or not valid names' };
  if (claims.sub !== undefined && (!fromSub || fromSub.namespace !== ns || fromSub.serviceAccount !== sa)) return { error: 'token subject disagrees with its kubernetes.io claims' };
  return { identity: spiffeId(trustDomain, ns, sa) };
}

/** Asymmetric JWS algorithms only: an HMAC "key" in a JWKS would let anyone who can read it mint tokens. */
const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface JwtAuthenticatorOptions {
  issuer: string;
  /** A JWKS (e.g. read from `--token-jwks FILE`) or its URL (fetched and cached by jose; fails closed when unreachable). */
  jwks: jose.JSONWebKeySet | URL;
  audiences?: string[];
  trustDomain: string;
  /** Allowed clock skew for exp/nbf (default 30 s). */
  clockToleranceSec?: number;
  now?: () => number;
}

const JOSE_LABELS: Record<string, string> = {
  ERR_JWT_EXPIRED: 'token_expired',
  ERR_JWT_CLAIM_VALIDATION_FAILED: 'token_claims',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'token_signature',
  ERR_JWKS_NO_MATCHING_KEY: 'token_signature',
  ERR_JOSE_ALG_NOT_ALLOWED: 'token_signature',
  ERR_JWKS_TIMEOUT: 'jwks_unavailable',
  ERR_JOSE_GENERIC: 'jwks_unavailable',
};

/** File mode's token check: a locally verified JWT (the OIDC-style authenticator of Istio's JWT_RULE). */
export class JwtAuthenticator implements Authenticator {
  readonly name = 'JwtAuthenticator';
  private readonly o: JwtAuthenticatorOptions;
  private readonly keys: jose.JWTVerifyGetKey;

  constructor(options: JwtAuthenticatorOptions) {
    this.o = options;
    this.keys = options.jwks instanceof URL ? jose.createRemoteJWKSet(options.jwks, { timeoutDuration: 5000, cooldownDuration: 30_000 }) : jose.createLocalJWKSet(options.jwks);
  }

  async authenticate(ctx: CallerContext): Promise<AuthOutcome> {
    const token = bearerToken(ctx.metadata);
    if (token === undefined) return { kind: 'skip' };
    if (token.length > MAX_TOKEN_BYTES) return { kind: 'fail', label: 'token_too_large', reason: `bearer token of ${token.length} bytes` };
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, this.keys, {
        issuer: this.o.issuer,
        audience: this.o.audiences ?? DEFAULT_TOKEN_AUDIENCES,
        algorithms: ASYMMETRIC_ALGS,
        requiredClaims: ['exp'],
        clockTolerance: this.o.clockToleranceSec ?? 30,
        ...(this.o.now ? { currentDate: new Date(this.o.now()) } : {}),
      }));
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_JWT_INVALID';
      // jose's messages name the failing claim, never the token.
      return { kind: 'fail', label: JOSE_LABELS[code] ?? 'token_invalid', reason: `${code}: ${(err as Error).message}` };
    }
    const id = identityFromClaims(payload, this.o.trustDomain);
    if ('error' in id) return { kind: 'fail', label: 'token_identity', reason: id.error };
    return { kind: 'ok', caller: { identities: [id.identity], authenticator: this.name } };
  }
}

/** A Kubernetes TokenReview result (authentication.k8s.io/v1 TokenReviewStatus), as the kube client returns it. */
export interface TokenReviewResult {
  authenticated: boolean;
  user: { username: string; groups: string[] };
  /** status.audiences: the audiences the token was found valid for. Must be passed through unchanged. */
  audiences: string[];
  error?: string;
}

/** Kube mode supplies this: POST a TokenReview with spec.token and spec.audiences, return its status. */
export interface TokenReviewer {
  review(token: string, audiences: string[]): Promise<TokenReviewResult>;
}

export interface TokenReviewAuthenticatorOptions {
  /** The reviewer for the caller's cluster (gRPC metadata `clusterid`; undefined when absent). Undefined = unknown cluster. */
  reviewerFor(clusterId: string | undefined): TokenReviewer | undefined;
  audiences?: string[];
  trustDomain: string;
}

/** Istio's KubeJWTAuthenticator (kubeauth/kube_jwt.go), plus the status.audiences check istiod lacks. */
export class TokenReviewAuthenticator implements Authenticator {
  readonly name = 'TokenReviewAuthenticator';
  private readonly o: TokenReviewAuthenticatorOptions;

  constructor(options: TokenReviewAuthenticatorOptions) {
    this.o = options;
  }

  async authenticate(ctx: CallerContext): Promise<AuthOutcome> {
    const token = bearerToken(ctx.metadata);
    if (token === undefined) return { kind: 'skip' };
    if (token.length > MAX_TOKEN_BYTES) return { kind: 'fail', label: 'token_too_large', reason: `bearer token of ${token.length} bytes` };
    const clusterId = firstString(ctx.metadata, 'clusterid');
    const reviewer = this.o.reviewerFor(clusterId);
    if (!reviewer) return { kind: 'fail', label: 'unknown_cluster', reason: `no token reviewer for cluster ${JSON.stringify(clusterId ?? '')}` };
    const audiences = this.o.audiences ?? DEFAULT_TOKEN_AUDIENCES;
    let r: TokenReviewResult;
    try {
      r = await reviewer.review(token, audiences);
    } catch (err) {
      return { kind: 'fail', label: 'tokenreview_error', reason: `TokenReview failed: ${(err as Error).message}` };
    }
    if (!r.authenticated) return { kind: 'fail', label: 'token_invalid', reason: `TokenReview: not authenticated${r.error ? ` (${r.error})` : ''}` };
    if (!(r.audiences ?? []).some((a) => audiences.includes(a))) {
      return { kind: 'fail', label: 'token_audience', reason: `TokenReview status.audiences ${JSON.stringify(r.audiences ?? [])} does not include ${JSON.stringify(audiences)}` };
    }
    if (!(r.user?.groups ?? []).includes('system:serviceaccounts')) return { kind: 'fail', label: 'token_identity', reason: 'TokenReview user is not in group system:serviceaccounts' };
    const sa = parseServiceAccountUsername(r.user?.username);
    if (!sa) return { kind: 'fail', label: 'token_identity', reason: 'TokenReview username is not system:serviceaccount:<ns>:<sa>' };
    return { kind: 'ok', caller: { identities: [spiffeId(this.o.trustDomain, sa.namespace, sa.serviceAccount)], authenticator: this.name } };
  }
}
