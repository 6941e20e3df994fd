/**
 * Kubernetes kinds mizzen reads in file mode (and later from the API server): the service registry comes from
 * Service + EndpointSlice, with Pods and Nodes for labels and locality. These schemas check only the fields mizzen
 * reads and let everything else through, since Kubernetes objects carry many fields we do not use.
 *
 * Kubernetes objects keep fields beside `spec` (EndpointSlice has none at all); the validator sees the whole object
 * minus metadata for these kinds (see `wholeObject`).
 */
import { Type, type Static } from '@sinclair/typebox';
import { defineKind } from './kind.ts';
import { Opt, PortNumber, StringMap } from './common.ts';

const Loose = Type.Object;

const IntOrString = () => Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.String()]);

export const K8sServiceSpecSchema = Loose({
  spec: Opt(
    Loose({
      selector: Opt(StringMap()),
      clusterIP: Opt(Type.String()),
      clusterIPs: Opt(Type.Array(Type.String())),
      type: Opt(Type.String()),
      externalName: Opt(Type.String()),
      publishNotReadyAddresses: Opt(Type.Boolean()),
      ports: Opt(
        Type.Array(
          Loose({
            name: Opt(Type.String()),
            port: PortNumber(),
            targetPort: Opt(IntOrString()),
            protocol: Opt(Type.String()),
            appProtocol: Opt(Type.String()),
          }),
        ),
      ),
    }),
  ),
});
export type K8sService = Static<typeof K8sServiceSpecSchema>;

export const EndpointSliceSchema = Loose({
  addressType: Opt(Type.String()),
  endpoints: Opt(
    Type.Array(
      Loose({
        addresses: Type.Array(Type.String()),
        conditions: Opt(Loose({ ready: Opt(Type.Boolean()), serving: Opt(Type.Boolean()), terminating: Opt(Type.Boolean()) })),
        nodeName: Opt(Type.String()),
        zone: Opt(Type.String()),
        targetRef: Opt(Loose({ kind: Opt(Type.String()), name: Opt(Type.String()), namespace: Opt(Type.String()) })),
      }),
    ),
  ),
  ports: Opt(Type.Array(Loose({ name: Opt(Type.String()), port: Opt(PortNumber()), protocol: Opt(Type.String()), appProtocol: Opt(Type.String()) }))),
});
export type EndpointSlice = Static<typeof EndpointSliceSchema>;

export const PodSchema = Loose({
  spec: Opt(Loose({ serviceAccountName: Opt(Type.String()), nodeName: Opt(Type.String()), hostNetwork: Opt(Type.Boolean()) })),
  status: Opt(Loose({ podIP: Opt(Type.String()), podIPs: Opt(Type.Array(Loose({ ip: Type.String() }))), phase: Opt(Type.String()) })),
});
export type Pod = Static<typeof PodSchema>;

export const NodeSchema = Loose({});
export const NamespaceSchema = Loose({});
export const SecretSchema = Loose({ type: Opt(Type.String()), data: Opt(StringMap()), stringData: Opt(StringMap()) });
export type Secret = Static<typeof SecretSchema>;

/** Kubernetes kinds: the stored "spec" is the whole object minus apiVersion/kind/metadata (a Service's ports are at `spec.spec.ports`). */
const k8s = <T>(group: string, kind: string, plural: string, versions: string[], namespaced: boolean, spec: ReturnType<typeof Loose>) =>
  defineKind<T>({ group, kind, plural, versions, namespaced, spec, wholeObject: true });

export const kubernetesKinds = [
  k8s<K8sService>('', 'Service', 'services', ['v1'], true, K8sServiceSpecSchema),
  k8s<EndpointSlice>('discovery.k8s.io', 'EndpointSlice', 'endpointslices', ['v1'], true, EndpointSliceSchema),
  k8s<Pod>('', 'Pod', 'pods', ['v1'], true, PodSchema),
  k8s<unknown>('', 'Node', 'nodes', ['v1'], false, NodeSchema),
  k8s<unknown>('', 'Namespace', 'namespaces', ['v1'], false, NamespaceSchema),
  k8s<Secret>('', 'Secret', 'secrets', ['v1'], true, SecretSchema),
];
