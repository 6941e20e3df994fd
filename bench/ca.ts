/**
 * `npm run bench:ca`: the CA's cost per certificate.
 *
 * 1. Throughput per core: one thread, pre-generated CSRs, timing only what the CA does per request — parse and verify
 *    the CSR, build and sign the leaf, encode the PEM chain — for a CA key of RSA-2048 and of ECDSA P-256, each with
 *    RSA-2048 and P-256 CSRs. Reported per wall-second and per CPU-second of this thread (the machine may be shared).
 *    Targets: ≥ 1,000/s with an RSA-2048 CA key, ≥ 5,000/s with a P-256 CA key.
 * 2. Mass restart: 10,000 CSRs submitted at once through the real gRPC service over loopback TLS (the server in a
 *    child process, as `mizzen serve` would run it), each call with its own service-account JWT (verified with jose
 *    against a JWKS), over --connections TLS connections opened as part of the burst. Reports p50/p99/max latency
 *    per call, the burst's wall time and the server's CPU time.
 *
 *   npm run bench:ca -- [--seconds 3] [--burst 10000] [--connections 100] [--ca-keys rsa,ec] [--server-cpu-prof DIR]
 */
import { fork, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as jose from 'jose';
import { CaKeyCertBundle } from '../src/ca/bundle.ts';
import { createCsr, parseCsr } from '../src/ca/csr.ts';
import { newSelfSignedMaterial } from '../src/ca/init.ts';
import { startCa } from '../src/ca/runtime.ts';
import { caClientConstructor, type IstioCertificateResponse } from '../src/ca/service.ts';
import { CertificateAuthority } from '../src/ca/sign.ts';
import { silentLogger } from '../src/shared/log.ts';
import { dist, type Dist } from './report.ts';

const { values: flags } = parseArgs({
  options: {
    role: { type: 'string', default: 'bench' },
    seconds: { type: 'string', default: '3' },
    burst: { type: 'string', default: '10000' },
    connections: { type: 'string', default: '100' },
    'ca-keys': { type: 'string', default: 'rsa,ec' },
    'ca-key': { type: 'string', default: 'ec' },
    jwks: { type: 'string', default: '' },
    dir: { type: 'string', default: '' },
    'server-cpu-prof': { type: 'string', default: '' },
  },
});

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const SERVER_NAME = 'istiod.istio-system.svc';
type KeyKind = 'rsa' | 'ec';
const newKey = (k: KeyKind) => (k === 'rsa' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }) : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })).privateKey;

