/**
 * xDS protocol conformance (architecture.md, Tests item 4): one suite, run against a real mizzen over both
 * StreamAggregatedResources (SotW) and DeltaAggregatedResources (Delta) with a raw ADS client. Endpoints are fake
 * loopback ports: no data is ever sent to them.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/proto/types.ts';
import { AdsClient, type AdsMode, type AdsNodeSpec, type AdsResponse } from '../support/ads-client.ts';
import { eventually, serviceEntry, startMesh, type TestMesh } from '../support/mesh.ts';

const LDS = TypeUrl.Listener;
const RDS = TypeUrl.RouteConfiguration;
const CDS = TypeUrl.Cluster;
const EDS = TypeUrl.ClusterLoadAssignment;

const NS = 'conf';
const host = (svc: string) => `${svc}.${NS}.svc.cluster.local`;
const listenerName = (svc: string, port: number) => `${host(svc)}:${port}`;
const clusterName = (svc: string, port: number) => `outbound|${port}||${host(svc)}`;

// The services every test starts from: alpha and beta never change; gamma's endpoint port is moved by some tests.
const PORTS = { alpha: 7001, beta: 7002, gamma: 7003, gone: 7004, late: 7005 } as const;
const L = {
  alpha: listenerName('alpha', PORTS.alpha),
  beta: listenerName('beta', PORTS.beta),
  gamma: listenerName('gamma', PORTS.gamma),
  gone: listenerName('gone', PORTS.gone),
  late: listenerName('late', PORTS.late),
};
const C = {
  alpha: clusterName('alpha', PORTS.alpha),
  beta: clusterName('beta', PORTS.beta),
  gamma: clusterName('gamma', PORTS.gamma),
  gone: clusterName('gone', PORTS.gone),
  late: clusterName('late', PORTS.late),
};
const BASE_LISTENERS = [L.alpha, L.beta, L.gamma].sort();
const BASE_CLUSTERS = [C.alpha, C.beta, C.gamma].sort();

/** The endpoint ports of a decoded ClusterLoadAssignment. */
function endpointPorts(cla: Record<string, unknown>): number[] {
  const out: number[] = [];
  for (const loc of (cla.endpoints ?? []) as Array<{ lb_endpoints?: Array<{ endpoint?: { address?: { socket_address?: { port_value?: number } } } }> }>) {
    for (const lb of loc.lb_endpoints ?? []) {
      const p = lb.endpoint?.address?.socket_address?.port_value;
      if (p !== undefined) out.push(p);
    }
  }
  return out.sort((a, b) => a - b);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SyncWatch {
  typeUrl: string;
  nonceSent?: string;
  nonceAcked?: string;
  lastNack?: { message: string; at: string };
}
interface SyncConn {
  id: string;
  node?: string;
  mode: string;
  watches: SyncWatch[];
}

describe.each(['sotw', 'delta'] as const)('xDS conformance over %s', (mode: AdsMode) => {
  let mesh: TestMesh;
  let gammaEndpointPort = 17003;
  let podCounter = 0;
  const clients: AdsClient[] = [];

  beforeAll(async () => {
    mesh = await startMesh({
      'alpha.yaml': serviceEntry('alpha', NS, PORTS.alpha, [{ port: 17001 }]),
      'beta.yaml': serviceEntry('beta', NS, PORTS.beta, [{ port: 17002 }]),
      'gamma.yaml': serviceEntry('gamma', NS, PORTS.gamma, [{ port: gammaEndpointPort }]),
    });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) c.close();
    await mesh?.stop();
  });

  function open(node: AdsNodeSpec = {}): AdsClient {
    const c = new AdsClient(mode, mesh.xdsPort, { namespace: NS, pod: `${mode}-${++podCounter}`, labels: { app: 'conformance' }, ...node });
    clients.push(c);
    return c;
  }

  async function debug<T>(path: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}${path}`);
    expect(res.status).toBe(200);
    return (await res.json()) as T;
  }

  async function watchOf(c: AdsClient, typeUrl: string): Promise<SyncWatch | undefined> {
    const conns = await debug<SyncConn[]>('/debug/syncz');
    return conns.find((x) => x.node === c.nodeId)?.watches.find((w) => w.typeUrl === typeUrl);
  }

  /** A counter's value for one `type` label (0 when the series does not exist yet). */
  async function counter(name: string, type: string): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/metrics`);
    const text = await res.text();
    const m = new RegExp(`^${name}\\{type="${type}"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  }

  async function serviceKnown(hostname: string): Promise<boolean> {
    const services = await debug<Array<{ hostname: string }>>('/debug/registryz');
    return services.some((s) => s.hostname === hostname);
  }

  /** Moves gamma's only endpoint to a new (fake) port; returns it. */
  function moveGammaEndpoint(): number {
    gammaEndpointPort++;
    mesh.write('gamma.yaml', serviceEntry('gamma', NS, PORTS.gamma, [{ port: gammaEndpointPort }]));
    return gammaEndpointPort;
  }

  /** Subscribes and ACKs, returning the response. */
  async function fetchAcked(c: AdsClient, typeUrl: string, names: string[] = []): Promise<AdsResponse> {
    const r = await c.fetch(typeUrl, names);
    c.ack(r);
    return r;
  }

  describe('initial fetch', () => {
    it('LDS and CDS wildcard (empty first request) return every resource, with a version and a nonce', async () => {
      const c = open();
      const cds = await c.fetch(CDS);
      expect(cds.typeUrl).toBe(CDS);
      expect(cds.names).toEqual(BASE_CLUSTERS);
      expect(cds.removed).toEqual([]);
      expect(cds.version).not.toBe('');
      expect(cds.nonce).not.toBe('');
      const lds = await c.fetch(LDS);
      expect(lds.typeUrl).toBe(LDS);
      expect(lds.names).toEqual(BASE_LISTENERS);
      expect(lds.version).not.toBe('');
      expect(lds.nonce).not.toBe('');
      expect(lds.nonce).not.toBe(cds.nonce);
      // Listener bodies are real Listeners for these services, not placeholders.
      const alpha = lds.resources.find((r) => r.name === L.alpha);
      expect(alpha?.body.api_listener).toBeDefined();
      if (mode === 'delta') for (const r of [...cds.resources, ...lds.resources]) expect(r.version).not.toBe('');
    });

    it('LDS, EDS and RDS by name return exactly the names asked for', async () => {
      const c = open();
      const lds = await c.fetch(LDS, [L.alpha]);
      expect(lds.names).toEqual([L.alpha]);
      const eds = await c.fetch(EDS, [C.alpha]);
      expect(eds.names).toEqual([C.alpha]);
      expect(endpointPorts(eds.resources[0]!.body)).toEqual([17001]);
      expect(eds.version).not.toBe('');
      expect(eds.nonce).not.toBe('');
      const rds = await c.fetch(RDS, [C.beta]);
      expect(rds.names).toEqual([C.beta]);
      const vhosts = rds.resources[0]!.body.virtual_hosts as Array<{ domains: string[] }>;
      expect(vhosts[0]!.domains).toContain(host('beta'));
      // Three different responses, three different nonces.
      expect(new Set([lds.nonce, eds.nonce, rds.nonce]).size).toBe(3);
    });
  });

  it('an ACK gets no response and is recorded as acknowledged', async () => {
    const c = open();
    const cds = await c.fetch(CDS);
    const eds = await c.fetch(EDS, [C.alpha]);
    c.ack(cds);
    c.ack(eds);
    await c.expectNone(300);
    const w = await watchOf(c, CDS);
    expect(w?.nonceSent).toBe(cds.nonce);
    expect(w?.nonceAcked).toBe(cds.nonce);
    expect((await watchOf(c, EDS))?.nonceAcked).toBe(eds.nonce);
  });

  it('a NACK gets no response, is recorded and counted, and the proxy keeps being served', async () => {
    const c = open();
    const before = await counter('pilot_total_xds_rejects', 'lds');
    const lds = await c.fetch(LDS);
    expect(lds.names).toEqual(BASE_LISTENERS);
    c.nack(lds, 'listener rejected: test NACK');
    await c.expectNone(300);

    const w = await watchOf(c, LDS);
    expect(w?.lastNack?.message).toBe('listener rejected: test NACK');
    expect(w?.nonceAcked).toBeUndefined();
    expect(await counter('pilot_total_xds_rejects', 'lds')).toBe(before + 1);

    // A config change after the NACK reaches the proxy as usual.
    mesh.write('late.yaml', serviceEntry('late', NS, PORTS.late, [{ port: 17005 }]));
    const next = await c.next(LDS);
    expect(next.names).toContain(L.late);
    expect(next.nonce).not.toBe(lds.nonce);
    expect(next.version).not.toBe(lds.version);
    c.ack(next);
    await eventually(async () => (await watchOf(c, LDS))?.nonceAcked === next.nonce, 3000, 'the ACK after the NACK');
    expect((await watchOf(c, LDS))?.lastNack).toBeUndefined();

    // Restore the base config (and see it arrive, so no push leaks into the next test).
    mesh.remove('late.yaml');
    const restored = await c.next(LDS);
    if (mode === 'sotw') expect(restored.names).toEqual(BASE_LISTENERS);
    else expect(restored.removed).toEqual([L.late]);
    c.ack(restored);
  });

  it('a removed service disappears: SotW omits it from LDS/CDS, Delta lists it in removed_resources', async () => {
    const c = open();
    await fetchAcked(c, CDS);
    await fetchAcked(c, LDS);

    mesh.write('gone.yaml', serviceEntry('gone', NS, PORTS.gone, [{ port: 17004 }]));
    const cdsAdded = await c.next(CDS);
    const ldsAdded = await c.next(LDS);
    if (mode === 'sotw') {
      expect(cdsAdded.names).toEqual([...BASE_CLUSTERS, C.gone].sort());
      expect(ldsAdded.names).toEqual([...BASE_LISTENERS, L.gone].sort());
    } else {
      // Delta sends only what changed.
      expect(cdsAdded.names).toEqual([C.gone]);
      expect(ldsAdded.names).toEqual([L.gone]);
    }
    c.ack(cdsAdded);
    c.ack(ldsAdded);

    mesh.remove('gone.yaml');
    const cds = await c.next(CDS);
    const lds = await c.next(LDS);
    if (mode === 'sotw') {
      expect(cds.names).toEqual(BASE_CLUSTERS);
      expect(lds.names).toEqual(BASE_LISTENERS);
    } else {
      expect(cds.removed).toEqual([C.gone]);
      expect(cds.names).toEqual([]);
      expect(lds.removed).toEqual([L.gone]);
      expect(lds.names).toEqual([]);
    }
    c.ack(cds);
    c.ack(lds);
    await eventually(async () => !(await serviceKnown(host('gone'))), 3000, 'gone removed');
    await c.expectNone(200);
  });

  it('subscription change: an added name is answered; a removed name gets no further updates', async () => {
    const c = open();
    const first = await fetchAcked(c, EDS, [C.alpha]);
    expect(first.names).toEqual([C.alpha]);

    c.subscribe(EDS, [C.gamma]);
    const added = await c.next(EDS);
    expect(added.names).toContain(C.gamma);
    for (const n of added.names) expect([C.alpha, C.gamma]).toContain(n);
    c.ack(added);

    c.unsubscribe(EDS, [C.gamma]);
    await sleep(200);
    for (const r of c.pending()) {
      // SotW may answer the narrowed subscription; it must not carry the unsubscribed name.
      const taken = await c.next(r.typeUrl);
      expect(taken.names).not.toContain(C.gamma);
      c.ack(taken);
    }

    // A second proxy still watching gamma proves the endpoint change was pushed.
    const observer = open();
    await fetchAcked(observer, EDS, [C.gamma]);
    const port = moveGammaEndpoint();
    const seen = await observer.next(EDS);
    expect(seen.names).toEqual([C.gamma]);
    expect(endpointPorts(seen.resources[0]!.body)).toEqual([port]);
    observer.ack(seen);
    await c.expectNone(300);

    // Subscribing again sends it again (the client dropped it when it unsubscribed), with the current endpoints.
    c.subscribe(EDS, [C.gamma]);
    const again = await c.next(EDS);
    expect(again.names).toEqual([C.gamma]);
    expect(endpointPorts(again.resources[0]!.body)).toEqual([port]);
  });

  describe('wildcard', () => {
    it('an explicit "*" subscribes LDS and CDS to everything', async () => {
      const c = open();
      const lds = await c.fetch(LDS, ['*']);
      expect(lds.names).toEqual(BASE_LISTENERS);
      const cds = await c.fetch(CDS, ['*']);
      expect(cds.names).toEqual(BASE_CLUSTERS);
    });

    it('an empty EDS request subscribes to nothing (legacy wildcard is LDS/CDS only); "*" then gets every CLA', async () => {
      const c = open();
      c.subscribe(EDS, []);
      await c.expectNone(300);
      const eds = await c.fetch(EDS, ['*']);
      expect(eds.names).toEqual(BASE_CLUSTERS);
    });

    it('a wildcard watch is sent a new service without asking for it', async () => {
      const c = open();
      await fetchAcked(c, CDS, ['*']);
      mesh.write('late.yaml', serviceEntry('late', NS, PORTS.late, [{ port: 17005 }]));
      const added = await c.next(CDS);
      expect(added.names).toContain(C.late);
      c.ack(added);
      mesh.remove('late.yaml');
      const restored = await c.next(CDS);
      if (mode === 'sotw') expect(restored.names).toEqual(BASE_CLUSTERS);
      else expect(restored.removed).toEqual([C.late]);
      c.ack(restored);
    });
  });

  describe('reconnect with known versions', () => {
    if (mode === 'sotw') {
      it('a new stream with version_info set gets the full state', async () => {
        const c1 = open({ pod: 'reconnecting' });
        const cds = await fetchAcked(c1, CDS);
        const eds = await fetchAcked(c1, EDS, [C.alpha, C.beta]);
        await c1.expectNone(100);
        c1.close();

        const c2 = open({ pod: 'reconnecting' });
        c2.subscribe(CDS, [], { versionInfo: cds.version });
        const cds2 = await c2.next(CDS);
        expect(cds2.names).toEqual(BASE_CLUSTERS);
        c2.subscribe(EDS, [C.alpha, C.beta], { versionInfo: eds.version });
        const eds2 = await c2.next(EDS);
        expect(eds2.names).toEqual([C.alpha, C.beta].sort());
      });
    } else {
      it('initial_resource_versions: unchanged resources are not resent, stale ones are, missing ones are removed', async () => {
        const c1 = open({ pod: 'reconnecting' });
        const cds = await fetchAcked(c1, CDS);
        const versions = Object.fromEntries(cds.resources.map((r) => [r.name, r.version]));
        expect(Object.keys(versions).sort()).toEqual(BASE_CLUSTERS);
        c1.close();

        // Everything current: nothing needs sending (an empty response, or none at all, are both fine).
        const c2 = open({ pod: 'reconnecting' });
        c2.subscribe(CDS, [], { initialVersions: versions });
        const r2 = await c2.next(CDS, 1000).catch(() => undefined);
        if (r2) {
          expect(r2.names).toEqual([]);
          expect(r2.removed).toEqual([]);
          c2.ack(r2);
        }
        c2.close();

        // One stale version and one resource that no longer exists.
        const ghost = clusterName('ghost', 7999);
        const c3 = open({ pod: 'reconnecting' });
        c3.subscribe(CDS, [], { initialVersions: { ...versions, [C.beta]: 'stale-version', [ghost]: 'x' } });
        const r3 = await c3.next(CDS);
        expect(r3.names).toEqual([C.beta]);
        expect(r3.resources[0]!.version).toBe(versions[C.beta]);
        expect(r3.removed).toEqual([ghost]);
      });
    }
  });

  // istiod (pilot/pkg/xds/ads.go shouldRespond) answers a type's first request on a stream even when it carries a
  // response_nonce, e.g. from the stream to a previous istiod ("INIT/RECONNECT": ResponseNonce == "" || previousInfo == nil).
  it('a reconnecting client whose first request carries a nonce from its old stream is answered', async () => {
    const c1 = open({ pod: 'renonce' });
    const cds = await fetchAcked(c1, CDS);
    c1.close();

    const c2 = open({ pod: 'renonce' });
    if (mode === 'sotw') c2.sendSotw({ type_url: CDS, version_info: cds.version, response_nonce: cds.nonce, resource_names: [] });
    else c2.sendDelta({ type_url: CDS, response_nonce: cds.nonce });
    const r = await c2.next(CDS, 2000);
    expect(r.names).toEqual(BASE_CLUSTERS);
  });

  it('an endpoint-only change sends EDS for the changed cluster only, and no CDS/LDS/RDS', async () => {
    const c = open();
    await fetchAcked(c, CDS);
    await fetchAcked(c, EDS, [C.alpha, C.gamma]);
    await fetchAcked(c, LDS);
    await fetchAcked(c, RDS, [C.alpha, C.gamma]);
    await c.expectNone(100);
    const endpointPushes = await counter('pilot_push_triggers', 'endpoint');
    const configPushes = await counter('pilot_push_triggers', 'config');

    const port = moveGammaEndpoint();
    const eds = await c.next(EDS);
    expect(eds.names).toEqual([C.gamma]);
    expect(endpointPorts(eds.resources[0]!.body)).toEqual([port]);
    expect(eds.removed).toEqual([]);
    c.ack(eds);
    await c.expectNone(400);
    // It was planned as an endpoint (incremental) push, not a full one.
    expect(await counter('pilot_push_triggers', 'endpoint')).toBe(endpointPushes + 1);
    expect(await counter('pilot_push_triggers', 'config')).toBe(configPushes);
  });

  it('a request with a stale nonce is ignored and counted', async () => {
    const c = open();
    const before = await counter('pilot_xds_expired_nonce', 'eds');
    const eds = await fetchAcked(c, EDS, [C.alpha]);
    await eventually(async () => (await watchOf(c, EDS))?.nonceAcked === eds.nonce, 3000, 'the ACK');

    if (mode === 'sotw') {
      // A names change carrying a stale nonce must not be acted on.
      c.sendSotw({ type_url: EDS, version_info: eds.version, response_nonce: 'stale-nonce', resource_names: [C.alpha, C.beta] });
    } else {
      c.sendDelta({ type_url: EDS, response_nonce: 'stale-nonce' });
    }
    await c.expectNone(300);
    expect(await counter('pilot_xds_expired_nonce', 'eds')).toBe(before + 1);
    expect((await watchOf(c, EDS))?.nonceAcked).toBe(eds.nonce);

    // The stream is still served: the same change with the current nonce (or a plain subscribe) is answered.
    c.subscribe(EDS, [C.beta]);
    const r = await c.next(EDS);
    expect(r.names).toContain(C.beta);
  });

  it('an unknown type URL is ignored and the stream stays up', async () => {
    const c = open();
    // As the very first request: it still identifies the proxy.
    c.subscribe('type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig', ['some-extension']);
    await c.expectNone(300);
    expect(c.endedWith).toBeUndefined();
    const cds = await c.fetch(CDS);
    expect(cds.names).toEqual(BASE_CLUSTERS);
  });

  it.each([
    ['not a node id', 'garbage'],
    ['an unknown proxy type', `bogus~127.0.0.1~p.${NS}~${NS}.svc.cluster.local`],
    ['no usable IP', `sidecar~not-an-ip~p.${NS}~${NS}.svc.cluster.local`],
  ])('a malformed node id (%s) ends the stream with INVALID_ARGUMENT', async (_what, id) => {
    const c = open({ id });
    c.subscribe(CDS);
    const status = await Promise.race([c.ended, sleep(5000).then(() => undefined)]);
    expect(status?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status?.details).toContain(id);
    expect(c.received).toEqual([]);
    const conns = await debug<SyncConn[]>('/debug/syncz');
    expect(conns.map((x) => x.node)).not.toContain(id);
  });

  // istiod answers a first request without a node with InvalidArgument ("missing node information"): it is the
  // client's error, not the server's (INTERNAL would be wrong).
  it('a first request without a node ends the stream with INVALID_ARGUMENT', async () => {
    const c = open();
    if (mode === 'sotw') c.sendSotw({ type_url: CDS, node: null });
    else c.sendDelta({ type_url: CDS, node: null });
    const status = await Promise.race([c.ended, sleep(5000).then(() => undefined)]);
    expect(status?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(c.received).toEqual([]);
  });

  // Shutdown ends every stream with UNAVAILABLE, so proxies reconnect elsewhere at once, and never waits on a client.
  it('stopping the server ends open streams, so proxies reconnect elsewhere', async () => {
    const own = await startMesh({ 'alpha.yaml': serviceEntry('alpha', NS, PORTS.alpha, [{ port: 17001 }]) });
    const c = new AdsClient(mode, own.xdsPort, { namespace: NS, pod: `${mode}-stopping` });
    clients.push(c);
    c.ack(await c.fetch(CDS));
    const stopping = own.stop();
    try {
      const outcome = await Promise.race([stopping.then(() => 'stopped'), sleep(3000).then(() => 'still running')]);
      expect(outcome).toBe('stopped');
      const status = await Promise.race([c.ended, sleep(500).then(() => undefined)]);
      expect(status?.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      c.close(); // lets a hung shutdown finish
      await stopping;
    }
  });

  it('a non-existent resource name: SotW leaves it out, Delta lists it in removed_resources', async () => {
    const c = open();
    const nope = listenerName('nope', 9999);
    const lds = await c.fetch(LDS, [L.alpha, nope]);
    expect(lds.names).toEqual([L.alpha]);
    if (mode === 'delta') {
      expect(lds.removed).toEqual([nope]);
      c.ack(lds);
      // Subscribing to another missing name later on the same watch is answered the same way.
      const nope2 = listenerName('nope2', 9998);
      c.subscribe(LDS, [nope2]);
      const r = await c.next(LDS);
      expect(r.names).toEqual([]);
      expect(r.removed).toEqual([nope2]);
    }
    const eds = await c.fetch(EDS, [C.alpha, clusterName('nope', 9999)]);
    expect(eds.names).toEqual([C.alpha]);
  });
});
