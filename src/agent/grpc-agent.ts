/**
 * Proxyless mode (Istio's `grpc-agent` template, injection-and-proxyless.md B4): no Envoy; the agent writes the gRPC
 * xDS bootstrap to GRPC_XDS_BOOTSTRAP and the workload's key, chain and roots into OUTPUT_CERTS, where the
 * bootstrap's `file_watcher` certificate provider (gRFC A29) reads them. Files are replaced atomically (temp file +
 * rename in the same directory), and only when their content changed (security/pkg/nodeagent/util
 * OutputKeyCertToDir), so a watcher never reads half a PEM and an unchanged rotation does not touch them.
 *
 * Difference from Istio: Istio points `xds_servers` at the agent's local xDS proxy (`unix:///etc/istio/proxy/XDS`),
 * which forwards to istiod:15012 with the workload's token. mizzen's agent has no xDS proxy yet, and grpc-js's
 * bootstrap cannot speak TLS to the control plane (channel_creds: `insecure` or `google_default` only), so the
 * bootstrap names the plaintext xDS port (XDS_ADDR, default istiod.istio-system.svc:15010), as Istio's
 * `grpc-simple` template does. The xDS stream is then unauthenticated: mizzen serves such streams no secrets.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../shared/log.ts';
import type { SecretSource, WorkloadSecret } from './cert-manager.ts';
import type { AgentConfig } from './config.ts';

/** Istio's file names (pkg/config/constants: KeyFilename, CertChainFilename, RootCertFilename). */
export const KEY_FILE = 'key.pem';
export const CERT_CHAIN_FILE = 'cert-chain.pem';
export const ROOT_CERT_FILE = 'root-cert.pem';
/** Istio's inbound listener name template (pkg/istio-agent/grpcxds/grpc_bootstrap.go); gRPC fills in `ip:port`. */
export const SERVER_LISTENER_TEMPLATE = 'xds.istio.io/grpc/lds/inbound/%s';

export type GrpcBootstrapInput = Pick<AgentConfig, 'nodeId' | 'nodeMetadata' | 'xdsAddress' | 'outputCertsDir'> & {
  locality?: { region?: string; zone?: string; sub_zone?: string };
  /** file_watcher's poll period (Istio: 900s; renewal happens at half of a 24 h lifetime, so minutes do not matter). */
  refreshInterval?: string;
};

/** The bootstrap gRPC reads (GenerateBootstrap); see the module comment for `xds_servers`. */
export function buildGrpcBootstrap(input: GrpcBootstrapInput): Record<string, unknown> {
  const certs = input.outputCertsDir;
  return {
    // Plaintext to mizzen's 15010: no agent xDS proxy yet (module comment).
    xds_servers: [{ server_uri: input.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: input.nodeId,
      metadata: { ...input.nodeMetadata, GENERATOR: 'grpc' },
      // grpc-js refuses a bootstrap without node.locality (B5); Istio's testdata carries an empty one.
      locality: input.locality ?? {},
    },
    ...(certs
      ? {
          certificate_providers: {
            default: {
              plugin_name: 'file_watcher',
              config: {
                certificate_file: path.join(certs, CERT_CHAIN_FILE),
                private_key_file: path.join(certs, KEY_FILE),
                ca_certificate_file: path.join(certs, ROOT_CERT_FILE),
                refresh_interval: input.refreshInterval ?? '900s',
              },
            },
          },
        }
      : {}),
    server_listener_resource_name_template: SERVER_LISTENER_TEMPLATE,
  };
}

/**
 * Writes `content` to `file` through a temporary file in the same directory and a rename (atomic on POSIX), unless
 * the file already holds exactly that. Returns whether it wrote.
 */
export async function writeFileIfChanged(file: string, content: string | Buffer, mode: number): Promise<boolean> {
  const bytes = typeof content === 'string' ? Buffer.from(content) : content;
  try {
    if ((await fs.readFile(file)).equals(bytes)) return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fs.writeFile(tmp, bytes, { mode, flag: 'wx' });
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  return true;
}

/** Writes the bootstrap file (creating its directory). Returns whether it changed. */
export async function writeGrpcBootstrap(file: string, bootstrap: Record<string, unknown>): Promise<boolean> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  return writeFileIfChanged(file, `${JSON.stringify(bootstrap, null, 2)}\n`, 0o644);
}

/** Writes a secret's three files into `dir`. The key first, so a reader never pairs a new chain with an old key for long. */
export async function writeCertFiles(dir: string, secret: WorkloadSecret): Promise<string[]> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const files: Array<[string, string, number]> = [
    [KEY_FILE, secret.privateKeyPem, 0o600],
    [CERT_CHAIN_FILE, secret.certChainPem, 0o644],
    [ROOT_CERT_FILE, secret.rootCertPem, 0o644],
  ];
  for (const [name, content, mode] of files) if (await writeFileIfChanged(path.join(dir, name), content, mode)) written.push(name);
  return written;
}

export interface OutputCertsOptions {
  dir: string;
  source: SecretSource;
  log: Logger;
}

/** Keeps OUTPUT_CERTS in step with the secret source; writes are serialized so an older secret never lands last. */
export class OutputCertsWriter {
  private readonly o: OutputCertsOptions;
  private unsubscribe: (() => void) | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(options: OutputCertsOptions) {
    this.o = options;
  }

  /** Writes the current secret (if any) and follows changes. */
  async start(): Promise<void> {
    this.unsubscribe = this.o.source.onChange((s) => void this.write(s));
    const current = this.o.source.current();
    if (current) await this.write(current);
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Resolves when every write queued so far is done. */
  flushed(): Promise<void> {
    return this.chain;
  }

  private write(secret: WorkloadSecret): Promise<void> {
    this.chain = this.chain.then(async () => {
      try {
        const written = await writeCertFiles(this.o.dir, secret);
        if (written.length > 0) this.o.log.info({ dir: this.o.dir, files: written, serial: secret.serialNumber }, 'workload certificate files written');
      } catch (err) {
        this.o.log.error({ dir: this.o.dir, err: (err as Error).message }, 'cannot write the workload certificate files');
      }
    });
    return this.chain;
  }
}

export interface ProxylessOutputs {
  writer: OutputCertsWriter | undefined;
  stop(): void;
}

/**
 * Proxyless mode's outputs: the bootstrap file, and OUTPUT_CERTS kept current. Call after CertManager.start(); the
 * certificate files appear with the first certificate (wait with certManager.whenReady() + writer.flushed()).
 */
export async function startProxylessOutputs(config: GrpcBootstrapInput & Pick<AgentConfig, 'grpcBootstrapPath'>, source: SecretSource, log: Logger): Promise<ProxylessOutputs> {
  if (config.grpcBootstrapPath) {
    const changed = await writeGrpcBootstrap(config.grpcBootstrapPath, buildGrpcBootstrap(config));
    log.info({ file: config.grpcBootstrapPath, changed, xds: config.xdsAddress }, 'gRPC xDS bootstrap written');
  }
  let writer: OutputCertsWriter | undefined;
  if (config.outputCertsDir) {
    writer = new OutputCertsWriter({ dir: config.outputCertsDir, source, log });
    await writer.start();
  }
  return { writer, stop: () => writer?.stop() };
}
