/**
 * Encoding Envoy resources. Builders produce plain objects in Envoy's proto JSON shape (snake_case field names, enum
 * names as strings, nested `typed_config` written as `{"@type": "type.googleapis.com/…", …}`); this module turns
 * them into bytes once, and back into JSON for debug output.
 */
import { createHash } from 'node:crypto';
import { toProto3JSON } from 'proto3-json-serializer';
import { ensureType, ensureTypesIn, messageType } from './root.ts';
import { messageNameOf } from './types.ts';

export interface EncodedResource {
  name: string;
  typeUrl: string;
  /** The serialized message (the `value` of its Any). */
  bytes: Uint8Array;
  /** Content hash: equal bytes ⇔ equal version, so a proxy is sent a resource only when it changed. */
  version: string;
}

export function encodeResource(typeUrl: string, name: string, message: object): EncodedResource {
  const type = messageType(messageNameOf(typeUrl));
  // protobufjs silently encodes an Any whose type it does not know as empty; refuse instead.
  const unknown = ensureTypesIn(message);
  if (unknown.length > 0) throw new Error(`${name}: unknown message type(s) in typed_config: ${[...new Set(unknown)].join(', ')}`);
  const bytes = type.encode(type.fromObject(message)).finish();
  return { name, typeUrl, bytes, version: contentVersion(bytes) };
}

export function contentVersion(bytes: Uint8Array): string {
  return createHash('sha1').update(bytes).digest('base64url').slice(0, 16);
}

/**
 * Decodes resource bytes to canonical proto3 JSON, as Envoy's config_dump shows it (durations `"10s"`, wrappers as
 * plain values, nested Any expanded with `@type`), for /debug/config_dump and tests.
 */
export function decodeResource(typeUrl: string, bytes: Uint8Array): Record<string, any> {
  const type = messageType(messageNameOf(typeUrl));
  const message = type.decode(bytes);
  // Extension types inside an Any are loaded on demand (ensureType): encoding loads them first, but a process that
  // only decodes (proxy-config, a client) meets them here, one unknown type per attempt.
  for (let attempt = 0; ; attempt++) {
    try {
      return toProto3JSON(message as never) as Record<string, any>;
    } catch (err) {
      const missing = /no such type: ([\w.]+)/.exec((err as Error).message)?.[1];
      if (!missing || attempt >= 64 || !ensureType(missing)) throw err;
    }
  }
}

/** `{"@type": …}` for a nested Any, the shape protobufjs's Any wrapper expects. */
export function typed<T extends object>(messageName: string, body: T): T & { '@type': string } {
  return { '@type': `type.googleapis.com/${messageName}`, ...body };
}
