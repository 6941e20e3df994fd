/**
 * Real proxyless gRPC clients (@grpc/grpc-js-xds) bootstrapped against a running mizzen, as Istio's grpc-agent
 * template would: node id in Istio's format, GENERATOR=grpc, the inbound listener template.
 */
import path from 'node:path';
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

export interface BootstrapOptions {
  /**
   * An OUTPUT_CERTS directory (`cert-chain.pem`, `key.pem`, `root-cert.pem`, see workload-certs.ts): adds the
   * grpc-agent bootstrap's `certificate_providers.default` file_watcher instance, which mizzen's TLS contexts name
   * (gRFC A29).
   */
  certificateProviders?: string;
}

export function bootstrap(xdsPort: number, node: NodeSpec = {}, options: BootstrapOptions = {}): string {
  const ns = node.namespace ?? 'default';
  const ip = node.ip ?? '127.0.0.1';
  const certs = options.certificateProviders;
  return JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: `sidecar~${ip}~${node.pod ?? 'client'}.${ns}~${ns}.svc.cluster.local`,
      metadata: { GENERATOR: 'grpc', NAMESPACE: ns, LABELS: node.labels ?? {}, INSTANCE_IPS: ip },
      locality: node.locality ?? {},
    },
    ...(certs
      ? {
          // As pkg/istio-agent/grpcxds/grpc_bootstrap.go writes it.
          certificate_providers: {
            default: {
              plugin_name: 'file_watcher',
              config: {
                certificate_file: path.join(certs, 'cert-chain.pem'),
                private_key_file: path.join(certs, 'key.pem'),
                ca_certificate_file: path.join(certs, 'root-cert.pem'),
                refresh_interval: '900s',
              },
            },
          },
        }
      : {}),
    server_listener_resource_name_template: 'xds.istio.io/grpc/lds/inbound/%s',
  });
}

/**
 * A proxyless client. With `certificateProviders` it uses XdsChannelCredentials (plaintext fallback), so whether it
 * speaks mTLS is decided by the cluster's UpstreamTlsContext from mizzen, as for a grpc-agent workload.
 */
export function xdsClient(target: string, xdsPort: number, node: NodeSpec = {}, options: BootstrapOptions & { channelOptions?: grpc.ChannelOptions } = {}): EchoClientT {
  const creds = options.certificateProviders ? new grpcXds.XdsChannelCredentials(grpc.credentials.createInsecure()) : grpc.credentials.createInsecure();
  return new EchoClient(`xds:///${target}`, creds, { ...options.channelOptions, [BOOTSTRAP_OPTION]: bootstrap(xdsPort, node, options) }) as EchoClientT;
}
