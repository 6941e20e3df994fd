/**
 * `npm run bench:webhook`: the sidecar injection webhook over HTTPS, as the API server calls it.
 *
 * The real webhook server (startWebhookServer, fastify over TLS, serving certificate from mizzen's CA read through the
 * getCertificate callback, injector config from resolveInjectorConfig per request, as src/app/server.ts wires it)
 * runs in a child process pinned to one core with taskset (the load generator is pinned to the other cores, so
 * neither steals the other's CPU). The load generator (undici Pool, keep-alive, the CA's root trusted) sends
 * AdmissionReviews for a realistic pod: 3 containers (app + 2 helpers), ~20 env vars, readiness/liveness/startup HTTP
 * probes (so the probe rewrite runs), resources, volumes, labels, annotations, a service account, ownerReferences and
 * managedFields, with the fields the API server defaults.
 *
 * 1. Open loop: a fixed rate (500 requests/s) for --seconds after a --warmup; requests are sent when scheduled, not
 *    when the previous one completes, and latency counts from the scheduled time, so queueing is included.
 * 2. Closed loop: --concurrency requests in flight (one connection each) for --seconds: the maximum throughput.
 *
 * Every response is checked: HTTP 200, an AdmissionReview with the request's uid, allowed=true, patchType JSONPatch
 * and a patch that applies to the pod and yields an injected pod (istio-proxy, rewritten probes); anything else is an
 * error. Targets (the Kubernetes issue): p99 ≤ 5 ms at 500 requests/s, ≥ 2,000 requests/s on one core.
 *
 *   npm run bench:webhook -- [--rate 500] [--seconds 10] [--warmup 2] [--concurrency 32] [--server-cpu-prof DIR]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { applyPatch, type Operation } from 'rfc6902';
import { Pool } from 'undici';
import { setupCertificateAuthority } from '../src/ca/init.ts';
import { FileCaStore } from '../src/ca/root-store.ts';
import { silentLogger } from '../src/shared/log.ts';
import { resolveInjectorConfig, type Pod } from '../src/webhook/inject.ts';
import { startWebhookServer } from '../src/webhook/server.ts';
import { killAll, killAllNow, sleep, track } from './procs.ts';
import { dist, type Dist } from './report.ts';

const { values: flags } = parseArgs({
  options: {
    role: { type: 'string', default: 'bench' },
    dir: { type: 'string', default: '' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '32' },
    'server-cpu-prof': { type: 'string', default: '' },
  },
});

const SERVER_NAME = 'istiod.istio-system.svc';
const TRUST_DOMAIN = 'cluster.local';

// ---------------------------------------------------------------------------------------------------------------
// The pod: a Deployment's pod as the API server sends it to the webhook (defaults filled in, managedFields).

function realisticPod(app: string, hash: string, suffix: string): Pod {
  const env: Array<Record<string, unknown>> = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
    { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
    { name: 'NODE_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.nodeName' } } },
    { name: 'GOMAXPROCS', valueFrom: { resourceFieldRef: { containerName: app, divisor: '1', resource: 'limits.cpu' } } },
    { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: `${app}-db`, key: 'password' } } },
    { name: 'DB_USER', valueFrom: { secretKeyRef: { name: `${app}-db`, key: 'username' } } },
    { name: 'FEATURE_FLAGS', valueFrom: { configMapKeyRef: { name: `${app}-flags`, key: 'flags', optional: true } } },
    { name: 'DB_HOST', value: 'postgres.data.svc.cluster.local' },
    { name: 'DB_PORT', value: '5432' },
    { name: 'DB_NAME', value: app },
    { name: 'REDIS_URL', value: 'redis://redis-master.data.svc.cluster.local:6379/0' },
    { name: 'KAFKA_BROKERS', value: 'kafka-0.kafka.data.svc:9092,kafka-1.kafka.data.svc:9092,kafka-2.kafka.data.svc:9092' },
    { name: 'LOG_LEVEL', value: 'info' },
    { name: 'LOG_FORMAT', value: 'json' },
    { name: 'HTTP_PORT', value: '8080' },
    { name: 'GRPC_PORT', value: '9090' },
    { name: 'METRICS_PORT', value: '9102' },
    { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector.observability.svc:4317' },
    { name: 'OTEL_SERVICE_NAME', value: app },
    { name: 'JAVA_TOOL_OPTIONS', value: '-XX:MaxRAMPercentage=75 -XX:+UseG1GC -Dfile.encoding=UTF-8' },
    { name: 'TZ', value: 'UTC' },
  ];
  const defaults = { terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent' };
  const httpProbe = (pathName: string, port: string | number, o: Record<string, number>) => ({ httpGet: { path: pathName, port, scheme: 'HTTP' }, timeoutSeconds: 1, successThreshold: 1, ...o });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${app}-${hash}-`,
      namespace: 'shop',
      labels: { app, version: 'v2', 'app.kubernetes.io/name': app, 'app.kubernetes.io/part-of': 'shop', 'app.kubernetes.io/managed-by': 'Helm', team: 'payments', 'pod-template-hash': hash },
      annotations: {
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '9102',
        'prometheus.io/path': '/metrics',
        'kubectl.kubernetes.io/restartedAt': '2026-11-20T10:00:00Z',
        'checksum/config': `5f1c0d2e9a7b${suffix}`,
        'cluster-autoscaler.kubernetes.io/safe-to-evict': 'true',
      },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-${hash}`, uid: `7d6c${suffix}-aaaa-4bbb-8ccc-0123456789ab`, controller: true, blockOwnerDeletion: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2026-11-20T10:00:01Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:generateName': {}, 'f:labels': {} }, 'f:spec': { 'f:containers': {} } } }],
    },
    spec: {
      serviceAccountName: app,
      serviceAccount: app,
      automountServiceAccountToken: true,
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      terminationGracePeriodSeconds: 30,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
      priority: 0,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app } } } }] } },
      containers: [
        {
          name: app,
          image: `registry.example.com/shop/${app}:2.14.3`,
          ports: [
            { name: 'http', containerPort: 8080, protocol: 'TCP' },
            { name: 'grpc', containerPort: 9090, protocol: 'TCP' },
            { name: 'metrics', containerPort: 9102, protocol: 'TCP' },
          ],
          env,
          envFrom: [{ configMapRef: { name: `${app}-env` } }],
          resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } },
          readinessProbe: httpProbe('/ready', 'http', { periodSeconds: 5, failureThreshold: 3 }),
          livenessProbe: httpProbe('/healthz', 8080, { initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 3 }),
          startupProbe: httpProbe('/started', 'http', { periodSeconds: 2, failureThreshold: 60 }),
          volumeMounts: [
            { name: 'config', mountPath: '/etc/app', readOnly: true },
            { name: 'tls', mountPath: '/etc/tls', readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
            { name: 'kube-api-access-x7k2p', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true },
          ],
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          ...defaults,
        },
        {
          name: 'log-shipper',
          image: 'cr.fluentbit.io/fluent/fluent-bit:3.1.9',
          args: ['--config=/fluent-bit/etc/fluent-bit.yaml'],
          ports: [{ name: 'fb-http', containerPort: 2020, protocol: 'TCP' }],
          env: [
            { name: 'FLUENT_ELASTICSEARCH_HOST', value: 'elasticsearch.logging.svc' },
            { name: 'FLUENT_ELASTICSEARCH_PORT', value: '9200' },
          ],
          resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
          livenessProbe: httpProbe('/api/v1/health', 'fb-http', { periodSeconds: 10, failureThreshold: 3 }),
          volumeMounts: [
            { name: 'tmp', mountPath: '/var/log/app' },
            { name: 'fluent-bit-config', mountPath: '/fluent-bit/etc', readOnly: true },
          ],
          ...defaults,
        },
        {
          name: 'config-reloader',
          image: 'ghcr.io/stakater/reloader-sidecar:1.0.0',
          args: ['--watch=/etc/app', '--webhook-url=http://127.0.0.1:8080/-/reload'],
          env: [{ name: 'RELOAD_INTERVAL', value: '30s' }],
          resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '50m', memory: '32Mi' } },
          volumeMounts: [{ name: 'config', mountPath: '/etc/app', readOnly: true }],
          ...defaults,
        },
      ],
      volumes: [
        { name: 'config', configMap: { name: `${app}-config`, defaultMode: 420 } },
        { name: 'fluent-bit-config', configMap: { name: 'fluent-bit', defaultMode: 420 } },
        { name: 'tls', secret: { secretName: `${app}-tls`, defaultMode: 420 } },
        { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
        {
          name: 'kube-api-access-x7k2p',
          projected: {
            defaultMode: 420,
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
            ],
          },
        },
      ],
    },
  } as unknown as Pod;
}

interface Variant {
  pod: Pod;
  /** The first patch seen for this pod, fully checked; later answers for the same pod must be byte-identical. */
  patch?: string;
}

