/** Kube mode's wiring: which cluster to talk to, and the config source reading it. */
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { allKinds } from '../config/kinds/all.ts';
import type { TokenReviewer } from '../ca/authenticate.ts';
import { KubeSource } from '../config/sources/kube-source.ts';
import type { Logger } from '../shared/log.ts';
import { kubeTokenReviewer, SecretCaStore } from './kube-ca.ts';
import { KubeStatusSink, STATUS_LEADER_ELECTION } from './kube-status.ts';
import { startKubeWriters, type KubeWriters } from './kube-writers.ts';
import { LeaderElector } from './leader-election.ts';

export interface ClusterAccess {
  /** A kubeconfig file; absent = in-cluster (the pod's service account). */
  kubeconfig?: string;
  /** The kubeconfig context to use instead of its current-context. */
  context?: string;
}

export function loadKubeConfig(access: ClusterAccess): KubeConfig {
  const kc = new KubeConfig();
  if (access.kubeconfig) kc.loadFromFile(access.kubeconfig);
  else kc.loadFromCluster();
  if (access.context) kc.setCurrentContext(access.context);
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${access.kubeconfig ?? '(in-cluster)'} names no usable cluster`);
  return kc;
}

export function kubeConfigSource(kc: KubeConfig, log: Logger): KubeSource {
  return new KubeSource({ kubeConfig: kc, kinds: allKinds, log });
}

export interface KubeWiring {
  source: KubeSource;
  /** The self-signed CA's store (`istio-ca-secret` in the control plane's namespace). */
  caStore: SecretCaStore;
  /** TokenReview for tokens of this cluster: callers that name no cluster, or Istio's default cluster id. */
  tokenReview: (clusterId: string | undefined) => TokenReviewer | undefined;
  /** Each Istio object's `status` (Reconciled condition), written by the elected leader only. */
  statusSink: KubeStatusSink;
  statusElection: LeaderElector;
  /** The leader-elected istio-ca-root-cert publisher and every replica's webhook caBundle patcher. */
  trustBundleWriters: (rootsPem: string) => KubeWriters;
}

/** Istio's default CLUSTER_ID. */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

export function kubeWiring(kc: KubeConfig, o: { log: Logger; namespace: string; clusterId?: string; identity?: string }): KubeWiring {
  const reviewer = kubeTokenReviewer(kc);
  const clusterId = o.clusterId ?? DEFAULT_CLUSTER_ID;
  const identity = o.identity ?? `${hostname()}-${process.pid}`;
  const source = kubeConfigSource(kc, o.log);
  return {
    source,
    statusSink: new KubeStatusSink({ kubeConfig: kc, kinds: allKinds, apiVersionOf: (kind) => source.apiVersionOf(kind), log: o.log }),
    statusElection: new LeaderElector({ kubeConfig: kc, namespace: o.namespace, name: STATUS_LEADER_ELECTION, identity, log: o.log }),
    caStore: new SecretCaStore(kc, o.namespace),
    tokenReview: (id) => (id === undefined || id === '' || id === clusterId ? reviewer : undefined),
    // The lease holder's identity: the pod name (unique per replica), as istiod uses.
    trustBundleWriters: (rootsPem) => startKubeWriters({ kubeConfig: kc, namespace: o.namespace, identity, rootsPem, log: o.log }),
  };
}
