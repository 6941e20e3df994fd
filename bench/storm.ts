/**
 * `npm run bench:storm`: a reconnect storm (issue item "Reconnect storm"; reliability-security.md §9 F1). N proxies
 * (bench/loadgen.ts: raw SotW ADS streams that reopen with Envoy's backoff, base 500 ms, max 30 s) hold full config
 * from `mizzen serve` on the benchmark mesh; the server is killed with SIGKILL and started again on the same ports,
 * once with the new-stream admission limit and once without it. Per restart:
 * - time from spawn to /ready, and per proxy from spawn to its first response and to full config again;
 * - the admission rate the server's counters show (scraped every second) and the streams refused;
 * - the new server's peak RSS (VmHWM) and CPU seconds during the storm;
 * - proxies that ever saw a partial or empty config after the restart (bench/storm-judge.ts; must be 0).
 *
 *   npm run bench:storm -- [--proxies 2000] [--services 1000] [--endpoints-per-service 10] [--rate N]
 *                          [--streams-per-channel 50] [--backoff-base-ms 500] [--backoff-max-ms 30000] [--keep]
 *   BENCH_SCALE=small npm run bench:storm   # 100 services / 5 endpoints each / 200 proxies
 *
 * --rate defaults to the server's own default (istiod's min(15 + 5 × cores, 100)). The first server (the one the
 * proxies connect to before the storm) runs without a limit: that sync is set-up, not measured. Prints a table; writes
 * bench/results/storm-<timestamp>.json and the servers' logs beside it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultNewStreamRate } from '../src/app/xds-connection-limits.ts';
import { now } from './ads-stream.ts';
import { buildServices, namespacesOf, writeMesh } from './mesh-config.ts';
import { cpuSecondsOf, freePort, killAll, killAllNow, memoryOf, sleep, type ServerProcess } from './procs.ts';
import { dist, type Dist } from './report.ts';
import { AdmissionSampler, observedAdmissionRate, restartServer, startLoadgen, worstAdmissionExcess, type Loadgen, type ServerStart } from './storm-harness.ts';

const small = process.env.BENCH_SCALE === 'small';
const { values: flags } = parseArgs({
  options: {
    services: { type: 'string', default: small ? '100' : '1000' },
    'endpoints-per-service': { type: 'string', default: small ? '5' : '10' },
    proxies: { type: 'string', default: small ? '200' : '2000' },
    rate: { type: 'string', default: String(defaultNewStreamRate()) },
    'streams-per-channel': { type: 'string', default: '50' },
    'proxy-namespaces': { type: 'string', default: '5' },
    'backoff-base-ms': { type: 'string', default: '500' },
    'backoff-max-ms': { type: 'string', default: '30000' },
    'budget-s': { type: 'string', default: '900' },
    keep: { type: 'boolean', default: false },
  },
});
const num = (k: keyof typeof flags) => {
  const n = Number(flags[k]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a non-negative number`);
  return n;
};

const ROOT = path.resolve(import.meta.dirname, '..');
const RESULTS = path.join(ROOT, 'bench', 'results');
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const proxies = num('proxies');
const rate = num('rate');
const deadline = Date.now() + num('budget-s') * 1000;
const remaining = (capMs: number) => Math.max(1000, Math.min(capMs, deadline - Date.now()));
const log = (m: string) => process.stderr.write(`[storm ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

const spec = { services: num('services'), endpointsPerService: num('endpoints-per-service'), servicesPerNamespace: 20 };
const services = buildServices(spec);
const namespaces = namespacesOf(services).slice(0, num('proxy-namespaces'));

interface StormResult {
  variant: string;
  admissionLimit: string;
  readyMs: number;
  /** Per proxy, from the new server's spawn. */
  firstResponseMs: Dist;
  fullAgainMs: Dist;
  allFullAgainMs: number;
  admission: { meanPerSecond: number; peakPerSecond: number; admitted: number; refused: number; boundHeld: boolean | 'n/a' };
  peakRssMB: number;
  serverCpuSeconds: number;
  loadgenCpuSeconds: number;
  bytesPerProxy: number;
  streamsEndedBy: Record<string, number>;
  streamsReopened: number;
  proxiesWithPartialConfig: number;
  partialExamples: unknown[];
  rssTimeline: Array<{ s: number; rssMB: number }>;
}

const result: any = {
  scale: {
    services: spec.services,
    endpointsPerService: spec.endpointsPerService,
    proxies,
    mode: 'sotw',
    proxyNamespaces: namespaces.length,
    streamsPerChannel: num('streams-per-channel'),
    backoffMs: { base: num('backoff-base-ms'), max: num('backoff-max-ms') },
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 10) / 10),
    node: process.version,
  },
  setup: {},
  storms: [] as StormResult[],
  errors: [] as string[],
};

