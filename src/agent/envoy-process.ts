/**
 * Envoy under the agent: start it as istio-agent does, watch it, drain it on termination, and tell whether it is ready.
 *
 * Command line (istio pkg/envoy/proxy.go `args`): `-c <bootstrap> --drain-time-s <drainDuration>
 * --drain-strategy immediate --local-address-ip-version v4|v6 --file-flush-interval-msec 1000 --disable-hot-restart
 * --allow-unknown-static-fields`, then `-l <level>` and `--component-log-level <a:b,...>` (from a proxyLogLevel such
 * as `warning` or `info,misc:error`), `--config-yaml <override>` and `--concurrency <n>` when set. Hot restart is off,
 * so there is no `--parent-shutdown-time-s` (Istio dropped it with hot restart; it only governs a hot-restart parent).
 *
 * Termination (pkg/envoy/agent.go `terminate`): POST admin `/drain_listeners?inboundonly&graceful` for a sidecar
 * (`?graceful` for a gateway), wait `terminationDrainDuration` (default 5 s), then stop Envoy (SIGTERM, SIGKILL after
 * a grace period).
 *
 * Crashes: istio-agent exits when Envoy does and lets the kubelet restart the container. Outside Kubernetes nothing
 * would, so Envoy is restarted here with exponential backoff; a run shorter than `minUptimeMs` is a fast failure, and
 * `maxFastFailures` of them in a row end supervision with an EnvoyError (the agent then exits non-zero, which a
 * kubelet shows as CrashLoopBackOff as before).
 *
 * Readiness (pilot/cmd/pilot-agent/status/ready/probe.go, status/util/stats.go): Envoy has accepted its first CDS
 * and LDS (`cluster_manager.cds.update_success` and `listener_manager.lds.update_success` > 0), its
 * `server.state` is LIVE (0) and `listener_manager.workers_started` is 1, read from admin
 * `/stats?usedonly&filter=...`. Both facts are cached once true, as istio-agent does, but only for the current Envoy
 * process: a restarted Envoy must prove them again.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from '../shared/log.ts';

export interface RestartPolicy {
  /** First wait before a restart; doubles per consecutive fast failure. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A run shorter than this is a fast failure. */
  minUptimeMs: number;
  /** Consecutive fast failures after which supervision stops with an error. */
  maxFastFailures: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialBackoffMs: 1000, maxBackoffMs: 30_000, minUptimeMs: 10_000, maxFastFailures: 5 };

export interface EnvoyOptions {
  /** The envoy executable (istio-proxy: /usr/local/bin/envoy). */
  binary: string;
  /** The bootstrap file, `-c`. */
  configPath: string;
  /** ProxyConfig.drainDuration in seconds → `--drain-time-s` (Istio default 45). */
  drainDurationSec?: number;
  /** ProxyConfig.terminationDrainDuration: the wait between the drain request and stopping Envoy (default 5000). */
  terminationDrainMs?: number;
  /** `sidecar` drains inbound listeners only; `router` (gateway) drains all. */
  proxyType?: 'sidecar' | 'router';
  /** proxyLogLevel, e.g. `warning` or `info,misc:error` (component parts become --component-log-level). */
  logLevel?: string;
  /** proxyComponentLogLevel, used when logLevel names no component (Istio default `misc:error`). */
  componentLogLevel?: string;
  concurrency?: number;
  /** All of the pod's IPs are IPv6 → `--local-address-ip-version v6`. */
  ipv6?: boolean;
  /** Bootstrap override (JSON), passed as `--config-yaml` (ISTIO_BOOTSTRAP_OVERRIDE). */
  configOverride?: string;
  adminHost?: string;
  adminPort?: number;
  /** Timeout of each admin request (istio-agent's PROXY_READINESS_PROBE_TIMEOUT, 3 s). */
  adminTimeoutMs?: number;
  restart?: Partial<RestartPolicy>;
  /** After SIGTERM, how long before SIGKILL. */
  killGraceMs?: number;
  /** Envoy's working directory: the bootstrap's relative socket paths resolve here (default: the agent's). */
  cwd?: string;
  /** Environment of the Envoy process (default: the agent's). */
  env?: NodeJS.ProcessEnv;
  /** Envoy's stdout/stderr go to the agent's, as istio-agent does. */
  stdio?: StdioOptions;
  log: Logger;
}

