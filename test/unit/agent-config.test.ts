/**
 * The agent's options from the injected environment (src/agent/config.ts): Istio's variable names and defaults, node
 * metadata from ISTIO_META_* / ISTIO_METAJSON_*, paths relative to the working directory, and every problem reported
 * by variable name.
 */
import { describe, expect, it } from 'vitest';
import { formatConfigErrors, parseAgentConfig, parseGoDuration, splitHostPort, type AgentConfig, type Env } from '../../src/agent/config.ts';

/** What Istio's sidecar injection template sets for a pod (injection-template.yaml), trimmed to what the agent reads. */
const SIDECAR_ENV: Env = {
  PILOT_CERT_PROVIDER: 'istiod',
  CA_ADDR: 'istiod.istio-system.svc:15012',
  POD_NAME: 'reviews-v1-7f9c-abcde',
  POD_NAMESPACE: 'bookinfo',
  INSTANCE_IP: '10.244.1.7',
  SERVICE_ACCOUNT: 'bookinfo-reviews',
  HOST_IP: '172.18.0.2',
  ISTIO_CPU_LIMIT: '0',
  PROXY_CONFIG: '{}\n',
  ISTIO_META_POD_PORTS: '[{"containerPort":9080,"protocol":"TCP"}]',
  ISTIO_META_APP_CONTAINERS: 'reviews',
  ISTIO_META_CLUSTER_ID: 'Kubernetes',
  ISTIO_META_NODE_NAME: 'kind-worker',
  ISTIO_META_INTERCEPTION_MODE: 'REDIRECT',
  ISTIO_META_WORKLOAD_NAME: 'reviews-v1',
  ISTIO_META_OWNER: 'kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v1',
  ISTIO_META_MESH_ID: 'cluster.local',
  TRUST_DOMAIN: 'cluster.local',
};

/** The grpc-agent template's additions (injection-and-proxyless.md B4). */
const GRPC_AGENT_ENV: Env = { ...SIDECAR_ENV, ISTIO_META_GENERATOR: 'grpc', OUTPUT_CERTS: '/var/lib/istio/data', ISTIO_META_DNS_CAPTURE: 'false', DISABLE_ENVOY: 'true' };

function parse(env: Env, cwd = '/'): AgentConfig {
  const r = parseAgentConfig(env, { cwd });
  if (!r.ok) throw new Error(formatConfigErrors(r.errors));
  return r.value;
}

function errors(env: Env): Record<string, string> {
  const r = parseAgentConfig(env);
  if (r.ok) throw new Error('expected errors');
  return Object.fromEntries(r.errors.map((e) => [e.path, e.message]));
}

