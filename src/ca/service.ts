/**
 * `istio.v1.auth.IstioCertificateService/CreateCertificate` on grpc-js (Istio security/pkg/server/ca/server.go):
 * authenticate the caller → parse and verify the CSR → sign for the caller's identities → leaf, intermediates, roots.
 * Callers get Istio's opaque status messages; the reason goes to the log (never a token or key) and to the
 * `citadel_server_*` counters.
 *
 * The service is registered on the control plane's TLS server (port 15012). Use `secureServerCredentials()` for that
 * server: it requests (but does not require) client certificates, as istiod's VerifyClientCertIfGiven, serves our
 * own serving certificate, and marks calls that arrived over TLS, so a plaintext port on the same grpc.Server (if
 * anyone binds one) gets no certificates. `authenticateStream` lends the same authenticator chain to ADS streams on
 * that server (AdsServer.register's `authenticate`).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Registry } from 'prom-client';
import type { Logger } from '../shared/log.ts';
import { authenticateCaller, type Authenticator, type CallerContext } from './authenticate.ts';
import { CsrError, MAX_CSR_BYTES, parseCsr, type ParsedCsr } from './csr.ts';
import { parseSpiffeId } from './identity.ts';
import { createCaMetrics, type CaMetrics } from './metrics.ts';
import { CaSignError, type CertificateAuthority, type IssuedChain } from './sign.ts';
import { QueueFullError, SlicedWorkQueue } from './work-queue.ts';

export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CA_SERVICE_NAME}/CreateCertificate`;
const PROTOS = path.resolve(import.meta.dirname, '../../protos');

export interface IstioCertificateRequest {
  csr: string;
  /** int64 seconds, as a decimal string (proto-loader `longs: String`). */
  validity_duration: string;
  metadata?: { fields?: Record<string, { stringValue?: string } | undefined> } | null;
}

export interface IstioCertificateResponse {
  cert_chain: string[];
}

let definition: grpc.ServiceDefinition | undefined;

/** The service definition from protos/istio/v1/auth/ca.proto (loaded once). Clients use it too. */
export function caServiceDefinition(): grpc.ServiceDefinition {
  if (definition) return definition;
  const pkg = protoLoader.loadSync('istio/v1/auth/ca.proto', { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTOS] });
  const loaded = grpc.loadPackageDefinition(pkg) as unknown as { istio: { v1: { auth: { IstioCertificateService: grpc.ServiceClientConstructor } } } };
  definition = loaded.istio.v1.auth.IstioCertificateService.service;
  return definition;
}

/** A grpc-js client constructor for the service (tests, tools, the benchmark). */
export function caClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(caServiceDefinition(), CA_SERVICE_NAME);
}

/** Per-process secret that marks calls received on our TLS credentials (see secureServerCredentials). */
const TLS_MARK_KEY = 'x-mizzen-transport-security';
const TLS_MARK = crypto.randomBytes(16).toString('hex');

const markTls: grpc.ServerInterceptor = (_method, call) =>
  new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMetadata: (metadata, nextMetadata) => {
          metadata.remove(TLS_MARK_KEY);
          metadata.set(TLS_MARK_KEY, TLS_MARK);
          nextMetadata(metadata);
        },
      }),
  });

/**
 * Credentials for the 15012 TLS server: identity and trust from `provider` (a ServingCertificateProvider), client
 * certificates requested but optional (a token also authenticates), and TLS calls marked for the CA service.
 */
export function secureServerCredentials(provider: grpc.experimental.CertificateProvider): grpc.ServerCredentials {
  const tls = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  const credentials = grpc.experimental.createServerCredentialsWithInterceptors(tls, [markTls]);
  // grpc-js hands these options to http2.createSecureServer (a tls.Server) and has no setting of its own for the
  // handshake timeout, so Node's 120 s default would let a client that stops mid-ClientHello hold a socket that long.
  const constructorOptions = credentials._getConstructorOptions.bind(credentials);
  credentials._getConstructorOptions = () => {
    const options = constructorOptions();
    return options && { ...options, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS };
  };
  return credentials;
}

