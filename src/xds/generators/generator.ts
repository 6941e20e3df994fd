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
}

export interface ResourceGenerator {
  typeUrl: string;
  /** Every resource name a wildcard subscription gets. */
  names(ctx: GenContext): string[];
  /** One resource, or undefined when it does not exist for this proxy. */
  build(ctx: GenContext, name: string): Json | undefined;
}
