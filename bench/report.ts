/** Percentiles, the change-scenario summary, the stdout table and the JSON file. */
import fs from 'node:fs';
import path from 'node:path';

export interface Dist {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles (no interpolation: every figure is a time some proxy really saw). */
export function dist(values: readonly number[]): Dist {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const at = (p: number) => (v.length === 0 ? Number.NaN : v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))]!);
  return { n: v.length, p50: at(0.5), p99: at(0.99), max: v.length ? v[v.length - 1]! : Number.NaN };
}

export interface TrafficCounts {
  responses: Record<string, number>;
  bytes: Record<string, number>;
  total: number;
}

/** One change as measured by the load generator: per proxy, ms from the file write to the ACK (null = never). */
export interface ChangeSample {
  id: number;
  service: string;
  perProxyMs: Array<number | null>;
  traffic: TrafficCounts;
}

export interface ChangeSummary {
  changes: number;
  /** Per change, the last proxy's ACK (max over proxies): the "time to the last ACK". */
  lastAckMs: Dist;
  /** Every (proxy, change) sample. */
  allSamplesMs: Dist;
  /** (proxy, change) pairs that never saw the change before the timeout. */
  missing: number;
  /** What one change pushed, summed over proxies and averaged over changes: responses per type and bytes. */
  perChangeResponses: Record<string, number>;
  perChangeBytes: number;
  serverCpuSecondsPerChange: number;
  loadgenCpuSecondsPerChange: number;
  perChange: Array<{ id: number; service: string; lastAckMs: number | null; p50Ms: number; missing: number }>;
}

/**
 * `cpu` is measured over the whole scenario, spacing included: the server keeps working after the last ACK (it still
 * has ACKs to read), so CPU counted only up to the last ACK would flatter it.
 */
export function summarizeChanges(samples: ChangeSample[], cpu: { server: number; loadgen: number }): ChangeSummary {
  const last: number[] = [];
  const all: number[] = [];
  let missing = 0;
  const responses: Record<string, number> = {};
  let bytes = 0;
  const perChange = samples.map((s) => {
    const got = s.perProxyMs.filter((x): x is number => x !== null);
    const miss = s.perProxyMs.length - got.length;
    missing += miss;
    all.push(...got);
    const lastAck = miss === 0 && got.length > 0 ? Math.max(...got) : null;
    // A change some proxy never saw has no "last ACK": count it as infinite so it fails the target.
    last.push(lastAck ?? Number.POSITIVE_INFINITY);
    for (const [k, v] of Object.entries(s.traffic.responses)) responses[k] = (responses[k] ?? 0) + v;
    bytes += s.traffic.total;
    return { id: s.id, service: s.service, lastAckMs: lastAck, p50Ms: dist(got).p50, missing: miss };
  });
  const n = Math.max(1, samples.length);
  const lastDist = dist(last.map((x) => (x === Number.POSITIVE_INFINITY ? Number.MAX_VALUE : x)));
  return {
    changes: samples.length,
    lastAckMs: lastDist,
    allSamplesMs: dist(all),
    missing,
    perChangeResponses: Object.fromEntries(Object.entries(responses).map(([k, v]) => [k, v / n])),
    perChangeBytes: bytes / n,
    serverCpuSecondsPerChange: cpu.server / n,
    loadgenCpuSecondsPerChange: cpu.loadgen / n,
    perChange,
  };
}

export interface Target {
  name: string;
  target: string;
  value: number;
  unit: string;
  pass: boolean;
}

