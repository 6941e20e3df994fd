/** The service registry's model: services (what can be called) and their endpoints (where it runs). */

/** Istio's protocol names (ServicePort.protocol). `UNKNOWN` = auto-detect. */
export type Protocol =
  | 'HTTP'
  | 'HTTPS'
  | 'HTTP2'
  | 'GRPC'
  | 'GRPC-WEB'
  | 'TCP'
  | 'TLS'
  | 'UDP'
  | 'MONGO'
  | 'REDIS'
  | 'MYSQL'
  | 'UNKNOWN';

export interface ServicePort {
  name: string;
  port: number;
  protocol: Protocol;
  /** Port on the workload; defaults to `port`. */
  targetPort?: number;
  /** Kubernetes named targetPort, resolved per endpoint. */
  targetPortName?: string;
  /** A Kubernetes port without a name (its `name` is then the number); EndpointSlices list it with name ''. */
  unnamed?: boolean;
}

export type Resolution = 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'NONE';

export interface Service {
  hostname: string;
  /** Namespace of the object that defines it: scopes exportTo, short names and DestinationRule lookup. */
  namespace: string;
  ports: ServicePort[];
  /** VIPs: ClusterIPs or ServiceEntry addresses. Empty for headless / address-less services. */
  addresses: string[];
  resolution: Resolution;
  location: 'MESH_INTERNAL' | 'MESH_EXTERNAL';
  exportTo: string[];
  /** `ServiceEntry ns/name` or `Service ns/name`. */
  origin: { kind: string; namespace: string; name: string; creationTimestamp: string };
  /** Workload label selector (k8s Service selector or ServiceEntry workloadSelector). */
  selector?: Readonly<Record<string, string>>;
  /** Kubernetes services get short-name vhost domains (`reviews`, `reviews.default`, …). */
  kubernetes: boolean;
}

export interface Endpoint {
  /** IP, or a hostname for DNS services. */
  address: string;
  /** The service port (by name) this endpoint serves, and the port to dial. */
  servicePortName: string;
  port: number;
  labels: Readonly<Record<string, string>>;
  /** `region/zone/subzone`, possibly with empty parts. */
  locality: string;
  weight: number;
  healthy: boolean;
  serviceAccount?: string;
  network?: string;
  /** Workload identity for telemetry and debugging: `Kind ns/name` of the workload object. */
  workload?: string;
}

export function serviceKey(s: Pick<Service, 'namespace' | 'hostname'>): string {
  return `${s.namespace}/${s.hostname}`;
}

/** Istio's protocol selection from a port name prefix (`http-web`, `grpc`) or an appProtocol. */
export function protocolFromName(name: string | undefined, appProtocol?: string): Protocol {
  const pick = (s: string): Protocol | undefined => {
    const p = s.toLowerCase().split('-')[0];
    switch (p) {
      case 'http':
        return 'HTTP';
      case 'http2':
      case 'h2c':
      case 'kubernetes.io/h2c':
        return 'HTTP2';
      case 'https':
        return 'HTTPS';
      case 'grpc':
        return 'GRPC';
      case 'grpc-web':
        return 'GRPC-WEB';
      case 'tcp':
        return 'TCP';
      case 'tls':
        return 'TLS';
      case 'udp':
        return 'UDP';
      case 'mongo':
        return 'MONGO';
      case 'redis':
        return 'REDIS';
      case 'mysql':
        return 'MYSQL';
      default:
        return undefined;
    }
  };
  if (appProtocol) {
    const byApp = appProtocol === 'kubernetes.io/h2c' ? 'HTTP2' : appProtocol === 'grpc-web' ? 'GRPC-WEB' : pick(appProtocol);
    if (byApp) return byApp;
  }
  if (name) {
    if (name.toLowerCase().startsWith('grpc-web')) return 'GRPC-WEB';
    const byName = pick(name);
    if (byName) return byName;
  }
  return 'UNKNOWN';
}

export function normalizeProtocol(p: string | undefined): Protocol {
  const up = (p ?? '').toUpperCase();
  const known: Protocol[] = ['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'GRPC-WEB', 'TCP', 'TLS', 'UDP', 'MONGO', 'REDIS', 'MYSQL'];
  return (known as string[]).includes(up) ? (up as Protocol) : 'UNKNOWN';
}

export function isHttpProtocol(p: Protocol): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-WEB';
}

export function labelsMatch(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}
