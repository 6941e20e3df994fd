import { istioKinds } from './istio.ts';
import { kubernetesKinds } from './kubernetes.ts';
import { KindRegistry } from './registry.ts';

/** Every kind mizzen reads: the Istio API kinds and the Kubernetes kinds of the service registry. */
export const allKinds = new KindRegistry([...istioKinds, ...kubernetesKinds]);
