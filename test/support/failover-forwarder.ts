/**
 * One address for several control-plane replicas, standing in for the Kubernetes Service proxies dial: each new TCP
 * connection goes to the first backend, in order, that accepts it. While the first replica lives every client lands
 * on it; once it is dead its port refuses connections (as a dead pod's endpoint leaves the Service) and new
 * connections land on the next one. When a backend connection closes, the client's is closed too, so a client sees
 * its control plane go away exactly as it would through kube-proxy, and reconnects with its own backoff.
 *
 * (@grpc/grpc-js-xds cannot fail over by itself: it uses only the bootstrap's first xds_server, and gRFC A71 fallback
 * applies only while resources are uncached, never to a client that has config.)
 */
import net from 'node:net';

export interface FailoverForwarder {
  port: number;
  /** Connections accepted per backend port. */
  readonly accepted: ReadonlyMap<number, number>;
  /** Connections currently relayed per backend port. */
  open(): Map<number, number>;
  close(): Promise<void>;
}

export async function startFailoverForwarder(backendPorts: readonly number[], host = '127.0.0.1'): Promise<FailoverForwarder> {
  const accepted = new Map<number, number>();
  const relayed = new Map<net.Socket, number>();
  const clients = new Set<net.Socket>();

  const connectFirstLive = (client: net.Socket, i: number) => {
    if (client.destroyed) return;
    const backend = backendPorts[i];
    if (backend === undefined) return void client.destroy();
    const upstream = net.connect(backend, host);
    const refused = () => connectFirstLive(client, i + 1);
    upstream.once('error', refused);
    upstream.once('connect', () => {
      upstream.removeListener('error', refused);
      upstream.on('error', () => undefined);
      accepted.set(backend, (accepted.get(backend) ?? 0) + 1);
      relayed.set(upstream, backend);
      const closeBoth = () => {
        relayed.delete(upstream);
        client.destroy();
        upstream.destroy();
      };
      upstream.once('close', closeBoth);
      client.once('close', closeBoth);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
  };

  // Paused until a backend is connected, so nothing the client sends first (the HTTP/2 preface) is lost.
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    clients.add(client);
    client.on('error', () => undefined);
    client.once('close', () => clients.delete(client));
    connectFirstLive(client, 0);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted,
    open() {
      const out = new Map<number, number>();
      for (const port of relayed.values()) out.set(port, (out.get(port) ?? 0) + 1);
      return out;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of clients) c.destroy();
        server.close(() => resolve());
      }),
  };
}