interface Body {
  uid: string;
  variant: Variant;
  bytes: Buffer;
}

/** 8 deployments × 128 requests each, every request its own uid (the API server's). */
function buildBodies(): { bodies: Body[]; podBytes: number } {
  const apps = ['checkout', 'cart', 'catalog', 'payments', 'shipping', 'orders', 'search', 'accounts'];
  const variants = apps.map((app, i) => ({ pod: realisticPod(app, `${(0x5d8f7b9c4 + i * 7919).toString(16).slice(-10)}`, String(1000 + i)) }));
  const bodies: Body[] = [];
  for (let i = 0; i < 1024; i++) {
    const variant = variants[i % variants.length]!;
    const uid = `${(i + 1).toString(16).padStart(8, '0')}-bench-4000-8000-${(0xc0ffee000000 + i).toString(16)}`;
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        requestKind: { group: '', version: 'v1', kind: 'Pod' },
        requestResource: { group: '', version: 'v1', resource: 'pods' },
        namespace: 'shop',
        operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: 'b4d1e6a7-0000-4000-8000-000000000001', groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
        object: variant.pod,
        oldObject: null,
        dryRun: false,
        options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      },
    };
    bodies.push({ uid, variant, bytes: Buffer.from(JSON.stringify(review)) });
  }
  return { bodies, podBytes: Buffer.byteLength(JSON.stringify(variants[0]!.pod)) };
}

