/**
 * Child processes for the benchmark (the mizzen server, the load generator) and what we read about them from /proc.
 * Every child is registered so run.ts can kill it on any exit path: normal end, error, SIGINT, SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

const children = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs` for anything still alive. Only our own children, by pid. */
export async function killAll(graceMs = 3000): Promise<void> {
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive) c.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(50);
  for (const c of alive) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Synchronous last resort for process.on('exit'). */
export function killAllNow(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** A free loopback port (bind to 0, read, close). Racy in theory; fine for one benchmark on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  xdsPort: number;
  monitoringPort: number;
}

/**
 * `mizzen serve` as a child, with its output going to a log file (it logs at warn; anything there is worth a look).
 * Ports are free ones unless given (a restart reuses its predecessor's). The new-stream rate limit is lifted unless
 * `args` set it: the load generator opens every stream at once and, unless told to, does not retry a stream refused
 * with RESOURCE_EXHAUSTED as Envoy would; bench/storm.ts measures the limit itself.
 */
export async function startServer(options: { root: string; configDir: string; logFile: string; nodeFlags: string[]; xdsPort?: number; monitoringPort?: number; args?: string[] }): Promise<ServerProcess> {
  const xdsPort = options.xdsPort ?? (await freePort());
  const monitoringPort = options.monitoringPort ?? (await freePort());
  const out = fs.openSync(options.logFile, 'w');
  const extra = options.args ?? [];
  const limit = extra.includes('--max-new-streams-per-second') ? [] : ['--max-new-streams-per-second', '0'];
  const args = [...options.nodeFlags, 'src/cli/main.ts', 'serve', '--config', options.configDir, '--xds-port', String(xdsPort), '--monitoring-port', String(monitoringPort), '--host', '127.0.0.1', '--log-level', 'warn', ...limit, ...extra];
  const child = track(spawn(process.execPath, args, { cwd: options.root, stdio: ['ignore', out, out] }));
  fs.closeSync(out);
  if (!child.pid) throw new Error('could not start mizzen');
  return { child, pid: child.pid, xdsPort, monitoringPort };
}

export async function waitReady(server: ServerProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (server.child.exitCode !== null) throw new Error(`mizzen exited with code ${server.child.exitCode} before it was ready`);
    try {
      const res = await fetch(`http://127.0.0.1:${server.monitoringPort}/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`mizzen was not ready after ${timeoutMs} ms`);
}

export interface MemoryInfo {
  rssMB: number;
  peakRssMB: number;
}

/** VmRSS (now) and VmHWM (peak since start) of a process, in MiB. */
export function memoryOf(pid: number): MemoryInfo {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMB: kb('VmRSS') / 1024, peakRssMB: kb('VmHWM') / 1024 };
}

/** User + system CPU seconds a process has used (/proc/<pid>/stat fields 14, 15; clock ticks at USER_HZ = 100). */
export function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after it start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A few counters from /metrics (Prometheus text), summed over labels per metric + label set given. */
export async function scrapeMetrics(port: number, names: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line);
      if (m && names.includes(m[1]!)) out[`${m[1]}${m[2] ?? ''}`] = Number(m[3]);
    }
  } catch {
    // a server that cannot answer /metrics is reported by its absence
  }
  return out;
}
