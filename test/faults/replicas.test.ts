/**
 * Two replicas, file mode (issue item "Two replicas"; reliability-security.md §4 "istiod is stateless", §9 E2/E9/G7):
 * two real `mizzen serve` processes on the same config folder, behind one address that fails over the way a Service
 * does (test/support/failover-forwarder.ts). Twenty Envoy-like raw ADS proxies (SotW and Delta) and two real proxyless
 * gRPC clients making RPCs all reach the first replica; it is SIGKILLed while RPCs run and a config change is in
 * flight. Every proxy must reconnect to the survivor within a bound and hold, byte for byte, what it held before plus
 * the change — which is exactly what the survivor serves a new proxy — with nothing removed or emptied on the way; the
 * RPCs keep succeeding; a change written after the failover reaches everyone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdsMode, AdsNodeSpec } from '../support/ads-client.ts';
import { call, startEchoBackend, type EchoBackend, type EchoClientT } from '../support/echo.ts';
import { startFailoverForwarder, type FailoverForwarder } from '../support/failover-forwarder.ts';
import { eventually, serviceEntry } from '../support/mesh.ts';
import { nacksOn, startMizzenProcess, syncedNodes, waitSyncedOn, type MizzenProcess, type SynczEntry } from '../support/mizzen-process.ts';
import { countResources, diffConfigs, freshConfig, ReconnectingAdsProxy, type ConfigDigest } from '../support/reconnecting-ads-proxy.ts';
import { xdsClient } from '../support/xds-client.ts';
import { percentile, sleep } from './helpers.ts';

const HOST = 'reviews.bookinfo.svc.cluster.local:9080';
const PROXIES_PER_MODE = 10;
const GRPC_CLIENTS = 2;
const MODES: AdsMode[] = ['sotw', 'delta'];
/** Generous for a loaded 2-core box: the proxies' own backoff is 100 ms–2 s, a resync takes milliseconds. */
const RECONNECT_BOUND_MS = 15_000;

/** Envoy sidecars in `default`: same namespace, IP and labels, so every one of them must get the same config. */
const sidecar = (pod: string): AdsNodeSpec => ({ kind: 'envoy', pod, namespace: 'default', ip: '10.1.0.1' });
const PROBE = sidecar('fresh-probe');

const vs = (subset: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: bookinfo }
spec:
  hosts: [reviews]
  http:
    - route: [{ destination: { host: reviews, subset: ${subset} } }]