/** Checks one answer; returns undefined when it is a valid injection, else the kind of error. */
function check(status: number, text: string, body: Body): string | undefined {
  if (status !== 200) return `HTTP ${status}`;
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (json?.kind !== 'AdmissionReview' || json.apiVersion !== 'admission.k8s.io/v1' || typeof json.response !== 'object') return 'not an AdmissionReview';
  const r = json.response;
  if (r.uid !== body.uid) return 'wrong uid';
  if (r.allowed !== true) return 'not allowed';
  if (r.patchType !== 'JSONPatch' || typeof r.patch !== 'string') return 'no JSONPatch';
  const v = body.variant;
  if (v.patch !== undefined) return r.patch === v.patch ? undefined : 'patch differs from the first answer';
  // First answer for this pod: decode, apply and look at the result.
  let ops: Operation[];
  try {
    ops = JSON.parse(Buffer.from(r.patch, 'base64').toString());
  } catch {
    return 'patch is not base64 JSON';
  }
  if (!Array.isArray(ops) || ops.length === 0) return 'empty patch';
  const patched = structuredClone(v.pod) as any;
  if (!applyPatch(patched, ops).every((e) => e === null)) return 'patch does not apply';
  const names = (patched.spec.containers as Array<{ name: string }>).map((c) => c.name);
  const app = patched.spec.containers[0];
  if (!names.includes('istio-proxy') || names.length !== 4) return `unexpected containers ${names.join(',')}`;
  if (!String(app.readinessProbe?.httpGet?.path).startsWith('/app-health/') || app.readinessProbe.httpGet.port !== 15020) return 'readiness probe not rewritten';
  if (!patched.metadata.annotations['sidecar.istio.io/status']) return 'no sidecar.istio.io/status';
  v.patch = r.patch;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The load generator.

interface ServerHandle {
  child: ChildProcess;
  port: number;
  roots: string;
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

/** Comma/range list of CPUs this process may run on (Cpus_allowed_list), e.g. [0, 1]. */
function allowedCpus(): number[] {
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
  const cpus: number[] = [];
  for (const part of line.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (Number.isInteger(a)) for (let c = a!; c <= (b ?? a!); c++) cpus.push(c);
  }
  return cpus;
}

/** Seconds a process's main thread has waited on a run queue for a CPU (/proc/<pid>/schedstat, field 2), if known. */
function runQueueWait(pid: number): number {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return Number.NaN;
  }
}

/** The contention a phase saw: CPU and run-queue waits of the server and of this process (the load generator). */
function contention(serverPid: number) {
  const at = () => ({ server: runQueueWait(serverPid), loadgen: runQueueWait(process.pid), loadgenCpu: process.cpuUsage() });
  const t0 = at();
  return () => {
    const t1 = at();
    const cpu = (t1.loadgenCpu.user - t0.loadgenCpu.user + t1.loadgenCpu.system - t0.loadgenCpu.system) / 1e6;
    const round = (x: number) => Math.round(x * 100) / 100;
    return { serverRunQueueWaitSeconds: round(t1.server - t0.server), loadgenRunQueueWaitSeconds: round(t1.loadgen - t0.loadgen), loadgenCpuSeconds: round(cpu) };
  };
}

function hasTaskset(): boolean {
  return spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
}

interface Pinning {
  server: string;
  loadgen: string;
  note: string;
}

async function startServer(dir: string, pin: { serverCpu: number | undefined }): Promise<ServerHandle> {
  // The webhook runs inside `mizzen serve`, which starts Node with a small young generation (src/cli/main.ts,
  // SERVER_HEAP_FLAG): measure it with the same heap, unless the flag is given explicitly.
  const heap = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('--max-semi-space-size')) ? [] : ['--max-semi-space-size=4'];
  const nodeArgs = [...process.execArgv, ...heap, ...(flags['server-cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${flags['server-cpu-prof']}`] : []), import.meta.filename, '--role', 'server', '--dir', dir];
  const [cmd, args] = pin.serverCpu === undefined ? [process.execPath, nodeArgs] : ['taskset', ['-c', String(pin.serverCpu), process.execPath, ...nodeArgs]];
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const next = <T>() =>
    new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`webhook server exited (${code}) before answering`));
      child.once('exit', onExit);
      child.once('message', (m) => (child.off('exit', onExit), resolve(m as T)));
    });
  const ready = await next<{ port: number; roots: string }>();
  return {
    child,
    port: ready.port,
    roots: ready.roots,
    cpu: async () => {
      child.send('cpu');
      const { cpu } = await next<{ cpu: NodeJS.CpuUsage }>();
      return (cpu.user + cpu.system) / 1e6;
    },
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.send('stop');
      await Promise.race([exited, sleep(5000)]);
    },
  };
}