describe('agent config', () => {
  it('reads the sidecar template environment with Istio defaults', () => {
    const c = parse(SIDECAR_ENV);
    expect(c).toMatchObject({
      podName: 'reviews-v1-7f9c-abcde',
      namespace: 'bookinfo',
      instanceIp: '10.244.1.7',
      serviceAccount: 'bookinfo-reviews',
      trustDomain: 'cluster.local',
      clusterId: 'Kubernetes',
      nodeId: 'sidecar~10.244.1.7~reviews-v1-7f9c-abcde.bookinfo~bookinfo.svc.cluster.local',
      caAddress: 'istiod.istio-system.svc:15012',
      caServerName: 'istiod.istio-system.svc',
      certProvider: 'istiod',
      caRootCertPath: '/var/run/secrets/istio/root-cert.pem',
      tokenPath: '/var/run/secrets/tokens/istio-token',
      secretTtlSec: 24 * 3600,
      graceRatio: 0.5,
      graceRatioJitter: 0.01,
      keyType: 'rsa',
      rsaBits: 2048,
      sdsSocketPath: '/var/run/secrets/workload-spiffe-uds/socket',
      mode: 'envoy',
      outputCertsDir: undefined,
      grpcBootstrapPath: undefined,
      xdsAddress: 'istiod.istio-system.svc:15010',
    });
    // ISTIO_META_<KEY> → <KEY>, plus what the agent fills in; nothing else from the environment.
    expect(c.nodeMetadata).toEqual({
      POD_PORTS: '[{"containerPort":9080,"protocol":"TCP"}]',
      APP_CONTAINERS: 'reviews',
      CLUSTER_ID: 'Kubernetes',
      NODE_NAME: 'kind-worker',
      INTERCEPTION_MODE: 'REDIRECT',
      WORKLOAD_NAME: 'reviews-v1',
      OWNER: 'kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews-v1',
      MESH_ID: 'cluster.local',
      NAMESPACE: 'bookinfo',
      NAME: 'reviews-v1-7f9c-abcde',
      INSTANCE_IPS: '10.244.1.7',
      SERVICE_ACCOUNT: 'bookinfo-reviews',
    });
  });

  it('grpc-agent template: proxyless mode, OUTPUT_CERTS and the default bootstrap path', () => {
    const c = parse(GRPC_AGENT_ENV);
    expect(c.mode).toBe('proxyless');
    expect(c.outputCertsDir).toBe('/var/lib/istio/data');
    expect(c.grpcBootstrapPath).toBe('/etc/istio/proxy/grpc-bootstrap.json');
    expect(c.nodeMetadata.GENERATOR).toBe('grpc');
    expect(parse({ ...SIDECAR_ENV, ISTIO_META_GENERATOR: 'grpc' }).mode).toBe('proxyless');
    expect(parse({ ...GRPC_AGENT_ENV, GRPC_XDS_BOOTSTRAP: 'boot/grpc.json' }, '/work').grpcBootstrapPath).toBe('/work/boot/grpc.json');
  });

  it('resolves Istio\'s relative paths against the working directory', () => {
    const c = parse({ ...GRPC_AGENT_ENV, OUTPUT_CERTS: 'data' }, '/tmp/pod');
    expect(c.tokenPath).toBe('/tmp/pod/var/run/secrets/tokens/istio-token');
    expect(c.caRootCertPath).toBe('/tmp/pod/var/run/secrets/istio/root-cert.pem');
    expect(c.sdsSocketPath).toBe('/tmp/pod/var/run/secrets/workload-spiffe-uds/socket');
    expect(c.outputCertsDir).toBe('/tmp/pod/data');
  });

  it('CA trust and token: PILOT_CERT_PROVIDER, CA_ROOT_CA (a file or SYSTEM), JWT_POLICY', () => {
    expect(parse({ ...SIDECAR_ENV, PILOT_CERT_PROVIDER: 'kubernetes' }).caRootCertPath).toBe('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
    expect(parse({ ...SIDECAR_ENV, PILOT_CERT_PROVIDER: 'custom' }).caRootCertPath).toBe('/etc/certs/root-cert.pem');
    expect(parse({ ...SIDECAR_ENV, CA_ROOT_CA: '/etc/mesh/root.pem' }).caRootCertPath).toBe('/etc/mesh/root.pem');
    expect(parse({ ...SIDECAR_ENV, CA_ROOT_CA: 'SYSTEM' }).caRootCertPath).toBeUndefined();
    expect(parse({ ...SIDECAR_ENV, JWT_POLICY: 'first-party-jwt' }).tokenPath).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
  });

  it('the CA server name is CA_ADDR\'s host, or istiod\'s name for an IP', () => {
    expect(parse({ ...SIDECAR_ENV, CA_ADDR: 'istiod-canary.istio-system.svc:15012' }).caServerName).toBe('istiod-canary.istio-system.svc');
    expect(parse({ ...SIDECAR_ENV, CA_ADDR: '127.0.0.1:40123' }).caServerName).toBe('istiod.istio-system.svc');
    expect(parse({ ...SIDECAR_ENV, CA_ADDR: '[::1]:15012' }).caServerName).toBe('istiod.istio-system.svc');
  });

  it('lifetime, rotation ratio and key type', () => {
    const c = parse({ ...SIDECAR_ENV, SECRET_TTL: '1h30m', SECRET_GRACE_PERIOD_RATIO: '0.8', SECRET_GRACE_PERIOD_RATIO_JITTER: '0.05', ECC_SIGNATURE_ALGORITHM: 'ECDSA' });
    expect(c).toMatchObject({ secretTtlSec: 5400, graceRatio: 0.8, graceRatioJitter: 0.05, keyType: 'ec' });
    expect(parse({ ...SIDECAR_ENV, SECRET_TTL: '24h0m0s' }).secretTtlSec).toBe(86400);
    expect(parse({ ...SIDECAR_ENV, WORKLOAD_RSA_KEY_SIZE: '4096' }).rsaBits).toBe(4096);
  });

  it('node metadata: ISTIO_METAJSON_* is parsed; the agent\'s own keys win', () => {
    const c = parse({ ...SIDECAR_ENV, ISTIO_METAJSON_LABELS: '{"app":"reviews","version":"v1"}', ISTIO_META_NAMESPACE: 'spoofed' });
    expect(c.nodeMetadata.LABELS).toEqual({ app: 'reviews', version: 'v1' });
    expect(c.nodeMetadata.NAMESPACE).toBe('bookinfo');
  });

  it('reports every problem at once, by variable', () => {
    const e = errors({
      POD_NAME: 'p',
      INSTANCE_IP: '10.0.0.300',
      CA_ADDR: 'istiod.istio-system.svc',
      SECRET_TTL: '3600',
      SECRET_GRACE_PERIOD_RATIO: '1.5',
      ECC_SIGNATURE_ALGORITHM: 'ED25519',
      PILOT_CERT_PROVIDER: 'vault',
      ISTIO_METAJSON_LABELS: '{app: reviews}',
      JWT_POLICY: 'none',
      WORKLOAD_RSA_KEY_SIZE: '1024',
    });
    expect(Object.keys(e).sort()).toEqual(
      ['CA_ADDR', 'ECC_SIGNATURE_ALGORITHM', 'INSTANCE_IP', 'ISTIO_METAJSON_LABELS', 'JWT_POLICY', 'PILOT_CERT_PROVIDER', 'POD_NAMESPACE', 'SECRET_GRACE_PERIOD_RATIO', 'SECRET_TTL', 'WORKLOAD_RSA_KEY_SIZE'].sort(),
    );
    expect(e.POD_NAMESPACE).toMatch(/required/);
    expect(e.INSTANCE_IP).toMatch(/not an IP/);
    expect(e.CA_ADDR).toMatch(/host:port/);
    expect(e.SECRET_TTL).toMatch(/not a duration/);
    expect(e.PILOT_CERT_PROVIDER).toMatch(/not supported/);
    expect(errors({ ...SIDECAR_ENV, SECRET_TTL: '2400h' }).SECRET_TTL).toMatch(/90 days/);
    expect(errors({ ...SIDECAR_ENV, ISTIO_METAJSON_LABELS: '["a"]' }).ISTIO_METAJSON_LABELS).toMatch(/JSON object/);
  });

  it('Go durations and host:port', () => {
    expect(parseGoDuration('24h')).toBe(86400);
    expect(parseGoDuration('1m30s')).toBe(90);
    expect(parseGoDuration('500ms')).toBe(0.5);
    expect(parseGoDuration('1.5h')).toBe(5400);
    expect(parseGoDuration('0')).toBe(0);
    for (const bad of ['', '10', 'h', '1d', '1h 30m', '-1h']) expect(parseGoDuration(bad)).toBeUndefined();
    expect(splitHostPort('istiod.istio-system.svc:15012')).toEqual({ host: 'istiod.istio-system.svc', port: 15012 });
    expect(splitHostPort('[::1]:15010')).toEqual({ host: '::1', port: 15010 });
    for (const bad of ['istiod', ':15012', 'a:0', 'a:70000', '::1:15010']) expect(splitHostPort(bad)).toBeUndefined();
  });
});
