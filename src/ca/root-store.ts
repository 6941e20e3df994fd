/**
 * Where CA material lives. File mode keeps it in a directory (`--ca-dir`); kube mode will keep it in the Secret
 * `istio-ca-secret` (self-signed) or read `cacerts` (plug-in), implementing the same CaStore interface with
 * Create → AlreadyExists → reload (reliability-security.md §8.6) and a resourceVersion-guarded update.
 *
 * Concurrent starters on one directory must agree on one root: the winner is whoever links its fully written key
 * file to `ca-key.pem` first (link(2) fails with EEXIST if the name exists, atomically); the others load the winner's
 * files. Every file is written under a temporary name and renamed (or linked) into place, so readers never see a
 * half-written file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { CaMaterialPem } from './bundle.ts';

export interface CaStore {
  /** For logs: `dir /var/lib/mizzen/ca`, `secret istio-system/istio-ca-secret`. */
  readonly description: string;
  /** Whether this store can create and rotate material (false for a plug-in CA, which the operator owns). */
  readonly writable: boolean;
  /** The stored material, or undefined when there is none yet. */
  load(): Promise<CaMaterialPem | undefined>;
  /** Stores `material` only if nothing is stored; false when another writer got there first (then call load()). */
  create(material: CaMaterialPem): Promise<boolean>;
  /** Replaces the stored certificates (root rotation); the key stays as it is unless it differs. */
  update(material: CaMaterialPem): Promise<void>;
}

export const CaFiles = {
  cert: 'ca-cert.pem',
  key: 'ca-key.pem',
  chain: 'cert-chain.pem',
  root: 'root-cert.pem',
} as const;

/** Kubernetes TLS-secret names Istio also accepts for a plug-in CA (pilot/pkg/bootstrap/istio_ca.go). */
const TlsFiles = { cert: 'tls.crt', key: 'tls.key', root: 'ca.crt' } as const;

