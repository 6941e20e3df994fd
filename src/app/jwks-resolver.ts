/**
 * Fetches the JWKS documents RequestAuthentications name by `jwksUri`, so proxies get the keys inline (istiod's
 * default "istiod" fetch mode): proxies never reach out to arbitrary URLs, and a key set that cannot be fetched
 * rejects tokens instead of trusting them. The URL is user input: http(s) only, a timeout, a size cap, no redirects
 * followed; a failed refresh keeps the last good keys. Keys are refreshed every 20 minutes (istiod's
 * PILOT_JWT_PUB_KEY_REFRESH_INTERVAL).
 */
import type { Logger } from '../shared/log.ts';
import { ErrorCode } from '../shared/errors.ts';

export interface JwksResolverOptions {
  log: Logger;
  /** Called when the set of fetched keys changed (a push is needed). */
  onChange: () => void;
  refreshMs?: number;
  timeoutMs?: number;
  maxBytes?: number;
  fetch?: typeof fetch;
}

const MAX_BYTES = 512 * 1024;

export class JwksResolver {
  private readonly keys = new Map<string, string>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private wanted = new Set<string>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly o: Required<Omit<JwksResolverOptions, 'log' | 'onChange'>> & Pick<JwksResolverOptions, 'log' | 'onChange'>;

  constructor(o: JwksResolverOptions) {
    this.o = { refreshMs: 20 * 60_000, timeoutMs: 5000, maxBytes: MAX_BYTES, fetch: globalThis.fetch, ...o };
  }

  /** The current keys by URI (copied into each push context). */
  get current(): ReadonlyMap<string, string> {
    return this.keys;
  }

  /** The URIs the config names now: new ones are fetched, gone ones forgotten. */
  sync(uris: readonly string[]): void {
    this.wanted = new Set(uris);
    let dropped = false;
    for (const uri of [...this.keys.keys()]) {
      if (!this.wanted.has(uri)) {
        this.keys.delete(uri);
        dropped = true;
      }
    }
    for (const uri of this.wanted) if (!this.keys.has(uri)) void this.refresh(uri);
    if (dropped) this.o.onChange();
    if (this.wanted.size > 0 && !this.timer) {
      this.timer = setInterval(() => {
        for (const uri of this.wanted) void this.refresh(uri);
      }, this.o.refreshMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Fetches one URI (joining a fetch already running); resolves when done. */
  refresh(uri: string): Promise<void> {
    let p = this.inFlight.get(uri);
    if (!p) {
      p = this.fetchOne(uri).finally(() => this.inFlight.delete(uri));
      this.inFlight.set(uri, p);
    }
    return p;
  }

  private async fetchOne(uri: string): Promise<void> {
    try {
      const text = await this.fetchText(uri);
      const parsed = JSON.parse(text) as { keys?: unknown };
      if (!Array.isArray(parsed.keys) || parsed.keys.length === 0) throw new Error('not a JWK Set (no "keys")');
      const normalized = JSON.stringify(parsed);
      if (!this.wanted.has(uri) || this.keys.get(uri) === normalized) return;
      this.keys.set(uri, normalized);
      this.o.log.info({ uri, keys: parsed.keys.length }, 'JWKS fetched');
      this.o.onChange();
    } catch (err) {
      this.o.log.warn({ code: ErrorCode.JwksFetch, uri, err: err instanceof Error ? err.message : String(err) }, 'JWKS fetch failed; tokens for this issuer are rejected until it succeeds (last good keys are kept)');
    }
  }

  private async fetchText(uri: string): Promise<string> {
    const url = new URL(uri);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`scheme ${url.protocol} not allowed`);
    const res = await this.o.fetch(url, { redirect: 'error', signal: AbortSignal.timeout(this.o.timeoutMs), headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const reader = res.body?.getReader();
    if (!reader) throw new Error('empty body');
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > this.o.maxBytes) {
        await reader.cancel();
        throw new Error(`larger than ${this.o.maxBytes} bytes`);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}
