/**
 * `mizzen analyze FILE|DIR...`: the analyzers of src/analyze over YAML files, with istioctl analyze's output and exit
 * codes — 79 when a message reaches the failure threshold (Error by default), 65 when only unparseable documents
 * were found, 64 for bad usage, in every output format. File mode only: there is no live-cluster (kube) mode yet.
 */
import fs from 'node:fs';
import path from 'node:path';
import { analyze, exceedsThreshold, type Suppression } from '../analyze/analyze.ts';
import type { AnalysisFile } from '../analyze/context.ts';
import { OUTPUT_FORMATS, formatAnalyzerList, formatMessages, type OutputFormat } from '../analyze/format.ts';
import { levelRank, parseLevel, type Level } from '../analyze/message.ts';
import { ANALYZERS } from '../analyze/registry.ts';
import { KubeConfig } from '@kubernetes/client-node';
import { allKinds } from '../config/kinds/all.ts';
import { listYamlFiles } from '../config/sources/file-source.ts';
import { readClusterDocuments } from './analyze-cluster.ts';
import { loadYamlText } from '../config/sources/load-file.ts';

export const EXIT_USAGE = 64;
export const EXIT_DATA = 65;
export const EXIT_ISSUES = 79;

export interface AnalyzeFlags {
  output?: string;
  namespace?: string;
  allNamespaces?: boolean;
  suppress?: string[];
  failureThreshold?: string;
  outputThreshold?: string;
  listAnalyzers?: boolean;
  ignoreUnknown?: boolean;
  kubeconfig?: string;
  useKube?: string | boolean;
}

export interface AnalyzeRun {
  stdout: string;
  stderr: string;
  code: number;
}

const ISTIO_ANALYSIS_DOCS = 'https://istio.io/latest/docs/reference/config/analysis';
const EXTENSIONS = ['.yaml', '.yml', '.json'];
/** Pseudo file names of cluster documents (never shown: cluster messages carry no file). */
const CLUSTER_FILE_PREFIX = 'cluster:';

function usage(message: string): AnalyzeRun {
  return { stdout: '', stderr: `Error: ${message}\n`, code: EXIT_USAGE };
}