`;
const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: bookinfo }
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;
/** An HTTP service on a port of its own: its resources are new names only (cluster, endpoints, listener, route). */
const extraService = (k: number) => serviceEntry(`extra-${k}`, 'shop', 9100 + k, [{ port: 7000 + k }], 'HTTP');
const isExtra = (k: number) => (line: string) => line.includes(`extra-${k}`) || line.includes(`${9100 + k}`);
/** Some bulk, so a resync is more than a handful of resources. */
const catalog = () =>
  Array.from({ length: 12 }, (_, i) => serviceEntry(`svc-${i}`, 'shop', 8080, [{ port: 7100 + i, labels: { version: 'v1' } }, { port: 7200 + i, labels: { version: 'v2' } }], 'HTTP')).join('---\n');

interface RpcResult {
  at: number;
  backend?: string;
  error?: string;
}

/** A proxyless gRPC client calling without pause, recording every outcome. */
function rpcLoop(client: EchoClientT, results: RpcResult[]): { stop(): Promise<void> } {
  let running = true;
  const done = (async () => {
    while (running) {
      const r = await call(client, {}, 2_000);
      results.push({ at: Date.now(), ...(r.reply ? { backend: r.reply.backend } : { error: `${r.error?.code} ${r.error?.details}` }) });
      await sleep(10);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

describe('two file-mode replicas: SIGKILL the one every proxy is on', () => {
  let dir: string;
  let backends: EchoBackend[] = [];
  let a: MizzenProcess | undefined;
  let b: MizzenProcess | undefined;
  let front: FailoverForwarder;
  const fleet: ReconnectingAdsProxy[] = [];
  const grpcClients: EchoClientT[] = [];
  const rpcs: RpcResult[][] = [];
  const loops: Array<{ stop(): Promise<void> }> = [];
  const report: Record<string, string | number> = {};
  /** What a new proxy gets from the replica that will survive, per protocol, before the kill. */
  const survivorBefore = new Map<AdsMode, ConfigDigest>();
  let killedAt = 0;
  /** Atomic (temp file + rename, as a ConfigMap volume updates): the replicas never read a half-written file. */
  const write = (file: string, yaml: string) => {
    fs.writeFileSync(path.join(dir, `.${file}.tmp`), yaml);
    fs.renameSync(path.join(dir, `.${file}.tmp`), path.join(dir, file));
  };
  /**
   * Waits until the survivor serves extra service `k` to a new proxy and every proxy of the fleet holds exactly that,
   * probing afresh on every poll (a push may be under way). On timeout: what the first lagging proxy holds, and what
   * the survivor thinks of it.
   */
  const convergeOnSurvivor = async (k: number, what: string) => {
    let expected = new Map<AdsMode, ConfigDigest>();
    const lagging = () => fleet.find((p) => diffConfigs(p.digest(), expected.get(p.mode)!).length > 0);
    await eventually(async () => {
      expected = new Map(await Promise.all(MODES.map(async (m) => [m, await freshConfig(b!.xdsPort, m, PROBE)] as const)));
      return [...expected.values()].every((d) => Object.keys(d.cds ?? {}).some(isExtra(k))) && lagging() === undefined;
    }, 20_000, what).catch(async (err: Error) => {
      const p = expected.size > 0 ? lagging() : undefined;
      if (!p) throw err;
      const onB = (await b!.debug<SynczEntry[]>('/debug/syncz')).filter((c) => c.node === p.nodeId);
      throw new Error(
        `${err.message}: ${p.nodeId} (${p.mode}): ${diffConfigs(p.digest(), expected.get(p.mode)!, ['proxy', 'replica-b']).join('; ')}\n` +
          `its streams: ${JSON.stringify(p.streams.slice(-3))}\nits events: ${JSON.stringify(p.events)}\nreplica-b's view of it: ${JSON.stringify(onB)}`,
      );
    });
  };

  beforeAll(async () => {
    backends = await Promise.all(['v1', 'v2'].map((v) => startEchoBackend(v)));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-replicas-'));
    write('reviews.yaml', serviceEntry('reviews', 'bookinfo', 9080, backends.map((be) => ({ port: be.port, labels: { version: be.name } }))));
    write('dr.yaml', DR);
    write('routing.yaml', vs('v1'));
    write('catalog.yaml', catalog());
    // Both at once, as a Deployment's pods start: neither depends on the other.
    const [first, second] = await Promise.all(['replica-a', 'replica-b'].map((name) => startMizzenProcess({ name, args: ['--config', dir] })));
    [a, b] = [first!, second!];
    front = await startFailoverForwarder([a.xdsPort, b.xdsPort]);
  }, 120_000);

  afterAll(async () => {
    console.table(report);
    await Promise.all(loops.map((l) => l.stop()));
    for (const c of grpcClients) c.close();
    for (const p of fleet) p.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await front?.close();
    await Promise.all(backends.map((be) => be.stop()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('both replicas serve a new proxy byte-identical config, and every proxy lands on the first one', async () => {
    for (const mode of MODES) {
      const [fromA, fromB] = await Promise.all([freshConfig(a!.xdsPort, mode, PROBE), freshConfig(b!.xdsPort, mode, PROBE)]);
      expect(diffConfigs(fromA, fromB, ['replica-a', 'replica-b'])).toEqual([]);
      survivorBefore.set(mode, fromB);
    }
    report['resources per proxy'] = JSON.stringify(countResources(survivorBefore.get('sotw')!));

    for (const mode of MODES) for (let i = 0; i < PROXIES_PER_MODE; i++) fleet.push(new ReconnectingAdsProxy(front.port, mode, sidecar(`${mode}-${i}`)));
    await Promise.all(fleet.map((p) => p.waitSynced(30_000)));
    for (const p of fleet) expect(diffConfigs(p.digest(), survivorBefore.get(p.mode)!, [p.nodeId, 'fresh proxy'])).toEqual([]);

    for (let i = 0; i < GRPC_CLIENTS; i++) {
      const client = xdsClient(HOST, front.port, { namespace: 'bookinfo', pod: `grpc-client-${i}` });
      grpcClients.push(client);
      await eventually(async () => (await call(client)).reply?.backend === 'v1', 20_000, `grpc-client-${i} routed to v1`);
      const results: RpcResult[] = [];
      rpcs.push(results);
      loops.push(rpcLoop(client, results));
    }
    // Every control-plane connection so far went to replica-a (the forwarder tries it first).
    expect(front.open().get(b!.xdsPort) ?? 0).toBe(0);
    await waitSyncedOn(a!, fleet.map((p) => p.nodeId), 10_000);
    await eventually(async () => [...(await syncedNodes(a!))].filter((id) => id.includes('grpc-client-')).length === GRPC_CLIENTS, 10_000, 'the gRPC clients synced on replica-a');
  }, 90_000);

  it('every proxy reconnects to the survivor and keeps identical config; RPCs keep succeeding', async () => {
    expect(fleet).toHaveLength(2 * PROXIES_PER_MODE);
    const before = new Map(fleet.map((p) => [p, p.digest()]));
    const streamsBefore = new Map(fleet.map((p) => [p, p.streams.length]));
    const rpcsBefore = rpcs.map((r) => r.length);
    expect(rpcsBefore.every((n) => n > 0)).toBe(true);

    // Under load: RPCs are running, and replica-a dies while it pushes a change — the moment the first proxy has it,
    // the others may or may not (what it had written to its sockets still arrives).
    const hasChange = (p: ReconnectingAdsProxy) => Object.keys(p.digest().cds ?? {}).some(isExtra(1));
    write('extra-1.yaml', extraService(1));
    const deadline = Date.now() + 20_000;
    while (!fleet.some(hasChange)) {
      if (Date.now() > deadline) throw new Error('replica-a never pushed the change');
      await sleep(1);
    }
    report['proxies with the change when replica-a was killed'] = `${fleet.filter(hasChange).length} / ${fleet.length}`;
    killedAt = Date.now();
    await a!.kill();

    // Each proxy: its old stream ended, a new one opened through the same address, and it synced again.
    await Promise.all(fleet.map(async (p) => {
      await eventually(() => p.streams.length > streamsBefore.get(p)!, RECONNECT_BOUND_MS, `${p.nodeId} to reconnect`);
      await p.waitSynced(RECONNECT_BOUND_MS, 'resynced after the failover');
    }));
    const reconnectMs = fleet.map((p) => p.streams.at(-1)!.syncedAt! - killedAt);
    report['proxies reconnected'] = `${fleet.length} (${PROXIES_PER_MODE} SotW + ${PROXIES_PER_MODE} Delta)`;
    report['reconnect+resync after SIGKILL, p50 / max (ms)'] = `${percentile(reconnectMs, 0.5)} / ${Math.max(...reconnectMs)}`;
    report['streams per proxy during the failover (max)'] = Math.max(...fleet.map((p) => p.streams.length - streamsBefore.get(p)!));
    expect(Math.max(...reconnectMs)).toBeLessThan(RECONNECT_BOUND_MS);

    // They are on the survivor (the forwarder says so, and so does the survivor), and so are the gRPC clients.
    await eventually(async () => {
      const onB = await syncedNodes(b!);
      return fleet.every((p) => onB.has(p.nodeId)) && [...onB].filter((id) => id.includes('grpc-client-')).length === GRPC_CLIENTS;
    }, RECONNECT_BOUND_MS, 'every proxy and gRPC client synced on replica-b');
    expect(front.open().get(a!.xdsPort) ?? 0).toBe(0);

    // The survivor has the in-flight change; every proxy converges on exactly what a new proxy gets from it.
    await convergeOnSurvivor(1, 'every proxy to hold what replica-b serves, in-flight change included');
    // …which is what it held before, plus the in-flight change and nothing else: not one other resource differs.
    for (const p of fleet) {
      const changed = diffConfigs(before.get(p)!, p.digest(), ['before', 'after']);
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.filter((line) => !isExtra(1)(line))).toEqual([]);
      expect(changed.every((line) => line.endsWith('only in after'))).toBe(true);
    }
    // Nothing removed, emptied or blank on the way. Only the in-flight change may have been seen and then not yet
    // (the dying replica pushed it and the survivor had not built it yet): a newer config, not a partial one.
    const events = fleet.flatMap((p) => p.events.map((e) => ({ proxy: p.nodeId, ...e })));
    report['in-flight change seen, then not yet (allowed)'] = events.filter((e) => isExtra(1)(e.name)).length;
    expect(events.filter((e) => !isExtra(1)(e.name))).toEqual([]);

    // RPCs: counted from the kill until every proxy was back.
    const windowEnd = killedAt + Math.max(...reconnectMs);
    const during = rpcs.flatMap((r, i) => r.slice(rpcsBefore[i]).filter((x) => x.at <= windowEnd + 1_000));
    const failed = during.filter((x) => x.error);
    report['RPCs during the failover / failed'] = `${during.length} / ${failed.length}${failed.length ? ` (${failed[0]!.error})` : ''}`;
    expect(during.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThanOrEqual(Math.max(3, during.length * 0.05));
    expect(during.filter((x) => x.backend && x.backend !== 'v1')).toEqual([]);
  }, 90_000);

  it('a change written after the failover reaches every proxy and the gRPC clients, from the survivor', async () => {
    expect(a!.alive).toBe(false);
    expect(fleet).toHaveLength(2 * PROXIES_PER_MODE);
    const since = Date.now();
    const rpcsBefore = rpcs.map((r) => r.length);
    // One file, one write: the survivor sees one change (two files could be built as two pushes, and a probe could
    // catch the state between them).
    write('routing.yaml', `${vs('v2')}---\n${extraService(2)}`);
    await convergeOnSurvivor(2, 'every proxy to get the new change from replica-b');
    // The route edit: only the survivor can have told the gRPC clients.
    await eventually(() => rpcs.every((r) => r.slice(-5).length === 5 && r.slice(-5).every((x) => x.backend === 'v2')), 20_000, 'RPCs to follow the new route to v2');
    report['new change on every proxy and gRPC client after (ms)'] = Date.now() - since;
    expect(rpcs.flatMap((r, i) => r.slice(rpcsBefore[i])).filter((x) => x.error)).toEqual([]);
    expect(fleet.flatMap((p) => p.events).filter((e) => !isExtra(1)(e.name))).toEqual([]);
    expect(await nacksOn(b!)).toEqual([]);
    report['RPCs in total / failed'] = `${rpcs.flat().length} / ${rpcs.flat().filter((x) => x.error).length}`;
    // The survivor logged no error through all of it.
    expect(b!.logs.filter((l) => (l.level ?? 0) >= 50).map((l) => l.msg)).toEqual([]);
  }, 60_000);
});
