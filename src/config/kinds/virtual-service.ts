/**
 * VirtualService (networking.istio.io): routing rules for HTTP, TLS-passthrough and TCP traffic to a set of hosts.
 * Fields follow istio/api networking/v1alpha3/virtual_service.proto (the same schema is served as v1, v1beta1,
 * v1alpha3). Semantic rules follow istio/istio pkg/config/validation (ValidateVirtualService, virtualservice.go).
 */
import { Type, type Static } from '@sinclair/typebox';
import { Duration, Enum, Int32, Obj, Opt, Percent, PortSelector, Regex, StringMap, StringMatch as stringMatch, UInt32 } from './common.ts';
import { defineKind } from './kind.ts';
import { checkVirtualService } from './virtual-service-checks.ts';

export { GRPC_STATUS_CODES } from './virtual-service-checks.ts';

export const StringMatchSchema = stringMatch();
export type StringMatch = Static<typeof StringMatchSchema>;
const StringMatchMap = Type.Record(Type.String(), StringMatchSchema);

export const DestinationSchema = Obj({ host: Type.String(), subset: Opt(Type.String()), port: Opt(PortSelector()) });
export type Destination = Static<typeof DestinationSchema>;

export const HeaderOperationsSchema = Obj({ set: Opt(StringMap()), add: Opt(StringMap()), remove: Opt(Type.Array(Type.String())) });
export type HeaderOperations = Static<typeof HeaderOperationsSchema>;
export const HeadersSchema = Obj({ request: Opt(HeaderOperationsSchema), response: Opt(HeaderOperationsSchema) });
export type Headers = Static<typeof HeadersSchema>;

export const HTTPMatchRequestSchema = Obj({
  name: Opt(Type.String()),
  uri: Opt(StringMatchSchema),
  scheme: Opt(StringMatchSchema),
  method: Opt(StringMatchSchema),
  authority: Opt(StringMatchSchema),
  headers: Opt(StringMatchMap),
  port: Opt(UInt32()),
  sourceLabels: Opt(StringMap()),
  gateways: Opt(Type.Array(Type.String())),
  queryParams: Opt(StringMatchMap),
  ignoreUriCase: Opt(Type.Boolean()),
  withoutHeaders: Opt(StringMatchMap),
  sourceNamespace: Opt(Type.String()),
  statPrefix: Opt(Type.String()),
});
export type HTTPMatchRequest = Static<typeof HTTPMatchRequestSchema>;

export const HTTPRouteDestinationSchema = Obj({ destination: DestinationSchema, weight: Opt(Int32()), headers: Opt(HeadersSchema) });
export type HTTPRouteDestination = Static<typeof HTTPRouteDestinationSchema>;
export const RouteDestinationSchema = Obj({ destination: DestinationSchema, weight: Opt(Int32()) });
export type RouteDestination = Static<typeof RouteDestinationSchema>;

