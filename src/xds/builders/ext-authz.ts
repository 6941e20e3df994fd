/**
 * MeshConfig ext_authz providers (`envoyExtAuthzHttp`, `envoyExtAuthzGrpc`) → the Envoy ext_authz filters a CUSTOM
 * AuthorizationPolicy calls (istio-xds.md §7.1; istiod pilot/pkg/security/authz/builder/extauthz.go):
 * - HTTP provider: one `envoy.filters.http.ext_authz` with `http_service` (server_uri `http://<host>` on the provider's
 *   outbound cluster `outbound|<port>||<host>`, timeout default 600s, path_prefix, allowed request / upstream / client
 *   headers); no TCP filter (an HTTP authorizer cannot check a TCP connection);
 * - gRPC provider: `envoy.filters.http.ext_authz` and `envoy.filters.network.ext_authz` (stat_prefix `tcp.`) with an
 *   `envoy_grpc` service on that cluster, authority = the cluster name with `|` → `_.` (a `|` is not valid in :authority);
 * - both: `transport_api_version: V3`, `failure_mode_allow` = failOpen, `status_on_error` = statusOnError, and
 *   `filter_enabled_metadata` so the filter only runs for requests a CUSTOM rule selected: the shadow RBAC filter in
 *   front of it (rbac.ts) writes the matched policy name, `istio-ext-authz-…`, under the RBAC filter's dynamic metadata
 *   key `istio_ext_authz_shadow_effective_policy_id` (shadow_rules_stat_prefix + `shadow_effective_policy_id`).
 * A provider istiod would refuse (bad port, service not in the registry, unknown status, bad pathPrefix, a lone `*`
 * header) resolves to an error instead, and the caller denies what the CUSTOM policy selects (fail closed, as istiod).
 */
import type { EnvoyExtAuthzGrpcProvider, EnvoyExtAuthzHttpProvider, ExtAuthzRequestBody, ExtensionProvider } from '../../model/mesh.ts';
import { compact, duration, type Json } from './common.ts';

export const HTTP_EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';
export const NETWORK_EXT_AUTHZ_FILTER = 'envoy.filters.network.ext_authz';
const HTTP_EXT_AUTHZ_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const NETWORK_EXT_AUTHZ_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz';

/** Prefix of every CUSTOM rule's RBAC policy name; ext_authz runs when the shadow RBAC matched one (extAuthzMatchPrefix). */
export const EXT_AUTHZ_POLICY_PREFIX = 'istio-ext-authz';
/** shadow_rules_stat_prefix of the CUSTOM shadow RBAC filter (authzmodel.RBACExtAuthzShadowRulesStatPrefix). */
export const EXT_AUTHZ_SHADOW_STAT_PREFIX = 'istio_ext_authz_';
/** Envoy RBAC writes the matched shadow policy under `<shadow_rules_stat_prefix>shadow_effective_policy_id`. */
const SHADOW_EFFECTIVE_POLICY_ID = `${EXT_AUTHZ_SHADOW_STAT_PREFIX}shadow_effective_policy_id`;
const DEFAULT_TIMEOUT = { seconds: 600, nanos: 0 };

/** envoy.type.v3.StatusCode values (envoy/type/v3/http_status.proto): status_on_error must be one of them. */
const ENVOY_STATUS_CODES = new Set([
  100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404,
  405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 423, 424, 426, 428, 429, 431, 500, 501, 502,
  503, 504, 505, 506, 507, 508, 510, 511,
]);

/** The ext_authz filters of one provider: `tcp` only for gRPC providers. */
export interface ExtAuthzFilters {
  ok: true;
  kind: 'http' | 'grpc';
  http: Json;
  tcp?: Json;
}

export type ExtAuthzResolution = ExtAuthzFilters | { ok: false; reason: string };

/** istiod's LookupCluster: a provider `service` (`[<namespace>/]<hostname>`) and port → its outbound cluster. */
export type ClusterLookup = (service: string, port: number) => { hostname: string; name: string } | { error: string };

