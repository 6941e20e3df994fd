/**
 * The load generator's side of the ADS wire, kept cheap on purpose: the load generator shares the machine with the
 * server, so every CPU-millisecond it spends decoding is taken from the thing being measured. Responses are scanned
 * with protobufjs's Reader for the few fields a client needs (version, type, nonce, resource names); resources are
 * never fully decoded. Requests go through the repo's clientCodec; the big resource-name lists (SotW resends them on
 * every ACK) are encoded once per distinct list and concatenated with the small per-request part — protobuf's merge
 * rule makes a concatenation of two encoded messages equal to the merged message.
 */
import protobuf from 'protobufjs';
import { clientCodec } from '../src/xds/protocol/messages.ts';

const { Reader } = protobuf;

export interface ParsedResponse {
  typeUrl: string;
  version: string;
  nonce: string;
  /** Names of the resources carried (Listener/Cluster/RouteConfiguration name, ClusterLoadAssignment cluster_name). */
  names: string[];
  /** Delta only: removed_resources. */
  removed: string[];
  /** Stream 0 sanity check: the raw bytes of each resource, kept only when asked for. */
  raw?: Uint8Array[];
}

/** Field 1 (a string) of an encoded message: the name of every resource type the load generator reads. */
function firstStringField(buf: Uint8Array): string {
  const r = Reader.create(buf);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) return r.string();
    r.skipType(tag & 7);
  }
  return '';
}

/** google.protobuf.Any → its value bytes (field 2), without decoding type_url. */
function anyValue(r: protobuf.Reader, end: number): Uint8Array {
  let value: Uint8Array = new Uint8Array(0);
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === 2 && (tag & 7) === 2) value = r.bytes();
    else r.skipType(tag & 7);
  }
  return value;
}

/** envoy.service.discovery.v3.DiscoveryResponse: version_info=1, resources=2 (Any), type_url=4, nonce=5. */
export function parseSotwResponse(buf: Buffer, keepRaw = false): ParsedResponse {
  const out: ParsedResponse = { typeUrl: '', version: '', nonce: '', names: [], removed: [] };
  if (keepRaw) out.raw = [];
  const r = Reader.create(buf);
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === 1) out.version = r.string();
    else if (field === 4) out.typeUrl = r.string();
    else if (field === 5) out.nonce = r.string();
    else if (field === 2) {
      const len = r.uint32();
      const value = anyValue(r, r.pos + len);
      out.names.push(firstStringField(value));
      out.raw?.push(value);
    } else r.skipType(tag & 7);
  }
  return out;
}

/**
 * envoy.service.discovery.v3.DeltaDiscoveryResponse: system_version_info=1, resources=2, type_url=4, nonce=5,
 * removed_resources=6. Each Resource carries its name in field 3, so the Any inside is not even opened.
 */
export function parseDeltaResponse(buf: Buffer, keepRaw = false): ParsedResponse {
  const out: ParsedResponse = { typeUrl: '', version: '', nonce: '', names: [], removed: [] };
  if (keepRaw) out.raw = [];
  const r = Reader.create(buf);
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === 1) out.version = r.string();
    else if (field === 4) out.typeUrl = r.string();
    else if (field === 5) out.nonce = r.string();
    else if (field === 6) out.removed.push(r.string());
    else if (field === 2) {
      const end = r.uint32() + r.pos;
      let name = '';
      while (r.pos < end) {
        const t = r.uint32();
        if (t >>> 3 === 3) name = r.string();
        else if (t >>> 3 === 2 && keepRaw) out.raw!.push(anyValue(r, r.uint32() + r.pos));
        else r.skipType(t & 7);
      }
      out.names.push(name);
    } else r.skipType(tag & 7);
  }
  return out;
}

/** A resource-name list encoded once and shared by every stream that subscribes the same list. */
export interface NameList {
  names: string[];
  /** Interned ids of the names (see Interner). */
  ids: Int32Array;
  /** SotW: the encoded resource_names fields (DiscoveryRequest field 3). */
  sotwPart: Buffer;
}

/** Global name → id tables, one per type URL, so per-stream state is a few flat byte arrays, not sets of strings. */
export class Interner {
  private readonly ids = new Map<string, number>();
  readonly names: string[] = [];
  private readonly lists = new Map<string, NameList>();

  id(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
    }
    return id;
  }

  peek(name: string): number | undefined {
    return this.ids.get(name);
  }

  /** The shared NameList for this exact list (2,000 streams subscribing the same 3,000 names share one copy). */
  list(names: string[]): NameList {
    const key = names.join('\n');
    let l = this.lists.get(key);
    if (!l) {
      l = { names, ids: Int32Array.from(names, (n) => this.id(n)), sotwPart: clientCodec.encodeRequest({ resource_names: names }) };
      this.lists.set(key, l);
    }
    return l;
  }
}

/** A SotW request/ACK: the shared names part plus the small per-request fields. */
export function sotwRequest(typeUrl: string, version: string, nonce: string, list: NameList | undefined, node?: unknown): Buffer {
  const head = clientCodec.encodeRequest({ type_url: typeUrl, version_info: version, response_nonce: nonce, ...(node ? { node: node as any } : {}) });
  return list && list.names.length > 0 ? Buffer.concat([list.sotwPart, head]) : head;
}

export function deltaRequest(typeUrl: string, nonce: string, subscribe: string[] = [], unsubscribe: string[] = [], node?: unknown): Buffer {
  return clientCodec.encodeDeltaRequest({
    type_url: typeUrl,
    response_nonce: nonce,
    resource_names_subscribe: subscribe,
    resource_names_unsubscribe: unsubscribe,
    ...(node ? { node: node as any } : {}),
  });
}

/** Proxyless gRPC's route name for a client listener `host:port`: the HCM's rds.route_config_name. */
/** Envoy sidecars: the wildcard HTTP listener `0.0.0.0_<port>` routes by `<port>`; other listeners name no RDS here. */
export function sidecarRouteNameOf(listener: string): string | undefined {
  const m = /^0\.0\.0\.0_(\d+)$/.exec(listener);
  return m ? m[1] : undefined;
}

export function routeNameOf(listener: string): string {
  const i = listener.lastIndexOf(':');
  if (i <= 0) return listener;
  let host = listener.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return `outbound|${listener.slice(i + 1)}||${host}`;
}
