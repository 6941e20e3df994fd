/**
 * What generators may know about the proxy they generate for — and nothing else. Every read is recorded, so a cached
 * resource is keyed by exactly the proxy facts its generator used (architecture performance rule 1): two proxies that
 * answer every recorded read the same way share the bytes. No hand-kept cache-key list to forget a field in.
 */
import { labelsMatch } from './service.ts';
import type { Proxy, ProxyType } from './proxy.ts';

export interface ProxyView {
  namespace(): string;
  type(): ProxyType;
  /** True when the proxy is a proxyless gRPC client/server. */
  proxyless(): boolean;
  /** Does the proxy's workload carry all these labels? (workloadSelector, sourceLabels) */
  selectedBy(selector: Readonly<Record<string, string>> | undefined): boolean;
  /** `region/zone/subzone` */
  locality(): string;
  ipAddresses(): readonly string[];
  /** A node metadata value (EnvoyFilter `match.proxy.metadata`, `proxyVersion` on ISTIO_VERSION). */
  metadata(key: string): unknown;
  /** The namespace the proxy proved (secure port), or '' when unproven. */
  verifiedNamespace(): string;
}

/** A recorded read: a key naming the question and the proxy's answer. */
export type Read = readonly [key: string, value: string];

/** Answers one read key for a proxy. Keys are `ns`, `type`, `gen`, `loc`, `ips`, `vns`, `sel:<json>`, `md:<key>`. */
export function answerRead(proxy: Proxy, key: string): string {
  switch (key) {
    case 'ns':
      return proxy.namespace;
    case 'type':
      return proxy.type;
    case 'gen':
      return proxy.generator ?? '';
    case 'loc':
      return proxy.locality;
    case 'ips':
      return proxy.ipAddresses.join(',');
    case 'vns':
      return proxy.verifiedIdentity?.namespace ?? '';
    default:
      if (key.startsWith('md:')) return JSON.stringify(proxy.metadata[key.slice(3)] ?? null);
      if (key.startsWith('sel:')) return labelsMatch(JSON.parse(key.slice(4)) as Record<string, string>, proxy.labels) ? '1' : '0';
      throw new Error(`unknown proxy read ${key}`);
  }
}

function selectorKey(selector: Readonly<Record<string, string>>): string {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(selector).sort()) sorted[k] = selector[k] as string;
  return `sel:${JSON.stringify(sorted)}`;
}

/** A ProxyView over a real proxy that records every read into `reads`. */
export class RecordingView implements ProxyView {
  readonly reads = new Map<string, string>();
  private readonly proxy: Proxy;

  constructor(proxy: Proxy) {
    this.proxy = proxy;
  }

  private read(key: string): string {
    let v = this.reads.get(key);
    if (v === undefined) {
      v = answerRead(this.proxy, key);
      this.reads.set(key, v);
    }
    return v;
  }

  /** Adds reads made by an earlier computation whose result is being reused. */
  absorb(reads: Iterable<Read>): void {
    for (const [k, v] of reads) this.reads.set(k, v);
  }

  namespace(): string {
    return this.read('ns');
  }
  type(): ProxyType {
    return this.read('type') as ProxyType;
  }
  proxyless(): boolean {
    return this.read('gen') === 'grpc';
  }
  selectedBy(selector: Readonly<Record<string, string>> | undefined): boolean {
    if (!selector || Object.keys(selector).length === 0) return true;
    return this.read(selectorKey(selector)) === '1';
  }
  locality(): string {
    return this.read('loc');
  }
  ipAddresses(): readonly string[] {
    const v = this.read('ips');
    return v ? v.split(',') : [];
  }
  metadata(key: string): unknown {
    return JSON.parse(this.read(`md:${key}`)) as unknown;
  }
  verifiedNamespace(): string {
    return this.read('vns');
  }
}

/** Per-proxy memo of read answers (a proxy's facts do not change while it is connected). */
export class ReadMemo {
  private readonly answers = new Map<string, string>();
  readonly proxy: Proxy;
  constructor(proxy: Proxy) {
    this.proxy = proxy;
  }
  answer(key: string): string {
    let v = this.answers.get(key);
    if (v === undefined) {
      v = answerRead(this.proxy, key);
      this.answers.set(key, v);
    }
    return v;
  }
  satisfies(reads: readonly Read[]): boolean {
    for (const [k, v] of reads) if (this.answer(k) !== v) return false;
    return true;
  }
}
