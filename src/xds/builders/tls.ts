/**
 * TLS contexts (istio-xds.md §4.8, §6.3, §9): upstream contexts from a DestinationRule's `tls` (or auto-mTLS), and the
 * downstream context for Istio mTLS chains. Certificates are never inlined: every one is an SDS reference — `default`
 * and `ROOTCA` from the proxy's agent, `file-cert:`/`file-root:` for mounted files, `kubernetes://` from the control
 * plane over ADS.
 */
import type { ClientTLSSettings } from '../../config/kinds/destination-rule.ts';
import { compact, struct, ZERO_DURATION, type Json } from './common.ts';

const TLS_SOCKET = 'envoy.transport_sockets.tls';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

export const WORKLOAD_CERT = 'default';
export const ROOT_CA = 'ROOTCA';

/** An SDS secret reference to the proxy's agent over the `sds-grpc` bootstrap cluster (the bootstrap's UDS). */
export function agentSds(name: string): Json {
  return {
    name,
    sds_config: {
      api_config_source: {
        api_type: 'GRPC',
        set_node_on_first_message_only: true,
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }],
      },
      initial_fetch_timeout: ZERO_DURATION,
      resource_api_version: 'V3',
    },
  };
}

/** An SDS secret the control plane serves itself over ADS (credentialName secrets). */
export function adsSds(name: string): Json {
  return { name, sds_config: { ads: {}, resource_api_version: 'V3' } };
}

const TLS_PARAMS = { tls_minimum_protocol_version: 'TLSv1_2', tls_maximum_protocol_version: 'TLSv1_3' };

/** ALPN Istio offers upstream on mTLS connections: peer-exchange for telemetry, `h2` for HTTP/2 clusters. */
function istioAlpn(h2: boolean): string[] {
  return h2 ? ['istio-peer-exchange', 'istio', 'h2'] : ['istio-peer-exchange', 'istio'];
}

export interface UpstreamTlsInput {
  tls: ClientTLSSettings;
  /** Default SNI for ISTIO_MUTUAL (`outbound_.<port>_.<subset>_.<host>`). */
  istioSni: string;
  /** SPIFFE identities of the service's workloads (ISTIO_MUTUAL SAN check when the DR names none). */
  serviceIdentities: string[];
  h2: boolean;
  /** Whether SDS from the control plane (credentialName) is possible: gateways and workload-selected DRs only. */
  allowCredentialName: boolean;
  note: (m: string) => void;
}

function sanMatchers(sans: readonly string[]): Json[] {
  return sans.map((s) => ({ san_type: s.startsWith('spiffe://') ? 'URI' : 'DNS', matcher: { exact: s } }));
}

/** The upstream TLS transport socket for a DestinationRule `tls` block, or undefined for DISABLE / unusable settings. */
export function upstreamTlsSocket(o: UpstreamTlsInput): Json | undefined {
  const { tls } = o;
  let ctx: Json;
  switch (tls.mode) {
    case 'ISTIO_MUTUAL': {
      const sans = tls.subjectAltNames?.length ? tls.subjectAltNames : o.serviceIdentities;
      ctx = {
        common_tls_context: {
          tls_params: TLS_PARAMS,
          tls_certificate_sds_secret_configs: [agentSds(WORKLOAD_CERT)],
          combined_validation_context: {
            default_validation_context: sans.length > 0 ? { match_typed_subject_alt_names: sanMatchers(sans) } : {},
            validation_context_sds_secret_config: agentSds(ROOT_CA),
          },
          alpn_protocols: istioAlpn(o.h2),
        },
        sni: tls.sni ?? o.istioSni,
      };
      break;
    }
    case 'SIMPLE':
    case 'MUTUAL': {
      const common: Json = { tls_params: {} };
      if (tls.credentialName) {
        if (!o.allowCredentialName) {
          o.note(`tls.credentialName ${tls.credentialName} is only used by gateways and by DestinationRules with a workloadSelector: TLS left out`);
          return undefined;
        }
        if (tls.mode === 'MUTUAL') common.tls_certificate_sds_secret_configs = [adsSds(`kubernetes://${tls.credentialName}`)];
        if (!tls.insecureSkipVerify) {
          common.combined_validation_context = {
            default_validation_context: compact({ match_typed_subject_alt_names: tls.subjectAltNames?.length ? sanMatchers(tls.subjectAltNames) : undefined }),
            validation_context_sds_secret_config: adsSds(`kubernetes://${tls.credentialName}-cacert`),
          };
        }
      } else {
        if (tls.mode === 'MUTUAL') {
          common.tls_certificate_sds_secret_configs = [agentSds(`file-cert:${tls.clientCertificate}~${tls.privateKey}`)];
        }
        if (!tls.insecureSkipVerify) {
          common.combined_validation_context = {
            default_validation_context: compact({ match_typed_subject_alt_names: tls.subjectAltNames?.length ? sanMatchers(tls.subjectAltNames) : undefined }),
            validation_context_sds_secret_config: agentSds(tls.caCertificates ? `file-root:${tls.caCertificates}` : 'file-root:system'),
          };
        }
      }
      if (o.h2) common.alpn_protocols = ['h2'];
      ctx = compact({ common_tls_context: common, sni: tls.sni });
      break;
    }
    default:
      return undefined;
  }
  return { name: TLS_SOCKET, typed_config: { '@type': UPSTREAM_TLS, ...ctx } };
}

