import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { istioKinds } from '../../src/config/kinds/istio.ts';
import { KindRegistry } from '../../src/config/kinds/registry.ts';
import { validateDocument } from '../../src/config/validate.ts';

const registry = new KindRegistry(istioKinds);
const options = { defaultNamespace: 'default', now: () => '2026-01-01T00:00:00Z' };
const seedsDir = path.resolve(import.meta.dirname, '../../../shared/fixtures/seeds');

function parseYaml(text: string): unknown[] {
  return parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS() as unknown);
}

/** Validates one object and returns its field errors ([] when accepted). */
function errorsOf(doc: unknown): Array<{ path: string; message: string }> {
  const r = validateDocument(doc, registry, options);
  if (!r) throw new Error('not an Istio kind');
  return r.ok ? [] : r.errors.errors;
}

const obj = (apiVersion: string, kind: string, spec: unknown, name = 'x', namespace = 'prod') => ({
  apiVersion,
  kind,
  metadata: { name, namespace },
  spec,
});
const vs = (spec: unknown) => obj('networking.istio.io/v1', 'VirtualService', spec);
const dr = (spec: unknown) => obj('networking.istio.io/v1', 'DestinationRule', spec);
const gw = (spec: unknown, name = 'gw') => obj('networking.istio.io/v1', 'Gateway', spec, name);
const se = (spec: unknown) => obj('networking.istio.io/v1', 'ServiceEntry', spec);
const route = (host = 'reviews') => [{ destination: { host } }];

describe('seed fixtures', () => {
  const files = readdirSync(seedsDir).filter((f) => f.endsWith('.yaml')).sort();
  const istioDocs: Array<{ file: string; doc: unknown }> = [];
  for (const file of files) {
    for (const doc of parseYaml(readFileSync(path.join(seedsDir, file), 'utf8'))) {
      const d = doc as { apiVersion?: unknown; kind?: unknown } | null;
      if (d && typeof d.apiVersion === 'string' && typeof d.kind === 'string' && registry.find(d.apiVersion, d.kind)) {
        istioDocs.push({ file, doc });
      }
    }
  }

  it('finds every Istio-kind seed (VS 10, DR 6, GW 3, PA 8, AP 5, RA 2, Telemetry 4, EnvoyFilter 2)', () => {
    expect(istioDocs).toHaveLength(40);
  });

  for (const { file, doc } of istioDocs) {
    if (file.startsWith('011-')) continue;
    it(`accepts ${file}`, () => {
      expect(errorsOf(doc)).toEqual([]);
    });
  }

  it('refuses 011 (Telemetry accessLogging[].format is not an API field)', () => {
    const seed = istioDocs.find((d) => d.file.startsWith('011-'));
    expect(seed).toBeDefined();
    expect(errorsOf(seed?.doc)).toEqual([{ path: 'spec.accessLogging[0].format', message: 'unknown field' }]);
  });

  it('keeps non-Istio kinds out (IstioOperator, Deployment, ServiceProfile)', () => {
    expect(registry.find('install.istio.io/v1alpha1', 'IstioOperator')).toBeUndefined();
    expect(registry.find('apps/v1', 'Deployment')).toBeUndefined();
  });
});

describe('registry versions', () => {
  it('serves the versions Istio serves', () => {
    expect(registry.find('networking.istio.io/v1alpha3', 'VirtualService')).toHaveProperty('def');
    expect(registry.find('security.istio.io/v1beta1', 'AuthorizationPolicy')).toHaveProperty('def');
    expect(registry.find('telemetry.istio.io/v1', 'Telemetry')).toHaveProperty('def');
    expect(registry.find('networking.istio.io/v1beta1', 'ProxyConfig')).toHaveProperty('def');
    expect(registry.find('networking.istio.io/v1', 'EnvoyFilter')).toHaveProperty('error');
    expect(registry.find('security.istio.io/v1alpha1', 'PeerAuthentication')).toHaveProperty('error');
    expect(registry.find('extensions.istio.io/v1alpha1', 'WasmPlugin')).toHaveProperty('def');
  });
});

