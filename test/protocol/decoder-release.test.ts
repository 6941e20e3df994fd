/**
 * The grpc-js retention workaround (src/xds/protocol/decoder-release.ts) against the pinned grpc-js: a large request
 * is pinned by the call's decoder until released, and released afterwards. If grpc-js changes its internals this
 * test fails (the first expectation), so the workaround gets revisited instead of silently doing nothing.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { releaseDecoderBuffers, retainedDecoderBytes } from '../../src/xds/protocol/decoder-release.ts';
import { adsService } from '../../src/xds/protocol/server.ts';

const identity = (b: Buffer) => b;

describe('grpc-js decoder buffer release', () => {
  const server = new grpc.Server();
  afterAll(() => server.forceShutdown());

  it('a large request stays pinned by the decoder until released', async () => {
    const seen: Array<{ before: number | undefined; after: number | undefined; released: boolean }> = [];
    let done!: () => void;
    const received = new Promise<void>((r) => (done = r));
    server.addService(adsService(identity, identity), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', () => {
          // Measured after the data handler returns, as grpc-js has finished with the message by then.
          setImmediate(() => {
            const before = retainedDecoderBytes(call);
            const released = releaseDecoderBuffers(call);
            seen.push({ before, after: retainedDecoderBytes(call), released });
            done();
          });
        });
      },
      DeltaAggregatedResources: () => {},
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const Client = grpc.makeGenericClientConstructor(adsService(identity, identity), 'Ads');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const stream = (client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<Buffer, Buffer> }).StreamAggregatedResources();
    stream.on('error', () => {});
    stream.write(Buffer.alloc(200_000, 7)); // any bytes: the handler does not decode them
    await received;
    stream.end();
    client.close();
    const s = seen[0]!;
    expect(s.before).toBeGreaterThan(150_000);
    expect(s.released).toBe(true);
    expect(s.after).toBeLessThan(16);
  });
});
