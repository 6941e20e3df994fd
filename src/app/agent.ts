/**
 * `mizzen agent`: the workload agent in the `istio-proxy` container, as Istio's pilot-agent `proxy` command
 * (injection-and-proxyless.md A2, B4; reliability-security.md §5). Two halves:
 * - identity (src/agent/config, cert-manager, sds-server): the workload certificate from the CA, served to Envoy over
 *   SDS on the bootstrap's socket;
 * - process (src/agent/envoy-process, status-server, probes): Envoy started, restarted and drained; the status port
 *   15020 with `/healthz/ready` (behind Envoy's 15021), the rewritten app probes and the merged Prometheus stats.
 *
 * Start order: identity first (Envoy asks SDS for its certificates as soon as it starts), then the status port (the
 * kubelet's probes get answers early), then the bootstrap and Envoy. Termination (SIGTERM, or POST /quitquitquit on
 * 15020): drain Envoy, wait terminationDrainDuration, stop it, then the status port and the identity half. If Envoy
 * cannot run (binary missing, crash loop) the agent stops everything and ends with exit code 1 and the reason.
 *
 * Proxyless gRPC (DISABLE_ENVOY=true or ISTIO_META_GENERATOR=grpc): no Envoy and no SDS; the agent writes the gRPC
 * bootstrap and the certificate files (src/agent/grpc-agent.ts), and `/healthz/ready` waits for them.
 */
import fs from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { certManagerFromConfig } from '../agent/cert-manager.ts';
import { parseAgentConfig, parseGoDuration, splitHostPort, DEFAULT_CA_ADDR, DEFAULT_CA_SERVER_NAME, formatConfigErrors, type AgentConfig, type Env } from '../agent/config.ts';
import { checkEnvoyBinary, EnvoyProcess, type EnvoyOutcome, type RestartPolicy } from '../agent/envoy-process.ts';
import { CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE, startProxylessOutputs, type ProxylessOutputs } from '../agent/grpc-agent.ts';
import { parseAppProbers } from '../agent/probes.ts';
import { SdsServer } from '../agent/sds-server.ts';
import { parsePrometheusAnnotations, startStatusServer, type ReadinessProbe, type StatusServer } from '../agent/status-server.ts';
import { fail, ok, type Result } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { renderBootstrap } from './bootstrap.ts';
import { VERSION } from './server.ts';

/** A part of the agent with its own lifecycle: started before Envoy, stopped after it. */
export interface AgentComponent {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Joins `/healthz/ready` when present. */
  readiness?: ReadinessProbe;
}

/**
 * Builders of the identity half, replaceable in tests (e.g. `identity: () => []` where no CA runs). Envoy mode uses
 * `identity`, proxyless mode `proxyless`; both default to the functions below.
 */
export interface AgentComponents {
  identity?: (config: AgentConfig, log: Logger) => AgentComponent[];
  proxyless?: (config: AgentConfig, log: Logger) => AgentComponent[];
}

/** Envoy mode: the certificate manager (CA_ADDR) and the SDS server on the bootstrap's socket. */
export function identityComponents(config: AgentConfig, log: Logger): AgentComponent[] {
  const certs = certManagerFromConfig(config, log.child({ scope: 'certs' }));
  const sds = new SdsServer({ source: certs, socketPath: config.sdsSocketPath, log: log.child({ scope: 'sds' }) });
  return [
    { name: 'certificates', start: async () => certs.start(), stop: async () => certs.stop() },
    { name: 'sds', start: () => sds.start(), stop: () => sds.stop() },
  ];
}

/**
 * Proxyless mode: the certificate manager, the gRPC bootstrap (GRPC_XDS_BOOTSTRAP) and the OUTPUT_CERTS files. Ready
 * as istio-agent's grpcready probe: the bootstrap exists and so do the certificate files its file_watcher names.
 */
export function proxylessComponents(config: AgentConfig, log: Logger): AgentComponent[] {
  const certs = certManagerFromConfig(config, log.child({ scope: 'certs' }));
  let outputs: ProxylessOutputs | undefined;
  const files = [
    ...(config.grpcBootstrapPath ? [config.grpcBootstrapPath] : []),
    ...(config.outputCertsDir ? [KEY_FILE, CERT_CHAIN_FILE, ROOT_CERT_FILE].map((f) => path.join(config.outputCertsDir!, f)) : []),
  ];
  return [
    { name: 'certificates', start: async () => certs.start(), stop: async () => certs.stop() },
    {
      name: 'grpc-bootstrap',
      start: async () => {
        outputs = await startProxylessOutputs(config, certs, log.child({ scope: 'grpc' }));
      },
      stop: async () => outputs?.stop(),
      readiness: {
        name: 'grpc',
        check: async () => {
          const missing = files.find((f) => !fs.existsSync(f));
          return missing ? { ready: false, reason: `${missing} does not exist` } : { ready: true };
        },
      },
    },
  ];
}

