/**
 * The agent's Secret Discovery Service for Envoy (Istio: security/pkg/nodeagent/sds/sdsservice.go): the workload
 * certificate as `default` (tls_certificate, chain and key inline) and the mesh roots as `ROOTCA`
 * (validation_context.trusted_ca), on the unix socket the bootstrap's `sds-grpc` cluster names
 * (istio-xds.md §9; src/xds/builders/bootstrap.ts). `envoy.service.secret.v3.SecretDiscoveryService`:
 * StreamSecrets (SotW, what Envoy uses with `api_type: GRPC`), DeltaSecrets and FetchSecrets.
 *
 * Protocol (Envoy xds_protocol): a SotW response is answered with the request's nonce; a request whose nonce is not
 * the last one sent is stale and ignored; `error_detail` is a NACK: logged, nothing resent until the secret changes
 * (the proxy keeps its last good one). Each rotation is pushed to every stream that named the secret. Names the agent
 * does not have (file-cert:…, another SDS provider's) get nothing, and a log line: an empty SotW response would make
 * Envoy reject the update.
 *
 * The socket is the only access control, as in Istio: created in a 0700 directory (when the agent creates it) and
 * chmod 0600, so only the proxy's user (1337, shared with Envoy) can ask for the private key.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encodeResource } from '../proto/encode.ts';
import { messageType } from '../proto/root.ts';
import { TypeUrl } from '../proto/types.ts';
import type { Logger } from '../shared/log.ts';
import type { SecretSource, WorkloadSecret } from './cert-manager.ts';

/** Istio's SDS names (pkg/security: WorkloadKeyCertResourceName, RootCertReqResourceName). */
export const WORKLOAD_SECRET_NAME = 'default';
export const ROOT_SECRET_NAME = 'ROOTCA';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';

export interface SecretResource {
  name: string;
  version: string;
  bytes: Uint8Array;
}

/** The Envoy Secret messages for a workload secret (proto JSON; bytes base64 as proto3 JSON writes them). */
export function secretMessages(secret: WorkloadSecret): Record<string, object> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return {
    [WORKLOAD_SECRET_NAME]: {
      name: WORKLOAD_SECRET_NAME,
      tls_certificate: { certificate_chain: { inline_bytes: b64(secret.certChainPem) }, private_key: { inline_bytes: b64(secret.privateKeyPem) } },
    },
    [ROOT_SECRET_NAME]: { name: ROOT_SECRET_NAME, validation_context: { trusted_ca: { inline_bytes: b64(secret.rootCertPem) } } },
  };
}

export function secretResources(secret: WorkloadSecret): Map<string, SecretResource> {
  const out = new Map<string, SecretResource>();
  for (const [name, message] of Object.entries(secretMessages(secret))) {
    const r = encodeResource(TypeUrl.Secret, name, message);
    out.set(name, { name, version: r.version, bytes: r.bytes });
  }
  return out;
}

interface SotwRequest {
  version_info: string;
  nodeId: string | undefined;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail: { code: number; message: string } | undefined;
}

interface DeltaRequest {
  nodeId: string | undefined;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail: { code: number; message: string } | undefined;
}

const errorDetail = (e: any) => (e ? { code: e.code ?? 0, message: e.message ?? '' } : undefined);

function decodeSotw(buf: Buffer): SotwRequest {
  const m = messageType('envoy.service.discovery.v3.DiscoveryRequest').decode(buf) as any;
  return {
    version_info: m.version_info ?? '',
    nodeId: m.node?.id || undefined,
    resource_names: [...(m.resource_names ?? [])],
    type_url: m.type_url ?? '',
    response_nonce: m.response_nonce ?? '',
    error_detail: errorDetail(m.error_detail),
  };
}

function decodeDelta(buf: Buffer): DeltaRequest {
  const m = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest').decode(buf) as any;
  return {
    nodeId: m.node?.id || undefined,
    type_url: m.type_url ?? '',
    resource_names_subscribe: [...(m.resource_names_subscribe ?? [])],
    resource_names_unsubscribe: [...(m.resource_names_unsubscribe ?? [])],
    initial_resource_versions: { ...(m.initial_resource_versions ?? {}) },
    response_nonce: m.response_nonce ?? '',
    error_detail: errorDetail(m.error_detail),
  };
}