/**
 * Auto-mTLS (mesh enableAutoMtls): endpoints labelled `tlsMode: istio` (sidecar-injected) get Istio mTLS, the rest
 * plaintext, chosen per endpoint by its `envoy.transport_socket_match` metadata (istio-xds.md §4.8, §5).
 */
export function autoMtlsSocketMatches(istioMutual: Json): Json[] {
  return [
    { name: 'tlsMode-istio', match: struct({ tlsMode: 'istio' }), transport_socket: istioMutual },
    {
      name: 'tlsMode-disabled',
      match: {},
      transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' } },
    },
  ];
}

/** The downstream context of an inbound Istio mTLS chain (BuildInboundTLS): client certificate required. */
export function inboundMtlsSocket(alpn: string[]): Json {
  return {
    name: TLS_SOCKET,
    typed_config: {
      '@type': DOWNSTREAM_TLS,
      common_tls_context: {
        tls_params: TLS_PARAMS,
        alpn_protocols: alpn,
        tls_certificate_sds_secret_configs: [agentSds(WORKLOAD_CERT)],
        combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: agentSds(ROOT_CA) },
      },
      require_client_certificate: { value: true },
    },
  };
}

/** A downstream context for gateway servers: `kubernetes://` secrets over ADS, or file / workload certificates. */
export function downstreamTlsSocket(certs: Json[], validation: Json | undefined, requireClientCert: boolean, alpn: string[], params: Json): Json {
  return {
    name: TLS_SOCKET,
    typed_config: {
      '@type': DOWNSTREAM_TLS,
      common_tls_context: compact({
        tls_params: params,
        alpn_protocols: alpn,
        tls_certificate_sds_secret_configs: certs,
        combined_validation_context: validation,
      }),
      require_client_certificate: { value: requireClientCert },
    },
  };
}

/**
 * Proxyless gRPC takes certificates from bootstrap certificate providers, not SDS (gRFC A29): instance `default`
 * holds the workload certificate (`default`) and the root (`ROOTCA`), as Istio's grpc-agent bootstrap names them.
 * The deprecated certificate field istiod also fills is set too, for older gRPC releases.
 */
function grpcCommonTlsContext(sans: readonly string[]): Json {
  const cert = { instance_name: 'default', certificate_name: WORKLOAD_CERT };
  return {
    tls_certificate_provider_instance: cert,
    tls_certificate_certificate_provider_instance: cert,
    // `validation_context`, not istiod's combined context: Envoy's schema requires an SDS config inside the combined
    // one, which gRPC refuses; this is the form both accept. gRPC reads the (deprecated) exact-string SAN matchers.
    validation_context: compact({
      ca_certificate_provider_instance: { instance_name: 'default', certificate_name: ROOT_CA },
      match_subject_alt_names: sans.length > 0 ? sans.map((s) => ({ exact: s })) : undefined,
    }),
  };
}

/** Client side (DestinationRule ISTIO_MUTUAL): verify the server is one of the service's identities. */
export function grpcUpstreamMtlsSocket(sans: readonly string[]): Json {
  return { name: TLS_SOCKET, typed_config: { '@type': UPSTREAM_TLS, common_tls_context: grpcCommonTlsContext(sans) } };
}

/** Server side (PeerAuthentication STRICT): require a client certificate from the mesh root. */
export function grpcDownstreamMtlsSocket(): Json {
  return { name: TLS_SOCKET, typed_config: { '@type': DOWNSTREAM_TLS, common_tls_context: grpcCommonTlsContext([]), require_client_certificate: { value: true } } };
}
