/**
 * Shared pieces of the fault tests (test/faults) and the slow-consumer benchmark: a mesh whose config is big enough for
 * HTTP/2 flow control to bite, a fleet of well-behaved proxies whose push-to-receipt latency is measured, and raw
 * HTTP/2 gRPC streams that misbehave in ways @grpc/grpc-js clients will not (never reading, broken framing).
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '../../src/proto/types.ts';
import { clientCodec } from '../../src/xds/protocol/messages.ts';
import protobuf from 'protobufjs';
import { adsNode, type AdsNodeSpec } from '../support/ads-client.ts';

export const ADS_SOTW_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const ADS_DELTA_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

/** Healthy proxies live here; a Sidecar scopes them to their own namespace, so they get small configs. */
export const HEALTHY_NS = 'healthy';
/** The marker services whose creation is the push the healthy proxies are timed on. */
export const MARKER_PORT = 9000;
export const markerCluster = (k: number) => `outbound|${MARKER_PORT}||marker-${k}.${HEALTHY_NS}.svc.cluster.local`;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A mesh of `services` ServiceEntries (with `endpoints` static endpoints each, v1/v2 labelled) and a DestinationRule
 * with two subsets per service, in namespaces big-0, big-1, …, plus the healthy namespace's Sidecar. A proxy outside the
 * healthy namespace (e.g. `default`) sees all of it: CDS and EDS of several MiB.
 */
export function bigMeshFiles(services: number, endpoints: number): Record<string, string> {
  const docs: string[] = [];
  for (let i = 0; i < services; i++) {
    const ns = `big-${Math.floor(i / 50)}`;
    const host = `svc-${i}.${ns}.svc.cluster.local`;
    const eps = Array.from(
      { length: endpoints },
      (_, j) => `    - address: 10.${(i >> 8) & 255}.${i & 255}.${j + 1}\n      ports: { http: 8080 }\n      labels: { app: svc-${i}, version: v${(j % 2) + 1}, padding: ${'x'.repeat(40)} }`,
    ).join('\n');
    docs.push(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: svc-${i}, namespace: ${ns} }
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: 8080, name: http, protocol: HTTP }
  endpoints:
${eps}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: svc-${i}, namespace: ${ns} }
spec:
  host: ${host}
  trafficPolicy: { connectionPool: { http: { http2MaxRequests: 100 } }, outlierDetection: { consecutive5xxErrors: 5, interval: 10s } }
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }`);
  }
  return {
    'big.yaml': docs.join('\n---\n'),
    'healthy-sidecar.yaml': `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: ${HEALTHY_NS} }
spec:
  egress:
    - hosts: ["./*"]
`,
  };
}

/** One marker service in the healthy namespace: creating it changes every healthy proxy's CDS. */
export function markerYaml(k: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: marker-${k}, namespace: ${HEALTHY_NS} }
spec:
  hosts: [marker-${k}.${HEALTHY_NS}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${MARKER_PORT}, name: http, protocol: HTTP }
  endpoints:
    - address: 10.99.${(k >> 8) & 255}.${k & 255}
`;
}

/** An Envoy sidecar node spec. */
export const envoyNode = (pod: string, namespace: string): AdsNodeSpec => ({ kind: 'envoy', pod, namespace, ip: '10.1.0.1' });

/** The `name` of an encoded Cluster (field 1), read without decoding the rest (which may hold Any types we lack). */
export function clusterName(bytes: Uint8Array): string {
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) return r.string();
    r.skipType(tag & 7);
  }
  return '';
}

/**
 * Well-behaved SotW proxies in the healthy namespace: each watches CDS (wildcard), ACKs every response at once and
 * records when a response first named each cluster. Raw streams that decode only the envelope and the cluster names,
 * so the measuring side costs little CPU (it may share the process, or the machine, with the server it measures).
 */
export class HealthyFleet {
  private readonly calls: Array<ReturnType<typeof rawAdsCall>> = [];
  /** Per client: cluster name → first time (ms since epoch) a CDS response named it. */
  private readonly seen: Array<Map<string, number>> = [];
  private readonly ended: boolean[] = [];

  constructor(port: number, n: number) {
    for (let i = 0; i < n; i++) {
      const raw = rawAdsCall(port);
      const seen = new Map<string, number>();
      const index = i;
      this.calls.push(raw);
      this.seen.push(seen);
      this.ended.push(false);
      void raw.status.then(() => (this.ended[index] = true));
      const request = (version: string, nonce: string, node?: AdsNodeSpec) =>
        raw.call.write(
          clientCodec.encodeRequest({ type_url: TypeUrl.Cluster, resource_names: [], version_info: version, response_nonce: nonce, ...(node ? { node: adsNode(node) } : {}) } as Parameters<typeof clientCodec.encodeRequest>[0]),
        );
      raw.call.removeAllListeners('data');
      raw.call.on('data', (buf: Buffer) => {
        const at = Date.now();
        const m = clientCodec.decodeResponse(buf);
        for (const r of m.resources ?? []) {
          const name = clusterName(r.value);
          if (!seen.has(name)) seen.set(name, at);
        }
        request(m.version_info, m.nonce);
      });
      request('', '', envoyNode(`healthy-${i}`, HEALTHY_NS));
    }
  }