const INCOMPLETE_WAIT_MS = 3000;

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function writeTemp(dir: string, name: string, content: string, mode: number): Promise<string> {
  const tmp = path.join(dir, `.${name}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Writes `content` to `dir/name` atomically (temp file + rename). */
export async function writeFileAtomic(dir: string, name: string, content: string, mode = 0o644): Promise<void> {
  const tmp = await writeTemp(dir, name, content, mode);
  try {
    await fs.rename(tmp, path.join(dir, name));
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** mizzen's own CA in a directory: ca-cert.pem, ca-key.pem (0600), root-cert.pem, optional cert-chain.pem. */
export class FileCaStore implements CaStore {
  readonly dir: string;
  readonly writable = true;
  private readonly incompleteWaitMs: number;

  /** `incompleteWaitMs`: how long load() waits for a concurrent creator to finish publishing (default 3 s). */
  constructor(dir: string, options: { incompleteWaitMs?: number } = {}) {
    this.dir = path.resolve(dir);
    this.incompleteWaitMs = options.incompleteWaitMs ?? INCOMPLETE_WAIT_MS;
  }

  get description(): string {
    return `dir ${this.dir}`;
  }

  async load(): Promise<CaMaterialPem | undefined> {
    const deadline = Date.now() + this.incompleteWaitMs;
    for (;;) {
      const [caKey, caCert, rootCerts, certChain] = await Promise.all(
        [CaFiles.key, CaFiles.cert, CaFiles.root, CaFiles.chain].map((f) => readIfExists(path.join(this.dir, f))),
      );
      if (caKey === undefined && caCert === undefined) return undefined;
      if (caKey !== undefined && caCert !== undefined && rootCerts !== undefined) return { caKey, caCert, rootCerts, certChain: certChain ?? '' };
      // A concurrent starter links the key first and renames the certificates in right after: wait for it briefly.
      if (caKey !== undefined && Date.now() < deadline) {
        await sleep(20);
        continue;
      }
      const missing = [caKey === undefined && CaFiles.key, caCert === undefined && CaFiles.cert, rootCerts === undefined && CaFiles.root].filter(Boolean).join(', ');
      throw new Error(`CA directory ${this.dir} is incomplete: ${missing} missing (restore it, or remove the CA files to create a new root)`);
    }
  }

  async create(material: CaMaterialPem): Promise<boolean> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmpKey = await writeTemp(this.dir, CaFiles.key, material.caKey, 0o600);
    try {
      try {
        await fs.link(tmpKey, path.join(this.dir, CaFiles.key));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
      // We own ca-key.pem now; publish the certificates that go with it.
      if (material.certChain) await writeFileAtomic(this.dir, CaFiles.chain, material.certChain);
      await writeFileAtomic(this.dir, CaFiles.root, material.rootCerts);
      await writeFileAtomic(this.dir, CaFiles.cert, material.caCert);
      return true;
    } finally {
      await fs.rm(tmpKey, { force: true });
    }
  }

  async update(material: CaMaterialPem): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const currentKey = await readIfExists(path.join(this.dir, CaFiles.key));
    if (currentKey !== material.caKey) await writeFileAtomic(this.dir, CaFiles.key, material.caKey, 0o600);
    // Trust first: the new root must be in the bundle before anything is signed under it.
    await writeFileAtomic(this.dir, CaFiles.root, material.rootCerts);
    if (material.certChain) await writeFileAtomic(this.dir, CaFiles.chain, material.certChain);
    else await fs.rm(path.join(this.dir, CaFiles.chain), { force: true });
    await writeFileAtomic(this.dir, CaFiles.cert, material.caCert);
  }
}

/**
 * A plug-in CA directory (the `cacerts` Secret mounted at /etc/cacerts, Istio's ROOT_CA_DIR): ca-cert.pem, ca-key.pem,
 * root-cert.pem, cert-chain.pem; or tls.crt, tls.key, ca.crt. Read-only: the operator owns it.
 */
export class PluginCaStore implements CaStore {
  readonly dir: string;
  readonly writable = false;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  get description(): string {
    return `plug-in CA dir ${this.dir}`;
  }

  async load(): Promise<CaMaterialPem | undefined> {
    const read = (f: string) => readIfExists(path.join(this.dir, f));
    const [caCert, caKey, rootCerts, certChain] = await Promise.all([read(CaFiles.cert), read(CaFiles.key), read(CaFiles.root), read(CaFiles.chain)]);
    if (caCert !== undefined || caKey !== undefined) {
      if (caCert === undefined || caKey === undefined || rootCerts === undefined) {
        const missing = [caCert === undefined && CaFiles.cert, caKey === undefined && CaFiles.key, rootCerts === undefined && CaFiles.root].filter(Boolean).join(', ');
        throw new Error(`plug-in CA ${this.dir}: ${missing} missing`);
      }
      return { caCert, caKey, rootCerts, certChain: certChain ?? '' };
    }
    const [tlsCert, tlsKey, caCrt] = await Promise.all([read(TlsFiles.cert), read(TlsFiles.key), read(TlsFiles.root)]);
    if (tlsCert === undefined && tlsKey === undefined) return undefined;
    if (tlsCert === undefined || tlsKey === undefined || caCrt === undefined) {
      const missing = [tlsCert === undefined && TlsFiles.cert, tlsKey === undefined && TlsFiles.key, caCrt === undefined && TlsFiles.root].filter(Boolean).join(', ');
      throw new Error(`plug-in CA ${this.dir}: ${missing} missing`);
    }
    // tls.crt may carry the intermediates after the signing certificate; the bundle loader takes them from there.
    return { caCert: tlsCert, caKey: tlsKey, rootCerts: caCrt, certChain: certChain ?? '' };
  }

  async create(): Promise<boolean> {
    throw new Error(`${this.description} is read-only`);
  }

  async update(): Promise<void> {
    throw new Error(`${this.description} is read-only`);
  }
}