/** Command-line flags of `mizzen agent` (Istio's `proxy` flag names where one exists). */
export interface AgentFlags {
  type?: string;
  statusPort?: number;
  envoyBinary?: string;
  /** Use this bootstrap instead of writing one. */
  bootstrap?: string;
  proxyLogLevel?: string;
  proxyComponentLogLevel?: string;
  concurrency?: number;
  /** `<ns>.svc.<suffix>`, as the injector passes it. */
  domain?: string;
}

export interface AgentOptions {
  log: Logger;
  /** The agent's working directory: Istio's relative paths (./etc/istio/proxy, ./var/run/secrets/...) start here. */
  cwd: string;
  proxyType: 'sidecar' | 'router';
  config: AgentConfig;
  statusPort: number;
  statusHost: string;
  adminPort: number;
  appProbers: string | undefined;
  prometheusAnnotations: string | undefined;
  /** Where rewritten probes go: the pod IP, as the kubelet would (REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION → localhost). */
  probeHost: string;
  /** istio-agent's 127.0.0.6 (::6 for IPv6), which the sidecar's iptables rules do not capture. */
  probeLocalAddress: string | undefined;
  envoy: {
    binary: string;
    /** An existing bootstrap, or undefined to write `<configPath>/envoy-rev.json`. */
    bootstrapPath: string | undefined;
    configPath: string;
    discoveryAddress: string;
    drainDurationSec: number;
    logLevel: string;
    componentLogLevel: string;
    concurrency: number | undefined;
    configOverride: string | undefined;
    restart?: Partial<RestartPolicy>;
  };
  terminationDrainMs: number;
  components?: AgentComponents;
}

type ProxyConfigJson = Record<string, unknown>;

const durationMs = (v: unknown): number | undefined => {
  if (typeof v === 'number') return v * 1000;
  if (typeof v !== 'string') return undefined;
  const s = parseGoDuration(v);
  return s === undefined ? undefined : Math.round(s * 1000);
};

/** Reads the downward-API labels file (`key="value"` lines, values Go-quoted). */
export function parsePodInfoLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^=]+)=(".*")\s*$/.exec(line.trim());
    if (!m) continue;
    try {
      out[m[1]!] = JSON.parse(m[2]!) as string;
    } catch {
      out[m[1]!] = m[2]!.slice(1, -1);
    }
  }
  return out;
}

/**
 * Environment and flags → options. Errors are collected and returned one per line. Precedence: flag, then
 * PROXY_CONFIG (the ProxyConfig the injector serialises), then the legacy variables, then Istio's defaults.
 */
