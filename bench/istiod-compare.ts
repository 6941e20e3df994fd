/**
 * `npm run bench:istiod`: mizzen against a real peer, istiod's `pilot-discovery`, on the same file config and the
 * same load. One mesh (bench/mesh-config.ts: ServiceEntries with STATIC endpoints, a DestinationRule and a
 * VirtualService per service) is written to a folder; each server is started on it in turn (mizzen: `serve --config
 * DIR`; istiod: `discovery --configDir DIR --registries=`, no Kubernetes, or, where that build of istiod cannot run
 * without a kube client, the same with `--registries=Kubernetes` on an empty throwaway kube-apiserver: see
 * startIstiodPeer), and the same load generator
 * (bench/loadgen.ts, N Envoy-sidecar-like ADS streams) measures, per server and per N:
 *   - time until every proxy holds full config (LDS and CDS ACKed, every RDS and EDS name it asked for received);
 *   - the server's RSS (VmRSS idle / after sync / after the changes, VmHWM peak) and CPU seconds;
 *   - VirtualService change → ACK: a VS's weights are edited K times; per proxy, ms from the file write to the ACK
 *     of the route configuration `8080` that carries it (p50/p99 over every (proxy, change) sample).
 * A single probe stream per server first records what each server generates (resource counts and bytes per type), so
 * the figures are read knowing how much config each one sends.
 *
 * pilot-discovery comes from test/infra/istiod-binaries.sh (built from the Go module proxy into the test cache; never
 * in the repo). Without it (not built, or it does not start), the benchmark says exactly why and compares mizzen's
 * figures with the published istiod figures of shared/reference/perf-anchors.md instead, labelled as published.
 *
 *   npm run bench:istiod -- [--services 200] [--endpoints-per-service 5] [--proxies 100,500] [--changes 10]
 *                           [--spacing-ms 1000] [--mode sotw|delta] [--istiod-bin PATH] [--build] [--keep]
 *
 * Prints a table; writes bench/results/istiod-compare.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '../src/proto/types.ts';
import { jsonToStruct } from '../src/xds/protocol/messages.ts';
import { now } from './ads-stream.ts';
import { buildServices, namespacesOf, reweight, writeMesh, type ServiceInfo } from './mesh-config.ts';
import { cpuSecondsOf, freePort, killAll, killAllNow, memoryOf, sleep, startServer, track, waitReady } from './procs.ts';
import { dist, type Dist } from './report.ts';
import { Interner, parseSotwResponse, sidecarRouteNameOf, sotwRequest } from './wire.ts';
import { kubeApiserverUnavailable, startKubeApiserver, type KubeApiserver } from '../test/infra/kube-apiserver.ts';

const { values: flags } = parseArgs({
  options: {
    services: { type: 'string', default: '200' },
    'endpoints-per-service': { type: 'string', default: '5' },
    proxies: { type: 'string', default: '100,500' },
    changes: { type: 'string', default: '10' },
    'spacing-ms': { type: 'string', default: '1000' },
    mode: { type: 'string', default: 'sotw' },
    'proxy-namespaces': { type: 'string', default: '5' },
    'budget-s': { type: 'string', default: '540' },
    'istiod-bin': { type: 'string' },
    build: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const int = (k: keyof typeof flags) => {
  const n = Number(flags[k]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${k} must be a non-negative integer`);
  return n;
};
if (flags.mode !== 'sotw' && flags.mode !== 'delta') throw new Error('--mode must be sotw or delta');
const mode = flags.mode;
const proxyCounts = String(flags.proxies)
  .split(',')
  .map((s) => Number(s.trim()));
if (proxyCounts.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error('--proxies must be a comma-separated list of positive integers');
const spec = { services: int('services'), endpointsPerService: int('endpoints-per-service'), servicesPerNamespace: 20 };
const changes = Math.min(int('changes'), spec.services);
const spacingMs = int('spacing-ms');
const deadline = Date.now() + int('budget-s') * 1000;
const remaining = (capMs: number) => Math.max(1000, Math.min(capMs, deadline - Date.now()));

const ROOT = path.resolve(import.meta.dirname, '..');
const RESULTS = path.join(ROOT, 'bench', 'results');
const CACHE = process.env.MIZZEN_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'mizzen-test');
const ISTIOD_BIN = flags['istiod-bin'] ?? path.join(CACHE, 'istiod', 'bin', 'pilot-discovery');
const log = (m: string) => process.stderr.write(`[istiod-compare ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

type ServerName = 'mizzen' | 'istiod';

/** A started control plane, whichever it is: what the measurement needs to know about it. */
interface Peer {
  name: ServerName;
  pid: number;
  child: ReturnType<typeof spawn>;
  xdsTarget: string;
  logFile: string;
  /** The exact command line, for the report. */
  command: string;
}

