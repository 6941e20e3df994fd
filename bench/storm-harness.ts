/**
 * What a reconnect storm needs around the load generator, shared by bench/storm.ts and the smaller
 * test/faults/reconnect-storm.test.ts: the load generator child with reconnecting streams, a real restart of
 * `mizzen serve` (SIGKILL, then a new process on the same ports), and the server's admission counters sampled from
 * /metrics with the times each sample was asked for and answered, so a rate bound can be checked without trusting
 * either side's timing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { now } from './ads-stream.ts';
import type { LoadgenOptions } from './loadgen.ts';
import { scrapeMetrics, sleep, startServer, track, waitReady, type ServerProcess } from './procs.ts';

export interface Loadgen {
  child: ChildProcess;
  send(m: object): void;
  /** The next message matching `match` (messages that arrived before the call are not replayed). */
  wait(match: (m: any) => boolean, timeoutMs: number, what: string): Promise<any>;
}

/** bench/loadgen.ts as a child, talking over IPC; `onMessage` sees every message (progress lines, warnings). */
export function startLoadgen(root: string, options: LoadgenOptions, onMessage: (m: any) => void = () => {}, nodeFlags: string[] = []): Loadgen {
  const child = track(spawn(process.execPath, [...nodeFlags, path.join(root, 'bench', 'loadgen.ts'), JSON.stringify(options)], { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const waiters: Array<{ match: (m: any) => boolean; resolve: (m: any) => void; reject: (e: Error) => void }> = [];
  child.on('message', (m: any) => {
    onMessage(m);
    const i = waiters.findIndex((w) => w.match(m));
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m);
  });
  child.once('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`the load generator exited (code ${code})`));
  });
  const wait = (match: (m: any) => boolean, timeoutMs: number, what: string) =>
    new Promise<any>((resolve, reject) => {
      const w = {
        match,
        resolve: (m: any) => (clearTimeout(timer), resolve(m)),
        reject: (e: Error) => (clearTimeout(timer), reject(e)),
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      waiters.push(w);
    });
  return { child, send: (m) => child.send(m), wait };
}

export interface ServerStart {
  root: string;
  configDir: string;
  logFile: string;
  xdsPort: number;
  monitoringPort: number;
  args: string[];
  nodeFlags?: string[];
}

export interface Restarted {
  server: ServerProcess;
  /** When the new process was spawned and when it answered /ready (ms, the load generator's clock). */
  startedAt: number;
  readyAt: number;
}

/** Kills `previous` outright (SIGKILL: no GOAWAY, no goodbye) and starts a new server on the same ports. */
export async function restartServer(previous: ServerProcess | undefined, start: ServerStart, readyTimeoutMs = 120_000): Promise<Restarted> {
  if (previous && previous.child.exitCode === null && previous.child.signalCode === null) {
    const exited = new Promise((r) => previous.child.once('exit', r));
    previous.child.kill('SIGKILL');
    await exited;
  }
  const startedAt = now();
  const server = await startServer({ root: start.root, configDir: start.configDir, logFile: start.logFile, nodeFlags: start.nodeFlags ?? [], xdsPort: start.xdsPort, monitoringPort: start.monitoringPort, args: start.args });
  await waitReady(server, readyTimeoutMs);
  return { server, startedAt, readyAt: now() };
}

export interface AdmissionSample {
  /** When the scrape was sent and when its answer came back: the server read its counters in between. */
  sentAt: number;
  receivedAt: number;
  admitted: number;
  throttled: number;
}

/**
 * Polls the server's admission counters every `everyMs` until stopped. `startedAt` is when the server process was
 * spawned: its counters were 0 then, a sample that also bounds the streams admitted before /metrics first answers
 * (the xDS port is bound before the monitoring port).
 */
export class AdmissionSampler {
  readonly samples: AdmissionSample[] = [];
  private readonly origin: AdmissionSample;
  private running = true;
  private readonly done: Promise<void>;

  constructor(monitoringPort: number, everyMs: number, startedAt: number) {
    this.origin = { sentAt: startedAt, receivedAt: startedAt, admitted: 0, throttled: 0 };
    this.done = (async () => {
      while (this.running) {
        const sentAt = now();
        const m = await scrapeMetrics(monitoringPort, ['mizzen_xds_streams_admitted', 'mizzen_xds_streams_throttled']);
        const receivedAt = now();
        if (m.mizzen_xds_streams_admitted !== undefined) {
          this.samples.push({ sentAt, receivedAt, admitted: m.mizzen_xds_streams_admitted, throttled: m.mizzen_xds_streams_throttled ?? 0 });
        }
        await sleep(everyMs - (now() - sentAt));
      }
    })();
  }

  /** Stops once a scrape sent after `t` has been answered (or after `timeoutMs`): the counts then include `t`. */
  async stopAfter(t: number, timeoutMs = 10_000): Promise<AdmissionSample[]> {
    const end = now() + timeoutMs;
    while (!this.samples.some((s) => s.sentAt >= t) && now() < end) await sleep(20);
    return this.stop();
  }

  /** Stops polling; the samples, preceded by the zero at process start. */
  async stop(): Promise<AdmissionSample[]> {
    this.running = false;
    await this.done;
    return [this.origin, ...this.samples];
  }
}

/**
 * The token bucket's promise, checked on every pair of samples: the streams admitted between two scrapes are at most
 * burst + rate × (the longest the server's interval between its two reads can have been). Returns the worst excess
 * (≤ 0 when the bound held) and the pair it came from.
 */
export function worstAdmissionExcess(samples: readonly AdmissionSample[], ratePerSecond: number, burst: number): { excess: number; admitted: number; windowMs: number } {
  let worst = { excess: Number.NEGATIVE_INFINITY, admitted: 0, windowMs: 0 };
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length; j++) {
      const admitted = samples[j]!.admitted - samples[i]!.admitted;
      const windowMs = samples[j]!.receivedAt - samples[i]!.sentAt;
      const excess = admitted - (burst + (ratePerSecond * windowMs) / 1000);
      if (excess > worst.excess) worst = { excess, admitted, windowMs };
    }
  }
  return worst;
}

