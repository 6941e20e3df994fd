/**
 * Proxyless mode's outputs (src/agent/grpc-agent.ts): the gRPC xDS bootstrap in Istio's shape, accepted by
 * grpc-js-xds's own bootstrap validator, and OUTPUT_CERTS written atomically and only when the content changed.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SecretSource, WorkloadSecret } from '../../src/agent/cert-manager.ts';
import { formatConfigErrors, parseAgentConfig } from '../../src/agent/config.ts';
import { buildGrpcBootstrap, OutputCertsWriter, startProxylessOutputs, writeFileIfChanged } from '../../src/agent/grpc-agent.ts';
import { silentLogger } from '../../src/shared/log.ts';

const require = createRequire(import.meta.url);
const { validateBootstrapConfig } = require('@grpc/grpc-js-xds/build/src/xds-bootstrap.js') as { validateBootstrapConfig(obj: unknown): any };

const ENV = {
  POD_NAME: 'inventory-0',
  POD_NAMESPACE: 'shop',
  INSTANCE_IP: '10.1.0.9',
  SERVICE_ACCOUNT: 'inventory',
  ISTIO_META_GENERATOR: 'grpc',
  ISTIO_META_CLUSTER_ID: 'Kubernetes',
  ISTIO_METAJSON_LABELS: '{"app":"inventory"}',
  OUTPUT_CERTS: '/var/lib/istio/data',
  DISABLE_ENVOY: 'true',
  XDS_ADDR: 'mizzen.istio-system.svc:15010',
};

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-grpc-agent-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function secret(n: number, root = 'ROOT'): WorkloadSecret {
  return { privateKeyPem: `KEY ${n}\n`, certChainPem: `CHAIN ${n}\n`, rootCertPem: `${root}\n`, identity: undefined, serialNumber: String(n), notBefore: new Date(), notAfter: new Date(), fetchedAt: 0 };
}

class FakeSource implements SecretSource {
  s: WorkloadSecret | undefined;
  private readonly listeners = new Set<(s: WorkloadSecret) => void>();
  current() {
    return this.s;
  }
  onChange(l: (s: WorkloadSecret) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  set(s: WorkloadSecret) {
    this.s = s;
    this.listeners.forEach((l) => l(s));
  }
}

describe('gRPC bootstrap', () => {
  const parsed = parseAgentConfig(ENV);
  if (!parsed.ok) throw new Error(formatConfigErrors(parsed.errors));
  const config = parsed.value;

  it('has the shape of Istio\'s grpc-agent bootstrap, pointed at the plaintext xDS port', () => {
    expect(buildGrpcBootstrap(config)).toEqual({
      xds_servers: [{ server_uri: 'mizzen.istio-system.svc:15010', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: {
        id: 'sidecar~10.1.0.9~inventory-0.shop~shop.svc.cluster.local',
        metadata: { GENERATOR: 'grpc', CLUSTER_ID: 'Kubernetes', LABELS: { app: 'inventory' }, NAMESPACE: 'shop', NAME: 'inventory-0', INSTANCE_IPS: '10.1.0.9', SERVICE_ACCOUNT: 'inventory' },
        locality: {},
      },
      certificate_providers: {
        default: {
          plugin_name: 'file_watcher',
          config: {
            certificate_file: '/var/lib/istio/data/cert-chain.pem',
            private_key_file: '/var/lib/istio/data/key.pem',
            ca_certificate_file: '/var/lib/istio/data/root-cert.pem',
            refresh_interval: '900s',
          },
        },
      },
      server_listener_resource_name_template: 'xds.istio.io/grpc/lds/inbound/%s',
    });
  });

  it('is accepted by grpc-js-xds\'s bootstrap validator (node.locality, file_watcher, listener template)', () => {
    const info = validateBootstrapConfig(JSON.parse(JSON.stringify(buildGrpcBootstrap(config))));
    expect(info.node.id).toBe(config.nodeId);
    expect(info.serverListenerResourceNameTemplate).toBe('xds.istio.io/grpc/lds/inbound/%s');
    expect(Object.keys(info.certificateProviders)).toEqual(['default']);
    // Without OUTPUT_CERTS there is no provider (and no mTLS), but the bootstrap is still valid.
    expect(validateBootstrapConfig(JSON.parse(JSON.stringify(buildGrpcBootstrap({ ...config, outputCertsDir: undefined })))).certificateProviders).toEqual({});
  });
});

describe('OUTPUT_CERTS and the bootstrap file', () => {
  it('writeFileIfChanged: atomic replacement, untouched when equal', async () => {
    const dir = tmp();
    const file = path.join(dir, 'key.pem');
    expect(await writeFileIfChanged(file, 'one', 0o600)).toBe(true);
    const first = fs.statSync(file);
    expect(first.mode & 0o777).toBe(0o600);
    expect(await writeFileIfChanged(file, 'one', 0o600)).toBe(false);
    expect(fs.statSync(file).ino).toBe(first.ino);
    // A reader holding the old file keeps reading the old content: the new one is a new inode, renamed in.
    const fd = fs.openSync(file, 'r');
    expect(await writeFileIfChanged(file, 'two', 0o600)).toBe(true);
    expect(fs.statSync(file).ino).not.toBe(first.ino);
    expect(fs.readFileSync(fd, 'utf8')).toBe('one');
    fs.closeSync(fd);
    expect(fs.readFileSync(file, 'utf8')).toBe('two');
    expect(fs.readdirSync(dir)).toEqual(['key.pem']);
  });

  it('the writer follows rotations, rewriting only what changed, serialized in order', async () => {
    const dir = path.join(tmp(), 'data');
    const source = new FakeSource();
    const writer = new OutputCertsWriter({ dir, source, log: silentLogger });
    await writer.start();
    expect(fs.existsSync(dir)).toBe(false);
    source.set(secret(1));
    await writer.flushed();
    expect(fs.readdirSync(dir).sort()).toEqual(['cert-chain.pem', 'key.pem', 'root-cert.pem']);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'cert-chain.pem')).mode & 0o777).toBe(0o644);
    const rootIno = fs.statSync(path.join(dir, 'root-cert.pem')).ino;

    // Two rotations back to back: the last one wins; the unchanged root is not rewritten.
    source.set(secret(2));
    source.set(secret(3));
    await writer.flushed();
    expect(fs.readFileSync(path.join(dir, 'key.pem'), 'utf8')).toBe('KEY 3\n');
    expect(fs.readFileSync(path.join(dir, 'cert-chain.pem'), 'utf8')).toBe('CHAIN 3\n');
    expect(fs.statSync(path.join(dir, 'root-cert.pem')).ino).toBe(rootIno);
    source.set(secret(4, 'NEW ROOT'));
    await writer.flushed();
    expect(fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8')).toBe('NEW ROOT\n');
    writer.stop();
    source.set(secret(5));
    await writer.flushed();
    expect(fs.readFileSync(path.join(dir, 'key.pem'), 'utf8')).toBe('KEY 4\n');
  });

  it('startProxylessOutputs writes the bootstrap (creating its folder) and the current certificate', async () => {
    const cwd = tmp();
    const parsed = parseAgentConfig({ ...ENV, OUTPUT_CERTS: 'var/lib/istio/data', GRPC_XDS_BOOTSTRAP: 'etc/istio/proxy/grpc-bootstrap.json' }, { cwd });
    if (!parsed.ok) throw new Error(formatConfigErrors(parsed.errors));
    const source = new FakeSource();
    source.set(secret(1));
    const out = await startProxylessOutputs(parsed.value, source, silentLogger);
    const boot = JSON.parse(fs.readFileSync(path.join(cwd, 'etc/istio/proxy/grpc-bootstrap.json'), 'utf8'));
    expect(boot.certificate_providers.default.config.private_key_file).toBe(path.join(cwd, 'var/lib/istio/data/key.pem'));
    expect(fs.readFileSync(path.join(cwd, 'var/lib/istio/data/key.pem'), 'utf8')).toBe('KEY 1\n');
    out.stop();
    // Written again with the same content: untouched.
    const ino = fs.statSync(path.join(cwd, 'etc/istio/proxy/grpc-bootstrap.json')).ino;
    (await startProxylessOutputs(parsed.value, source, silentLogger)).stop();
    expect(fs.statSync(path.join(cwd, 'etc/istio/proxy/grpc-bootstrap.json')).ino).toBe(ino);
  });
});
