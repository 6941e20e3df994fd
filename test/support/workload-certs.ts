/**
 * Workload certificates from a running mizzen, obtained the way Istio's agent gets them: a fresh key, a CSR, and the
 * real `istio.v1.auth.IstioCertificateService/CreateCertificate` RPC over TLS on the secure port with the workload's
 * Kubernetes service-account token. The result is written like the agent's OUTPUT_CERTS directory (grpc-agent template:
 * `cert-chain.pem`, `key.pem`, `root-cert.pem`; security/pkg/nodeagent/util OutputKeyCertToDir), which is what the
 * grpc bootstrap's `file_watcher` certificate provider reads.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createCsr } from '../../src/ca/csr.ts';
import { caClientConstructor, type IstioCertificateResponse } from '../../src/ca/service.ts';
import type { TestMesh } from './mesh.ts';

/** A name on mizzen's serving certificate (src/ca/serving-cert.ts), as the agent's CA_ADDR would use. */
const CA_SERVER_NAME = 'istiod.istio-system.svc';

export interface WorkloadCerts {
  /** The OUTPUT_CERTS directory. */
  dir: string;
  /** `spiffe://<trust domain>/ns/<ns>/sa/<sa>`, from the issued leaf. */
  spiffeId: string;
  certChainFile: string;
  keyFile: string;
  rootCertFile: string;
  remove(): void;
}

type CaClient = grpc.Client & {
  CreateCertificate(req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: IstioCertificateResponse) => void): void;
};

/**
 * Asks the mesh's CA for a certificate for `<namespace>/<serviceAccount>` (the identity comes from the token, never
 * from the CSR) and writes the agent's three files into a new temporary directory.
 */
export async function workloadCerts(mesh: Pick<TestMesh, 'secureXdsPort' | 'rootPem'>, token: string, ttlSeconds = 3600): Promise<WorkloadCerts> {
  if (!mesh.secureXdsPort) throw new Error('workloadCerts needs a mesh started with `ca`');
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const Ctor = caClientConstructor();
  const client = new Ctor(`127.0.0.1:${mesh.secureXdsPort}`, grpc.credentials.createSsl(Buffer.from(mesh.rootPem())), {
    'grpc.ssl_target_name_override': CA_SERVER_NAME,
    'grpc.default_authority': CA_SERVER_NAME,
  }) as unknown as CaClient;
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  md.set('clusterid', 'Kubernetes');
  let chain: string[];
  try {
    chain = await new Promise<string[]>((resolve, reject) =>
      client.CreateCertificate({ csr: createCsr(key), validity_duration: ttlSeconds }, md, { deadline: Date.now() + 10_000 }, (err, res) =>
        err ? reject(new Error(`CreateCertificate failed: ${err.code} ${err.details}`)) : resolve(res?.cert_chain ?? []),
      ),
    );
  } finally {
    client.close();
  }
  // The response is leaf, intermediates…, and last the root bundle (Istio's CSRSign contract).
  if (chain.length < 2) throw new Error(`CreateCertificate returned ${chain.length} certificate(s)`);
  const leaf = new crypto.X509Certificate(chain[0]!);
  const spiffeId = (leaf.subjectAltName ?? '').split(', ').find((s) => s.startsWith('URI:spiffe://'))?.slice('URI:'.length);
  if (!spiffeId) throw new Error(`issued certificate has no SPIFFE URI: ${leaf.subjectAltName}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-certs-'));
  const certChainFile = path.join(dir, 'cert-chain.pem');
  const keyFile = path.join(dir, 'key.pem');
  const rootCertFile = path.join(dir, 'root-cert.pem');
  // Like the agent: atomic writes (temp file + rename), so a file watcher never reads a half-written PEM.
  const write = (file: string, text: string, mode = 0o644) => {
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, text, { mode });
    fs.renameSync(tmp, file);
  };
  write(certChainFile, chain.slice(0, -1).join(''));
  write(keyFile, key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  write(rootCertFile, chain[chain.length - 1]!);
  return { dir, spiffeId, certChainFile, keyFile, rootCertFile, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