/** Why supervision ended with an error; `message` is meant for the operator as it stands. */
export class EnvoyError extends Error {
  readonly reason: 'binary-missing' | 'binary-not-executable' | 'spawn-failed' | 'crash-loop';
  constructor(reason: EnvoyError['reason'], message: string) {
    super(message);
    this.name = 'EnvoyError';
    this.reason = reason;
  }
}

export type EnvoyOutcome = { kind: 'stopped' } | { kind: 'failed'; error: EnvoyError };

export interface ReadyState {
  ready: boolean;
  reason?: string;
}

/** proxyLogLevel → Envoy's `-l` and `--component-log-level` (istio pkg/envoy/proxy.go splitComponentLog). */
export function splitComponentLog(level: string): { level?: string; components: string[] } {
  let base: string | undefined;
  const components: string[] = [];
  for (const part of level.split(',')) {
    const pieces = part.split(':');
    if (pieces.length === 1 && pieces[0]) base = pieces[0];
    else if (pieces.length === 2) components.push(part);
  }
  return { ...(base ? { level: base } : {}), components };
}

/** The Envoy command line, in istio-agent's order. */
export function envoyArgs(o: Omit<EnvoyOptions, 'log' | 'binary' | 'cwd'>): string[] {
  const args = [
    '-c',
    o.configPath,
    '--drain-time-s',
    String(Math.trunc(o.drainDurationSec ?? 45)),
    '--drain-strategy',
    'immediate', // clients are told as soon as the drain starts
    '--local-address-ip-version',
    o.ipv6 ? 'v6' : 'v4',
    '--file-flush-interval-msec',
    '1000',
    '--disable-hot-restart',
    '--allow-unknown-static-fields',
  ];
  const { level, components } = splitComponentLog(o.logLevel ?? 'warning');
  if (level) args.push('-l', level);
  if (components.length > 0) args.push('--component-log-level', components.join(','));
  else if (o.componentLogLevel) args.push('--component-log-level', o.componentLogLevel);
  if (o.configOverride) args.push('--config-yaml', o.configOverride);
  if (o.concurrency && o.concurrency > 0) args.push('--concurrency', String(o.concurrency));
  return args;
}

// ---- admin ------------------------------------------------------------------------------------------------------

const MAX_ADMIN_BODY = 1024 * 1024;
const UPDATE_STATS = '^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$';
const READY_STATS = '^(server\\.state|listener_manager\\.workers_started)';
/** envoy.admin.v3.ServerInfo.State */
const SERVER_STATES = ['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'];

/** The few admin calls the agent makes, on loopback. */
export class EnvoyAdmin {
  readonly base: string;
  private readonly timeoutMs: number;
  constructor(host = '127.0.0.1', port = 15000, timeoutMs = 3000) {
    this.base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.timeoutMs = timeoutMs;
  }

  async request(method: 'GET' | 'POST', pathAndQuery: string): Promise<string> {
    const res = await fetch(this.base + pathAndQuery, { method, signal: AbortSignal.timeout(this.timeoutMs) });
    const text = (await res.text()).slice(0, MAX_ADMIN_BODY);
    if (res.status !== 200) throw new Error(`envoy admin ${method} ${pathAndQuery}: HTTP ${res.status}`);
    return text;
  }

  /** `/stats?usedonly&filter=<regex>` parsed into name → value (`name: value` lines). */
  async stats(filter: string): Promise<Map<string, number>> {
    const text = await this.request('GET', `/stats?usedonly&filter=${encodeURIComponent(filter)}`);
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const value = Number(line.slice(i + 1).trim());
      if (Number.isFinite(value)) out.set(line.slice(0, i).trim(), value);
    }
    return out;
  }

  drainListeners(inboundOnly: boolean): Promise<string> {
    return this.request('POST', inboundOnly ? '/drain_listeners?inboundonly&graceful' : '/drain_listeners?graceful');
  }
}

