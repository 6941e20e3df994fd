/**
 * The load generator: a separate process (started by bench/run.ts, talking over Node's IPC channel) that opens N raw
 * ADS streams against mizzen. It is a separate process so its CPU shows up apart from the server's, and so the
 * server's RSS is the server's alone. Streams are spread over several grpc-js channels ('grpc.use_local_subchannel_pool'
 * gives each its own HTTP/2 connection), as proxies on many hosts would arrive on many connections.
 *
 * Messages from run.ts: {t:'start'}, {t:'change', id, typeUrl, names, at}, {t:'stop'}.
 * Messages to run.ts:   {t:'ready'}, {t:'progress'}, {t:'synced'}, {t:'changed'}, {t:'warn'}, {t:'failed'}.
 */
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '../src/proto/types.ts';
import { jsonToStruct } from '../src/xds/protocol/messages.ts';
import { AdsStream, interners, now, type Mode, type StreamObserver } from './ads-stream.ts';

export interface LoadgenOptions {
  target: string;
  proxies: number;
  mode: Mode;
  /** Namespaces the proxies live in (round robin); proxies in one namespace share one view on the server. */
  namespaces: string[];
  streamsPerChannel: number;
  /** HTTP/2 receive window per stream and connection; 0 = grpc-js's default (64 KiB), as a proxyless gRPC client has. */
  flowControlWindow: number;
  /** Simulate Envoy sidecars instead of proxyless gRPC clients. */
  proxyKind?: 'grpc' | 'sidecar';
}

export interface ChangeMsg {
  t: 'change';
  id: number;
  typeUrl: string;
  names: string[];
  at: number;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as LoadgenOptions;
const send = (m: object) => process.send?.(m);

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const identity = (b: Buffer) => b;

/** Per-phase traffic counters: responses and bytes per type URL, so a report can show what each change pushed. */
class Traffic {
  responses: Record<string, number> = {};
  bytes: Record<string, number> = {};
  total = 0;
  add(typeUrl: string, bytes: number): void {
    const short = typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
    this.responses[short] = (this.responses[short] ?? 0) + 1;
    this.bytes[short] = (this.bytes[short] ?? 0) + bytes;
    this.total += bytes;
  }
}

/** The change being measured: per stream, which of its resource names have arrived since it was made. */
interface ActiveChange {
  msg: ChangeMsg;
  bit: Map<number, number>;
  full: number;
  seen: Uint32Array;
  doneAt: Float64Array;
  done: number;
}

const peakRssMB = () => process.resourceUsage().maxRSS / 1024;

const streams: AdsStream[] = [];
const calls: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
const clients: grpc.Client[] = [];
let traffic = new Traffic();
let t0 = 0;
let fullCount = 0;
let failures = 0;
let active: ActiveChange | undefined;
let cpuAtStart = process.cpuUsage();

const cpuSeconds = () => {
  const d = process.cpuUsage(cpuAtStart);
  return (d.user + d.system) / 1e6;
};

const observer: StreamObserver = {
  acked(stream, typeUrl, ids, bytes, at) {
    traffic.add(typeUrl, bytes);
    const a = active;
    if (!a || typeUrl !== a.msg.typeUrl || ids.length === 0) return;
    const i = stream.index;
    if (!Number.isNaN(a.doneAt[i])) return;
    for (const id of ids) {
      const b = a.bit.get(id);
      if (b !== undefined) a.seen[i] = (a.seen[i] ?? 0) | b;
    }
    if (a.seen[i] === a.full) {
      a.doneAt[i] = at - a.msg.at;
      if (++a.done === streams.length) finishChange();
    }
  },
  fullConfig(_stream, _at) {
    if (++fullCount === streams.length) finishSync();
  },
  warn: (message) => send({ t: 'warn', message }),
};

function finishSync(): void {
  send({
    t: 'synced',
    t0,
    perProxyMs: streams.map((s) => s.fullAt - t0),
    // Where the sync time goes: per type, when each stream had it complete (ms since the streams were opened).
    perTypeMs: Object.fromEntries(
      (['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration'] as const).map((short) => [
        short,
        streams.map((s) => (s.completeAt.get(TypeUrl[short]) ?? Number.NaN) - t0),
      ]),
    ),
    loadgenPeakRssMB: peakRssMB(),
    traffic,
    loadgenCpuSeconds: cpuSeconds(),
  });
}

function beginChange(msg: ChangeMsg): void {
  if (active) finishChange();
  traffic = new Traffic();
  const interner = interners[msg.typeUrl]!;
  const bit = new Map<number, number>();
  msg.names.forEach((n, k) => bit.set(interner.id(n), 1 << k));
  active = {
    msg,
    bit,
    full: (1 << msg.names.length) - 1 || 0,
    seen: new Uint32Array(streams.length),
    doneAt: new Float64Array(streams.length).fill(Number.NaN),
    done: 0,
  };
}

/** Sent when every stream has the change, or when run.ts gives up waiting (it then sends the next change or stop). */
function finishChange(): void {
  const a = active;
  if (!a) return;
  active = undefined;
  send({ t: 'changed', id: a.msg.id, perProxyMs: Array.from(a.doneAt, (v) => (Number.isNaN(v) ? null : v)), traffic });
}

function openStreams(): void {
  const node = (i: number) => {
    const ns = opts.namespaces[i % opts.namespaces.length]!;
    const ip = `10.200.${(i >> 8) & 255}.${i & 255}`;
    return {
      id: `sidecar~${ip}~loadgen-${i}.${ns}~${ns}.svc.cluster.local`,
      cluster: 'loadgen',
      metadata: jsonToStruct({ ...(opts.proxyKind === 'sidecar' ? {} : { GENERATOR: 'grpc' }), NAMESPACE: ns, INSTANCE_IPS: ip, LABELS: { app: 'loadgen' } }),
      locality: {},
    };
  };
  const method = opts.mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources';
  t0 = now();
  cpuAtStart = process.cpuUsage();
  for (let i = 0; i < opts.proxies; i++) {
    if (i % opts.streamsPerChannel === 0) {
      clients.push(
        new grpc.Client(opts.target, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'grpc.max_receive_message_length': 256 * 1024 * 1024,
          ...(opts.flowControlWindow > 0 ? { 'grpc-node.flow_control_window': opts.flowControlWindow } : {}),
        }),
      );
    }
    const call = clients.at(-1)!.makeBidiStreamRequest(`${SERVICE}/${method}`, identity, identity);
    const stream = new AdsStream(i, opts.mode, node(i), call, observer, opts.proxyKind ?? 'grpc');
    call.on('data', (buf: Buffer) => stream.onResponse(buf));
    call.on('error', (err: grpc.ServiceError) => {
      if (stopping) return;
      failures++;
      send({ t: 'failed', index: i, code: err.code, message: err.details || err.message });
    });
    calls.push(call);
    streams.push(stream);
    stream.start();
  }
}