describe('VirtualService', () => {
  it('reports exactly the bad duration', () => {
    expect(errorsOf(vs({ hosts: ['reviews'], http: [{ route: route(), timeout: 'soon' }] }))).toEqual([
      { path: 'spec.http[0].timeout', message: 'invalid duration "soon"' },
    ]);
  });

  it('refuses a timeout under 1ms', () => {
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), timeout: '0s' }] }))).toEqual([
      { path: 'spec.http[0].timeout', message: 'duration must be at least 1ms, got "0s"' },
    ]);
  });

  it('refuses a bad RE2 regex', () => {
    const errs = errorsOf(vs({ hosts: ['r'], http: [{ match: [{ uri: { regex: '(a' } }], route: route() }] }));
    expect(errs).toEqual([{ path: 'spec.http[0].match[0].uri.regex', message: 'invalid RE2 regular expression "(a"' }]);
  });

  it('refuses Perl-only regex syntax (lookahead) that RE2 lacks', () => {
    const errs = errorsOf(vs({ hosts: ['r'], http: [{ match: [{ headers: { 'user-agent': { regex: '(?=x)' } } }], route: route() }] }));
    expect(errs.map((e) => e.path)).toEqual(['spec.http[0].match[0].headers.user-agent.regex']);
  });

  it('refuses unknown fields', () => {
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), timeout: '1s', retry: { attempts: 3 } }] }))).toEqual([
      { path: 'spec.http[0].retry', message: 'unknown field' },
    ]);
  });

  it('requires destination.host', () => {
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: [{ destination: { subset: 'v1' } }] }] }))).toEqual([
      { path: 'spec.http[0].route[0].destination.host', message: 'required field is missing' },
    ]);
  });

  it('accepts any non-negative weights with a positive total (current Istio rule)', () => {
    const weights = [{ destination: { host: 'a' }, weight: 30 }, { destination: { host: 'b' }, weight: 30 }];
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: weights }] }))).toEqual([]);
  });

  it('refuses negative weights and an all-zero split', () => {
    const neg = [{ destination: { host: 'a' }, weight: -1 }, { destination: { host: 'b' }, weight: 101 }];
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: neg }] }))).toEqual([
      { path: 'spec.http[0].route[0].weight', message: 'weight must be non-negative, got -1' },
    ]);
    const zero = [{ destination: { host: 'a' }, weight: 0 }, { destination: { host: 'b' }, weight: 0 }];
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: zero }] })).map((e) => e.path)).toEqual(['spec.http[0].route']);
  });

  it('needs exactly one action per HTTP route', () => {
    expect(errorsOf(vs({ hosts: ['r'], http: [{ timeout: '1s' }] })).map((e) => e.path)).toEqual(['spec.http[0]']);
    const both = { route: route(), redirect: { uri: '/x' } };
    expect(errorsOf(vs({ hosts: ['r'], http: [both] }))).toEqual([
      { path: 'spec.http[0]', message: 'HTTP route cannot contain both route and redirect' },
    ]);
  });

  it('refuses rewrite together with redirect', () => {
    const errs = errorsOf(vs({ hosts: ['r'], http: [{ redirect: { uri: '/x' }, rewrite: { uri: '/y' } }] }));
    expect(errs.map((e) => e.path)).toEqual(['spec.http[0].rewrite']);
  });

  it('checks fault injection', () => {
    const fault = { abort: { percentage: { value: 120 }, httpStatus: 503 } };
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), fault }] }))).toEqual([
      { path: 'spec.http[0].fault.abort.percentage.value', message: 'must be <= 100 (got 120)' },
    ]);
    // Istio accepts (and only warns about) an abort without an error type and a delay without fixedDelay; so do we.
    const noType = { abort: { percentage: { value: 10 } } };
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), fault: noType }] }))).toEqual([]);
    const noDelay = { delay: { percentage: { value: 10 } } };
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), fault: noDelay }] }))).toEqual([]);
    const both = { abort: { httpStatus: 503, grpcStatus: 'UNAVAILABLE' } };
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), fault: both }] })).map((e) => e.path)).toEqual(['spec.http[0].fault.abort']);
  });

  it('accepts gRPC status names and refuses numbers or unknown names', () => {
    const ok = { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 5 } } };
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), fault: ok }] }))).toEqual([]);
    const bad = { abort: { grpcStatus: '14' } };
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), fault: bad }] })).map((e) => e.path)).toEqual(['spec.http[0].fault.abort.grpcStatus']);
  });

  it('checks retries', () => {
    const retries = { attempts: -1, retryOn: '5xx,bogus' };
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), retries }] }))).toEqual([
      { path: 'spec.http[0].retries.attempts', message: 'attempts cannot be negative, got -1' },
      { path: 'spec.http[0].retries.retryOn', message: '"bogus" is not a valid retryOn policy' },
    ]);
    expect(errorsOf(vs({ hosts: ['r'], http: [{ route: route(), retries: { attempts: 2, retryOn: '503,reset' } }] }))).toEqual([]);
  });

  it('checks hosts', () => {
    expect(errorsOf(vs({ hosts: ['*'], http: [{ route: route() }] })).map((e) => e.path)).toEqual(['spec.hosts[0]']);
    expect(errorsOf(vs({ hosts: ['*'], gateways: ['gw'], http: [{ route: route() }] }))).toEqual([]);
    expect(errorsOf(vs({ hosts: ['foo.*.com'], http: [{ route: route() }] })).map((e) => e.path)).toEqual(['spec.hosts[0]']);
    expect(errorsOf(vs({ hosts: ['a.foo.com', '*.foo.com'], http: [{ route: route() }] })).map((e) => e.path)).toEqual(['spec.hosts[1]']);
  });

  it('allows delegate virtual services without hosts, but not with gateways', () => {
    expect(errorsOf(vs({ http: [{ route: route() }] }))).toEqual([]);
    expect(errorsOf(vs({ gateways: ['gw'], http: [{ route: route() }] })).map((e) => e.path)).toEqual(['spec.gateways']);
    expect(errorsOf(vs({ hosts: ['r'], http: [{ delegate: { namespace: 'ns' } }] }))).toEqual([
      { path: 'spec.http[0].delegate.name', message: 'delegate name is required' },
    ]);
  });

  it('checks header names in matches and mirror destinations', () => {
    const errs = errorsOf(vs({ hosts: ['r'], http: [{ match: [{ headers: { 'bad header': { exact: 'x' } } }], route: route(), mirror: { host: '*' } }] }));
    expect(errs.map((e) => e.path)).toEqual(['spec.http[0].match[0].headers["bad header"]', 'spec.http[0].mirror.host']);
  });

  it('refuses two StringMatch kinds at once', () => {
    expect(errorsOf(vs({ hosts: ['r'], http: [{ match: [{ uri: { exact: '/a', prefix: '/' } }], route: route() }] }))).toEqual([
      { path: 'spec.http[0].match[0].uri', message: 'set at most 1 of these fields' },
    ]);
  });

  it('checks TLS routes against the hosts', () => {
    const tls = [{ match: [{ sniHosts: ['other.com'] }], route: route('a.com') }];
    expect(errorsOf(vs({ hosts: ['a.com'], gateways: ['gw'], tls })).map((e) => e.path)).toEqual(['spec.tls[0].match[0].sniHosts[0]']);
  });
});