// ---------------------------------------------------------------------------------------------------------------
// Child process: the CA server (startCa + a grpc.Server on loopback TLS), as src/app/server.ts wires it.
if (flags.role === 'server') {
  const runtime = await startCa({ trustDomain: 'cluster.local', caDir: flags.dir, keyType: flags['ca-key'] as KeyKind, tokenJwks: flags.jwks, tokenIssuer: ISSUER, log: silentLogger, rotateRoot: false });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  runtime.service.register(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', runtime.credentials(), (err, p) => (err ? reject(err) : resolve(p))));
  process.on('message', (m: string) => {
    if (m === 'cpu') process.send!({ cpu: process.cpuUsage() });
    if (m === 'stop') {
      server.forceShutdown();
      runtime.stop();
      process.exit(0);
    }
  });
  process.send!({ port, root: runtime.ca.trustBundle().join(''), cpu: process.cpuUsage() });
} else {
  await main();
}

interface ThroughputRow {
  caKey: string;
  csrKey: string;
  n: number;
  perSecond: number;
  perCpuSecond: number;
  usPerCert: { p50: number; p99: number };
  target: number;
}

function throughput(caKey: KeyKind, csrKey: KeyKind, seconds: number): ThroughputRow {
  const ca = new CertificateAuthority(CaKeyCertBundle.load(newSelfSignedMaterial({ trustDomain: 'cluster.local', keyType: caKey })));
  // 64 distinct CSRs, cycled: the CA keeps no per-CSR cache, so reuse costs the same as fresh ones.
  const csrs = Array.from({ length: 64 }, (_, i) => createCsr(newKey(csrKey), { uris: [`spiffe://cluster.local/ns/n${i}/sa/s`] }));
  const ids = ['spiffe://cluster.local/ns/bench/sa/workload'];
  for (let i = 0; i < 200; i++) ca.signCsr(parseCsr(csrs[i % 64]!), ids, 0); // warm-up (JIT)
  const per: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let n = 0;
  while (performance.now() < deadline) {
    const a = performance.now();
    const issued = ca.signCsr(parseCsr(csrs[n % 64]!), ids, 0);
    if (issued.chain.length !== 2) throw new Error('bad chain');
    per.push((performance.now() - a) * 1000);
    n++;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const d = dist(per);
  return {
    caKey: caKey === 'rsa' ? 'RSA-2048' : 'ECDSA P-256',
    csrKey: csrKey === 'rsa' ? 'RSA-2048' : 'ECDSA P-256',
    n,
    perSecond: Math.round(n / wall),
    perCpuSecond: Math.round(n / ((cpu.user + cpu.system) / 1e6)),
    usPerCert: { p50: Math.round(d.p50), p99: Math.round(d.p99) },
    target: caKey === 'rsa' ? 1000 : 5000,
  };
}

interface BurstResult {
  caKey: string;
  csrKey: string;
  calls: number;
  connections: number;
  ok: number;
  errors: Record<string, number>;
  wallMs: number;
  latencyMs: Dist;
  serverCpuMs: number;
  serverCertsPerCpuSecond: number;
}

async function burst(caKey: KeyKind, count: number, connections: number, dir: string, jwksFile: string, signingKey: jose.CryptoKey): Promise<BurstResult> {
  const caDir = path.join(dir, `ca-${caKey}`);
  const child: ChildProcess = fork(import.meta.filename, ['--role', 'server', '--dir', caDir, '--jwks', jwksFile, '--ca-key', caKey], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...process.execArgv, ...(flags['server-cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${flags['server-cpu-prof']}`] : [])],
  });
  const next = <T>() => new Promise<T>((resolve) => child.once('message', (m) => resolve(m as T)));
  const ready = await next<{ port: number; root: string; cpu: NodeJS.CpuUsage }>();

  // Pre-generated: one P-256 key and CSR per workload, and a token per service account (100 of them).
  const csrs = Array.from({ length: count }, () => createCsr(newKey('ec')));
  const tokens = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      new jose.SignJWT({ 'kubernetes.io': { namespace: `ns${i % 10}`, serviceaccount: { name: `sa${i}` } }, sub: `system:serviceaccount:ns${i % 10}:sa${i}` })
        .setProtectedHeader({ alg: 'RS256', kid: 'bench' })
        .setIssuer(ISSUER)
        .setAudience('istio-ca')
        .setExpirationTime('1h')
        .sign(signingKey),
    ),
  );
  const Ctor = caClientConstructor();
  const creds = grpc.credentials.createSsl(Buffer.from(ready.root));
  // A local subchannel pool per client: separate TLS connections, as separate pods would open.
  const clients = Array.from({ length: connections }, () => new Ctor(`127.0.0.1:${ready.port}`, creds, { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME, 'grpc.use_local_subchannel_pool': 1 }));
  const latencies: number[] = new Array(count);
  const errors: Record<string, number> = {};
  let ok = 0;
  const cpu0 = (child.send('cpu'), (await next<{ cpu: NodeJS.CpuUsage }>()).cpu);
  const t0 = performance.now();
  await Promise.all(
    csrs.map((csr, i) => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${tokens[i % tokens.length]}`);
      const start = performance.now();
      return new Promise<void>((resolve) => {
        (clients[i % connections] as unknown as { CreateCertificate: (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: IstioCertificateResponse) => void) => void }).CreateCertificate({ csr, validity_duration: 86400 }, md, (err, res) => {
          latencies[i] = performance.now() - start;
          if (err || !res || res.cert_chain.length !== 2) errors[err ? grpc.status[err.code] : 'bad chain'] = (errors[err ? grpc.status[err.code] : 'bad chain'] ?? 0) + 1;
          else ok++;
          resolve();
        });
      });
    }),
  );
  const wallMs = performance.now() - t0;
  child.send('cpu');
  const cpu1 = (await next<{ cpu: NodeJS.CpuUsage }>()).cpu;
  child.send('stop');
  for (const c of clients) c.close();
  const serverCpuMs = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1000;
  return {
    caKey: caKey === 'rsa' ? 'RSA-2048' : 'ECDSA P-256',
    csrKey: 'ECDSA P-256',
    calls: count,
    connections,
    ok,
    errors,
    wallMs: Math.round(wallMs),
    latencyMs: dist(latencies),
    serverCpuMs: Math.round(serverCpuMs),
    serverCertsPerCpuSecond: Math.round(ok / (serverCpuMs / 1000)),
  };
}

async function main(): Promise<void> {
  const seconds = Number(flags.seconds);
  const caKeys = String(flags['ca-keys']).split(',') as KeyKind[];
  const rows: ThroughputRow[] = [];
  for (const caKey of caKeys) for (const csrKey of ['rsa', 'ec'] as const) rows.push(throughput(caKey, csrKey, seconds));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-bench-ca-'));
  const bursts: BurstResult[] = [];
  try {
    const pair = await jose.generateKeyPair('RS256', { extractable: true });
    const jwksFile = path.join(dir, 'jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await jose.exportJWK(pair.publicKey)), kid: 'bench', alg: 'RS256' }] }));
    for (const caKey of caKeys) bursts.push(await burst(caKey, Number(flags.burst), Number(flags.connections), dir, jwksFile, pair.privateKey));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  console.log(`CA throughput per core (one thread, parse + verify CSR, build + sign leaf, PEM chain; ${seconds} s each)`);
  console.log(`  ${pad('CA key', 13)}${pad('CSR key', 13)}${pad('certs/s', 10)}${pad('per CPU-s', 11)}${pad('p50 µs', 8)}${pad('p99 µs', 8)}target`);
  for (const r of rows) console.log(`  ${pad(r.caKey, 13)}${pad(r.csrKey, 13)}${pad(r.perSecond, 10)}${pad(r.perCpuSecond, 11)}${pad(r.usPerCert.p50, 8)}${pad(r.usPerCert.p99, 8)}≥ ${r.target} ${r.perCpuSecond >= r.target ? 'ok' : 'MISSED'}`);
  console.log(`Mass restart: ${flags.burst} CSRs at once over ${flags.connections} loopback TLS connections (bearer JWT each; server in its own process)`);
  console.log(`  ${pad('CA key', 13)}${pad('ok', 7)}${pad('errors', 9)}${pad('wall ms', 9)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('max ms', 8)}${pad('server CPU ms', 15)}certs/server CPU-s`);
  for (const b of bursts)
    console.log(
      `  ${pad(b.caKey, 13)}${pad(b.ok, 7)}${pad(Object.values(b.errors).reduce((a, x) => a + x, 0), 9)}${pad(b.wallMs, 9)}${pad(Math.round(b.latencyMs.p50), 8)}${pad(Math.round(b.latencyMs.p99), 8)}${pad(Math.round(b.latencyMs.max), 8)}${pad(b.serverCpuMs, 15)}${b.serverCertsPerCpuSecond}`,
    );
  const result = { scale: { node: process.version, cores: os.cpus().length, cpu: os.cpus()[0]?.model, seconds, burst: Number(flags.burst), connections: Number(flags.connections) }, throughput: rows, burst: bursts };
  const out = path.join(import.meta.dirname, 'results');
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, `ca-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`  results: ${path.relative(process.cwd(), file)}`);
}
