/**
 * `mizzen serve` as a real child process, for tests that must kill a replica outright: SIGKILL gives it no chance to
 * release a Lease, send GOAWAY or close a stream, exactly like a crashed pod or a lost node. Every port is 0 (the OS
 * picks) and read back from the server's own "mizzen is serving" log line, so two replicas never race for a port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

const REPO = path.resolve(import.meta.dirname, '..', '..');
const MAIN = path.join(REPO, 'src', 'cli', 'main.ts');
/** Lines kept per process for the failure report: enough to see the last pushes, elections and errors. */
const KEPT_LINES = 2_000;

/** One pino line as the server wrote it (`time` is Date.now() of the child: the same clock as the test's). */
export type LogLine = Record<string, unknown> & { time?: number; msg?: string; level?: number };

export interface MizzenProcess {
  readonly name: string;
  readonly pid: number;
  readonly xdsPort: number;
  readonly monitoringPort: number;
  /** 0 when the CA does not run (file mode without --ca-dir). */
  readonly secureXdsPort: number;
  readonly logs: readonly LogLine[];
  readonly alive: boolean;
  /** Resolves when the process has exited, for whatever reason. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first log line (already seen or still to come) that satisfies `match`. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  /** GET a JSON debug endpoint of the monitoring port, e.g. `/debug/syncz`. */
  debug<T>(pathAndQuery: string): Promise<T>;
  /** SIGKILL, and wait until the kernel has reaped it (its sockets are closed by then). */
  kill(): Promise<void>;
  /** SIGTERM (graceful), then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** The last `n` lines of its output, for failure messages. */
  tail(n?: number): string;
}

export interface MizzenProcessOptions {
  /** Used in messages and as the lease identity when `env.POD_NAME` is not given. */
  name: string;
  /** Flags after `serve` beyond the ports and host, e.g. ['--config', dir] or ['--kubeconfig', file]. */
  args: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

/** Children still running when the test worker exits are killed: a failed test must not leak control planes. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export async function startMizzenProcess(o: MizzenProcessOptions): Promise<MizzenProcess> {
  const args = [MAIN, 'serve', '--host', '127.0.0.1', '--xds-port', '0', '--monitoring-port', '0', '--secure-xds-port', '0', '--webhook-port', '0', '--log-level', 'info', ...o.args];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POD_NAME: o.name, ...o.env } });
  if (!child.pid) throw new Error(`${o.name}: could not start mizzen`);
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  let alive = true;
  void exited.then(() => (alive = false));

  const logs: LogLine[] = [];
  const watchers = new Set<(line: LogLine) => void>();
  const record = (line: LogLine) => {
    logs.push(line);
    if (logs.length > KEPT_LINES) logs.splice(0, logs.length - KEPT_LINES);
    for (const w of watchers) w(line);
  };
  // The server logs pino JSON lines (to stderr); anything else is Node's own output (warnings, a crash's stack).
  for (const input of [child.stdout!, child.stderr!]) {
    readline.createInterface({ input }).on('line', (text) => {
      try {
        record(JSON.parse(text) as LogLine);
      } catch {
        record({ msg: text, level: 40 });
      }
    });
  }

  const tail = (n = 40) => logs.slice(-n).map((l) => JSON.stringify(l)).join('\n');
  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs: number, what: string) =>
    new Promise<LogLine>((resolve, reject) => {
      const seen = logs.find(match);
      if (seen) return resolve(seen);
      const done = (fn: () => void) => {
        watchers.delete(watcher);
        clearTimeout(timer);
        fn();
      };
      const watcher = (line: LogLine) => match(line) && done(() => resolve(line));
      const timer = setTimeout(() => done(() => reject(new Error(`${o.name}: no log line for ${what} within ${timeoutMs} ms; last lines:\n${tail()}`))), timeoutMs);
      watchers.add(watcher);
      void exited.then(({ code, signal }) => done(() => reject(new Error(`${o.name} exited (code ${code}, signal ${signal}) before ${what}; last lines:\n${tail()}`))));
    });

  const serving = await waitForLog((l) => l.msg === 'mizzen is serving', o.readyTimeoutMs ?? 60_000, 'readiness').catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await exited;
    throw err;
  });
  const port = (key: string) => (typeof serving[key] === 'number' ? serving[key] : 0);

  const proc: MizzenProcess = {
    name: o.name,
    pid: child.pid,
    xdsPort: port('xds'),
    monitoringPort: port('monitoring'),
    secureXdsPort: port('secureXds'),
    logs,
    get alive() {
      return alive;
    },
    exited,
    waitForLog,
    async debug<T>(pathAndQuery: string): Promise<T> {
      const res = await fetch(`http://127.0.0.1:${proc.monitoringPort}${pathAndQuery}`, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`${o.name} ${pathAndQuery}: HTTP ${res.status}`);
      return (await res.json()) as T;
    },
    async kill() {
      if (alive) child.kill('SIGKILL');
      await exited;
    },
    async stop(graceMs = 10_000) {
      if (!alive) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    tail,
  };
  return proc;
}

/** One connection as /debug/syncz reports it. */
export interface SynczEntry {
  id: string;
  node?: string;
  mode: string;
  watches: Array<{ typeUrl: string; synced: boolean; lastNack?: { message: string } }>;
}

/** The node ids connected to `p` whose every watch has ACKed its last response. */
export async function syncedNodes(p: MizzenProcess): Promise<Set<string>> {
  const conns = await p.debug<SynczEntry[]>('/debug/syncz');
  return new Set(conns.filter((c) => c.node && c.watches.length > 0 && c.watches.every((w) => w.synced)).map((c) => c.node!));
}

/**
 * Waits until every node in `nodeIds` is connected to `p` and synced there. A proxy is synced on its side once it has
 * the responses; the server sees it only once the ACKs have arrived, a moment later.
 */
export async function waitSyncedOn(p: MizzenProcess, nodeIds: readonly string[], timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const synced = await syncedNodes(p);
    const missing = nodeIds.filter((id) => !synced.has(id));
    if (missing.length === 0) return;
    if (Date.now() > end) throw new Error(`${missing.length} proxies not synced on ${p.name} within ${timeoutMs} ms, e.g. ${missing[0]}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every NACK the proxies connected to `p` sent: mizzen must never send what a client rejects. */
export async function nacksOn(p: MizzenProcess): Promise<string[]> {
  const conns = await p.debug<SynczEntry[]>('/debug/syncz');
  return conns.flatMap((c) => c.watches.filter((w) => w.lastNack).map((w) => `${c.node} ${w.typeUrl}: ${w.lastNack!.message}`));
}
