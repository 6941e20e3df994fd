/**
 * Serves the mesh to the protocol layer: picks the generators for a proxy's type, generates through the view cache,
 * encodes once, and reports notes (features left out for a proxy type) once per push context.
 */
import { createHash } from 'node:crypto';
import { ErrorCode } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { isProxylessGrpc, parseProxy, type Proxy } from '../model/proxy.ts';
import { ReadMemo, RecordingView } from '../model/proxy-view.ts';
import type { PushContext } from '../model/push-context.ts';
import { encodeResource, type EncodedResource } from '../proto/encode.ts';
import { checkEnvoyResource } from '../proto/envoy-check.ts';
import { messageNameOf, TypeUrl } from '../proto/types.ts';
import { ViewCache } from './cache.ts';
import type { GenContext, ResourceGenerator } from './generators/generator.ts';
import { grpcClusters } from './generators/grpc/clusters.ts';
import { grpcListeners } from './generators/grpc/listeners.ts';
import { grpcRoutes } from './generators/grpc/routes.ts';
import { envoyClusters, envoyListeners, envoyRoutes, envoySecrets } from './generators/envoy/index.ts';
import { endpointsGenerator } from './generators/shared-eds.ts';
import type { NodeInfo } from './protocol/messages.ts';
import { StreamRefusal, type ResourceProvider, type ResourceSet, type Subscription } from './protocol/provider.ts';

export interface ProxyState {
  proxy: Proxy;
  memo: ReadMemo;
}

const GENERATORS_BY_KIND: Record<'grpc' | 'envoy', Partial<Record<string, ResourceGenerator>>> = {
  grpc: {
    [TypeUrl.Listener]: grpcListeners,
    [TypeUrl.RouteConfiguration]: grpcRoutes,
    [TypeUrl.Cluster]: grpcClusters,
    [TypeUrl.ClusterLoadAssignment]: endpointsGenerator,
  },
  envoy: {
    [TypeUrl.Listener]: envoyListeners,
    [TypeUrl.RouteConfiguration]: envoyRoutes,
    [TypeUrl.Cluster]: envoyClusters,
    [TypeUrl.ClusterLoadAssignment]: endpointsGenerator,
    [TypeUrl.Secret]: envoySecrets,
  },
};

const SUPPORTED = new Set<string>([TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Secret]);

type Cached = EncodedResource | null;

export class MeshResourceProvider implements ResourceProvider<ProxyState> {
  private push: PushContext;
  private cache = new ViewCache();
  private notes = new Set<string>();
  private readonly log: Logger;
  private readonly onError: () => void;
  /** Resources that failed to generate or encode (a bug, never user input): counted, logged, left out. */
  generationErrors = 0;

  private readonly verify: boolean;

  /**
   * `verify` checks every generated resource against Envoy's protos and their validation rules before encoding
   * (src/proto/envoy-check.ts), and leaves out — as a generation error — anything Envoy would reject. On in tests and
   * with `serve --verify-xds`; off by default since it roughly doubles generation time.
   */
  constructor(push: PushContext, log: Logger, onError: () => void = () => {}, options: { verify?: boolean } = {}) {
    this.push = push;
    this.log = log;
    this.onError = onError;
    this.verify = options.verify ?? false;
  }

  get pushContext(): PushContext {
    return this.push;
  }

  /** A new push context. `endpointsOnly` keeps everything but the EDS entries for those cluster names. */
  update(push: PushContext, endpointsOnly?: ReadonlySet<string>): void {
    this.push = push;
    if (endpointsOnly?.size === 0) return; // nothing any resource read has changed
    if (endpointsOnly) {
      const eds = TypeUrl.ClusterLoadAssignment;
      this.cache.drop((k) => k.startsWith(`${eds}\0`) && (k.startsWith(`${eds}\0set\0`) || endpointsOnly.has(k.slice(eds.length + 1))));
    } else {
      this.cache = new ViewCache();
      this.notes = new Set();
    }
  }

  /** Features left out for some proxy type in the current push context (also logged once each). */
  currentNotes(): string[] {
    return [...this.notes].sort();
  }

  cacheStats(): { entries: number; hits: number; misses: number; bytes: number } {
    return { entries: this.cache.size, hits: this.cache.hits, misses: this.cache.misses, bytes: this.cache.bytes() };
  }