const fmtMs = (ms: number) => (!Number.isFinite(ms) || ms >= Number.MAX_VALUE ? 'never' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const fmtDist = (d: Dist) => `${fmtMs(d.p50)} / ${fmtMs(d.p99)} / ${fmtMs(d.max)}`;
const fmtMB = (mb: number) => `${mb.toFixed(0)} MiB`;
const fmtBytes = (b: number) => (b >= 1024 * 1024 ? `${(b / 1024 / 1024).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
const fmtCounts = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(1)}`)
    .join(', ') || 'none';

/** The table printed on stdout: one row per figure, the target beside the figures that have one. */
export function table(r: any): string {
  const rows: Array<[string, string, string]> = [];
  const row = (what: string, value: string, target = '') => rows.push([what, value, target]);
  const verdict = (name: string) => {
    const t = (r.targets as Target[]).find((x) => x.name === name);
    return t ? `${t.target}  ${t.pass ? 'PASS' : 'FAIL'}` : '';
  };
  const s = r.scale;
  row('scale', `${s.services} services, ${s.endpoints} endpoints, ${s.proxies} proxies (${s.mode}, ${s.proxyNamespaces} proxy namespaces)`);
  row('machine', `${s.cores} cores, ${s.cpuModel}, node ${s.node}`);
  row('server start → /ready', fmtMs(r.startup.readyMs));
  if (r.sync) {
    row('initial sync: all proxies full', fmtMs(r.sync.allFullMs));
    row('  per proxy p50 / p99 / max', fmtDist(r.sync.perProxyMs));
    row('  bytes per proxy', fmtBytes(r.sync.bytesPerProxy));
    row('  responses (all proxies)', fmtCounts(r.sync.traffic.responses));
    for (const [type, d] of Object.entries((r.sync.perTypeCompleteMs ?? {}) as Record<string, Dist>)) row(`  ${type} complete p50 / p99 / max`, fmtDist(d));
    row('  CPU seconds server / loadgen', `${r.sync.serverCpuSeconds.toFixed(1)} / ${r.sync.loadgenCpuSeconds.toFixed(1)}`);
  }
  for (const [key, label, target] of [
    ['endpointChange', 'endpoint change', 'endpoint change p99'],
    ['virtualServiceChange', 'VirtualService change', 'VirtualService change p99'],
  ] as const) {
    const c = r[key] as ChangeSummary | undefined;
    if (!c) continue;
    row(`${label} → last ACK p50 / p99 (max)`, `${fmtMs(c.lastAckMs.p50)} / ${fmtMs(c.lastAckMs.p99)} (${fmtMs(c.lastAckMs.max)})`, verdict(target));
    row('  every proxy p50 / p99 / max', fmtDist(c.allSamplesMs));
    row('  changes / missed ACKs', `${c.changes} / ${c.missing}`);
    row('  pushed per change', `${fmtCounts(c.perChangeResponses)}; ${fmtBytes(c.perChangeBytes)}`);
    row('  CPU s per change server / loadgen (spacing incl.)', `${c.serverCpuSecondsPerChange.toFixed(2)} / ${c.loadgenCpuSecondsPerChange.toFixed(2)}`);
  }
  const m = r.memory;
  row('server RSS idle / synced / end', `${fmtMB(m.idleMB)} / ${fmtMB(m.afterSyncMB)} / ${fmtMB(m.endMB)}`);
  row('server peak RSS (VmHWM)', fmtMB(m.peakMB), verdict('RSS'));
  if (r.loadgen) row('load generator peak RSS / CPU s', `${fmtMB(r.loadgen.peakRssMB)} / ${r.loadgen.cpuSecondsTotal.toFixed(1)}`);
  if (r.serverCpuSecondsTotal !== undefined) row('server CPU seconds, whole run', r.serverCpuSecondsTotal.toFixed(1));
  if (r.metrics && Object.keys(r.metrics).length) row('server /metrics at end', '');
  // Prometheus series grouped by metric: `pilot_xds_pushes  cds 200, eds 4200, …`.
  const byMetric = new Map<string, string[]>();
  for (const [k, v] of Object.entries((r.metrics ?? {}) as Record<string, number>)) {
    const [, name, labels] = /^([^{]+)(?:\{(.*)\})?$/.exec(k) ?? [];
    const list = byMetric.get(name!) ?? [];
    list.push(labels ? `${labels.replace(/^[a-z_]+="([^"]*)"$/, '$1')} ${v}` : String(v));
    byMetric.set(name!, list);
  }
  for (const [name, list] of byMetric) row(`  ${name}`, list.join(', '));
  for (const e of r.errors as string[]) row('ERROR', e);
  for (const w of r.warnings as string[]) row('WARNING', w);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.filter((x) => x[2]).map((x) => x[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(c ? w1 : 0)}  ${c}`.trimEnd()).join('\n');
}

export function writeJson(dir: string, result: unknown): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
