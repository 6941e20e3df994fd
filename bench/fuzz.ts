/**
 * `npm run bench:fuzz`: the fuzzing campaign of test/fuzz (fast-check), 10,000 cases per property from a fixed seed.
 * Each property runs to the end (a failing case is counted, not shrunk) in a worker thread, two at a time; a case that
 * makes no progress for --hang-ms is a hang: the worker is terminated and the case reported. Prints a table
 * (property, cases, refusals, accepted, crashes, max ms per case) and writes bench/results/fuzz-<timestamp>.json.
 * A crash is any case whose property fails: an exception out of mizzen, a malformed answer, a refusal that does not
 * name the object, a certificate for another identity, or a case slower than MIZZEN_FUZZ_CASE_MS (3 s). Replay one
 * with `MIZZEN_FUZZ_SEED=<seed>` and fast-check's `path` printed beside it. Exits 1 on any crash or hang.
 *
 *   node bench/fuzz.ts [--runs 10000] [--seed N] [--only substring] [--parallel 2] [--hang-ms 30000]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import {
  caHarness,
  CONFIG_PROPERTIES,
  CREATE_CERTIFICATE_PROPERTY,
  createCertificateProperty,
  parseCsrProperty,
  runCase,
  startFuzzWebhookServer,
  WEBHOOK_PROPERTIES,
  WIRE_PROPERTY,
  wireProperty,
  type FuzzProperty,
} from '../test/fuzz/arbitraries.ts';

/** Every property, by index; the ones with a server or a CA build it (and tear it down) in their worker. */
const PROPERTY_NAMES = [...CONFIG_PROPERTIES.map((p) => p.name), ...WEBHOOK_PROPERTIES.map((p) => p.name), WIRE_PROPERTY, parseCsrProperty.name, CREATE_CERTIFICATE_PROPERTY];

