/**
 * `mizzen diff`: a dry run of a change against a config folder (bookinfo + Pods in two namespaces + an ingress
 * gateway). A weight change is exactly one RDS change, the same for every sidecar view that sees the VirtualService,
 * and none for the gateway; an unrelated change (a DestinationRule exported only to its own, proxy-less namespace)
 * changes nothing in scope.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createPatch } from 'rfc6902';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePatch, runDiff, type DiffOptions, type DiffReport } from '../../src/app/diff.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BOOKINFO = path.join(ROOT, 'examples/bookinfo');

const PODS = `apiVersion: v1
kind: Pod
metadata: { name: reviews-v1-0, namespace: bookinfo, labels: { app: reviews, version: v1 } }
status: { podIP: 10.1.0.2 }
---
apiVersion: v1
kind: Pod
metadata: { name: ratings-v1-0, namespace: bookinfo, labels: { app: ratings, version: v1 } }
status: { podIP: 10.1.0.3 }
---
apiVersion: v1
kind: Pod
metadata: { name: client-0, namespace: frontend, labels: { app: client } }
status: { podIP: 10.2.0.1 }
---
apiVersion: v1
kind: Pod
metadata: { name: ingress-0, namespace: istio-system, labels: { istio: ingressgateway } }
status: { podIP: 10.3.0.1 }
`;

const GATEWAY = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: bookinfo-gateway, namespace: bookinfo }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 8080, name: http, protocol: HTTP }
      hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: details-ingress, namespace: bookinfo }
spec:
  hosts: ['*']
  gateways: [bookinfo-gateway]
  http:
    - route:
        - destination: { host: details.bookinfo.svc.cluster.local, port: { number: 9080 } }
`;

const UNRELATED_DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews-local, namespace: unrelated }
spec:
  host: reviews.bookinfo.svc.cluster.local
  exportTo: ['.']
  trafficPolicy: { loadBalancer: { simple: RANDOM } }
`;

let dir: string;
let mesh: string;
const file = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-diff-'));
  mesh = path.join(dir, 'mesh');
  fs.mkdirSync(mesh);
  for (const f of fs.readdirSync(BOOKINFO)) fs.copyFileSync(path.join(BOOKINFO, f), path.join(mesh, f));
  fs.writeFileSync(path.join(mesh, 'pods.yaml'), PODS);
  fs.writeFileSync(path.join(mesh, 'gateway.yaml'), GATEWAY);
  // The change: bookinfo's reviews VirtualService with the 80/20 split made 50/50, nothing else.
  const routing = fs.readFileSync(path.join(BOOKINFO, 'reviews-routing.yaml'), 'utf8');
  const changed = routing.replace('weight: 80', 'weight: 50').replace('weight: 20', 'weight: 50');
  expect(changed).not.toBe(routing);
  file('weights.yaml', changed);
  file('unrelated.yaml', UNRELATED_DR);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function diff(o: Omit<DiffOptions, 'config' | 'output'>): Promise<DiffReport & { stderr: string }> {
  const r = await runDiff({ config: mesh, output: 'json', ...o });
  expect(r.code, r.stderr).toBe(0);
  return { ...(JSON.parse(r.stdout) as DiffReport), stderr: r.stderr };
}

const SIDECARS = ['client-0.frontend', 'ratings-v1-0.bookinfo', 'reviews-v1-0.bookinfo'];
const GATEWAY_POD = 'ingress-0.istio-system';

describe('mizzen diff', () => {
  it('a weight change: exactly one RDS change, the same for every sidecar view, none for the gateway', async () => {
    const r = await diff({ files: [path.join(dir, 'weights.yaml')] });
    expect(r.change).toEqual(['DestinationRule bookinfo/reviews: unchanged (same content)', 'VirtualService bookinfo/reviews: updated']);
    expect(r.proxies).toBe(4);
    // One group: the three sidecars (two namespaces, three distinct views) see the same one change.
    expect(r.groups).toHaveLength(1);
    const [g] = r.groups;
    expect([...g!.proxies].sort()).toEqual(SIDECARS);
    expect(g!.changes.map((c) => [c.type, c.name, c.op])).toEqual([['RDS', '9080', 'changed']]);
    const vh = 'virtual_hosts[reviews.bookinfo.svc.cluster.local:9080].routes[1].route.weighted_clusters.clusters';
    expect(g!.changes[0]!.lines).toEqual([`${vh}[outbound|9080|v1|reviews.bookinfo.svc.cluster.local].weight: 80 → 50`, `${vh}[outbound|9080|v3|reviews.bookinfo.svc.cluster.local].weight: 20 → 50`]);
    expect(g!.changes[0]!.patch).toHaveLength(2);
    // The gateway (a router selected by bookinfo-gateway, serving only details) is in scope and unchanged.
    expect(r.unchanged).toEqual([GATEWAY_POD]);
    expect(r.stderr).toBe('');
  });

  it('an unrelated change (a DestinationRule exported only to a namespace without proxies): no change in scope', async () => {
    const r = await diff({ files: [path.join(dir, 'unrelated.yaml')] });
    expect(r.change).toEqual(['DestinationRule unrelated/reviews-local: added']);
    expect(r.groups).toEqual([]);
    expect([...r.unchanged].sort()).toEqual([...SIDECARS, GATEWAY_POD].sort());
    // The same change does reach its own namespace's view: the diff would have seen it there.
    const own = await diff({ files: [path.join(dir, 'unrelated.yaml')], namespaces: ['unrelated'] });
    expect(own.groups).toHaveLength(1);
    expect(own.groups[0]!.proxies).toEqual(['namespace unrelated']);
    expect(own.groups[0]!.changes).toContainEqual(expect.objectContaining({ type: 'CDS', name: 'outbound|9080||reviews.bookinfo.svc.cluster.local', op: 'changed' }));
  });

  it('--delete Kind/ns/name removes an object; a refused change exits 1 with the reason', async () => {
    const r = await diff({ files: [], delete: ['VirtualService/bookinfo/reviews'] });
    expect(r.change).toEqual(['VirtualService bookinfo/reviews: deleted']);
    expect(r.groups).toHaveLength(1);
    expect(r.groups[0]!.changes.map((c) => [c.type, c.name, c.op])).toEqual([['RDS', '9080', 'changed']]);

    const bad = file('bad.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: x, namespace: bookinfo }\nspec: { hosts: [x], http: [{ route: [{ destination: { host: x }, weight: -1 }] }] }\n');
    const refused = await runDiff({ config: mesh, files: [bad] });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the change would be refused');
    expect(refused.stderr).toContain('VirtualService bookinfo/x');
  });

  it('describePatch resolves each operation against the document as earlier operations left it', () => {
    const before = { l: [{ name: 'x', v: 1 }, { name: 'y', v: 2 }, { name: 'z', v: 3 }] };
    const after = { l: [{ name: 'y', v: 2 }, { name: 'z', v: 4 }, { name: 'w', v: 5 }] };
    expect(describePatch(before, createPatch(before, after))).toEqual(['l[x]: {"name":"x","v":1} → (none)', 'l[z].v: 3 → 4', 'l[w]: (none) → {"name":"w","v":5}']);
  });

  it('runs as a real process: the text output groups the proxies and prints path: old → new', () => {
    const out = execFileSync(process.execPath, ['src/cli/main.ts', 'diff', '-c', mesh, path.join(dir, 'weights.yaml')], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toContain(`same change for 3 proxies: ${SIDECARS.join(', ')}`);
    expect(out).toMatch(/^ {2}RDS ~ 9080$/m);
    expect(out).toContain('.weight: 80 → 50');
    expect(out).toContain(`no change for 1 proxy: ${GATEWAY_POD}`);
    expect(out).toContain('3 of 4 proxies affected, 1 distinct change');
  });
});
