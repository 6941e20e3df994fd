/**
 * `npm run bench:slow`: what slow consumers (ADS streams that never read, so HTTP/2 flow control stops their
 * responses) cost everyone else. For each count of slow consumers (default 0, 1, 10) a fresh `mizzen serve` child runs
 * on a big mesh (~700 KB of CDS for a proxy that sees it all); N healthy SotW proxies (a Sidecar-scoped namespace,
 * small CDS, ACK at once) are timed from each config file write to the CDS response naming the new service, and the
 * server's RSS and send-budget figures (/debug/memz) are recorded. A push that does not reach every healthy proxy
 * within --push-timeout-ms counts as stalled (the slow consumers hold the shared send budget: see
 * test/faults/protocol-faults.test.ts).
 *
 *   npm run bench:slow -- [--proxies 200] [--slow 0,1,10] [--pushes 8] [--services 200] [--endpoints 10]
 *
 * Prints a table; writes bench/results/<timestamp>.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { TypeUrl } from '../src/proto/types.ts';
import { ADS_SOTW_PATH, bigMeshFiles, envoyNode, grpcFrame, HealthyFleet, markerCluster, markerYaml, memz, rawGrpcCall, sotwRequest, type RawStream } from '../test/faults/helpers.ts';
import { killAll, killAllNow, memoryOf, sleep, startServer, waitReady } from './procs.ts';
import { dist, writeJson, type Dist } from './report.ts';

const { values: flags } = parseArgs({
  options: {
    proxies: { type: 'string', default: '200' },
    slow: { type: 'string', default: '0,1,10' },
    pushes: { type: 'string', default: '8' },
    services: { type: 'string', default: '200' },
    endpoints: { type: 'string', default: '10' },
    'push-timeout-ms': { type: 'string', default: '5000' },
    'gap-ms': { type: 'string', default: '300' },
  },
});
const N = Number(flags.proxies);
const PUSHES = Number(flags.pushes);
const TIMEOUT = Number(flags['push-timeout-ms']);

interface Phase {
  slowConsumers: number;
  healthyProxies: number;
  pushes: number;
  stalledPushes: number;
  latencyMs: Dist;
  serverRssMB: { start: number; end: number; peak: number };
  sendInflightMB: { max: number; end: number };
  waitingStreamsMax: number;
}

async function phase(slowCount: number): Promise<Phase> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-bench-slow-'));
  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir);
  for (const [f, text] of Object.entries(bigMeshFiles(Number(flags.services), Number(flags.endpoints)))) fs.writeFileSync(path.join(configDir, f), text);
  const server = await startServer({ root: path.resolve(import.meta.dirname, '..'), configDir, logFile: path.join(dir, 'server.log'), nodeFlags: [] });
  const slow: RawStream[] = [];
  let fleet: HealthyFleet | undefined;
  try {
    await waitReady(server, 30_000);
    const rssStart = memoryOf(server.pid).rssMB;
    fleet = new HealthyFleet(server.xdsPort, N);
    // Warm-up: every healthy proxy connected and served.
    fs.writeFileSync(path.join(configDir, 'marker-0.yaml'), markerYaml(0));
    await fleet.waitFor(markerCluster(0), Date.now(), 60_000);
    for (let i = 0; i < slowCount; i++) {
      const node = envoyNode(`slow-${i}`, 'default');
      slow.push(rawGrpcCall(server.xdsPort, ADS_SOTW_PATH, [grpcFrame(sotwRequest(TypeUrl.Cluster, node)), grpcFrame(sotwRequest(TypeUrl.Listener, node))], { read: false }));
    }
    await sleep(1000);
    const latencies: number[] = [];
    let stalled = 0;
    let inflightMax = 0;
    let waitingMax = 0;
    for (let k = 1; k <= PUSHES; k++) {
      const t0 = Date.now();
      fs.writeFileSync(path.join(configDir, `marker-${k}.yaml`), markerYaml(k));
      try {
        latencies.push(...(await fleet.waitFor(markerCluster(k), t0, TIMEOUT)));
      } catch {
        stalled++;
      }
      const m = await memz(server.monitoringPort);
      inflightMax = Math.max(inflightMax, m.send.inflightBytes);
      waitingMax = Math.max(waitingMax, m.send.waitingStreams);
      await sleep(Number(flags['gap-ms']));
    }
    const end = await memz(server.monitoringPort);
    const mem = memoryOf(server.pid);
    return {
      slowConsumers: slowCount,
      healthyProxies: N,
      pushes: PUSHES,
      stalledPushes: stalled,
      latencyMs: dist(latencies),
      serverRssMB: { start: Math.round(rssStart), end: Math.round(mem.rssMB), peak: Math.round(mem.peakRssMB) },
      sendInflightMB: { max: +(inflightMax / 1048576).toFixed(1), end: +(end.send.inflightBytes / 1048576).toFixed(1) },
      waitingStreamsMax: waitingMax,
    };
  } finally {
    for (const s of slow) s.close();
    fleet?.close();
    await killAll();
    if (process.env.KEEP) console.log(dir); else fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

const phases: Phase[] = [];
for (const s of flags.slow.split(',').map(Number)) {
  const p = await phase(s);
  phases.push(p);
  console.log(
    `slow=${String(p.slowConsumers).padStart(3)}  healthy=${p.healthyProxies}  push latency p50=${p.latencyMs.p50} ms p99=${p.latencyMs.p99} ms (n=${p.latencyMs.n})  stalled pushes ${p.stalledPushes}/${p.pushes}  ` +
      `server RSS ${p.serverRssMB.start}→${p.serverRssMB.end} MB (peak ${p.serverRssMB.peak})  send in flight max ${p.sendInflightMB.max} MB, waiting streams max ${p.waitingStreamsMax}`,
  );
}
const warnings = phases.filter((p) => p.stalledPushes > 0).map((p) => `${p.slowConsumers} slow consumer(s): ${p.stalledPushes}/${p.pushes} pushes never reached every healthy proxy within ${TIMEOUT} ms (send budget held by stuck streams)`);
for (const w of warnings) console.log(`WARNING ${w}`);
const file = writeJson(path.join(import.meta.dirname, 'results'), {
  bench: 'slow-consumer',
  at: new Date().toISOString(),
  scale: { services: Number(flags.services), endpointsPerService: Number(flags.endpoints), healthyProxies: N, pushes: PUSHES },
  phases,
  warnings,
});
console.log(`  results: ${path.relative(process.cwd(), file)}`);
