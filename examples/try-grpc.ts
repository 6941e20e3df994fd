/**
 * Try the bookinfo example with real proxyless gRPC: starts the reviews/ratings/details workloads on 127.0.0.1 (the
 * ports the ServiceEntries name) and calls them through mizzen with @grpc/grpc-js-xds, printing where calls land.
 *
 *   terminal 1:  npx mizzen serve --config examples/bookinfo
 *   terminal 2:  node_modules/.bin/node examples/try-grpc.ts [xds-port]
 */
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';

grpcXds.register();
const xdsPort = Number(process.argv[2] ?? 15010);
const json = { ser: (o: unknown) => Buffer.from(JSON.stringify(o)), de: (b: Buffer) => JSON.parse(b.toString()) };
const service = {
  Call: { path: '/bookinfo.Demo/Call', requestStream: false, responseStream: false, requestSerialize: json.ser, requestDeserialize: json.de, responseSerialize: json.ser, responseDeserialize: json.de },
} as unknown as grpc.ServiceDefinition;

const workloads = { 'reviews-v1': 19081, 'reviews-v2': 19082, 'reviews-v3': 19083, 'ratings-v1': 19091, 'details-v1': 19071 };
const servers: grpc.Server[] = [];
for (const [name, port] of Object.entries(workloads)) {
  const s = new grpc.Server();
  s.addService(service, { Call: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { from: name }) });
  await new Promise<void>((res, rej) => s.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  servers.push(s);
}

// The bootstrap Istio's grpc-agent would write for a pod in namespace bookinfo.
const bootstrap = JSON.stringify({
  xds_servers: [{ server_uri: `127.0.0.1:${xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
  node: { id: 'sidecar~127.0.0.1~productpage.bookinfo~bookinfo.svc.cluster.local', metadata: { GENERATOR: 'grpc', NAMESPACE: 'bookinfo' }, locality: {} },
  server_listener_resource_name_template: 'xds.istio.io/grpc/lds/inbound/%s',
});
const Client = grpc.makeGenericClientConstructor(service, 'Demo');
const reviews = new Client('xds:///reviews.bookinfo.svc.cluster.local:9080', grpc.credentials.createInsecure(), {
  'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': bootstrap,
}) as any;

async function tally(headers: Record<string, string>, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(headers)) md.set(k, v);
    const from = await new Promise<string>((res) =>
      reviews.Call({}, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, r: { from: string }) => res(err ? `error: ${err.details}` : r.from)),
    );
    counts[from] = (counts[from] ?? 0) + 1;
  }
  return counts;
}

console.log('anonymous users (VirtualService: 80% v1, 20% v3):', await tally({}, 100));
console.log('end-user: jason (VirtualService: header match -> v2):', await tally({ 'end-user': 'jason' }, 20));
console.log('Edit examples/bookinfo/reviews-routing.yaml while mizzen runs and run this again: changes apply live.');
reviews.close();
for (const s of servers) s.forceShutdown();
process.exit(0);