export async function runAnalyze(paths: readonly string[], flags: AnalyzeFlags, cwd: string): Promise<AnalyzeRun> {
  const format = (flags.output ?? 'log').toLowerCase() as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) return usage(`${flags.output} not a valid option for format. See mizzen analyze --help`);
  const failAt: Level | undefined = parseLevel(flags.failureThreshold ?? 'Error');
  const showAt: Level | undefined = parseLevel(flags.outputThreshold ?? 'Info');
  if (!failAt || !showAt) return usage('thresholds must be one of Info, Warning, Error');
  const suppress: Suppression[] = [];
  for (const s of flags.suppress ?? []) {
    const eq = s.indexOf('=');
    if (eq <= 0 || eq === s.length - 1) return usage(`${s} is not a valid suppression value. See mizzen analyze --help`);
    suppress.push({ code: s.slice(0, eq).trim(), resource: s.slice(eq + 1).trim() });
  }
  if (flags.listAnalyzers) return { stdout: formatAnalyzerList(ANALYZERS), stderr: '', code: 0 };

  let stderr = '';
  const known = new Set(ANALYZERS.flatMap((a) => a.types.map((t) => t.code)));
  for (const s of suppress) {
    if (!known.has(s.code)) stderr += `Warning: Supplied message code '${s.code}' is an unknown message code and will not have any effect.\n`;
  }
  const useKube = flags.useKube === undefined ? undefined : flags.useKube === true || String(flags.useKube).toLowerCase() === 'true';
  const cluster = flags.kubeconfig !== undefined || (useKube === true && paths.length === 0);
  if (!cluster && paths.length === 0) return usage('no files or folders given: pass YAML files or folders, or --kubeconfig FILE for a live cluster');
  if (cluster && paths.length > 0) return usage('give YAML files or folders, or --kubeconfig for a live cluster, not both');

  const namespace = flags.allNamespaces ? undefined : flags.namespace;
  const defaultNamespace = namespace ?? 'default';
  const inputs: AnalysisFile[] = [];
  // Objects carrying no creationTimestamp all get the same one, so "oldest wins" falls back to names: stable runs.
  const load = (text: string, shown: string) => {
    const loaded = loadYamlText(text, shown, allKinds, { defaultNamespace, now: () => new Date(0).toISOString() });
    inputs.push({ file: shown, text, objects: loaded.objects, errors: loaded.errors });
  };
  if (cluster) {
    let docs: Awaited<ReturnType<typeof readClusterDocuments>>;
    try {
      const kc = new KubeConfig();
      if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
      else kc.loadFromDefault();
      docs = await readClusterDocuments(kc);
    } catch (err) {
      return { stdout: '', stderr: `${stderr}Error: reading the cluster: ${(err as Error).message}\n`, code: 1 };
    }
    for (const t of docs.texts) load(t.text, `${CLUSTER_FILE_PREFIX}${t.kind}`);
  } else {
    // Files are named as the user named them (a folder's files under the folder as given), as istioctl does.
    const files = new Map<string, string>();
    for (const p of paths) {
      const abs = path.resolve(cwd, p);
      if (!fs.existsSync(abs)) return { stdout: '', stderr: `${stderr}Error: stat ${p}: no such file or directory\n`, code: 1 };
      if (fs.statSync(abs).isDirectory()) for (const f of await listYamlFiles(abs)) files.set(f, path.join(p, path.relative(abs, f)));
      else if (EXTENSIONS.includes(path.extname(abs).toLowerCase())) files.set(abs, p);
      else stderr += `Skipping file ${p}, recognized file extensions are: [${EXTENSIONS.join(' ')}]\n`;
    }
    for (const [f, shown] of files) load(fs.readFileSync(f, 'utf8'), shown);
  }

  const result = analyze(inputs, { defaultNamespace, ...(namespace ? { namespace } : {}), suppress });
  // Cluster objects have no file: messages name the resource only, as istioctl's do for a live cluster.
  if (cluster) for (const m of result.messages) if (m.resource) m.resource = { kind: m.resource.kind, namespace: m.resource.namespace, name: m.resource.name };
  const shownMessages = result.messages.filter((m) => levelRank(m.level) >= levelRank(showAt));
  const parseFailures = new Set(result.unparsed.map((u) => u.file)).size;
  if (result.unparsed.length > 0 && !flags.ignoreUnknown) {
    stderr += `Error(s) adding files:\n${result.unparsed.map((u) => `\t${u.file}:${u.line}: ${u.message}\n`).join('')}`;
  }

  let stdout = formatMessages(shownMessages, format);
  if (stdout && !stdout.endsWith('\n')) stdout += '\n';
  const target = namespace ? `namespace: ${namespace}` : cluster ? 'the cluster' : paths.join(', ');
  if (shownMessages.length === 0) {
    stderr +=
      parseFailures === 0 || flags.ignoreUnknown
        ? `\u2714 No validation issues found when analyzing ${target}.\n`
        : `No validation issues found when analyzing ${target} (but ${parseFailures} ${parseFailures === 1 ? 'file' : 'files'} could not be parsed).\n`;
  }

  // Unlike istioctl (which exits 0 for -o json|yaml), the exit code is the same in every format: a CI job that asks
  // for JSON must still fail on errors.
  let code = 0;
  if (exceedsThreshold(result.messages, failAt)) {
    code = EXIT_ISSUES;
    if (format === 'log') stderr += `Error: Analyzers found issues when analyzing ${target}.\nSee ${ISTIO_ANALYSIS_DOCS} for more information about causes and resolutions (MZA codes: docs/analyzers.md).\n`;
  } else if (parseFailures > 0 && !flags.ignoreUnknown) {
    code = EXIT_DATA;
    if (format === 'log') stderr += 'Error: Some files couldn\'t be parsed.\n';
  }
  return { stdout, stderr, code };
}