/** A TLS handshake not finished in this time is cut off (as the webhook's). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** What a unary call or a stream offers for authentication. */
type CallLike = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'metadata' | 'getAuthContext' | 'getPeer'>;

/** What an authenticated xDS stream proved. */
export interface StreamIdentity {
  namespace: string;
  serviceAccount: string;
  identities: string[];
}

function callerContext(call: CallLike): CallerContext {
  const md = call.metadata;
  const secure = md.get(TLS_MARK_KEY)[0] === TLS_MARK;
  md.remove(TLS_MARK_KEY);
  const auth = call.getAuthContext();
  // grpc-js reports the peer certificate only when the TLS layer verified it against our trust bundle.
  const raw = auth.transportSecurityType === 'ssl' ? auth.sslPeerCertificate?.raw : undefined;
  return { secure, metadata: md, peer: call.getPeer(), ...(raw ? { peerCertificate: raw } : {}) };
}

export interface CaServiceOptions {
  ca: CertificateAuthority;
  /** In order; the first success wins (see authenticate.ts). */
  authenticators: Authenticator[];
  log: Logger;
  /** Where the citadel_server_* metrics go (the monitoring port's registry). */
  registry?: Registry;
  maxCsrBytes?: number;
  /** Answer plaintext callers too (Istio's XDS_AUTH_PLAINTEXT): tests only. */
  allowPlaintext?: boolean;
  /** Requests waiting for the signer beyond this get RESOURCE_EXHAUSTED (default 50,000). */
  maxQueuedRequests?: number;
}

type Callback = grpc.sendUnaryData<IstioCertificateResponse>;

export class CaService {
  readonly metrics: CaMetrics;
  private readonly o: CaServiceOptions;
  private readonly unsubscribe: () => void;
  private readonly queue: SlicedWorkQueue;

  constructor(options: CaServiceOptions) {
    this.o = options;
    this.queue = new SlicedWorkQueue({ maxLength: options.maxQueuedRequests ?? 50_000 });
    this.metrics = createCaMetrics(options.registry ?? new Registry());
    this.updateExpiryGauges();
    this.unsubscribe = options.ca.onChange(() => this.updateExpiryGauges());
  }

  get definition(): grpc.ServiceDefinition {
    return caServiceDefinition();
  }

  get implementation(): grpc.UntypedServiceImplementation {
    return {
      CreateCertificate: (call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, callback: Callback) => {
        this.createCertificate(call, callback).catch((err) => {
          this.o.log.error({ err: (err as Error).message, peer: call.getPeer() }, 'CreateCertificate failed unexpectedly');
          callback({ code: grpc.status.INTERNAL, details: 'internal error' });
        });
      },
    };
  }

  /** Adds the service to a grpc.Server (the 15012 TLS server). */
  register(server: grpc.Server): void {
    server.addService(this.definition, this.implementation);
  }

  close(): void {
    this.unsubscribe();
  }

  private updateExpiryGauges(): void {
    const b = this.o.ca.bundle;
    // The newest root (root-cert.pem lists it first); older roots only linger for a rotation overlap.
    this.metrics.rootExpiry.set(Math.floor(b.roots[0]!.validToDate.getTime() / 1000));
    this.metrics.chainExpiry.set(Math.floor(Math.min(b.signingCert.validToDate.getTime(), ...b.intermediates.map((c) => c.validToDate.getTime())) / 1000));
  }

  /**
   * Authenticates an xDS stream on the TLS port with the same authenticator chain (AdsServer.register's
   * `authenticate`): resolves to the proven namespace and service account, which the mesh provider checks against the
   * node's claims (istiod's xDS identity check); rejects (→ UNAUTHENTICATED) with the reason, for the log.
   */
  async authenticateStream(call: CallLike): Promise<StreamIdentity> {
    const auth = await authenticateCaller(this.o.authenticators, callerContext(call), { allowPlaintext: this.o.allowPlaintext ?? false });
    if (!auth.ok) throw new Error(`${auth.label}: ${auth.reasons.join('; ')}`);
    for (const id of auth.caller.identities) {
      const parsed = parseSpiffeId(id);
      if (parsed) return { namespace: parsed.namespace, serviceAccount: parsed.serviceAccount, identities: auth.caller.identities };
    }
    throw new Error(`no SPIFFE workload identity among ${JSON.stringify(auth.caller.identities)}`);
  }

