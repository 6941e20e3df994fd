import { describe, expect, it } from 'vitest';
import { hostMatches, resolveShortName } from '../../src/model/hosts.ts';
import { clusterName, joinHostPort, parseClusterName, splitHostPort } from '../../src/model/names.ts';
import { parseProxy } from '../../src/model/proxy.ts';
import { protocolFromName } from '../../src/model/service.ts';
import { isIp } from '../../src/model/ip.ts';
import { parseDurationMs } from '../../src/config/kinds/common.ts';

describe('names', () => {
  it('formats and parses cluster names in istiod’s format', () => {
    expect(clusterName('outbound', 9080, 'v1', 'reviews.default.svc.cluster.local')).toBe('outbound|9080|v1|reviews.default.svc.cluster.local');
    expect(parseClusterName('outbound|9080||reviews.default.svc.cluster.local')).toEqual({ direction: 'outbound', port: 9080, subset: '', host: 'reviews.default.svc.cluster.local' });
    expect(parseClusterName('inbound|8080||')).toEqual({ direction: 'inbound', port: 8080, subset: '', host: '' });
    expect(parseClusterName('outbound|0||x')).toBeUndefined();
    expect(parseClusterName('sideways|80||x')).toBeUndefined();
    expect(parseClusterName('reviews:9080')).toBeUndefined();
  });
  it('joins and splits host:port with IPv6 brackets', () => {
    expect(joinHostPort('::1', 80)).toBe('[::1]:80');
    expect(splitHostPort('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(splitHostPort('reviews:9080')).toEqual({ host: 'reviews', port: 9080 });
    expect(splitHostPort('reviews')).toEqual({ host: 'reviews' });
  });
});

describe('hosts', () => {
  it('matches wildcards the way Istio does', () => {
    expect(hostMatches('*.example.com', 'api.example.com')).toBe(true);
    expect(hostMatches('*.example.com', 'example.com')).toBe(false);
    expect(hostMatches('*', 'anything')).toBe(true);
    expect(hostMatches('*.com', '*.example.com')).toBe(true);
    expect(hostMatches('a.com', 'b.com')).toBe(false);
  });
  it('resolves short names against the object’s namespace', () => {
    expect(resolveShortName('reviews', 'bookinfo', 'cluster.local')).toBe('reviews.bookinfo.svc.cluster.local');
    expect(resolveShortName('reviews.other.svc.cluster.local', 'bookinfo', 'cluster.local')).toBe('reviews.other.svc.cluster.local');
    expect(resolveShortName('*.example.com', 'bookinfo', 'cluster.local')).toBe('*.example.com');
  });
});

describe('proxy node ids', () => {
  it('parses Istio’s node id and metadata', () => {
    const r = parseProxy({
      id: 'sidecar~10.244.1.7~reviews-v1-7f9c.default~default.svc.cluster.local',
      metadata: { GENERATOR: 'grpc', LABELS: { app: 'reviews', version: 'v1' }, SERVICE_ACCOUNT: 'bookinfo-reviews' },
      locality: { region: 'us', zone: 'us-1', sub_zone: '' },
    });
    expect(r.ok && r.value).toMatchObject({
      type: 'sidecar',
      id: 'reviews-v1-7f9c.default',
      namespace: 'default',
      ipAddresses: ['10.244.1.7'],
      generator: 'grpc',
      labels: { app: 'reviews', version: 'v1' },
      locality: 'us/us-1/',
      serviceAccount: 'bookinfo-reviews',
    });
  });
  it('prefers metadata NAMESPACE and INSTANCE_IPS', () => {
    const r = parseProxy({ id: 'router~10.0.0.1~gw.istio-system~x.svc.cluster.local', metadata: { NAMESPACE: 'istio-system', INSTANCE_IPS: '10.0.0.2,fd00::2' } });
    expect(r.ok && r.value.namespace).toBe('istio-system');
    expect(r.ok && r.value.ipAddresses).toEqual(['10.0.0.2', 'fd00::2']);
  });
  it.each([
    ['client', 'is not <type>~<ip>~<pod>.<namespace>~<dns domain>'],
    ['waypoint~1.2.3.4~a.b~b.svc.cluster.local', 'unknown proxy type "waypoint"'],
    ['sidecar~not-an-ip~a.b~b.svc.cluster.local', 'no valid IP address'],
  ])('refuses %s', (id, message) => {
    const r = parseProxy({ id, metadata: {} });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors).toContain(message);
  });
});

describe('protocol selection', () => {
  it.each([
    ['http-web', undefined, 'HTTP'],
    ['grpc', undefined, 'GRPC'],
    ['grpc-web', undefined, 'GRPC-WEB'],
    ['tcp-db', undefined, 'TCP'],
    ['web', 'http2', 'HTTP2'],
    ['web', 'kubernetes.io/h2c', 'HTTP2'],
    ['metrics', undefined, 'UNKNOWN'],
  ])('%s (appProtocol %s) → %s', (name, app, want) => {
    expect(protocolFromName(name, app)).toBe(want);
  });
});

describe('durations', () => {
  it.each([
    ['10s', 10_000],
    ['1.5s', 1500],
    ['300ms', 300],
    ['1h2m', 3_720_000],
    ['3m', 180_000],
    ['0', 0],
  ])('%s = %d ms', (s, ms) => expect(parseDurationMs(s)).toBe(ms));
  it.each(['soon', '10', '1x', '', 's', '1s2'])('refuses %j', (s) => expect(parseDurationMs(s)).toBeUndefined());
});

describe('IP literals', () => {
  it.each(['10.0.0.1', '255.255.255.255', '::1', 'fd00::2', '::ffff:10.0.0.1'])('%s is an IP', (s) => expect(isIp(s)).toBe(true));
  it.each(['999.1.1.1', '10.0.0', 'reviews', ':::', 'fd00::g', ''])('%s is not', (s) => expect(isIp(s)).toBe(false));
});
