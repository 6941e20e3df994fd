/**
 * A proxyless gRPC *server* (grpc-js-xds XdsServer) gets its inbound listener from mizzen by the name Istio's agent
 * bootstrap template gives it (`xds.istio.io/grpc/lds/inbound/<ip>:<port>`), starts serving only then, and a proxyless
 * client reaches it through mizzen's routing.
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { XdsServer } from '@grpc/grpc-js-xds';
import { afterAll, describe, expect, it } from 'vitest';
import { call, echoHandlers, echoService } from '../support/echo.ts';
import { expectNoNacks, serviceEntry, startMesh, type TestMesh } from '../support/mesh.ts';
import { BOOTSTRAP_OPTION, bootstrap, xdsClient } from '../support/xds-client.ts';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('proxyless gRPC server', () => {
  let mesh: TestMesh | undefined;
  let server: XdsServer | undefined;
  afterAll(async () => {
    server?.forceShutdown();
    await mesh?.stop();
  });

  it('serves once mizzen sends its inbound listener, and clients reach it', async () => {
    const port = await freePort();
    mesh = await startMesh({ 'svc.yaml': serviceEntry('inventory', 'shop', 7070, [{ port, labels: { app: 'inventory' } }]) });
    const backend = { name: 'xds-server', calls: 0, behaviour: undefined };
    server = new XdsServer({ [BOOTSTRAP_OPTION]: bootstrap(mesh.xdsPort, { namespace: 'shop', pod: 'inventory-0', labels: { app: 'inventory' } }) } as never);
    server.addService(echoService, echoHandlers(backend));
    const bound = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('XdsServer never started serving')), 10_000);
      server!.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(p);
      });
    });
    expect(bound).toBe(port);

    const client = xdsClient('inventory.shop.svc.cluster.local:7070', mesh.xdsPort, { namespace: 'shop' });
    const r = await call(client);
    expect(r.error).toBeUndefined();
    expect(r.reply?.backend).toBe('xds-server');
    client.close();

    const syncz = (await (await fetch(`http://127.0.0.1:${mesh.monitoringPort}/debug/syncz`)).json()) as Array<{ id: string }>;
    expect(syncz.some((c) => c.id.startsWith('inventory-0.shop'))).toBe(true);
    const dump = (await (await fetch(`http://127.0.0.1:${mesh.monitoringPort}/debug/config_dump?proxyID=inventory-0&types=lds`)).json()) as {
      lds: Array<{ name: string; address: { socket_address: { address: string; port_value: number } } }>;
    };
    expect(dump.lds[0]?.name).toBe(`xds.istio.io/grpc/lds/inbound/127.0.0.1:${port}`);
    expect(dump.lds[0]?.address.socket_address).toEqual({ address: '127.0.0.1', port_value: port });
    await expectNoNacks(mesh);
  });
});
