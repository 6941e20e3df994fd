/**
 * A real kube-apiserver backed by a real etcd for the integration tests, with no Docker and no downloaded binaries:
 * both are built once from the Go module proxy by test/infra/kube-binaries.sh into a cache outside the repo
 * ($MIZZEN_TEST_CACHE or ~/.cache/mizzen-test, see shared/reference/test-infra.md §1, §2, §8, §9).
 *
 * Each startKubeApiserver() call gets its own temp dir, etcd (free loopback ports, --unsafe-no-fsync) and apiserver
 * (free 127.0.0.1 port) and an admin bearer token in group system:masters. No controller-manager or scheduler runs,
 * so there are no default ServiceAccounts, no Endpoints controllers and no garbage collection; the ServiceAccount
 * admission plugin is disabled for that reason. stop() ends both process groups and removes the temp dir.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { which } from './which.ts';

export const KUBE_BINARIES_SCRIPT = fileURLToPath(new URL('./kube-binaries.sh', import.meta.url));

export interface KubeApiserver {
  /** A kubeconfig (context `mizzen-test`, user `admin`, bearer token) for KubeConfig.loadFromFile or kubectl. */
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** Bearer token of user `admin` in group `system:masters`. */
  token: string;
  /** PEM of the CA that signed the serving cert (also in the kubeconfig), or undefined when TLS is not verified. */
  ca: string | undefined;
  /** The temp dir holding the logs (etcd.log, kube-apiserver.log), keys and kubeconfig; removed by stop(). */
  dir: string;
  /** Kills both processes (their whole process groups) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface KubeApiserverOptions {
  /** Extra kube-apiserver flags, appended last (e.g. `--feature-gates=...`). */
  extraArgs?: string[];
  /** How long to wait for /readyz once the binaries exist (default 90 s). */
  readyTimeoutMs?: number;
}

function cacheDir(): string {
  return path.join(process.env.MIZZEN_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'mizzen-test'), 'kube', 'bin');
}


/** Why no apiserver can be had here (no built binaries and no Go to build them), or undefined when one can. */
export function kubeApiserverUnavailable(): string | undefined {
  const bin = cacheDir();
  if (fs.existsSync(path.join(bin, 'kube-apiserver')) && fs.existsSync(path.join(bin, 'etcd'))) return undefined;
  if (!which('go')) return 'no kube-apiserver/etcd built in the test cache, and no Go toolchain to build them';
  return undefined;
}

/**
 * Builds the binaries if they are missing (or stale for the pinned versions): runs kube-binaries.sh to completion,
 * its progress on our stderr. That can take many minutes the first time; the script is a no-op afterwards. It runs
 * as an awaited child, not spawnSync, so a vitest worker's event loop stays alive during a long build.
 */
