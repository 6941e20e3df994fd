/**
 * The load generator: a separate process (started by bench/run.ts, talking over Node's IPC channel) that opens N raw
 * ADS streams against mizzen. It is a separate process so its CPU shows up apart from the server's, and so the
 * server's RSS is the server's alone. Streams are spread over several grpc-js channels ('grpc.use_local_subchannel_pool'
 * gives each its own HTTP/2 connection), as proxies on many hosts would arrive on many connections.
 *
 * Messages from run.ts: {t:'start'}, {t:'change', id, typeUrl, names, at}, {t:'stop'}.
 * Messages to run.ts:   {t:'ready'}, {t:'progress'}, {t:'synced'}, {t:'changed'}, {t:'warn'}, {t:'failed'}.
 *
 * With `reconnect` (bench/storm.ts, test/faults/reconnect-storm.test.ts) a stream that ends is reopened after a
 * backoff, as Envoy reopens its ADS stream, and two more messages apply: {t:'arm'} (answered by {t:'armed'}) makes
 * every proxy's current config its reference (bench/storm-judge.ts judges every later response against it) and starts
 * waiting for every proxy to be full again on a new stream, which sends {t:'resynced'}.
 */
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '../src/proto/types.ts';
import { jsonToStruct } from '../src/xds/protocol/messages.ts';
import { AdsStream, interners, now, type Mode, type StreamObserver } from './ads-stream.ts';
import { StormJudge } from './storm-judge.ts';

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
  /**
   * Reopen a stream that ends after a jittered exponential backoff: uniform in [0, min(maxMs, baseMs × 2^attempt)),
   * as Envoy's xDS retry (base 500 ms, max 30 s); the attempt count resets once a stream gets a response (gRFC A57).
   */
  reconnect?: { baseMs: number; maxMs: number };
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
  fullConfig(stream, at) {
    const i = stream.index;
    // Counted once per proxy: with reconnects a proxy may become full on several streams.
    if (everFull[i] === 0) {
      everFull[i] = 1;
      if (++fullCount === opts.proxies) finishSync();
    }
    if (storm.armed && streams[i] === stream && generation[i]! > storm.armedGeneration[i]! && Number.isNaN(storm.fullAgainAt[i])) {
      storm.fullAgainAt[i] = at;
      if (++storm.fullAgain === opts.proxies) finishResync();
    }
  },
  warn: (message) => send({ t: 'warn', message }),
  response(stream, r) {
    if (judge) judge.observe(stream, stream.index, r);
  },
};

// --- reconnecting streams (opts.reconnect) -----------------------------------------------------------------------

/** Which stream is the current one per proxy (1 = the first), and how many reopen attempts since its last response. */
const generation = new Uint32Array(opts.proxies);
const attempts = new Uint8Array(opts.proxies);
const everFull = new Uint8Array(opts.proxies);
const judge = opts.reconnect ? new StormJudge(opts.proxies, opts.mode) : undefined;
/** Since the last arm: when each proxy got its first response and was full again on a new stream; how streams ended. */
const storm = {
  armed: false,
  armedGeneration: new Uint32Array(opts.proxies),
  firstResponseAt: new Float64Array(opts.proxies).fill(Number.NaN),
  fullAgainAt: new Float64Array(opts.proxies).fill(Number.NaN),
  fullAgain: 0,
  reopened: 0,
  endedBy: {} as Record<string, number>,
  cpuAtArm: process.cpuUsage(),
};

function arm(): void {
  const reference = judge!.arm();
  judge!.resetCounts();
  storm.armedGeneration.set(generation);
  storm.firstResponseAt.fill(Number.NaN);
  storm.fullAgainAt.fill(Number.NaN);
  storm.fullAgain = 0;
  storm.reopened = 0;
  storm.endedBy = {};
  storm.cpuAtArm = process.cpuUsage();
  storm.armed = true;
  traffic = new Traffic();
  send({ t: 'armed', proxies: opts.proxies, ...reference });
}

function stormCounts() {
  return { partial: judge?.partial ?? 0, partialProxies: judge?.partialProxies ?? 0, partialExamples: judge?.examples ?? [], reopened: storm.reopened, endedBy: storm.endedBy };
}

