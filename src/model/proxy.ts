/**
 * A connected proxy, parsed from its xDS node: Istio's node ID `<type>~<ip>~<pod>.<ns>~<ns>.svc.<domain>` plus the
 * metadata the agent puts in node.metadata (istio-xds.md §1).
 */
import { fail, ok, type Result } from '../shared/errors.ts';
import { isIp } from './ip.ts';

export type ProxyType = 'sidecar' | 'router';

export interface Proxy {
  type: ProxyType;
  /** Part 3 of the node ID: `<pod>.<namespace>`. */
  id: string;
  nodeId: string;
  ipAddresses: string[];
  dnsDomain: string;
  /** Config namespace: metadata NAMESPACE, else the first label of the DNS domain. */
  namespace: string;
  labels: Readonly<Record<string, string>>;
  metadata: Readonly<Record<string, unknown>>;
  /** `grpc` for proxyless gRPC clients (metadata GENERATOR). */
  generator?: string;
  /** `region/zone/subzone`. */
  locality: string;
  serviceAccount?: string;
  clusterId: string;
  /**
   * The identity the stream authenticated with (secure port: client certificate or token), checked against the node's
   * claims at connect. Absent on the plaintext port: such proxies get nothing that needs a proven identity (secrets).
   */
  verifiedIdentity?: { namespace: string; serviceAccount: string };
}

const PROXY_TYPES = new Set(['sidecar', 'router']);

export interface NodeLike {
  id: string;
  metadata: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
}

const asString = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function asLabels(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}


export function parseProxy(node: NodeLike): Result<Proxy, string> {
  const parts = node.id.split('~');
  if (parts.length !== 4) return fail(`node id ${JSON.stringify(node.id)} is not <type>~<ip>~<pod>.<namespace>~<dns domain>`);
  const [type, ip, id, dnsDomain] = parts as [string, string, string, string];
  if (!PROXY_TYPES.has(type)) return fail(`node id ${JSON.stringify(node.id)}: unknown proxy type ${JSON.stringify(type)} (want sidecar or router)`);
  const md = node.metadata;
  const metaIps = (asString(md.INSTANCE_IPS) ?? '').split(',').map((s) => s.trim()).filter(isIp);
  const ipAddresses = metaIps.length > 0 ? metaIps : isIp(ip) ? [ip] : [];
  if (ipAddresses.length === 0) return fail(`node id ${JSON.stringify(node.id)}: no valid IP address in the node id or INSTANCE_IPS`);
  const namespace = asString(md.NAMESPACE) ?? dnsDomain.split('.')[0] ?? '';
  if (!namespace) return fail(`node id ${JSON.stringify(node.id)}: no namespace (metadata NAMESPACE or the DNS domain)`);
  const loc = node.locality;
  const locality = loc && (loc.region || loc.zone || loc.sub_zone) ? `${loc.region ?? ''}/${loc.zone ?? ''}/${loc.sub_zone ?? ''}` : '';
  const generator = asString(md.GENERATOR);
  const serviceAccount = asString(md.SERVICE_ACCOUNT);
  return ok({
    type: type as ProxyType,
    id,
    nodeId: node.id,
    ipAddresses,
    dnsDomain,
    namespace,
    labels: asLabels(md.LABELS),
    metadata: md,
    ...(generator ? { generator } : {}),
    locality,
    ...(serviceAccount ? { serviceAccount } : {}),
    clusterId: asString(md.CLUSTER_ID) ?? 'Kubernetes',
  });
}

export function isProxylessGrpc(p: Proxy): boolean {
  return p.generator === 'grpc';
}