export const HTTPRedirectSchema = Obj({
  uri: Opt(Type.String()),
  authority: Opt(Type.String()),
  port: Opt(UInt32()),
  derivePort: Opt(Enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'] as const)),
  scheme: Opt(Type.String()),
  redirectCode: Opt(UInt32()),
});
export type HTTPRedirect = Static<typeof HTTPRedirectSchema>;

/** HTTPBody is a oneOf: `string` or base64 `bytes`. */
export const HTTPDirectResponseSchema = Obj({
  status: UInt32(),
  body: Opt(Obj({ string: Opt(Type.String()), bytes: Opt(Type.String()) }, { maxProperties: 1 })),
});
export type HTTPDirectResponse = Static<typeof HTTPDirectResponseSchema>;

export const DelegateSchema = Obj({ name: Opt(Type.String()), namespace: Opt(Type.String()) });
export type Delegate = Static<typeof DelegateSchema>;

export const RegexRewriteSchema = Obj({ match: Opt(Regex()), rewrite: Opt(Type.String()) });
export type RegexRewrite = Static<typeof RegexRewriteSchema>;
export const HTTPRewriteSchema = Obj({ uri: Opt(Type.String()), authority: Opt(Type.String()), uriRegexRewrite: Opt(RegexRewriteSchema) });
export type HTTPRewrite = Static<typeof HTTPRewriteSchema>;

export const HTTPRetrySchema = Obj({
  attempts: Opt(Int32()),
  perTryTimeout: Opt(Duration()),
  retryOn: Opt(Type.String()),
  retryRemoteLocalities: Opt(Type.Boolean()),
  retryIgnorePreviousHosts: Opt(Type.Boolean()),
  backoff: Opt(Duration()),
});
export type HTTPRetry = Static<typeof HTTPRetrySchema>;

export const CorsPolicySchema = Obj({
  allowOrigin: Opt(Type.Array(Type.String())), // deprecated, still served
  allowOrigins: Opt(Type.Array(StringMatchSchema)),
  allowMethods: Opt(Type.Array(Type.String())),
  allowHeaders: Opt(Type.Array(Type.String())),
  exposeHeaders: Opt(Type.Array(Type.String())),
  maxAge: Opt(Duration()),
  allowCredentials: Opt(Type.Boolean()),
  unmatchedPreflights: Opt(Enum(['UNSPECIFIED', 'FORWARD', 'IGNORE'] as const)),
});
export type CorsPolicy = Static<typeof CorsPolicySchema>;

/** Delay is a oneOf fixedDelay|exponentialDelay; Abort a oneOf httpStatus|grpcStatus|http2Error (CRD oneOf). */
export const HTTPFaultDelaySchema = Obj({
  fixedDelay: Opt(Duration()),
  exponentialDelay: Opt(Duration()),
  percentage: Opt(Percent()),
  percent: Opt(Int32()), // deprecated integer percentage
});
export const HTTPFaultAbortSchema = Obj({
  httpStatus: Opt(Int32()),
  grpcStatus: Opt(Type.String()),
  http2Error: Opt(Type.String()),
  percentage: Opt(Percent()),
});
export type HTTPFaultDelay = Static<typeof HTTPFaultDelaySchema>;
export type HTTPFaultAbort = Static<typeof HTTPFaultAbortSchema>;
export const HTTPFaultInjectionSchema = Obj({ delay: Opt(HTTPFaultDelaySchema), abort: Opt(HTTPFaultAbortSchema) });
export type HTTPFaultInjection = Static<typeof HTTPFaultInjectionSchema>;

export const HTTPMirrorPolicySchema = Obj({ destination: DestinationSchema, percentage: Opt(Percent()) });
export type HTTPMirrorPolicy = Static<typeof HTTPMirrorPolicySchema>;

export const HTTPRouteSchema = Obj({
  name: Opt(Type.String()),
  match: Opt(Type.Array(HTTPMatchRequestSchema)),
  route: Opt(Type.Array(HTTPRouteDestinationSchema)),
  redirect: Opt(HTTPRedirectSchema),
  directResponse: Opt(HTTPDirectResponseSchema),
  delegate: Opt(DelegateSchema),
  rewrite: Opt(HTTPRewriteSchema),
  timeout: Opt(Duration()),
  retries: Opt(HTTPRetrySchema),
  fault: Opt(HTTPFaultInjectionSchema),
  mirror: Opt(DestinationSchema),
  mirrors: Opt(Type.Array(HTTPMirrorPolicySchema)),
  mirrorPercent: Opt(UInt32()), // deprecated
  mirror_percent: Opt(UInt32()), // deprecated proto name, still accepted by the CRD
  mirrorPercentage: Opt(Percent()),
  corsPolicy: Opt(CorsPolicySchema),
  headers: Opt(HeadersSchema),
});
export type HTTPRoute = Static<typeof HTTPRouteSchema>;

const L4Common = {
  destinationSubnets: Opt(Type.Array(Type.String())),
  port: Opt(UInt32()),
  sourceLabels: Opt(StringMap()),
  gateways: Opt(Type.Array(Type.String())),
  sourceNamespace: Opt(Type.String()),
};
export const L4MatchAttributesSchema = Obj({ ...L4Common, sourceSubnet: Opt(Type.String()) });
export type L4MatchAttributes = Static<typeof L4MatchAttributesSchema>;
export const TLSMatchAttributesSchema = Obj({ sniHosts: Type.Array(Type.String()), ...L4Common });
export type TLSMatchAttributes = Static<typeof TLSMatchAttributesSchema>;

export const TCPRouteSchema = Obj({ match: Opt(Type.Array(L4MatchAttributesSchema)), route: Opt(Type.Array(RouteDestinationSchema)) });
export type TCPRoute = Static<typeof TCPRouteSchema>;
export const TLSRouteSchema = Obj({ match: Type.Array(TLSMatchAttributesSchema), route: Opt(Type.Array(RouteDestinationSchema)) });
export type TLSRoute = Static<typeof TLSRouteSchema>;

export const VirtualServiceSpecSchema = Obj({
  hosts: Opt(Type.Array(Type.String())),
  gateways: Opt(Type.Array(Type.String())),
  http: Opt(Type.Array(HTTPRouteSchema)),
  tls: Opt(Type.Array(TLSRouteSchema)),
  tcp: Opt(Type.Array(TCPRouteSchema)),
  exportTo: Opt(Type.Array(Type.String())),
});
export type VirtualServiceSpec = Static<typeof VirtualServiceSpecSchema>;

export const virtualService = defineKind<VirtualServiceSpec>({
  group: 'networking.istio.io',
  kind: 'VirtualService',
  plural: 'virtualservices',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  namespaced: true,
  spec: VirtualServiceSpecSchema,
  check: checkVirtualService,
});