/** What one server did under one load. */
interface RunResult {
  server: ServerName;
  proxies: number;
  readyMs?: number;
  /** What a single sidecar gets from this server: resources and bytes per type (first full SotW response of each). */
  generated?: Record<string, { resources: number; bytes: number }>;
  sync?: { allFullMs: number; perProxyMs: Dist; bytesPerProxy: number; responses: Record<string, number>; serverCpuSeconds: number; failedStreams: number };
  change?: { samples: number; missing: number; perProxyMs: Dist; lastAckMs: Dist; serverCpuSecondsPerChange: number };
  memory: { idleMB?: number; afterSyncMB?: number; endMB?: number; peakMB?: number; sampledPeakMB?: number };
  serverCpuSecondsTotal?: number;
  errors: string[];
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Servers

/** Stays out of every istiod run: a kube client would be created from these, and this benchmark is file-only. */
const KUBE_ENV = ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'KUBECONFIG'];

async function startMizzen(configDir: string, workDir: string): Promise<{ peer: Peer; ready: (ms: number) => Promise<void> }> {
  const logFile = path.join(workDir, 'mizzen.log');
  const server = await startServer({ root: ROOT, configDir, logFile, nodeFlags: [] });
  const command = `node src/cli/main.ts serve --config ${configDir} --xds-port ${server.xdsPort} --monitoring-port ${server.monitoringPort} --host 127.0.0.1 --log-level warn`;
  return {
    peer: { name: 'mizzen', pid: server.pid, child: server.child, xdsTarget: `127.0.0.1:${server.xdsPort}`, logFile, command },
    ready: (ms) => waitReady(server, ms),
  };
}

/**
 * How istiod is run. First as the file-only peer the issue asks for: `--registries=` (no Kubernetes service
 * registry; the ServiceEntry registry is always there), `--configDir` for the Istio config, a mesh config file, every
 * listener on loopback and on a free port, and no KUBERNETES_* / KUBECONFIG in its environment, so no kube client is
 * made. If that cannot serve (the istio commit the module proxy serves here panics at startup without a kube client:
 * serviceentry.newController calls multiclusterController.ConfigCluster() on the nil controller that
 * initMulticluster leaves when there is no kube client), istiod is run on the same `--configDir` with
 * `--registries=Kubernetes --kubeconfig` pointing at an EMPTY throwaway kube-apiserver (test/infra/kube-apiserver.ts):
 * the Istio config still comes only from the folder, and the only thing the apiserver adds is the `kubernetes`
 * Service in `default` (one more service in istiod's output) and a few idle informers.
 */
const ISTIOD_ENV = { POD_NAMESPACE: 'istio-system', POD_NAME: 'istiod-bench', ENABLE_CA_SERVER: 'false', PILOT_MAX_REQUESTS_PER_SECOND: '100000' };
const istiodRun: { mode?: 'file-only' | 'file+empty-apiserver'; fileOnlyFailure?: string; kube?: KubeApiserver } = {};

/**
 * istiod's CA falls back to a self-signed debug root (file-only) or istio-ca-secret (kube); ENABLE_CA_SERVER=false
 * keeps it from serving CSRs, which mizzen does not do here either. It runs in a scratch folder: istiod writes a few
 * files relative to its working directory.
 */