function finishResync(): void {
  const cpu = process.cpuUsage(storm.cpuAtArm);
  const loadgenCpuSeconds = (cpu.user + cpu.system) / 1e6;
  send({ t: 'resynced', firstResponseAt: Array.from(storm.firstResponseAt), fullAgainAt: Array.from(storm.fullAgainAt), traffic, loadgenCpuSeconds, ...stormCounts() });
}

/** The stream of proxy `i` ended (`code`: its gRPC status): open a new one after the backoff. */
function reopenLater(i: number, code: number): void {
  const name = grpc.status[code] ?? String(code);
  storm.endedBy[name] = (storm.endedBy[name] ?? 0) + 1;
  const { baseMs, maxMs } = opts.reconnect!;
  const delay = Math.random() * Math.min(maxMs, baseMs * 2 ** attempts[i]!);
  attempts[i] = Math.min(attempts[i]! + 1, 30);
  setTimeout(() => {
    if (stopping) return;
    storm.reopened++;
    openStream(i);
  }, delay);
}

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

const SERVICE_METHOD = `${SERVICE}/${opts.mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'}`;

function nodeOf(i: number) {
  const ns = opts.namespaces[i % opts.namespaces.length]!;
  const ip = `10.200.${(i >> 8) & 255}.${i & 255}`;
  return {
    id: `sidecar~${ip}~loadgen-${i}.${ns}~${ns}.svc.cluster.local`,
    cluster: 'loadgen',
    metadata: jsonToStruct({ ...(opts.proxyKind === 'sidecar' ? {} : { GENERATOR: 'grpc' }), NAMESPACE: ns, INSTANCE_IPS: ip, LABELS: { app: 'loadgen' } }),
    locality: {},
  };
}

/** Opens (or reopens) proxy i's stream on its channel. */
function openStream(i: number): void {
  const call = clients[Math.floor(i / opts.streamsPerChannel)]!.makeBidiStreamRequest(SERVICE_METHOD, identity, identity);
  const stream = new AdsStream(i, opts.mode, nodeOf(i), call, observer, opts.proxyKind ?? 'grpc', judge !== undefined);
  const gen = ++generation[i]!;
  call.on('data', (buf: Buffer) => {
    if (opts.reconnect) {
      attempts[i] = 0;
      if (storm.armed && gen > storm.armedGeneration[i]! && Number.isNaN(storm.firstResponseAt[i])) storm.firstResponseAt[i] = now();
    }
    stream.onResponse(buf);
  });
  call.on('error', (err: grpc.ServiceError) => {
    if (stopping || opts.reconnect) return; // reconnecting streams are counted by status below
    failures++;
    send({ t: 'failed', index: i, code: err.code, message: err.details || err.message });
  });
  if (opts.reconnect) {
    call.on('status', (st: grpc.StatusObject) => {
      if (stopping) return;
      if (st.code !== grpc.status.OK) failures++;
      reopenLater(i, st.code);
    });
  }
  calls[i] = call;
  streams[i] = stream;
  stream.start();
}

function openStreams(): void {
  t0 = now();
  cpuAtStart = process.cpuUsage();
  for (let i = 0; i < opts.proxies; i++) {
    if (i % opts.streamsPerChannel === 0) {
      clients.push(
        new grpc.Client(opts.target, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'grpc.max_receive_message_length': 256 * 1024 * 1024,
          ...(opts.flowControlWindow > 0 ? { 'grpc-node.flow_control_window': opts.flowControlWindow } : {}),
          // A restarted server: reconnect the channel on the streams' own schedule, not grpc-js's (1 s, then ×1.6 up to 120 s).
          ...(opts.reconnect ? { 'grpc.initial_reconnect_backoff_ms': opts.reconnect.baseMs, 'grpc.max_reconnect_backoff_ms': opts.reconnect.maxMs } : {}),
        }),
      );
    }
    openStream(i);
  }
}

/** A snapshot for a stalled sync: how many streams got how far. */
function status(): object {
  const out = { t: 'status', full: fullCount, proxies: streams.length, failures, ldsAcked: 0, cdsAcked: 0, rdsComplete: 0, edsComplete: 0, examples: [] as object[], ...(opts.reconnect ? { fullAgain: storm.fullAgain, ...stormCounts() } : {}) };
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
  else if (m.t === 'arm' && judge) arm();
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
