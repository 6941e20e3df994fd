/**
 * The ADS wire messages and their codec. Requests are decoded with protobufjs; responses are encoded with the
 * resources' cached bytes placed directly into the Any fields, so a push never re-encodes a resource.
 */
import protobuf from 'protobufjs';
import { messageType } from '../../proto/root.ts';
import { structToJson } from '../../proto/struct.ts';

export { jsonToStruct } from '../../proto/struct.ts';

export interface NodeInfo {
  id: string;
  cluster: string;
  /** node.metadata (a protobuf Struct) as plain JSON. */
  metadata: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  user_agent_name?: string;
  user_agent_version?: string;
}

export interface ErrorDetail {
  code: number;
  message: string;
}

export interface DiscoveryRequest {
  version_info: string;
  node?: NodeInfo;
  /** Decodes the names on first use: SotW ACKs repeat thousands of names that usually have not changed. */
  readonly resource_names: string[];
  /** The encoded resource_names entries, when they are contiguous in the message (they are, from every encoder seen). */
  namesBytes?: Buffer;
  type_url: string;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

export interface DeltaDiscoveryRequest {
  node?: NodeInfo;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

export interface WireResource {
  name: string;
  version: string;
  bytes: Uint8Array;
}



function decodeNode(raw: any): NodeInfo | undefined {
  if (!raw) return undefined;
  return {
    id: raw.id ?? '',
    cluster: raw.cluster ?? '',
    metadata: structToJson(raw.metadata),
    ...(raw.locality ? { locality: raw.locality } : {}),
    ...(raw.user_agent_name ? { user_agent_name: raw.user_agent_name } : {}),
    ...(raw.user_agent_version ? { user_agent_version: raw.user_agent_version } : {}),
  };
}

function decodeError(raw: any): ErrorDetail | undefined {
  if (!raw) return undefined;
  return { code: raw.code ?? 0, message: raw.message ?? '' };
}

const T = {
  get req() {
    return messageType('envoy.service.discovery.v3.DiscoveryRequest');
  },
  get res() {
    return messageType('envoy.service.discovery.v3.DiscoveryResponse');
  },
  get deltaReq() {
    return messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  },
  get deltaRes() {
    return messageType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
  },
};

/**
 * DiscoveryRequest, decoded by hand so resource_names (field 3) stays bytes until asked for: comparing 150 KB of
 * unchanged names as bytes is far cheaper than turning them into 3,000 strings on every ACK.
 */
export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequest {
  const r = protobuf.Reader.create(buf);
  let version_info = '';
  let type_url = '';
  let response_nonce = '';
  let node: NodeInfo | undefined;
  let error_detail: ErrorDetail | undefined;
  let namesStart = -1;
  let namesEnd = -1;
  let contiguous = true;
  let count = 0;
  while (r.pos < r.len) {
    const start = r.pos;
    const tag = r.uint32();
    switch (tag >>> 3) {
      case 1:
        version_info = r.string();
        break;
      case 2:
        node = decodeNode(messageType('envoy.config.core.v3.Node').decode(r, r.uint32()));
        break;
      case 3: {
        if (namesStart < 0) namesStart = start;
        else if (namesEnd !== start) contiguous = false;
        r.skipType(tag & 7);
        namesEnd = r.pos;
        count++;
        break;
      }
      case 4:
        type_url = r.string();
        break;
      case 5:
        response_nonce = r.string();
        break;
      case 6:
        error_detail = decodeError(messageType('google.rpc.Status').decode(r, r.uint32()));
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  let names: string[] | undefined;
  const decodeNames = (): string[] => {
    if (names) return names;
    names = [];
    if (count === 0) return names;
    const nr = protobuf.Reader.create(buf.subarray(namesStart, contiguous ? namesEnd : buf.length));
    while (nr.pos < nr.len) {
      const tag = nr.uint32();
      if (tag >>> 3 === 3) names.push(nr.string());
      else nr.skipType(tag & 7);
    }
    return names;
  };
  return {
    version_info,
    node,
    get resource_names() {
      return decodeNames();
    },
    ...(contiguous ? { namesBytes: count > 0 ? buf.subarray(namesStart, namesEnd) : Buffer.alloc(0) } : {}),
    type_url,
    response_nonce,
    error_detail,
  };
}

export function decodeDeltaDiscoveryRequest(buf: Buffer): DeltaDiscoveryRequest {
  const m = T.deltaReq.decode(buf) as any;
  return {
    node: decodeNode(m.node),
    type_url: m.type_url ?? '',
    resource_names_subscribe: m.resource_names_subscribe ?? [],
    resource_names_unsubscribe: m.resource_names_unsubscribe ?? [],
    initial_resource_versions: m.initial_resource_versions ?? {},
    response_nonce: m.response_nonce ?? '',
    error_detail: decodeError(m.error_detail),
  };
}

/**
 * Protobuf fields may come in any order and a message is the concatenation of its fields, so a response is encoded as
 * [per-stream fields: version, nonce, …] + [the resources field]. The resources part is the same for every stream
 * that gets the same set, so it is encoded once per set and shared (see ResourceSet.wire).
 */
export function encodeSotwResources(typeUrl: string, resources: Iterable<WireResource>): Buffer {
  const w = protobuf.Writer.create();
  for (const r of resources) w.uint32(18).fork().uint32(10).string(typeUrl).uint32(18).bytes(r.bytes).ldelim(); // resources = 2: Any
  return Buffer.from(w.finish());
}

export function encodeDeltaResources(typeUrl: string, resources: Iterable<WireResource>): Buffer {
  const w = protobuf.Writer.create();
  for (const r of resources) {
    // resources = 2: Resource { version = 1, resource = 2 (Any), name = 3 }
    w.uint32(18).fork().uint32(10).string(r.version).uint32(18).fork().uint32(10).string(typeUrl).uint32(18).bytes(r.bytes).ldelim().uint32(26).string(r.name).ldelim();
  }
  return Buffer.from(w.finish());
}

/** The per-stream head of a SotW response: version_info = 1, type_url = 4, nonce = 5, control_plane = 6. */
export function encodeSotwHead(version: string, typeUrl: string, nonce: string, controlPlane?: string): Buffer {
  const w = protobuf.Writer.create().uint32(10).string(version).uint32(34).string(typeUrl).uint32(42).string(nonce);
  if (controlPlane) w.uint32(50).fork().uint32(10).string(controlPlane).ldelim();
  return Buffer.from(w.finish());
}

/** The per-stream head of a delta response: system_version_info = 1, type_url = 4, nonce = 5, removed = 6, control_plane = 7. */
export function encodeDeltaHead(version: string, typeUrl: string, nonce: string, removed: readonly string[], controlPlane?: string): Buffer {
  const w = protobuf.Writer.create().uint32(10).string(version).uint32(34).string(typeUrl).uint32(42).string(nonce);
  for (const r of removed) w.uint32(50).string(r);
  if (controlPlane) w.uint32(58).fork().uint32(10).string(controlPlane).ldelim();
  return Buffer.from(w.finish());
}

/** Client-side codec, used by tests and the load generator (which speak raw ADS). */
export const clientCodec = {
  encodeRequest(r: Partial<DiscoveryRequest> & { node?: unknown }): Buffer {
    return Buffer.from(T.req.encode(T.req.fromObject(r)).finish());
  },
  encodeDeltaRequest(r: Partial<DeltaDiscoveryRequest> & { node?: unknown }): Buffer {
    return Buffer.from(T.deltaReq.encode(T.deltaReq.fromObject(r)).finish());
  },
  decodeResponse(buf: Buffer): { version_info: string; type_url: string; nonce: string; resources: Array<{ type_url: string; value: Uint8Array }> } {
    return T.res.decode(buf) as any;
  },
  decodeDeltaResponse(buf: Buffer): {
    system_version_info: string;
    type_url: string;
    nonce: string;
    resources: Array<{ name: string; version: string; resource?: { type_url: string; value: Uint8Array } }>;
    removed_resources: string[];
  } {
    return T.deltaRes.decode(buf) as any;
  },
};