function encodeSotwResponse(version: string, nonce: string, resources: SecretResource[]): Buffer {
  const type = messageType('envoy.service.discovery.v3.DiscoveryResponse');
  return Buffer.from(type.encode({ version_info: version, resources: resources.map((r) => ({ type_url: TypeUrl.Secret, value: r.bytes })), type_url: TypeUrl.Secret, nonce }).finish());
}

function encodeDeltaResponse(version: string, nonce: string, resources: SecretResource[]): Buffer {
  const type = messageType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
  return Buffer.from(
    type
      .encode({
        system_version_info: version,
        resources: resources.map((r) => ({ name: r.name, version: r.version, resource: { type_url: TypeUrl.Secret, value: r.bytes } })),
        type_url: TypeUrl.Secret,
        nonce,
      })
      .finish(),
  );
}

const identity = (b: Buffer) => b;

/** The service with our request decoders and pre-encoded responses (as src/xds/protocol/server.ts does for ADS). */
export function sdsServiceDefinition(): grpc.ServiceDefinition {
  const method = (name: string, stream: boolean, decode: (b: Buffer) => unknown) => ({
    path: `/${SDS_SERVICE}/${name}`,
    requestStream: stream,
    responseStream: stream,
    requestSerialize: identity,
    requestDeserialize: decode,
    responseSerialize: identity,
    responseDeserialize: identity,
  });
  return {
    StreamSecrets: method('StreamSecrets', true, decodeSotw),
    DeltaSecrets: method('DeltaSecrets', true, decodeDelta),
    FetchSecrets: method('FetchSecrets', false, decodeSotw),
  } as unknown as grpc.ServiceDefinition;
}

/** What one stream has asked for and accepted: for /debug and tests. */
export interface SdsStreamInfo {
  id: number;
  protocol: 'sotw' | 'delta';
  nodeId: string | undefined;
  names: string[];
  /** SotW: the version_info last ACKed. Delta: name → version last sent. */
  acked: string | Record<string, string> | undefined;
  nacks: number;
  lastNack: string | undefined;
}

interface Shared {
  log: Logger;
  resources(): ReadonlyMap<string, SecretResource>;
}

abstract class Stream {
  readonly id: number;
  nodeId: string | undefined;
  nacks = 0;
  lastNack: string | undefined;
  protected nonceCount = 0;
  private readonly warned = new Set<string>();
  protected readonly shared: Shared;
  protected readonly call: grpc.ServerDuplexStream<unknown, Buffer>;

  constructor(id: number, shared: Shared, call: grpc.ServerDuplexStream<unknown, Buffer>) {
    this.id = id;
    this.shared = shared;
    this.call = call;
  }

  abstract push(): void;
  abstract info(): SdsStreamInfo;

  protected nextNonce(): string {
    return `${this.id}-${++this.nonceCount}`;
  }

  protected typeOk(typeUrl: string): boolean {
    if (typeUrl === '' || typeUrl === TypeUrl.Secret) return true;
    this.shared.log.warn({ proxy: this.nodeId, typeUrl }, 'SDS request for a type other than Secret ignored');
    return false;
  }

  protected nack(detail: { code: number; message: string }, version: string | undefined): void {
    this.nacks++;
    this.lastNack = detail.message;
    this.shared.log.warn({ proxy: this.nodeId, version, code: detail.code, error: detail.message }, 'proxy rejected (NACKed) a secret; it keeps its last good one');
  }

  /** The known resources among `names`; unknown names are logged once per stream. */
  protected select(names: Iterable<string>): SecretResource[] {
    const all = this.shared.resources();
    const out: SecretResource[] = [];
    for (const name of names) {
      const r = all.get(name);
      if (r) out.push(r);
      else if (all.size > 0 && !this.warned.has(name)) {
        this.warned.add(name);
        this.shared.log.warn({ proxy: this.nodeId, name }, `SDS request for a secret the agent does not serve (it serves ${WORKLOAD_SECRET_NAME} and ${ROOT_SECRET_NAME}); nothing is sent for it`);
      }
    }
    return out;
  }
}

