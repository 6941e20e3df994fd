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
}