interface PhaseResult {
  phase: 'open loop' | 'closed loop';
  /** Open loop: the scheduled rate; closed loop: requests in flight. */
  offered: string;
  seconds: number;
  sent: number;
  ok: number;
  errors: Record<string, number>;
  requestsPerSecond: number;
  latencyMs: Dist;
  serverCpuSeconds: number;
  /** Server CPU per request, µs (CPU seconds / answered requests). */
  serverCpuUsPerRequest: number;
  /** Answers per second of server CPU: what one uncontended core would sustain at this per-request cost. */
  perServerCpuSecond: number;
  /** Server CPU seconds per wall second: 1 = the core is saturated. */
  serverCoreUtilisation: number;
  /** Seconds the server's and the load generator's main threads were runnable but waited for a CPU (other processes). */
  serverRunQueueWaitSeconds: number;
  loadgenRunQueueWaitSeconds: number;
  loadgenCpuSeconds: number;
}

class Tally {
  latencies: number[] = [];
  errors: Record<string, number> = {};
  ok = 0;
  sent = 0;
  error(kind: string) {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }
}

/** One request; latency counted from `from` (the scheduled time in the open loop, the send time in the closed loop). */
async function send(pool: Pool, body: Body, from: number, tally: Tally | undefined): Promise<void> {
  if (tally) tally.sent++;
  try {
    const res = await pool.request({ path: '/inject', method: 'POST', headers: { 'content-type': 'application/json' }, body: body.bytes });
    const text = await res.body.text();
    const elapsed = performance.now() - from;
    if (!tally) return;
    const err = check(res.statusCode, text, body);
    if (err) tally.error(err);
    else tally.ok++;
    tally.latencies.push(elapsed);
  } catch (err) {
    tally?.error(`transport: ${(err as { code?: string }).code ?? (err as Error).message}`);
  }
}

