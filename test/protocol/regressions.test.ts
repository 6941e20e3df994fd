/** Protocol regressions found in review, each reproduced on a real server. */
import { afterAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/proto/types.ts';
import { AdsClient } from '../support/ads-client.ts';
import { serviceEntry, startMesh, yamlDocs, type TestMesh } from '../support/mesh.ts';

const ports = (cla: Record<string, any>): number[] =>
  (cla.endpoints ?? []).flatMap((g: any) => (g.lb_endpoints ?? []).map((e: any) => e.endpoint.address.socket_address.port_value));

describe.each(['sotw', 'delta'] as const)('regressions (%s)', (mode) => {
  let mesh: TestMesh;
  const clients: AdsClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.close();
    await mesh?.stop();
  });

  // An endpoint-only push leaves the stream holding the whole set plus one change. If the endpoint then moves back
  // in a batch that also holds a config change (a full push), the whole set's hash equals the one sent before the
  // endpoint push — the stream must still be sent the endpoint's return, not skipped on the stale hash.
  it('an endpoint that moves back during a full push reaches the proxy', async () => {
    const dr = (lb: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: alpha, namespace: reg }
spec: { host: alpha, trafficPolicy: { loadBalancer: { simple: ${lb} } } }`;
    mesh = await startMesh({ 'alpha.yaml': serviceEntry('alpha', 'reg', 7000, [{ port: 21001 }]), 'dr.yaml': dr('ROUND_ROBIN') });
    const c = new AdsClient(mode, mesh.xdsPort, { namespace: 'reg', pod: `reg-${mode}` });
    clients.push(c);
    const cluster = 'outbound|7000||alpha.reg.svc.cluster.local';
    c.ack(await c.fetch(TypeUrl.Cluster));
    const first = await c.fetch(TypeUrl.ClusterLoadAssignment, [cluster]);
    expect(ports(first.resources[0]!.body)).toEqual([21001]);
    c.ack(first);

    mesh.write('alpha.yaml', serviceEntry('alpha', 'reg', 7000, [{ port: 21002 }]));
    const moved = await c.next(TypeUrl.ClusterLoadAssignment);
    expect(ports(moved.resources[0]!.body)).toEqual([21002]);
    c.ack(moved);

    // Both in one debounce window: the endpoint returns and an unrelated DestinationRule edit makes it a full push.
    mesh.write('all.yaml', yamlDocs(dr('RANDOM')));
    mesh.remove('dr.yaml');
    mesh.write('alpha.yaml', serviceEntry('alpha', 'reg', 7000, [{ port: 21001 }]));
    const back = await c.next(TypeUrl.ClusterLoadAssignment, 5000);
    expect(ports(back.resources[0]!.body)).toEqual([21001]);
  });
});
