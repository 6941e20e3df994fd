/**
 * Kube mode's config status: each Istio object's `status` subresource says whether every connected proxy has its
 * current version (Istio's `Reconciled` condition, with `observedGeneration`), so `kubectl get vs -o yaml` answers
 * "is my config applied?". Written by StatusWriter (off the push path, batched, rate-limited) and only by the elected
 * leader among replicas (Lease `istio-status-leader`, istiod's name), so N replicas do not fight over it.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { KindDefinition } from '../config/kinds/kind.ts';
import { mergePatch } from '../config/sources/kube-api.ts';
import type { Logger } from '../shared/log.ts';
import type { StatusSink, StatusUpdate } from './status-writer.ts';

export const STATUS_LEADER_ELECTION = 'istio-status-leader';

export interface KubeStatusSinkOptions {
  kubeConfig: KubeConfig;
  kinds: { byKind(kind: string): KindDefinition<any> | undefined };
  /** The apiVersion a kind is served at (the config source's choice); undefined = not served, nothing written. */
  apiVersionOf(kind: string): string | undefined;
  log: Logger;
}

export class KubeStatusSink implements StatusSink {
  private readonly o: KubeStatusSinkOptions;
  /** Patches sent (for tests and /debug). */
  patches = 0;

  constructor(options: KubeStatusSinkOptions) {
    this.o = options;
  }

  async write(updates: readonly StatusUpdate[], signal: AbortSignal): Promise<void> {
    let firstError: unknown;
    for (const u of updates) {
      if (signal.aborted) return;
      const s = u.status;
      if (!s) continue; // the object is gone: there is nothing to patch
      const def = this.o.kinds.byKind(s.kind);
      const apiVersion = this.o.apiVersionOf(s.kind);
      if (!def || !apiVersion || !def.group) continue;
      const path = `/apis/${apiVersion}/namespaces/${s.namespace}/${def.plural}/${s.name}/status`;
      const now = new Date().toISOString();
      const body = {
        status: {
          ...(s.generation !== undefined ? { observedGeneration: s.generation } : {}),
          conditions: s.conditions.map((c) => ({ ...c, lastProbeTime: now, lastTransitionTime: now })),
        },
      };
      try {
        await mergePatch(this.o.kubeConfig, path, body, signal);
        this.patches++;
      } catch (err) {
        // 404: deleted meanwhile. Anything else fails the batch after the others are tried; StatusWriter retries it.
        if ((err as { statusCode?: number }).statusCode === 404) continue;
        firstError ??= err;
        this.o.log.warn({ kind: s.kind, namespace: s.namespace, name: s.name, err }, 'status write failed');
      }
    }
    if (firstError) throw firstError instanceof Error ? firstError : new Error(String(firstError));
  }
}