export async function ensureKubeBinaries(): Promise<{ apiserver: string; etcd: string }> {
  const started = Date.now();
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('bash', [KUBE_BINARIES_SCRIPT], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`${KUBE_BINARIES_SCRIPT} exited with ${code} after ${Math.round((Date.now() - started) / 1000)}s (its output is above)`);
  const bin = cacheDir();
  return { apiserver: path.join(bin, 'kube-apiserver'), etcd: path.join(bin, 'etcd') };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Serving CA + cert for 127.0.0.1 with the openssl CLI; undefined when there is no openssl (the apiserver then
 * generates a self-signed cert in --cert-dir and the kubeconfig skips verification). */
function servingCert(dir: string): { ca: string; cert: string; key: string } | undefined {
  const openssl = which('openssl');
  if (!openssl) return undefined;
  const f = (n: string) => path.join(dir, n);
  fs.writeFileSync(f('serving.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
    '',
  ].join('\n'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const steps = [
    ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '30', '-subj', '/CN=mizzen-test-ca'],
    ['req', ...ec, '-keyout', f('serving.key'), '-out', f('serving.csr'), '-subj', '/CN=kube-apiserver'],
    ['x509', '-req', '-in', f('serving.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`,
      '-days', '30', '-extfile', f('serving.ext'), '-out', f('serving.crt')],
  ];
  for (const args of steps) {
    const r = spawnSync(openssl, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  }
  return { ca: fs.readFileSync(f('ca.crt'), 'utf8'), cert: f('serving.crt'), key: f('serving.key') };
}

function startProcess(bin: string, args: string[], log: string): ChildProcess {
  const fd = fs.openSync(log, 'a');
  try {
    // detached: its own process group, so stop() can end anything it forks too.
    return spawn(bin, args, { stdio: ['ignore', fd, fd], detached: true });
  } finally {
    fs.closeSync(fd);
  }
}

async function killGroup(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), sig);
    } catch {
      // already gone
    }
  };
  kill('SIGTERM');
  const timer = setTimeout(() => kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  kill('SIGKILL'); // stragglers in the group, if any
}

function get(url: string, opts: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { ...opts, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Polls `url` until it answers 200, failing early when one of `procs` exits. */
async function waitFor200(what: string, url: string, opts: https.RequestOptions, procs: ChildProcess[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    const dead = procs.find((p) => p.exitCode !== null || p.signalCode !== null);
    if (dead) throw new Error(`${what}: ${path.basename(dead.spawnfile)} exited (${dead.exitCode ?? dead.signalCode}) while waiting`);
    try {
      const r = await get(url, opts);
      if (r.status === 200) return;
      last = `HTTP ${r.status}: ${r.body.trim().split('\n').filter((l) => l.includes('failed')).join('; ') || r.body.trim().slice(0, 300)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms (last: ${last})`);
    await sleep(200);
  }
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test process that dies without calling stop() must not leave etcd/apiserver behind.
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
}

export async function startKubeApiserver(options: KubeApiserverOptions = {}): Promise<KubeApiserver> {
  const bins = await ensureKubeBinaries();
  installExitHook();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-kube-'));
  const f = (n: string) => path.join(dir, n);
  const procs: ChildProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const p of [...procs].reverse()) {
      await killGroup(p);
      live.delete(p);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    // --- keys, certs, tokens ---
    const token = crypto.randomBytes(24).toString('hex');
    fs.writeFileSync(f('tokens.csv'), `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
    const sa = crypto.generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    fs.writeFileSync(f('sa.pub'), sa.publicKey);
    fs.writeFileSync(f('sa.key'), sa.privateKey, { mode: 0o600 });
    fs.mkdirSync(f('pki'));
    const tls = servingCert(f('pki'));

    // --- etcd ---
    const [etcdClient, etcdPeer, securePort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = startProcess(bins.etcd, [
      '--name=mizzen-test', `--data-dir=${f('etcd')}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`, `--initial-cluster=mizzen-test=${peerUrl}`,
      '--unsafe-no-fsync', '--log-level=warn',
    ], f('etcd.log'));
    procs.push(etcd);
    live.add(etcd);
    await waitFor200('etcd', `${etcdUrl}/health`, {}, [etcd], 30_000);

    // --- kube-apiserver ---
    const server = `https://127.0.0.1:${securePort}`;
    const apiserver = startProcess(bins.apiserver, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1', `--secure-port=${securePort}`, `--cert-dir=${f('pki')}`,
      ...(tls ? [`--tls-cert-file=${tls.cert}`, `--tls-private-key-file=${tls.key}`] : []),
      // No default route here, and loopback is rejected for the `kubernetes` Endpoints: a TEST-NET address, unreconciled.
      '--advertise-address=192.0.2.10', '--endpoint-reconciler-type=none',
      `--token-auth-file=${f('tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${f('sa.pub')}`, `--service-account-signing-key-file=${f('sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16', '--allow-privileged=true',
      '--enable-aggregator-routing=true',
      // No controller-manager creates the default ServiceAccount that this plugin insists on.
      '--disable-admission-plugins=ServiceAccount',
      '--profiling=false',
      ...(options.extraArgs ?? []),
    ], f('kube-apiserver.log'));
    procs.push(apiserver);
    live.add(apiserver);
    const auth = { headers: { Authorization: `Bearer ${token}` }, ...(tls ? { ca: tls.ca } : { rejectUnauthorized: false }) };
    await waitFor200('kube-apiserver /readyz', `${server}/readyz`, auth, [etcd, apiserver], options.readyTimeoutMs ?? 90_000);

    // --- kubeconfig ---
    const cluster = tls
      ? `    certificate-authority-data: ${Buffer.from(tls.ca).toString('base64')}`
      : '    insecure-skip-tls-verify: true';
    const kubeconfigPath = f('kubeconfig');
    fs.writeFileSync(kubeconfigPath, [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: mizzen-test',
      '  cluster:',
      `    server: ${server}`,
      cluster,
      'users:',
      '- name: admin',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: mizzen-test',
      '  context:',
      '    cluster: mizzen-test',
      '    user: admin',
      'current-context: mizzen-test',
      '',
    ].join('\n'), { mode: 0o600 });

    return { kubeconfigPath, server, token, ca: tls?.ca, dir, stop };
  } catch (e) {
    const logs = ['etcd.log', 'kube-apiserver.log']
      .filter((n) => fs.existsSync(f(n)))
      .map((n) => `--- ${n} (tail) ---\n${tail(f(n))}`)
      .join('\n');
    await stop();
    throw new Error(`${(e as Error).message}\n${logs}`, { cause: e });
  }
}
