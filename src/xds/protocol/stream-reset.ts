/**
 * Resets the HTTP/2 stream under a grpc-js server call (RST_STREAM CANCEL). Ending a call with a status is not enough
 * for a client that stopped reading: grpc-js sends the trailers only after every queued message has been flushed,
 * which flow control never allows, so the call, its buffered responses and the client's stream would live on. The
 * reset drops them at once; the client sees its stream cancelled and reconnects.
 *
 * grpc-js has no public way to do this; `call.call.stream` is its internal http2 stream (1.14, pinned exactly in
 * package.json). If an upgrade changes that, the shape check makes this a no-op and the slow-consumer fault test fails
 * (the client's stream is no longer closed), so the workaround is revisited rather than silently lost.
 */
import http2 from 'node:http2';

interface ResettableStream {
  close(code: number): void;
  destroyed: boolean;
  rstCode?: number;
}

function streamOf(call: unknown): ResettableStream | undefined {
  const s = (call as { call?: { stream?: Partial<ResettableStream> } }).call?.stream;
  if (!s || typeof s.close !== 'function' || typeof s.destroyed !== 'boolean' || !('rstCode' in s)) return undefined;
  return s as ResettableStream;
}

/** Resets the call's stream; false when the stream is gone already or grpc-js no longer has the expected shape. */
export function resetCallStream(call: unknown): boolean {
  const s = streamOf(call);
  if (!s || s.destroyed) return false;
  s.close(http2.constants.NGHTTP2_CANCEL);
  return true;
}