/** Requests at `rate`/s scheduled by the clock for `seconds`; only those scheduled at or after `measureFrom` count. */
async function openLoop(pool: Pool, bodies: Body[], rate: number, warmupSeconds: number, seconds: number, serverCpu: () => Promise<number>): Promise<{ tally: Tally; wallMs: number; serverCpuSeconds: number }> {
  const tally = new Tally();
  const interval = 1000 / rate;
  const t0 = performance.now();
  const measureFrom = t0 + warmupSeconds * 1000;
  const total = Math.round((warmupSeconds + seconds) * rate);
  const pending: Array<Promise<void>> = [];
  // The server's CPU counter as the measured part starts (after the warm-up) and once every answer is in.
  const cpu0 = sleep(measureFrom - performance.now()).then(serverCpu);
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      // Everything due by now goes out now (a late timer does not lower the rate; the lateness counts as latency).
      while (i < total && t0 + i * interval <= now) {
        const at = t0 + i * interval;
        pending.push(send(pool, bodies[i % bodies.length]!, at, at >= measureFrom ? tally : undefined));
        i++;
      }
      if (i >= total) return resolve();
      setTimeout(tick, Math.max(0, t0 + i * interval - performance.now()));
    };
    tick();
  });
  await Promise.all(pending);
  return { tally, wallMs: seconds * 1000, serverCpuSeconds: (await serverCpu()) - (await cpu0) };
}

/** `concurrency` workers, each sending its next request when its previous answer is in, for `seconds`. */
async function closedLoop(pool: Pool, bodies: Body[], concurrency: number, seconds: number): Promise<{ tally: Tally; wallMs: number }> {
  const tally = new Tally();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let i = 0;
  let lastDone = t0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const body = bodies[i++ % bodies.length]!;
        await send(pool, body, performance.now(), tally);
      }
      lastDone = Math.max(lastDone, performance.now());
    }),
  );
  return { tally, wallMs: lastDone - t0 };
}

function summarize(phase: PhaseResult['phase'], offered: string, tally: Tally, wallMs: number, serverCpuSeconds: number, waits: ReturnType<ReturnType<typeof contention>>): PhaseResult {
  const answered = tally.latencies.length;
  return {
    phase,
    offered,
    seconds: Math.round(wallMs / 100) / 10,
    sent: tally.sent,
    ok: tally.ok,
    errors: tally.errors,
    requestsPerSecond: Math.round(answered / (wallMs / 1000)),
    latencyMs: dist(tally.latencies),
    serverCpuSeconds: Math.round(serverCpuSeconds * 100) / 100,
    serverCpuUsPerRequest: Math.round((serverCpuSeconds * 1e6) / Math.max(1, answered)),
    perServerCpuSecond: Math.round(answered / serverCpuSeconds),
    serverCoreUtilisation: Math.round((serverCpuSeconds / (wallMs / 1000)) * 100) / 100,
    ...waits,
  };
}

