/** The hand-written DiscoveryRequest decoder agrees with protobufjs, and keeps resource names as bytes until asked. */
import { describe, expect, it } from 'vitest';
import { clientCodec, decodeDiscoveryRequest, jsonToStruct } from '../../src/xds/protocol/messages.ts';

describe('DiscoveryRequest decoding', () => {
  it('decodes every field a client sends', () => {
    const buf = clientCodec.encodeRequest({
      version_info: 'v7',
      node: { id: 'sidecar~1.2.3.4~a.b~b.svc.cluster.local', cluster: 'c', metadata: jsonToStruct({ GENERATOR: 'grpc', LABELS: { app: 'x' } }) },
      resource_names: ['outbound|80||a', 'outbound|80||b'],
      type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
      response_nonce: 'n-1',
      error_detail: { code: 14, message: 'bad cluster' },
    } as never);
    const r = decodeDiscoveryRequest(buf);
    expect(r.version_info).toBe('v7');
    expect(r.type_url).toBe('type.googleapis.com/envoy.config.cluster.v3.Cluster');
    expect(r.response_nonce).toBe('n-1');
    expect(r.error_detail).toEqual({ code: 14, message: 'bad cluster' });
    expect(r.node?.id).toBe('sidecar~1.2.3.4~a.b~b.svc.cluster.local');
    expect(r.node?.metadata).toEqual({ GENERATOR: 'grpc', LABELS: { app: 'x' } });
    expect(r.resource_names).toEqual(['outbound|80||a', 'outbound|80||b']);
    // The raw names: equal requests have equal bytes, a different list differs.
    const again = decodeDiscoveryRequest(buf);
    expect(again.namesBytes?.equals(r.namesBytes!)).toBe(true);
    const other = decodeDiscoveryRequest(clientCodec.encodeRequest({ resource_names: ['outbound|80||a'] } as never));
    expect(other.namesBytes?.equals(r.namesBytes!)).toBe(false);
  });
  it('an empty request has no names and empty name bytes', () => {
    const r = decodeDiscoveryRequest(clientCodec.encodeRequest({ type_url: 'x' } as never));
    expect(r.resource_names).toEqual([]);
    expect(r.namesBytes?.length).toBe(0);
    expect(r.node).toBeUndefined();
    expect(r.error_detail).toBeUndefined();
  });
});
