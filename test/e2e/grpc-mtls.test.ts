/**
 * mTLS and authorization between REAL proxyless gRPC workloads, with certificates from mizzen's own CA: each workload
 * gets its key and chain through the real CreateCertificate RPC (service-account token over TLS), written to an
 * OUTPUT_CERTS directory that its bootstrap's `file_watcher` certificate provider reads (Istio grpc-agent, gRFC A29).
 * The XdsServer and the clients use XdsServerCredentials / XdsChannelCredentials with a plaintext fallback, so
 * whether a connection is TLS, whom it trusts and who may call come only from mizzen's xDS: server listener
 * DownstreamTlsContext (PeerAuthentication, A36), cluster UpstreamTlsContext (DestinationRule ISTIO_MUTUAL) and the
 * RBAC HTTP filters (AuthorizationPolicy, A41).
 */
// grpc-js-xds reads its feature flags once, when its environment module is first loaded: the RBAC filter is only
// registered with GRPC_XDS_EXPERIMENTAL_RBAC=true (default false; Istio's grpc-agent template does not set it either).
// Static imports run before this line, so nothing imported statically may load @grpc/grpc-js-xds; it and the helpers
// that import it are loaded dynamically below. vitest runs each file in its own fork (vitest.config.ts), and the
// first test checks the flag really took effect in this process.
process.env.GRPC_XDS_EXPERIMENTAL_RBAC = 'true';

import { createRequire } from 'node:module';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, echoHandlers, echoService, type EchoClientT } from '../support/echo.ts';
import { eventually, expectNoNacks, startMesh, testTokenIssuer, type TestMesh } from '../support/mesh.ts';
import { workloadCerts, type WorkloadCerts } from '../support/workload-certs.ts';

const xds = await import('@grpc/grpc-js-xds');
const { BOOTSTRAP_OPTION, bootstrap, xdsClient } = await import('../support/xds-client.ts');
const xdsEnvironment = createRequire(import.meta.url)('@grpc/grpc-js-xds/build/src/environment.js') as { EXPERIMENTAL_RBAC: boolean };

const NS = 'shop';
const SERVICE_PORT = 7070;
const TARGET = `inventory.${NS}.svc.cluster.local:${SERVICE_PORT}`;
const FRONTEND = `spiffe://cluster.local/ns/${NS}/sa/frontend`;
/** The method echo.ts serves. */
const METHOD_PATH = '/mizzen.test.Echo/Call';

const serviceEntry = (port: number) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: inventory, namespace: ${NS} }
spec:
  hosts: [inventory.${NS}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${SERVICE_PORT}, name: grpc, protocol: GRPC, targetPort: ${port} }]
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${port} }, labels: { app: inventory }, serviceAccount: inventory }]
`;
// Exported to its own namespace only: clients in `shop` get ISTIO_MUTUAL, a client in `web` sees no DestinationRule
// and stays plaintext, though it has certificates too (proxyless mTLS is never automatic: istiod cds.go).
const DESTINATION_RULE = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: inventory, namespace: ${NS} }
spec:
  host: inventory.${NS}.svc.cluster.local
  exportTo: ["."]
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`;
const peerAuthentication = (mode: 'STRICT' | 'PERMISSIVE') => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${NS} }
spec: { mtls: { mode: ${mode} } }
`;
const policy = (name: string, spec: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${NS} }
spec: ${spec}
`;
/** Istio's "allow-nothing" baseline: an ALLOW policy without rules matches nothing. */
const ALLOW_NOTHING = policy('allow-nothing', '{}');
const ALLOW_FRONTEND = policy('allow-frontend', `{ rules: [{ from: [{ source: { principals: ["cluster.local/ns/${NS}/sa/frontend"] } }] }] }`);
const DENY_PATH = policy('deny-call', `{ action: DENY, rules: [{ to: [{ operation: { paths: ["${METHOD_PATH}"] } }] }] }`);
const docs = (...d: string[]) => d.join('---\n');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface SeenCall {
  security?: string;
  peerSans?: string;
}

