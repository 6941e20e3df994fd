/**
 * The benchmark mesh, written as Istio YAML into a config folder: M ServiceEntries (one GRPC port, E static
 * endpoints labelled version v1/v2 alternately), one DestinationRule (subsets v1, v2) and one VirtualService (90/10)
 * per service, 20 services per namespace like Istio's perf/load. Each service gets two files — `<svc>-se.yaml` and
 * `<svc>-routing.yaml` — so an endpoint edit rewrites only a ServiceEntry and a weight edit only a VirtualService.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface MeshSpec {
  services: number;
  endpointsPerService: number;
  servicesPerNamespace: number;
}

export const PORT = 8080;

export interface ServiceInfo {
  name: string;
  namespace: string;
  host: string;
  /** Current endpoint addresses (index j has label version v1 when j is even). */
  addresses: string[];
  weightV1: number;
}

/** 10.a.b.c from a global endpoint index: distinct for up to 2^24 endpoints. */
const ip = (g: number) => `10.${(g >> 16) & 255}.${(g >> 8) & 255}.${g & 255}`;

export function buildServices(spec: MeshSpec): ServiceInfo[] {
  const out: ServiceInfo[] = [];
  for (let i = 0; i < spec.services; i++) {
    const namespace = `ns-${Math.floor(i / spec.servicesPerNamespace)}`;
    const name = `svc-${i}`;
    out.push({
      name,
      namespace,
      host: `${name}.${namespace}.svc.cluster.local`,
      addresses: Array.from({ length: spec.endpointsPerService }, (_, j) => ip(i * spec.endpointsPerService + j)),
      weightV1: 90,
    });
  }
  return out;
}

export const namespacesOf = (services: ServiceInfo[]): string[] => [...new Set(services.map((s) => s.namespace))];

function serviceEntryYaml(s: ServiceInfo): string {
  const eps = s.addresses
    .map((a, j) => `    - address: ${a}\n      ports: { grpc: ${PORT} }\n      labels: { app: ${s.name}, version: v${(j % 2) + 1} }`)
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${s.name}
  namespace: ${s.namespace}
spec:
  hosts: [${s.host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - number: ${PORT}
      name: grpc
      protocol: GRPC
  endpoints:
${eps}
`;
}

function routingYaml(s: ServiceInfo): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${s.name}
  namespace: ${s.namespace}
spec:
  host: ${s.host}
  subsets:
    - name: v1
      labels: { version: v1 }
    - name: v2
      labels: { version: v2 }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${s.name}
  namespace: ${s.namespace}
spec:
  hosts: [${s.host}]
  http:
    - route:
        - destination: { host: ${s.host}, subset: v1 }
          weight: ${s.weightV1}
        - destination: { host: ${s.host}, subset: v2 }
          weight: ${100 - s.weightV1}
`;
}

const fileOf = (dir: string, s: ServiceInfo, part: 'se' | 'routing') => path.join(dir, s.namespace, `${s.name}-${part}.yaml`);

export function writeMesh(dir: string, services: ServiceInfo[]): void {
  for (const ns of namespacesOf(services)) fs.mkdirSync(path.join(dir, ns), { recursive: true });
  for (const s of services) {
    fs.writeFileSync(fileOf(dir, s, 'se'), serviceEntryYaml(s));
    fs.writeFileSync(fileOf(dir, s, 'routing'), routingYaml(s));
  }
}

/** Moves endpoint 0 (a v1 endpoint) to a new address; returns the EDS clusters whose content changes. */
export function moveEndpoint(dir: string, s: ServiceInfo, newAddress: string): string[] {
  s.addresses[0] = newAddress;
  fs.writeFileSync(fileOf(dir, s, 'se'), serviceEntryYaml(s));
  return [`outbound|${PORT}||${s.host}`, `outbound|${PORT}|v1|${s.host}`];
}

/** Changes the v1/v2 split; returns the route configuration whose content changes. */
export function reweight(dir: string, s: ServiceInfo, weightV1: number): string[] {
  s.weightV1 = weightV1;
  fs.writeFileSync(fileOf(dir, s, 'routing'), routingYaml(s));
  return [`outbound|${PORT}||${s.host}`];
}

/** Addresses for moved endpoints: 10.250/16, above the initial mesh's addresses up to 16 M endpoints. */
export const movedAddress = (k: number) => `10.250.${(k >> 8) & 255}.${k & 255}`;