  /** Waits until every client has seen `cluster`; returns per-client ms from `since`. */
  async waitFor(cluster: string, since: number, timeoutMs = 20_000): Promise<number[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const times = this.seen.map((s) => s.get(cluster));
      if (times.every((t) => t !== undefined)) return times.map((t) => t! - since);
      if (Date.now() > end) throw new Error(`${times.filter((t) => t === undefined).length}/${times.length} healthy proxies never got ${cluster} within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  /** Every client's stream is still open. */
  allConnected(): boolean {
    return this.ended.every((e) => !e);
  }

  close(): void {
    for (const c of this.calls) c.close();
  }
}

/** Creates marker services one after another (each a push) and returns every healthy proxy's latency for each. */
export async function timedPushes(mesh: { write(file: string, yaml: string): void }, fleet: HealthyFleet, first: number, count: number, gapMs = 150, timeoutMs = 20_000): Promise<number[]> {
  const out: number[] = [];
  for (let k = first; k < first + count; k++) {
    const t0 = Date.now();
    mesh.write(`marker-${k}.yaml`, markerYaml(k));
    out.push(...(await fleet.waitFor(markerCluster(k), t0, timeoutMs)));
    await sleep(gapMs);
  }
  return out;
}

export function percentile(values: readonly number[], p: number): number {
  const v = [...values].sort((a, b) => a - b);
  return v.length === 0 ? Number.NaN : v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))]!;
}

/** A gRPC length-prefixed message (gRPC over HTTP/2: 1 byte compressed flag, 4 bytes big-endian length). */
export function grpcFrame(payload: Buffer, compressed = false): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(compressed ? 1 : 0, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** An encoded SotW DiscoveryRequest with the node of `spec`. */
export function sotwRequest(typeUrl: string, spec: AdsNodeSpec, names: string[] = []): Buffer {
  return clientCodec.encodeRequest({ type_url: typeUrl, resource_names: names, version_info: '', response_nonce: '', node: adsNode(spec) } as Parameters<typeof clientCodec.encodeRequest>[0]);
}

export interface RawStream {
  session: http2.ClientHttp2Session;
  stream: http2.ClientHttp2Stream;
  /** Resolves with the grpc-status trailer (or the HTTP/2 error) when the stream ends. */
  ended: Promise<{ grpcStatus?: number; message?: string; error?: string }>;
  close(): void;
}

/**
 * A gRPC call made by hand over node:http2, writing `chunks` as given (they may be broken on purpose). With
 * `read: false` the response is never read: the stream is paused from the start, so once the HTTP/2 windows (64 KiB,
 * the protocol's default) are full, the server can send nothing more on it.
 */
export function rawGrpcCall(port: number, path: string, chunks: Buffer[], options: { read?: boolean; end?: boolean } = {}): RawStream {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 65_535 } });
  session.on('error', () => {});
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => {});
  let status: { grpcStatus?: number; message?: string; error?: string } = {};
  stream.on('response', (h) => {
    if (h['grpc-status'] !== undefined) status = { grpcStatus: Number(h['grpc-status']), message: String(h['grpc-message'] ?? '') };
  });
  stream.on('trailers', (h) => {
    status = { grpcStatus: Number(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) };
  });
  const ended = new Promise<{ grpcStatus?: number; message?: string; error?: string }>((resolve) => {
    stream.on('close', () => resolve(stream.rstCode && status.grpcStatus === undefined ? { ...status, error: `RST_STREAM ${stream.rstCode}` } : status));
  });
  if (options.read === false) stream.pause();
  else stream.on('data', () => {});
  for (const c of chunks) stream.write(c);
  if (options.end) stream.end();
  return {
    session,
    stream,
    ended,
    close: () => {
      stream.destroy();
      session.destroy();
    },
  };
}

/** A gRPC client for ADS that sends raw bytes as the request message (the serializer is the identity). */
export function rawAdsCall(port: number, credentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}, md = new grpc.Metadata()) {
  const identity = (b: Buffer) => b;
  const Ctor = grpc.makeGenericClientConstructor(
    {
      StreamAggregatedResources: { path: ADS_SOTW_PATH, requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'StreamAggregatedResources' },
    } as unknown as grpc.ServiceDefinition,
    'Ads',
  );
  const client = new Ctor(`127.0.0.1:${port}`, credentials, options);
  const call = (client as unknown as { StreamAggregatedResources(md: grpc.Metadata): grpc.ClientDuplexStream<Buffer, Buffer> }).StreamAggregatedResources(md);
  call.on('error', () => {});
  call.on('data', () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return {
    call,
    status,
    close: () => {
      call.cancel();
      client.close();
    },
  };
}

/** /debug/memz's send-budget figures and heap. */
export async function memz(monitoringPort: number): Promise<{ send: { inflightBytes: number; waitingStreams: number; openCalls: number }; processMB: { rss: number; heapUsed: number } }> {
  const res = await fetch(`http://127.0.0.1:${monitoringPort}/debug/memz`);
  return (await res.json()) as never;
}