/**
 * The admission rate the samples show: on average from the first scrape that saw a stream admitted to the last that
 * did, and the highest over any ≥ 1 s between scrapes; `admitted`/`throttled` are the server's totals.
 */
export function observedAdmissionRate(samples: readonly AdmissionSample[]): { meanPerSecond: number; peakPerSecond: number; admitted: number; throttled: number } {
  const at = (s: AdmissionSample) => (s.sentAt + s.receivedAt) / 2;
  const first = samples.findIndex((s, k) => k + 1 < samples.length && samples[k + 1]!.admitted > s.admitted);
  let last = -1;
  for (let k = samples.length - 1; k > 0; k--) {
    if (samples[k]!.admitted > samples[k - 1]!.admitted) {
      last = k;
      break;
    }
  }
  if (first < 0 || last <= first) return { meanPerSecond: 0, peakPerSecond: 0, admitted: samples.at(-1)?.admitted ?? 0, throttled: samples.at(-1)?.throttled ?? 0 };
  const s0 = samples[first]!;
  const s1 = samples[last]!;
  const totals = { admitted: samples.at(-1)!.admitted, throttled: samples.at(-1)!.throttled };
  let peak = 0;
  for (let i = first; i < last; i++) {
    for (let j = i + 1; j <= last; j++) {
      const ms = at(samples[j]!) - at(samples[i]!);
      if (ms >= 1000) {
        peak = Math.max(peak, ((samples[j]!.admitted - samples[i]!.admitted) * 1000) / ms);
        break; // the shortest window of ≥ 1 s from i is the tightest
      }
    }
  }
  return {
    meanPerSecond: ((s1.admitted - s0.admitted) * 1000) / (at(s1) - at(s0)),
    peakPerSecond: peak,
    ...totals,
  };
}