/** One restart under the connected proxies; `rateArg` is the server's --max-new-streams-per-second. */
async function storm(lg: Loadgen, previous: ServerProcess, start: (name: string, args: string[]) => ServerStart, variant: string, rateArg: number): Promise<{ server: ServerProcess; r: StormResult }> {
  lg.send({ t: 'arm' });
  const armed = await lg.wait((m) => m.t === 'armed', 30_000, 'the load generator to arm');
  log(`${variant}: reference ${armed.proxiesWithReference}/${proxies} proxies, ${armed.listeners[0]} listeners and ${armed.clusters[0]} clusters each (min)`);
  const resynced = lg.wait((m) => m.t === 'resynced', remaining(600_000), `every proxy full again (${variant})`);
  const { server, startedAt, readyAt } = await restartServer(previous, start(variant, ['--max-new-streams-per-second', String(rateArg)]), remaining(180_000));
  log(`${variant}: killed and restarted; ready after ${Math.round(readyAt - startedAt)} ms`);
  const sampler = new AdmissionSampler(server.monitoringPort, 1000, startedAt);
  const timeline: Array<{ s: number; rssMB: number }> = [];
  const rssTimer = setInterval(() => {
    if (server.child.exitCode === null) timeline.push({ s: Math.round((now() - startedAt) / 1000), rssMB: Math.round(memoryOf(server.pid).rssMB) });
  }, 1000);
  let m: any;
  try {
    m = await resynced;
  } finally {
    clearInterval(rssTimer);
  }
  const samples = await sampler.stopAfter(now());
  const observed = observedAdmissionRate(sampler.samples);
  const fullAgain = (m.fullAgainAt as number[]).map((t) => t - startedAt);
  const r: StormResult = {
    variant,
    admissionLimit: rateArg > 0 ? `${rateArg}/s, burst 1, wait ≤ 1 s` : 'unlimited',
    readyMs: readyAt - startedAt,
    firstResponseMs: dist((m.firstResponseAt as number[]).map((t) => t - startedAt)),
    fullAgainMs: dist(fullAgain),
    allFullAgainMs: Math.max(...fullAgain),
    admission: {
      meanPerSecond: observed.meanPerSecond,
      peakPerSecond: observed.peakPerSecond,
      admitted: observed.admitted,
      refused: observed.throttled,
      boundHeld: rateArg > 0 ? worstAdmissionExcess(samples, rateArg, 1).excess <= 0 : 'n/a',
    },
    peakRssMB: memoryOf(server.pid).peakRssMB,
    serverCpuSeconds: cpuSecondsOf(server.pid),
    loadgenCpuSeconds: m.loadgenCpuSeconds,
    bytesPerProxy: m.traffic.total / proxies,
    streamsEndedBy: m.endedBy,
    streamsReopened: m.reopened,
    proxiesWithPartialConfig: m.partialProxies,
    partialExamples: m.partialExamples,
    rssTimeline: timeline,
  };
  log(`${variant}: all ${proxies} full again ${Math.round(r.allFullAgainMs)} ms after the restart; admitted ${observed.admitted} (peak ${observed.peakPerSecond.toFixed(1)}/s), refused ${observed.throttled}; peak RSS ${Math.round(r.peakRssMB)} MiB; partial ${m.partial}`);
  return { server, r };
}

