/** Type URLs of the xDS resource types mizzen serves, and the message names behind them. */
export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;
export type ResourceTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/** Short names used in metrics and debug output, as istiod spells them. */
export const TYPE_SHORT_NAME: Record<string, string> = {
  [TypeUrl.Listener]: 'lds',
  [TypeUrl.RouteConfiguration]: 'rds',
  [TypeUrl.Cluster]: 'cds',
  [TypeUrl.ClusterLoadAssignment]: 'eds',
  [TypeUrl.Secret]: 'sds',
};

/** istiod's push order: clusters before the endpoints they name, listeners before the routes they name. */
export const PUSH_ORDER: readonly string[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
  TypeUrl.Secret,
];

export function shortTypeName(typeUrl: string): string {
  return TYPE_SHORT_NAME[typeUrl] ?? typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

export function messageNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.indexOf('/') + 1);
}
