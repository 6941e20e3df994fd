/**
 * Config status against a real mizzen: two proxies (a SotW client that ACKs, a Delta client that NACKs the
 * RouteConfiguration a VirtualService change produces). /debug/config_status shows the VirtualService SYNCED on one
 * and NACKED with the error on the other; `mizzen proxy-status` prints it as istioctl does. The server's status sink
 * never answers a write: pushes and syncing go on regardless.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigStatusReport, StatusSink } from '../../src/app/config-status.ts';
import { listenerRouteNames } from '../../src/app/offline-translate.ts';
import { MizzenServer } from '../../src/app/server.ts';
import { TypeUrl } from '../../src/proto/types.ts';
import { silentLogger } from '../../src/shared/log.ts';
import { AdsClient, type AdsMode } from '../support/ads-client.ts';
import { eventually, serviceEntry } from '../support/mesh.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const LDS = TypeUrl.Listener;
const RDS = TypeUrl.RouteConfiguration;
const NS = 'cs';
const HOST = `reviews.${NS}.svc.cluster.local`;
const LISTENER = `${HOST}:9080`;
const VS_KEY = `VirtualService ${NS}/reviews`;
const NACK_MESSAGE = 'route rejected by the test proxy: weights';

const destinationRule = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: ${NS} }
spec:
  host: ${HOST}
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;
const virtualService = (v1: number) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: ${NS} }
spec:
  hosts: [${HOST}]
  http:
    - route:
        - { destination: { host: ${HOST}, subset: v1 }, weight: ${v1} }
        - { destination: { host: ${HOST}, subset: v2 }, weight: ${100 - v1} }
`;

let dir: string;
let server: MizzenServer;
let base: string;
const sinkWrites: AbortSignal[] = [];
/** A status sink that never answers (an apiserver that hangs). */
const hangingSink: StatusSink = { write: (_updates, signal) => (sinkWrites.push(signal), new Promise<void>(() => {})) };
const clients: AdsClient[] = [];

async function configStatus(query = ''): Promise<ConfigStatusReport> {
  const res = await fetch(`${base}/debug/config_status${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ConfigStatusReport;
}

/** A proxyless client: LDS for the reviews listener, then the RDS it names; every response ACKed. */
async function connect(mode: AdsMode, pod: string): Promise<AdsClient> {
  const c = new AdsClient(mode, server.xdsPort, { pod, namespace: NS, metadata: { ISTIO_VERSION: '1.27.1', CLUSTER_ID: 'Kubernetes' } });
  clients.push(c);
  const l = await c.fetch(LDS, [LISTENER]);
  c.ack(l);
  const routes = l.resources.flatMap((r) => listenerRouteNames(r.body));
  expect(routes).toHaveLength(1);
  const r = await c.fetch(RDS, routes);
  c.ack(r);
  return c;
}

const weights = (body: Record<string, unknown>) => JSON.stringify(body).match(/"weight":\d+/g);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-status-'));
  fs.writeFileSync(path.join(dir, 'se.yaml'), serviceEntry('reviews', NS, 9080, [{ port: 19081, labels: { version: 'v1' } }, { port: 19082, labels: { version: 'v2' } }]));
  fs.writeFileSync(path.join(dir, 'dr.yaml'), destinationRule);
  fs.writeFileSync(path.join(dir, 'vs.yaml'), virtualService(100));
  server = new MizzenServer({ configDir: dir, host: '127.0.0.1', xdsPort: 0, monitoringPort: 0, log: silentLogger, verifyXds: true, debounceAfterMs: 50, statusSink: hangingSink, statusWriter: { intervalMs: 50, timeoutMs: 200 } });
  await server.start();
  base = `http://127.0.0.1:${server.monitoringPort}`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  expect(server.generationErrors()).toBe(0);
});