const fmtMs = (ms: number) => (!Number.isFinite(ms) ? 'never' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const fmtDist = (d: Dist) => `${fmtMs(d.p50)} / ${fmtMs(d.p99)} / ${fmtMs(d.max)}`;
const verdict = (pass: boolean) => (pass ? 'PASS' : 'FAIL');

function table(): string {
  const rows: string[][] = [];
  const s = result.scale;
  rows.push(['scale', `${s.services} services × ${s.endpointsPerService} endpoints, ${s.proxies} proxies (sotw, ${s.proxyNamespaces} namespaces, ${s.streamsPerChannel} streams per connection)`]);
  rows.push(['machine', `${s.cores} cores, ${s.cpuModel}, node ${s.node}; load average at start ${s.loadAverageAtStart.join(' ')}`]);
  rows.push(['client backoff', `jittered exponential, base ${s.backoffMs.base} ms, max ${s.backoffMs.max} ms (Envoy's defaults: 500 ms, 30 s)`]);
  if (result.setup.syncMs !== undefined) rows.push(['set-up: first sync (unlimited)', fmtMs(result.setup.syncMs)]);
  for (const r of result.storms as StormResult[]) {
    rows.push([`restart, admission ${r.admissionLimit}`, '']);
    rows.push(['  spawn → /ready', fmtMs(r.readyMs)]);
    rows.push(['  first response p50 / p99 / max', fmtDist(r.firstResponseMs)]);
    rows.push(['  full config again p50 / p99 / max', `${fmtDist(r.fullAgainMs)}  ${verdict(r.fullAgainMs.p99 <= 120_000)} (F1: p99 ≤ 2 min)`]);
    rows.push(['  admitted streams/s mean / peak (1 s)', `${r.admission.meanPerSecond.toFixed(1)} / ${r.admission.peakPerSecond.toFixed(1)}; bound held: ${r.admission.boundHeld}`]);
    rows.push(['  streams admitted / refused', `${r.admission.admitted} / ${r.admission.refused}`]);
    rows.push(['  server peak RSS / CPU s', `${Math.round(r.peakRssMB)} MiB / ${r.serverCpuSeconds.toFixed(1)}  ${verdict(r.peakRssMB <= 512)} (peak ≤ 0.5 GB, as bench:ads)`]);
    rows.push(['  load generator CPU s (since the kill), bytes per proxy', `${r.loadgenCpuSeconds.toFixed(1)}, ${(r.bytesPerProxy / 2 ** 20).toFixed(2)} MiB`]);
    rows.push(['  streams ended by', Object.entries(r.streamsEndedBy).map(([k, v]) => `${k} ${v}`).join(', ')]);
    rows.push(['  proxies that saw partial/empty config', `${r.proxiesWithPartialConfig}  ${verdict(r.proxiesWithPartialConfig === 0)} (must be 0)`]);
  }
  for (const e of result.errors as string[]) rows.push(['ERROR', e]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([a, b]) => `${a!.padEnd(w)}  ${b}`.trimEnd()).join('\n');
}

async function main(): Promise<number> {
  fs.mkdirSync(RESULTS, { recursive: true });
  const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-bench-storm-'));
  writeMesh(configDir, services);
  log(`mesh: ${spec.services} services × ${spec.endpointsPerService} endpoints → ${configDir}; ${proxies} proxies; admission ${rate}/s`);
  const xdsPort = await freePort();
  const monitoringPort = await freePort();
  const logDir = path.join(RESULTS, `storm-${stamp}-logs`);
  fs.mkdirSync(logDir, { recursive: true });
  result.serverLogs = path.relative(ROOT, logDir);
  const start = (name: string, args: string[]): ServerStart => ({ root: ROOT, configDir, logFile: path.join(logDir, `${name}.log`), xdsPort, monitoringPort, args });
  let lg: Loadgen | undefined;
  try {
    let { server } = await restartServer(undefined, start('setup', ['--max-new-streams-per-second', '0']), remaining(180_000));
    lg = startLoadgen(
      ROOT,
      {
        target: `127.0.0.1:${xdsPort}`,
        proxies,
        mode: 'sotw',
        namespaces,
        streamsPerChannel: num('streams-per-channel'),
        flowControlWindow: 0,
        reconnect: { baseMs: num('backoff-base-ms'), maxMs: num('backoff-max-ms') },
      },
      (m) => {
        if (m.t === 'progress') log(`loadgen: ${m.full}/${m.proxies} proxies full once, ${m.failures} streams ended`);
        else if (m.t === 'warn') result.errors.push(`loadgen: ${m.message}`);
      },
      ['--max-old-space-size=4096'],
    );
    await lg.wait((m) => m.t === 'ready', 60_000, 'the load generator to load its protos');
    const t0 = now();
    lg.send({ t: 'start' });
    await lg.wait((m) => m.t === 'synced', remaining(400_000), `all ${proxies} proxies to hold full config`);
    result.setup.syncMs = now() - t0;
    log(`set-up: ${proxies} proxies full in ${Math.round(result.setup.syncMs)} ms`);
    for (const [variant, rateArg] of [
      ['limited', rate],
      ['unlimited', 0],
    ] as const) {
      await sleep(2000); // let the last sync's writes and garbage settle
      const out = await storm(lg, server, start, variant, rateArg);
      server = out.server;
      result.storms.push(out.r);
    }
  } catch (err) {
    result.errors.push(err instanceof Error ? err.message : String(err));
  } finally {
    if (lg && lg.child.exitCode === null) lg.send({ t: 'stop' });
    await killAll(3000);
    if (!flags.keep) fs.rmSync(configDir, { recursive: true, force: true });
  }
  console.log(table());
  const file = path.join(RESULTS, `storm-${stamp}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  log(`results: ${path.relative(ROOT, file)}`);
  const partial = (result.storms as StormResult[]).some((r) => r.proxiesWithPartialConfig > 0);
  return result.errors.length > 0 || partial || result.storms.length < 2 ? 1 : 0;
}

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping children`);
    void killAll(1000).finally(() => process.exit(130));
  });
}
process.exitCode = await main();
