/**
 * `mizzen proxy-status --server URL`: istioctl's proxy-status table for a running `mizzen serve` — NAME, CLUSTER,
 * ISTIOD, VERSION, SUBSCRIBED TYPES, then the state of each xDS type: SYNCED (the newest response was ACKed), NACKED
 * (it was rejected), STALE (sent, no answer yet; "Never Acknowledged" when nothing of the type ever was), NOT SENT
 * (subscribed, nothing sent yet), IGNORED (not subscribed). Read from /debug/syncz; config objects some proxy
 * rejected are listed below the table, from /debug/config_status.
 */
import { xdsTypeName, type ConfigStatusReport } from './config-status.ts';

export interface ProxyStatusOptions {
  server: string;
  /** `table` (default) or `json`. */
  output?: string;
}

export interface ProxyStatusResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One /debug/syncz entry (a connection). */
export interface SynczEntry {
  id: string;
  node?: string;
  clusterId?: string;
  proxyVersion?: string;
  controlPlane?: string;
  watches: Array<{
    typeUrl: string;
    nonceSent?: string;
    nonceAcked?: string;
    versionSent?: string;
    versionAcked?: string;
    lastNack?: { message: string; nonce?: string };
  }>;
}

export interface ProxyStatusRow {
  name: string;
  cluster: string;
  istiod: string;
  version: string;
  subscribed: string[];
  /** Type (CDS, LDS, …) → SYNCED, NACKED, STALE, STALE (Never Acknowledged), NOT SENT, IGNORED. */
  states: Record<string, string>;
  /** Type → the NACK error, for NACKED types. */
  errors: Record<string, string>;
}

/** istioctl's column order; ECDS and SDS get a column only when some proxy subscribes to them. */
const TYPE_ORDER = ['CDS', 'LDS', 'EDS', 'RDS', 'ECDS', 'SDS'];
const ALWAYS = new Set(['CDS', 'LDS', 'EDS', 'RDS']);

export class ProxyStatusError extends Error {}

function watchState(w: SynczEntry['watches'][number]): string {
  if (w.nonceSent === undefined) return 'NOT SENT';
  // The newest response was rejected: the NACK's nonce is the last one sent (older servers: not ACKed and NACKed).
  if (w.lastNack && (w.lastNack.nonce === undefined ? w.nonceAcked !== w.nonceSent : w.lastNack.nonce === w.nonceSent)) return 'NACKED';
  if (w.nonceSent === w.nonceAcked) return 'SYNCED';
  return w.nonceAcked === undefined ? 'STALE (Never Acknowledged)' : 'STALE';
}

export function statusRows(entries: readonly SynczEntry[]): ProxyStatusRow[] {
  return entries
    .map((e) => {
      const states: Record<string, string> = {};
      const errors: Record<string, string> = {};
      for (const w of e.watches) {
        const t = xdsTypeName(w.typeUrl);
        states[t] = watchState(w);
        if (states[t] === 'NACKED' && w.lastNack) errors[t] = w.lastNack.message;
      }
      const subscribed = Object.keys(states).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
      // istioctl's NAME is <pod>.<namespace>: the node id's third field.
      const name = e.node?.split('~')[2] || e.id;
      return { name, cluster: e.clusterId ?? 'Kubernetes', istiod: e.controlPlane ?? '-', version: e.proxyVersion ?? '-', subscribed, states, errors };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

const rank = (t: string) => {
  const i = TYPE_ORDER.indexOf(t);
  return i < 0 ? TYPE_ORDER.length : i;
};

/** Columns separated like Go's tabwriter with padding 5, as istioctl prints them. */
export function formatTable(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 5))).join('').trimEnd()).join('\n') + '\n';
}

export function renderStatusTable(rows: readonly ProxyStatusRow[]): string {
  const seen = new Set(rows.flatMap((r) => r.subscribed));
  const types = TYPE_ORDER.filter((t) => ALWAYS.has(t) || seen.has(t));
  for (const t of [...seen].sort()) if (!types.includes(t)) types.push(t);
  const out = [['NAME', 'CLUSTER', 'ISTIOD', 'VERSION', 'SUBSCRIBED TYPES', ...types]];
  for (const r of rows) {
    out.push([r.name, r.cluster, r.istiod, r.version, `${r.subscribed.length} (${r.subscribed.join(',')})`, ...types.map((t) => r.states[t] ?? 'IGNORED')]);
  }
  return formatTable(out);
}

/** Objects some proxy rejected, with who and why (from /debug/config_status). */
export function renderRejected(report: Pick<ConfigStatusReport, 'objects'>): string {
  const rejected = report.objects.filter((o) => o.nacked > 0);
  if (rejected.length === 0) return '';
  const rows = [['REJECTED CONFIG', 'NACKED', 'PROXY', 'TYPE', 'ERROR']];
  for (const o of rejected) {
    for (const [i, n] of o.nacks.entries()) rows.push([i === 0 ? `${o.kind} ${o.namespace}/${o.name}` : '', i === 0 ? `${o.nacked}/${o.total}` : '', n.proxy, n.type, n.error]);
  }
  return formatTable(rows);
}

async function getJson(base: string, p: string): Promise<unknown> {
  const url = new URL(p, base.includes('://') ? base : `http://${base}`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new ProxyStatusError(`cannot reach ${url.origin}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
  }
  if (!res.ok) throw new ProxyStatusError(`${url.origin}${url.pathname}: HTTP ${res.status}`);
  try {
    return await res.json();
  } catch {
    throw new ProxyStatusError(`${url.origin}${url.pathname} answered with a body that is not JSON`);
  }
}

export async function runProxyStatus(o: ProxyStatusOptions): Promise<ProxyStatusResult> {
  try {
    const output = o.output ?? 'table';
    if (output !== 'table' && output !== 'json') throw new ProxyStatusError(`-o must be table or json, not ${JSON.stringify(output)}`);
    const syncz = await getJson(o.server, '/debug/syncz');
    if (!Array.isArray(syncz)) throw new ProxyStatusError('/debug/syncz did not answer a list of connections');
    const rows = statusRows(syncz as SynczEntry[]);
    // Optional: a server without config status still gets its table.
    let report: ConfigStatusReport | undefined;
    try {
      report = (await getJson(o.server, '/debug/config_status')) as ConfigStatusReport;
    } catch {
      report = undefined;
    }
    if (output === 'json') {
      const rejected = (report?.objects ?? []).filter((x) => x.nacked > 0);
      return { code: 0, stdout: `${JSON.stringify({ proxies: rows, rejected }, null, 2)}\n`, stderr: '' };
    }
    const rejected = report && Array.isArray(report.objects) ? renderRejected(report) : '';
    return { code: 0, stdout: renderStatusTable(rows) + (rejected ? `\n${rejected}` : ''), stderr: '' };
  } catch (err) {
    if (!(err instanceof ProxyStatusError)) throw err;
    return { code: 1, stdout: '', stderr: `Error: ${err.message}\n` };
  }
}