  connect(node: NodeInfo, _peer?: string, authenticated?: unknown): ProxyState {
    const parsed = parseProxy(node);
    if (!parsed.ok) throw new StreamRefusal(3 /* INVALID_ARGUMENT */, parsed.errors);
    const proxy = parsed.value;
    if (authenticated !== undefined) {
      // istiod's xDS identity check (istio-xds.md §1.3): the proven identity must be the claimed namespace and account.
      const who = authenticated as { namespace?: unknown; serviceAccount?: unknown };
      if (typeof who.namespace !== 'string' || typeof who.serviceAccount !== 'string') throw new StreamRefusal(16 /* UNAUTHENTICATED */, 'no workload identity');
      const claimedSa = proxy.serviceAccount ?? who.serviceAccount;
      if (who.namespace !== proxy.namespace || claimedSa !== who.serviceAccount) {
        this.log.warn({ code: ErrorCode.ProxyIdentityMismatch, proxy: proxy.id, claimed: `${proxy.namespace}/${claimedSa}`, proven: `${who.namespace}/${who.serviceAccount}` }, 'xDS stream refused: the proxy claims another identity');
        throw new StreamRefusal(7 /* PERMISSION_DENIED */, 'the node does not match the authenticated identity');
      }
      proxy.verifiedIdentity = { namespace: who.namespace, serviceAccount: who.serviceAccount };
    }
    return { proxy, memo: new ReadMemo(proxy) };
  }

  disconnect(): void {}

  supports(typeUrl: string): boolean {
    return SUPPORTED.has(typeUrl);
  }

  private generatorFor(state: ProxyState, typeUrl: string): ResourceGenerator | undefined {
    return GENERATORS_BY_KIND[isProxylessGrpc(state.proxy) ? 'grpc' : 'envoy'][typeUrl];
  }

  private context(view: RecordingView, state: ProxyState): GenContext {
    const ctx: GenContext = {
      push: this.push,
      view,
      note: (m) => {
        if (this.notes.has(m)) return;
        this.notes.add(m);
        this.log.warn({ note: m }, 'config left out for a proxy type');
      },
      memo: <T>(key: string, compute: (c: GenContext) => T): T => {
        const cacheKey = `memo\0${key}`;
        const hit = this.cache.get<T>(cacheKey, state.memo);
        if (hit) {
          view.absorb(hit.reads);
          return hit.value;
        }
        const inner = new RecordingView(state.proxy);
        const value = compute(this.context(inner, state));
        this.cache.put(cacheKey, inner.reads, value);
        view.absorb(inner.reads);
        return value;
      },
    };
    return ctx;
  }

  /** One resource through the cache; its reads are absorbed into `into` when given (set generation). */
  private resource(state: ProxyState, gen: ResourceGenerator, name: string, into?: RecordingView): EncodedResource | undefined {
    const key = `${gen.typeUrl}\0${name}`;
    const hit = this.cache.get<Cached>(key, state.memo);
    if (hit) {
      into?.absorb(hit.reads);
      return hit.value ?? undefined;
    }
    const view = new RecordingView(state.proxy);
    let value: Cached = null;
    try {
      const json = gen.build(this.context(view, state), name);
      if (json && this.verify) {
        const problems = checkEnvoyResource(messageNameOf(gen.typeUrl), json);
        if (problems.length > 0) throw new Error(`generated ${name} violates Envoy's schema: ${problems.slice(0, 5).join('; ')}`);
      }
      if (json) value = encodeResource(gen.typeUrl, name, json);
    } catch (err) {
      this.countError(err, gen.typeUrl, name, state);
    }
    this.cache.put<Cached>(key, view.reads, value);
    into?.absorb(view.reads);
    return value ?? undefined;
  }

  private countError(err: unknown, typeUrl: string, resource: string, state: ProxyState): void {
    this.generationErrors++;
    this.onError();
    this.log.error({ code: ErrorCode.XdsGeneration, err, type: typeUrl, resource, proxy: state.proxy.id }, 'generating a resource failed; it is left out');
  }

  resources(state: ProxyState, sub: Subscription, only?: ReadonlySet<string>): ResourceSet {
    const gen = this.generatorFor(state, sub.typeUrl);
    if (!gen) return { resources: new Map(), version: 'none' };
    if (only) {
      const out = new Map<string, EncodedResource>();
      for (const name of only) {
        const r = this.resource(state, gen, name);
        if (r) out.set(name, r);
      }
      return { resources: out };
    }
    const key = `${sub.typeUrl}\0set\0${sub.key}`;
    const hit = this.cache.get<ResourceSet>(key, state.memo);
    if (hit) return hit.value;
    const view = new RecordingView(state.proxy);
    const names = new Set(sub.names);
    if (sub.wildcard) {
      try {
        for (const n of gen.names(this.context(view, state))) names.add(n);
      } catch (err) {
        this.countError(err, sub.typeUrl, '*', state);
      }
    }
    const out = new Map<string, EncodedResource>();
    const h = createHash('sha1');
    for (const name of [...names].sort()) {
      const r = this.resource(state, gen, name, view);
      if (r) {
        out.set(name, r);
        h.update(`${name}\0${r.version}\n`);
      }
    }
    const set: ResourceSet = { resources: out, version: h.digest('base64url') };
    this.cache.put(key, view.reads, set);
    return set;
  }
}