async function main(): Promise<void> {
  const rate = Number(flags.rate);
  const seconds = Number(flags.seconds);
  const warmup = Number(flags.warmup);
  const concurrency = Number(flags.concurrency);

  // One core for the server, the others for the load generator (this process and its threads).
  const cpus = allowedCpus();
  let pinning: Pinning;
  let serverCpu: number | undefined;
  if (!hasTaskset()) pinning = { server: 'unpinned', loadgen: 'unpinned', note: 'taskset not found: the server is NOT pinned to one core and shares CPUs with the load generator' };
  else if (cpus.length < 2) {
    serverCpu = cpus[0];
    pinning = { server: `cpu ${serverCpu}`, loadgen: `cpu ${serverCpu}`, note: 'only one CPU available: the load generator shares the server core' };
  } else {
    serverCpu = cpus[cpus.length - 1]!;
    const rest = cpus.slice(0, -1).join(',');
    const r = spawnSync('taskset', ['-a', '-p', '-c', rest, String(process.pid)], { stdio: 'ignore' });
    pinning = { server: `cpu ${serverCpu}`, loadgen: r.status === 0 ? `cpu ${rest}` : 'unpinned', note: r.status === 0 ? 'server pinned to one core, load generator on the others' : 'server pinned; the load generator could not be pinned' };
  }

  // Other work on the machine takes CPU from the pinned core too: say how busy it was.
  const load0 = os.loadavg()[0]!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-bench-webhook-'));
  const { bodies, podBytes } = buildBodies();
  let server: ServerHandle | undefined;
  let pool: Pool | undefined;
  const phases: PhaseResult[] = [];
  let answerBytes = 0;
  try {
    server = await startServer(dir, { serverCpu });
    const connect = { ca: server.roots, servername: SERVER_NAME };
    // One probe request: the answer's size, and a readable failure before the phases if the webhook is broken.
    pool = new Pool(`https://127.0.0.1:${server.port}`, { connections: Math.max(concurrency, 64), pipelining: 1, connect });
    {
      const res = await pool.request({ path: '/inject', method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[0]!.bytes });
      const text = await res.body.text();
      const err = check(res.statusCode, text, bodies[0]!);
      if (err) throw new Error(`the webhook's first answer is not a valid injection: ${err}: ${text.slice(0, 300)}`);
      answerBytes = Buffer.byteLength(text);
    }

    // 1. Open loop at `rate`, warm-up first.
    let waits = contention(server.child.pid!);
    const open = await openLoop(pool, bodies, rate, warmup, seconds, server.cpu);
    phases.push(summarize('open loop', `${rate} req/s`, open.tally, open.wallMs, open.serverCpuSeconds, waits()));
    await pool.close();

    // 2. Closed loop: `concurrency` in flight over as many keep-alive connections, after a short warm-up.
    pool = new Pool(`https://127.0.0.1:${server.port}`, { connections: concurrency, pipelining: 1, connect });
    await closedLoop(pool, bodies, concurrency, Math.min(1, warmup));
    const cpu0 = await server.cpu();
    waits = contention(server.child.pid!);
    const closed = await closedLoop(pool, bodies, concurrency, seconds);
    phases.push(summarize('closed loop', `${concurrency} in flight`, closed.tally, closed.wallMs, (await server.cpu()) - cpu0, waits()));
  } finally {
    await pool?.close().catch(() => undefined);
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const load1 = os.loadavg()[0]!;
  const busy = Math.max(load0, load1) > os.cpus().length - 1;
  const [open, closed] = phases as [PhaseResult, PhaseResult];
  const targets = [
    { name: `p99 at ${rate} req/s`, target: '≤ 5 ms', value: open.latencyMs.p99, unit: 'ms', pass: open.latencyMs.p99 <= 5 && open.ok === open.sent },
    { name: 'max throughput on one core', target: '≥ 2000 req/s', value: closed.requestsPerSecond, unit: 'req/s', pass: closed.requestsPerSecond >= 2000 && closed.ok === closed.sent },
  ];

  const r = (x: number) => (x >= 100 ? Math.round(x) : Math.round(x * 100) / 100);
  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  const errs = (p: PhaseResult) => Object.values(p.errors).reduce((a, x) => a + x, 0);
  console.log(`Injection webhook over HTTPS — pod with 3 containers, ${bodies[0]!.bytes.length} B AdmissionReview (pod ${podBytes} B), ${answerBytes} B answer; ${os.cpus().length} cores, node ${process.version}`);
  console.log(`  pinning: ${pinning.note} (server ${pinning.server}, load generator ${pinning.loadgen}); load average ${load0.toFixed(1)} → ${load1.toFixed(1)}`);
  if (busy) console.log(`  WARNING: the machine is busy (load average above ${os.cpus().length - 1}): the pinned core is shared with other processes, so latency and req/s understate the webhook; "per server CPU-s" does not depend on it`);
  console.log(`  ${pad('phase', 13)}${pad('offered', 16)}${pad('seconds', 9)}${pad('ok', 8)}${pad('errors', 8)}${pad('req/s', 8)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('max ms', 8)}${pad('CPU µs/req', 12)}${pad('per server CPU-s', 18)}core busy`);
  for (const p of phases)
    console.log(
      `  ${pad(p.phase, 13)}${pad(p.offered, 16)}${pad(p.seconds, 9)}${pad(p.ok, 8)}${pad(errs(p), 8)}${pad(p.requestsPerSecond, 8)}${pad(r(p.latencyMs.p50), 8)}${pad(r(p.latencyMs.p99), 8)}${pad(r(p.latencyMs.max), 8)}${pad(p.serverCpuUsPerRequest, 12)}${pad(p.perServerCpuSecond, 18)}${Math.round(p.serverCoreUtilisation * 100)}%`,
    );
  for (const p of phases)
    console.log(`  ${pad(p.phase, 13)}waited for a CPU: server ${p.serverRunQueueWaitSeconds} s, load generator ${p.loadgenRunQueueWaitSeconds} s (load generator used ${p.loadgenCpuSeconds} CPU-s)`);
  for (const p of phases) for (const [k, v] of Object.entries(p.errors)) console.log(`  ERROR (${p.phase}) ${k}: ${v}`);
  for (const t of targets) console.log(`  target ${pad(t.name, 28)}${pad(`${r(t.value)} ${t.unit}`, 14)}${t.target} ${t.pass ? 'ok' : 'MISSED'}`);

  const result = {
    scale: { node: process.version, cores: os.cpus().length, cpu: os.cpus()[0]?.model, rate, seconds, warmupSeconds: warmup, concurrency, reviewBytes: bodies[0]!.bytes.length, podBytes, answerBytes, pinning, loadAverage: { start: load0, end: load1 }, machineBusy: busy },
    phases,
    targets,
  };
  const out = path.join(import.meta.dirname, 'results');
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, 'webhook.json');
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`  results: ${path.relative(process.cwd(), file)}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Entry: the child process (--role server) or the benchmark.
if (flags.role === 'server') {
  await serve();
} else {
  process.on('exit', killAllNow);
  try {
    await main();
  } finally {
    await killAll();
  }
}

async function serve(): Promise<void> {
  const ca = await setupCertificateAuthority({ trustDomain: TRUST_DOMAIN, store: new FileCaStore(path.join(flags.dir, 'ca')), log: silentLogger, keyType: 'ec' });
  const serving = ca.issueServingCertificate({ dnsNames: [SERVER_NAME, `istiod.istio-system.svc.${TRUST_DOMAIN}`], ttlSec: 3600 });
  const server = await startWebhookServer({
    host: '127.0.0.1',
    port: 0,
    tls: { getCertificate: () => ({ key: serving.key, cert: serving.certChain }) },
    registry: new Registry(),
    config: () => resolveInjectorConfig({ mesh: { trustDomain: TRUST_DOMAIN }, values: { proxyImage: 'mizzen/proxy:bench' } }),
    log: silentLogger,
  });
  process.on('message', (m: string) => {
    if (m === 'cpu') process.send!({ cpu: process.cpuUsage() });
    if (m === 'stop') void server.close().then(() => process.exit(0));
  });
  process.send!({ port: server.port, roots: serving.roots, cpu: process.cpuUsage() });
}