async function properties(index: number): Promise<{ property: FuzzProperty; close: () => Promise<void> }> {
  const name = PROPERTY_NAMES[index]!;
  const plain = [...CONFIG_PROPERTIES, ...WEBHOOK_PROPERTIES, parseCsrProperty].find((p) => p.name === name);
  if (plain) return { property: plain, close: async () => {} };
  if (name === WIRE_PROPERTY) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-fuzz-bench-'));
    const server = await startFuzzWebhookServer(dir, new Registry());
    return {
      property: wireProperty(server),
      close: async () => {
        await server.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const harness = await caHarness();
  return { property: createCertificateProperty(harness), close: async () => harness.service.close() };
}

interface Row {
  property: string;
  cases: number;
  refusals: number;
  accepted: number;
  crashes: number;
  hangs: number;
  maxMsPerCase: number;
  wallMs: number;
  failures: Array<{ seed: number; path: string; message: string }>;
}

interface Job {
  index: number;
  runs: number;
  seed: number;
  heartbeat: SharedArrayBuffer;
}

// ---------------------------------------------------------------------------------------------------------------
// Worker: one property, every case, counted.
if (!isMainThread) {
  const job = workerData as Job;
  const beat = new Int32Array(job.heartbeat);
  const { property, close } = await properties(job.index);
  const row: Row = { property: property.name, cases: 0, refusals: 0, accepted: 0, crashes: 0, hangs: 0, maxMsPerCase: 0, wallMs: 0, failures: [] };
  const t0 = performance.now();
  await fc.check(
    fc.asyncProperty(property.arb, async (input) => {
      const i = row.cases++;
      Atomics.store(beat, 0, i + 1);
      try {
        const out = await runCase(property, input, (ms) => (row.maxMsPerCase = Math.max(row.maxMsPerCase, ms)));
        if (out === 'refused') row.refusals++;
        else row.accepted++;
      } catch (err) {
        row.crashes++;
        if (row.failures.length < 5) row.failures.push({ seed: job.seed, path: String(i), message: String(err instanceof Error ? (err.stack ?? err.message) : err).slice(0, 2000) });
      }
      return true;
    }),
    { seed: job.seed, numRuns: job.runs },
  );
  row.wallMs = Math.round(performance.now() - t0);
  await close();
  parentPort!.postMessage(row);
} else {
  await main();
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      runs: { type: 'string', default: '10000' },
      seed: { type: 'string', default: process.env.MIZZEN_FUZZ_SEED ?? '20261122' },
      only: { type: 'string', default: '' },
      parallel: { type: 'string', default: String(Math.min(2, os.availableParallelism())) },
      'hang-ms': { type: 'string', default: '30000' },
    },
  });
  const runs = Number(flags.runs);
  const seed = Number(flags.seed);
  const hangMs = Number(flags['hang-ms']);
  const jobs = PROPERTY_NAMES.map((name, index) => ({ name, index })).filter((j) => j.name.includes(flags.only));
  const rows: Row[] = new Array(jobs.length);
  const started = performance.now();
  console.log(`Fuzzing ${jobs.length} properties × ${runs} cases (seed ${seed}, ${flags.parallel} at a time, hang after ${hangMs} ms without progress)`);

  const runJob = (job: { name: string; index: number }, slot: number) =>
    new Promise<void>((resolve) => {
      const heartbeat = new SharedArrayBuffer(4);
      const beat = new Int32Array(heartbeat);
      const worker = new Worker(new URL(import.meta.url), { workerData: { index: job.index, runs, seed, heartbeat } satisfies Job });
      const t0 = performance.now();
      let last = -1;
      let lastChange = performance.now();
      let done = false;
      const finish = (row: Row) => {
        if (done) return;
        done = true;
        clearInterval(watch);
        rows[slot] = row;
        console.log(`  done: ${row.property} (${row.wallMs} ms)`);
        resolve();
      };
      const watch = setInterval(() => {
        const now = Atomics.load(beat, 0);
        if (now !== last) {
          last = now;
          lastChange = performance.now();
        } else if (performance.now() - lastChange > hangMs) {
          void worker.terminate();
          finish({ property: job.name, cases: now, refusals: 0, accepted: 0, crashes: 0, hangs: 1, maxMsPerCase: Math.round(performance.now() - lastChange), wallMs: Math.round(performance.now() - t0), failures: [{ seed, path: String(now - 1), message: `no progress for ${hangMs} ms` }] });
        }
      }, 500);
      worker.on('message', (row: Row) => finish(row));
      worker.on('error', (err) => finish({ property: job.name, cases: Atomics.load(beat, 0), refusals: 0, accepted: 0, crashes: 1, hangs: 0, maxMsPerCase: 0, wallMs: Math.round(performance.now() - t0), failures: [{ seed, path: String(Atomics.load(beat, 0) - 1), message: `worker died: ${err.stack ?? err.message}` }] }));
      worker.on('exit', () => finish({ property: job.name, cases: Atomics.load(beat, 0), refusals: 0, accepted: 0, crashes: 1, hangs: 0, maxMsPerCase: 0, wallMs: Math.round(performance.now() - t0), failures: [{ seed, path: '', message: 'worker exited without a result' }] }));
    });

  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Number(flags.parallel)) }, async () => {
      while (next < jobs.length) {
        const slot = next++;
        await runJob(jobs[slot]!, slot);
      }
    }),
  );
  const wallMs = Math.round(performance.now() - started);

  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  const r = (x: number) => (x >= 100 ? Math.round(x) : Math.round(x * 100) / 100);
  console.log(`Fuzzing — ${runs} cases per property, seed ${seed}, ${Math.round(wallMs / 1000)} s wall`);
  console.log(`  ${pad('property', 62)}${pad('cases', 8)}${pad('refusals', 10)}${pad('accepted', 10)}${pad('crashes', 9)}${pad('hangs', 7)}${pad('max ms/case', 13)}wall s`);
  for (const row of rows) console.log(`  ${pad(row.property, 62)}${pad(row.cases, 8)}${pad(row.refusals, 10)}${pad(row.accepted, 10)}${pad(row.crashes, 9)}${pad(row.hangs, 7)}${pad(r(row.maxMsPerCase), 13)}${Math.round(row.wallMs / 100) / 10}`);
  for (const row of rows) for (const f of row.failures) console.log(`  FAILED ${row.property} — seed ${f.seed}, path "${f.path}":\n    ${f.message.split('\n').slice(0, 6).join('\n    ')}`);
  const result = { scale: { runsPerProperty: runs, seed, properties: rows.length, parallel: Number(flags.parallel), node: process.version, cores: os.cpus().length, cpu: os.cpus()[0]?.model }, wallMs, properties: rows };
  const dir = path.join(import.meta.dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `fuzz-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`  results: ${path.relative(process.cwd(), file)}`);
  if (rows.some((row) => row.crashes > 0 || row.hangs > 0)) process.exitCode = 1;
}