describe('proxyless gRPC mTLS and authorization with certificates from mizzen', () => {
  let mesh: TestMesh;
  let server: InstanceType<typeof xds.XdsServer> | undefined;
  let port: number;
  const certs: WorkloadCerts[] = [];
  const clients: EchoClientT[] = [];
  const seen: SeenCall[] = [];
  const backend = {
    name: 'inventory',
    calls: 0,
    // Record what the transport told the handler about the caller.
    behaviour: (c: grpc.ServerUnaryCall<unknown, unknown>) => {
      const auth = c.getAuthContext();
      seen.push({ ...(auth.transportSecurityType ? { security: auth.transportSecurityType } : {}), ...(auth.sslPeerCertificate ? { peerSans: auth.sslPeerCertificate.subjectaltname } : {}) });
      return undefined;
    },
  };
  let frontend: EchoClientT, other: EchoClientT, web: EchoClientT;

  /** A proxyless workload's client: its own certificates (OUTPUT_CERTS), XdsChannelCredentials over plaintext. */
  function client(namespace: string, workloadCerts: WorkloadCerts): EchoClientT {
    const c = xdsClient(TARGET, mesh.xdsPort, { namespace, pod: `${workloadCerts.spiffeId.split('/').pop()}-0` }, {
      certificateProviders: workloadCerts.dir,
      // Failed handshakes put the subchannel into reconnect backoff (1 s, growing): keep it short for live changes.
      channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 },
    });
    clients.push(c);
    return c;
  }

  const code = async (c: EchoClientT) => (await call(c, {}, 2000)).error?.code ?? grpc.status.OK;
  const until = (c: EchoClientT, want: grpc.status, what: string) => eventually(async () => (await code(c)) === want, 10_000, what);

  async function serverChain(): Promise<{ name: string; transport_socket?: unknown; http_filters: string[] }> {
    const res = await fetch(`http://127.0.0.1:${mesh.monitoringPort}/debug/config_dump?proxyID=inventory-0&types=lds`);
    const dump = (await res.json()) as { lds: Array<{ filter_chains: Array<{ name: string; transport_socket?: unknown; filters: Array<{ typed_config: { http_filters: Array<{ name: string }> } }> }> }> };
    const chain = dump.lds[0]!.filter_chains[0]!;
    return { name: chain.name, transport_socket: chain.transport_socket, http_filters: chain.filters[0]!.typed_config.http_filters.map((f) => f.name) };
  }

  beforeAll(async () => {
    const issuer = await testTokenIssuer();
    port = await freePort();
    mesh = await startMesh(
      { 'svc.yaml': serviceEntry(port), 'dr.yaml': DESTINATION_RULE, 'pa.yaml': peerAuthentication('STRICT') },
      { ca: issuer },
    );
    const [serverCerts, frontendCerts, otherCerts, webCerts] = await Promise.all([
      workloadCerts(mesh, await issuer.token(NS, 'inventory')),
      workloadCerts(mesh, await issuer.token(NS, 'frontend')),
      workloadCerts(mesh, await issuer.token(NS, 'other')),
      workloadCerts(mesh, await issuer.token('web', 'web')),
    ]);
    certs.push(serverCerts, frontendCerts, otherCerts, webCerts);
    expect(serverCerts.spiffeId).toBe(`spiffe://cluster.local/ns/${NS}/sa/inventory`);
    expect(frontendCerts.spiffeId).toBe(FRONTEND);

    server = new xds.XdsServer({
      [BOOTSTRAP_OPTION]: bootstrap(mesh.xdsPort, { namespace: NS, pod: 'inventory-0', labels: { app: 'inventory' } }, { certificateProviders: serverCerts.dir }),
      // Listener changes drain old connections (GOAWAY) before closing them after this grace.
      drainGraceTimeMs: 1000,
    } as never);
    server.addService(echoService, echoHandlers(backend));
    await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('XdsServer never started serving')), 10_000);
      server!.bindAsync(`127.0.0.1:${port}`, new xds.XdsServerCredentials(grpc.ServerCredentials.createInsecure()), (err, p) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(p);
      });
    });
    frontend = client(NS, frontendCerts);
    other = client(NS, otherCerts);
    web = client('web', webCerts);
  });

  afterAll(async () => {
    try {
      // While every workload is still connected: nothing mizzen sent during the run may have been rejected.
      if (mesh) await expectNoNacks(mesh);
    } finally {
      for (const c of clients) c.close();
      server?.forceShutdown();
      for (const c of certs) c.remove();
      await mesh?.stop();
    }
  });

  it('STRICT: an ISTIO_MUTUAL client is served over mTLS and seen as its SPIFFE identity; a plaintext client is refused', async () => {
    expect(xdsEnvironment.EXPERIMENTAL_RBAC).toBe(true);
    const chain = await serverChain();
    expect(chain.name).toBe('inbound-mtls');
    expect(chain.transport_socket).toBeDefined();

    seen.length = 0;
    const ok = await call(frontend);
    expect(ok.error).toBeUndefined();
    expect(ok.reply?.backend).toBe('inventory');
    // The server's TLS layer verified the client's chain against root-cert.pem (require_client_certificate).
    expect(seen).toHaveLength(1);
    expect(seen[0]!.security).toBe('ssl');
    expect(seen[0]!.peerSans?.split(', ')).toContain(`URI:${FRONTEND}`);

    // No DestinationRule for the `web` client: it speaks plaintext HTTP/2 to a TLS port and never gets through.
    const refused = await call(web, {}, 3000);
    expect(refused.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(seen).toHaveLength(1);

    // The client half: it verifies the server against the service's accounts (the endpoint's serviceAccount). A
    // DestinationRule that expects another identity makes the same, valid server certificate unacceptable.
    mesh.write('dr.yaml', DESTINATION_RULE.replace('mode: ISTIO_MUTUAL', `mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/${NS}/sa/impostor"]`));
    // (Calls on the connection already verified still pass until the new cluster config opens new connections.)
    await until(frontend, grpc.status.UNAVAILABLE, 'the SAN mismatch to refuse the server');
    seen.length = 0;
    const mismatch = await call(frontend);
    expect(mismatch.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(mismatch.error?.details).toMatch(/subject alternative name/i);
    expect(seen).toHaveLength(0);
    mesh.write('dr.yaml', DESTINATION_RULE);
    await until(frontend, grpc.status.OK, 'the service identity accepted again');
    await expectNoNacks(mesh);
  });

  it('PERMISSIVE: the server listens in plaintext (gRPC cannot serve TLS and plaintext on one port), so plaintext clients get in', async () => {
    // istiod (grpcgen lds.go) treats PERMISSIVE as DISABLE for proxyless servers unless the pod carries
    // security.istio.io/tlsMode=istio (then STRICT): gRPC's filter-chain match only knows raw_buffer, so it cannot
    // offer both on one port. mizzen does the same; this server's pod has no tlsMode label.
    mesh.write('pa.yaml', peerAuthentication('PERMISSIVE'));
    await eventually(async () => (await serverChain()).name === 'inbound-plaintext', 10_000, 'the plaintext server listener');
    expect((await serverChain()).transport_socket).toBeUndefined();
    await until(web, grpc.status.OK, 'the plaintext client to get through');
    seen.length = 0;
    expect((await call(web)).error).toBeUndefined();
    expect(seen).toEqual([{}]);
    // The other side of the same rule: an ISTIO_MUTUAL client cannot handshake with a plaintext server. This is why
    // Istio tells proxyless users to pair DestinationRule ISTIO_MUTUAL with PeerAuthentication STRICT.
    expect(await code(frontend)).toBe(grpc.status.UNAVAILABLE);

    mesh.write('pa.yaml', peerAuthentication('STRICT'));
    await until(frontend, grpc.status.OK, 'STRICT mTLS again');
    expect(await code(web)).toBe(grpc.status.UNAVAILABLE);
    await expectNoNacks(mesh);
  });

  it('RBAC over mTLS: ALLOW by principal, the allow-nothing baseline, and DENY on the path overriding ALLOW', async () => {
    // No policy yet: any mesh identity is served, so a later refusal can only come from the RBAC filter.
    expect(await code(other)).toBe(grpc.status.OK);
    expect((await serverChain()).http_filters).toEqual(['envoy.filters.http.router']);

    // The usual Istio pattern: allow-nothing baseline plus an ALLOW; ALLOW policies are ORed, so frontend gets in.
    mesh.write('authz.yaml', docs(ALLOW_NOTHING, ALLOW_FRONTEND));
    await until(other, grpc.status.PERMISSION_DENIED, 'sa/other to be denied');
    expect((await serverChain()).http_filters).toEqual(['envoy.filters.http.rbac', 'envoy.filters.http.router']);
    expect(await code(frontend)).toBe(grpc.status.OK);
    const denied = await call(other);
    expect(denied.error?.code).toBe(grpc.status.PERMISSION_DENIED);

    // The baseline alone denies everybody, frontend included.
    mesh.write('authz.yaml', ALLOW_NOTHING);
    await until(frontend, grpc.status.PERMISSION_DENIED, 'allow-nothing to deny frontend');
    expect(await code(other)).toBe(grpc.status.PERMISSION_DENIED);

    // DENY is evaluated first (its own filter, before ALLOW): a DENY on the method beats the ALLOW for frontend.
    mesh.write('authz.yaml', ALLOW_FRONTEND);
    await until(frontend, grpc.status.OK, 'frontend allowed again');
    expect(await code(other)).toBe(grpc.status.PERMISSION_DENIED);
    mesh.write('authz.yaml', docs(ALLOW_FRONTEND, DENY_PATH));
    await until(frontend, grpc.status.PERMISSION_DENIED, 'the DENY on the path');
    expect((await serverChain()).http_filters).toEqual(['envoy.filters.http.rbac.DENY', 'envoy.filters.http.rbac', 'envoy.filters.http.router']);
    expect(await code(other)).toBe(grpc.status.PERMISSION_DENIED);
    await expectNoNacks(mesh);
  });

  it('a live policy change reaches an open channel: deny-all applies to the next calls, and lifting it restores them', async () => {
    mesh.write('authz.yaml', ALLOW_FRONTEND);
    await until(frontend, grpc.status.OK, 'frontend allowed');
    const serverBefore = server;
    const callsBefore = backend.calls;
    expect(frontend.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);

    mesh.write('authz.yaml', ALLOW_NOTHING);
    await until(frontend, grpc.status.PERMISSION_DENIED, 'deny-all on the open channel');
    // Denied by the server's RBAC filter, before the handler: no call reached the application.
    const callsAtDeny = backend.calls;
    expect((await call(frontend)).error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(backend.calls).toBe(callsAtDeny);

    mesh.remove('authz.yaml');
    await until(frontend, grpc.status.OK, 'the policy lifted');
    expect(backend.calls).toBeGreaterThan(callsBefore);
    expect(server).toBe(serverBefore);
    await expectNoNacks(mesh);
  });
});
