/**
 * The shared send budget: with a budget far smaller than one response, every stream is still served in full — one at
 * a time — and a config change reaches streams that were waiting, merged into what they get next.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/proto/types.ts';
import { AdsClient } from '../support/ads-client.ts';
import { serviceEntry, startMesh, type TestMesh } from '../support/mesh.ts';

describe.each(['sotw', 'delta'] as const)('send budget (%s)', (mode) => {
  let mesh: TestMesh;
  const clients: AdsClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.close();
    await mesh?.stop();
  });

  it('serves 40 streams in full through a 1-byte budget', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 20; i++) files[`s${i}.yaml`] = serviceEntry(`svc${i}`, 'bp', 7000 + i, [{ port: 20000 + i }]);
    mesh = await startMesh(files, { sendBudgetBytes: 1 });
    for (let i = 0; i < 40; i++) clients.push(new AdsClient(mode, mesh.xdsPort, { namespace: 'bp', pod: `bp-${i}` }));
    const results = await Promise.all(clients.map(async (c) => [await c.fetch(TypeUrl.Cluster), await c.fetch(TypeUrl.Listener)] as const));
    for (const [cds, lds] of results) {
      expect(cds.names).toHaveLength(20);
      expect(lds.names).toHaveLength(20);
    }
  });
});
