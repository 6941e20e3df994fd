/**
 * Generators are pure: (proxy view, push context) → Envoy resources in proto JSON shape. They read the proxy only
 * through the view (so caching is keyed by what they read) and report what they had to leave out through `note`.
 */
import type { ProxyView } from '../../model/proxy-view.ts';
import type { PushContext } from '../../model/push-context.ts';
import type { Json } from '../builders/common.ts';

export interface GenContext {
  push: PushContext;
  view: ProxyView;
  note(message: string): void;
  /**
   * A value derived from the push context and the proxy, computed once per distinct view and shared by every
   * resource of the push that asks for it under the same key (e.g. a sidecar's outbound listener plan). `compute`
   * must read the proxy only through the context it is given, so its reads are recorded and carried over.
   */
  memo<T>(key: string, compute: (ctx: GenContext) => T): T;
}

export interface ResourceGenerator {
  typeUrl: string;
  /** Every resource name a wildcard subscription gets. */
  names(ctx: GenContext): string[];
  /** One resource, or undefined when it does not exist for this proxy. */
  build(ctx: GenContext, name: string): Json | undefined;
}