describe('DestinationRule', () => {
  it('refuses simple and consistentHash together', () => {
    const lb = { simple: 'ROUND_ROBIN', consistentHash: { httpHeaderName: 'x-user' } };
    expect(errorsOf(dr({ host: 'r', trafficPolicy: { loadBalancer: lb } }))).toEqual([
      { path: 'spec.trafficPolicy.loadBalancer', message: 'only one of simple, consistentHash may be set' },
    ]);
  });

  it('needs exactly one consistent-hash key', () => {
    const lb = { consistentHash: { httpHeaderName: 'x', useSourceIp: true } };
    expect(errorsOf(dr({ host: 'r', trafficPolicy: { loadBalancer: lb } })).map((e) => e.path)).toEqual(['spec.trafficPolicy.loadBalancer.consistentHash']);
  });

  it('checks outlier detection and connection pool ranges', () => {
    const tp = { outlierDetection: { maxEjectionPercent: 120 }, connectionPool: { tcp: { maxConnections: -1 } } };
    expect(errorsOf(dr({ host: 'r', trafficPolicy: tp }))).toEqual([
      { path: 'spec.trafficPolicy.outlierDetection.maxEjectionPercent', message: 'must be between 0 and 100, got 120' },
      { path: 'spec.trafficPolicy.connectionPool.tcp.maxConnections', message: 'must be non-negative, got -1' },
    ]);
  });

  it('checks subsets', () => {
    const subsets = [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v1' }, { name: 'V_2' }];
    expect(errorsOf(dr({ host: 'r', subsets })).map((e) => e.path)).toEqual(['spec.subsets[1].name', 'spec.subsets[2].name']);
  });

  it('checks client TLS', () => {
    expect(errorsOf(dr({ host: 'r', trafficPolicy: { tls: { mode: 'MUTUAL', clientCertificate: '/c.pem' } } }))).toEqual([
      { path: 'spec.trafficPolicy.tls.privateKey', message: 'MUTUAL TLS needs privateKey (or credentialName)' },
    ]);
    expect(errorsOf(dr({ host: 'r', trafficPolicy: { tls: { mode: 'MUTUAL', credentialName: 'cert' } } }))).toEqual([]);
  });

  it('checks locality load balancing', () => {
    const distribute = [{ from: 'us-west/*', to: { 'us-west/*': 80, 'us-east/*': 10 } }];
    const failover = [{ from: 'us-west', to: 'us-east' }];
    const lb = { localityLbSetting: { distribute, failover } };
    expect(errorsOf(dr({ host: 'r', trafficPolicy: { loadBalancer: lb } }))).toEqual([
      { path: 'spec.trafficPolicy.loadBalancer.localityLbSetting', message: 'only one of distribute, failover may be set' },
    ]);
    const lb2 = { localityLbSetting: { distribute } };
    expect(errorsOf(dr({ host: 'r', trafficPolicy: { loadBalancer: lb2 } }))).toEqual([
      { path: 'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to', message: 'locality weights must add up to 100, got 90' },
    ]);
  });

  it('requires host', () => {
    expect(errorsOf(dr({ subsets: [] }))).toEqual([{ path: 'spec.host', message: 'required field is missing' }]);
  });
});

describe('Gateway', () => {
  const server = { port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['a.example.com'], tls: { mode: 'SIMPLE', credentialName: 'c' } };

  it('accepts a TLS server with a credential', () => {
    expect(errorsOf(gw({ selector: { istio: 'ingressgateway' }, servers: [server] }))).toEqual([]);
  });

  it('requires hosts on every server', () => {
    const noHosts = { port: server.port, tls: server.tls };
    expect(errorsOf(gw({ servers: [noHosts] }))).toEqual([{ path: 'spec.servers[0].hosts', message: 'required field is missing' }]);
    expect(errorsOf(gw({ servers: [{ ...server, hosts: [] }] }))).toEqual([
      { path: 'spec.servers[0].hosts', message: 'server must have at least one host' },
    ]);
  });

  it('needs at least one server', () => {
    expect(errorsOf(gw({ selector: { istio: 'ingressgateway' } }))).toEqual([
      { path: 'spec.servers', message: 'gateway must have at least one server' },
    ]);
  });

  it('needs certificates for SIMPLE TLS and TLS settings on HTTPS ports', () => {
    expect(errorsOf(gw({ servers: [{ ...server, tls: { mode: 'SIMPLE' } }] })).map((e) => e.path)).toEqual([
      'spec.servers[0].tls.serverCertificate',
      'spec.servers[0].tls.privateKey',
    ]);
    const noTls = { port: server.port, hosts: server.hosts };
    expect(errorsOf(gw({ servers: [noTls] })).map((e) => e.path)).toEqual(['spec.servers[0].tls']);
  });

  it('checks hosts, protocols and unique port names', () => {
    const http = { port: { number: 80, name: 'https', protocol: 'HTTP' }, hosts: ['ns/foo', 'bad ns/a.com'] };
    expect(errorsOf(gw({ servers: [server, http] })).map((e) => e.path)).toEqual([
      'spec.servers[1].hosts[0]',
      'spec.servers[1].hosts[1]',
      'spec.servers[1].port.name',
    ]);
    const tcp = { port: { number: 9000, name: 'tcp', protocol: 'SCTP' }, hosts: ['*'] };
    expect(errorsOf(gw({ servers: [tcp] })).map((e) => e.path)).toEqual(['spec.servers[0].port.protocol']);
  });

  it('refuses TLS settings other than httpsRedirect on plain HTTP', () => {
    const http = { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'], tls: { mode: 'SIMPLE', credentialName: 'c' } };
    expect(errorsOf(gw({ servers: [http] })).map((e) => e.path)).toEqual(['spec.servers[0].tls']);
  });

  it('requires a DNS-label name', () => {
    expect(errorsOf(gw({ servers: [server] }, 'my.gateway')).map((e) => e.path)).toEqual(['metadata.name']);
  });
});

describe('ServiceEntry', () => {
  const base = { hosts: ['api.example.com'], ports: [{ number: 443, name: 'https', protocol: 'TLS' }] };

  it('accepts DNS with hostname endpoints and STATIC with IPs', () => {
    expect(errorsOf(se({ ...base, resolution: 'DNS', location: 'MESH_EXTERNAL', endpoints: [{ address: 'api.internal.example.com' }] }))).toEqual([]);
    expect(errorsOf(se({ ...base, resolution: 'STATIC', endpoints: [{ address: '10.0.0.1', ports: { https: 8443 } }] }))).toEqual([]);
  });

  it('refuses hostnames as STATIC endpoints', () => {
    expect(errorsOf(se({ ...base, resolution: 'STATIC', endpoints: [{ address: 'db.example.com' }] }))).toEqual([
      { path: 'spec.endpoints[0].address', message: 'endpoint address "db.example.com" is not a valid IP address (resolution STATIC needs IPs)' },
    ]);
  });

  it('checks endpoint port names against the service ports', () => {
    expect(errorsOf(se({ ...base, resolution: 'STATIC', endpoints: [{ address: '10.0.0.1', ports: { http: 80 } }] })).map((e) => e.path)).toEqual([
      'spec.endpoints[0].ports.http',
    ]);
  });

  it('checks ports, protocols, addresses and resolution rules', () => {
    const ports = [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 80, name: 'http', protocol: 'QUIC' }];
    expect(errorsOf(se({ hosts: ['a.com'], ports, addresses: ['10.0.0.0/33'] })).map((e) => e.path)).toEqual([
      'spec.addresses[0]',
      'spec.ports[1].name',
      'spec.ports[1].number',
      'spec.ports[1].protocol',
    ]);
    expect(errorsOf(se({ ...base, resolution: 'NONE', endpoints: [{ address: '10.0.0.1' }] })).map((e) => e.path)).toEqual(['spec.endpoints']);
    expect(errorsOf(se({ ...base, workloadSelector: { labels: { app: 'a' } }, endpoints: [] })).map((e) => e.path)).toEqual(['spec']);
    expect(errorsOf(se({ ...base, hosts: ['*'] })).map((e) => e.path)).toEqual(['spec.hosts[0]']);
    expect(errorsOf(se({ ...base, location: 'OUTSIDE' })).map((e) => e.path)).toEqual(['spec.location']);
  });
});

describe('WorkloadEntry and WorkloadGroup', () => {
  it('accepts a VM entry and refuses a missing address', () => {
    const we = (spec: unknown) => obj('networking.istio.io/v1', 'WorkloadEntry', spec);
    expect(errorsOf(we({ address: '10.1.2.3', ports: { http: 8080 }, labels: { app: 'vm' }, serviceAccount: 'sa', weight: 2 }))).toEqual([]);
    expect(errorsOf(we({ labels: { app: 'vm' } }))).toEqual([{ path: 'spec.address', message: 'address is required (unless network is set)' }]);
    expect(errorsOf(we({ address: '10.1.2.3', ports: { http: 0 } })).map((e) => e.path)).toEqual(['spec.ports.http']);
  });

  it('checks the readiness probe', () => {
    const wg = (spec: unknown) => obj('networking.istio.io/v1', 'WorkloadGroup', spec);
    const template = { labels: { app: 'vm' }, serviceAccount: 'sa' };
    expect(errorsOf(wg({ template, probe: { httpGet: { port: 8080, path: '/ready' }, periodSeconds: 5 } }))).toEqual([]);
    expect(errorsOf(wg({ template, probe: { periodSeconds: 5 } })).map((e) => e.path)).toEqual(['spec.probe']);
    expect(errorsOf(wg({ probe: { tcpSocket: { port: 1 } } }))).toEqual([{ path: 'spec.template', message: 'required field is missing' }]);
  });
});

describe('Sidecar', () => {
  const sc = (spec: unknown) => obj('networking.istio.io/v1', 'Sidecar', spec);

  it('accepts namespace/dnsName egress hosts', () => {
    expect(errorsOf(sc({ egress: [{ hosts: ['./*', 'istio-system/*', '*/foo.com'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }))).toEqual([]);
  });

  it('refuses hosts without a namespace, short names and partial wildcards', () => {
    expect(errorsOf(sc({ egress: [{ hosts: ['foo.com', 'ns/foo', 'ns/foo*.com'] }] })).map((e) => e.path)).toEqual([
      'spec.egress[0].hosts[0]',
      'spec.egress[0].hosts[1]',
      'spec.egress[0].hosts[2]',
      'spec.egress[0].hosts[2]',
    ]);
  });

  it('checks ingress listeners and the outbound policy', () => {
    const ingress = [{ port: { number: 9080, protocol: 'HTTP', name: 'http' }, defaultEndpoint: '10.0.0.1:8080' }];
    expect(errorsOf(sc({ ingress })).map((e) => e.path)).toEqual(['spec.ingress[0].defaultEndpoint']);
    const otp = { mode: 'REGISTRY_ONLY', egressProxy: { host: 'proxy.example.com', port: { number: 3128 } } };
    expect(errorsOf(sc({ outboundTrafficPolicy: otp })).map((e) => e.path)).toEqual(['spec.outboundTrafficPolicy.egressProxy']);
    expect(errorsOf(sc({}))).toEqual([{ path: 'spec', message: expect.stringContaining('empty') }]);
  });
});

describe('EnvoyFilter', () => {
  const ef = (spec: unknown) => obj('networking.istio.io/v1alpha3', 'EnvoyFilter', spec);

  it('accepts arbitrary Envoy fields in patch.value', () => {
    const patch = { operation: 'MERGE', value: { typed_config: { '@type': 'x', anything: { at_all: [1, 2] } } } };
    expect(errorsOf(ef({ configPatches: [{ applyTo: 'CLUSTER', match: { cluster: { service: 'a.b' } }, patch }], priority: -1 }))).toEqual([]);
  });

  it('checks applyTo, context and operation enums and requirements', () => {
    const bad = { applyTo: 'HTTP_FILTERS', match: { context: 'INBOUND' }, patch: { operation: 'MERGE' } };
    expect(errorsOf(ef({ configPatches: [bad] })).map((e) => e.path)).toEqual([
      'spec.configPatches[0].applyTo',
      'spec.configPatches[0].match.context',
    ]);
    expect(errorsOf(ef({ configPatches: [{ applyTo: 'HTTP_FILTER', patch: { operation: 'ADD' } }] }))).toEqual([
      { path: 'spec.configPatches[0].patch.value', message: 'patch value is required for operation ADD' },
    ]);
    const wrongMatch = { applyTo: 'HTTP_FILTER', match: { cluster: { name: 'c' } }, patch: { operation: 'REMOVE' } };
    expect(errorsOf(ef({ configPatches: [wrongMatch] })).map((e) => e.path)).toEqual(['spec.configPatches[0].match']);
  });

  it('refuses workloadSelector with targetRefs', () => {
    const spec = { workloadSelector: { labels: { app: 'a' } }, targetRefs: [{ kind: 'Service', name: 'a' }], configPatches: [] };
    expect(errorsOf(ef(spec)).map((e) => e.path)).toEqual(['spec']);
  });
});

describe('security kinds', () => {
  const pa = (spec: unknown) => obj('security.istio.io/v1', 'PeerAuthentication', spec);
  const ap = (spec: unknown) => obj('security.istio.io/v1', 'AuthorizationPolicy', spec);
  const ra = (spec: unknown) => obj('security.istio.io/v1', 'RequestAuthentication', spec);

  it('PeerAuthentication: portLevelMtls needs a selector and numeric ports', () => {
    expect(errorsOf(pa({ portLevelMtls: { '8080': { mode: 'DISABLE' } } })).map((e) => e.path)).toEqual(['spec.portLevelMtls']);
    const spec = { selector: { matchLabels: { app: 'a' } }, portLevelMtls: { '70000': { mode: 'DISABLE' }, http: { mode: 'STRICT' } } };
    expect(errorsOf(pa(spec)).map((e) => e.path)).toEqual(['spec.portLevelMtls[70000]', 'spec.portLevelMtls.http']);
    expect(errorsOf(pa({ mtls: { mode: 'ON' } })).map((e) => e.path)).toEqual(['spec.mtls.mode']);
  });

  it('AuthorizationPolicy: action, provider and rule checks', () => {
    expect(errorsOf(ap({ action: 'CUSTOM', rules: [{}] }))).toEqual([{ path: 'spec.provider.name', message: 'CUSTOM action needs provider.name' }]);
    expect(errorsOf(ap({ action: 'ALLOW', provider: { name: 'ext' }, rules: [{}] })).map((e) => e.path)).toEqual(['spec.provider']);
    expect(errorsOf(ap({ action: 'DENY' })).map((e) => e.path)).toEqual(['spec.rules']);
    expect(errorsOf(ap({ action: 'REJECT' })).map((e) => e.path)).toEqual(['spec.action']);
    const both = { selector: { matchLabels: { app: 'a' } }, targetRefs: [{ kind: 'Service', name: 'a' }] };
    expect(errorsOf(ap(both)).map((e) => e.path)).toEqual(['spec']);
    const rules = [{ from: [{ source: { ipBlocks: ['10.0.0.0/40'] } }], to: [{ operation: { ports: ['http'] } }], when: [{ key: 'source.color', values: ['red'] }] }];
    expect(errorsOf(ap({ rules })).map((e) => e.path)).toEqual([
      'spec.rules[0].from[0].source.ipBlocks[0]',
      'spec.rules[0].to[0].operation.ports[0]',
      'spec.rules[0].when[0].key',
    ]);
  });

  it('RequestAuthentication: issuer, jwksUri and jwks', () => {
    expect(errorsOf(ra({ jwtRules: [{ jwksUri: 'ftp://keys.example.com/jwks' }] })).map((e) => e.path)).toEqual([
      'spec.jwtRules[0].issuer',
      'spec.jwtRules[0].jwksUri',
    ]);
    expect(errorsOf(ra({ jwtRules: [{ issuer: 'i', jwksUri: 'https://k/jwks', jwks: '{"keys":[]}' }] })).map((e) => e.path)).toEqual([
      'spec.jwtRules[0]',
    ]);
    expect(errorsOf(ra({ jwtRules: [{ issuer: 'i', jwks: 'not json' }] })).map((e) => e.path)).toEqual(['spec.jwtRules[0].jwks']);
  });
});

describe('Telemetry, ProxyConfig, WasmPlugin', () => {
  const tel = (spec: unknown) => obj('telemetry.istio.io/v1', 'Telemetry', spec);

  it('Telemetry: sampling range, metric enums, tag overrides', () => {
    expect(errorsOf(tel({ tracing: [{ randomSamplingPercentage: 120 }] }))).toEqual([
      { path: 'spec.tracing[0].randomSamplingPercentage', message: 'must be <= 100 (got 120)' },
    ]);
    const overrides = [{ match: { metric: 'REQUESTS', mode: 'BOTH' }, tagOverrides: { code: { operation: 'UPSERT' } } }];
    expect(errorsOf(tel({ metrics: [{ overrides }] })).map((e) => e.path)).toEqual([
      'spec.metrics[0].overrides[0].match.metric',
      'spec.metrics[0].overrides[0].match.mode',
    ]);
    const upsert = [{ match: { metric: 'REQUEST_COUNT' }, tagOverrides: { code: { operation: 'UPSERT' }, gone: { operation: 'REMOVE', value: 'x' } } }];
    expect(errorsOf(tel({ metrics: [{ overrides: upsert }] })).map((e) => e.path)).toEqual([
      'spec.metrics[0].overrides[0].tagOverrides.code.value',
      'spec.metrics[0].overrides[0].tagOverrides.gone.value',
    ]);
    expect(errorsOf(tel({ accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: 'response.code >= 400' } }] }))).toEqual([]);
  });

  it('ProxyConfig: concurrency and selector', () => {
    const pc = (spec: unknown) => obj('networking.istio.io/v1beta1', 'ProxyConfig', spec);
    expect(errorsOf(pc({ concurrency: 2, environmentVariables: { A: 'b' }, image: { imageType: 'distroless' } }))).toEqual([]);
    expect(errorsOf(pc({ concurrency: -1 }))).toEqual([{ path: 'spec.concurrency', message: 'must be non-negative, got -1' }]);
  });

  it('WasmPlugin: url scheme, sha256, free-form pluginConfig', () => {
    const wp = (spec: unknown) => obj('extensions.istio.io/v1alpha1', 'WasmPlugin', spec);
    const good = { url: 'oci://ghcr.io/x/y:1', phase: 'AUTHN', pluginConfig: { any_field: { nested: true } }, selector: { matchLabels: { app: 'a' } } };
    expect(errorsOf(wp(good))).toEqual([]);
    expect(errorsOf(wp({ url: 'ghcr.io/x/y:1' }))).toEqual([]);
    expect(errorsOf(wp({ url: 'ftp://x/y.wasm', sha256: 'abc' })).map((e) => e.path)).toEqual(['spec.url', 'spec.sha256']);
    expect(errorsOf(wp({ pluginName: 'p' }))).toEqual([{ path: 'spec.url', message: 'required field is missing' }]);
  });
});
