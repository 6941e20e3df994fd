/**
 * Real proxyless gRPC clients (@grpc/grpc-js-xds) bootstrapped against a running mizzen, as Istio's grpc-agent
 * template would: node id in Istio's format, GENERATOR=grpc, the inbound listener template.
 */
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { EchoClient, type EchoClientT } from './echo.ts';

grpcXds.register();

export const BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';

export interface NodeSpec {
  namespace?: string;
  pod?: string;
  ip?: string;
  labels?: Record<string, string>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
}

export function bootstrap(xdsPort: number, node: NodeSpec = {}): string {
  const ns = node.namespace ?? 'default';
  const ip = node.ip ?? '127.0.0.1';
  return JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: `sidecar~${ip}~${node.pod ?? 'client'}.${ns}~${ns}.svc.cluster.local`,
      metadata: { GENERATOR: 'grpc', NAMESPACE: ns, LABELS: node.labels ?? {}, INSTANCE_IPS: ip },
      locality: node.locality ?? {},
    },
    server_listener_resource_name_template: 'xds.istio.io/grpc/lds/inbound/%s',
  });
}

export function xdsClient(target: string, xdsPort: number, node: NodeSpec = {}): EchoClientT {
  return new EchoClient(`xds:///${target}`, grpc.credentials.createInsecure(), { [BOOTSTRAP_OPTION]: bootstrap(xdsPort, node) }) as EchoClientT;
}
