/**
 * Works around a retention in @grpc/grpc-js 1.14 (pinned exactly in package.json): a call's StreamDecoder keeps the
 * chunks of the last message it received (`readPartialMessage`, `readCompressFlag`) until the next message starts.
 * Those are slices of network buffers, so every idle ADS stream pins its last request — for a SotW ACK listing
 * thousands of names, ~150 KB, i.e. hundreds of MB at 2,000 proxies (measured with a heap snapshot).
 *
 * Between messages (read state NO_DATA) the references are dead: the next message resets them before reading. We drop
 * them then, and only then. If a grpc-js upgrade changes these internals the shape check makes this a no-op, and
 * test/protocol/decoder-release.test.ts fails so the workaround is revisited rather than silently lost.
 */
const NO_DATA = 0;

interface DecoderInternals {
  readState: number;
  readPartialMessage: Buffer[];
  readCompressFlag: Buffer;
}

function decoderOf(call: unknown): DecoderInternals | undefined {
  const d = (call as { call?: { decoder?: Partial<DecoderInternals> } }).call?.decoder;
  if (!d || typeof d.readState !== 'number' || !Array.isArray(d.readPartialMessage) || !Buffer.isBuffer(d.readCompressFlag)) return undefined;
  return d as DecoderInternals;
}

/** Releases the buffers of the message just decoded, if the decoder is between messages. Returns whether it did. */
export function releaseDecoderBuffers(call: unknown): boolean {
  const d = decoderOf(call);
  if (!d || d.readState !== NO_DATA) return false;
  if (d.readPartialMessage.length > 0) d.readPartialMessage = [];
  if (d.readCompressFlag.buffer.byteLength > 1) d.readCompressFlag = Buffer.alloc(1);
  return true;
}

/** For the test: what the decoder still references. */
export function retainedDecoderBytes(call: unknown): number | undefined {
  const d = decoderOf(call);
  if (!d) return undefined;
  return d.readPartialMessage.reduce((n, b) => n + b.buffer.byteLength, 0) + d.readCompressFlag.buffer.byteLength;
}