/** `filter_enabled_metadata`: run only when the shadow RBAC filter (HTTP or network) matched a CUSTOM rule. */
function filterEnabledMetadata(rbacFilter: string): Json {
  return { filter: rbacFilter, path: [{ key: SHADOW_EFFECTIVE_POLICY_ID }], value: { string_match: { prefix: EXT_AUTHZ_POLICY_PREFIX } } };
}

/** Istio header-list syntax → ListStringMatcher: `*suffix`, `prefix*` or exact, case-insensitive (generateHeaders). */
function headerMatchers(headers: readonly string[] | undefined): Json | undefined {
  if (!headers?.length) return undefined;
  return {
    patterns: headers.map((h) =>
      h.startsWith('*') ? { suffix: h.slice(1), ignore_case: true } : h.endsWith('*') ? { prefix: h.slice(0, -1), ignore_case: true } : { exact: h, ignore_case: true },
    ),
  };
}

function withRequestBody(body: ExtAuthzRequestBody | undefined): Json | undefined {
  if (!body) return undefined;
  return compact({ max_request_bytes: body.maxRequestBytes, allow_partial_message: body.allowPartialMessage || undefined, pack_as_bytes: body.packAsBytes || undefined });
}

/** The checks istiod makes before building (buildExtAuthzHTTP/GRPC, validation.ValidateExtensionProviderEnvoyExtAuthz*). */
function problems(p: EnvoyExtAuthzHttpProvider | EnvoyExtAuthzGrpcProvider, http: EnvoyExtAuthzHttpProvider | undefined): string[] {
  const out: string[] = [];
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) out.push(`port must be in the range [1, 65535], found: ${String(p.port)}`);
  if (p.statusOnError !== undefined && p.statusOnError !== '' && !ENVOY_STATUS_CODES.has(Number(p.statusOnError))) out.push(`unsupported statusOnError ${p.statusOnError}`);
  if (p.timeout !== undefined && duration(p.timeout) === undefined) out.push(`invalid timeout ${JSON.stringify(p.timeout)}`);
  const body = p.includeRequestBodyInCheck;
  if (body && !(Number.isInteger(body.maxRequestBytes) && (body.maxRequestBytes ?? 0) > 0)) out.push('includeRequestBodyInCheck.maxRequestBytes must be greater than 0');
  if (http) {
    if (http.pathPrefix && !http.pathPrefix.startsWith('/')) out.push(`pathPrefix must begin with \`/\`, found: ${JSON.stringify(http.pathPrefix)}`);
    const lists = ['includeRequestHeadersInCheck', 'includeHeadersInCheck', 'headersToDownstreamOnDeny', 'headersToDownstreamOnAllow', 'headersToUpstreamOnAllow'] as const;
    for (const field of lists) {
      if (http[field]?.includes('*')) out.push(`a single wildcard ("*") is not supported, change it to either prefix or suffix match: ${field}`);
    }
    for (const k of Object.keys(http.includeAdditionalHeadersInCheck ?? {})) if (!k) out.push('includeAdditionalHeadersInCheck has an empty header name');
  }
  return out;
}

function httpProviderFilter(p: EnvoyExtAuthzHttpProvider, cluster: { hostname: string; name: string }): Json {
  // The deprecated includeHeadersInCheck is read only when includeRequestHeadersInCheck is unset (generateHTTPConfig).
  const allowed = headerMatchers(p.includeRequestHeadersInCheck) ?? headerMatchers(p.includeHeadersInCheck);
  const additional = Object.keys(p.includeAdditionalHeadersInCheck ?? {})
    .sort()
    .map((key) => ({ key, value: p.includeAdditionalHeadersInCheck![key] }));
  const response = compact({
    allowed_upstream_headers: headerMatchers(p.headersToUpstreamOnAllow),
    allowed_client_headers: headerMatchers(p.headersToDownstreamOnDeny),
    allowed_client_headers_on_success: headerMatchers(p.headersToDownstreamOnAllow),
  });
  const service = compact({
    // HttpUri.uri is required by Envoy but not used by ext_authz (it uses the cluster); timeout is required.
    server_uri: { uri: `http://${cluster.hostname}`, cluster: cluster.name, timeout: duration(p.timeout) ?? DEFAULT_TIMEOUT },
    path_prefix: p.pathPrefix || undefined,
    authorization_request: allowed || additional.length ? compact({ allowed_headers: allowed, headers_to_add: additional.length ? additional : undefined }) : undefined,
    authorization_response: Object.keys(response).length ? response : undefined,
  });
  return {
    name: HTTP_EXT_AUTHZ_FILTER,
    typed_config: compact({ ...httpFilterCommon(p), http_service: service }),
  };
}