async function startIstiod(configDir: string, workDir: string, kube: KubeApiserver | undefined): Promise<{ peer: Peer; ready: (ms: number) => Promise<void> }> {
  const port = async () => `127.0.0.1:${await freePort()}`;
  const addr = { grpc: await port(), http: await port(), secureGrpc: await port(), monitoring: await port(), https: await port() };
  const meshFile = path.join(workDir, 'mesh.yaml');
  fs.writeFileSync(meshFile, 'trustDomain: cluster.local\nrootNamespace: istio-system\n');
  const args = [
    'discovery',
    ...(kube ? ['--registries=Kubernetes', `--kubeconfig=${kube.kubeconfigPath}`] : ['--registries=']),
    `--configDir=${configDir}`,
    `--meshConfig=${meshFile}`,
    `--networksConfig=${path.join(workDir, 'meshNetworks')}`,
    `--grpcAddr=${addr.grpc}`,
    `--httpAddr=${addr.http}`,
    `--secureGRPCAddr=${addr.secureGrpc}`,
    `--monitoringAddr=${addr.monitoring}`,
    `--httpsAddr=${addr.https}`,
    '--log_output_level=default:warn',
  ];
  // PILOT_MAX_REQUESTS_PER_SECOND: istiod admits new xDS streams at min(15 + 5×GOMAXPROCS, 100)/s (25/s on 2 cores)
  // and fails a stream that waited 1 s with RESOURCE_EXHAUSTED, counting on Envoy to reconnect with backoff. The load
  // generator opens every stream at once and does not reconnect, so the limit is lifted; with the default, a cold
  // connect of N proxies has a floor of N/25 s on this machine (500 → 20 s) by design.
  const env: NodeJS.ProcessEnv = { ...process.env, ...ISTIOD_ENV };
  for (const k of KUBE_ENV) delete env[k];
  const logFile = path.join(workDir, 'istiod.log');
  const out = fs.openSync(logFile, 'w');
  const child = track(spawn(ISTIOD_BIN, args, { cwd: workDir, env, stdio: ['ignore', out, out] }));
  fs.closeSync(out);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  if (!child.pid) throw new Error(`could not start ${ISTIOD_BIN}: ${(await spawnError).message}`);
  const command = `${Object.entries(ISTIOD_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} ${ISTIOD_BIN} ${args.join(' ')}  (cwd ${workDir}, no KUBERNETES_*/KUBECONFIG in env)`;
  const ready = async (ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (child.exitCode !== null) throw new Error(`pilot-discovery exited with code ${child.exitCode} before it was ready: ${crash(logFile)}`);
      try {
        const res = await fetch(`http://${addr.http}/ready`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`pilot-discovery was not ready after ${ms} ms; log tail:\n${tail(logFile)}`);
  };
  return { peer: { name: 'istiod', pid: child.pid, child, xdsTarget: addr.grpc, logFile, command }, ready };
}

/** The panic line and its first frames, else the log's tail. */
function crash(logFile: string): string {
  const lines = tail(logFile, 400).split('\n');
  const i = lines.findIndex((l) => l.startsWith('panic:'));
  if (i < 0) return `log tail:\n${lines.slice(-15).join('\n')}`;
  const g = lines.findIndex((l, k) => k > i && l.startsWith('goroutine '));
  return lines.slice(i, i + 1).concat(lines.slice(g + 1, g + 5).map((l) => l.trim())).join(' | ');
}

/** Starts istiod the way that works here (deciding once, file-only first), in `workDir`. */
async function startIstiodPeer(configDir: string, workDir: string): Promise<{ peer: Peer; ready: (ms: number) => Promise<void> }> {
  if (istiodRun.mode === undefined) {
    const tryDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-istiod-fileonly-'));
    try {
      const s = await startIstiod(configDir, tryDir, undefined);
      try {
        await s.ready(remaining(60_000));
        istiodRun.mode = 'file-only';
        return s;
      } catch (err) {
        istiodRun.fileOnlyFailure = err instanceof Error ? err.message : String(err);
        s.peer.child.kill('SIGKILL');
        log(`istiod file-only (--registries=) does not serve: ${istiodRun.fileOnlyFailure}`);
      }
    } finally {
      if (istiodRun.mode !== 'file-only') fs.rmSync(tryDir, { recursive: true, force: true });
    }
    const why = kubeApiserverUnavailable();
    if (why) throw new Error(`istiod file-only failed (${istiodRun.fileOnlyFailure}) and no kube-apiserver to satisfy it: ${why}`);
    log('starting an empty kube-apiserver for istiod (its Istio config still comes from --configDir only)');
    istiodRun.kube = await startKubeApiserver();
    await createNamespace(istiodRun.kube, 'istio-system');
    istiodRun.mode = 'file+empty-apiserver';
  }
  return startIstiod(configDir, workDir, istiodRun.mode === 'file-only' ? undefined : istiodRun.kube);
}

/** POST a Namespace (istiod keeps its leader-election leases and root-cert ConfigMaps there). */
async function createNamespace(kube: KubeApiserver, name: string): Promise<void> {
  const https = await import('node:https');
  const body = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  await new Promise<void>((resolve, reject) => {
    const req = https.request(
      `${kube.server}/api/v1/namespaces`,
      { method: 'POST', headers: { authorization: `Bearer ${kube.token}`, 'content-type': 'application/json' }, ...(kube.ca ? { ca: kube.ca } : { rejectUnauthorized: false }) },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 201 || res.statusCode === 409 ? resolve() : reject(new Error(`create namespace ${name}: HTTP ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const tail = (file: string, lines = 15) => {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
};

// ---------------------------------------------------------------------------------------------------------------
// What a server generates: one SotW sidecar stream, Envoy's order (CDS, LDS, then the EDS and RDS they name)

const sidecarNode = (i: number, ns: string) => {
  const ip = `10.200.${(i >> 8) & 255}.${i & 255}`;
  // The node loadgen.ts sends for --proxy-kind sidecar: istiod needs no more for a sidecar (ISTIO_VERSION absent
  // means "latest"; CLUSTER_ID defaults to Kubernetes on both servers).
  return { id: `sidecar~${ip}~probe-${i}.${ns}~${ns}.svc.cluster.local`, cluster: 'probe', metadata: jsonToStruct({ NAMESPACE: ns, INSTANCE_IPS: ip, LABELS: { app: 'loadgen' } }), locality: {} };
};

async function probe(target: string, ns: string, timeoutMs: number): Promise<Record<string, { resources: number; bytes: number }>> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 256 * 1024 * 1024 });
  const call = client.makeBidiStreamRequest('/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', (b: Buffer) => b, (b: Buffer) => b);
  const got: Record<string, { resources: number; bytes: number }> = {};
  const wanted = new Map<string, number>(); // RDS/EDS: how many names were asked for
  const short = (t: string) => t.slice(t.lastIndexOf('.') + 1);
  const interner = new Interner();
  const lists = new Map<string, string[]>();
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`probe: no full config after ${timeoutMs} ms (got ${JSON.stringify(got)})`)), timeoutMs);
      call.on('error', (err: grpc.ServiceError) => (clearTimeout(timer), reject(new Error(`probe stream failed: ${err.details || err.message}`))));
      const done = () => {
        const complete = [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment].every((t) => {
          const g = got[short(t)];
          return g !== undefined && (!wanted.has(t) || g.resources >= wanted.get(t)!);
        });
        if (complete) {
          clearTimeout(timer);
          resolve(got);
        }
      };
      call.on('data', (buf: Buffer) => {
        const r = parseSotwResponse(buf);
        call.write(sotwRequest(r.typeUrl, r.version, r.nonce, wanted.has(r.typeUrl) ? interner.list(lists.get(r.typeUrl)!) : undefined));
        if (!got[short(r.typeUrl)]) got[short(r.typeUrl)] = { resources: r.names.length, bytes: buf.length };
        else if (wanted.has(r.typeUrl)) got[short(r.typeUrl)] = { resources: r.names.length, bytes: buf.length };
        const subscribe = (typeUrl: string, names: string[]) => {
          wanted.set(typeUrl, names.length);
          lists.set(typeUrl, names);
          call.write(sotwRequest(typeUrl, '', '', interner.list(names)));
        };
        if (r.typeUrl === TypeUrl.Cluster && !wanted.has(TypeUrl.ClusterLoadAssignment)) subscribe(TypeUrl.ClusterLoadAssignment, r.names.filter((n) => n.startsWith('outbound|')));
        if (r.typeUrl === TypeUrl.Listener && !wanted.has(TypeUrl.RouteConfiguration)) {
          subscribe(TypeUrl.RouteConfiguration, r.names.map(sidecarRouteNameOf).filter((x): x is string => x !== undefined));
        }
        done();
      });
      call.write(sotwRequest(TypeUrl.Cluster, '', '', undefined, sidecarNode(0, ns)));
      call.write(sotwRequest(TypeUrl.Listener, '', '', undefined));
    });
  } finally {
    call.cancel();
    client.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The load generator (bench/loadgen.ts, unchanged: the same client code for both servers)

function startLoadgen(target: string, proxies: number, namespaces: string[]) {
  const options = { target, proxies, mode, proxyKind: 'sidecar', namespaces, streamsPerChannel: 50, flowControlWindow: 0 };
  const child = track(spawn(process.execPath, ['--max-old-space-size=4096', path.join(ROOT, 'bench', 'loadgen.ts'), JSON.stringify(options)], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const waiters: Array<{ match: (m: any) => boolean; resolve: (m: any) => void; reject: (e: Error) => void }> = [];
  const failed: string[] = [];
  const warnings: string[] = [];
  child.on('message', (m: any) => {
    if (m.t === 'progress') log(`  loadgen: ${m.full}/${m.proxies} proxies full, ${m.failures} failed streams${m.change ? `, change ${m.change.id}: ${m.change.done} ACKed` : ''}`);
    else if (m.t === 'warn' && warnings.length < 5) warnings.push(m.message);
    else if (m.t === 'failed' && failed.length < 5) failed.push(`stream ${m.index} failed: code ${m.code} ${m.message}`);
    const i = waiters.findIndex((w) => w.match(m));
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m);
  });
  child.once('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`the load generator exited (code ${code})`));
  });
  const wait = (match: (m: any) => boolean, timeoutMs: number, what: string) =>
    new Promise<any>((resolve, reject) => {
      const w = { match, resolve: (m: any) => (clearTimeout(timer), resolve(m)), reject: (e: Error) => (clearTimeout(timer), reject(e)) };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      waiters.push(w);
    });
  const stop = async () => {
    if (child.exitCode !== null) return;
    child.send({ t: 'stop' });
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  return { child, send: (m: object) => child.send(m), wait, failed, warnings, stop };
}

// ---------------------------------------------------------------------------------------------------------------
// One run: one server, one proxy count, a fresh copy of the mesh

async function runOne(name: ServerName, proxies: number): Promise<RunResult & { command?: string }> {
  const r: RunResult & { command?: string } = { server: name, proxies, memory: {}, errors: [], warnings: [] };
  const services: ServiceInfo[] = buildServices(spec);
  const namespaces = namespacesOf(services).slice(0, int('proxy-namespaces'));
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `mizzen-istiod-compare-${name}-`));
  const configDir = path.join(workDir, 'config');
  fs.mkdirSync(configDir);
  writeMesh(configDir, services);
  let lg: ReturnType<typeof startLoadgen> | undefined;
  let peer: Peer | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const t0 = Date.now();
    const started = name === 'mizzen' ? await startMizzen(configDir, workDir) : await startIstiodPeer(configDir, workDir);
    peer = started.peer;
    r.command = peer.command;
    await started.ready(remaining(120_000));
    r.readyMs = Date.now() - t0;
    // istiod is "ready" before its first push context is built; give both servers the same short settle.
    await sleep(1000);
    r.memory.idleMB = memoryOf(peer.pid).rssMB;
    log(`${name} ready in ${r.readyMs} ms (pid ${peer.pid}, RSS ${Math.round(r.memory.idleMB)} MiB)`);
    r.generated = await probe(peer.xdsTarget, namespaces[0]!, remaining(30_000));
    log(`${name} generates per sidecar: ${Object.entries(r.generated).map(([k, v]) => `${k} ${v.resources} (${(v.bytes / 1024).toFixed(1)} KiB)`).join(', ')}`);
    await sleep(500);

    // Initial sync of N proxies.
    const pid = peer.pid;
    let sampledPeak = 0;
    sampler = setInterval(() => {
      if (peer?.child.exitCode === null) sampledPeak = Math.max(sampledPeak, memoryOf(pid).rssMB);
    }, 200);
    lg = startLoadgen(peer.xdsTarget, proxies, namespaces);
    await lg.wait((m) => m.t === 'ready', 60_000, 'the load generator to load its protos');
    const cpu0 = cpuSecondsOf(pid);
    lg.send({ t: 'start' });
    log(`${name}: ${proxies} ${mode} sidecar streams`);
    const startAt = now();
    const first = await lg.wait((m) => m.t === 'synced' || m.t === 'failed', remaining(180_000), `all ${proxies} proxies to hold full config`);
    if (first.t === 'synced') {
      r.sync = {
        allFullMs: Math.max(...(first.perProxyMs as number[])),
        perProxyMs: dist(first.perProxyMs),
        bytesPerProxy: first.traffic.total / proxies,
        responses: first.traffic.responses,
        serverCpuSeconds: cpuSecondsOf(pid) - cpu0,
        failedStreams: 0,
      };
    } else {
      // A stream the server refused (istiod under a connect storm: RESOURCE_EXHAUSTED from its request limiter, which
      // Envoy would answer by reconnecting; loadgen.ts does not reconnect) never becomes full, so the load generator's
      // own "synced" never comes. Poll its status instead: the time when every stream still open holds full config,
      // to ~100 ms; the per-proxy distribution and traffic are then not available.
      for (;;) {
        lg.send({ t: 'status' });
        const st = await lg.wait((m) => m.t === 'status', 10_000, 'load generator status');
        if (st.full + st.failures >= proxies && st.full > 0) {
          r.sync = { allFullMs: now() - startAt, perProxyMs: dist([]), bytesPerProxy: Number.NaN, responses: {}, serverCpuSeconds: cpuSecondsOf(pid) - cpu0, failedStreams: st.failures };
          break;
        }
        if (now() - startAt > remaining(180_000)) throw new Error(`timed out: ${st.full}/${proxies} proxies full, ${st.failures} streams failed`);
        await sleep(100);
      }
      r.warnings.push(`${r.sync.failedStreams} of ${proxies} streams were refused by the server during the connect storm (not reconnected); sync time is for the other ${proxies - r.sync.failedStreams}, measured by polling (±100 ms), and change figures exclude them`);
    }
    await sleep(2000);
    r.memory.afterSyncMB = memoryOf(pid).rssMB;
    log(`${name}: ${proxies} proxies full in ${Math.round(r.sync.allFullMs)} ms; RSS ${Math.round(r.memory.afterSyncMB)} MiB`);

    // VirtualService changes: each edits one VS's weights; every sidecar's route config `8080` carries it.
    const all: number[] = [];
    const last: number[] = [];
    let missing = 0;
    const cpu1 = cpuSecondsOf(pid);
    let k = 0;
    for (; k < changes && Date.now() < deadline - 20_000; k++) {
      const s = services[(11 + k * 37) % services.length]!;
      const id = 1000 + k;
      const at = now();
      lg.send({ t: 'change', id, typeUrl: TypeUrl.RouteConfiguration, names: ['8080'], at });
      reweight(configDir, s, 90 - 10 * (1 + (k % 5)));
      const m = await lg.wait((x) => x.t === 'changed' && x.id === id, remaining(r.sync.failedStreams > 0 ? 8000 : 30_000), `change ${id}`).catch(() => {
        lg!.send({ t: 'collect' });
        return lg!.wait((x) => x.t === 'changed' && x.id === id, 5000, `change ${id} results`);
      });
      const got = (m.perProxyMs as Array<number | null>).filter((x): x is number => x !== null);
      missing += m.perProxyMs.length - got.length - r.sync.failedStreams;
      all.push(...got);
      if (got.length >= m.perProxyMs.length - r.sync.failedStreams && got.length > 0) last.push(Math.max(...got));
      log(`${name}: VS change ${k + 1}/${changes} (${s.name}): p50 ${Math.round(dist(got).p50)} ms, last ACK ${got.length ? Math.round(Math.max(...got)) : '-'} ms, ${m.perProxyMs.length - got.length} missing`);
      await sleep(at + spacingMs - now());
    }
    r.change = { samples: k, missing, perProxyMs: dist(all), lastAckMs: dist(last), serverCpuSecondsPerChange: (cpuSecondsOf(pid) - cpu1) / Math.max(1, k) };
    r.memory.endMB = memoryOf(pid).rssMB;
  } catch (err) {
    r.errors.push(err instanceof Error ? err.message : String(err));
  } finally {
    if (sampler) clearInterval(sampler);
    if (peer && peer.child.exitCode === null) {
      const m = memoryOf(peer.pid);
      r.memory.peakMB = m.peakRssMB;
      r.serverCpuSecondsTotal = cpuSecondsOf(peer.pid);
    } else if (peer) {
      r.errors.push(`${name} exited (code ${peer.child.exitCode}, signal ${peer.child.signalCode}); log tail:\n${tail(peer.logFile)}`);
    }
    if (lg) {
      // Refused streams are errors only when they kept the sync from being measured at all.
      (r.sync ? r.warnings : r.errors).push(...lg.failed);
      r.warnings.push(...lg.warnings);
      await lg.stop();
    }
    await killAll(3000);
    if (flags.keep) log(`kept ${workDir}`);
    else fs.rmSync(workDir, { recursive: true, force: true });
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------------
// istiod availability: the binary, its version stamp, or exactly why not

function istiodAvailability(): { ok: true; version: string } | { ok: false; why: string } {
  const script = path.join(ROOT, 'test', 'infra', 'istiod-binaries.sh');
  if (!fs.existsSync(ISTIOD_BIN) && flags.build) {
    log(`building pilot-discovery with ${path.relative(ROOT, script)} (long when cold)`);
    const b = spawnSync('bash', [script], { cwd: ROOT, encoding: 'utf8', timeout: Math.max(10_000, deadline - Date.now() - 120_000) });
    if (b.status !== 0) {
      const why = (b.stderr ?? '').trimEnd().split('\n').filter((l) => !l.startsWith('go: downloading') && !l.startsWith('go: added')).slice(-12).join('\n');
      return { ok: false, why: `test/infra/istiod-binaries.sh failed (${b.error ? b.error.message : `exit ${b.status}`}):\n${why}` };
    }
  }
  if (!fs.existsSync(ISTIOD_BIN)) {
    return { ok: false, why: `no pilot-discovery at ${ISTIOD_BIN}: build it with \`bash test/infra/istiod-binaries.sh\` (or pass --build / --istiod-bin PATH)` };
  }
  const v = spawnSync(ISTIOD_BIN, ['version', '--short'], { encoding: 'utf8', timeout: 20_000 });
  if (v.status !== 0) return { ok: false, why: `${ISTIOD_BIN} does not run: ${v.error?.message ?? `exit ${v.status}: ${(v.stderr ?? '').trim().slice(0, 500)}`}` };
  const stamp = (() => {
    try {
      return fs.readFileSync(path.join(path.dirname(ISTIOD_BIN), 'VERSIONS'), 'utf8').trim();
    } catch {
      return '';
    }
  })();
  return { ok: true, version: `${v.stdout.trim()}${stamp ? ` (${stamp})` : ''}` };
}

/** What istiod has published (shared/reference/perf-anchors.md §1a): used only when it cannot be measured here. */
const PUBLISHED = {
  source: 'istio.io "Performance and Scalability" page and release notes, as collected in shared/reference/perf-anchors.md §1a',
  memory: { figure: '1.5 GB (and 1 vCPU)', conditions: '1000 services, 2000 sidecars, 70,000 mesh-wide RPS, Sidecar scoping on' },
  propagation: { figure: 'endpoint updates to 500 sidecars in under 1 s', conditions: 'Istio 1.0.3 release-note claim (quoted in istio/istio#10486)' },
  debounce: { figure: '100 ms quiet period (PILOT_DEBOUNCE_AFTER), 10 s max', conditions: 'current defaults: the floor of istiod change-to-push latency' },
  convergence: { figure: 'no published p50/p99 of pilot_proxy_convergence_time', conditions: 'only bucket choices (0.1 … 30 s) are published' },
};

// ---------------------------------------------------------------------------------------------------------------
// Report

const fmtMs = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const fmtMB = (mb: number | undefined) => (mb === undefined || !Number.isFinite(mb) ? '-' : `${mb.toFixed(0)} MiB`);
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? '-' : `${(a / b).toFixed(2)}×`);

function figures(r: RunResult | undefined): Array<[string, number | undefined, (x: number | undefined) => string]> {
  return [
    ['start → ready', r?.readyMs, fmtMs],
    ['time to full config, all proxies', r?.sync?.allFullMs, fmtMs],
    ['  streams refused (not retried)', r?.sync?.failedStreams, (x) => (x === undefined ? '-' : String(x))],
    ['  per proxy p50', r?.sync?.perProxyMs.p50, fmtMs],
    ['  per proxy p99', r?.sync?.perProxyMs.p99, fmtMs],
    ['  KiB per proxy (sync)', r?.sync ? r.sync.bytesPerProxy / 1024 : undefined, (x) => (x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(1)} KiB`)],
    ['  server CPU s (sync)', r?.sync?.serverCpuSeconds, (x) => (x === undefined ? '-' : x.toFixed(2))],
    ['VS change → ACK p50 (all proxies)', r?.change?.perProxyMs.p50, fmtMs],
    ['VS change → ACK p99 (all proxies)', r?.change?.perProxyMs.p99, fmtMs],
    ['VS change → last ACK p50', r?.change?.lastAckMs.p50, fmtMs],
    ['  server CPU s per change', r?.change?.serverCpuSecondsPerChange, (x) => (x === undefined ? '-' : x.toFixed(3))],
    ['RSS idle', r?.memory.idleMB, fmtMB],
    ['RSS after sync (steady)', r?.memory.afterSyncMB, fmtMB],
    ['RSS after changes', r?.memory.endMB, fmtMB],
    ['RSS peak (VmHWM)', r?.memory.peakMB, fmtMB],
  ];
}

function compareTable(runs: RunResult[]): string {
  const rows: string[][] = [['', 'mizzen', 'istiod', 'mizzen/istiod']];
  for (const n of proxyCounts) {
    const m = runs.find((x) => x.server === 'mizzen' && x.proxies === n);
    const i = runs.find((x) => x.server === 'istiod' && x.proxies === n);
    rows.push([`— ${n} proxies —`, '', '', '']);
    const fi = figures(i);
    figures(m).forEach(([label, mv, fmt], k) => rows.push([label, fmt(mv), fmt(fi[k]![1]), label.includes('refused') ? '' : ratio(mv, fi[k]![1])]));
    const gen = (r: RunResult | undefined) => (r?.generated ? Object.entries(r.generated).map(([t, g]) => `${t.replace('ClusterLoadAssignment', 'CLA').replace('RouteConfiguration', 'Route')} ${g.resources}`).join(' ') : '-');
    rows.push(['generated per sidecar', gen(m), gen(i), '']);
  }
  const w = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((c, k) => c.padEnd(w[k]!)).join('  ').trimEnd()).join('\n');
}

function publishedTable(runs: RunResult[]): string {
  const lines = ['istiod figures below are PUBLISHED (not measured here): ' + PUBLISHED.source];
  for (const r of runs) {
    lines.push(`— mizzen, ${r.proxies} proxies (measured) —`);
    for (const [label, v, fmt] of figures(r)) lines.push(`  ${label.padEnd(36)} ${fmt(v)}`);
  }
  lines.push('— istiod (published, not measured) —');
  for (const [k, p] of Object.entries(PUBLISHED)) if (typeof p === 'object') lines.push(`  ${k.padEnd(12)} ${p.figure}  [${p.conditions}]`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  fs.mkdirSync(RESULTS, { recursive: true });
  const istiod = istiodAvailability();
  const result: any = {
    date: new Date().toISOString(),
    scale: { ...spec, endpoints: spec.services * spec.endpointsPerService, proxies: proxyCounts, mode, proxyKind: 'sidecar', changes, spacingMs, cores: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version },
    istiod: istiod.ok ? { measured: true, binary: ISTIOD_BIN, version: istiod.version } : { measured: false, why: istiod.why, published: PUBLISHED },
    runs: [] as RunResult[],
  };
  if (!istiod.ok) log(`istiod will NOT be measured: ${istiod.why}`);
  for (const n of proxyCounts) {
    for (const name of ['mizzen', 'istiod'] as const) {
      if (name === 'istiod' && !result.istiod.measured) continue;
      if (Date.now() > deadline - 30_000) {
        log(`budget spent: skipping ${name} × ${n}`);
        continue;
      }
      const r = await runOne(name, n);
      result.runs.push(r);
      if (name === 'istiod' && r.command) result.istiod.command = r.command;
      if (name === 'istiod') Object.assign(result.istiod, { mode: istiodRun.mode, fileOnlyFailure: istiodRun.fileOnlyFailure });
      if (name === 'mizzen' && r.command) result.mizzenCommand = r.command;
      for (const e of r.errors) log(`${name} × ${n}: ERROR ${e}`);
      // istiod that cannot run at all (not merely slow) is reported as such, and the rest falls back to published.
      if (name === 'istiod' && r.readyMs === undefined) {
        result.istiod = { measured: false, why: `pilot-discovery was built but does not serve: ${r.errors.join('; ')}`, binary: ISTIOD_BIN, published: PUBLISHED };
        log(`istiod will NOT be measured: ${result.istiod.why}`);
      }
    }
  }
  await istiodRun.kube?.stop();
  const measured = result.istiod.measured as boolean;
  if (measured) {
    result.ratios = Object.fromEntries(
      proxyCounts.map((n) => {
        const m = result.runs.find((x: RunResult) => x.server === 'mizzen' && x.proxies === n);
        const i = result.runs.find((x: RunResult) => x.server === 'istiod' && x.proxies === n);
        const q = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : null);
        return [n, { rssPeak: q(m?.memory.peakMB, i?.memory.peakMB), rssSteady: q(m?.memory.afterSyncMB, i?.memory.afterSyncMB), timeToFullConfig: q(m?.sync?.allFullMs, i?.sync?.allFullMs), changeToAckP50: q(m?.change?.perProxyMs.p50, i?.change?.perProxyMs.p50), changeToAckP99: q(m?.change?.perProxyMs.p99, i?.change?.perProxyMs.p99) }];
      }),
    );
  }
  console.log(`scale: ${spec.services} services (ServiceEntry STATIC, ${spec.endpointsPerService} endpoints each) + DR + VS each, ${mode} sidecar ADS streams, ${changes} VS edits ${spacingMs} ms apart; ${result.scale.cores} cores`);
  console.log(measured ? `istiod: ${result.istiod.version}` : `istiod NOT measured: ${result.istiod.why}`);
  if (istiodRun.fileOnlyFailure) console.log(`istiod file-only (--registries=) failed: ${istiodRun.fileOnlyFailure}`);
  if (istiodRun.mode === 'file+empty-apiserver') console.log('istiod therefore ran with --registries=Kubernetes against an EMPTY kube-apiserver; all Istio config from --configDir');
  if (result.istiod.command) console.log(`istiod command: ${result.istiod.command}`);
  console.log(measured ? compareTable(result.runs) : publishedTable(result.runs));
  for (const r of result.runs as RunResult[]) for (const e of r.errors) console.log(`ERROR ${r.server} × ${r.proxies}: ${e}`);
  for (const r of result.runs as RunResult[]) for (const w of r.warnings) console.log(`WARNING ${r.server} × ${r.proxies}: ${w}`);
  const file = path.join(RESULTS, 'istiod-compare.json');
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  log(`results: ${path.relative(ROOT, file)}`);
  return result.runs.some((r: RunResult) => r.server === 'mizzen' && r.errors.length > 0) ? 1 : 0;
}

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping children`);
    void Promise.allSettled([killAll(1000), istiodRun.kube?.stop()]).finally(() => process.exit(130));
  });
}
process.exitCode = await main();
