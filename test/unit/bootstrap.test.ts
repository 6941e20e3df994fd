import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { renderBootstrap } from '../../src/app/bootstrap.ts';
import { buildBootstrap, type BootstrapOptions } from '../../src/xds/builders/bootstrap.ts';
import { checkEnvoyResource } from '../../src/proto/envoy-check.ts';
import { parseProxy } from '../../src/model/proxy.ts';
import { structToJson } from '../../src/proto/struct.ts';

const base: BootstrapOptions = {
  proxyType: 'sidecar', podName: 'reviews-v1-abc', namespace: 'bookinfo', ip: '10.244.1.7', domainSuffix: 'cluster.local',
  labels: { app: 'reviews', version: 'v1' }, serviceAccount: 'bookinfo-reviews', clusterId: 'Kubernetes',
  xdsAddress: 'mizzen.istio-system.svc:15012', xdsSan: 'mizzen.istio-system.svc', delta: true, viaAgent: false, istioVersion: 'test',
};

describe('mizzen bootstrap', () => {
  it('names the node as istiod expects and the control plane parses it back', () => {
    const b = JSON.parse(renderBootstrap(base, 'json'));
    expect(b.node.id).toBe('sidecar~10.244.1.7~reviews-v1-abc.bookinfo~bookinfo.svc.cluster.local');
    const proxy = parseProxy({ id: b.node.id, metadata: b.node.metadata });
    expect(proxy.ok && proxy.value).toMatchObject({ namespace: 'bookinfo', labels: { app: 'reviews', version: 'v1' }, serviceAccount: 'bookinfo-reviews' });
  });

  it('reaches ADS over TLS with SDS certificates, admin on localhost, stats and readiness listeners', () => {
    const b = JSON.parse(renderBootstrap(base, 'json'));
    expect(b.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 15000 });
    expect(b.dynamic_resources.ads_config).toMatchObject({ api_type: 'DELTA_GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }] });
    const xds = b.static_resources.clusters.find((c: any) => c.name === 'xds-grpc');
    const tls = xds.transport_socket.typed_config;
    expect(tls.common_tls_context.tls_certificate_sds_secret_configs[0].name).toBe('default');
    expect(tls.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name).toBe('ROOTCA');
    expect(xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).toEqual({ address: 'mizzen.istio-system.svc', port_value: 15012 });
    expect(b.static_resources.listeners.map((l: any) => l.address.socket_address.port_value)).toEqual([15090, 15021]);
    const sds = b.static_resources.clusters.find((c: any) => c.name === 'sds-grpc');
    expect(sds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path).toBe('./var/run/secrets/workload-spiffe-uds/socket');
  });

  it('goes through the agent socket with --via-agent, SotW with --sotw', () => {
    const b = JSON.parse(renderBootstrap({ ...base, viaAgent: true, delta: false }, 'json'));
    const xds = b.static_resources.clusters.find((c: any) => c.name === 'xds-grpc');
    expect(xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path).toBe('./etc/istio/proxy/XDS');
    expect(b.dynamic_resources.ads_config.api_type).toBe('GRPC');
  });

  it('passes Envoy\'s schema and validation rules', () => {
    for (const o of [base, { ...base, viaAgent: true }, { ...base, proxyType: 'router' as const }]) {
      expect(checkEnvoyResource('envoy.config.bootstrap.v3.Bootstrap', buildBootstrap(o))).toEqual([]);
    }
  });

  it('runs as a command', () => {
    const out = execFileSync(process.execPath, ['src/cli/main.ts', 'bootstrap', '--pod', 'gw-0', '-n', 'istio-system', '--type', 'router', '--labels', 'istio=ingressgateway'], { encoding: 'utf8' });
    const b = JSON.parse(out);
    expect(b.node.id).toBe('router~10.0.0.1~gw-0.istio-system~istio-system.svc.cluster.local');
    expect(structToJson({ fields: {} })).toEqual({});
  });
});