export function resolveAgentOptions(env: Env, flags: AgentFlags, cwd: string, log: Logger): Result<AgentOptions, string[]> {
  const errors: string[] = [];
  const proxyType = (flags.type ?? 'sidecar') as AgentOptions['proxyType'];
  if (proxyType !== 'sidecar' && proxyType !== 'router') errors.push(`proxy type must be sidecar or router, not ${JSON.stringify(flags.type)}`);
  const domainSuffix = flags.domain?.includes('.svc.') ? flags.domain.slice(flags.domain.indexOf('.svc.') + 5) : undefined;
  const parsed = parseAgentConfig(env, { cwd, ...(domainSuffix ? { domainSuffix } : {}) });
  if (!parsed.ok) errors.push(formatConfigErrors(parsed.errors));

  let pc: ProxyConfigJson = {};
  if (env.PROXY_CONFIG?.trim()) {
    try {
      pc = JSON.parse(env.PROXY_CONFIG) as ProxyConfigJson;
      if (typeof pc !== 'object' || pc === null || Array.isArray(pc)) throw new Error('not an object');
    } catch (err) {
      errors.push(`PROXY_CONFIG: not a JSON ProxyConfig: ${(err as Error).message}`);
      pc = {};
    }
  }
  const legacyDrain = env.TERMINATION_DRAIN_DURATION_SECONDS?.trim() ? Number(env.TERMINATION_DRAIN_DURATION_SECONDS) * 1000 : undefined;
  const terminationDrainMs = durationMs(pc.terminationDrainDuration) ?? (Number.isFinite(legacyDrain) ? legacyDrain : undefined) ?? 5000;
  const drainDurationSec = (durationMs(pc.drainDuration) ?? 45_000) / 1000;
  const statusPort = flags.statusPort ?? (typeof pc.statusPort === 'number' ? pc.statusPort : 15020);
  const adminPort = typeof pc.proxyAdminPort === 'number' ? pc.proxyAdminPort : 15000;
  const discoveryAddress = typeof pc.discoveryAddress === 'string' && pc.discoveryAddress ? pc.discoveryAddress : DEFAULT_CA_ADDR;
  if (!splitHostPort(discoveryAddress)) errors.push(`PROXY_CONFIG.discoveryAddress: ${JSON.stringify(discoveryAddress)} is not host:port`);
  // Explicit concurrency wins (0 = all cores: no flag); otherwise the CPU limit, as Istio sizes Envoy's workers.
  const cpuLimit = Number(env.ISTIO_CPU_LIMIT);
  const concurrency = flags.concurrency ?? (typeof pc.concurrency === 'number' ? pc.concurrency : Number.isFinite(cpuLimit) && cpuLimit > 0 ? Math.ceil(cpuLimit) : undefined);

  let configOverride: string | undefined;
  const overrideFile = env.ISTIO_BOOTSTRAP_OVERRIDE?.trim();
  if (overrideFile) {
    try {
      configOverride = JSON.stringify(parseYaml(fs.readFileSync(path.resolve(cwd, overrideFile), 'utf8')));
    } catch (err) {
      // istio-agent warns and starts without the override.
      log.warn({ err: (err as Error).message, file: overrideFile }, 'failed to read the bootstrap override');
    }
  }

  if (errors.length > 0 || !parsed.ok) return fail(errors);
  const config = parsed.value;
  const ipv6 = isIP(config.instanceIp) === 6;
  const legacyLocalhost = env.REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION === 'true';
  return ok({
    log,
    cwd,
    proxyType,
    config,
    statusPort,
    statusHost: ipv6 ? '::' : '0.0.0.0',
    adminPort,
    appProbers: env.ISTIO_KUBE_APP_PROBERS,
    // Istio merges app metrics for sidecars only (15020 is exposed on gateway Services).
    prometheusAnnotations: proxyType === 'sidecar' ? env.ISTIO_PROMETHEUS_ANNOTATIONS : undefined,
    probeHost: legacyLocalhost ? 'localhost' : config.instanceIp,
    probeLocalAddress: legacyLocalhost ? undefined : ipv6 ? '::6' : '127.0.0.6',
    envoy: {
      binary: flags.envoyBinary ?? env.ENVOY_BINARY ?? (typeof pc.binaryPath === 'string' && pc.binaryPath ? pc.binaryPath : '/usr/local/bin/envoy'),
      bootstrapPath: flags.bootstrap ? path.resolve(cwd, flags.bootstrap) : undefined,
      configPath: path.resolve(cwd, typeof pc.configPath === 'string' && pc.configPath ? pc.configPath : './etc/istio/proxy'),
      discoveryAddress,
      drainDurationSec,
      logLevel: flags.proxyLogLevel ?? 'warning',
      componentLogLevel: flags.proxyComponentLogLevel ?? 'misc:error',
      concurrency,
      configOverride,
    },
    terminationDrainMs,
  });
}

/** Writes the Envoy bootstrap for this pod (`<configPath>/envoy-rev.json`, Istio's name) and returns its path. */
export function writeBootstrap(o: AgentOptions): string {
  const c = o.config;
  const labelsFile = path.resolve(o.cwd, './etc/istio/pod/labels');
  let labels: Record<string, string> = (c.nodeMetadata.LABELS as Record<string, string> | undefined) ?? {};
  if (fs.existsSync(labelsFile)) labels = { ...labels, ...parsePodInfoLabels(fs.readFileSync(labelsFile, 'utf8')) };
  const host = splitHostPort(o.envoy.discoveryAddress)?.host ?? '';
  const json = renderBootstrap(
    {
      proxyType: o.proxyType,
      podName: c.podName,
      namespace: c.namespace,
      ip: c.instanceIp,
      domainSuffix: c.dnsDomain.slice(`${c.namespace}.svc.`.length),
      labels,
      serviceAccount: c.serviceAccount ?? 'default',
      clusterId: c.clusterId,
      xdsAddress: o.envoy.discoveryAddress,
      xdsSan: isIP(host) === 0 && host !== 'localhost' ? host : DEFAULT_CA_SERVER_NAME,
      delta: true,
      viaAgent: false,
      istioVersion: VERSION,
    },
    'json',
  );
  fs.mkdirSync(o.envoy.configPath, { recursive: true });
  const file = path.join(o.envoy.configPath, 'envoy-rev.json');
  fs.writeFileSync(file, json, { mode: 0o644 });
  return file;
}