// ---- supervisor -------------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class EnvoyProcess {
  readonly name = 'envoy';
  readonly admin: EnvoyAdmin;
  /** Settles when supervision ends: stopped on request, or failed (binary missing, crash loop). */
  readonly done: Promise<EnvoyOutcome>;
  private readonly o: EnvoyOptions;
  private readonly policy: RestartPolicy;
  private readonly log: Logger;
  private child: ChildProcess | undefined;
  private childExit: Promise<void> = Promise.resolve();
  private startedAt = 0;
  private epochCount = 0;
  private fastFailures = 0;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private finish!: (o: EnvoyOutcome) => void;
  private finished = false;
  /** Readiness facts for the current epoch (reset on every start). */
  private configReceived = false;
  private live = false;

  constructor(options: EnvoyOptions) {
    this.o = options;
    this.policy = { ...DEFAULT_RESTART_POLICY, ...options.restart };
    this.log = options.log;
    this.admin = new EnvoyAdmin(options.adminHost, options.adminPort, options.adminTimeoutMs);
    this.done = new Promise((r) => (this.finish = r));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }
  /** Number of Envoy processes started so far (istio-agent's epochs, without hot restart). */
  get epochs(): number {
    return this.epochCount;
  }
  get running(): boolean {
    return this.child !== undefined;
  }

  args(): string[] {
    return envoyArgs(this.o);
  }

  /** Checks the binary and starts the first Envoy. Throws EnvoyError (and settles `done`) if it cannot. */
  async start(): Promise<void> {
    const problem = checkEnvoyBinary(this.o.binary);
    if (problem) {
      this.end({ kind: 'failed', error: problem });
      throw problem;
    }
    await this.spawnEpoch();
  }

  private spawnEpoch(): Promise<void> {
    const args = this.args();
    this.configReceived = false;
    this.live = false;
    this.epochCount++;
    this.log.info({ binary: this.o.binary, args, epoch: this.epochCount - 1 }, 'starting envoy');
    const child = spawn(this.o.binary, args, { env: this.o.env, cwd: this.o.cwd, stdio: this.o.stdio ?? 'inherit' });
    this.child = child;
    this.startedAt = Date.now();
    let exited!: () => void;
    this.childExit = new Promise((r) => (exited = r));
    let spawned = false;
    return new Promise((resolve, reject) => {
      child.once('spawn', () => {
        spawned = true;
        resolve();
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        // After a successful spawn, errors are failed kill() calls: the exit handler covers the process.
        if (spawned) return this.log.warn({ err }, 'signalling envoy failed');
        // The binary vanished or cannot be run.
        const error = new EnvoyError('spawn-failed', `cannot start envoy (${this.o.binary}): ${err.message}`);
        this.child = undefined;
        exited();
        this.end({ kind: 'failed', error });
        reject(error);
      });
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        exited();
        this.onExit(code, signal);
      });
    });
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    const uptimeMs = Date.now() - this.startedAt;
    if (this.stopping) {
      this.log.info({ code, signal }, 'envoy exited');
      this.end({ kind: 'stopped' });
      return;
    }
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    if (signal === 'SIGKILL') this.log.warn('envoy was killed (SIGKILL): it may have run out of memory; check memory usage and limits');
    if (uptimeMs < this.policy.minUptimeMs) this.fastFailures++;
    else this.fastFailures = 0;
    if (this.fastFailures >= this.policy.maxFastFailures) {
      const error = new EnvoyError(
        'crash-loop',
        `envoy (${this.o.binary}) exited ${this.fastFailures} times in a row within ${this.policy.minUptimeMs} ms of starting (last: ${how}); giving up — see envoy's log above`,
      );
      this.log.error({ err: error }, error.message);
      this.end({ kind: 'failed', error });
      return;
    }
    const backoff = Math.min(this.policy.maxBackoffMs, this.policy.initialBackoffMs * 2 ** Math.max(0, this.fastFailures - 1));
    this.log.error({ code, signal, uptimeMs, backoffMs: backoff, fastFailures: this.fastFailures }, `envoy exited unexpectedly (${how}); restarting in ${backoff} ms`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping || this.finished) return;
      const problem = checkEnvoyBinary(this.o.binary);
      if (problem) return this.end({ kind: 'failed', error: problem });
      this.spawnEpoch().catch(() => undefined); // a spawn failure has already ended supervision
    }, backoff);
  }

  private end(outcome: EnvoyOutcome): void {
    if (this.finished) return;
    this.finished = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.finish(outcome);
  }

  /** Starts a graceful drain of Envoy's listeners (inbound only for a sidecar), without stopping it. */
  async drain(): Promise<void> {
    if (!this.child) return;
    try {
      await this.admin.drainListeners((this.o.proxyType ?? 'sidecar') === 'sidecar');
      this.log.info('envoy draining');
    } catch (err) {
      this.log.warn({ err }, 'could not ask envoy to drain its listeners');
    }
  }

  /** SIGTERM handling: drain, wait terminationDrainDuration, then stop Envoy. */
  async shutdown(): Promise<EnvoyOutcome> {
    if (this.finished) return this.done;
    this.stopping = true; // from here an exit is expected, not a crash
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    if (this.child) {
      await this.drain();
      const wait = this.o.terminationDrainMs ?? 5000;
      this.log.info({ terminationDrainMs: wait }, 'graceful termination period started');
      // Envoy may exit by itself meanwhile (e.g. /quitquitquit); no need to wait then.
      await Promise.race([sleep(wait), this.childExit]);
    }
    return this.stop();
  }

  /** Stops Envoy now (SIGTERM, then SIGKILL after killGraceMs) and ends supervision. */
  async stop(): Promise<EnvoyOutcome> {
    this.stopping = true;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    const child = this.child;
    if (!child) {
      this.end({ kind: 'stopped' });
      return this.done;
    }
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), this.o.killGraceMs ?? 5000);
    await this.childExit;
    clearTimeout(killer);
    this.end({ kind: 'stopped' });
    return this.done;
  }

  /** istio-agent's readiness of Envoy: initial CDS and LDS accepted, server LIVE, workers started. */
  async check(): Promise<ReadyState> {
    if (!this.child) return { ready: false, reason: this.finished ? 'envoy is not running' : 'envoy is starting' };
    const epoch = this.epochCount;
    try {
      if (!this.configReceived) {
        const s = await this.admin.stats(UPDATE_STATS);
        const v = (n: string) => s.get(n) ?? 0;
        if (!(v('cluster_manager.cds.update_success') > 0 && v('listener_manager.lds.update_success') > 0)) {
          return {
            ready: false,
            reason:
              `config not received from the control plane: cds updates: ${v('cluster_manager.cds.update_success')} successful, ` +
              `${v('cluster_manager.cds.update_rejected')} rejected; lds updates: ${v('listener_manager.lds.update_success')} successful, ` +
              `${v('listener_manager.lds.update_rejected')} rejected`,
          };
        }
        if (epoch === this.epochCount) this.configReceived = true;
      }
      if (!this.live) {
        const s = await this.admin.stats(READY_STATS);
        const state = s.get('server.state');
        const workers = s.get('listener_manager.workers_started');
        if (state === undefined) return { ready: false, reason: 'server.state is not yet updated' };
        if (workers === undefined) return { ready: false, reason: 'listener_manager.workers_started is not yet updated' };
        if (state !== 0) return { ready: false, reason: `server is not live, current state is: ${SERVER_STATES[state] ?? state}` };
        if (workers !== 1) return { ready: false, reason: 'workers have not yet started' };
        if (epoch === this.epochCount) this.live = true;
      }
      return { ready: true };
    } catch (err) {
      return { ready: false, reason: `envoy admin not reachable: ${(err as Error).message}` };
    }
  }
}

/** Why `binary` cannot be run as Envoy, or undefined if it can. */
export function checkEnvoyBinary(binary: string): EnvoyError | undefined {
  try {
    fs.accessSync(binary, fs.constants.X_OK);
    if (!fs.statSync(binary).isFile()) return new EnvoyError('binary-not-executable', `envoy binary ${binary} is not a file`);
    return undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return new EnvoyError(
        'binary-missing',
        `envoy binary not found at ${binary}: set ENVOY_BINARY (or --envoy-binary) to the envoy executable, or DISABLE_ENVOY=true to run the agent without Envoy (proxyless gRPC)`,
      );
    }
    return new EnvoyError('binary-not-executable', `envoy binary ${binary} cannot be executed: ${(err as Error).message}`);
  }
}
