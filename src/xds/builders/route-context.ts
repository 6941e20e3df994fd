import type { ProxyView } from '../../model/proxy-view.ts';
import type { PushContext } from '../../model/push-context.ts';
import type { Service } from '../../model/service.ts';

/** What route translation needs: the push, the proxy's view, the service and port being routed. */
export interface RouteContext {
  push: PushContext;
  view: ProxyView;
  service: Service;
  /** The listener / route-config port. */
  port: number;
  proxyless: boolean;
  note: (message: string) => void;
  /**
   * The gateway names this proxy represents, for `match.gateways` (istiod sourceMatchHTTP): `['mesh']` for sidecars
   * and proxyless clients (the default when unset), `<namespace>/<name>` of the Gateway(s) a router's server belongs to.
   */
  gateways?: readonly string[];
  /** The listener terminates TLS (a gateway HTTPS server): a redirect with no scheme stays https (istiod RouteOptions.IsTLS). */
  tls?: boolean;
}