export interface RunningAgent {
  readonly statusPort: number;
  readonly envoy: EnvoyProcess | undefined;
  /** Drain and stop (idempotent); resolves when everything has stopped. */
  shutdown(reason: string): Promise<void>;
  /** Settles with the process exit code: 0 after shutdown, 1 when Envoy could not be kept running. */
  readonly done: Promise<{ code: number; message?: string }>;
}

/** Starts the agent. Throws (with everything started so far stopped) when a part cannot start. */
export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  const log = o.log;
  const probers = parseAppProbers(o.appProbers);
  if (!probers.ok) throw new Error(`failed to decode app prober config: ${probers.errors.join('; ')}`);
  const metrics = parsePrometheusAnnotations(o.prometheusAnnotations, o.statusPort);
  if (!metrics.ok) throw new Error(metrics.errors);

  const proxyless = o.config.mode === 'proxyless';
  // Before anything binds a socket or writes a file: a missing Envoy is the most common misconfiguration.
  const binaryProblem = proxyless ? undefined : checkEnvoyBinary(o.envoy.binary);
  if (binaryProblem) throw binaryProblem;
  const components = proxyless ? (o.components?.proxyless ?? proxylessComponents)(o.config, log) : (o.components?.identity ?? identityComponents)(o.config, log);
  const started: AgentComponent[] = [];
  let status: StatusServer | undefined;
  let envoy: EnvoyProcess | undefined;
  let resolveDone!: (r: { code: number; message?: string }) => void;
  const done = new Promise<{ code: number; message?: string }>((r) => (resolveDone = r));
  let stopping: Promise<void> | undefined;

  const stopRest = async () => {
    await status?.close().catch((err) => log.warn({ err }, 'closing the status server failed'));
    for (const c of [...started].reverse()) await c.stop().catch((err) => log.warn({ err, component: c.name }, 'stopping failed'));
  };
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason }, 'agent terminating');
      if (envoy) await envoy.shutdown();
      await stopRest();
      log.info('agent has successfully terminated');
      resolveDone({ code: 0 });
    })();
    return stopping;
  };

  try {
    for (const c of components) {
      await c.start();
      started.push(c);
    }
    if (!proxyless) {
      const bootstrapPath = o.envoy.bootstrapPath ?? writeBootstrap(o);
      envoy = new EnvoyProcess({
        binary: o.envoy.binary,
        configPath: bootstrapPath,
        cwd: o.cwd,
        proxyType: o.proxyType,
        drainDurationSec: o.envoy.drainDurationSec,
        terminationDrainMs: o.terminationDrainMs,
        logLevel: o.envoy.logLevel,
        componentLogLevel: o.envoy.componentLogLevel,
        ...(o.envoy.concurrency !== undefined ? { concurrency: o.envoy.concurrency } : {}),
        ...(o.envoy.configOverride ? { configOverride: o.envoy.configOverride } : {}),
        ...(o.envoy.restart ? { restart: o.envoy.restart } : {}),
        ipv6: isIP(o.config.instanceIp) === 6,
        adminPort: o.adminPort,
        log: log.child({ scope: 'envoy' }),
      });
    }
    const readiness: ReadinessProbe[] = [...(envoy ? [envoy] : []), ...started.flatMap((c) => (c.readiness ? [c.readiness] : []))];
    status = await startStatusServer({
      host: o.statusHost,
      port: o.statusPort,
      probers: probers.value,
      probeTarget: { host: o.probeHost, ...(o.probeLocalAddress ? { localAddress: o.probeLocalAddress } : {}) },
      readiness,
      ...(envoy ? { envoyStatsUrl: `http://127.0.0.1:${o.adminPort}/stats/prometheus` } : {}),
      ...(metrics.value ? { appMetrics: metrics.value } : {}),
      onQuit: () => void shutdown('/quitquitquit'),
      ...(envoy ? { onDrain: () => void envoy?.drain() } : {}),
      log: log.child({ scope: 'status' }),
    });
    if (envoy) {
      const supervised = envoy;
      await supervised.start();
      void supervised.done.then((outcome: EnvoyOutcome) => {
        if (outcome.kind === 'stopped' || stopping) return;
        // Envoy is gone for good: stop the rest and report why.
        stopping = (async () => {
          await stopRest();
          resolveDone({ code: 1, message: outcome.error.message });
        })();
      });
    }
  } catch (err) {
    await envoy?.stop();
    await stopRest();
    throw err;
  }
  return { statusPort: status.port, envoy, shutdown, done };
}
