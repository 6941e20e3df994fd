/**
 * The security HTTP filters of a workload's inbound chains and a gateway's HCMs (istio-xds.md §2.5 order): request
 * authentication (jwt_authn) first, then authorization. Computed once per distinct view.
 */
import { jwtRulesFor } from '../../../model/request-authentication.ts';
import type { Json } from '../../builders/common.ts';
import { jwtAuthnFilter } from '../../builders/jwt.ts';
import type { GenContext } from '../generator.ts';

export function securityHttpFilters(ctx: GenContext, gateway: boolean): Json[] {
  return ctx.memo(`security-http:${gateway}`, (c) => {
    const jwt = jwtAuthnFilter(jwtRulesFor(c.push, c.view), { jwks: c.push.jwks, clearRouteCache: gateway });
    return jwt ? [jwt] : [];
  });
}