describe('config status with a real mizzen', () => {
  let acker: AdsClient;
  let nacker: AdsClient;

  it('both proxies synced: every object SYNCED on 2/2', async () => {
    acker = await connect('sotw', 'acker');
    nacker = await connect('delta', 'nacker');
    await eventually(async () => (await configStatus()).objects.every((o) => o.synced === 2), 5000, 'every object synced on both proxies');
    const s = await configStatus();
    expect(s.objects.map((o) => `${o.kind}/${o.name}`).sort()).toEqual(['DestinationRule/reviews', 'ServiceEntry/reviews', 'VirtualService/reviews']);
    for (const o of s.objects) expect(o).toMatchObject({ total: 2, synced: 2, pending: 0, nacked: 0, conditions: [{ type: 'Reconciled', status: 'True' }] });
  });

  it('a VirtualService change one proxy NACKs: SYNCED on one, NACKED with the error on the other; the rest stays SYNCED', async () => {
    fs.writeFileSync(path.join(dir, 'vs.yaml'), virtualService(50));
    const [a, n] = await Promise.all([acker.next(RDS), nacker.next(RDS)]);
    expect(weights(a.resources[0]!.body)).toEqual(['"weight":50', '"weight":50']);
    acker.ack(a);
    nacker.nack(n, NACK_MESSAGE);
    await eventually(async () => (await configStatus('?kind=VirtualService')).objects[0]?.nacked === 1, 5000, 'the NACK reported');
    const s = await configStatus('?kind=VirtualService');
    expect(s.objects).toHaveLength(1);
    const vs = s.objects[0]!;
    expect(vs).toMatchObject({ kind: 'VirtualService', namespace: NS, name: 'reviews', total: 2, synced: 1, pending: 0, nacked: 1 });
    expect(vs.nacks).toEqual([{ proxy: expect.stringMatching(/^nacker\.cs-\d+$/), type: 'RDS', error: NACK_MESSAGE }]);
    expect(vs.conditions[0]).toMatchObject({ status: 'False', reason: 'Rejected' });
    expect(vs.version).toBe(s.version);

    const all = await configStatus();
    for (const o of all.objects.filter((x) => x.kind !== 'VirtualService')) expect(o).toMatchObject({ synced: 2, nacked: 0 });
    const byProxy = Object.fromEntries(all.proxies.map((p) => [p.id.replace(/-\d+$/, ''), p.types]));
    expect(byProxy['acker.cs']).toMatchObject({ LDS: { state: 'SYNCED' }, RDS: { state: 'SYNCED', acked: s.version } });
    expect(byProxy['nacker.cs']).toMatchObject({ LDS: { state: 'SYNCED' }, RDS: { state: 'NACKED', error: NACK_MESSAGE } });
  });

  it('mizzen proxy-status prints the istioctl table with NACKED for the rejecting proxy, and the rejected object', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['src/cli/main.ts', 'proxy-status', '--server', base], { cwd: ROOT });
    const lines = stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+CLUSTER\s+ISTIOD\s+VERSION\s+SUBSCRIBED TYPES\s+CDS\s+LDS\s+EDS\s+RDS$/);
    expect(stdout).toMatch(/^acker\.cs\s+Kubernetes\s+mizzen-\S+\s+1\.27\.1\s+2 \(LDS,RDS\)\s+IGNORED\s+SYNCED\s+IGNORED\s+SYNCED$/m);
    expect(stdout).toMatch(/^nacker\.cs\s+Kubernetes\s+mizzen-\S+\s+1\.27\.1\s+2 \(LDS,RDS\)\s+IGNORED\s+SYNCED\s+IGNORED\s+NACKED$/m);
    expect(stdout).toMatch(/^REJECTED CONFIG\s+NACKED\s+PROXY\s+TYPE\s+ERROR$/m);
    expect(stdout).toContain(VS_KEY);
    expect(stdout).toMatch(new RegExp(`1/2\\s+nacker\\.cs-\\d+\\s+RDS\\s+${NACK_MESSAGE}`));
  });

  it('the status sink never answered, yet every push went out and both proxies sync on the next change', async () => {
    // The sink was called and hangs; its writes are timed out and retried, never awaited by a push.
    expect(sinkWrites.length).toBeGreaterThanOrEqual(1);
    await eventually(async () => ((await configStatus()).writer?.timeouts ?? 0) >= 1, 5000, 'a timed-out status write');
    fs.writeFileSync(path.join(dir, 'vs.yaml'), virtualService(90));
    const [a, n] = await Promise.all([acker.next(RDS), nacker.next(RDS)]);
    expect(weights(n.resources[0]!.body)).toEqual(['"weight":90', '"weight":10']);
    acker.ack(a);
    nacker.ack(n);
    await eventually(async () => (await configStatus()).objects.every((o) => o.synced === 2 && o.nacked === 0), 5000, 'both proxies synced again');
    expect(sinkWrites.length).toBeGreaterThanOrEqual(2);
    expect(sinkWrites[0]!.aborted).toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ['src/cli/main.ts', 'ps', '--server', base], { cwd: ROOT });
    expect(stdout).not.toContain('NACKED');
    expect(stdout).not.toContain('REJECTED CONFIG');
  });
});
