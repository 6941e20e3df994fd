/**
 * The security filters of a workload's inbound chains and a gateway's chains (istio-xds.md §2.5, §7.1 order): CUSTOM
 * authorization (shadow RBAC + ext_authz, or a fail-closed DENY), request authentication (jwt_authn), then AUDIT /
 * DENY / ALLOW RBAC in HTTP connection managers, and the same CUSTOM pair plus network RBAC in front of tcp_proxy.
 * Never on sidecar outbound chains. Computed once per distinct view.
 */
import { authorizationPoliciesFor } from '../../../model/authorization.ts';
import { jwtRulesFor } from '../../../model/request-authentication.ts';
import { lookupCluster } from '../../../model/telemetry.ts';
import type { Json } from '../../builders/common.ts';
import { resolveExtAuthz } from '../../builders/ext-authz.ts';
import { TCP_PROXY_FILTER } from '../../builders/http-connection-manager.ts';
import { jwtAuthnFilter } from '../../builders/jwt.ts';
import { rbacHttpFilters, rbacNetworkFilters, type RbacOptions } from '../../builders/rbac.ts';
import type { GenContext } from '../generator.ts';

/**
 * CUSTOM providers resolve against the whole registry (istiod's LookupCluster), not the proxy's view: the same for
 * every proxy, so nothing proxy-specific is read here.
 */
function rbacOptions(ctx: GenContext): RbacOptions {
  const push = ctx.push;
  return {
    trustDomain: push.mesh.trustDomain,
    extAuthz: (provider) => resolveExtAuthz(push.mesh.extensionProviders, provider, (service, port) => lookupCluster(push, service, port)),
  };
}

export function securityHttpFilters(ctx: GenContext, gateway: boolean): Json[] {
  return ctx.memo(`security-http:${gateway}`, (c) => {
    const rbac = rbacHttpFilters(authorizationPoliciesFor(c.push, c.view, c.note), rbacOptions(c), c.note);
    const jwt = jwtAuthnFilter(jwtRulesFor(c.push, c.view), { jwks: c.push.jwks, clearRouteCache: gateway });
    return [...rbac.custom, ...(jwt ? [jwt] : []), ...rbac.authz];
  });
}

function securityNetworkFilters(ctx: GenContext): Json[] {
  return ctx.memo('security-tcp', (c) => rbacNetworkFilters(authorizationPoliciesFor(c.push, c.view, c.note), rbacOptions(c), c.note));
}

/** Network RBAC in front of every tcp_proxy of an inbound (or gateway) listener, except the loop-breaking blackhole. */
export function withNetworkAuthorization(ctx: GenContext, listener: Json): Json {
  const inbound = ctx.view.type() === 'router' || listener.traffic_direction === 'INBOUND';
  if (!inbound) return listener;
  const rbac = securityNetworkFilters(ctx);
  if (rbac.length === 0) return listener;
  const chain = (c: Json): Json => {
    const filters = (c.filters as Json[] | undefined) ?? [];
    if (c.name === 'virtualInbound-blackhole' || filters.at(-1)?.name !== TCP_PROXY_FILTER) return c;
    return { ...c, filters: [...filters.slice(0, -1), ...rbac, filters.at(-1)!] };
  };
  const out: Json = { ...listener };
  if (Array.isArray(listener.filter_chains)) out.filter_chains = (listener.filter_chains as Json[]).map(chain);
  if (listener.default_filter_chain) out.default_filter_chain = chain(listener.default_filter_chain as Json);
  return out;
}
