/**
 * The agent's SDS server (src/agent/sds-server.ts) on a real unix socket, driven by a gRPC client built independently
 * from Envoy's sds.proto (proto-loader), with a fake secret source: subscribe to `default` + `ROOTCA`, ACK, NACK,
 * stale nonces, pushes on rotation, unknown names, Delta and Fetch, and the socket's permissions.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SecretSource, WorkloadSecret } from '../../src/agent/cert-manager.ts';
import { SdsServer } from '../../src/agent/sds-server.ts';
import { CaKeyCertBundle } from '../../src/ca/bundle.ts';
import { createCsr, parseCsr } from '../../src/ca/csr.ts';
import { newSelfSignedMaterial } from '../../src/ca/init.ts';
import { privateKeyToPem } from '../../src/ca/keys.ts';
import { CertificateAuthority } from '../../src/ca/sign.ts';
import { decodeResource } from '../../src/proto/encode.ts';
import { createLogger } from '../../src/shared/log.ts';

const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const ID = 'spiffe://cluster.local/ns/shop/sa/inventory';

// ---- an SDS client from Envoy's own service definition ----
const require = createRequire(import.meta.url);
const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const sdsPackage = protoLoader.loadSync('envoy/service/secret/v3/sds.proto', {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)),
});
const SdsClient = (grpc.loadPackageDefinition(sdsPackage) as any).envoy.service.secret.v3.SecretDiscoveryService as grpc.ServiceClientConstructor;

interface Response {
  version_info: string;
  nonce: string;
  type_url: string;
  secrets: Record<string, any>;
}

/** One SotW stream: requests go out, responses queue up. */
class SotwStream {
  readonly responses: Response[] = [];
  private readonly waiters: Array<() => void> = [];
  readonly call: grpc.ClientDuplexStream<any, any>;
  constructor(client: grpc.Client) {
    this.call = (client as any).StreamSecrets();
    this.call.on('data', (r: any) => {
      this.responses.push({
        version_info: r.version_info,
        nonce: r.nonce,
        type_url: r.type_url,
        secrets: Object.fromEntries(r.resources.map((a: any) => {
          expect(a.type_url).toBe(SECRET_TYPE);
          const s = decodeResource(SECRET_TYPE, a.value);
          return [s.name, s];
        })),
      });
      this.waiters.splice(0).forEach((w) => w());
    });
    this.call.on('error', () => {});
  }
  send(req: { names: string[]; version?: string; nonce?: string; error?: string; node?: string }): void {
    this.call.write({
      ...(req.node ? { node: { id: req.node } } : {}),
      type_url: SECRET_TYPE,
      resource_names: req.names,
      version_info: req.version ?? '',
      response_nonce: req.nonce ?? '',
      ...(req.error ? { error_detail: { code: 3, message: req.error } } : {}),
    });
  }
  /** The n-th response (0-based), waiting up to 5 s. */
  async response(n: number): Promise<Response> {
    const end = Date.now() + 5000;
    while (this.responses.length <= n) {
      if (Date.now() > end) throw new Error(`no response #${n}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.responses[n]!;
  }
  /** Fails if any response beyond the first `count` arrives within `ms`. */
  async quiet(count: number, ms = 300): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    expect(this.responses).toHaveLength(count);
  }
}

const pem = (b64: string) => Buffer.from(b64, 'base64').toString();

// ---- a secret source we drive by hand ----
class FakeSource implements SecretSource {
  private secret: WorkloadSecret | undefined;
  private readonly listeners = new Set<(s: WorkloadSecret) => void>();
  current() {
    return this.secret;
  }
  onChange(l: (s: WorkloadSecret) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  set(s: WorkloadSecret): void {
    this.secret = s;
    for (const l of this.listeners) l(s);
  }
}

const ca = new CertificateAuthority(CaKeyCertBundle.load(newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: 'ec' })));
function issue(): WorkloadSecret {
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const issued = ca.signCsr(parseCsr(createCsr(key)), [ID], 3600);
  const leaf = new crypto.X509Certificate(issued.leaf);
  return {
    privateKeyPem: privateKeyToPem(key),
    certChainPem: issued.chain.slice(0, -1).join(''),
    rootCertPem: issued.chain.at(-1)!,
    identity: ID,
    serialNumber: leaf.serialNumber,
    notBefore: leaf.validFromDate,
    notAfter: leaf.validToDate,
    fetchedAt: Date.now(),
  };
}

const logLines: string[] = [];
const log = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk, _e, cb) {
      logLines.push(String(chunk));
      cb();
    },
  }),
});

describe('agent SDS server', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-sds-'));
  const socket = path.join(dir, 'var/run/secrets/workload-spiffe-uds/socket');
  const source = new FakeSource();
  let server: SdsServer;
  const clients: grpc.Client[] = [];
  const client = () => {
    const c = new SdsClient(`unix:${socket}`, grpc.credentials.createInsecure());
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    server = new SdsServer({ source, socketPath: socket, log });
    await server.start();
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  afterAll(async () => {
    await server.stop();
    expect(fs.existsSync(socket)).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
    // The key goes to Envoy, never to the log.
    const all = logLines.join('');
    expect(all).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    const key = source.current()?.privateKeyPem;
    if (key) expect(all).not.toContain(Buffer.from(key).toString('base64').slice(30, 80));
  });

  it('the socket is private to the proxy user', () => {
    expect(fs.statSync(socket).isSocket()).toBe(true);
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(socket)).mode & 0o777).toBe(0o700);
  });

  it('a stale socket file left by a previous agent is replaced', async () => {
    const stale = path.join(dir, 'stale/socket');
    fs.mkdirSync(path.dirname(stale));
    fs.writeFileSync(stale, '');
    const other = new SdsServer({ source, socketPath: stale, log });
    await other.start();
    expect(fs.statSync(stale).isSocket()).toBe(true);
    await other.stop();
  });

  it('waits for the first certificate, then sends default and ROOTCA; an ACK gets nothing more', async () => {
    const s = new SotwStream(client());
    s.send({ names: ['default', 'ROOTCA'], node: 'sidecar~10.0.0.1~inventory-0.shop~shop.svc.cluster.local' });
    await s.quiet(0);
    const first = issue();
    source.set(first);
    const r = await s.response(0);
    expect(r.type_url).toBe(SECRET_TYPE);
    expect(r.nonce).not.toBe('');
    expect(Object.keys(r.secrets).sort()).toEqual(['ROOTCA', 'default']);
    const tls = r.secrets.default.tls_certificate;
    expect(pem(tls.certificate_chain.inline_bytes)).toBe(first.certChainPem);
    expect(pem(tls.private_key.inline_bytes)).toBe(first.privateKeyPem);
    expect(pem(r.secrets.ROOTCA.validation_context.trusted_ca.inline_bytes)).toBe(first.rootCertPem);

    s.send({ names: ['default', 'ROOTCA'], version: r.version_info, nonce: r.nonce });
    await s.quiet(1);
    await expectEventually(() => server.streamInfo().some((i) => i.acked === r.version_info && i.nodeId?.startsWith('sidecar~')));
    s.call.end();
  });

  it('pushes a rotation to open streams; a NACK is logged and not answered; the next rotation is pushed again', async () => {
    const s = new SotwStream(client());
    s.send({ names: ['default'] });
    const r0 = await s.response(0);
    expect(Object.keys(r0.secrets)).toEqual(['default']);
    s.send({ names: ['default'], version: r0.version_info, nonce: r0.nonce });
    await expectEventually(() => server.streamInfo().some((i) => i.protocol === 'sotw' && i.acked === r0.version_info && i.names.join() === 'default'));

    const second = issue();
    source.set(second);
    const r1 = await s.response(1);
    expect(r1.version_info).not.toBe(r0.version_info);
    expect(r1.nonce).not.toBe(r0.nonce);
    expect(pem(r1.secrets.default.tls_certificate.certificate_chain.inline_bytes)).toBe(second.certChainPem);

    // The proxy rejects it: nothing is resent (it keeps its last good secret), the NACK is recorded.
    s.send({ names: ['default'], version: r0.version_info, nonce: r1.nonce, error: 'Failed to load private key' });
    await s.quiet(2);
    const info = server.streamInfo().find((i) => i.protocol === 'sotw' && i.nacks === 1)!;
    expect(info.lastNack).toBe('Failed to load private key');
    expect(info.acked).toBe(r0.version_info);
    expect(logLines.join('')).toMatch(/NACKed/);

    source.set(issue());
    const r2 = await s.response(2);
    expect(r2.version_info).not.toBe(r1.version_info);
    s.call.end();
  });

  it('a stale nonce is ignored; a changed subscription is answered', async () => {
    const s = new SotwStream(client());
    s.send({ names: ['ROOTCA'] });
    const r0 = await s.response(0);
    expect(Object.keys(r0.secrets)).toEqual(['ROOTCA']);
    s.send({ names: ['ROOTCA'], version: r0.version_info, nonce: r0.nonce });
    // A request answering an older response (it crossed ours on the wire) changes nothing, even with other names.
    s.send({ names: ['ROOTCA', 'default'], version: r0.version_info, nonce: 'not-the-last-nonce' });
    await s.quiet(1);
    s.send({ names: ['ROOTCA', 'default'], version: r0.version_info, nonce: r0.nonce });
    const r1 = await s.response(1);
    expect(Object.keys(r1.secrets).sort()).toEqual(['ROOTCA', 'default']);
    s.call.end();
  });

  it('a reconnecting proxy is answered even when it already has the version', async () => {
    const s = new SotwStream(client());
    s.send({ names: ['default'] });
    const r0 = await s.response(0);
    s.call.end();
    const again = new SotwStream(client());
    again.send({ names: ['default'], version: r0.version_info });
    expect((await again.response(0)).version_info).toBe(r0.version_info);
    again.call.end();
  });

  it('names the agent does not serve get nothing, and a log line', async () => {
    const s = new SotwStream(client());
    s.send({ names: ['file-cert:/etc/certs/cert.pem~/etc/certs/key.pem'] });
    await s.quiet(0);
    expect(logLines.find((l) => l.includes('does not serve'))).toContain('"name":"file-cert:/etc/certs/cert.pem~/etc/certs/key.pem"');
    // Known names alongside: only those.
    s.send({ names: ['file-cert:/etc/certs/cert.pem~/etc/certs/key.pem', 'ROOTCA'] });
    expect(Object.keys((await s.response(0)).secrets)).toEqual(['ROOTCA']);
    s.call.end();
  });

  it('Delta: sends what the proxy lacks, pushes changes, honours unsubscribe', async () => {
    const c = client() as any;
    const call: grpc.ClientDuplexStream<any, any> = c.DeltaSecrets();
    const got: any[] = [];
    call.on('data', (r: any) => got.push(r));
    call.on('error', () => {});
    const current = source.current()!;
    // Learn ROOTCA's version from a SotW stream, then claim to have it.
    const probe = new SotwStream(client());
    probe.send({ names: ['ROOTCA'] });
    const rootVersion = (await probe.response(0)).version_info;
    probe.call.end();

    call.write({ type_url: SECRET_TYPE, resource_names_subscribe: ['default', 'ROOTCA'], initial_resource_versions: { ROOTCA: rootVersion } });
    await expectEventually(() => got.length === 1);
    expect(got[0].resources.map((r: any) => r.name)).toEqual(['default']);
    const def = decodeResource(SECRET_TYPE, got[0].resources[0].resource.value);
    expect(pem(def.tls_certificate.private_key.inline_bytes)).toBe(current.privateKeyPem);
    call.write({ type_url: SECRET_TYPE, response_nonce: got[0].nonce });

    // A rotation with a new key and the same roots: only `default` changes.
    source.set(issue());
    await expectEventually(() => got.length === 2);
    expect(got[1].resources.map((r: any) => r.name)).toEqual(['default']);
    call.write({ type_url: SECRET_TYPE, response_nonce: got[1].nonce, resource_names_unsubscribe: ['default'] });
    await expectEventually(() => server.streamInfo().some((i) => i.protocol === 'delta' && i.names.join() === 'ROOTCA'));
    source.set(issue());
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toHaveLength(2);
    call.end();
  });

  it('FetchSecrets answers once; an unknown name is NOT_FOUND', async () => {
    const c = client() as any;
    const fetch = (names: string[]) =>
      new Promise<{ err: grpc.ServiceError | null; res: any }>((resolve) => c.FetchSecrets({ type_url: SECRET_TYPE, resource_names: names }, (err: grpc.ServiceError | null, res: any) => resolve({ err, res })));
    const ok = await fetch(['ROOTCA']);
    expect(ok.err).toBeNull();
    expect(decodeResource(SECRET_TYPE, ok.res.resources[0].value).name).toBe('ROOTCA');
    expect((await fetch(['nope'])).err?.code).toBe(grpc.status.NOT_FOUND);
  });
});

async function expectEventually(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 20));
  }
}