/** The HTTP ext_authz filter's settings that do not depend on the provider's protocol. */
function httpFilterCommon(p: EnvoyExtAuthzHttpProvider | EnvoyExtAuthzGrpcProvider): Json {
  return {
    '@type': HTTP_EXT_AUTHZ_TYPE,
    status_on_error: p.statusOnError ? { code: Number(p.statusOnError) } : undefined,
    failure_mode_allow: p.failOpen || undefined,
    transport_api_version: 'V3',
    // Only requests the shadow RBAC filter selected (the CUSTOM policy's rules) are checked.
    filter_enabled_metadata: filterEnabledMetadata('envoy.filters.http.rbac'),
    with_request_body: withRequestBody(p.includeRequestBodyInCheck),
  };
}

function grpcProviderFilters(p: EnvoyExtAuthzGrpcProvider, cluster: { name: string }): { http: Json; tcp: Json } {
  const grpcService = {
    envoy_grpc: { cluster_name: cluster.name, authority: cluster.name.replaceAll('|', '_.') },
    timeout: duration(p.timeout) ?? DEFAULT_TIMEOUT,
  };
  const http = {
    name: HTTP_EXT_AUTHZ_FILTER,
    typed_config: compact({ ...httpFilterCommon(p), grpc_service: grpcService }),
  };
  const tcp = {
    name: NETWORK_EXT_AUTHZ_FILTER,
    typed_config: compact({
      '@type': NETWORK_EXT_AUTHZ_TYPE,
      stat_prefix: 'tcp.',
      failure_mode_allow: p.failOpen || undefined,
      transport_api_version: 'V3',
      grpc_service: grpcService,
      filter_enabled_metadata: filterEnabledMetadata('envoy.filters.network.rbac'),
    }),
  };
  return { http, tcp };
}

/**
 * The ext_authz filters for the CUSTOM provider named `name` (matched exactly, as istiod's resolved map), or why it
 * cannot be used: not defined, not an ext_authz provider, invalid, or its service is not in the registry.
 */
export function resolveExtAuthz(providers: readonly ExtensionProvider[], name: string, lookup: ClusterLookup): ExtAuthzResolution {
  const matching = providers.filter((p) => p.name === name);
  const authz = matching.filter((p) => p.envoyExtAuthzHttp || p.envoyExtAuthzGrpc);
  if (authz.length === 0) {
    const available = providers.filter((p) => p.envoyExtAuthzHttp || p.envoyExtAuthzGrpc).map((p) => p.name);
    const why = matching.length > 0 ? 'it is not an envoyExtAuthzHttp or envoyExtAuthzGrpc provider' : 'no such extension provider in the mesh config';
    return { ok: false, reason: `${why}; ext_authz providers: ${available.length ? available.join(', ') : 'none'}` };
  }
  if (matching.length > 1) return { ok: false, reason: `extension provider name must be unique, found duplicate: ${name}` };
  const provider = authz[0]!;
  const http = provider.envoyExtAuthzHttp;
  const p = (http ?? provider.envoyExtAuthzGrpc)!;
  const errors = problems(p, http);
  if (!p.service) errors.push('service must not be empty');
  let cluster: { hostname: string; name: string } | undefined;
  if (p.service) {
    const found = lookup(p.service, p.port);
    if ('error' in found) errors.push(found.error);
    else cluster = found;
  }
  if (errors.length > 0 || !cluster) return { ok: false, reason: `found errors in provider ${name}: ${errors.join('; ')}` };
  if (http) return { ok: true, kind: 'http', http: httpProviderFilter(http, cluster) };
  return { ok: true, kind: 'grpc', ...grpcProviderFilters(provider.envoyExtAuthzGrpc!, cluster) };
}