/** A snapshot for a stalled sync: how many streams got how far. */
function status(): object {
  const out = { t: 'status', full: fullCount, proxies: streams.length, failures, ldsAcked: 0, cdsAcked: 0, rdsComplete: 0, edsComplete: 0, examples: [] as object[] };
  for (const s of streams) {
    const st = s.status();
    if (st.lds) out.ldsAcked++;
    if (st.cds) out.cdsAcked++;
    if (st.rds[1] > 0 && st.rds[0] === st.rds[1]) out.rdsComplete++;
    if (st.eds[1] > 0 && st.eds[0] === st.eds[1]) out.edsComplete++;
    if (Number.isNaN(s.fullAt) && out.examples.length < 5) out.examples.push({ stream: s.index, ...st });
  }
  return out;
}

let stopping = false;
function stop(): void {
  stopping = true;
  for (const c of calls) c.cancel();
  for (const c of clients) c.close();
  setTimeout(() => process.exit(0), 200).unref();
}

// Progress every 5 s while anything is running, so a stalled sync is visible and diagnosable.
const progress = setInterval(() => {
  if (streams.length === 0) return;
  send({ t: 'progress', full: fullCount, proxies: streams.length, failures, bytes: traffic.total, change: active ? { id: active.msg.id, done: active.done } : undefined });
}, 5000);
progress.unref();

process.on('message', (m: { t: string }) => {
  if (m.t === 'start') openStreams();
  else if (m.t === 'change') beginChange(m as ChangeMsg);
  else if (m.t === 'collect') finishChange();
  else if (m.t === 'status') send(status());
  else if (m.t === 'stop') stop();
});
// Exit normally on SIGTERM so a --cpu-prof profile is written.
process.on('SIGTERM', () => process.exit(0));
// The parent died or closed the channel: never outlive it.
process.on('disconnect', () => {
  stop();
  process.exit(0);
});
send({ t: 'ready' });