class SotwStream extends Stream {
  private names: string[] = [];
  private lastNonce: string | undefined;
  private sentVersion: string | undefined;
  private ackedVersion: string | undefined;

  handle(req: SotwRequest): void {
    if (req.nodeId && !this.nodeId) this.nodeId = req.nodeId;
    if (!this.typeOk(req.type_url)) return;
    if (req.response_nonce) {
      // Stale: a response crossed this request on the wire; the proxy will answer that one too.
      if (req.response_nonce !== this.lastNonce) return;
      if (req.error_detail) this.nack(req.error_detail, this.sentVersion);
      else this.ackedVersion = req.version_info;
    }
    const names = [...new Set(req.resource_names)].sort();
    const changed = names.length !== this.names.length || names.some((n, i) => n !== this.names[i]);
    this.names = names;
    // A first request (no nonce) is always answered, even when the proxy already has this version (a reconnect):
    // Envoy waits for an answer before it warms the listener.
    if (!req.response_nonce || changed) this.send(true);
  }

  push(): void {
    this.send(false);
  }

  private send(requested: boolean): void {
    const resources = this.select(this.names);
    if (resources.length === 0) return;
    const version = resources.length === 1 ? resources[0]!.version : combinedVersion(resources);
    if (!requested && version === this.sentVersion) return;
    const nonce = this.nextNonce();
    this.lastNonce = nonce;
    this.sentVersion = version;
    this.call.write(encodeSotwResponse(version, nonce, resources));
    this.shared.log.debug({ proxy: this.nodeId, names: resources.map((r) => r.name), version, nonce }, 'secrets sent');
  }

  info(): SdsStreamInfo {
    return { id: this.id, protocol: 'sotw', nodeId: this.nodeId, names: this.names, acked: this.ackedVersion, nacks: this.nacks, lastNack: this.lastNack };
  }
}

class DeltaStream extends Stream {
  private readonly subscribed = new Set<string>();
  /** What the proxy has (by its initial_resource_versions, then by what we sent). */
  private readonly has = new Map<string, string>();
  private started = false;

  handle(req: DeltaRequest): void {
    if (req.nodeId && !this.nodeId) this.nodeId = req.nodeId;
    if (!this.typeOk(req.type_url)) return;
    if (!this.started) {
      this.started = true;
      for (const [name, version] of Object.entries(req.initial_resource_versions)) this.has.set(name, version);
    }
    if (req.response_nonce && req.error_detail) this.nack(req.error_detail, undefined);
    for (const name of req.resource_names_unsubscribe) {
      this.subscribed.delete(name);
      this.has.delete(name);
    }
    for (const name of req.resource_names_subscribe) this.subscribed.add(name);
    if (req.resource_names_subscribe.length > 0) this.push();
  }

  push(): void {
    const changed = this.select(this.subscribed).filter((r) => this.has.get(r.name) !== r.version);
    if (changed.length === 0) return;
    const nonce = this.nextNonce();
    for (const r of changed) this.has.set(r.name, r.version);
    this.call.write(encodeDeltaResponse(combinedVersion(changed), nonce, changed));
    this.shared.log.debug({ proxy: this.nodeId, names: changed.map((r) => r.name), nonce }, 'secrets sent (delta)');
  }

  info(): SdsStreamInfo {
    return { id: this.id, protocol: 'delta', nodeId: this.nodeId, names: [...this.subscribed].sort(), acked: Object.fromEntries(this.has), nacks: this.nacks, lastNack: this.lastNack };
  }
}

function combinedVersion(resources: SecretResource[]): string {
  const h = createHash('sha1');
  for (const r of [...resources].sort((a, b) => a.name.localeCompare(b.name))) h.update(`${r.name}=${r.version};`);
  return h.digest('base64url').slice(0, 16);
}