  private async createCertificate(call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, callback: Callback): Promise<void> {
    const { log, ca } = this.o;
    const m = this.metrics;
    m.csrCount.inc();
    const ctx = callerContext(call);
    const auth = await authenticateCaller(this.o.authenticators, ctx, { allowPlaintext: this.o.allowPlaintext ?? false });
    if (!auth.ok) {
      m.authnFailures.inc({ error: auth.label });
      log.warn({ peer: ctx.peer, error: auth.label, reasons: auth.reasons }, 'CSR refused: caller not authenticated');
      return callback({ code: grpc.status.UNAUTHENTICATED, details: 'request authenticate failure' });
    }
    const caller = auth.caller;
    const req = call.request;
    // Impersonation (ztunnel asking for a pod's identity) needs CA_TRUSTED_NODE_ACCOUNTS + node authorization, which
    // mizzen does not implement: refuse it rather than ignore it.
    if (req.metadata?.fields?.ImpersonatedIdentity?.stringValue) {
      m.authnFailures.inc({ error: 'impersonation' });
      log.warn({ peer: ctx.peer, caller: caller.identities }, 'CSR refused: impersonation is not supported');
      return callback({ code: grpc.status.UNAUTHENTICATED, details: 'request impersonation authentication failure' });
    }
    const ttl = Number(req.validity_duration ?? 0);
    const maxBytes = this.o.maxCsrBytes ?? MAX_CSR_BYTES;
    let outcome: { csr: ParsedCsr; issued: IssuedChain } | { parseError: unknown; csr?: undefined } | { signError: unknown; csr: ParsedCsr };
    try {
      // Verification and signing are the CPU-bound part: FIFO, in time slices (see work-queue.ts).
      outcome = await this.queue.run(() => {
        let csr: ParsedCsr;
        try {
          csr = parseCsr(req.csr, { maxBytes });
        } catch (parseError) {
          return { parseError };
        }
        try {
          return { csr, issued: ca.signCsr(csr, caller.identities, ttl) };
        } catch (signError) {
          return { csr, signError };
        }
      });
    } catch (err) {
      if (!(err instanceof QueueFullError)) throw err;
      m.csrSignErrors.inc({ error: 'overloaded' });
      log.warn({ peer: ctx.peer, caller: caller.identities, waiting: this.queue.length }, 'CSR refused: signing queue full');
      return callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'CA overloaded, retry later' });
    }
    if ('parseError' in outcome) {
      const err = outcome.parseError;
      const reason = err instanceof CsrError ? err.reason : 'internal';
      m.csrParsingErrors.inc({ error: reason });
      log.warn({ peer: ctx.peer, caller: caller.identities, error: reason, detail: (err as Error).message }, 'CSR refused: CSR parsing error');
      return callback({ code: grpc.status.INVALID_ARGUMENT, details: 'CSR parsing error' });
    }
    const { csr } = outcome;
    if ('signError' in outcome) {
      const err = outcome.signError;
      const reason = err instanceof CaSignError ? err.reason : 'internal';
      if (reason === 'no_identity') m.idExtractionErrors.inc({ error: reason });
      else m.csrSignErrors.inc({ error: reason });
      log.warn({ peer: ctx.peer, caller: caller.identities, error: reason, detail: (err as Error).message, ttl }, 'CSR refused: signing error');
      if (reason === 'ttl') return callback({ code: grpc.status.INVALID_ARGUMENT, details: `CSR signing error: requested TTL exceeds the maximum of ${ca.maxTtlSec}s` });
      return callback({ code: grpc.status.INTERNAL, details: 'CSR signing error' });
    }
    const { issued } = outcome;
    m.success.inc();
    log.debug({ peer: ctx.peer, identities: caller.identities, via: caller.authenticator, key: csr.keyDescription, serial: issued.serialHex, notAfter: issued.notAfter.toISOString() }, 'certificate issued');
    callback(null, { cert_chain: issued.chain });
  }
}
