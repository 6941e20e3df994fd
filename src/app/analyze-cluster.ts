/**
 * `mizzen analyze --kubeconfig`: the cluster read once, as YAML documents, so the same analyzers run on it as on files
 * (the workload analyzers read pod templates from documents). Secrets are never read: no analyzer needs their data.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { allKinds } from '../config/kinds/all.ts';
import { collectionPath, listAll, servedVersions } from '../config/sources/kube-api.ts';
import { pickVersion } from '../config/sources/kube-source.ts';

/** Kinds mizzen does not serve but the analyzers read: workloads whose pod templates get sidecars. */
const WORKLOAD_KINDS = [
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments' },
  { group: 'apps', version: 'v1', kind: 'StatefulSet', plural: 'statefulsets' },
  { group: 'apps', version: 'v1', kind: 'DaemonSet', plural: 'daemonsets' },
  { group: 'batch', version: 'v1', kind: 'Job', plural: 'jobs' },
  { group: 'batch', version: 'v1', kind: 'CronJob', plural: 'cronjobs' },
];

export interface ClusterDocuments {
  /** One multi-document YAML text per kind read. */
  texts: Array<{ kind: string; text: string }>;
  /** Kinds whose API the server does not serve (CRD not installed). */
  missing: string[];
}

export async function readClusterDocuments(kc: KubeConfig): Promise<ClusterDocuments> {
  const served = await servedVersions(kc);
  const targets: Array<{ group: string; version: string; kind: string; plural: string }> = [];
  const missing: string[] = [];
  for (const def of allKinds.all()) {
    if (def.kind === 'Secret') continue;
    const version = pickVersion(def, served);
    if (version) targets.push({ group: def.group, version, kind: def.kind, plural: def.plural });
    else missing.push(def.kind);
  }
  for (const w of WORKLOAD_KINDS) if (served.get(w.group)?.has(w.version)) targets.push(w);
  const texts = await Promise.all(
    targets.map(async (t) => {
      const apiVersion = t.group ? `${t.group}/${t.version}` : t.version;
      const list = await listAll(kc, collectionPath(t.group, t.version, t.plural), { apiVersion, kind: t.kind });
      const docs = list.items.map((o) => {
        // Server-side bookkeeping only makes the documents longer.
        const { managedFields: _mf, ...metadata } = o.metadata ?? {};
        return stringify({ ...o, metadata });
      });
      return { kind: t.kind, text: docs.join('---\n') };
    }),
  );
  return { texts: texts.filter((t) => t.text !== ''), missing };
}