export interface SdsServerOptions {
  source: SecretSource;
  /** Absolute path of the unix socket (AgentConfig.sdsSocketPath). */
  socketPath: string;
  log: Logger;
}

export class SdsServer {
  private readonly o: SdsServerOptions;
  private resources: ReadonlyMap<string, SecretResource> = new Map();
  private readonly streams = new Set<Stream>();
  private readonly calls = new Set<grpc.ServerDuplexStream<unknown, Buffer>>();
  private server: grpc.Server | undefined;
  private unsubscribe: (() => void) | undefined;
  private nextId = 0;
  private readonly shared: Shared;

  constructor(options: SdsServerOptions) {
    this.o = options;
    this.shared = { log: options.log, resources: () => this.resources };
  }

  /** Binds the socket (replacing a stale one left by a previous agent) and starts following the secret source. */
  async start(): Promise<void> {
    const socket = path.resolve(this.o.socketPath);
    await fs.mkdir(path.dirname(socket), { recursive: true, mode: 0o700 });
    // A socket file left by a crashed agent would make bind fail (EADDRINUSE); Istio removes it too. rm without
    // `recursive` refuses a directory, so a misconfigured path is not wiped.
    await fs.rm(socket, { force: true });
    const server = new grpc.Server();
    server.addService(sdsServiceDefinition(), {
      StreamSecrets: (call: grpc.ServerDuplexStream<SotwRequest, Buffer>) => this.serve(call, (id) => new SotwStream(id, this.shared, call as never)),
      DeltaSecrets: (call: grpc.ServerDuplexStream<DeltaRequest, Buffer>) => this.serve(call, (id) => new DeltaStream(id, this.shared, call as never)),
      FetchSecrets: (call: grpc.ServerUnaryCall<SotwRequest, Buffer>, callback: grpc.sendUnaryData<Buffer>) => this.fetch(call.request, callback),
    });
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    await fs.chmod(socket, 0o600);
    this.server = server;
    this.unsubscribe = this.o.source.onChange((s) => this.update(s));
    const current = this.o.source.current();
    if (current) this.update(current);
    this.o.log.info({ socket }, 'SDS server listening');
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const call of this.calls) call.end();
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      server.forceShutdown();
    }
    await fs.rm(path.resolve(this.o.socketPath), { force: true });
  }

  /** The open streams (debug, tests). */
  streamInfo(): SdsStreamInfo[] {
    return [...this.streams].map((s) => s.info());
  }

  private update(secret: WorkloadSecret): void {
    this.resources = secretResources(secret);
    for (const s of this.streams) {
      try {
        s.push();
      } catch (err) {
        this.o.log.error({ proxy: s.nodeId, err: (err as Error).message }, 'SDS push failed');
      }
    }
  }

  private serve<R>(call: grpc.ServerDuplexStream<R, Buffer>, make: (id: number) => Stream & { handle(r: R): void }): void {
    const untyped = call as unknown as grpc.ServerDuplexStream<unknown, Buffer>;
    const stream = make(++this.nextId);
    this.streams.add(stream);
    this.calls.add(untyped);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.streams.delete(stream);
      this.calls.delete(untyped);
      this.o.log.debug({ proxy: stream.nodeId, stream: stream.id }, 'SDS stream closed');
    };
    call.on('data', (req: R) => {
      try {
        stream.handle(req);
      } catch (err) {
        this.o.log.error({ proxy: stream.nodeId, err: (err as Error).message }, 'SDS request failed');
        close();
        call.emit('error', { code: grpc.status.INTERNAL, details: 'internal error', metadata: new grpc.Metadata() });
      }
    });
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
    call.on('close', close);
  }

  private fetch(req: SotwRequest, callback: grpc.sendUnaryData<Buffer>): void {
    const resources = req.resource_names.map((n) => this.resources.get(n)).filter((r): r is SecretResource => r !== undefined);
    if (resources.length === 0) return callback({ code: grpc.status.NOT_FOUND, details: `no secret among ${JSON.stringify(req.resource_names)}` });
    callback(null, encodeSotwResponse(combinedVersion(resources), '', resources));
  }
}
